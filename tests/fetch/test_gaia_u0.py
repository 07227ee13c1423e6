"""The DR2 RUWE u0 fetcher, offline: a zip in the layout of ESA's DR2_RUWE_V1 served over loopback HTTP."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from esa_u0 import ESA_G, dr2_ruwe_zip, table_u0_g, table_u0_g_col
from loopback_http import LoopbackServer, Response, block_external_network

from latentsky.fetch.gaia_u0 import DR2_RUWE_URL, archive_release, fetch_dr2_u0_tables
from latentsky.fetch.http import FetchError
from latentsky.io.gaia import read_gaia_table
from latentsky.io.gaia_columns import read_u0_table, unit_weight_error

ZIP_PATH = "/documents/29201/1769576/DR2_RUWE_V1.zip"
README = b"Gaia DR2: Re-normalised Unit Weight Error (RUWE) - tables of u0(G,C) and u0(G)\n"


def u0_gc(g, c):
    return 1.0 + 0.02 * (g - 3.6) + 0.05 * c


def u0_g(g):
    return 1.25 + 0.0 * g


@pytest.fixture(autouse=True)
def offline():
    with block_external_network():
        yield


@pytest.fixture(scope="module")
def tables():
    # The full-size 2-D grid of the release (1741 G × 111 colours): the reader sees ESA's real layout.
    return {"table_u0_g_col.txt": table_u0_g_col(u0_gc), "table_u0_g.txt": table_u0_g(u0_g)}


@pytest.fixture
def server():
    with LoopbackServer() as s:
        yield s


def _serve(server, body: bytes) -> str:
    server.route("GET", ZIP_PATH, Response(body=body, headers={"Content-Type": "application/zip"}))
    return server.url + ZIP_PATH


def test_default_url_is_esas_file():
    assert DR2_RUWE_URL == "https://www.cosmos.esa.int/documents/29201/1769576/DR2_RUWE_V1.zip"


def test_extracts_both_tables_byte_for_byte_and_they_give_the_ruwe(server, tables, tmp_path, real_data):
    members = {"readme.txt": README, **tables, "table_u0_2D.txt": b"g_mag,u0g\n3.60,1.25\n"}
    url = _serve(server, dr2_ruwe_zip(members))
    got = fetch_dr2_u0_tables(tmp_path / "u0", url, retries=0)
    assert sorted(p.name for p in (tmp_path / "u0").iterdir()) == ["table_u0_g.txt", "table_u0_g_col.txt"]
    for name, path in got.items():
        assert path.read_bytes() == tables[name]
    table = read_u0_table(tmp_path / "u0")  # the directory stands for both files
    assert table.g_grid.size == 1741 and table.colour_grid.size == 111
    assert (
        table.g_grid[0] == 3.6
        and table.g_grid[-1] == 21.0
        and table.colour_grid[[0, -1]].tolist() == [-1, 10]
    )
    np.testing.assert_array_equal(table.g_only, ESA_G)
    # The Hyades (DR2) with the fetched tables: RUWE = UWE / u0, no row flagged as empirically normalised.
    hyades_path = real_data / "gaia_dr2_clusters" / "hyades.csv"
    hyades = read_gaia_table(hyades_path, u0_table=tmp_path / "u0")
    raw = pd.read_csv(hyades_path)
    uwe = unit_weight_error(
        raw["astrometric_chi2_al"].to_numpy(), raw["astrometric_n_good_obs_al"].to_numpy()
    )
    g, c = raw["phot_g_mean_mag"].to_numpy(), raw["bp_rp"].to_numpy()
    expected = np.where(
        np.isfinite(c), uwe / u0_gc(np.clip(g, 3.6, 21.0), np.clip(c, -1.0, 10.0)), uwe / 1.25
    )
    np.testing.assert_allclose(hyades["ruwe"], expected, rtol=1e-12)
    assert not hyades["ruwe_empirical_u0"].any() and hyades.attrs["ruwe_method"] == "u0_table"
    assert server.count("GET", ZIP_PATH) == 1


def test_tables_at_the_top_level_of_the_zip_are_found_too(server, tables, tmp_path):
    url = _serve(server, dr2_ruwe_zip(tables, folder=""))
    got = fetch_dr2_u0_tables(tmp_path, url, retries=0)
    assert got["table_u0_g.txt"].read_bytes() == tables["table_u0_g.txt"]


def test_an_html_page_is_not_taken_for_the_zip(server, tmp_path):
    url = _serve(server, b"<html><body>Page not found</body></html>")
    with pytest.raises(FetchError, match=r"DR2_RUWE_V1\.zip: not a zip archive .*b'<html>"):
        fetch_dr2_u0_tables(tmp_path, url, retries=0)
    assert list(tmp_path.iterdir()) == []


def test_a_zip_without_the_g_only_table_names_what_is_missing(server, tables, tmp_path):
    url = _serve(
        server, dr2_ruwe_zip({"readme.txt": README, "table_u0_g_col.txt": tables["table_u0_g_col.txt"]})
    )
    with pytest.raises(FetchError, match=r"DR2_RUWE_V1\.zip: the zip lacks table_u0_g\.txt .*readme\.txt"):
        fetch_dr2_u0_tables(tmp_path, url, retries=0)
    assert list(tmp_path.iterdir()) == []


def test_a_corrupt_member_fails_its_crc_and_nothing_is_written(server, tables, tmp_path):
    body = bytearray(dr2_ruwe_zip(tables, stored=True))
    # Stored (uncompressed) members: change one u0 digit inside the 2-D table's data.
    at = body.index(b"\n3.60,-1.0,") + len(b"\n3.60,-1.0,") + 2
    body[at] = ord("9") if body[at] != ord("9") else ord("8")
    url = _serve(server, bytes(body))
    with pytest.raises(FetchError, match=r"zip member DR2_RUWE_V1/table_u0_g_col\.txt is corrupt"):
        fetch_dr2_u0_tables(tmp_path, url, retries=0)
    assert list(tmp_path.iterdir()) == []


def test_a_member_that_is_no_u0_table_is_named_with_its_column(server, tables, tmp_path):
    bad = {**tables, "table_u0_g.txt": b"mag,u0\n3.60,1.2\n"}
    url = _serve(server, dr2_ruwe_zip(bad))
    with pytest.raises(FetchError, match=r"table_u0_g\.txt is not a u0 table: .*'g_mag'.*found mag, u0"):
        fetch_dr2_u0_tables(tmp_path, url, retries=0)
    # Neither table is left behind: the valid 2-D one is only moved into place when both pass.
    assert list(tmp_path.iterdir()) == []
    swapped = {"table_u0_g_col.txt": tables["table_u0_g.txt"], "table_u0_g.txt": tables["table_u0_g.txt"]}
    with pytest.raises(FetchError, match=r"table_u0_g_col\.txt should have the columns g_mag, bp_rp, u0"):
        fetch_dr2_u0_tables(tmp_path, _serve(server, dr2_ruwe_zip(swapped)), retries=0)


def test_a_missing_file_names_its_url(server, tmp_path):
    with pytest.raises(FetchError, match=r"DR2_RUWE_V1\.zip: HTTP 404"):
        fetch_dr2_u0_tables(tmp_path, server.url + ZIP_PATH, retries=0)


def test_archive_release_from_the_table_or_directory_name():
    assert archive_release({"method": "tap", "tap_table": "gaiadr2.gaia_source"}) == "dr2"
    assert archive_release({"method": "tap", "tap_table": "gaiadr3.gaia_source"}) == "dr3"
    assert archive_release({"method": "tap", "tap_table": "gaiaedr3.gaia_source"}) == "dr3"
    assert archive_release({"method": "bulk", "bulk_url": "https://cdn.gea.esac.esa.int/Gaia/gdr2/"}) == "dr2"
    assert archive_release({"method": "bulk", "bulk_url": "https://cdn.gea.esac.esa.int/Gaia/gdr3/"}) == "dr3"
