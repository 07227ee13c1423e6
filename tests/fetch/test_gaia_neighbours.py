"""Gaia DR2 neighbours of OGLE positions, offline: astroquery's GaiaClass against a loopback TAP emulator.

The emulator speaks the part of TAP/UWS that astroquery's asynchronous upload flow uses (multipart POST
.../async with the uploaded VOTable → 303 to the job; GET .../phase; GET .../results/result), and does the
archive's work itself: it parses the uploaded table and answers with the Gaia sources (a small fixed sky,
written as a VOTable with astropy) that lie within the query's radius of each uploaded position. So what is
written depends on what was uploaded, chunk by chunk.
"""

from __future__ import annotations

import io
import re
import socket

import numpy as np
import pandas as pd
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.io import votable
from astropy.table import MaskedColumn, Table
from loopback_http import LoopbackServer, RecordedRequest, Response, block_external_network

from latentsky.fetch.gaia_archive import FetchError
from latentsky.fetch.gaia_neighbours import NEIGHBOUR_COLUMNS, fetch_gaia_neighbours, neighbours_adql
from latentsky.io.gaia_columns import GAIA_COLUMNS
from latentsky.provenance.files import read_provenance

TAP_ASYNC = "/tap-server/tap/async"
RECORD = {"rule": "test_fetch_gaia_neighbours"}

# Two real LMC Cepheids and an RR Lyrae 1.5" north of CEP-0005 (its blend partner in this sky).
OBJECTS = pd.DataFrame(
    {
        "ogle_id": ["OGLE-LMC-CEP-0002", "OGLE-LMC-CEP-0005", "OGLE-LMC-RRLYR-00101"],
        "ra": [68.1511250, 69.1523750, 69.1523750],
        "dec": [-69.4466389, -70.2942222, -70.2942222 + 1.5 / 3600],
    }
)


def _offset(ogle_id: str, east_arcsec: float, north_arcsec: float) -> tuple[float, float]:
    row = OBJECTS.set_index("ogle_id").loc[ogle_id]
    c = SkyCoord(row["ra"] * u.deg, row["dec"] * u.deg)
    moved = c.spherical_offsets_by(east_arcsec * u.arcsec, north_arcsec * u.arcsec)
    return float(moved.ra.deg), float(moved.dec.deg)


# The archive's sky: source_id, position, pmra, pmdec, G, BP-RP, Teff, R, L, variable flag, class, r_est.
# None is a null (masked) cell.
SKY = [
    (
        4658000000000000001,
        _offset("OGLE-LMC-CEP-0002", 0.2, -0.2),
        1.85,
        0.31,
        15.93,
        0.78,
        5900.0,
        41.0,
        2100.0,
        "VARIABLE",
        "DCEP",
        49100.0,
    ),
    (
        4658000000000000002,
        _offset("OGLE-LMC-CEP-0002", -1.2, 1.3),
        1.70,
        0.20,
        19.40,
        1.10,
        None,
        None,
        None,
        "NOT_AVAILABLE",
        None,
        None,
    ),
    # 0.75" from both CEP-0005 and the RR Lyrae: one source, two pairs.
    (
        4658000000000000003,
        _offset("OGLE-LMC-CEP-0005", 0.0, 0.75),
        1.80,
        0.25,
        14.98,
        0.70,
        6050.0,
        None,
        None,
        "NOT_AVAILABLE",
        None,
        48200.0,
    ),
    (
        4658000000000000004,
        _offset("OGLE-LMC-RRLYR-00101", 0.5, 0.6),
        1.90,
        0.35,
        19.31,
        0.55,
        6400.0,
        None,
        None,
        "VARIABLE",
        "RRAB",
        50500.0,
    ),
    # 3" from every object: outside the 2" cone.
    (
        4658000000000000005,
        _offset("OGLE-LMC-CEP-0002", 3.0, 0.0),
        1.0,
        1.0,
        18.0,
        1.0,
        None,
        None,
        None,
        "NOT_AVAILABLE",
        None,
        1000.0,
    ),
]
SKY_COLUMNS = (
    "source_id",
    "radec",
    "pmra",
    "pmdec",
    "phot_g_mean_mag",
    "bp_rp",
    "teff_val",
    "radius_val",
    "lum_val",
    "phot_variable_flag",
    "best_class_name",
    "r_est",
)


@pytest.fixture(autouse=True)
def offline():
    with block_external_network():
        yield


@pytest.fixture(scope="module")
def loopback():
    with LoopbackServer() as server:
        yield server


