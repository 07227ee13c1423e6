"""The APOGEE DR17 SAS fetcher against a loopback copy of the SAS layout serving the real apStar and aspcapStar
files of tests/data/apogee; then the readers on what it fetched."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import REAL_DATA
from loopback_http import LoopbackServer, Response, block_external_network

from latentsky.fetch.apogee_sas import (
    ApogeeStar,
    apogee_file_name,
    apogee_sas_url,
    fetch_apogee_spectra,
)
from latentsky.fetch.http import FetchError
from latentsky.io.apogee import read_apstar, read_aspcapstar

REAL = REAL_DATA / "apogee"
THREE_VISITS = (REAL / "apStar-dr17-2M17335483-2753043.fits").read_bytes()
ONE_VISIT = (REAL / "apStar-dr17-2M19485057+5005279.fits").read_bytes()
# tests/data has no DR17 aspcapStar; a DR13 one has the same HDU1–3 layout and stands in for it.
ASPCAP = (REAL / "aspcapStar-r6-l30e.2-2M17334253-1654573.fits").read_bytes()
STARS = [
    ApogeeStar("apo25m", "000+02", "2M17335483-2753043"),
    ApogeeStar("apo25m", "K04_083+13", "2M19485057+5005279"),
    # The same bytes served as a southern (lco25m) star: DR17 names its file asStar-dr17-….
    ApogeeStar("lco25m", "K04_083+13", "2M19485057+5005279"),
]
REDUX = "/sas/dr17/apogee/spectro/redux/dr17/stars"
ASPCAP_DIR = "/sas/dr17/apogee/spectro/aspcap/dr17/synspec_rev1"
PATHS = {
    f"{REDUX}/apo25m/000+02/apStar-dr17-2M17335483-2753043.fits": THREE_VISITS,
    f"{REDUX}/apo25m/K04_083+13/apStar-dr17-2M19485057+5005279.fits": ONE_VISIT,
    f"{REDUX}/lco25m/K04_083+13/asStar-dr17-2M19485057+5005279.fits": ONE_VISIT,
    f"{ASPCAP_DIR}/apo25m/009+09/aspcapStar-dr17-2M17334253-1654573.fits": ASPCAP,
}


@pytest.fixture(autouse=True)
def offline():
    with block_external_network():
        yield


@pytest.fixture
def sas():
    with LoopbackServer() as server:
        for path, body in PATHS.items():
            server.serve_bytes(path, body)
        yield server


def test_urls_follow_the_dr17_sas_layout():
    assert apogee_sas_url("apStar", "apo25m", "000+02", "2M17335483-2753043") == (
        "https://data.sdss.org/sas/dr17/apogee/spectro/redux/dr17/stars/apo25m/000+02/"
        "apStar-dr17-2M17335483-2753043.fits"
    )
    assert apogee_sas_url("apStar", "lco25m", "K04_083+13", "2M19485057+5005279") == (
        "https://data.sdss.org/sas/dr17/apogee/spectro/redux/dr17/stars/lco25m/K04_083+13/"
        "asStar-dr17-2M19485057+5005279.fits"
    )
    assert apogee_sas_url(
        "aspcapStar", "apo1m", "M67", "2M08514388+1156425", base_url="http://mirror/sas"
    ) == (
        "http://mirror/sas/dr17/apogee/spectro/aspcap/dr17/synspec_rev1/apo1m/M67/aspcapStar-dr17-2M08514388+1156425.fits"
    )
    assert apogee_file_name("apStar", "lco25m", "X") == "asStar-dr17-X.fits"
    assert apogee_file_name("aspcapStar", "lco25m", "X") == "aspcapStar-dr17-X.fits"
    with pytest.raises(ValueError, match="telescope must be one of"):
        apogee_sas_url("apStar", "apo35m", "000+02", "2M17335483-2753043")
    with pytest.raises(ValueError, match="field '../etc' is not a file-name segment"):
        ApogeeStar("apo25m", "../etc", "2M17335483-2753043")
    with pytest.raises(ValueError, match="kind must be one of"):
        apogee_sas_url("apVisit", "apo25m", "000+02", "2M17335483-2753043")


def test_fetched_files_are_the_archive_bytes_and_read(sas, tmp_path):
    paths = fetch_apogee_spectra(STARS, tmp_path, base_url=sas.url + "/sas/")
    assert [p.relative_to(tmp_path).as_posix() for p in paths] == [
        "apo25m/000+02/apStar-dr17-2M17335483-2753043.fits",
        "apo25m/K04_083+13/apStar-dr17-2M19485057+5005279.fits",
        "lco25m/K04_083+13/asStar-dr17-2M19485057+5005279.fits",
    ]
    assert [p.read_bytes() for p in paths] == [THREE_VISITS, ONE_VISIT, ONE_VISIT]
    spectra = [read_apstar(p) for p in paths]
    assert [s.nvisits for s in spectra] == [3, 1, 1]
    assert [s.telescope for s in spectra] == [None, None, "lco25m"]
    np.testing.assert_array_equal(spectra[1].flux, spectra[2].flux)
    assert all(sas.count("GET", path) == 1 for path in PATHS if "/redux/" in path)
    # Nothing but the three files was written (no temporary file left behind).
    assert sorted(p for p in tmp_path.rglob("*") if p.is_file()) == sorted(paths)


def test_files_present_and_valid_are_not_fetched_again(sas, tmp_path):
    base = sas.url + "/sas/"
    first = fetch_apogee_spectra(STARS[:2], tmp_path, base_url=base)
    assert len(sas.requests) == 2
    assert fetch_apogee_spectra(STARS[:2], tmp_path, base_url=base) == first
    assert len(sas.requests) == 2  # no request at all
    # A present file that is damaged (cut short) is downloaded again and replaced.
    first[0].write_bytes(THREE_VISITS[:300_000])
    fetch_apogee_spectra(STARS[:2], tmp_path, base_url=base)
    assert len(sas.requests) == 3 and first[0].read_bytes() == THREE_VISITS


def test_a_star_table_is_accepted(sas, tmp_path):
    table = pd.DataFrame(
        {"APOGEE_ID": ["2M17335483-2753043 "], "TELESCOPE": ["apo25m"], "FIELD": ["000+02"], "SNR": [154.2]}
    )
    [path] = fetch_apogee_spectra(table, tmp_path, base_url=sas.url + "/sas/")
    assert path.name == "apStar-dr17-2M17335483-2753043.fits" and path.read_bytes() == THREE_VISITS
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['FIELD'\]"):
        fetch_apogee_spectra(table.drop(columns="FIELD"), tmp_path, base_url=sas.url + "/sas/")


def test_aspcapstar_files(sas, tmp_path):
    star = ("apo25m", "009+09", "2M17334253-1654573")
    [path] = fetch_apogee_spectra([star], tmp_path, kind="aspcapStar", base_url=sas.url + "/sas/")
    assert path.relative_to(tmp_path).as_posix() == "apo25m/009+09/aspcapStar-dr17-2M17334253-1654573.fits"
    spec = read_aspcapstar(path)
    assert spec.apogee_id == "2M17334253-1654573" and spec.params["PARAM"][0] == pytest.approx(
        3788.4, abs=0.1
    )
    # The same bytes at an apStar URL are refused: an aspcapStar's HDU3 is a float model, not a bitmask.
    sas.serve_bytes(f"{REDUX}/apo25m/009+09/apStar-dr17-2M17334253-1654573.fits", ASPCAP)
    with pytest.raises(
        FetchError, match=r"apStar-dr17-2M17334253-1654573\.fits: HDU3 \(bitmask\) holds float32"
    ):
        fetch_apogee_spectra([star], tmp_path / "ap", base_url=sas.url + "/sas/", retries=0)


def test_a_missing_star_names_its_url(sas, tmp_path):
    star = ApogeeStar("apo25m", "000+02", "2M00000000+0000000")
    with pytest.raises(FetchError, match=r"000\+02/apStar-dr17-2M00000000\+0000000\.fits: HTTP 404") as exc:
        fetch_apogee_spectra([star], tmp_path, base_url=sas.url + "/sas/", retries=0)
    assert str(exc.value).startswith(sas.url + REDUX) and exc.value.status == 404
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_an_html_page_or_a_truncated_file_is_not_kept(sas, tmp_path):
    star = STARS[0]
    path = f"{REDUX}/apo25m/000+02/apStar-dr17-2M17335483-2753043.fits"
    url = sas.url + path
    sas.route("GET", path, Response(body=b"<html><body>SAS maintenance</body></html>"))
    with pytest.raises(FetchError, match="not a FITS file") as exc:
        fetch_apogee_spectra([star], tmp_path, base_url=sas.url + "/sas/", retries=0)
    assert str(exc.value).startswith(f"{url}: not a FITS file") and "\n" not in str(exc.value)
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []
    # A complete HTTP answer holding a cut file (the archive's copy is damaged): refused too.
    sas.serve_bytes(path, THREE_VISITS[:1_500_000])
    with pytest.raises(FetchError, match=r"^.*apStar-dr17-2M17335483-2753043\.fits: truncated file"):
        fetch_apogee_spectra([star], tmp_path, base_url=sas.url + "/sas/", retries=0)
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []
