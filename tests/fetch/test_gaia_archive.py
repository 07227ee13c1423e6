"""Gaia fetchers, offline: recorded archive answers and real DR2 rows served over a loopback HTTP server.

TAP: astroquery's own GaiaClass runs its asynchronous-job flow against a minimal UWS/TAP emulation
(POST .../async → 303 to the job; GET .../phase; GET .../results/result), which answers with the archive's
recorded VOTable/ECSV. Bulk: GaiaSource_<first>_<last>.csv.gz files are built from the real Hyades rows
and listed in an HTML index, as on the archive's CDN.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import socket

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from loopback_http import LoopbackServer, RecordedRequest, Response, block_external_network

from latentsky.fetch import (
    FetchError,
    fetch_bulk_partition,
    fetch_partition_tap,
    list_bulk_files,
    partition_adql,
    select_bulk_files,
)
from latentsky.io.gaia import read_gaia_table
from latentsky.io.gaia_columns import CANONICAL_COLUMNS, DR2_COLUMNS
from latentsky.io.healpix import source_id_range
from latentsky.provenance.files import read_provenance
from latentsky.provenance.record import build_record

VOT_SOURCE_IDS = [4583627001381815936, 5348723816842275584]
# Order 3, pixel 5: width 4**9 * 2**35 = 2**53 source_ids, so [5 * 2**53, 6 * 2**53 - 1].
ORDER3_PIXEL5 = (45035996273704960, 54043195528445951)
TAP_ASYNC = "/tap-server/tap/async"
BULK_PREFIX = "/Gaia/gdr2/gaia_source/csv"


@pytest.fixture(autouse=True)
def offline():
    """Every test here fails if anything tries to reach a host other than 127.0.0.1."""
    with block_external_network():
        yield


@pytest.fixture
def server():
    with LoopbackServer() as s:
        yield s


@pytest.fixture(scope="module")
def responses(real_data):
    return real_data / "gaia_archive_responses"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_network_guard_blocks_external_hosts():
    with pytest.raises(OSError, match="offline"):
        socket.create_connection(("gea.esac.esa.int", 443), timeout=1)
    with pytest.raises(OSError, match="offline"):
        socket.create_connection(("192.0.2.1", 80), timeout=1)


# ------------------------------------------------------------------------------------------------- TAP
class TapEmulator:
    """The part of the Gaia archive's TAP/UWS interface that astroquery's async job flow uses."""

    def __init__(self, server: LoopbackServer, result: bytes, content_type: str, *, final_phase="COMPLETED"):
        self.server = server
        self.final_phase = final_phase
        self.forms: list[dict[str, str]] = []
        self.phase_polls = 0
        job = TAP_ASYNC + r"/(?P<job>[^/]+)"
        server.route("POST", TAP_ASYNC, self._create)
        server.route("GET", re.compile(job + "/phase"), self._phase)
        server.route(
            "GET",
            re.compile(job + "/results/result"),
            Response(body=result, headers={"Content-Type": content_type}),
        )
        server.route(
            "GET",
            re.compile(job + "/error"),
            Response(body=b"Error in query: Column 'foo' not found", headers={"Content-Type": "text/plain"}),
        )

    def _create(self, request: RecordedRequest) -> Response:
        self.forms.append(request.form())
        location = f"{self.server.url}{TAP_ASYNC}/{1710099405832 + len(self.forms)}LSKY"
        return Response(status=303, headers={"Location": location})

    def _phase(self, request: RecordedRequest) -> Response:
        # One poll while "executing", then the final phase: astroquery must wait for the job to end.
        self.phase_polls += 1
        return Response(body=b"EXECUTING" if self.phase_polls == 1 else self.final_phase.encode())


def _gaia(server: LoopbackServer):
    # Importing astroquery.gaia builds its module-level GaiaClass, which asks the real archive for status
    # messages; under block_external_network that request fails at once (and astroquery ignores it).
    from astroquery.gaia import GaiaClass

    return GaiaClass(
        gaia_tap_server=server.url + "/", gaia_data_server=server.url + "/", show_server_messages=False
    )


def test_partition_adql_has_exact_between_bounds():
    q = partition_adql(5, 3)
    assert q == (
        f"SELECT {', '.join(DR2_COLUMNS)} FROM gaiadr2.gaia_source "
        f"WHERE source_id BETWEEN {ORDER3_PIXEL5[0]} AND {ORDER3_PIXEL5[1]}"
    )
    assert partition_adql(0, 0, columns=["*"]).endswith("WHERE source_id BETWEEN 0 AND 576460752303423487")
    # Order 12 is one level-12 pixel: source_ids [p * 2**35, (p + 1) * 2**35 - 1].
    assert partition_adql(1, 12, columns=["source_id"]) == (
        "SELECT source_id FROM gaiadr2.gaia_source WHERE source_id BETWEEN 34359738368 AND 68719476735"
    )
    assert "ruwe" in partition_adql(5, 3, table="gaiadr3.gaia_source")
    assert "ruwe" not in partition_adql(5, 3)
    with pytest.raises(ValueError, match="column"):
        partition_adql(5, 3, columns=["parallax; DROP TABLE x"])
    with pytest.raises(ValueError, match="table"):
        partition_adql(5, 3, table="gaiadr2.gaia_source WHERE 1=1")
    with pytest.raises(ValueError, match="pixel"):
        partition_adql(768, 3)


def test_fetch_partition_tap_writes_the_archive_votable(server, responses, tmp_path):
    recorded = (responses / "1710099405832VAL-result.vot").read_bytes()
    tap = TapEmulator(server, recorded, "application/x-votable+xml")
    out = tmp_path / "gaia" / "order3_pixel5.vot"
    result = fetch_partition_tap(5, 3, out, gaia=_gaia(server))

    assert out.read_bytes() == recorded  # the archive's own bytes
    frame = read_gaia_table(out)
    assert frame["source_id"].tolist() == VOT_SOURCE_IDS
    assert result.n_rows == 2 and result.path == out and result.output_format == "votable"
    assert result.job_id == "1710099405833LSKY"

    (form,) = tap.forms
    assert f"WHERE source_id BETWEEN {ORDER3_PIXEL5[0]} AND {ORDER3_PIXEL5[1]}" in form["QUERY"]
    assert form["QUERY"] == result.query == partition_adql(5, 3)
    assert form["LANG"] == "ADQL" and form["REQUEST"] == "doQuery" and form["FORMAT"] == "votable"
    assert form["PHASE"] == "RUN"
    assert tap.phase_polls >= 2
    assert server.count("GET", re.compile(TAP_ASYNC + "/.*/results/result")) == 1
    assert sorted(p.name for p in out.parent.iterdir()) == [out.name]  # no temporary left behind


def test_fetch_partition_tap_ecsv_dr3(server, responses, tmp_path):
    recorded = (responses / "1712337806100O-result.ecsv").read_bytes()
    tap = TapEmulator(server, recorded, "text/plain")
    out = tmp_path / "order3_pixel5.ecsv"
    result = fetch_partition_tap(5, 3, out, table="gaiadr3.gaia_source", gaia=_gaia(server))
    assert out.read_bytes() == recorded
    assert tap.forms[0]["FORMAT"] == "ecsv"
    assert "ruwe" in tap.forms[0]["QUERY"] and "FROM gaiadr3.gaia_source" in tap.forms[0]["QUERY"]
    assert result.n_rows == 5
    assert read_gaia_table(out).attrs["ruwe_method"] == "column"


def test_failed_tap_job_names_the_service_and_writes_nothing(server, responses, tmp_path):
    tap = TapEmulator(server, b"", "text/plain", final_phase="ERROR")
    out = tmp_path / "part.vot"
    with pytest.raises(
        FetchError, match=rf"{re.escape(server.url)}/tap-server/tap/.*ERROR.*Column 'foo' not found"
    ):
        fetch_partition_tap(5, 3, out, gaia=_gaia(server))
    assert tap.forms and not out.exists()
    assert server.count("GET", re.compile(TAP_ASYNC + "/.*/results/result")) == 0
    assert list(tmp_path.iterdir()) == []


def test_overflowed_tap_result_is_refused(server, responses, tmp_path):
    text = (responses / "1710099405832VAL-result.vot").read_text()
    overflow = text.replace(
        '<INFO name="QUERY_STATUS" value="OK"/>', '<INFO name="QUERY_STATUS" value="OVERFLOW"/>'
    )
    TapEmulator(server, overflow.encode(), "application/x-votable+xml")
    out = tmp_path / "part.vot"
    with pytest.raises(FetchError, match="OVERFLOW"):
        fetch_partition_tap(5, 3, out, gaia=_gaia(server))
    assert not out.exists()


def test_unreachable_tap_service_names_it(tmp_path):
    from astroquery.gaia import GaiaClass

    port = _closed_port()
    gaia = GaiaClass(
        gaia_tap_server=f"http://127.0.0.1:{port}/",
        gaia_data_server=f"http://127.0.0.1:{port}/",
        show_server_messages=False,
    )
    with pytest.raises(
        FetchError, match=rf"http://127.0.0.1:{port}/tap-server/tap/.*could not run the query"
    ):
        fetch_partition_tap(5, 3, tmp_path / "part.vot", gaia=gaia)
    assert not (tmp_path / "part.vot").exists()


def test_tap_output_format_must_match_suffix(tmp_path):
    with pytest.raises(ValueError, match="suffix selects ecsv"):
        fetch_partition_tap(5, 3, tmp_path / "x.ecsv", output_format="votable", gaia=object())
    with pytest.raises(ValueError, match="cannot write parquet"):
        fetch_partition_tap(5, 3, tmp_path / "x.parquet", gaia=object())


# ------------------------------------------------------------------------------------------ bulk files
def _sid(line: bytes) -> int:
    return int(line.split(b",")[2])  # hyades.csv: input_position, distance, source_id, ...


@pytest.fixture
def bulk(tmp_path, real_data, server):
    """Three GaiaSource_<first>_<last>.csv.gz files of the real Hyades rows, split by source_id, served
    with an HTML index like the archive's CDN directory listing."""
    lines = (real_data / "gaia_dr2_clusters" / "hyades.csv").read_bytes().splitlines(keepends=True)
    header, rows = lines[0], sorted(lines[1:], key=_sid)
    directory = tmp_path / "cdn"
    directory.mkdir()
    names = []
    for chunk in np.array_split(np.arange(len(rows)), 3):
        part = [rows[i] for i in chunk]
        name = f"GaiaSource_{_sid(part[0])}_{_sid(part[-1])}.csv.gz"
        (directory / name).write_bytes(gzip.compress(header + b"".join(part), mtime=0))
        names.append(name)
    links = "\n".join(f'<a href="{n}">{n}</a>  12-Apr-2018 10:00  1.2M' for n in names)
    index = (
        f"<html><body><h1>Index of {BULK_PREFIX}</h1>"
        f'<pre><a href="../">../</a>\n{links}\n</pre></body></html>'
    )
    server.route(
        "GET", BULK_PREFIX + "/", Response(body=index.encode(), headers={"Content-Type": "text/html"})
    )
    server.serve_directory(BULK_PREFIX, directory)
    return {
        "url": server.url + BULK_PREFIX + "/",
        "dir": directory,
        "names": names,
        "header": header,
        "rows": rows,
        "index": index,
    }