def _multipart(request: RecordedRequest) -> dict[str, bytes]:
    """The parts of a multipart/form-data body by name (astroquery's upload request).

    Parsed by hand: astroquery's boundary (``===<ms>===``) is not quoted, which the email package rejects.
    """
    content_type = next(v for k, v in request.headers.items() if k.lower() == "content-type")
    assert content_type.startswith("multipart/form-data")
    boundary = content_type.split("boundary=", 1)[1].strip().strip('"').encode()
    parts: dict[str, bytes] = {}
    for chunk in request.body.split(b"--" + boundary)[1:]:
        if chunk.startswith(b"--"):
            break
        head, _, value = chunk.partition(b"\r\n\r\n")
        name = re.search(rb'name="([^"]+)"', head).group(1).decode()
        parts[name] = value.removesuffix(b"\r\n")
    return parts


class UploadTap:
    """TAP/UWS emulator that answers an upload join from :data:`SKY`."""

    def __init__(self, server: LoopbackServer, *, final_phases=(), executing_polls=0, binary2=False):
        self.server = server
        self.final_phases = list(final_phases)
        self.executing_polls = executing_polls
        self.binary2 = binary2
        self.uploads: list[dict[str, bytes]] = []
        self.results: dict[str, bytes] = {}
        self.polls: dict[str, int] = {}
        job = TAP_ASYNC + r"/(?P<job>[^/]+)"
        server.route("POST", TAP_ASYNC, self._create)
        server.route("GET", re.compile(job + "/phase"), self._phase)
        server.route("GET", re.compile(job + "/results/result"), self._result)
        server.route(
            "GET", re.compile(job + "/error"), Response(body=b"Error: upload table 'ogle' too large")
        )
        server.requests.clear()

    @staticmethod
    def _job(request: RecordedRequest) -> str:
        return request.path.split("/")[4]

    def _create(self, request: RecordedRequest) -> Response:
        form = _multipart(request)
        self.uploads.append(form)
        job_id = f"{1710099405832 + len(self.uploads)}NBR"
        uploaded = votable.parse_single_table(io.BytesIO(form["ogle"])).to_table()
        radius = float(
            re.search(r"CIRCLE\('ICRS', o\.ra, o\.dec, ([^)]+)\)", form["QUERY"].decode()).group(1)
        )
        self.results[job_id] = self._answer(uploaded, radius)
        return Response(status=303, headers={"Location": f"{self.server.url}{TAP_ASYNC}/{job_id}"})

    def _answer(self, uploaded: Table, radius_deg: float) -> bytes:
        rows = []
        for obj in uploaded:
            here = SkyCoord(float(obj["ra"]) * u.deg, float(obj["dec"]) * u.deg)
            for src in SKY:
                ra, dec = src[1]
                if here.separation(SkyCoord(ra * u.deg, dec * u.deg)).deg <= radius_deg:
                    ogle_id = obj["ogle_id"]
                    rows.append((ogle_id.decode() if isinstance(ogle_id, bytes) else str(ogle_id), src))
        table = Table()
        table["ogle_id"] = [r[0] for r in rows]
        table["source_id"] = np.array([r[1][0] for r in rows], dtype=np.int64)
        table["ra"] = [r[1][1][0] for r in rows]
        table["dec"] = [r[1][1][1] for r in rows]
        for k, name in enumerate(SKY_COLUMNS[2:], start=2):
            values = [r[1][k] for r in rows]
            if name in ("phot_variable_flag", "best_class_name"):
                table[name] = MaskedColumn(
                    [v or "" for v in values], mask=[v is None for v in values], dtype="U20"
                )
            else:
                table[name] = MaskedColumn(
                    [np.nan if v is None else v for v in values], mask=[v is None for v in values]
                )
        table = table[
            [
                "ogle_id",
                "source_id",
                "ra",
                "dec",
                "pmra",
                "pmdec",
                "phot_g_mean_mag",
                "bp_rp",
                "teff_val",
                "radius_val",
                "lum_val",
                "phot_variable_flag",
                "best_class_name",
                "r_est",
            ]
        ]
        out = io.BytesIO()
        vot = votable.from_table(table)
        vot.to_xml(out, tabledata_format="binary2" if self.binary2 else "tabledata")
        return out.getvalue()

    def _phase(self, request: RecordedRequest) -> Response:
        job_id = self._job(request)
        self.polls[job_id] = self.polls.get(job_id, 0) + 1
        if self.polls[job_id] <= self.executing_polls:
            return Response(body=b"EXECUTING")
        index = int(job_id[:13]) - 1710099405833
        final = self.final_phases[index] if index < len(self.final_phases) else "COMPLETED"
        return Response(body=final.encode())

    def _result(self, request: RecordedRequest) -> Response:
        return Response(
            body=self.results[self._job(request)], headers={"Content-Type": "application/x-votable+xml"}
        )


