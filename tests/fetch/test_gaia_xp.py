"""XP fetchers, offline: the real XP rows (tests/data/gaia_xp_continuous) and the real datalink bundle served by a
loopback emulation of the Gaia archive's datalink (POST /data-server/data), TAP/UWS (/tap-server/tap/async) and
bulk-file CDN; astroquery's own GaiaClass talks to it. The APOGEE allStar reader runs on a small FITS table
built here with the DR17 column names."""

from __future__ import annotations

import gzip
import json
import re
import socket

import numpy as np
import pyarrow.parquet as pq
import pytest
from gaia_xp_archive import (
    BRIGHT,
    BULK,
    DATA,
    DATALINK_ID,
    FAINT,
    NO_BP,
    TAP_ASYNC,
    UNKNOWN,
    ArchiveEmulator,
    archive_csv_rows,
    gaia_client,
    write_allstar,
)
from loopback_http import LoopbackServer, Response, apache_index, block_external_network

from latentsky.fetch.gaia_xp import (
    XP_BULK_URL,
    fetch_apogee_allstar,
    fetch_g_flux,
    fetch_random_xp_source_ids,
    fetch_xp_bulk_partition,
    fetch_xp_datalink,
    list_xp_bulk_files,
    random_xp_ids_adql,
    read_apogee_allstar,
    select_xp_bulk_files,
    xp_bulk_file_urls,
)
from latentsky.fetch.http import FetchError
from latentsky.io.gaia_xp import FLAGS, G_ZERO_POINT, flag_names, read_xp_continuous
from latentsky.io.healpix import source_id_range
from latentsky.provenance.files import read_provenance
from latentsky.provenance.record import build_record


@pytest.fixture(autouse=True)
def offline():
    with block_external_network():
        yield


@pytest.fixture
def server():
    with LoopbackServer() as s:
        yield s


@pytest.fixture
def record():
    return build_record(rule="fetch_xp", params={"chunk_size": 2}, config={"seed": 0}, seed=0)


@pytest.fixture(scope="module")
def xp_csv(real_data):
    return archive_csv_rows(real_data)


@pytest.fixture
def datalink_zip(real_data):
    return (
        real_data / "gaia_archive_responses" / "gaia_dr3_source_id_5937083312263887616_dl_products_csv.zip"
    ).read_bytes()


def test_datalink_fetch_chunks_reconciles_and_joins_g_flux(
    server, xp_csv, datalink_zip, real_data, record, tmp_path, monkeypatch
):
    archive = ArchiveEmulator(server, xp_csv, datalink_zip)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    out = tmp_path / "xp" / "apogee_xp.parquet"
    request = [FAINT, UNKNOWN, BRIGHT, NO_BP, FAINT]  # a repeat, fetched once
    result = fetch_xp_datalink(request, out, gaia=gaia_client(server), chunk_size=2, provenance=record)

    # Chunks of ≤ chunk_size ids, one datalink request and one TAP job each.
    assert [f["ID"] for f in archive.datalink_forms] == [f"{FAINT},{UNKNOWN}", f"{BRIGHT},{NO_BP}"]
    for form in archive.datalink_forms:
        assert form["RETRIEVAL_TYPE"] == "XP_CONTINUOUS" and form["DATA_STRUCTURE"] == "RAW"
        assert form["FORMAT"] == "csv" and form["RELEASE"] == "Gaia DR3"
    assert sorted(archive.queries.values()) == [
        f"SELECT source_id, phot_g_mean_flux, phot_g_mean_mag FROM gaiadr3.gaia_source WHERE source_id IN ({a}, {b})"
        for a, b in sorted([(BRIGHT, NO_BP), (FAINT, UNKNOWN)])
    ]
    assert server.count("POST", DATA) == 2 and server.count("POST", TAP_ASYNC) == 2
    assert result.n_chunks == 2 and result.n_requested == 4 and result.n_returned == 3
    assert result.missing_source_ids == (UNKNOWN,) and result.n_g_flux == 3

    table = read_xp_continuous(out, with_correlations=True)
    assert table.source_id.tolist() == [FAINT, UNKNOWN, BRIGHT, NO_BP]
    reference = read_xp_continuous(
        real_data / "gaia_xp_continuous" / "XP_CONTINUOUS_RAW_with_missing_BP.csv", with_correlations=True
    )
    rows = [list(reference.source_id).index(s) for s in (FAINT, BRIGHT, NO_BP)]
    np.testing.assert_array_equal(table.coefficients[[0, 2, 3]], reference.coefficients[rows])
    np.testing.assert_array_equal(table.errors[[0, 2, 3]], reference.errors[rows])
    np.testing.assert_allclose(table.correlations[[0, 2, 3]], reference.correlations[rows], atol=6e-8)
    np.testing.assert_array_equal(table.standard_deviation[[0, 2, 3]], reference.standard_deviation[rows])

    # The id the archive did not return is a row of its own, flagged, not dropped.
    assert flag_names(table.flags[1]) == [
        "missing_bp",
        "missing_rp",
        "missing_g_flux",
        "missing_from_archive",
    ]
    assert np.isnan(table.coefficients[1]).all() and np.isnan(table.correlations[1]).all()
    # G: the flux where gaia_source has it, else from the magnitude.
    assert table.g_flux[2] == 1.25e6 and table.g_flux_source[2] == "phot_g_mean_flux"
    assert flag_names(table.flags[2]) == []
    assert flag_names(table.flags[3]) == ["missing_bp"] and table.g_flux[3] == 410.0
    assert flag_names(table.flags[0]) == ["g_flux_from_mag"]
    assert table.g_flux[0] == pytest.approx(
        10 ** (-0.4 * (float(np.float32(14.1)) - G_ZERO_POINT)), rel=1e-12
    )

    assert read_provenance(out) == json.loads(json.dumps(record))
    fetch = json.loads(pq.read_schema(out).metadata[b"latentsky.fetch"])
    assert fetch["service"] == server.url + DATA and fetch["n_requested"] == 4
    assert sorted(p.name for p in out.parent.iterdir()) == [out.name]  # no scratch or temporary left
    assert list(cwd.iterdir()) == []  # astroquery's temporary folders were not made in the caller's directory


