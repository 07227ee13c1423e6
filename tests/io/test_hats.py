"""HATS catalogs from independently written HEALPix partitions, read back with hats and lsdb."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import astropy.units as u
import hats
import healpy
import lsdb
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from hats.io.validation import is_valid_catalog
from hats.pixel_math import HealpixPixel
from scipy.spatial import cKDTree

from latentsky.io import hats as hc
from latentsky.io.healpix import radec_to_healpix
from latentsky.provenance.files import read_parquet_provenance, read_provenance
from latentsky.provenance.record import build_record

ORDER = 1
N_STARS = 3000
#: An order-1 pixel left without stars, to exercise empty-partition handling.
EMPTY_PIXEL = 7
#: A star of the catalog planted 1 arcsec inside PAIR_PIXELS[0], whose partner (in another catalog) lies
#: 1 arcsec across the boundary, in PAIR_PIXELS[1]: a pair only a margin cache lets a cross-match find.
PAIR_PIXELS = (0, 1)
PAIR_SOURCE_ID = 2**41
#: The workflow's margin, and a wide one that catches enough of the 3000 uniform stars to compare.
MARGIN_ARCSEC = 10.0
WIDE_MARGIN_ARCSEC = 1800.0


def _as_json(record):
    # What a record looks like after a round trip through a file.
    return json.loads(json.dumps(record))


def _stars(n: int, seed: int) -> pd.DataFrame:
    """Stars uniform on the sky, in a shuffled order, with Gaia-like columns."""
    rng = np.random.default_rng(seed)
    ra = rng.uniform(0.0, 360.0, n)
    dec = np.degrees(np.arcsin(rng.uniform(-1.0, 1.0, n)))
    return pd.DataFrame(
        {
            "source_id": rng.choice(2**40, size=n, replace=False).astype(np.int64),
            "ra": ra,
            "dec": dec,
            "dist_median_pc": rng.lognormal(7.0, 0.5, n),
        }
    )


def _xyz(ra_deg, dec_deg):
    ra, dec = np.radians(ra_deg), np.radians(dec_deg)
    return np.stack([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)], axis=-1)


def _radec(xyz):
    return np.degrees(np.arctan2(xyz[..., 1], xyz[..., 0])) % 360.0, np.degrees(np.arcsin(xyz[..., 2]))


def _along(start, end, angle_rad):
    """The point ``angle_rad`` from unit vector ``start`` along the great circle towards ``end``."""
    towards = end - np.dot(start, end) * start
    towards /= np.linalg.norm(towards)
    return np.cos(angle_rad) * start + np.sin(angle_rad) * towards


def _pair_across_boundary(inside: int, outside: int, half_separation_arcsec: float = 1.0):
    """Two positions on the great circle between the centres of two adjacent order-ORDER pixels, each
    ``half_separation_arcsec`` from where it crosses their boundary: (ra, dec) in ``inside``, in ``outside``."""
    centres = [healpy.pix2vec(2**ORDER, p, nest=True) for p in (inside, outside)]
    start, end = np.asarray(centres[0]), np.asarray(centres[1])
    arc = np.arccos(np.clip(np.dot(start, end), -1.0, 1.0))
    lo, hi = 0.0, arc  # pixel(lo) == inside, pixel(hi) == outside

    def pixel(angle):
        return int(healpy.vec2pix(2**ORDER, *_along(start, end, angle), nest=True))

    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if pixel(mid) == inside else (lo, mid)
    step = np.radians(half_separation_arcsec / 3600.0)
    return _radec(_along(start, end, lo - step)), _radec(_along(start, end, lo + step))


def _angular_sep_deg(ra1, dec1, ra2, dec2):
    ra1, dec1, ra2, dec2 = map(np.radians, (ra1, dec1, ra2, dec2))
    # Haversine: accurate at the small and moderate separations tested here.
    h = np.sin((dec2 - dec1) / 2) ** 2 + np.cos(dec1) * np.cos(dec2) * np.sin((ra2 - ra1) / 2) ** 2
    return np.degrees(2 * np.arcsin(np.sqrt(h)))


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """One catalog, written the way the workflow does: one write_partition per pixel, then finalize."""
    stars = _stars(N_STARS, seed=20240611)
    planted, partner = _pair_across_boundary(*PAIR_PIXELS)
    stars.loc[len(stars)] = {
        "source_id": PAIR_SOURCE_ID,
        "ra": planted[0],
        "dec": planted[1],
        "dist_median_pc": 100.0,
    }
    pixel = radec_to_healpix(stars["ra"].to_numpy(), stars["dec"].to_numpy(), ORDER)
    stars = stars[pixel != EMPTY_PIXEL].reset_index(drop=True)
    pixel = pixel[pixel != EMPTY_PIXEL]
    catalog_dir = tmp_path_factory.mktemp("hats") / "distance_posterior"
    records, files = {}, []
    for p in range(12 * 4**ORDER):
        records[p] = build_record(rule="test", wildcards={"pixel": p})
        written = hc.write_partition(stars[pixel == p], catalog_dir, ORDER, p, records[p])
        if written is not None:
            files.append(written)
    final_record = build_record(rule="test")
    written = hc.finalize_catalog(
        catalog_dir,
        "distance_posterior",
        ORDER,
        files,
        final_record,
        extra_properties={"obs_title": "Synthetic stars", "default_columns": ["source_id", "ra", "dec"]},
        skymap_order=4,
    )
    return {
        "dir": catalog_dir,
        "stars": stars,
        "pixel": pixel,
        "files": files,
        "records": records,
        "final_record": final_record,
        "written": written,
        "partner": partner,
    }


@pytest.fixture(scope="module")
def margins(built):
    """Margin catalogs of the built catalog, beside it as HATS wants: the workflow's width and a wide one."""
    out = {}
    for threshold in (MARGIN_ARCSEC, WIDE_MARGIN_ARCSEC):
        record = build_record(rule="test_margin", extra={"threshold": threshold})
        margin_dir = built["dir"].parent / f"distance_posterior_{threshold:g}arcs"
        written = hc.write_margin_catalog(built["dir"], margin_dir, threshold, record)
        out[threshold] = {"dir": margin_dir, "record": record, "written": written}
    return out