def _gaia(server: LoopbackServer):
    from astroquery.gaia import GaiaClass

    return GaiaClass(
        gaia_tap_server=server.url + "/", gaia_data_server=server.url + "/", show_server_messages=False
    )


def test_neighbours_adql():
    q = neighbours_adql(2.0)
    assert q.startswith(
        "SELECT o.ogle_id, g.source_id, g.ra, g.dec, g.pmra, g.pmdec, g.phot_g_mean_mag, g.bp_rp, g.teff_val, "
        "g.radius_val, g.lum_val, g.phot_variable_flag, v.best_class_name, d.r_est FROM TAP_UPLOAD.ogle AS o "
        "JOIN gaiadr2.gaia_source AS g "
    )
    assert f"1=CONTAINS(POINT('ICRS', g.ra, g.dec), CIRCLE('ICRS', o.ra, o.dec, {2.0 / 3600!r}))" in q
    assert "LEFT OUTER JOIN gaiadr2.vari_classifier_result AS v ON v.source_id = g.source_id" in q
    assert "LEFT OUTER JOIN external.gaiadr2_geometric_distance AS d ON d.source_id = g.source_id" in q
    assert "TAP_UPLOAD.cands AS o" in neighbours_adql(1.0, "cands")
    with pytest.raises(ValueError, match="radius_arcsec"):
        neighbours_adql(0.0)
    with pytest.raises(ValueError, match="upload_table"):
        neighbours_adql(2.0, "ogle; DROP TABLE x")


def test_neighbours_adql_dr3_reads_into_dr2_names():
    q = neighbours_adql(2.0, release="dr3")
    assert q.startswith(
        "SELECT o.ogle_id, g.source_id, g.ra, g.dec, g.pmra, g.pmdec, g.phot_g_mean_mag, g.bp_rp, "
        "g.teff_gspphot AS teff_val, a.radius_flame AS radius_val, a.lum_flame AS lum_val, g.phot_variable_flag, "
        "v.best_class_name, d.r_med_geo AS r_est FROM TAP_UPLOAD.ogle AS o JOIN gaiadr3.gaia_source AS g "
    )
    for join in (
        "LEFT OUTER JOIN gaiadr3.astrophysical_parameters AS a ON a.source_id = g.source_id",
        "LEFT OUTER JOIN gaiadr3.vari_classifier_result AS v ON v.source_id = g.source_id",
        "LEFT OUTER JOIN external.gaiaedr3_distance AS d ON d.source_id = g.source_id",
    ):
        assert join in q
    assert "gaiadr2" not in q
    with pytest.raises(ValueError, match="Gaia release 'edr3' not one of"):
        neighbours_adql(2.0, release="edr3")


def test_dr3_fetch_writes_the_same_layout(loopback, tmp_path):
    # The archive answers under the query's AS names; the file has DR2's columns and says which release.
    tap = UploadTap(loopback)
    out = tmp_path / "dr3.parquet"
    result = fetch_gaia_neighbours(OBJECTS, out, gaia=_gaia(loopback), release="dr3")
    (form,) = tap.uploads
    assert "gaiadr3.gaia_source" in form["QUERY"].decode() == result.query
    assert list(pd.read_parquet(out).columns) == list(NEIGHBOUR_COLUMNS)
    assert read_provenance(out)["params"]["release"] == "dr3"