def test_the_real_datalink_bundle_and_no_g_join(server, xp_csv, datalink_zip, real_data, record, tmp_path):
    ArchiveEmulator(server, xp_csv, datalink_zip)
    out = tmp_path / "one.parquet"
    result = fetch_xp_datalink(
        [DATALINK_ID], out, gaia=gaia_client(server), with_g_flux=False, provenance=record
    )
    assert result.n_returned == 1 and server.count("POST", TAP_ASYNC) == 0
    table = read_xp_continuous(out, with_correlations=True)
    direct = read_xp_continuous(
        real_data / "gaia_archive_responses" / "gaia_dr3_source_id_5937083312263887616_dl_products_csv.zip",
        with_correlations=True,
    )
    assert table.source_id.tolist() == [DATALINK_ID]
    np.testing.assert_array_equal(table.coefficients, direct.coefficients)
    assert flag_names(table.flags[0]) == ["missing_g_flux"]


def test_a_chunk_with_no_spectra_at_all(server, xp_csv, datalink_zip, record, tmp_path):
    ArchiveEmulator(server, xp_csv, datalink_zip)
    out = tmp_path / "none.parquet"
    result = fetch_xp_datalink([UNKNOWN, 43], out, gaia=gaia_client(server), provenance=record)
    assert result.missing_source_ids == (UNKNOWN, 43) and result.n_g_flux == 0
    table = read_xp_continuous(out)
    assert (table.flags & FLAGS["missing_from_archive"]).all() and table.source_id.tolist() == [UNKNOWN, 43]


def test_datalink_failures_name_the_url_and_write_nothing(server, xp_csv, datalink_zip, record, tmp_path):
    server.route("POST", DATA, Response(status=500, body=b"Internal error: too many ids"))
    out = tmp_path / "xp.parquet"
    with pytest.raises(
        FetchError,
        match=rf"^{re.escape(server.url + DATA)}: XP_CONTINUOUS datalink request for "
        r"chunk 1 of 1 \(2 ids from 5853498713190525696\) failed \(HTTPError: .*500",
    ):
        fetch_xp_datalink([BRIGHT, FAINT], out, gaia=gaia_client(server), provenance=record)
    assert list(tmp_path.iterdir()) == []

    ArchiveEmulator(server, xp_csv, datalink_zip, extra_id=NO_BP)
    with pytest.raises(
        FetchError,
        match=rf"{re.escape(server.url + DATA)}: the archive returned 1 source_id\(s\) "
        rf"that were not requested, e.g. {NO_BP}",
    ):
        fetch_xp_datalink([BRIGHT], out, gaia=gaia_client(server), provenance=record)

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    from astroquery.gaia import GaiaClass

    dead = GaiaClass(
        gaia_tap_server=f"http://127.0.0.1:{port}/",
        gaia_data_server=f"http://127.0.0.1:{port}/",
        show_server_messages=False,
    )
    with pytest.raises(
        FetchError, match=rf"^http://127.0.0.1:{port}/data-server/data: .*ConnectionRefusedError"
    ):
        fetch_xp_datalink([BRIGHT], out, gaia=dead, provenance=record)
    assert not out.exists()


def test_datalink_arguments_are_checked(record, tmp_path):
    with pytest.raises(ValueError, match="between 1 and 5000"):
        fetch_xp_datalink([1, 2], tmp_path / "x.parquet", gaia=object(), chunk_size=5001, provenance=record)
    with pytest.raises(ValueError, match="provenance"):
        fetch_xp_datalink([1], tmp_path / "x.parquet", gaia=object())
    with pytest.raises(ValueError, match="ecsv"):
        fetch_xp_datalink([1], tmp_path / "x.parquet", gaia=object(), data_format="ecsv", provenance=record)
    with pytest.raises(ValueError, match=r"\.parquet"):
        fetch_xp_datalink([1], tmp_path / "x.csv", gaia=object(), provenance=record)


def test_fetch_g_flux_chunks_and_reconciles(server, xp_csv, datalink_zip):
    archive = ArchiveEmulator(server, xp_csv, datalink_zip)
    frame = fetch_g_flux([NO_BP, UNKNOWN, BRIGHT], gaia=gaia_client(server), chunk_size=2)
    assert len(archive.queries) == 2
    assert frame["source_id"].tolist() == [NO_BP, UNKNOWN, BRIGHT]
    assert frame["found"].tolist() == [True, False, True]
    assert frame["phot_g_mean_flux"].iloc[2] == 1.25e6 and np.isnan(frame["phot_g_mean_flux"].iloc[1])
    assert frame["phot_g_mean_mag"].iloc[0] == pytest.approx(19.16, rel=1e-6)


def test_failed_g_flux_job_names_the_tap_service(server):
    server.route("POST", TAP_ASYNC, Response(status=303, headers={"Location": f"{server.url}{TAP_ASYNC}/1X"}))
    server.route("GET", f"{TAP_ASYNC}/1X/phase", Response(body=b"ERROR"))
    server.route("GET", f"{TAP_ASYNC}/1X/error", Response(body=b"Error in query: table not found"))
    with pytest.raises(
        FetchError, match=rf"TAP service {re.escape(server.url)}/tap-server/tap.*ERROR.*table not found"
    ):
        fetch_g_flux([BRIGHT], gaia=gaia_client(server))


# ------------------------------------------------------------------------------------------------ bulk
def test_bulk_file_urls_are_level8_healpix_ranges():
    assert xp_bulk_file_urls([(0, 3111), (614517, 614573)]) == [
        XP_BULK_URL + "XpContinuousMeanSpectrum_000000-003111.csv.gz",
        XP_BULK_URL + "XpContinuousMeanSpectrum_614517-614573.csv.gz",
    ]
    assert (
        xp_bulk_file_urls([(7, 7)], base_url="http://h/x")[0]
        == "http://h/x/XpContinuousMeanSpectrum_000007-000007.csv.gz"
    )
    with pytest.raises(ValueError, match="786431"):
        xp_bulk_file_urls([(5, 786432)])
    with pytest.raises(ValueError, match="lo ≤ hi"):
        xp_bulk_file_urls([(9, 8)])