def test_empty_pixel_has_no_file_and_no_partition(built):
    assert len(built["files"]) == 12 * 4**ORDER - 1
    assert not hc.partition_path(built["dir"], ORDER, EMPTY_PIXEL).exists()
    pixels = pd.read_csv(built["dir"] / "partition_info.csv")
    assert EMPTY_PIXEL not in set(pixels["Npix"])


def test_finalize_writes_the_hats_files(built):
    d = built["dir"]
    names = {p.relative_to(d).as_posix() for p in built["written"]}
    assert names == {
        "hats.properties",
        "properties",
        "partition_info.csv",
        "dataset/_common_metadata",
        "dataset/_metadata",
        "point_map.fits",
        "skymap.fits",
    }
    assert built["written"][-1] == d / "hats.properties"
    assert is_valid_catalog(d, strict=True)


def test_lsdb_reads_every_star_once_with_its_values(built):
    catalog = lsdb.open_catalog(built["dir"], columns="all")
    got = catalog.compute()
    assert got.index.name == hc.SPATIAL_INDEX_COLUMN
    assert len(got) == len(built["stars"])
    assert got["source_id"].is_unique
    merged = built["stars"].merge(got.reset_index(), on="source_id", how="outer", validate="one_to_one")
    assert len(merged) == len(built["stars"])
    for column in ("ra", "dec", "dist_median_pc"):
        np.testing.assert_array_equal(
            merged[f"{column}_x"].to_numpy(), merged[f"{column}_y"].to_numpy(dtype=np.float64)
        )
    expected_index = hc.spatial_index(merged["ra_x"].to_numpy(), merged["dec_x"].to_numpy())
    np.testing.assert_array_equal(merged[hc.SPATIAL_INDEX_COLUMN].to_numpy(dtype=np.int64), expected_index)


