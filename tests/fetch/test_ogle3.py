"""OGLE-III CVS fetcher, offline: a fake archive directory built from the real light-curve files.

The LMC Cepheid directory ``lmc/cep/`` holds an Apache-style index, an ident.dat in the OGLE-III layout,
``cepF.dat``/``cep1O.dat`` period tables with the stars' real periods, a ``phot.tar.gz`` (I and V members)
and the individual ``phot/I/<ID>.dat`` files, all made here from ``tests/data/ogle3_lightcurves``.
OGLE-LMC-CEP-3000 is listed in ident.dat and cep1O.dat but has no light curve anywhere.
"""

from __future__ import annotations

import io
import json
import logging
import re
import tarfile

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from conftest import REAL_DATA
from loopback_http import LoopbackServer, RecordedRequest, Response, apache_index, block_external_network

from latentsky.fetch.gaia_archive import FetchError
from latentsky.fetch.ogle3 import (
    DEFAULT_OGLE3_URL,
    LIGHT_CURVE_COLUMNS,
    fetch_ogle3_catalog,
    ogle3_directory_url,
)
from latentsky.io.ogle import OBJECT_COLUMNS, OgleFormatError
from latentsky.provenance.files import read_provenance

LC = REAL_DATA / "ogle3_lightcurves"
ROOT = "/ogle/ogle3/OIII-CVS"
CEP_DIR = ROOT + "/lmc/cep"
RRL_DIR = ROOT + "/blg/rrlyr"
CEPHEIDS = ["OGLE-LMC-CEP-0002", "OGLE-LMC-CEP-0005", "OGLE-LMC-CEP-0674"]
NO_LC = "OGLE-LMC-CEP-3000"
RECORD = {"rule": "test_fetch_ogle3"}

# ident.dat as the OGLE-III CVS writes it: ID, field, star number, mode, RA, Dec, cross-identifications.
IDENT = """\
OGLE-LMC-CEP-0002  LMC175.6  11404  F    04:32:36.27 -69:26:47.9  OGLE043236.27-692647.9  HV 12452
OGLE-LMC-CEP-0005  LMC175.5  28561  F    04:36:36.57 -70:17:39.2
OGLE-LMC-CEP-0674  LMC162.5  2468   F    05:10:23.95 -68:49:40.5  OGLE051023.95-684940.5
OGLE-LMC-CEP-3000  LMC100.1  10001  1O   05:20:00.00 -69:00:00.0
"""
# <I>, <V>, P (d), sigma_P, T0, I amplitude, Fourier parameters; "-" for a missing V.
CEPF = """\
OGLE-LMC-CEP-0002  15.530  16.265   3.1181200  0.0000057  2171.37258  0.443  0.478  4.480  0.247  2.700
OGLE-LMC-CEP-0005  14.560  15.200   5.6122000  0.0000100  2172.00000  0.510  0.440  4.400  0.250  2.600
OGLE-LMC-CEP-0674  14.847       -   4.9531000  0.0000090  2166.86329  0.620  0.460  4.420  0.240  2.650
"""
CEP1O = "OGLE-LMC-CEP-3000  16.100  16.700   1.2345600  0.0000040  2170.50000  0.200  0.300  4.900  -  -\n"
EXPECTED = {
    # ogle_id: (ra, dec, subtype, period, i_mag, v_i)
    "OGLE-LMC-CEP-0002": (68.1511250, -69.4466389, "F", 3.11812, 15.530, 16.265 - 15.530),
    "OGLE-LMC-CEP-0005": (69.1523750, -70.2942222, "F", 5.6122, 14.560, 15.200 - 14.560),
    "OGLE-LMC-CEP-0674": (77.5997917, -68.8279167, "F", 4.9531, 14.847, np.nan),
    NO_LC: (80.0, -69.0, "1O", 1.23456, 16.100, 16.700 - 16.100),
}


@pytest.fixture(autouse=True)
def offline():
    """Every test here fails if anything tries to reach a host other than 127.0.0.1."""
    with block_external_network():
        yield