def _expected(bulk, pixel, order):
    lo, hi = source_id_range(pixel, order)
    return [r for r in bulk["rows"] if lo <= _sid(r) <= hi]


def test_bulk_partition_keeps_exactly_its_rows_and_skips_other_files(server, bulk, tmp_path):
    # Order 1, pixel 1 spans source_ids [2**57, 2**58 - 1]: the end of file 0, the start of file 1;
    # file 2 starts at 3.3e18 and must not be downloaded.
    out = tmp_path / "out" / "order1_pixel1.csv.gz"
    result = fetch_bulk_partition(1, 1, out, base_url=bulk["url"], progress=False, backoff_s=0)
    expected = _expected(bulk, 1, 1)
    assert len(expected) == 69
    assert result.n_rows == 69
    # Byte for byte: the archive's header, then its rows unchanged.
    assert gzip.decompress(out.read_bytes()) == bulk["header"] + b"".join(expected)
    frame = read_gaia_table(out)
    assert frame["source_id"].tolist() == [_sid(r) for r in expected]
    lo, hi = source_id_range(1, 1)
    assert frame["source_id"].between(lo, hi).all()

    first, second, third = bulk["names"]
    assert server.count("GET", f"{BULK_PREFIX}/{first}") == 1
    assert server.count("GET", f"{BULK_PREFIX}/{second}") == 1
    assert server.count("GET", f"{BULK_PREFIX}/{third}") == 0
    assert server.count("GET", BULK_PREFIX + "/") == 1
    assert result.files == (bulk["url"] + first, bulk["url"] + second)
    assert sorted(p.name for p in out.parent.iterdir()) == [out.name]  # downloads cleaned up


