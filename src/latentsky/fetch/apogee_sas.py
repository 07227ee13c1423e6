"""Fetch APOGEE DR17 spectra (apStar/asStar and aspcapStar files) from the SDSS Science Archive Server.

Cycle-StarNet's observed domain at full scale is APOGEE combined spectra (paper 002 §4.1; spec
``xp-svae-and-cyclestarnet.md`` §B4.1). DR17 serves one file per star and telescope under
:data:`DEFAULT_SAS_URL`::

    dr17/apogee/spectro/redux/dr17/stars/{TELESCOPE}/{FIELD}/apStar-dr17-{APOGEE_ID}.fits   (apo25m, apo1m)
    dr17/apogee/spectro/redux/dr17/stars/{TELESCOPE}/{FIELD}/asStar-dr17-{APOGEE_ID}.fits   (lco25m)
    dr17/apogee/spectro/aspcap/dr17/synspec_rev1/{TELESCOPE}/{FIELD}/aspcapStar-dr17-{APOGEE_ID}.fits

with ``TELESCOPE``, ``FIELD`` and ``APOGEE_ID`` the allStar columns of the star
(:func:`latentsky.fetch.gaia_xp.read_apogee_allstar` reads them; :func:`~latentsky.fetch.gaia_xp.fetch_apogee_allstar`
downloads the allStarLite file itself). The SDSS package ``sdss-access`` knows these path templates, but
it would add a dependency for a few format strings, so they are written here by hand (:data:`SAS_TEMPLATES`).

All HTTP goes through :mod:`latentsky.fetch.http` (retries, errors naming the URL). Each file is written
atomically and kept only when :func:`latentsky.io.apogee.check_apogee_fits` accepts it (a complete FITS file
with the flux, error and bitmask/model HDUs of 8,575 pixels), so a half-downloaded file or an HTML error
page never reaches the readers. Files already present and valid are not downloaded again, so a job for a
batch of stars can be rerun after a failure.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import requests

from latentsky.fetch.http import FetchError, download, http_session
from latentsky.io.apogee import ApogeeFormatError, check_apogee_fits
from latentsky.provenance.files import atomic_output

log = logging.getLogger(__name__)

__all__ = [
    "APOGEE_TELESCOPES",
    "DEFAULT_SAS_URL",
    "SAS_TEMPLATES",
    "ApogeeStar",
    "apogee_file_name",
    "apogee_sas_url",
    "fetch_apogee_spectra",
]

#: Root of the SDSS Science Archive Server.
DEFAULT_SAS_URL = "https://data.sdss.org/sas/"
#: APOGEE's telescopes in DR17: the APO 2.5 m and 1 m (north) and the du Pont 2.5 m at LCO (south).
APOGEE_TELESCOPES = ("apo25m", "apo1m", "lco25m")
#: DR17 paths under :data:`DEFAULT_SAS_URL`, by file kind (``sdss-access``'s templates, written by hand to
#: spare a dependency). ``prefix`` is ``asStar`` for lco25m, ``apStar`` otherwise.
SAS_TEMPLATES = {
    "apStar": "dr17/apogee/spectro/redux/dr17/stars/{telescope}/{field}/{prefix}-dr17-{apogee_id}.fits",
    "aspcapStar": (
        "dr17/apogee/spectro/aspcap/dr17/synspec_rev1/{telescope}/{field}/aspcapStar-dr17-{apogee_id}.fits"
    ),
}
# Field names ("000+02", "K04_083+13") and APOGEE ids ("2M19485057+5005279") are path segments: no slash,
# no space, nothing a URL would have to escape.
_SEGMENT = re.compile(r"[A-Za-z0-9_+.\-]+")


@dataclass(frozen=True)
class ApogeeStar:
    """One star as the allStar table names it: telescope, field and APOGEE_ID."""

    telescope: str
    field: str
    apogee_id: str

    def __post_init__(self) -> None:
        for name in ("telescope", "field", "apogee_id"):
            object.__setattr__(self, name, str(getattr(self, name)).strip())
        if self.telescope not in APOGEE_TELESCOPES:
            raise ValueError(f"APOGEE telescope must be one of {APOGEE_TELESCOPES}, not {self.telescope!r}")
        for name in ("field", "apogee_id"):
            value = getattr(self, name)
            if not _SEGMENT.fullmatch(value) or value in (".", ".."):
                raise ValueError(
                    f"APOGEE {name} {value!r} is not a file-name segment (letters, digits, _+.-)"
                )


def apogee_file_name(kind: Literal["apStar", "aspcapStar"], telescope: str, apogee_id: str) -> str:
    """The DR17 file name: ``apStar-dr17-{id}.fits`` (``asStar-…`` for lco25m) or ``aspcapStar-dr17-{id}.fits``."""
    if kind not in SAS_TEMPLATES:
        raise ValueError(f"kind must be one of {sorted(SAS_TEMPLATES)}, not {kind!r}")
    return SAS_TEMPLATES[kind].rsplit("/", 1)[1].format(prefix=_prefix(telescope), apogee_id=apogee_id)


def apogee_sas_url(
    kind: Literal["apStar", "aspcapStar"],
    telescope: str,
    field: str,
    apogee_id: str,
    base_url: str = DEFAULT_SAS_URL,
) -> str:
    """URL of a star's DR17 ``apStar``/``asStar`` (``kind="apStar"``) or ``aspcapStar`` file.

    Parameters
    ----------
    kind
        ``"apStar"`` (the lco25m file is named ``asStar-dr17-…``) or ``"aspcapStar"``.
    telescope, field, apogee_id
        The star's allStar ``TELESCOPE``, ``FIELD`` and ``APOGEE_ID``.
    base_url
        The SAS root (:data:`DEFAULT_SAS_URL`) or a mirror of its layout.

    Returns
    -------
    str
        The URL.
    """
    if kind not in SAS_TEMPLATES:
        raise ValueError(f"kind must be one of {sorted(SAS_TEMPLATES)}, not {kind!r}")
    star = ApogeeStar(telescope, field, apogee_id)
    path = SAS_TEMPLATES[kind].format(
        telescope=star.telescope, field=star.field, apogee_id=star.apogee_id, prefix=_prefix(star.telescope)
    )
    return (base_url if base_url.endswith("/") else base_url + "/") + path


def fetch_apogee_spectra(
    stars: Iterable[ApogeeStar | tuple[str, str, str]] | Any,
    out_dir: str | os.PathLike,
    kind: Literal["apStar", "aspcapStar"] = "apStar",
    base_url: str = DEFAULT_SAS_URL,
    *,
    session: requests.Session | None = None,
    timeout: float = 120.0,
    retries: int = 3,
    backoff_s: float = 5.0,
    progress: bool = False,
) -> list[Path]:
    """Download the DR17 files of ``stars`` into ``out_dir``, each checked before it is kept.

    Parameters
    ----------
    stars
        :class:`ApogeeStar` objects or ``(telescope, field, apogee_id)`` tuples, or a table (pandas
        DataFrame, astropy Table, FITS record array) with ``TELESCOPE``, ``FIELD`` and ``APOGEE_ID`` columns
        (e.g. :func:`latentsky.fetch.gaia_xp.read_apogee_allstar`'s rows).
    out_dir
        Files go to ``out_dir/{telescope}/{field}/{file name}``, the SAS layout (a star observed from both
        hemispheres has one file per telescope).
    kind
        ``"apStar"`` (``asStar`` for lco25m) or ``"aspcapStar"``.
    base_url
        The SAS root or a mirror of its layout.
    session, timeout, retries, backoff_s, progress
        HTTP settings, see :func:`latentsky.fetch.http.download`.

    Returns
    -------
    list of pathlib.Path
        One path per star, in input order. A file already there that passes the check is kept without a
        request; one that fails it is downloaded again.

    Raises
    ------
    FetchError
        Naming the URL: the download failed (e.g. HTTP 404), or the bytes are not a complete APOGEE file of
        ``kind`` (an HTML page, a truncated file, a missing HDU, the wrong number of pixels). Files fetched
        before the failure stay; nothing partial is written.
    """
    if kind not in SAS_TEMPLATES:
        raise ValueError(f"kind must be one of {sorted(SAS_TEMPLATES)}, not {kind!r}")
    session = http_session(session)
    out = Path(out_dir)
    paths: list[Path] = []
    for star in _as_stars(stars):
        url = apogee_sas_url(kind, star.telescope, star.field, star.apogee_id, base_url)
        dest = out / star.telescope / star.field / apogee_file_name(kind, star.telescope, star.apogee_id)
        paths.append(dest)
        if dest.exists():
            try:
                check_apogee_fits(dest, kind)
            except ApogeeFormatError as exc:
                log.warning("%s is present but not valid (%s); downloading it again", dest, exc)
            else:
                log.info("%s: present and valid, skipped", dest)
                continue
        with atomic_output(dest) as tmp:
            with open(tmp, "wb") as sink:
                n = download(
                    session,
                    url,
                    sink,
                    timeout=timeout,
                    retries=retries,
                    backoff_s=backoff_s,
                    progress=progress,
                )
            try:
                check_apogee_fits(tmp, kind, source=url)
            except ApogeeFormatError as exc:
                raise FetchError(str(exc)) from exc
        log.info("%s: %d bytes → %s", url, n, dest)
    return paths


def _prefix(telescope: str) -> str:
    return "asStar" if str(telescope).strip().startswith("lco") else "apStar"


def _as_stars(stars: Any) -> list[ApogeeStar]:
    """Stars from objects, tuples or a table with TELESCOPE/FIELD/APOGEE_ID columns (any case)."""
    if isinstance(stars, ApogeeStar):
        return [stars]
    names = getattr(stars, "colnames", None) or getattr(stars, "names", None)  # astropy Table, FITS_rec
    if names is None and hasattr(stars, "columns"):  # pandas
        names = [str(c) for c in stars.columns]
    if names is not None:
        by_upper = {str(n).upper(): n for n in names}
        missing = [c for c in ("TELESCOPE", "FIELD", "APOGEE_ID") if c not in by_upper]
        if missing:
            raise ValueError(f"star table lacks column(s) {missing}; it has {list(names)}")
        columns = [np.asarray(stars[by_upper[c]]).astype(str) for c in ("TELESCOPE", "FIELD", "APOGEE_ID")]
        return [ApogeeStar(t, f, i) for t, f, i in zip(*columns, strict=True)]
    return [s if isinstance(s, ApogeeStar) else ApogeeStar(*s) for s in stars]
