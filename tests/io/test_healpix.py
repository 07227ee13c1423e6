import numpy as np
import pytest

from latentsky.io import healpix


def test_source_id_encodes_level12_pixel_of_real_gaia_source(real_data):
    # A real DR3 source from the archive's datalink answer: its source_id's level-12 pixel must be the
    # pixel of its catalogued position (Gaia data model), read from the cone-search response.
    import json

    cone = json.loads((real_data / "gaia_archive_responses" / "cone_search.json").read_text())
    names = [c["name"] for c in cone["metadata"]]
    rows = cone["data"]
    sid = np.array([r[names.index("source_id")] for r in rows], dtype=np.int64)
    ra = np.array([r[names.index("ra")] for r in rows], dtype=float)
    dec = np.array([r[names.index("dec")] for r in rows], dtype=float)
    # Positions are at epoch J2016; the pixel is assigned at the reference epoch, so a very few
    # high-proper-motion stars may cross a 0.86′ pixel edge. All 50 here must agree at level 10.
    assert np.array_equal(healpix.source_id_to_healpix(sid, 10), healpix.radec_to_healpix(ra, dec, 10))
    assert np.mean(healpix.source_id_to_healpix(sid, 12) == healpix.radec_to_healpix(ra, dec, 12)) >= 0.95


def test_make_source_ids_round_trip_and_ranges():
    rng = np.random.default_rng(1)
    hp12 = rng.integers(0, healpix.npix(12), 1000)
    run = rng.integers(0, 2**35, 1000)
    sid = healpix.make_source_ids(hp12, run)
    assert np.array_equal(healpix.source_id_to_healpix(sid, 12), hp12)
    for order in (0, 3, 7):
        pix = healpix.source_id_to_healpix(sid, order)
        assert np.array_equal(pix, hp12 >> (2 * (12 - order)))
        for s, p in zip(sid[:20], pix[:20], strict=True):
            lo, hi = healpix.source_id_range(int(p), order)
            assert lo <= s <= hi
    # Ranges of consecutive pixels tile the source_id line without gaps.
    assert healpix.source_id_range(0, 2)[1] + 1 == healpix.source_id_range(1, 2)[0]


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="order"):
        healpix.npix(13)
    with pytest.raises(ValueError, match="pixel 12 outside"):
        healpix.source_id_range(12, 0)
    with pytest.raises(ValueError, match="running number"):
        healpix.make_source_ids(np.array([0]), np.array([2**35]))