def test_content_encoding_is_undone_for_the_index_but_not_for_gz_files(server, bulk, tmp_path):
    # Web servers may gzip an HTML page on the fly, and some label .gz files "Content-Encoding: gzip";
    # the index must be decoded, the data file stored as sent (it is meant to be gzip).
    server.route(
        "GET",
        BULK_PREFIX + "/",
        Response(body=gzip.compress(bulk["index"].encode()), headers={"Content-Encoding": "gzip"}),
    )
    first = bulk["names"][0]
    server.route(
        "GET",
        f"{BULK_PREFIX}/{first}",
        Response(body=(bulk["dir"] / first).read_bytes(), headers={"Content-Encoding": "gzip"}),
    )
    result = fetch_bulk_partition(0, 1, tmp_path / "p.csv.gz", base_url=bulk["url"], progress=False)
    assert result.n_rows == 109


def test_bulk_partition_within_one_file(server, bulk, tmp_path):
    out = tmp_path / "order1_pixel0.csv.gz"
    result = fetch_bulk_partition(0, 1, out, base_url=bulk["url"], progress=False)
    assert result.n_rows == len(_expected(bulk, 0, 1)) == 109
    assert [server.count("GET", f"{BULK_PREFIX}/{n}") for n in bulk["names"]] == [1, 0, 0]
    # The same rows give the same bytes (gzip header without time stamp or name).
    again = fetch_bulk_partition(0, 1, tmp_path / "again.csv.gz", base_url=bulk["url"], progress=False)
    assert again.path.read_bytes() == out.read_bytes()


