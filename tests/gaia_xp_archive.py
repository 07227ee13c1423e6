"""A loopback emulation of the Gaia archive for the XP fetchers (tests/fetch/test_gaia_xp.py and the workflow
test of xp.kind apogee_crossmatch): datalink (POST /data-server/data) answering with RAW CSV zips of the real
archive rows in tests/data/gaia_xp_continuous (or the real INDIVIDUAL bundle), and TAP/UWS
(/tap-server/tap/async) answering gaia_source G-flux queries and the random_index sample of XP sources.
astroquery's own GaiaClass talks to it. Also an APOGEE allStar FITS writer with the DR17 column names."""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

import numpy as np
from astropy.io import fits, votable
from astropy.table import Table
from loopback_http import LoopbackServer, RecordedRequest, Response

from latentsky.fetch.gaia_xp import APOGEE_ALLSTAR_COLUMNS

DATA = "/data-server/data"
TAP_ASYNC = "/tap-server/tap/async"
BULK = "/Gaia/gdr3/Spectroscopy/xp_continuous_mean_spectrum"
BRIGHT, NO_BP, FAINT = 5853498713190525696, 5405570973190252288, 5762406957886626816
DATALINK_ID = 5937083312263887616
UNKNOWN = 42  # a source_id the archive has no XP spectrum (and no gaia_source row) for
#: gaia_source answers of the TAP emulation (test inputs, not archive values): flux, magnitude.
G_ROWS = {BRIGHT: (1.25e6, 10.44), NO_BP: (410.0, 19.16), FAINT: (np.nan, 14.1)}


def archive_csv_rows(real_data: Path) -> tuple[bytes, dict[int, bytes]]:
    """Header and data lines (by source_id) of the archive CSV with the missing-BP source."""
    lines = (real_data / "gaia_xp_continuous" / "XP_CONTINUOUS_RAW_with_missing_BP.csv").read_bytes()
    header, *rows = lines.splitlines(keepends=True)
    return header, {int(r.split(b",", 1)[0]): r if r.endswith(b"\n") else r + b"\n" for r in rows}


def gaia_client(server: LoopbackServer):
    from astroquery.gaia import GaiaClass

    return GaiaClass(
        gaia_tap_server=server.url + "/", gaia_data_server=server.url + "/", show_server_messages=False
    )


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        for name, body in members.items():
            bundle.writestr(name, body)
    return buffer.getvalue()


class ArchiveEmulator:
    """Datalink (RAW CSV zips of the real rows, or the real INDIVIDUAL bundle) and TAP: gaia_source G for
    ``source_id IN (…)`` queries, and for ``TOP n … ORDER BY random_index`` the first n of ``random_ids``."""

    def __init__(
        self,
        server: LoopbackServer,
        xp_csv,
        datalink_zip: bytes,
        *,
        extra_id: int | None = None,
        random_ids: tuple[int, ...] = (),
    ):
        self.server = server
        self.random_ids = list(random_ids)
        self.header, self.rows = xp_csv
        self.datalink_zip = datalink_zip
        self.extra_id = extra_id
        self.datalink_forms: list[dict[str, str]] = []
        self.queries: dict[str, str] = {}
        server.route("POST", DATA, self._datalink)
        job = TAP_ASYNC + r"/(?P<job>[^/]+)"
        server.route("POST", TAP_ASYNC, self._create_job)
        server.route("GET", re.compile(job + "/phase"), Response(body=b"COMPLETED"))
        server.route("GET", re.compile(job + "/results/result"), self._result)

    def _datalink(self, request: RecordedRequest) -> Response:
        form = request.form()
        self.datalink_forms.append(form)
        ids = [int(s) for s in form["ID"].split(",")]
        if ids == [DATALINK_ID]:
            body = self.datalink_zip
        else:
            served = [i for i in ids if i in self.rows]
            if self.extra_id is not None:
                served.append(self.extra_id)
            body = _zip({"XP_CONTINUOUS_RAW.csv": self.header + b"".join(self.rows[i] for i in served)})
        return Response(body=body, headers={"Content-Type": "application/zip"})

    def _create_job(self, request: RecordedRequest) -> Response:
        job_id = f"{1712337806100 + len(self.queries)}XPG"
        self.queries[job_id] = request.form()["QUERY"]
        return Response(status=303, headers={"Location": f"{self.server.url}{TAP_ASYNC}/{job_id}"})

    def _result(self, request: RecordedRequest) -> Response:
        job_id = request.path.split("/")[-3]
        query = self.queries[job_id]
        top = re.fullmatch(
            r"SELECT TOP (\d+) source_id FROM \S+ WHERE has_xp_continuous = 'True' ORDER BY random_index",
            query,
        )
        if top:
            table = Table({"source_id": np.array(self.random_ids[: int(top.group(1))], dtype=np.int64)})
        else:
            ids = [int(s) for s in re.search(r"IN \(([^)]*)\)", query).group(1).split(",")]
            known = [i for i in ids if i in G_ROWS]
            table = Table(
                {
                    "source_id": np.array(known, dtype=np.int64),
                    "phot_g_mean_flux": np.array([G_ROWS[i][0] for i in known]),
                    "phot_g_mean_mag": np.array([G_ROWS[i][1] for i in known], dtype=np.float32),
                }
            )
        buffer = io.BytesIO()
        votable.from_table(table).to_xml(buffer)
        return Response(body=buffer.getvalue(), headers={"Content-Type": "application/x-votable+xml"})


def write_allstar(path, rows, *, drop=()):
    """An allStar-shaped FITS table: rows of (APOGEE_ID, TELESCOPE, FIELD, GAIAEDR3_SOURCE_ID, TEFF, TEFF_ERR,
    LOGG, LOGG_ERR, M_H, M_H_ERR, ALPHA_M, SFD_EBV, STARFLAG, ASPCAPFLAG, SNR)."""
    names = list(APOGEE_ALLSTAR_COLUMNS)
    formats = ["18A", "8A", "20A", "K", "E", "E", "E", "E", "E", "E", "E", "E", "J", "K", "E"]
    columns = [
        fits.Column(name=n, format=f, array=np.array([r[i] for r in rows]))
        for i, (n, f) in enumerate(zip(names, formats, strict=True))
        if n not in drop
    ]
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns(columns)]).writeto(path)