@pytest.fixture
def bulk(server, real_data, tmp_path):
    """Three XpContinuousMeanSpectrum_<hp8lo>-<hp8hi>.csv.gz files (ECSV header, the real rows) and an index."""
    lines = (
        (real_data / "gaia_xp_continuous" / "XP_CONTINUOUS_RAW_with_missing_BP.ecsv")
        .read_bytes()
        .splitlines(keepends=True)
    )
    cut = next(i for i, line in enumerate(lines) if not line.startswith(b"#")) + 1
    header, rows = b"".join(lines[:cut]), {int(r.split(b",", 1)[0]): r for r in lines[cut:]}
    ranges = {NO_BP: (614517, 614573), FAINT: (614574, 660000), BRIGHT: (660001, 786431)}
    directory = tmp_path / "cdn"
    directory.mkdir()
    names = []
    for sid, (lo, hi) in ranges.items():
        name = f"XpContinuousMeanSpectrum_{lo:06d}-{hi:06d}.csv.gz"
        body = rows[sid] if rows[sid].endswith(b"\n") else rows[sid] + b"\n"
        (directory / name).write_bytes(gzip.compress(header + body, mtime=0))
        names.append(name)
    server.route("GET", BULK + "/", Response(body=apache_index(BULK + "/", [*names, "_MD5SUM.txt.bak"])))
    server.serve_directory(BULK, directory)
    return {"url": server.url + BULK + "/", "names": names, "header": header, "rows": rows}


def test_bulk_index_and_partition_selection(bulk):
    files = list_xp_bulk_files(bulk["url"], backoff_s=0)
    assert [f.name for f in files] == bulk["names"]
    # Level-8 pixel 614517 starts at source_id 614517 · 4**4 · 2**35.
    assert files[0].first_source_id == 614517 * 4**4 * 2**35
    assert files[0].last_source_id == 614574 * 4**4 * 2**35 - 1
    pixel = FAINT // 2**35 // 4**8  # order 4
    assert [f.name for f in select_xp_bulk_files(files, pixel, 4)] == [bulk["names"][1]]


def test_bulk_partition_to_parquet_and_csv(server, bulk, real_data, record, tmp_path):
    pixel = FAINT // 2**35 // 4**8
    lo, hi = source_id_range(pixel, 4)
    assert lo <= FAINT <= hi
    out = tmp_path / "out" / f"xp_order4_pixel{pixel}.parquet"
    result = fetch_xp_bulk_partition(pixel, 4, out, base_url=bulk["url"], progress=False, provenance=record)
    assert result.n_rows == 1 and result.files == (bulk["url"] + bulk["names"][1],)
    assert [server.count("GET", f"{BULK}/{n}") for n in bulk["names"]] == [0, 1, 0]
    table = read_xp_continuous(out, with_correlations=True)
    reference = read_xp_continuous(
        real_data / "gaia_xp_continuous" / "XP_CONTINUOUS_RAW_with_missing_BP.ecsv", with_correlations=True
    )
    (row,) = np.flatnonzero(reference.source_id == FAINT)
    assert table.source_id.tolist() == [FAINT]
    np.testing.assert_array_equal(table.coefficients[0], reference.coefficients[row])
    np.testing.assert_allclose(table.correlations[0], reference.correlations[row], atol=6e-8)
    assert read_provenance(out) == json.loads(json.dumps(record))
    assert json.loads(pq.read_schema(out).metadata[b"latentsky.fetch"])["files"] == list(result.files)
    assert sorted(p.name for p in out.parent.iterdir()) == [out.name]

    csv_out = tmp_path / "p.csv.gz"
    fetch_xp_bulk_partition(pixel, 4, csv_out, base_url=bulk["url"], progress=False)
    assert gzip.decompress(csv_out.read_bytes()) == bulk["header"] + bulk["rows"][FAINT]
    with pytest.raises(ValueError, match="provenance"):
        fetch_xp_bulk_partition(pixel, 4, tmp_path / "x.parquet", base_url=bulk["url"], progress=False)


def test_bulk_missing_file_names_the_url(server, bulk, record, tmp_path):
    name = bulk["names"][1]
    server.route("GET", f"{BULK}/{name}", Response(status=404, body=b"gone"))
    with pytest.raises(FetchError, match=rf"{re.escape(bulk['url'] + name)}: HTTP 404"):
        fetch_xp_bulk_partition(
            FAINT // 2**35 // 4**8,
            4,
            tmp_path / "p.parquet",
            base_url=bulk["url"],
            progress=False,
            provenance=record,
            backoff_s=0,
        )
    server.route("GET", "/empty/", Response(body=b"<a href='GaiaSource_000000-003111.csv.gz'>x</a>"))
    with pytest.raises(FetchError, match=r"/empty/: the directory index lists no XpContinuousMeanSpectrum_"):
        list_xp_bulk_files(server.url + "/empty/")