def test_bulk_partition_as_parquet_with_provenance(server, bulk, tmp_path):
    record = build_record(rule="fetch_gaia", params={"pixel": 1, "order": 1}, config={"seed": 0}, seed=0)
    out = tmp_path / "order1_pixel1.parquet"
    result = fetch_bulk_partition(1, 1, out, base_url=bulk["url"], progress=False, provenance=record)
    assert read_provenance(out) == json.loads(json.dumps(record))
    fetch = json.loads(pq.read_schema(out).metadata[b"latentsky.fetch"])
    assert fetch["files"] == list(result.files) and fetch["source_id_range"] == list(source_id_range(1, 1))
    csv_out = fetch_bulk_partition(1, 1, tmp_path / "same.csv.gz", base_url=bulk["url"], progress=False).path
    columns = list(CANONICAL_COLUMNS)
    pd.testing.assert_frame_equal(read_gaia_table(out)[columns], read_gaia_table(csv_out)[columns])
    with pytest.raises(ValueError, match="provenance"):
        fetch_bulk_partition(1, 1, tmp_path / "x.parquet", base_url=bulk["url"], progress=False)


def test_bulk_download_is_verified_against_md5sums(server, bulk, tmp_path):
    sums = "".join(f"{hashlib.md5((bulk['dir'] / n).read_bytes()).hexdigest()}  {n}\n" for n in bulk["names"])
    (bulk["dir"] / "_MD5SUM.txt").write_text(sums)
    index = bulk["index"].replace("</pre>", '<a href="_MD5SUM.txt">_MD5SUM.txt</a>\n</pre>')
    server.route(
        "GET", BULK_PREFIX + "/", Response(body=index.encode(), headers={"Content-Type": "text/html"})
    )
    good = fetch_bulk_partition(1, 1, tmp_path / "good.csv.gz", base_url=bulk["url"], progress=False)
    assert good.md5_verified and good.n_rows == 69

    second = bulk["names"][1]
    corrupt = bytearray((bulk["dir"] / second).read_bytes())
    corrupt[-20] ^= 0xFF
    server.serve_bytes(f"{BULK_PREFIX}/{second}", bytes(corrupt))
    before = server.count("GET", f"{BULK_PREFIX}/{second}")
    out = tmp_path / "bad.csv.gz"
    with pytest.raises(
        FetchError, match=rf"{re.escape(bulk['url'] + second)}: download failed after 3 .*MD5"
    ):
        fetch_bulk_partition(1, 1, out, base_url=bulk["url"], progress=False, retries=2, backoff_s=0)
    assert server.count("GET", f"{BULK_PREFIX}/{second}") - before == 3
    assert not out.exists()


def test_transient_failures_are_retried(server, bulk, tmp_path):
    second = bulk["names"][1]
    body = (bulk["dir"] / second).read_bytes()
    answers = iter([Response(status=503, body=b"busy"), Response(body=body[:1000], content_length=len(body))])

    def flaky(_request: RecordedRequest) -> Response:
        return next(answers, Response(body=body))

    server.route("GET", f"{BULK_PREFIX}/{second}", flaky)
    result = fetch_bulk_partition(
        1, 1, tmp_path / "p.csv.gz", base_url=bulk["url"], progress=False, backoff_s=0
    )
    assert result.n_rows == 69
    assert server.count("GET", f"{BULK_PREFIX}/{second}") == 3  # 503, cut-off body, then the file


def test_missing_file_fails_at_once_naming_the_url(server, bulk, tmp_path):
    second = bulk["names"][1]
    server.route("GET", f"{BULK_PREFIX}/{second}", Response(status=404, body=b"gone"))
    out = tmp_path / "out" / "p.csv.gz"
    with pytest.raises(FetchError, match=rf"{re.escape(bulk['url'] + second)}: HTTP 404"):
        fetch_bulk_partition(1, 1, out, base_url=bulk["url"], progress=False, backoff_s=0)
    assert server.count("GET", f"{BULK_PREFIX}/{second}") == 1
    assert list(out.parent.iterdir()) == []  # neither output nor downloads left behind