def test_fetch_writes_deduplicated_sources(loopback, tmp_path):
    tap = UploadTap(loopback, executing_polls=1)
    out = tmp_path / "gaia" / "neighbours.parquet"
    result = fetch_gaia_neighbours(OBJECTS, out, gaia=_gaia(loopback), record=RECORD)

    # One job; the uploaded VOTable carried every OGLE id and position, and the query names the upload.
    (form,) = tap.uploads
    for ogle_id in OBJECTS["ogle_id"]:
        assert ogle_id.encode() in form["ogle"]
    assert form["UPLOAD"] == b"ogle,param:ogle" and form["QUERY"].decode() == result.query == neighbours_adql(
        2.0
    )
    uploaded = votable.parse_single_table(io.BytesIO(form["ogle"])).to_table()
    np.testing.assert_array_equal(np.asarray(uploaded["ra"]), OBJECTS["ra"].to_numpy())
    assert tap.polls[result.job_ids[0]] >= 2  # waited through EXECUTING

    table = pd.read_parquet(out)
    assert list(table.columns) == [*GAIA_COLUMNS, "radius_val", "lum_val"] == list(NEIGHBOUR_COLUMNS)
    # Five pairs, four sources: 4658...003 is within 2" of two OGLE objects and is written once; ...005 is
    # outside every cone.
    assert (result.n_pairs, result.n_sources) == (5, 4)
    assert table["source_id"].tolist() == [
        4658000000000000001,
        4658000000000000002,
        4658000000000000003,
        4658000000000000004,
    ]
    assert table["source_id"].dtype == np.int64
    floats = [
        "ra",
        "dec",
        "pmra",
        "pmdec",
        "phot_g_mean_mag",
        "bp_rp",
        "teff_val",
        "r_est",
        "radius_val",
        "lum_val",
    ]
    assert all(table[c].dtype == np.float64 for c in floats)
    assert table["gaia_var_class"].dtype == pd.StringDtype()
    assert table["gaia_var_class"].isna().tolist() == [False, True, True, False]
    assert table["gaia_var_class"].iloc[[0, 3]].tolist() == ["DCEP", "RRAB"]
    assert table["phot_variable_flag"].tolist() == ["VARIABLE", "NOT_AVAILABLE", "NOT_AVAILABLE", "VARIABLE"]
    np.testing.assert_array_equal(table["r_est"].to_numpy(), [49100.0, np.nan, 48200.0, 50500.0])
    np.testing.assert_array_equal(table["teff_val"].to_numpy(), [5900.0, np.nan, 6050.0, 6400.0])
    assert table.loc[0, ["radius_val", "lum_val", "pmra", "phot_g_mean_mag"]].tolist() == [
        41.0,
        2100.0,
        1.85,
        15.93,
    ]
    assert (table["ra"].iloc[2], table["dec"].iloc[2]) == SKY[2][1]
    assert read_provenance(out) == RECORD
    assert sorted(p.name for p in out.parent.iterdir()) == ["neighbours.parquet"]


def test_chunks_are_separate_jobs_and_merge_to_the_same_table(loopback, tmp_path):
    UploadTap(loopback)
    one = fetch_gaia_neighbours(OBJECTS, tmp_path / "one.parquet", gaia=_gaia(loopback), record=RECORD)
    tap = UploadTap(loopback, binary2=True)  # and the archive's binary serialisation, with null flags
    two = fetch_gaia_neighbours(
        OBJECTS, tmp_path / "two.parquet", chunk_size=2, gaia=_gaia(loopback), record=RECORD
    )
    assert len(one.job_ids) == 1 and len(two.job_ids) == 2 and loopback.count("POST", TAP_ASYNC) == 2
    first, second = (votable.parse_single_table(io.BytesIO(f["ogle"])).to_table() for f in tap.uploads)
    assert [x.decode() if isinstance(x, bytes) else x for x in first["ogle_id"]] == OBJECTS["ogle_id"][
        :2
    ].tolist()
    assert len(second) == 1 and b"OGLE-LMC-RRLYR-00101" in tap.uploads[1]["ogle"]
    # 4658...003 comes back from both jobs (near CEP-0005 in the first, the RR Lyrae in the second).
    assert (two.n_pairs, two.n_sources) == (5, 4)
    pd.testing.assert_frame_equal(
        pd.read_parquet(tmp_path / "two.parquet"), pd.read_parquet(tmp_path / "one.parquet")
    )


def test_failed_job_raises_and_writes_nothing(loopback, tmp_path):
    # The second chunk's job fails after the first succeeded: no partial table.
    UploadTap(loopback, final_phases=["COMPLETED", "ERROR"])
    out = tmp_path / "n.parquet"
    with pytest.raises(
        FetchError,
        match=rf"TAP service {re.escape(loopback.url)}/tap-server/tap/: job 1710099405834NBR ended in phase ERROR: "
        r".*upload table 'ogle' too large",
    ):
        fetch_gaia_neighbours(OBJECTS, out, chunk_size=2, gaia=_gaia(loopback), record=RECORD)
    assert loopback.count("POST", TAP_ASYNC) == 2
    assert list(tmp_path.iterdir()) == []


def test_unreachable_service_and_bad_input(tmp_path):
    from astroquery.gaia import GaiaClass

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    gaia = GaiaClass(
        gaia_tap_server=f"http://127.0.0.1:{port}/",
        gaia_data_server=f"http://127.0.0.1:{port}/",
        show_server_messages=False,
    )
    with pytest.raises(
        FetchError, match=rf"http://127.0.0.1:{port}/tap-server/tap/: could not run the query"
    ):
        fetch_gaia_neighbours(OBJECTS, tmp_path / "n.parquet", gaia=gaia, record=RECORD)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="ogle_id must be unique"):
        fetch_gaia_neighbours(pd.concat([OBJECTS, OBJECTS]), tmp_path / "n.parquet", gaia=gaia, record=RECORD)
    with pytest.raises(ValueError, match="missing column"):
        fetch_gaia_neighbours(OBJECTS.drop(columns="dec"), tmp_path / "n.parquet", gaia=gaia, record=RECORD)