def test_default_columns_are_honoured(built):
    catalog = lsdb.open_catalog(built["dir"])
    assert list(catalog.columns) == ["source_id", "ra", "dec"]


def test_hats_reports_rows_pixels_and_provenance(built):
    catalog = hats.read_hats(built["dir"])
    info = catalog.catalog_info
    assert info.total_rows == len(built["stars"])
    assert info.catalog_type == "object"
    assert (info.ra_column, info.dec_column) == ("ra", "dec")
    assert info.healpix_column == hc.SPATIAL_INDEX_COLUMN
    expected = [HealpixPixel(ORDER, p) for p in sorted(set(built["pixel"].tolist()))]
    assert sorted(catalog.get_healpix_pixels()) == expected
    assert catalog.moc is not None  # from point_map.fits
    extra = info.extra_dict()
    assert extra[hc.PROVENANCE_PROPERTY] == hc.provenance_sha256(built["final_record"])
    assert info.obs_title == "Synthetic stars"


def test_every_file_carries_provenance(built):
    for path in built["files"]:
        pixel = hats.io.paths.get_healpix_from_path(str(path)).pixel
        assert read_provenance(path) == _as_json(built["records"][pixel])
    # The catalog-level Parquet metadata carries the finalize job's record, not a partition's.
    for name in ("_common_metadata", "_metadata"):
        assert read_parquet_provenance(built["dir"] / "dataset" / name) == _as_json(built["final_record"])


def test_metadata_footers_cover_every_partition(built):
    footers = pq.read_metadata(built["dir"] / "dataset" / "_metadata")
    assert footers.num_rows == len(built["stars"])
    paths_in_footers = {footers.row_group(i).column(0).file_path for i in range(footers.num_row_groups)}
    assert paths_in_footers == {p.relative_to(built["dir"] / "dataset").as_posix() for p in built["files"]}


@pytest.mark.parametrize(("ra0", "dec0", "radius_deg"), [(45.0, 41.8, 20.0), (300.0, -70.0, 12.0)])
def test_cone_search_matches_brute_force(built, ra0, dec0, radius_deg):
    stars = built["stars"]
    inside = _angular_sep_deg(ra0, dec0, stars["ra"].to_numpy(), stars["dec"].to_numpy()) <= radius_deg
    # Stars within 1e-9 deg of the edge would make the comparison depend on rounding.
    margin = np.abs(_angular_sep_deg(ra0, dec0, stars["ra"], stars["dec"]) - radius_deg)
    assert margin.min() > 1e-9
    search = lsdb.ConeSearch(ra=ra0, dec=dec0, radius_arcsec=radius_deg * 3600.0)
    got = lsdb.open_catalog(built["dir"], search_filter=search).compute()
    assert 10 < inside.sum() < len(stars)  # a real subset, spanning several partitions
    assert sorted(got["source_id"].tolist()) == sorted(stars.loc[inside, "source_id"].tolist())


def test_partitions_are_sorted_by_spatial_index_and_inside_their_pixel(built):
    for path in built["files"]:
        pixel = hats.io.paths.get_healpix_from_path(str(path))
        table = pq.read_table(path)
        index = table[hc.SPATIAL_INDEX_COLUMN].to_numpy()
        assert table.schema.names[0] == hc.SPATIAL_INDEX_COLUMN
        assert np.all(np.diff(index) >= 0)
        np.testing.assert_array_equal(
            index, hc.spatial_index(table["ra"].to_numpy(), table["dec"].to_numpy())
        )
        assert np.all(hats.pixel_math.spatial_index_to_healpix(index, target_order=ORDER) == pixel.pixel)