def test_unreachable_archive_names_the_url(tmp_path):
    url = f"http://127.0.0.1:{_closed_port()}/Gaia/gdr2/gaia_source/csv/"
    with pytest.raises(
        FetchError, match=rf"{re.escape(url)}: download failed after 2 attempt\(s\): ConnectionError"
    ):
        fetch_bulk_partition(
            1, 1, tmp_path / "p.csv.gz", base_url=url, progress=False, retries=1, backoff_s=0
        )


def test_index_without_bulk_files_and_file_without_source_id(server, bulk, tmp_path):
    server.route("GET", "/empty/", Response(body=b"<html><a href='README'>README</a></html>"))
    with pytest.raises(FetchError, match=r"/empty/: the directory index lists no GaiaSource"):
        list_bulk_files(server.url + "/empty/")
    first = bulk["names"][0]
    server.serve_bytes(f"{BULK_PREFIX}/{first}", gzip.compress(b"ra,dec\n1,2\n"))
    with pytest.raises(
        FetchError, match=rf"{re.escape(first)}: CSV header has no 'source_id' column; found: ra, dec"
    ):
        fetch_bulk_partition(0, 1, tmp_path / "p.csv.gz", base_url=bulk["url"], progress=False)


def test_empty_partitions_keep_the_header(server, bulk, tmp_path):
    first, second, third = bulk["names"]
    # Order 1, pixel 10 (source_ids 1.44e18–1.59e18) lies inside the second file's range, which holds no
    # Hyades star there: the file is read, nothing is kept.
    assert not _expected(bulk, 10, 1)
    out = tmp_path / "inside.csv.gz"
    result = fetch_bulk_partition(10, 1, out, base_url=bulk["url"], progress=False)
    assert result.n_rows == 0 and result.files == (bulk["url"] + second,)
    assert gzip.decompress(out.read_bytes()) == bulk["header"]
    assert len(read_gaia_table(out)) == 0

    # An order-6 pixel in the gap between the first and second files: no file overlaps, and the header
    # is read from the start of the nearest file.
    width = source_id_range(1, 6)[0]
    last_of_first = _sid(bulk["rows"][171])
    pixel = last_of_first // width + 1
    assert source_id_range(pixel, 6)[1] < _sid(bulk["rows"][172])
    gap = fetch_bulk_partition(pixel, 6, tmp_path / "gap.csv.gz", base_url=bulk["url"], progress=False)
    assert gap.n_rows == 0 and gap.files == ()
    assert gzip.decompress(gap.path.read_bytes()) == bulk["header"]


def test_bulk_file_names_of_dr2_and_dr3(server):
    server.route(
        "GET", "/dr2/", Response(body=b'<a href="GaiaSource_12_34.csv.gz">x</a><a href="x.csv">y</a>')
    )
    (dr2,) = list_bulk_files(server.url + "/dr2/")
    assert (dr2.name, dr2.first_source_id, dr2.last_source_id) == ("GaiaSource_12_34.csv.gz", 12, 34)
    assert dr2.url == server.url + "/dr2/GaiaSource_12_34.csv.gz"

    dr3 = ["GaiaSource_003112-005263.csv.gz", "GaiaSource_000000-003111.csv.gz"]
    page = "".join(f'<a href="{n}">{n}</a>' for n in [*dr3, "_MD5SUM.txt", "../"])
    server.route("GET", "/dr3/", Response(body=page.encode()))
    files = list_bulk_files(server.url + "/dr3/")
    assert [f.name for f in files] == sorted(dr3)  # sorted by source_id
    # DR3 names are level-8 HEALPix ranges: pixel 3111 at level 8 ends at (3111 + 1) * 4**4 * 2**35 - 1.
    assert files[0].first_source_id == 0 and files[0].last_source_id == 3112 * 4**4 * 2**35 - 1
    assert files[1].first_source_id == 3112 * 4**4 * 2**35
    assert [f.name for f in select_bulk_files(files, 3112, 8)] == [dr3[0]]
    assert len(select_bulk_files(files, 0, 0)) == 2


def test_bulk_output_suffix_is_checked(tmp_path):
    with pytest.raises(ValueError, match=r"\.csv\.gz or \.parquet"):
        fetch_bulk_partition(0, 1, tmp_path / "p.vot", base_url="http://127.0.0.1:1/")
