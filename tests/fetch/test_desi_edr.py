"""The DESI EDR fetcher against a loopback copy of the archive's HEALPix layout, holding the real coadd and
Redrock files of tests/data/desi_coadd; then the reader on what it fetched."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import REAL_DATA
from loopback_http import LoopbackServer, Response, apache_index, block_external_network

from latentsky.fetch.desi_edr import EdrPixel, fetch_healpix, healpix_urls, list_healpix
from latentsky.fetch.http import FetchError
from latentsky.io.desi import DesiFlag, read_desi_coadds

REAL = REAL_DATA / "desi_coadd"
COADD = (REAL / "coadd-4-80613-thru20210324.fits").read_bytes()
REDROCK = (REAL / "redrock-4-80613-thru20210324.fits").read_bytes()
ROOT = "/public/edr/spectro/redux/fuji/healpix/"
# Pixel 8012 (group 80) in SV1 and SV3; pixel 27245 (group 272) in SV1.
PIXELS = {"sv1": [8012, 27245], "sv3": [8012]}


@pytest.fixture(autouse=True)
def offline():
    with block_external_network():
        yield


@pytest.fixture
def archive():
    with LoopbackServer() as server:
        for survey, pixels in PIXELS.items():
            top = f"{ROOT}{survey}/bright/"
            groups = sorted({p // 100 for p in pixels})
            server.route("GET", top, Response(body=apache_index(top, [f"{g}/" for g in groups])))
            for g in groups:
                names = [f"{p}/" for p in pixels if p // 100 == g]
                server.route("GET", f"{top}{g}/", Response(body=apache_index(f"{top}{g}/", names)))
            for p in pixels:
                d = f"{top}{p // 100}/{p}/"
                server.serve_bytes(f"{d}coadd-{survey}-bright-{p}.fits", COADD)
                server.serve_bytes(f"{d}redrock-{survey}-bright-{p}.fits", REDROCK)
        yield server


def test_urls_follow_the_desi_data_model():
    urls = healpix_urls(EdrPixel("sv3", "bright", 27245))
    base = "https://data.desi.lbl.gov/public/edr/spectro/redux/fuji/healpix/sv3/bright/272/27245/"
    assert urls == {
        "coadd": base + "coadd-sv3-bright-27245.fits",
        "redrock": base + "redrock-sv3-bright-27245.fits",
    }
    with pytest.raises(ValueError, match="outside 0…49151"):
        EdrPixel("sv1", "bright", 49152)


def test_lists_pixels_from_the_directory_indexes(archive):
    pixels = list_healpix("sv1", "bright", archive.url + ROOT)
    assert pixels == [EdrPixel("sv1", "bright", 8012), EdrPixel("sv1", "bright", 27245)]
    assert [p.healpix for p in list_healpix("sv3", "bright", archive.url + ROOT)] == [8012]


def test_fetched_files_are_the_archive_bytes_and_read_into_one_row_per_target(archive, tmp_path):
    pairs = []
    for survey in ("sv1", "sv3"):
        pixel = EdrPixel(survey, "bright", 8012)
        got = fetch_healpix(
            pixel,
            tmp_path / f"coadd-{pixel.name}.fits",
            tmp_path / f"redrock-{pixel.name}.fits",
            archive.url + ROOT,
        )
        assert got["coadd"].read_bytes() == COADD and got["redrock"].read_bytes() == REDROCK
        pairs.append((got["coadd"], got["redrock"]))
    spectra = read_desi_coadds(pairs, target_class="bgs")
    # The same BGS target (SV1_BGS_TARGET set) in two surveys: two rows, the second flagged a duplicate
    # (equal TSNR2_BGS: the first file wins), so it enters the sample once.
    assert spectra.target_id.tolist() == [39633345008634465] * 2
    assert spectra.flags.tolist() == [0, int(DesiFlag.DUPLICATE)]
    assert spectra.source.tolist() == ["coadd-sv1-bright-8012.fits", "coadd-sv3-bright-8012.fits"]
    assert np.isfinite(spectra.tsnr2).all() and spectra.tsnr2[0] > 0
    np.testing.assert_array_equal(spectra.flux[0], spectra.flux[1])
    # It is no MWS target: the MWS sample of these files is empty.
    assert len(read_desi_coadds(pairs, spectype="STAR", z_range=None, target_class="mws")) == 0


def test_an_html_error_page_is_not_kept_as_a_fits_file(archive, tmp_path):
    pixel = EdrPixel("sv1", "bright", 27245)
    url = healpix_urls(pixel, archive.url + ROOT)["coadd"]
    archive.route("GET", url.removeprefix(archive.url), Response(body=b"<html>maintenance</html>"))
    out = tmp_path / "coadd.fits"
    with pytest.raises(FetchError, match=r"coadd-sv1-bright-27245\.fits: not a FITS file"):
        fetch_healpix(pixel, out, tmp_path / "redrock.fits", archive.url + ROOT, retries=0)
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_a_missing_pixel_names_its_url(archive, tmp_path):
    pixel = EdrPixel("sv3", "bright", 27245)
    with pytest.raises(FetchError, match=r"sv3/bright/272/27245/coadd-sv3-bright-27245\.fits: HTTP 404"):
        fetch_healpix(pixel, tmp_path / "c.fits", tmp_path / "r.fits", archive.url + ROOT, retries=0)
    with pytest.raises(FetchError, match="HTTP 404"):
        list_healpix("sv2", "bright", archive.url + ROOT, retries=0)