def _tarball(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.fixture(scope="module")
def archive_dir(tmp_path_factory):
    """The fake archive's files: lmc/cep/ and blg/rrlyr/."""
    root = tmp_path_factory.mktemp("archive")
    cep = root / "lmc" / "cep"
    (cep / "phot" / "I").mkdir(parents=True)
    members = {}
    for ogle_id in CEPHEIDS:
        data = (LC / f"{ogle_id}.dat").read_bytes()
        (cep / "phot" / "I" / f"{ogle_id}.dat").write_bytes(data)
        members[f"phot/I/{ogle_id}.dat"] = data
        # A V-band member with other numbers: it must be skipped, never mistaken for the I band.
        members[f"phot/V/{ogle_id}.dat"] = b"2175.80000 16.200 0.010\n2180.80000 16.300 0.011\n"
    (cep / "phot.tar.gz").write_bytes(_tarball(members))
    (cep / "ident.dat").write_text(IDENT)
    (cep / "cepF.dat").write_text(CEPF)
    (cep / "cep1O.dat").write_text(CEP1O)
    (cep / "README").write_text("OGLE-III Cepheids in the LMC\n")
    (cep / "remarks.txt").write_text("OGLE-LMC-CEP-0002 blended\n")

    rrl = root / "blg" / "rrlyr"
    rrl.mkdir(parents=True)
    rrl_id = "OGLE-BLG-RRLYR-02924"
    (rrl / "ident.dat").write_text(f"{rrl_id}  BLG184.6  123456  RRab  17:47:07.00 -35:06:30.0  V1234_Sco\n")
    (rrl / "phot.tar.gz").write_bytes(_tarball({f"phot/I/{rrl_id}.dat": (LC / f"{rrl_id}.dat").read_bytes()}))
    return root


@pytest.fixture(scope="module")
def loopback():
    # One server for the module (each shutdown waits out serve_forever's 0.5 s poll).
    with LoopbackServer() as server:
        yield server


@pytest.fixture
def archive(loopback, archive_dir):
    """The server with the archive's routes (re)installed and no requests recorded yet.

    Later routes win, so reinstalling undoes the overrides of an earlier test.
    """
    names = ["README", "cep1O.dat", "cepF.dat", "ident.dat", "phot/", "phot.tar.gz", "remarks.txt"]
    loopback.route("GET", CEP_DIR + "/", Response(body=apache_index(CEP_DIR + "/", names)))
    loopback.serve_directory(CEP_DIR, archive_dir / "lmc" / "cep")
    loopback.route(
        "GET", RRL_DIR + "/", Response(body=apache_index(RRL_DIR + "/", ["ident.dat", "phot.tar.gz"]))
    )
    loopback.serve_directory(RRL_DIR, archive_dir / "blg" / "rrlyr")
    loopback.requests.clear()
    return loopback


def _fetch(server, tmp_path, name="out", **kw):
    out = tmp_path / name
    result = fetch_ogle3_catalog(
        "LMC",
        "cep",
        out / "objects.parquet",
        out / "light_curves.parquet",
        base_url=server.url + ROOT + "/",
        backoff_s=0,
        record=RECORD,
        **kw,
    )
    return result, pd.read_parquet(result.objects_path), pd.read_parquet(result.light_curves_path)


def test_directory_url():
    assert ogle3_directory_url("LMC", "CEP") == "https://ftp.astrouw.edu.pl/ogle/ogle3/OIII-CVS/lmc/cep/"
    assert ogle3_directory_url("blg", "rrlyr", "http://h/x") == "http://h/x/blg/rrlyr/"
    with pytest.raises(ValueError, match="target 'M31'"):
        ogle3_directory_url("M31", "cep")
    with pytest.raises(ValueError, match="class '../x'"):
        ogle3_directory_url("lmc", "../x")


def test_tarball_mode_writes_objects_and_exact_light_curves(archive, tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="latentsky.fetch.ogle3"):
        result, objects, lcs = _fetch(archive, tmp_path)

    assert list(objects.columns) == list(OBJECT_COLUMNS)
    assert objects["ogle_id"].tolist() == [*CEPHEIDS, NO_LC]
    assert objects["n_epochs"].dtype == np.int64
    assert objects["n_epochs"].tolist() == [366, 367, 366, 0]  # the object without a light curve is kept
    assert (objects["field"] == "LMC").all() and (objects["var_class"] == "CEP").all()
    for _, row in objects.iterrows():
        ra, dec, subtype, period, i_mag, v_i = EXPECTED[row["ogle_id"]]
        assert row["ra"] == pytest.approx(ra, abs=1e-6) and row["dec"] == pytest.approx(dec, abs=1e-6)
        assert (row["subtype"], row["period"], row["i_mag"]) == (subtype, period, i_mag)
        np.testing.assert_equal(row["v_i"], v_i)  # NaN where <V> is "-"
    assert [objects[c].dtype for c in ("ra", "dec", "period", "i_mag", "v_i")] == [np.float64] * 5

    assert list(lcs.columns) == list(LIGHT_CURVE_COLUMNS)
    assert len(lcs) == 366 + 367 + 366 == result.n_epochs
    for ogle_id in CEPHEIDS:
        got = lcs.loc[lcs["ogle_id"] == ogle_id, ["time", "mag", "err"]].to_numpy()
        np.testing.assert_array_equal(got, np.loadtxt(LC / f"{ogle_id}.dat"))  # the file's numbers, exactly
    assert lcs["mag"].max() < 16.2  # no V-band member slipped in (all V values here are >= 16.2)
    assert lcs.equals(lcs.sort_values(["ogle_id", "time"], kind="stable").reset_index(drop=True))

    assert result.n_objects == 4 and result.without_light_curve == (NO_LC,) and result.without_period == ()
    assert result.directory_url == archive.url + CEP_DIR + "/"
    assert result.period_tables == (archive.url + CEP_DIR + "/cep1O.dat", archive.url + CEP_DIR + "/cepF.dat")
    assert any(NO_LC in r.getMessage() and "n_epochs = 0" in r.getMessage() for r in caplog.records)

    assert archive.count("GET", CEP_DIR + "/phot.tar.gz") == 1
    assert archive.count("GET", re.compile(re.escape(CEP_DIR) + "/phot/I/.*")) == 0
    assert archive.count("GET", CEP_DIR + "/README") == archive.count("GET", CEP_DIR + "/remarks.txt") == 0
    for path in (result.objects_path, result.light_curves_path):
        assert read_provenance(path) == RECORD
        fetch = json.loads(pq.read_schema(path).metadata[b"latentsky.fetch"])
        assert fetch["ident"] == archive.url + CEP_DIR + "/ident.dat" and fetch["light_curves"] == "tarball"
    assert sorted(p.name for p in result.objects_path.parent.iterdir()) == [
        "light_curves.parquet",
        "objects.parquet",
    ]  # no scratch directory left behind


def test_per_object_mode_gives_the_same_tables(archive, tmp_path):
    _, objects_tar, lcs_tar = _fetch(archive, tmp_path, "tar")
    result, objects, lcs = _fetch(archive, tmp_path, "per_object", light_curves="per_object")
    pd.testing.assert_frame_equal(objects, objects_tar)
    pd.testing.assert_frame_equal(lcs, lcs_tar)
    assert result.without_light_curve == (NO_LC,)
    for ogle_id in [*CEPHEIDS, NO_LC]:
        assert archive.count("GET", f"{CEP_DIR}/phot/I/{ogle_id}.dat") == 1  # the 404 is not retried
    assert archive.count("GET", CEP_DIR + "/phot.tar.gz") == 1  # only the tarball run fetched it


def test_ids_restrict_the_objects(archive, tmp_path):
    result, objects, lcs = _fetch(archive, tmp_path, ids=["OGLE-LMC-CEP-0674", "OGLE-LMC-CEP-0002"])
    assert objects["ogle_id"].tolist() == ["OGLE-LMC-CEP-0002", "OGLE-LMC-CEP-0674"]
    assert objects["n_epochs"].tolist() == [366, 366]
    assert lcs["ogle_id"].unique().tolist() == ["OGLE-LMC-CEP-0002", "OGLE-LMC-CEP-0674"]
    assert result.without_light_curve == ()

    out = tmp_path / "missing"
    with pytest.raises(
        ValueError, match=r"2 requested ID\(s\) not listed: \['OGLE-LMC-CEP-0001', 'OGLE-X'\]"
    ):
        fetch_ogle3_catalog(
            "lmc",
            "cep",
            out / "o.parquet",
            out / "l.parquet",
            base_url=archive.url + ROOT,
            ids=["OGLE-LMC-CEP-0002", "OGLE-X", "OGLE-LMC-CEP-0001"],
            record=RECORD,
        )
    assert list(out.iterdir()) == []


def test_directory_without_period_tables_keeps_objects_with_nan_period(archive, tmp_path, caplog):
    out = tmp_path / "blg"
    with caplog.at_level(logging.WARNING, logger="latentsky.fetch.ogle3"):
        result = fetch_ogle3_catalog(
            "blg", "rrlyr", out / "o.parquet", out / "l.parquet", base_url=archive.url + ROOT, record=RECORD
        )
    objects = pd.read_parquet(result.objects_path)
    assert objects["ogle_id"].tolist() == ["OGLE-BLG-RRLYR-02924"]
    assert (objects["field"].item(), objects["subtype"].item(), objects["n_epochs"].item()) == (
        "BLG",
        "RRab",
        139,
    )
    assert np.isnan(objects[["period", "i_mag", "v_i"]].to_numpy()).all()
    assert result.without_period == ("OGLE-BLG-RRLYR-02924",) and result.period_tables == ()
    assert any("NaN period" in r.getMessage() for r in caplog.records)
    lcs = pd.read_parquet(result.light_curves_path)
    np.testing.assert_array_equal(
        lcs[["time", "mag", "err"]].to_numpy(), np.loadtxt(LC / "OGLE-BLG-RRLYR-02924.dat")
    )


def test_transient_503_is_retried(archive, tmp_path):
    body = IDENT.encode()
    answers = iter([Response(status=503, body=b"busy")])
    archive.route("GET", CEP_DIR + "/ident.dat", lambda _r: next(answers, Response(body=body)))
    result, objects, _ = _fetch(archive, tmp_path)
    assert archive.count("GET", CEP_DIR + "/ident.dat") == 2
    assert len(objects) == 4 and result.n_epochs == 1099


def test_404_fails_at_once_naming_the_url_and_writes_nothing(archive, tmp_path):
    archive.route("GET", CEP_DIR + "/cepF.dat", Response(status=404, body=b"gone"))
    with pytest.raises(FetchError, match=rf"{re.escape(archive.url + CEP_DIR)}/cepF\.dat: HTTP 404") as info:
        _fetch(archive, tmp_path)
    assert info.value.status == 404
    assert archive.count("GET", CEP_DIR + "/cepF.dat") == 1
    assert list((tmp_path / "out").iterdir()) == []  # no outputs, no scratch directory


def test_failures_after_the_downloads_write_nothing(archive, archive_dir, tmp_path):
    # A tarball cut short: the light curves cannot be read, neither table is written.
    whole = (archive_dir / "lmc" / "cep" / "phot.tar.gz").read_bytes()
    archive.serve_bytes(CEP_DIR + "/phot.tar.gz", whole[: len(whole) // 2])
    with pytest.raises(FetchError, match=rf"{re.escape(CEP_DIR)}/phot\.tar\.gz: not a readable \.tar\.gz"):
        _fetch(archive, tmp_path)
    assert list((tmp_path / "out").iterdir()) == []

    # A malformed light-curve line: the error names the file's URL and line, not a temporary path.
    archive.serve_bytes(
        f"{CEP_DIR}/phot/I/{CEPHEIDS[1]}.dat", b"2171.85654 14.441 0.006\n2183.81586 14.513\n"
    )
    with pytest.raises(
        OgleFormatError, match=rf"{re.escape(archive.url + CEP_DIR)}/phot/I/{CEPHEIDS[1]}\.dat, line 2"
    ):
        _fetch(archive, tmp_path, light_curves="per_object")
    assert list((tmp_path / "out").iterdir()) == []


def test_index_without_ident_or_light_curves(archive, tmp_path):
    archive.route("GET", CEP_DIR + "/", Response(body=apache_index(CEP_DIR + "/", ["README", "cepF.dat"])))
    with pytest.raises(
        FetchError, match=rf"{re.escape(archive.url + CEP_DIR)}/: the directory index lists no ident\.dat"
    ):
        _fetch(archive, tmp_path)
    archive.route("GET", CEP_DIR + "/", Response(body=apache_index(CEP_DIR + "/", ["ident.dat", "cepF.dat"])))
    with pytest.raises(FetchError, match=r"lists no phot\.tar\.gz; use light_curves='per_object'"):
        _fetch(archive, tmp_path)

    # No light curve for any object is a wrong layout, not data: fail rather than write empty curves.
    def no_files(request: RecordedRequest) -> Response:
        return Response(status=404)

    archive.route("GET", re.compile(re.escape(CEP_DIR) + "/phot/I/.*"), no_files)
    with pytest.raises(FetchError, match=r"no I-band light curve for any of the 4 selected"):
        _fetch(archive, tmp_path, light_curves="per_object")
    assert not (tmp_path / "out" / "objects.parquet").exists()


def test_default_archive_is_unreachable_offline(tmp_path):
    # The network guard is active: the real archive is refused, and the failure names its URL.
    with pytest.raises(
        FetchError, match=rf"{re.escape(DEFAULT_OGLE3_URL)}lmc/cep/: download failed.*offline"
    ):
        fetch_ogle3_catalog(
            "lmc", "cep", tmp_path / "o.parquet", tmp_path / "l.parquet", retries=0, record=RECORD
        )
