"""OGLE-III CVS / OGLE-IV OCVS fetcher, offline: fake archive directories built from the real light-curve files.

The LMC Cepheid directory ``lmc/cep/`` holds an Apache-style index, an ident.dat in the OGLE-III layout,
``cepF.dat``/``cep1O.dat`` period tables with the stars' real periods, a ``phot.tar.gz`` (I and V members)
and the individual ``phot/I/<ID>.dat`` files, all made here from ``tests/data/ogle3_lightcurves``.
OGLE-LMC-CEP-3000 is listed in ident.dat and cep1O.dat but has no light curve anywhere.

The OGLE-IV bulge binaries directory ``ogle4/OCVS/blg/ecl/`` keeps its photometry by survey phase
(``phot_ogle4/``, ``phot_ogle3/``), as other projects' code says the real one does; its ident.dat has the
OGLE-IV layout of ``tests/data/ogle4_ident`` with made-up lines (the real ECL ident is not among the fixtures).
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
    DEFAULT_OGLE4_URL,
    LIGHT_CURVE_COLUMNS,
    CatalogEntry,
    fetch_ogle3_catalog,
    ogle3_directory_url,
    parse_catalog_entry,
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


# OGLE-IV bulge binaries (made-up lines in the OGLE-IV layout: ID, subtype, RA, Dec, OGLE-IV id, OGLE-III id).
ROOT4 = "/ogle/ogle4/OCVS"
ECL4_DIR = ROOT4 + "/blg/ecl"
ECL4 = ["OGLE-BLG-ECL-000101", "OGLE-BLG-ECL-000102", "OGLE-BLG-ELL-000103"]
IDENT4 = (
    "OGLE-BLG-ECL-000101  NC   17:05:20.35 -32:28:17.7  BLG897.11.124    BLG366.5.86766                  \n"
    "OGLE-BLG-ECL-000102  C    17:06:15.00 -33:01:27.6                   BLG366.8.22036                  \n"
    "OGLE-BLG-ELL-000103  ELL  17:13:10.84 -29:05:45.3  BLG618.17.177                                    \n"
)
# Period table with the OGLE-III leading columns (<I>, <V>, P, ...): the real ecl.dat columns are not verified.
ECL4_PERIODS = """\
OGLE-BLG-ECL-000101  15.100  16.000  13.8295000  0.0000100  5000.00000  0.250
OGLE-BLG-ECL-000102  14.500       -   3.1181200  0.0000057  5001.00000  0.440
OGLE-BLG-ELL-000103  16.200  17.300   0.9876540  0.0000040  5002.00000  0.050
"""
#: ID → the real light curve used as its OGLE-IV I-band photometry.
ECL4_CURVES = {"OGLE-BLG-ECL-000101": "OGLE-GD-ECL-00692", "OGLE-BLG-ECL-000102": "OGLE-LMC-CEP-0002"}


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

    # OGLE-IV blg/ecl: I-band photometry under phot_ogle4/I/ (ECL-000102's in full HJD), an OGLE-III phase
    # under phot_ogle3/I/ that must never be read (other numbers; the ELL star has only that), V under
    # phot_ogle4/V/.
    ecl = root / "ogle4" / "blg" / "ecl"
    (ecl / "phot_ogle4" / "I").mkdir(parents=True)
    members = {}
    for ogle_id, source in ECL4_CURVES.items():
        data = (LC / f"{source}.dat").read_bytes()
        if ogle_id == "OGLE-BLG-ECL-000102":
            full = np.loadtxt(LC / f"{source}.dat")
            full[:, 0] += 2450000.0
            buffer = io.StringIO()
            np.savetxt(buffer, full, fmt=["%.5f", "%.3f", "%.3f"])
            data = buffer.getvalue().encode()
        (ecl / "phot_ogle4" / "I" / f"{ogle_id}.dat").write_bytes(data)
        members[f"phot_ogle4/I/{ogle_id}.dat"] = data
        members[f"phot_ogle4/V/{ogle_id}.dat"] = b"5175.80000 16.200 0.010\n5180.80000 16.300 0.011\n"
    for ogle_id in ECL4:
        members[f"phot_ogle3/I/{ogle_id}.dat"] = b"2175.80000 19.200 0.010\n2180.80000 19.300 0.011\n"
    (ecl / "phot.tar.gz").write_bytes(_tarball(members))
    (ecl / "ident.dat").write_text(IDENT4)
    (ecl / "ecl.dat").write_text(ECL4_PERIODS)

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
    ecl_names = ["README", "ecl.dat", "ident.dat", "phot.tar.gz", "phot_ogle3/", "phot_ogle4/"]
    loopback.route("GET", ECL4_DIR + "/", Response(body=apache_index(ECL4_DIR + "/", ecl_names)))
    loopback.serve_directory(ECL4_DIR, archive_dir / "ogle4" / "blg" / "ecl")
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


def _fetch_ecl4(server, tmp_path, name="ecl4", **kw):
    out = tmp_path / name
    result = fetch_ogle3_catalog(
        "blg",
        "ecl",
        out / "objects.parquet",
        out / "light_curves.parquet",
        survey="ogle4",
        base_url=server.url + ROOT4 + "/",
        backoff_s=0,
        record=RECORD,
        **kw,
    )
    return result, pd.read_parquet(result.objects_path), pd.read_parquet(result.light_curves_path)


@pytest.mark.parametrize("mode", ["tarball", "per_object"])
def test_ogle4_directory_with_phot_ogle4(archive, tmp_path, mode):
    result, objects, lcs = _fetch_ecl4(archive, tmp_path, light_curves=mode)
    assert result.directory_url == archive.url + ECL4_DIR + "/"
    assert objects["ogle_id"].tolist() == ECL4
    # var_class from the ID: the ellipsoidal binary of the ECL directory is ELL.
    assert objects["var_class"].tolist() == ["ECL", "ECL", "ELL"]
    assert objects["subtype"].tolist() == ["NC", "C", "ELL"] and (objects["field"] == "BLG").all()
    assert objects["ra"].iloc[0] == pytest.approx(15 * (17 + 5 / 60 + 20.35 / 3600), abs=1e-6)
    assert objects["dec"].iloc[0] == pytest.approx(-(32 + 28 / 60 + 17.7 / 3600), abs=1e-6)
    assert objects["period"].tolist() == [13.8295, 3.11812, 0.987654]
    np.testing.assert_equal(objects["v_i"].to_numpy(), [16.0 - 15.1, np.nan, 17.3 - 16.2])
    # The ELL star has only an OGLE-III-phase file: kept without a light curve, never given that one.
    assert objects["n_epochs"].tolist() == [1921, 366, 0] and result.without_light_curve == (ECL4[2],)
    for ogle_id, source in ECL4_CURVES.items():
        got = lcs.loc[lcs["ogle_id"] == ogle_id, ["time", "mag", "err"]].to_numpy()
        ref = np.loadtxt(LC / f"{source}.dat")
        # HJD - 2450000 throughout, whether the file wrote that or full HJD (ECL-000102).
        np.testing.assert_allclose(got[:, 0], ref[:, 0], rtol=0, atol=1e-8)
        np.testing.assert_array_equal(got[:, 1:], ref[:, 1:])
    assert lcs["mag"].max() < 19  # neither the OGLE-III phase (19.2+) nor V slipped in
    fetch = json.loads(pq.read_schema(result.objects_path).metadata[b"latentsky.fetch"])
    assert fetch["survey"] == "ogle4" and fetch["period_tables"] == [archive.url + ECL4_DIR + "/ecl.dat"]
    if mode == "per_object":
        for ogle_id in ECL4:
            assert archive.count("GET", f"{ECL4_DIR}/phot_ogle4/I/{ogle_id}.dat") == 1
        assert archive.count("GET", re.compile(re.escape(ECL4_DIR) + "/(phot|phot_ogle3)/.*")) == 0
    else:
        assert archive.count("GET", ECL4_DIR + "/phot.tar.gz") == 1


def test_tarball_with_one_star_twice_in_one_phase(archive, tmp_path):
    data = (LC / "OGLE-LMC-CEP-0002.dat").read_bytes()
    # A plain phot/I/ beside phot_ogle4/I/: the phase's own file wins; two in one phase are an error.
    tarball = _tarball({f"phot/I/{ECL4[1]}.dat": b"5000.0 19.5 0.01\n", f"phot_ogle4/I/{ECL4[1]}.dat": data})
    archive.serve_bytes(ECL4_DIR + "/phot.tar.gz", tarball)
    _, objects, lcs = _fetch_ecl4(archive, tmp_path, ids=[ECL4[1]])
    assert objects["n_epochs"].tolist() == [366] and lcs["mag"].max() < 19
    archive.serve_bytes(
        ECL4_DIR + "/phot.tar.gz",
        _tarball({f"x/phot_ogle4/I/{ECL4[1]}.dat": data} | {f"phot_ogle4/I/{ECL4[1]}.dat": data}),
    )
    with pytest.raises(FetchError, match=rf"holds two I-band light curves of {ECL4[1]}"):
        _fetch_ecl4(archive, tmp_path, "twice", ids=[ECL4[1]])


def test_catalog_entries():
    assert parse_catalog_entry("ogle4:blg/ecl") == CatalogEntry("ogle4", "blg", "ecl")
    assert parse_catalog_entry("ogle4:blg/ecl").path == "ogle4/blg/ecl"
    assert parse_catalog_entry("LMC/CEP") == CatalogEntry("ogle3", "lmc", "cep")
    assert parse_catalog_entry("lmc/cep").path == "lmc/cep"
    with pytest.raises(ValueError, match="survey 'ogle5'"):
        parse_catalog_entry("ogle5:blg/ecl")
    with pytest.raises(ValueError, match="target 'm31'"):
        parse_catalog_entry("ogle4:m31/ecl")
    with pytest.raises(ValueError, match=r"not of the form \[ogle4:\]target/class"):
        parse_catalog_entry("blg")


def test_default_archive_is_unreachable_offline(tmp_path):
    # The network guard is active: the real archive is refused, and the failure names its URL.
    with pytest.raises(
        FetchError, match=rf"{re.escape(DEFAULT_OGLE3_URL)}lmc/cep/: download failed.*offline"
    ):
        fetch_ogle3_catalog(
            "lmc", "cep", tmp_path / "o.parquet", tmp_path / "l.parquet", retries=0, record=RECORD
        )
    with pytest.raises(
        FetchError, match=rf"{re.escape(DEFAULT_OGLE4_URL)}blg/ecl/: download failed.*offline"
    ):
        fetch_ogle3_catalog(
            "blg",
            "ecl",
            tmp_path / "o.parquet",
            tmp_path / "l.parquet",
            survey="ogle4",
            retries=0,
            record=RECORD,
        )
