"""``xp.kind: apogee_crossmatch`` through the workflow, offline: rule fetch_apogee_allstar downloads an
allStar-shaped FITS file, select_xp_unlabelled_ids asks TAP for the random_index sample, fetch_xp_part fetches
each part's XP spectra by datalink (real archive rows served by the loopback emulation of the Gaia archive) and
G flux by TAP, and xp_sources_from_parts writes the two source tables. Every APOGEE star with a Gaia id keeps
its row, the labels are its highest-S/N row's."""

import numpy as np
import pyarrow.parquet as pq
import yaml
from conftest import REAL_DATA, prepare_tiny_workdir, run_snakemake
from gaia_xp_archive import (
    BRIGHT,
    DATA,
    FAINT,
    NO_BP,
    UNKNOWN,
    ArchiveEmulator,
    archive_csv_rows,
    write_allstar,
)
from loopback_http import LoopbackServer, Response

from latentsky.io.gaia_xp import flag_names, read_xp_continuous
from latentsky.provenance.files import read_provenance

STAR = (80.0, 2.4, 0.05, -0.21, 0.01, 0.08, 0.03, 0, 0)


def test_the_crossmatch_and_unlabelled_samples_are_fetched_in_parts(tmp_path, repo_root):
    workdir = prepare_tiny_workdir(tmp_path, repo_root)
    allstar = tmp_path / "served_allStar.fits"
    write_allstar(
        allstar,
        [
            ("2M00000002+7417074", "apo25m", "120+12", BRIGHT, 4650.0, *STAR, 143.0),
            ("2M00000002+7417074", "lco25m", "120+12S", BRIGHT, 4700.0, *STAR, 310.5),
            ("2M00000019-1924498", "apo25m", "060-75", -1, 5000.0, *STAR, 95.0),
            ("2M00000032+5737103", "apo25m", "N7789", FAINT, 5100.0, *STAR, 50.0),
            ("2M00000040+0000000", "apo25m", "N7789", UNKNOWN, 5300.0, *STAR, 70.0),  # no XP in the archive
        ],
    )
    with LoopbackServer() as server:
        archive = ArchiveEmulator(server, archive_csv_rows(REAL_DATA), b"", random_ids=(NO_BP, 43, BRIGHT))
        server.route("GET", "/sas/allStarLite-dr17.fits", Response(body=allstar.read_bytes()))
        fetch = {
            "allstar_url": server.url + "/sas/allStarLite-dr17.fits",
            "gaia_url": server.url + "/",
            "chunk_size": 1,
            "n_parts": 2,
            "n_unlabelled": 2,
        }
        (workdir / "fetch.yaml").write_text(
            yaml.safe_dump({"xp": {"kind": "apogee_crossmatch", "apogee_crossmatch": fetch}})
        )
        run_snakemake(
            workdir,
            "results/sources/xp/crossmatch.parquet",
            "results/sources/xp/unlabelled.parquet",
            configfiles=("tiny.yaml", "fetch.yaml"),
        )
        # Five ids in parts of one: five datalink requests; the sample's TAP job and one G job per chunk.
        assert server.count("POST", DATA) == 5
        assert server.count("GET", "/sas/allStarLite-dr17.fits") == 1
        assert sum("random_index" in q for q in archive.queries.values()) == 1

    sources = workdir / "results/sources/xp"
    assert (sources / "apogee/allStarLite-dr17.fits").read_bytes() == allstar.read_bytes()
    cross = read_xp_continuous(sources / "crossmatch.parquet", with_correlations=True)
    # Parts by source_id modulo 2, each part in id order; the star without a Gaia id has nothing to fetch.
    ids = sorted([BRIGHT, FAINT, UNKNOWN])
    assert cross.source_id.tolist() == [i for i in ids if i % 2 == 0] + [i for i in ids if i % 2 == 1]
    row = {int(s): i for i, s in enumerate(cross.source_id)}
    assert "missing_from_archive" in flag_names(cross.flags[row[UNKNOWN]])
    assert flag_names(cross.flags[row[BRIGHT]]) == []
    reference = read_xp_continuous(
        REAL_DATA / "gaia_xp_continuous/XP_CONTINUOUS_RAW_with_missing_BP.csv", with_correlations=True
    )
    ref = {int(s): i for i, s in enumerate(reference.source_id)}
    for star in (BRIGHT, FAINT):
        np.testing.assert_array_equal(cross.coefficients[row[star]], reference.coefficients[ref[star]])
        np.testing.assert_allclose(
            cross.correlations[row[star]], reference.correlations[ref[star]], atol=6e-8
        )
    assert cross.g_flux[row[BRIGHT]] == 1.25e6
    labels = pq.read_table(
        sources / "crossmatch.parquet", columns=["source_id", "TEFF", "APOGEE_ID"]
    ).to_pandas()
    labels = labels.set_index("source_id")
    assert labels.loc[BRIGHT, "TEFF"] == 4700.0  # the higher-S/N row of the star observed twice
    assert labels.loc[UNKNOWN, "APOGEE_ID"] == "2M00000040+0000000"
    unl = read_xp_continuous(sources / "unlabelled.parquet")
    assert sorted(unl.source_id.tolist()) == sorted([NO_BP, 43])
    assert "missing_bp" in flag_names(unl.flags[unl.source_id.tolist().index(NO_BP)])
    assert read_provenance(sources / "crossmatch.parquet")["rule"] == "xp_sources_from_parts"