# ---------------------------------------------------------------------------------------------- APOGEE
def test_read_apogee_allstar_flags_duplicates_and_missing_gaia_ids(tmp_path):
    star = (4650.0, 80.0, 2.4, 0.05, -0.21, 0.01, 0.08, 0.03, 0, 0)
    rows = [
        ("2M00000002+7417074", "apo25m", "120+12", BRIGHT, *star, 143.0),
        ("2M00000002+7417074", "lco25m", "120+12S", BRIGHT, *star, 310.5),
        ("2M00000019-1924498", "apo25m", "060-75", -1, *star, 95.0),
        ("2M00000032+5737103", "apo25m", "N7789", FAINT, *star, 50.0),
        ("2M00000032+5737103", "apo1m", "calibration", FAINT, *star, 50.0),
    ]
    path = tmp_path / "allStarLite-dr17-synspec_rev1.fits"
    write_allstar(path, rows)
    frame = read_apogee_allstar(path)
    assert len(frame) == 5  # nothing dropped
    assert (
        frame["APOGEE_ID"].tolist()[0] == "2M00000002+7417074" and frame["TELESCOPE"].tolist()[1] == "lco25m"
    )
    # The higher-SNR row of a star is kept unflagged; on a tie, the first.
    assert frame["duplicate"].tolist() == [True, False, False, False, True]
    assert frame["no_gaia_id"].tolist() == [False, False, True, False, False]
    assert frame["GAIAEDR3_SOURCE_ID"].dtype == np.int64 and frame["GAIAEDR3_SOURCE_ID"].iloc[0] == BRIGHT
    assert frame["TEFF"].iloc[2] == pytest.approx(4650.0) and frame["SNR"].iloc[1] == pytest.approx(310.5)
    assert frame["SNR"].dtype.byteorder in ("=", "|", "<")

    cut = tmp_path / "cut.fits"
    write_allstar(cut, rows, drop=("M_H_ERR", "SFD_EBV"))
    with pytest.raises(ValueError, match=r"^cut.fits: missing column\(s\) M_H_ERR, SFD_EBV"):
        read_apogee_allstar(cut)


def test_fetch_apogee_allstar_checks_what_it_downloaded(server, tmp_path):
    star = (4650.0, 80.0, 2.4, 0.05, -0.21, 0.01, 0.08, 0.03, 0, 0)
    source = tmp_path / "served.fits"
    write_allstar(source, [("2M00000002+7417074", "apo25m", "120+12", BRIGHT, *star, 143.0)])
    server.route("GET", "/sas/allStarLite.fits", Response(body=source.read_bytes()))
    out = fetch_apogee_allstar(tmp_path / "got" / "allStarLite.fits", server.url + "/sas/allStarLite.fits")
    assert out.read_bytes() == source.read_bytes()
    assert read_apogee_allstar(out)["GAIAEDR3_SOURCE_ID"].tolist() == [BRIGHT]
    # An HTML error page served with status 200 is not an allStar table: nothing lands.
    server.route("GET", "/sas/moved.fits", Response(body=b"<html>This file has moved</html>"))
    bad = tmp_path / "got" / "moved.fits"
    with pytest.raises(FetchError, match=rf"^{re.escape(server.url)}/sas/moved.fits: 32 bytes that are not"):
        fetch_apogee_allstar(bad, server.url + "/sas/moved.fits", retries=0, backoff_s=0)
    assert sorted(p.name for p in bad.parent.iterdir()) == ["allStarLite.fits"]


def test_random_xp_source_ids_by_random_index(server, xp_csv, datalink_zip, tmp_path):
    assert random_xp_ids_adql(3) == (
        "SELECT TOP 3 source_id FROM gaiadr3.gaia_source WHERE has_xp_continuous = 'True' ORDER BY random_index"
    )
    with pytest.raises(ValueError, match="valid ADQL table"):
        random_xp_ids_adql(3, table="gaia_source; DROP")
    ArchiveEmulator(server, xp_csv, datalink_zip, random_ids=(FAINT, NO_BP, BRIGHT))
    answer = tmp_path / "random.vot"
    ids = fetch_random_xp_source_ids(2, answer, gaia=gaia_client(server))
    assert ids.tolist() == [FAINT, NO_BP] and answer.exists()
    # Fewer ids than asked for (a small table) come back as they are.
    assert fetch_random_xp_source_ids(5, tmp_path / "r5.vot", gaia=gaia_client(server)).tolist() == [
        FAINT,
        NO_BP,
        BRIGHT,
    ]