def test_stray_row_raises_a_clear_error_and_writes_nothing(built, tmp_path):
    stars, pixel = built["stars"], built["pixel"]
    target = 5
    rows = pd.concat([stars[pixel == target], stars[pixel != target].head(3)], ignore_index=True)
    with pytest.raises(ValueError, match=rf"3 of {len(rows)} row\(s\) lie outside HEALPix pixel {target} "):
        hc.write_partition(rows, tmp_path, ORDER, target, build_record(rule="test"))
    assert not hc.partition_path(tmp_path, ORDER, target).exists()


def test_empty_partition_removes_a_stale_file(tmp_path):
    stars = _stars(200, seed=3)
    pixel = radec_to_healpix(stars["ra"].to_numpy(), stars["dec"].to_numpy(), 0)
    record = build_record(rule="test")
    path = hc.write_partition(stars[pixel == 2], tmp_path, 0, 2, record)
    assert path == hc.partition_path(tmp_path, 0, 2) and path.is_file()
    # The pixel lost its stars (e.g. a new quality cut): regenerating it leaves no partition behind.
    assert hc.write_partition(stars.iloc[:0], tmp_path, 0, 2, record) is None
    assert not path.exists()


def test_finalize_is_reproducible(built, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(built["dir"], copy)
    files = [copy / p.relative_to(built["dir"]) for p in built["files"]]
    hc.finalize_catalog(
        copy,
        "distance_posterior",
        ORDER,
        files,
        built["final_record"],
        extra_properties={"obs_title": "Synthetic stars", "default_columns": ["source_id", "ra", "dec"]},
        skymap_order=4,
    )
    for name in ("hats.properties", "partition_info.csv", "dataset/_metadata", "dataset/_common_metadata"):
        assert (copy / name).read_bytes() == (built["dir"] / name).read_bytes(), name


def _small_catalog(root: Path) -> tuple[Path, list[Path]]:
    stars = _stars(300, seed=5)
    pixel = radec_to_healpix(stars["ra"].to_numpy(), stars["dec"].to_numpy(), 0)
    record = build_record(rule="test")
    files = [hc.write_partition(stars[pixel == p], root, 0, p, record) for p in (0, 1)]
    return root, files


def test_finalize_refuses_unlisted_files_in_dataset(tmp_path):
    root, files = _small_catalog(tmp_path / "cat")
    # A temporary file left by a killed partition job: hats would read it into _metadata.
    leftover = files[0].parent / ".Npix=0.parquet.abc123.tmp.parquet"
    leftover.write_bytes(b"partial")
    with pytest.raises(ValueError, match="not listed partitions"):
        hc.finalize_catalog(root, "small", 0, files, build_record(rule="test"))
    leftover.unlink()
    with pytest.raises(ValueError, match="not listed partitions"):
        hc.finalize_catalog(root, "small", 0, files[:1], build_record(rule="test"))
    assert not (root / "hats.properties").exists()
    hc.finalize_catalog(root, "small", 0, files, build_record(rule="test"))
    assert hats.read_hats(root).catalog_info.total_rows == sum(pq.read_metadata(f).num_rows for f in files)


def test_refinalize_without_skymap_drops_the_stale_map(tmp_path):
    root, files = _small_catalog(tmp_path / "cat")
    hc.finalize_catalog(root, "small", 0, files, build_record(rule="test"), skymap_order=3)
    assert hats.read_hats(root).moc is not None
    written = hc.finalize_catalog(root, "small", 0, files, build_record(rule="test"))
    assert not any(p.suffix == ".fits" for p in written)
    assert not (root / "point_map.fits").exists() and not (root / "skymap.fits").exists()
    assert hats.read_hats(root).moc is None


def test_finalize_rejects_bad_arguments(tmp_path):
    root, files = _small_catalog(tmp_path / "cat")
    record = build_record(rule="test")
    with pytest.raises(ValueError, match="order 1"):
        hc.finalize_catalog(root, "small", 1, files, record)
    with pytest.raises(ValueError, match="derives them"):
        hc.finalize_catalog(root, "small", 0, files, record, extra_properties={"hats_nrows": 5})
    with pytest.raises(ValueError, match="not catalog columns"):
        hc.finalize_catalog(root, "small", 0, files, record, extra_properties={"default_columns": ["nope"]})
    with pytest.raises(ValueError, match="at least one"):
        hc.finalize_catalog(root, "small", 0, [], record)


def test_partition_path_is_the_hats_layout(tmp_path):
    assert hc.partition_path(tmp_path, 6, 12345) == tmp_path / "dataset/Norder=6/Dir=10000/Npix=12345.parquet"
    with pytest.raises(ValueError, match="outside"):
        hc.partition_path(tmp_path, 0, 12)


def test_prepare_partition_checks_its_input():
    stars = _stars(50, seed=9)
    prepared = hc.prepare_partition(stars)
    assert prepared.columns[0] == hc.SPATIAL_INDEX_COLUMN
    assert prepared[hc.SPATIAL_INDEX_COLUMN].is_monotonic_increasing
    # Idempotent: the spatial index is recomputed, not duplicated.
    pd.testing.assert_frame_equal(hc.prepare_partition(prepared), prepared)
    with pytest.raises(ValueError, match="named index"):
        hc.prepare_partition(stars.set_index("source_id"))
    with pytest.raises(ValueError, match="non-finite"):
        hc.prepare_partition(stars.assign(dec=np.where(np.arange(50) == 3, np.nan, stars["dec"])))
    with pytest.raises(ValueError, match="both order and pixel"):
        hc.prepare_partition(stars, order=0)
    with pytest.raises(ValueError, match="position column"):
        hc.prepare_partition(stars.rename(columns={"ra": "RA"}))


# ------------------------------------------------------------------------------------- margin cache, MOC
def _margin_partitions(margin_dir: Path) -> dict[int, pd.DataFrame]:
    """Margin partitions by order-ORDER pixel (every margin pixel of this catalog is at ORDER)."""
    info = pd.read_csv(margin_dir / "partition_info.csv")
    assert set(info["Norder"]) <= {ORDER}
    return {
        int(p): pq.read_table(hc.partition_path(margin_dir, ORDER, int(p))).to_pandas() for p in info["Npix"]
    }


@pytest.fixture(scope="module")
def boundary_distances(built):
    """Brute force, independent of the code under test: for every star and every order-ORDER pixel, the
    great-circle distance (arcsec) to the nearest of healpy's boundary points of the pixel (8192 per edge),
    and the largest spacing of those points. Only distances below 2 * WIDE_MARGIN_ARCSEC are computed."""
    stars = built["stars"]
    xyz = _xyz(stars["ra"].to_numpy(), stars["dec"].to_numpy())
    horizon = 2.0 * np.sin(np.radians(2.0 * WIDE_MARGIN_ARCSEC / 3600.0) / 2.0)  # as a chord
    distance = np.full((len(stars), 12 * 4**ORDER), np.inf)
    spacing = 0.0
    for pixel in range(12 * 4**ORDER):
        boundary = healpy.boundaries(2**ORDER, pixel, step=8192, nest=True).T
        gaps = np.linalg.norm(boundary - np.roll(boundary, -1, axis=0), axis=1)
        spacing = max(spacing, float(np.degrees(2.0 * np.arcsin(gaps.max() / 2.0))) * 3600.0)
        chord, _ = cKDTree(boundary).query(xyz, distance_upper_bound=horizon)
        distance[:, pixel] = np.degrees(2.0 * np.arcsin(np.minimum(chord, 2.0) / 2.0)) * 3600.0
    return distance, spacing


def test_margin_completes_a_crossmatch_across_a_partition_boundary(built, margins):
    (ra, dec) = built["partner"]
    planted = built["stars"].loc[built["stars"]["source_id"] == PAIR_SOURCE_ID].iloc[0]
    assert _angular_sep_deg(ra, dec, planted["ra"], planted["dec"]) * 3600 == pytest.approx(2.0, abs=1e-6)
    assert radec_to_healpix(
        np.array([planted["ra"], ra]), np.array([planted["dec"], dec]), ORDER
    ).tolist() == [*PAIR_PIXELS]
    other = lsdb.from_dataframe(
        pd.DataFrame({"other_id": [1], "ra": [ra], "dec": [dec]}),
        ra_column="ra",
        dec_column="dec",
        margin_threshold=None,
    )
    kwargs = {"radius_arcsec": 5.0, "suffixes": ("_other", ""), "suffix_method": "overlapping_columns"}
    with_margin = lsdb.open_catalog(built["dir"], margin_cache=margins[MARGIN_ARCSEC]["dir"])
    found = other.crossmatch(with_margin, **kwargs).compute()
    assert found["source_id"].tolist() == [PAIR_SOURCE_ID]
    assert found["_dist_arcsec"].iloc[0] == pytest.approx(2.0, abs=1e-6)
    # The same without the margin: the partner's partition holds no star within 5 arcsec.
    without = other.crossmatch(lsdb.open_catalog(built["dir"]), **kwargs).compute()
    assert len(without) == 0


@pytest.mark.parametrize("threshold", [MARGIN_ARCSEC, WIDE_MARGIN_ARCSEC])
def test_margin_holds_exactly_the_rows_within_the_threshold(built, margins, boundary_distances, threshold):
    stars, own = built["stars"], built["pixel"]
    distances, spacing = boundary_distances
    # The sampled distance d_ref is never shorter than the true one d, and at most sqrt(d^2 + (spacing/2)^2)
    # (spacing < 19 arcsec): rows with d_ref between t and sqrt(t^2 + (spacing/2)^2) may be either side.
    ambiguous_above = np.hypot(threshold, spacing / 2.0) + 1e-3
    got = _margin_partitions(margins[threshold]["dir"])
    n_near, n_just_outside = 0, 0
    for pixel in range(12 * 4**ORDER):  # EMPTY_PIXEL too: hats' negative tree gets margins (hats-import does)
        distance = distances[:, pixel]
        other = own != pixel
        inside, outside = distance < threshold - 1e-3, distance > ambiguous_above
        expected = set(stars.loc[other & inside, "source_id"])
        ambiguous = set(stars.loc[other & ~inside & ~outside, "source_id"])
        rows = got.get(pixel, pd.DataFrame({"source_id": []}))
        assert rows["source_id"].is_unique
        assert set(rows["source_id"]) - ambiguous == expected, pixel
        n_near += len(expected)
        # Rows of the candidate band (lsdb's coarse margin would hold them) that the exact test left out.
        n_just_outside += int(np.count_nonzero(other & outside & (distance < 1.5 * threshold)))
    if threshold == WIDE_MARGIN_ARCSEC:
        assert n_near > 150 and n_just_outside > 50  # enough rows on both sides for the test to bite
    else:
        assert n_near >= 1  # the planted star, 1 arcsec from its boundary
        assert PAIR_SOURCE_ID in set(got[PAIR_PIXELS[1]]["source_id"])


def test_margin_catalog_layout_properties_and_provenance(built, margins):
    margin = margins[MARGIN_ARCSEC]
    assert is_valid_catalog(margin["dir"], strict=True)
    catalog = hats.read_hats(margin["dir"])
    info = catalog.catalog_info
    assert info.catalog_type == "margin"
    assert info.margin_threshold == MARGIN_ARCSEC
    assert (margin["dir"] / info.primary_catalog).resolve() == built["dir"].resolve()
    assert info.catalog_name == f"distance_posterior_{MARGIN_ARCSEC:g}arcs"
    assert info.extra_dict()[hc.PROVENANCE_PROPERTY] == hc.provenance_sha256(margin["record"])
    primary_schema = pq.read_schema(built["dir"] / "dataset" / "_common_metadata").remove_metadata()
    partitions = [p for p in margin["written"] if p.name.startswith("Npix=")]
    assert partitions and len(partitions) == len(catalog.get_healpix_pixels())
    for path in partitions:
        assert pq.read_schema(path).remove_metadata().equals(primary_schema)
        assert read_provenance(path) == _as_json(margin["record"])
        index = pq.read_table(path, columns=[hc.SPATIAL_INDEX_COLUMN]).column(0).to_numpy()
        assert np.all(np.diff(index) >= 0)
    for name in ("_common_metadata", "_metadata"):
        assert read_parquet_provenance(margin["dir"] / "dataset" / name) == _as_json(margin["record"])
    assert info.total_rows == sum(pq.read_metadata(p).num_rows for p in partitions)


def test_rewriting_a_margin_replaces_it_whole(built, margins, tmp_path):
    margin_dir = tmp_path / "margin"
    shutil.copytree(margins[WIDE_MARGIN_ARCSEC]["dir"], margin_dir)
    hc.write_margin_catalog(built["dir"], margin_dir, MARGIN_ARCSEC, margins[MARGIN_ARCSEC]["record"])
    # No partition of the wide margin is left behind, and the result is the narrow margin byte for byte.
    for path in margins[MARGIN_ARCSEC]["written"]:
        relative = path.relative_to(margins[MARGIN_ARCSEC]["dir"])
        if relative.name != "hats.properties" and relative.name != "properties":
            assert (margin_dir / relative).read_bytes() == path.read_bytes(), relative
    on_disk = sorted(p.relative_to(margin_dir) for p in margin_dir.rglob("*") if p.is_file())
    assert on_disk == sorted(
        p.relative_to(margins[MARGIN_ARCSEC]["dir"]) for p in margins[MARGIN_ARCSEC]["written"]
    )
    assert not [p for p in tmp_path.iterdir() if p.name != "margin"]  # no scratch left


def test_margin_of_a_catalog_with_no_row_near_a_boundary_is_empty_but_valid(tmp_path):
    root, _ = _small_catalog(tmp_path / "cat")
    hc.finalize_catalog(root, "small", 0, sorted(root.rglob("Npix=*.parquet")), build_record(rule="test"))
    margin_dir = tmp_path / "margin"
    hc.write_margin_catalog(root, margin_dir, 0.001, build_record(rule="test"))
    assert is_valid_catalog(margin_dir, strict=True)
    assert hats.read_hats(margin_dir).catalog_info.total_rows == 0
    assert len(lsdb.open_catalog(root, margin_cache=margin_dir).margin.compute()) == 0


def test_moc_covers_every_row(built):
    moc = lsdb.open_catalog(built["dir"]).hc_structure.moc
    assert moc is not None and moc.max_order == 4
    stars = built["stars"]
    assert moc.contains_lonlat(stars["ra"].to_numpy() * u.deg, stars["dec"].to_numpy() * u.deg).all()
    # Not the whole sky: the empty pixel is left out, so the MOC prunes.
    assert moc.sky_fraction <= 1 - 1 / (12 * 4**ORDER) + 1e-12


def test_default_skymap_order_follows_lsdb_and_gives_a_moc(tmp_path):
    assert [hc.default_skymap_order(k) for k in (0, 5, 8, 11)] == [8, 8, 8, 11]
    root, files = _small_catalog(tmp_path / "cat")
    hc.finalize_catalog(
        root, "small", 0, files, build_record(rule="test"), skymap_order=hc.default_skymap_order(0)
    )
    moc = hats.read_hats(root).moc
    table = pd.concat([pq.read_table(f).to_pandas() for f in files])
    assert moc.max_order == 8
    assert moc.contains_lonlat(table["ra"].to_numpy() * u.deg, table["dec"].to_numpy() * u.deg).all()
    assert moc.sky_fraction < 2 / 12  # two order-0 partitions, sparsely filled at order 8


@pytest.mark.parametrize("threshold", [0, -1.0, float("nan"), float("inf"), "10", True])
def test_margin_rejects_a_bad_threshold(built, tmp_path, threshold):
    with pytest.raises(ValueError, match="positive number of arcsec") as error:
        hc.write_margin_catalog(built["dir"], tmp_path / "margin", threshold, build_record(rule="test"))
    assert str(built["dir"]) in str(error.value) and "\n" not in str(error.value)
    assert not (tmp_path / "margin").exists()


def test_margin_rejects_what_is_not_a_hats_catalog(built, margins, tmp_path):
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "notes.txt").write_text("not a catalog")
    cases = {
        tmp_path / "missing": "not a HATS catalog",
        tmp_path / "plain": "not a HATS catalog",
        margins[MARGIN_ARCSEC]["dir"]: "not a HATS object catalog",
    }
    for path, message in cases.items():
        with pytest.raises(ValueError, match=message) as error:
            hc.write_margin_catalog(path, tmp_path / "margin", 5.0, build_record(rule="test"))
        assert str(error.value).startswith(f"{path}: ") and "\n" not in str(error.value)
    assert not (tmp_path / "margin").exists()


def test_margin_refuses_a_place_it_must_not_write(built, tmp_path):
    record = build_record(rule="test")
    with pytest.raises(ValueError, match="sibling"):
        hc.write_margin_catalog(built["dir"], built["dir"] / "margin", 5.0, record)
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "results.csv").write_text("precious")
    with pytest.raises(ValueError, match="refusing to replace"):
        hc.write_margin_catalog(built["dir"], occupied, 5.0, record)
    assert (occupied / "results.csv").read_text() == "precious"
    # Another object catalog has only margin-like names, but is not a margin.
    root, files = _small_catalog(tmp_path / "small")
    hc.finalize_catalog(root, "small", 0, files, record)
    with pytest.raises(ValueError, match="not a margin"):
        hc.write_margin_catalog(built["dir"], root, 5.0, record)
    assert is_valid_catalog(root, strict=True)
    with pytest.raises(ValueError, match="use a smaller threshold"):
        hc.write_margin_catalog(built["dir"], tmp_path / "margin", 36000.0, record)


@pytest.mark.parametrize(("order", "threshold_arcsec"), [(5, 1800.0), (12, 10.0), (16, 0.5)])
def test_margin_edge_polyline_is_within_its_tolerance(order, threshold_arcsec):
    # The distance test measures to a polyline through cdshealpix's boundary vertices; resampled 16 times
    # finer, the true edge must stay within the tolerance of it: near the poles, where edges curve most, at
    # the polar-cap boundary |z| = 2/3, where they bend, and at milliarcsecond chords, where rounding bites.
    tolerance = hc.MARGIN_EDGE_TOLERANCE * np.radians(threshold_arcsec / 3600.0)
    rng = np.random.default_rng(order)
    for dec in (89.9999, 89.5, np.degrees(np.arcsin(2 / 3)), 30.0, 0.001, -89.99):
        ra = rng.uniform(0.0, 360.0, 8)
        cells = healpy.ang2pix(2**order, ra, np.full(8, dec), nest=True, lonlat=True).astype(np.int64)
        for cell, step in zip(cells, hc._edge_steps(cells, order, tolerance), strict=True):
            loop = hc._cell_loops(np.array([cell]), order, int(step))[0]
            fine = hc._cell_loops(np.array([cell]), order, 16 * int(step))[0]  # points 16j..16j+15: chord j
            start, end = np.repeat(loop, 16, axis=0), np.repeat(np.roll(loop, -1, axis=0), 16, axis=0)
            assert hc._arc_distance(fine, start, end).max() < tolerance, (dec, cell, step)
