"""HATS catalogs from independently written HEALPix partitions, read back with hats and lsdb."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import hats
import lsdb
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from hats.io.validation import is_valid_catalog
from hats.pixel_math import HealpixPixel

from latentsky.io import hats as hc
from latentsky.io.healpix import radec_to_healpix
from latentsky.provenance.files import read_parquet_provenance, read_provenance
from latentsky.provenance.record import build_record

ORDER = 1
N_STARS = 3000
#: An order-1 pixel left without stars, to exercise empty-partition handling.
EMPTY_PIXEL = 7


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


def _angular_sep_deg(ra1, dec1, ra2, dec2):
    ra1, dec1, ra2, dec2 = map(np.radians, (ra1, dec1, ra2, dec2))
    # Haversine: accurate at the small and moderate separations tested here.
    h = np.sin((dec2 - dec1) / 2) ** 2 + np.cos(dec1) * np.cos(dec2) * np.sin((ra2 - ra1) / 2) ** 2
    return np.degrees(2 * np.arcsin(np.sqrt(h)))


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """One catalog, written the way the workflow does: one write_partition per pixel, then finalize."""
    stars = _stars(N_STARS, seed=20240611)
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
    }


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
