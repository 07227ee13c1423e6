"""Fetch DESI Early Data Release spectra by HEALPix pixel: the coadd and Redrock files of paper 003's sample.

The EDR (DESI Collaboration 2023; 'fuji' reduction, paper 003 Sec. 2) serves its HEALPix-grouped spectra
under :data:`DEFAULT_EDR_URL` in the DESI data model's layout::

    {survey}/{program}/{pixel // 100}/{pixel}/coadd-{survey}-{program}-{pixel}.fits
    {survey}/{program}/{pixel // 100}/{pixel}/redrock-{survey}-{program}-{pixel}.fits

with ``survey`` one of ``sv1``, ``sv2``, ``sv3`` (the EDR holds the survey-validation programmes), ``program``
``bright`` for BGS and MWS, and ``pixel`` a nested HEALPix index at nside 64. Every directory level has an
HTML index, from which :func:`list_healpix` reads the pixels a survey/programme holds.

All HTTP goes through :mod:`latentsky.fetch.http` (retries, errors naming the URL); each file is written
atomically and checked to be a FITS file with the extensions the reader needs before it is kept, so a
half-downloaded or HTML error page never reaches :func:`latentsky.io.desi.read_desi_coadd`.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin

import requests

from latentsky.fetch.http import FetchError, download, http_session, index_links
from latentsky.provenance.files import atomic_output

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_EDR_URL",
    "EDR_SURVEYS",
    "NSIDE",
    "EdrPixel",
    "healpix_urls",
    "list_healpix",
    "fetch_healpix",
]

#: Root of the EDR's HEALPix-grouped spectra ('fuji' reduction).
DEFAULT_EDR_URL = "https://data.desi.lbl.gov/public/edr/spectro/redux/fuji/healpix/"
#: Surveys of the EDR.
EDR_SURVEYS = ("sv1", "sv2", "sv3")
#: HEALPix resolution of the grouping (nested ordering).
NSIDE = 64
_N_PIXELS = 12 * NSIDE**2
#: FITS extensions each file must have.
_REQUIRED = {
    "coadd": ("FIBERMAP", "B_FLUX", "R_FLUX", "Z_FLUX"),
    "redrock": ("REDSHIFTS",),
}
_DIGITS = re.compile(r"/(\d+)/?$")


@dataclass(frozen=True)
class EdrPixel:
    """One survey/programme/HEALPix directory of the EDR."""

    survey: str
    program: str
    healpix: int

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-z0-9]+", self.survey) or not re.fullmatch(r"[a-z0-9]+", self.program):
            raise ValueError(
                f"DESI survey and program are lower-case names, not {self.survey!r}/{self.program!r}"
            )
        if not 0 <= int(self.healpix) < _N_PIXELS:
            raise ValueError(f"HEALPix pixel {self.healpix} is outside 0…{_N_PIXELS - 1} (nside {NSIDE})")

    @property
    def name(self) -> str:
        """``{survey}-{program}-{healpix}``, the files' shared stem."""
        return f"{self.survey}-{self.program}-{self.healpix}"


def healpix_urls(pixel: EdrPixel, base_url: str = DEFAULT_EDR_URL) -> dict[str, str]:
    """URLs of the pixel's ``coadd`` and ``redrock`` files."""
    directory = urljoin(
        _dir(base_url), f"{pixel.survey}/{pixel.program}/{pixel.healpix // 100}/{pixel.healpix}/"
    )
    return {kind: f"{directory}{kind}-{pixel.name}.fits" for kind in _REQUIRED}


def list_healpix(
    survey: str,
    program: str,
    base_url: str = DEFAULT_EDR_URL,
    *,
    session: requests.Session | None = None,
    timeout: float = 60.0,
    retries: int = 3,
    backoff_s: float = 2.0,
) -> list[EdrPixel]:
    """Every HEALPix directory of ``survey``/``program``, read from the archive's directory indexes
    (``{survey}/{program}/`` lists the pixel groups, each group its pixels), sorted by pixel."""
    session = http_session(session)
    kw = {"timeout": timeout, "retries": retries, "backoff_s": backoff_s}
    top = urljoin(_dir(base_url), f"{survey}/{program}/")
    pixels = []
    for group_url in _numbered_links(index_links(session, top, **kw), top):
        group = int(_DIGITS.search(group_url).group(1))
        for pixel_url in _numbered_links(index_links(session, group_url, **kw), group_url):
            pixel = int(_DIGITS.search(pixel_url).group(1))
            if pixel // 100 != group:
                raise FetchError(
                    f"{pixel_url}: pixel {pixel} listed in group {group}, expected group {pixel // 100}"
                )
            pixels.append(EdrPixel(survey, program, pixel))
    if not pixels:
        raise FetchError(f"{top}: the index lists no HEALPix pixel directories")
    return sorted(pixels, key=lambda p: p.healpix)


def fetch_healpix(
    pixel: EdrPixel,
    coadd_path: str | os.PathLike,
    redrock_path: str | os.PathLike,
    base_url: str = DEFAULT_EDR_URL,
    *,
    session: requests.Session | None = None,
    timeout: float = 300.0,
    retries: int = 3,
    backoff_s: float = 5.0,
) -> dict[str, Path]:
    """Download the pixel's coadd and Redrock files (each atomically, each checked to be a FITS file with
    the extensions the reader needs). Returns ``{"coadd": path, "redrock": path}``."""
    session = http_session(session)
    urls = healpix_urls(pixel, base_url)
    out = {"coadd": Path(coadd_path), "redrock": Path(redrock_path)}
    for kind, url in urls.items():
        with atomic_output(out[kind]) as tmp, open(tmp, "wb") as sink:
            n = download(session, url, sink, timeout=timeout, retries=retries, backoff_s=backoff_s)
            sink.close()
            _check_fits(tmp, url, _REQUIRED[kind])
        log.info("%s: %d bytes → %s", url, n, out[kind])
    return out


def _check_fits(path: str | os.PathLike, url: str, required: tuple[str, ...]) -> None:
    from astropy.io import fits

    try:
        with fits.open(path, memmap=False) as hdul:
            names = {h.name for h in hdul}
    except (OSError, ValueError) as exc:
        raise FetchError(f"{url}: not a FITS file ({exc})") from exc
    missing = [e for e in required if e not in names]
    if missing:
        raise FetchError(f"{url}: FITS file without the extension(s) {missing}; found {sorted(names)}")


def _dir(url: str) -> str:
    return url if url.endswith("/") else url + "/"


def _numbered_links(links: list[str], parent: str) -> list[str]:
    """The sub-directory links of an index whose names are integers (groups or pixels), deduplicated."""
    seen: dict[str, None] = {}
    for link in links:
        if link.startswith(parent) and link != parent and _DIGITS.search(link) and link.endswith("/"):
            seen.setdefault(link, None)
    return list(seen)
