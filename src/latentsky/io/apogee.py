"""APOGEE spectra: the apStar and aspcapStar readers, and the preprocessing into Cycle-StarNet's observed domain.

Cycle-StarNet (paper 002, O'Briain et al. 2021, Sec. 4.1; spec ``xp-svae-and-cyclestarnet.md`` §B4) takes
APOGEE combined spectra as its observed domain: "All spectra are continuum normalized using the same routine
as in Ting et al. 2019", i.e. The Payne's. This module reads the SDSS files and reproduces that routine.

Files (SDSS data model; the DR13 and DR17 layouts are the same where it matters, spec §B4.1):

* ``apStar-r6-<ID>.fits`` (DR13), ``apStar-dr17-<ID>.fits`` / ``asStar-dr17-<ID>.fits`` (DR17, ``asStar``
  for the southern ``lco25m`` telescope): HDU1 flux (10⁻¹⁷ erg s⁻¹ cm⁻² Å⁻¹), HDU2 its error, HDU3 the
  pixel bitmask (:class:`ApogeePixmask`), each (NVISITS + 2, 8575): row 0 the pixel-weighted and row 1 the
  globally weighted combination, then the visits. Older single-visit files hold 1-D arrays; a DR17 file of
  one visit keeps two rows, of which only row 0 holds data (row 1 is all zero in the test file
  ``apStar-dr17-2M19485057+5005279``), so for NVISITS = 1 the reader takes row 0, which is then both
  combinations. DR17 marks pixels outside the detectors with NaN flux.
* ``aspcapStar-r6-l30e.2-<ID>.fits`` (DR13), ``aspcapStar-dr17-<ID>.fits`` (DR17): HDU1 the ASPCAP-normalised
  flux, HDU2 its error, HDU3 the best-fit model, each (8575,); HDU4 a one-row table (``PARAM``, ``FPARAM``,
  ``X_H``, ``ASPCAPFLAG``, …) when present. Masked pixels and chip gaps have flux 0 and errors up to ~100.

All share one log-linear grid: log10 λ/Å = 4.179 + 6·10⁻⁶ i, i = 0 … 8574 (``CRVAL1``, ``CDELT1``), vacuum
wavelengths (paper 002, spec §B4.2 step 6). The ASPCAP grid drops the chip gaps and edges: apStar pixels
[322:3242], [3648:6048] and [6412:8306] (The Payne's ``toAspcapGrid``, DR12 definition), 7,214 pixels whose
wavelengths are ``resources/apogee/apogee_wavelength.npz``.

Preprocessing (:func:`normalise_for_cyclestarnet`, spec §B4.2 steps 1–4):

1. the apStar grid → the ASPCAP grid (:func:`to_aspcap_grid`);
2. bad pixels (:func:`flag_bad_pixels`): bitmask & :data:`PIXMASK_BAD` (16639; 20735 =
   :data:`PIXMASK_BAD_SKYLINE` also drops sky-line pixels) get weight 0; flux ≤ 0 (or NaN) becomes 0.01 with
   error 999·max|flux|, The Payne's convention for dead pixels;
3. continuum (:func:`payne_continuum`): The Payne's ``get_apogee_continuum`` — per chip a degree-4 Chebyshev
   polynomial in the chip's pixel index rescaled to [−1, 1], fitted to the 529 Cannon continuum pixels with
   weights 1/σ; flux and error are divided by it;
4. errors floored at 0.005, pixels with error > 0.05 masked, the first 47 pixels dropped → 7,167 (the
   length Cycle-StarNet's convolutions need; the authors' code drops the blue end, ``x[:, 47:]``).

Bad input (a missing HDU, a spectrum that is not 8,575 pixels long, a truncated file) raises a one-line
:class:`ApogeeFormatError` naming the file, the HDU and what was expected.
"""

from __future__ import annotations

import dataclasses
import enum
import os
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np
from astropy.io import fits
from astropy.utils.exceptions import AstropyWarning

from latentsky.config import REPO_ROOT

__all__ = [
    "APSTAR_LOG10_START",
    "APSTAR_LOG10_STEP",
    "ASPCAP_CHIPS",
    "CONTINUUM_DEGREE",
    "CYCLESTARNET_CROP",
    "ERROR_FLOOR",
    "MAX_ERROR",
    "N_APSTAR_PIXELS",
    "N_ASPCAP_PIXELS",
    "PIXMASK_BAD",
    "PIXMASK_BAD_SKYLINE",
    "RESOURCE_DIR",
    "ApogeeFormatError",
    "ApogeePixmask",
    "ApogeeSpectrum",
    "CycleStarNetSpectrum",
    "apstar_wavelength",
    "aspcap_wavelength",
    "cannon_continuum_pixels",
    "check_apogee_fits",
    "flag_bad_pixels",
    "normalise_for_cyclestarnet",
    "payne_continuum",
    "payne_fitting_mask",
    "read_apstar",
    "read_aspcapstar",
    "to_aspcap_grid",
]

#: Pixels of the apStar/aspcapStar log-linear grid.
N_APSTAR_PIXELS = 8575
#: log10(λ/Å) of apStar pixel 0 (``CRVAL1``) and the step (``CDELT1``).
APSTAR_LOG10_START = 4.179
APSTAR_LOG10_STEP = 6e-6
#: The three detectors (blue, green, red) as apStar pixel ranges [lo, hi): The Payne's ``toAspcapGrid``.
ASPCAP_CHIPS = ((322, 3242), (3648, 6048), (6412, 8306))
#: Pixels of the ASPCAP grid (2,920 + 2,400 + 1,894).
N_ASPCAP_PIXELS = sum(hi - lo for lo, hi in ASPCAP_CHIPS)
#: Blue-end pixels Cycle-StarNet's code drops (``x[:, 47:]``), leaving 7,167 (spec §B1.2, §D3).
CYCLESTARNET_CROP = 47
#: Cycle-StarNet's error floor and the error above which a pixel is masked (normalised flux units, §B1.3).
ERROR_FLOOR = 0.005
MAX_ERROR = 0.05
#: Degree of The Payne's per-chip Chebyshev continuum.
CONTINUUM_DEGREE = 4
#: The Payne's dead pixels (flux ≤ 0): flux set to this, error to this factor × max|flux|.
DEAD_PIXEL_FLUX = 0.01
DEAD_PIXEL_ERROR_FACTOR = 999.0
#: The Payne's APOGEE files (tingyuansen/The_Payne@610ff91, MIT), needed at run time.
RESOURCE_DIR = REPO_ROOT / "resources" / "apogee"

#: log10 λ tolerance when checking a file's grid against the apStar one (its headers print 4.179 and 6E-06).
_GRID_TOLERANCE = 1e-9
_ROWS = {"pixel": 0, "global": 1}


class ApogeePixmask(enum.IntFlag):
    """APOGEE ``APOGEE_PIXMASK`` bits of the apStar HDU3 bitmask (SDSS data model, DR13–DR17)."""

    BADPIX = 1 << 0  # marked bad in the bad-pixel mask
    CRPIX = 1 << 1  # cosmic ray (ap3d)
    SATPIX = 1 << 2  # saturated (ap3d)
    UNFIXABLE = 1 << 3  # unfixable (ap3d)
    BADDARK = 1 << 4  # bad according to the dark frame
    BADFLAT = 1 << 5  # bad according to the flat frame
    BADERR = 1 << 6  # set to a very high error
    NOSKY = 1 << 7  # no sky available from the sky fibres
    LITTROW_GHOST = 1 << 8  # in the Littrow ghost, may be affected
    PERSIST_HIGH = 1 << 9  # high-persistence region
    PERSIST_MED = 1 << 10  # medium-persistence region
    PERSIST_LOW = 1 << 11  # low-persistence region
    SIG_SKYLINE = 1 << 12  # near a sky line with significant flux compared with the object
    SIG_TELLURIC = 1 << 13  # near a telluric line with significant absorption
    NOT_ENOUGH_PSF = 1 << 14  # less than 50 % of the PSF in good pixels


#: Bits that make a pixel unusable (= 16639), the choice of a public APOGEE reader (Nidever's ``doppler``):
#: the detector and reduction failures; persistence, ghosts, sky and telluric lines are only warnings.
PIXMASK_BAD = int(
    ApogeePixmask.BADPIX
    | ApogeePixmask.CRPIX
    | ApogeePixmask.SATPIX
    | ApogeePixmask.UNFIXABLE
    | ApogeePixmask.BADDARK
    | ApogeePixmask.BADFLAT
    | ApogeePixmask.BADERR
    | ApogeePixmask.NOSKY
    | ApogeePixmask.NOT_ENOUGH_PSF
)
#: :data:`PIXMASK_BAD` plus SIG_SKYLINE (= 20735), the stricter choice offered by the config.
PIXMASK_BAD_SKYLINE = PIXMASK_BAD | int(ApogeePixmask.SIG_SKYLINE)


class ApogeeFormatError(ValueError):
    """An APOGEE file lacks an HDU or holds arrays of the wrong shape; the message names the file and HDU."""


@dataclass
class ApogeeSpectrum:
    """One APOGEE spectrum on the 8,575-pixel apStar grid.

    Attributes
    ----------
    path : the file read.
    kind : ``"apStar"`` (flux in 10⁻¹⁷ erg s⁻¹ cm⁻² Å⁻¹) or ``"aspcapStar"`` (ASPCAP-normalised flux).
    apogee_id : the 2MASS-style APOGEE identifier.
    wavelength : (8575,) vacuum wavelength in Å.
    flux, error : (8575,) float64.
    bitmask : (8575,) int64 :class:`ApogeePixmask` bits (apStar), ``None`` for aspcapStar.
    model : (8575,) ASPCAP best-fit model (aspcapStar), ``None`` for apStar.
    params : aspcapStar: the HDU4 table row (``PARAM``, ``FPARAM``, ``X_H``, ``ASPCAPFLAG``, …) by column name;
        apStar: the header's ``STARFLAG``, ``ANDFLAG``, ``VHELIO``, ``VSCATTER``, ``VERR``, ``RA``, ``DEC``
        where present.
    good : (8575,) bool, True where the pixel can be used (see :func:`read_apstar`, :func:`read_aspcapstar`).
    row : the row of the 2-D apStar arrays that was read (0 pixel-, 1 globally weighted); ``None`` for 1-D.
    nvisits, snr, telescope, field : header facts, ``None`` where the file does not say.
    """

    path: Path
    kind: str
    apogee_id: str
    wavelength: np.ndarray
    flux: np.ndarray
    error: np.ndarray
    bitmask: np.ndarray | None
    model: np.ndarray | None
    params: dict[str, Any] = dataclasses.field(default_factory=dict)
    good: np.ndarray | None = None
    row: int | None = None
    nvisits: int | None = None
    snr: float | None = None
    telescope: str | None = None
    field: str | None = None

    def for_cyclestarnet(self, **kw: Any) -> CycleStarNetSpectrum:
        """:func:`normalise_for_cyclestarnet` of this spectrum: The Payne's continuum for an apStar, the
        ASPCAP normalisation for an aspcapStar (``normalisation=`` overrides); ``kw`` are its options."""
        kw.setdefault("normalisation", "aspcap" if self.kind == "aspcapStar" else "payne")
        return normalise_for_cyclestarnet(self.flux, self.error, self.bitmask, source=str(self.path), **kw)


class CycleStarNetSpectrum(NamedTuple):
    """A spectrum in Cycle-StarNet's observed domain (7,167 pixels by default); unpacks as a tuple."""

    flux: np.ndarray  #: continuum-normalised flux
    error: np.ndarray  #: its error, ≥ 0.005
    mask: np.ndarray  #: bool, True = use this pixel (not flagged, error ≤ 0.05)


# ------------------------------------------------------------------------------------------------ grids
def apstar_wavelength() -> np.ndarray:
    """The (8575,) vacuum wavelengths in Å of the apStar grid, 10**(4.179 + 6e-6 i)."""
    return 10.0 ** (APSTAR_LOG10_START + APSTAR_LOG10_STEP * np.arange(N_APSTAR_PIXELS))


def to_aspcap_grid(values: np.ndarray, source: str = "array") -> np.ndarray:
    """The ASPCAP pixels of apStar-grid values: [322:3242], [3648:6048], [6412:8306] of the last axis.

    Parameters
    ----------
    values
        (..., 8575) array on the apStar grid (flux, error, bitmask, wavelength).
    source
        Name used in the error message (a file name).

    Returns
    -------
    numpy.ndarray
        (..., 7214), the same dtype (a copy).

    Raises
    ------
    ApogeeFormatError
        When the last axis is not 8,575 long.
    """
    values = np.asarray(values)
    if values.ndim == 0 or values.shape[-1] != N_APSTAR_PIXELS:
        raise ApogeeFormatError(
            f"{source}: {values.shape[-1] if values.ndim else 0} pixels along the last axis, expected the "
            f"{N_APSTAR_PIXELS}-pixel apStar grid"
        )
    return np.concatenate([values[..., lo:hi] for lo, hi in ASPCAP_CHIPS], axis=-1)


def _load_npz(path: str | os.PathLike | None, default: str, key: str) -> np.ndarray:
    path = RESOURCE_DIR / default if path is None else Path(path)
    with np.load(path) as data:
        if key not in data:
            raise ApogeeFormatError(f"{path}: no array {key!r} (found {sorted(data.files)})")
        array = np.asarray(data[key])
    if array.shape != (N_ASPCAP_PIXELS,):
        raise ApogeeFormatError(f"{path}: {key} has shape {array.shape}, expected ({N_ASPCAP_PIXELS},)")
    return array


def aspcap_wavelength(path: str | os.PathLike | None = None) -> np.ndarray:
    """The Payne's (7214,) ASPCAP vacuum wavelength grid in Å (``resources/apogee/apogee_wavelength.npz``)."""
    return _load_npz(path, "apogee_wavelength.npz", "wavelength").astype(np.float64)


def cannon_continuum_pixels(path: str | os.PathLike | None = None) -> np.ndarray:
    """The (7214,) bool mask of the 529 Cannon continuum pixels on the ASPCAP grid (Ness et al. 2015, as The
    Payne ships it in ``cannon_cont_pixels_apogee.npz``)."""
    return _load_npz(path, "cannon_cont_pixels_apogee.npz", "pixels_cannon").astype(bool)


def payne_fitting_mask(path: str | os.PathLike | None = None) -> np.ndarray:
    """The Payne's (7214,) bool fitting mask, True = pixel omitted from label fits (875 pixels where its tuned
    Kurucz models deviate by more than 2 % from the APOGEE spectra of Arcturus and the Sun)."""
    return _load_npz(path, "apogee_mask.npz", "apogee_mask").astype(bool)


# ----------------------------------------------------------------------------------------------- FITS
def _open_fits(path: Path, source: str) -> fits.HDUList:
    try:
        with warnings.catch_warnings():
            # Truncation and header-verification warnings: the checks below turn what matters into errors.
            warnings.simplefilter("ignore", AstropyWarning)
            hdul = fits.open(path, memmap=False, lazy_load_hdus=False)
    except FileNotFoundError:
        raise
    except (OSError, EOFError, ValueError, TypeError) as exc:
        with open(path, "rb") as fh:
            head = fh.read(40)
        raise ApogeeFormatError(f"{source}: not a FITS file ({exc}; starts {head!r})") from exc
    return hdul


def _hdu_end(hdu: Any) -> tuple[int, int]:  # any astropy HDU read from a file
    """(end of the data, end of the data padded to 2880 bytes) in the file, from the header alone (FITS
    standard 4.4.1: |BITPIX|/8 · GCOUNT · (PCOUNT + NAXIS1 ⋯ NAXISn) bytes, no data when NAXIS = 0)."""
    header = hdu.header
    naxis = int(header.get("NAXIS", 0))
    size = 0
    if naxis:
        size = int(np.prod([int(header[f"NAXIS{i}"]) for i in range(1, naxis + 1)], dtype=np.int64))
        size = (
            abs(int(header["BITPIX"]))
            // 8
            * int(header.get("GCOUNT", 1))
            * (int(header.get("PCOUNT", 0)) + size)
        )
    start = int(hdu.fileinfo()["datLoc"])
    return start + size, start + -(-size // 2880) * 2880


def _check_complete(hdul: fits.HDUList, path: Path, source: str, upto: int | None) -> None:
    """A truncated download fails here: the file must hold the data of HDUs 0…``upto`` (all when None, and
    then nothing may follow the last HDU's padding)."""
    if path.name.endswith(".gz"):  # positions are in the decompressed stream; gzip's CRC catches truncation
        return
    size = path.stat().st_size
    last = len(hdul) - 1 if upto is None else min(upto, len(hdul) - 1)
    for index in range(last + 1):
        end, _ = _hdu_end(hdul[index])
        if size < end:
            raise ApogeeFormatError(
                f"{source}: truncated file ({size} bytes); HDU{index} needs {end} bytes, download it again"
            )
    if upto is None and size > _hdu_end(hdul[last])[1]:
        raise ApogeeFormatError(
            f"{source}: {size - _hdu_end(hdul[last])[1]} bytes after the last complete HDU (HDU{last}); "
            "the file is damaged or its last HDU truncated"
        )


def _image(hdul: fits.HDUList, index: int, name: str, source: str, kind: str) -> np.ndarray:
    """HDU ``index`` as a native-byte-order array whose last axis is the 8,575-pixel grid."""
    if len(hdul) <= index:
        raise ApogeeFormatError(
            f"{source}: no HDU{index} ({name}); the file has {len(hdul)} HDUs, an {kind} file has "
            f"flux, error and {'bitmask' if kind == 'apStar' else 'model'} in HDU1–3"
        )
    hdu = hdul[index]
    if not isinstance(hdu, fits.ImageHDU | fits.PrimaryHDU):
        raise ApogeeFormatError(f"{source}: HDU{index} ({name}) is a {type(hdu).__name__}, expected an image")
    try:
        data = hdu.data
    except (OSError, EOFError, ValueError, TypeError) as exc:
        raise ApogeeFormatError(
            f"{source}: HDU{index} ({name}) cannot be read, the file is truncated or damaged ({exc})"
        ) from exc
    if data is None or data.ndim not in (1, 2) or data.shape[-1] != N_APSTAR_PIXELS:
        shape = None if data is None else data.shape
        raise ApogeeFormatError(
            f"{source}: HDU{index} ({name}) has shape {shape}, expected {N_APSTAR_PIXELS} pixels per row "
            f"(the apStar grid log10 λ = {APSTAR_LOG10_START} + {APSTAR_LOG10_STEP:g} i)"
        )
    return data.astype(data.dtype.newbyteorder("="), copy=True)


def _wavelength(hdul: fits.HDUList, source: str) -> np.ndarray:
    """The grid from HDU1's (else HDU0's) CRVAL1/CDELT1/CRPIX1, checked to be the apStar grid (the ASPCAP
    pixel ranges and The Payne's files assume it)."""
    for index in (1, 0):
        header = hdul[index].header
        if "CRVAL1" in header and "CDELT1" in header:
            start = float(header["CRVAL1"]) - float(header["CDELT1"]) * (float(header.get("CRPIX1", 1)) - 1)
            step = float(header["CDELT1"])
            break
    else:
        raise ApogeeFormatError(f"{source}: no CRVAL1/CDELT1 in HDU1 or HDU0, expected the log10 λ grid")
    if (
        abs(start - APSTAR_LOG10_START) > _GRID_TOLERANCE
        or abs(step - APSTAR_LOG10_STEP) > _GRID_TOLERANCE * 1e-3
    ):
        raise ApogeeFormatError(
            f"{source}: HDU{index} grid log10 λ = {start} + {step:g} i, expected the apStar grid "
            f"{APSTAR_LOG10_START} + {APSTAR_LOG10_STEP:g} i"
        )
    return apstar_wavelength()


def _header_value(headers: list[fits.Header], *keys: str) -> Any:
    for header in headers:
        for key in keys:
            if key in header and header[key] not in (None, ""):
                value = header[key]
                return value.strip() if isinstance(value, str) else value
    return None


def _table_row(hdul: fits.HDUList, index: int, source: str) -> dict[str, Any]:
    """The first row of a table HDU as {column: value}: strings stripped, arrays native-endian, scalars as
    Python numbers. Empty when the HDU is absent or not a table (DR17 files need not carry one)."""
    if len(hdul) <= index or not isinstance(hdul[index], fits.BinTableHDU):
        return {}
    try:
        data = hdul[index].data
    except (OSError, EOFError, ValueError, TypeError) as exc:
        raise ApogeeFormatError(f"{source}: HDU{index} (table) cannot be read ({exc})") from exc
    if data is None or len(data) == 0:
        return {}
    row: dict[str, Any] = {}
    for name in data.columns.names:
        value = data[name][0]
        if isinstance(value, bytes | np.bytes_):
            value = value.decode(errors="replace")
        if isinstance(value, str):
            value = value.strip()
        elif isinstance(value, np.ndarray):
            value = value.astype(value.dtype.newbyteorder("=")) if value.dtype.kind != "U" else value
        elif isinstance(value, np.generic):
            value = value.item()
        row[name] = value
    return row


_ID_FROM_NAME = re.compile(r"^(?:apStar|asStar|aspcapStar)-(?:r\d+|dr\d+)(?:-l\w+\.\d+)?-(?P<id>.+?)\.fits")


def _apogee_id(headers: list[fits.Header], table: Mapping[str, Any], path: Path) -> str:
    value = _header_value(headers, "APOGEE_ID", "OBJID", "OBJ") or table.get("APOGEE_ID")
    if value:
        return str(value).strip()
    match = _ID_FROM_NAME.match(path.name)
    return match.group("id") if match else path.name.split(".fits")[0]


def _telescope(headers: list[fits.Header], table: Mapping[str, Any], path: Path) -> str | None:
    value = _header_value(headers, "TELESCOP", "TELESCOPE") or table.get("TELESCOPE")
    if value:
        return str(value).strip()
    # DR17 apStar headers name no telescope; an asStar file is lco25m's (apStar is apo25m or apo1m).
    return "lco25m" if path.name.startswith("asStar-") else None


def _as_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _as_float(value: Any) -> float | None:
    return None if value is None else float(value)


def check_apogee_fits(
    path: str | os.PathLike, kind: Literal["apStar", "aspcapStar"], *, source: str | None = None
) -> None:
    """Check that ``path`` is a complete APOGEE file of ``kind`` before it is kept (the fetcher's test).

    The file must open as FITS, end where its last HDU ends (a truncated download fails), and have HDU1–3
    images with 8,575 pixels per row on the apStar wavelength grid (apStar: all three the same shape).

    Parameters
    ----------
    path
        The file.
    kind
        ``"apStar"`` (also for ``asStar``) or ``"aspcapStar"``.
    source
        Name for the messages (e.g. the URL it came from); the path by default.

    Raises
    ------
    ApogeeFormatError
        One line naming ``source``, the HDU and what was expected.
    """
    path = Path(path)
    source = str(path) if source is None else source
    names = _KIND_HDUS.get(kind)
    if names is None:
        raise ValueError(f"kind must be one of {sorted(_KIND_HDUS)}, not {kind!r}")
    with _open_fits(path, source) as hdul:
        _check_complete(hdul, path, source, upto=None)
        arrays = [_image(hdul, i, name, source, kind) for i, name in enumerate(names, start=1)]
        _wavelength(hdul, source)
    _check_shapes(arrays, names, source, kind)


_KIND_HDUS = {"apStar": ("flux", "error", "bitmask"), "aspcapStar": ("flux", "error", "model")}


def _check_shapes(arrays: list[np.ndarray], names: tuple[str, ...], source: str, kind: str) -> None:
    shapes = [a.shape for a in arrays]
    if len(set(shapes)) != 1:
        described = ", ".join(
            f"HDU{i} ({n}) {s}" for i, (n, s) in enumerate(zip(names, shapes, strict=True), 1)
        )
        raise ApogeeFormatError(f"{source}: {described}; expected one shape")
    if kind == "apStar" and arrays[2].dtype.kind not in "iu":
        raise ApogeeFormatError(
            f"{source}: HDU3 (bitmask) holds {arrays[2].dtype} values, expected integer APOGEE_PIXMASK bits"
        )
    if kind == "aspcapStar" and arrays[0].ndim == 2 and arrays[0].shape[0] != 1:
        raise ApogeeFormatError(
            f"{source}: HDU1 (flux) has shape {arrays[0].shape}, expected one aspcapStar spectrum "
            f"({N_APSTAR_PIXELS},)"
        )


# --------------------------------------------------------------------------------------------- readers
def read_apstar(
    path: str | os.PathLike, row: Literal["global", "pixel"] = "global", *, badmask: int = PIXMASK_BAD
) -> ApogeeSpectrum:
    """Read the combined spectrum of an apStar file (DR13 ``apStar-r6-…``, DR17 ``apStar-dr17-…`` and
    ``asStar-dr17-…``).

    Parameters
    ----------
    path
        The FITS file.
    row
        ``"global"`` (row 1, global weighting: The Payne's ``_COMBINED_INDEX``, the default) or ``"pixel"``
        (row 0, pixel-by-pixel weighting). Ignored where there is one combination: 1-D arrays (single-visit
        files of older releases) and NVISITS = 1 in DR17 (row 0, the only row with data).
    badmask
        Bitmask bits that make :attr:`ApogeeSpectrum.good` False (:data:`PIXMASK_BAD`, or
        :data:`PIXMASK_BAD_SKYLINE`).

    Returns
    -------
    ApogeeSpectrum
        ``kind="apStar"``; flux, error and bitmask of the row; ``good`` = finite flux > 0, finite error > 0
        and no ``badmask`` bit.

    Raises
    ------
    ApogeeFormatError
        A missing HDU1–3, arrays that are not 8,575 pixels per row or differ in shape, a grid other than the
        apStar one, a truncated file, or a row without any flux.
    """
    if row not in _ROWS:
        raise ValueError(f"row must be 'global' or 'pixel', not {row!r}")
    path = Path(path)
    source = str(path)
    with _open_fits(path, source) as hdul:
        _check_complete(hdul, path, source, upto=3)
        flux, error, bitmask = (
            _image(hdul, i, n, source, "apStar") for i, n in enumerate(_KIND_HDUS["apStar"], 1)
        )
        _check_shapes([flux, error, bitmask], _KIND_HDUS["apStar"], source, "apStar")
        wavelength = _wavelength(hdul, source)
        headers = [hdul[0].header, hdul[1].header]
        nvisits = _as_int(_header_value(headers, "NVISITS"))
        params = {
            k: _header_value(headers, k) for k in _APSTAR_PARAMS if _header_value(headers, k) is not None
        }
        apogee_id = _apogee_id(headers, {}, path)
        telescope = _telescope(headers, {}, path)
        field_name = _header_value(headers, "FIELD")
        snr = _as_float(_header_value(headers, "SNR"))
    index: int | None = None
    if flux.ndim == 2:
        index = 0 if nvisits == 1 else _ROWS[row]
        if index >= flux.shape[0]:
            raise ApogeeFormatError(
                f"{source}: HDU1 (flux) has {flux.shape[0]} row(s), no row {index} ({row} weighting)"
            )
        flux, error, bitmask = flux[index], error[index], bitmask[index]
    if not np.any(np.isfinite(flux) & (flux != 0)):
        raise ApogeeFormatError(f"{source}: HDU1 (flux) row {index} holds no flux (all zero or NaN)")
    flux = flux.astype(np.float64)
    error = error.astype(np.float64)
    bitmask = bitmask.astype(np.int64)
    with np.errstate(invalid="ignore"):
        good = np.isfinite(flux) & (flux > 0) & np.isfinite(error) & (error > 0) & ((bitmask & badmask) == 0)
    return ApogeeSpectrum(
        path=path,
        kind="apStar",
        apogee_id=apogee_id,
        wavelength=wavelength,
        flux=flux,
        error=error,
        bitmask=bitmask,
        model=None,
        params=params,
        good=good,
        row=index,
        nvisits=nvisits,
        snr=snr,
        telescope=telescope,
        field=field_name,
    )


_APSTAR_PARAMS = ("STARFLAG", "ANDFLAG", "VHELIO", "VSCATTER", "VERR", "RA", "DEC")


def read_aspcapstar(path: str | os.PathLike, *, max_error: float = MAX_ERROR) -> ApogeeSpectrum:
    """Read an aspcapStar file (DR13 ``aspcapStar-r6-l30e.2-…``, DR17 ``aspcapStar-dr17-…``).

    Parameters
    ----------
    path
        The FITS file.
    max_error
        Pixels with a larger error are not :attr:`~ApogeeSpectrum.good`. ASPCAP inflates the errors of the
        pixels it masks (up to ~100) rather than flagging them; the default is Cycle-StarNet's rule (0.05 in
        normalised flux, spec §B1.3).

    Returns
    -------
    ApogeeSpectrum
        ``kind="aspcapStar"``; normalised flux, error and the best-fit ``model``; ``params`` from the HDU4
        table when present; ``good`` = finite flux > 0 and 0 < error ≤ ``max_error`` (chip gaps and masked
        pixels have flux 0).

    Raises
    ------
    ApogeeFormatError
        A missing HDU1–3, arrays that are not one 8,575-pixel spectrum, a grid other than the apStar one, or
        a truncated file.
    """
    path = Path(path)
    source = str(path)
    with _open_fits(path, source) as hdul:
        _check_complete(hdul, path, source, upto=3)
        arrays = [_image(hdul, i, n, source, "aspcapStar") for i, n in enumerate(_KIND_HDUS["aspcapStar"], 1)]
        _check_shapes(arrays, _KIND_HDUS["aspcapStar"], source, "aspcapStar")
        wavelength = _wavelength(hdul, source)
        table = _table_row(hdul, 4, source)
        headers = [hdul[0].header, hdul[1].header]
        apogee_id = _apogee_id(headers, table, path)
        telescope = _telescope(headers, table, path)
        field_name = _header_value(headers, "FIELD") or table.get("FIELD")
        nvisits = _as_int(_header_value(headers, "NVISITS") or table.get("NVISITS"))
        snr = _as_float(_header_value(headers, "SNR") or table.get("SNR"))
    flux, error, model = (a.reshape(N_APSTAR_PIXELS).astype(np.float64) for a in arrays)
    with np.errstate(invalid="ignore"):
        good = np.isfinite(flux) & (flux > 0) & np.isfinite(error) & (error > 0) & (error <= max_error)
    return ApogeeSpectrum(
        path=path,
        kind="aspcapStar",
        apogee_id=apogee_id,
        wavelength=wavelength,
        flux=flux,
        error=error,
        bitmask=None,
        model=model,
        params=table,
        good=good,
        row=None,
        nvisits=nvisits,
        snr=snr,
        telescope=telescope,
        field=str(field_name) if field_name else None,
    )


# ------------------------------------------------------------------------------------ preprocessing
def _on_aspcap_grid(values: np.ndarray, name: str, source: str) -> np.ndarray:
    values = np.asarray(values)
    if values.ndim not in (1, 2):
        raise ApogeeFormatError(f"{source}: {name} has shape {values.shape}, expected (L,) or (N, L)")
    if values.shape[-1] == N_APSTAR_PIXELS:
        return to_aspcap_grid(values, source)
    if values.shape[-1] == N_ASPCAP_PIXELS:
        return values
    raise ApogeeFormatError(
        f"{source}: {name} has {values.shape[-1]} pixels, expected {N_APSTAR_PIXELS} (apStar grid) or "
        f"{N_ASPCAP_PIXELS} (ASPCAP grid)"
    )


def flag_bad_pixels(
    flux: np.ndarray,
    error: np.ndarray,
    bitmask: np.ndarray | None = None,
    *,
    badmask: int = PIXMASK_BAD,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bad pixels the way The Payne treats dead ones (spec §B4.2 step 2).

    Parameters
    ----------
    flux, error
        (L,) or (N, L) on any grid.
    bitmask
        The apStar bitmask on the same grid, or ``None``.
    badmask
        Bits that make a pixel bad (:data:`PIXMASK_BAD` = 16639, or :data:`PIXMASK_BAD_SKYLINE` = 20735).

    Returns
    -------
    flux, error, good
        Float64 copies and a bool array. Where flux ≤ 0 or NaN (DR17's off-detector pixels) the flux becomes
        0.01 (The Payne's ``spec[spec <= 0] = 0.01``); every bad pixel (those, a ``badmask`` bit, or an
        error that is not finite and > 0) gets error 999·max|flux| of its spectrum, i.e. weight ≈ 0 in any
        1/σ-weighted use, and ``good`` False.
    """
    flux = np.array(flux, dtype=np.float64)
    error = np.array(error, dtype=np.float64)
    if flux.shape != error.shape or (bitmask is not None and np.shape(bitmask) != flux.shape):
        raise ValueError(
            f"flux {flux.shape}, error {error.shape} and bitmask {np.shape(bitmask)} must have one shape"
        )
    with np.errstate(invalid="ignore"):
        dead = ~np.isfinite(flux) | (flux <= 0)
        good = ~dead & np.isfinite(error) & (error > 0)
    if bitmask is not None:
        good &= (np.asarray(bitmask).astype(np.int64) & int(badmask)) == 0
    flux[dead] = DEAD_PIXEL_FLUX
    # max|flux| after the replacement, as The Payne computes it (on each spectrum of a batch).
    scale = np.max(np.abs(flux), axis=-1, keepdims=True)
    error = np.where(good, error, DEAD_PIXEL_ERROR_FACTOR * scale)
    return flux, error, good


def _cont_pixel_mask(cont_pixels: np.ndarray | None) -> np.ndarray:
    if cont_pixels is None:
        return cannon_continuum_pixels()
    cont_pixels = np.asarray(cont_pixels)
    if cont_pixels.dtype == bool:
        if cont_pixels.shape != (N_ASPCAP_PIXELS,):
            raise ValueError(f"cont_pixels has shape {cont_pixels.shape}, expected ({N_ASPCAP_PIXELS},) bool")
        return cont_pixels
    mask = np.zeros(N_ASPCAP_PIXELS, bool)
    mask[cont_pixels.astype(np.int64)] = True  # pixel indices on the ASPCAP grid
    return mask


def payne_continuum(
    flux: np.ndarray,
    error: np.ndarray | None = None,
    *,
    good: np.ndarray | None = None,
    cont_pixels: np.ndarray | None = None,
    degree: int = CONTINUUM_DEGREE,
    source: str = "spectrum",
) -> np.ndarray:
    """The Payne's ``get_apogee_continuum``: per chip, a Chebyshev polynomial fitted to the continuum pixels.

    For each of the three chips of the ASPCAP grid (pixels [0:2920], [2920:5320], [5320:7214]) the pixel
    index is rescaled to x ∈ [−1, 1] and a degree-``degree`` Chebyshev series is fitted by weighted least
    squares (weights 1/σ, numpy's ``chebfit``) to the flux of the chip's continuum pixels, then evaluated
    on the whole chip. (The Payne calls ``numpy.polynomial.Chebyshev.fit``, which maps x once more onto the
    span of the fitted pixels: a change of basis of the same polynomial space, so the same fit.)

    Parameters
    ----------
    flux
        (7214,) or (N, 7214) on the ASPCAP grid, after :func:`flag_bad_pixels`.
    error
        Same shape; ``None`` gives equal weights (The Payne's default).
    good
        Same shape, bool: False gives weight exactly 0 (flagged pixels).
    cont_pixels
        Bool (7214,) mask or indices of the continuum pixels; the 529 Cannon pixels by default.
    degree
        Polynomial degree (4).
    source
        Name for the error messages.

    Returns
    -------
    numpy.ndarray
        The continuum, the shape of ``flux``.

    Raises
    ------
    ApogeeFormatError
        When the spectra are not on the 7,214-pixel grid.
    ValueError
        When a chip has fewer usable continuum pixels (finite flux, weight > 0) than ``degree + 1``.
    """
    flux = np.asarray(flux, dtype=np.float64)
    if flux.ndim not in (1, 2) or flux.shape[-1] != N_ASPCAP_PIXELS:
        raise ApogeeFormatError(
            f"{source}: flux has shape {flux.shape}, expected ({N_ASPCAP_PIXELS},) or (N, 7214)"
        )
    cont_pixels = _cont_pixel_mask(cont_pixels)
    if error is None:
        weight = np.ones_like(flux)
    else:
        error = np.asarray(error, dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            weight = np.where(np.isfinite(error) & (error > 0), 1.0 / error, 0.0)
    if good is not None:
        weight = np.where(np.asarray(good, dtype=bool), weight, 0.0)
    weight = np.where(np.isfinite(flux), weight, 0.0)
    flux2 = flux.reshape(-1, N_ASPCAP_PIXELS)
    weight2 = np.broadcast_to(weight, flux.shape).reshape(-1, N_ASPCAP_PIXELS)
    continuum = np.empty_like(flux2)
    start = 0
    for chip, (lo, hi) in zip(("blue", "green", "red"), ASPCAP_CHIPS, strict=True):
        n = hi - lo
        stop = start + n
        x = 2.0 * np.arange(n) / (n - 1) - 1.0  # The Payne: 2*np.arange(2920)/2919 - 1, per chip
        on = cont_pixels[start:stop]
        for i in range(flux2.shape[0]):
            w = weight2[i, start:stop][on]
            usable = w > 0
            if usable.sum() < degree + 1:
                raise ValueError(
                    f"{source}: {int(usable.sum())} usable continuum pixels on the {chip} chip, a degree-{degree} "
                    f"Chebyshev fit needs {degree + 1}"
                )
            y = np.where(usable, flux2[i, start:stop][on], 0.0)  # zero-weight pixels may hold NaN
            coef = np.polynomial.chebyshev.chebfit(x[on], y, degree, w=w)
            continuum[i, start:stop] = np.polynomial.chebyshev.chebval(x, coef)
        start = stop
    return continuum.reshape(flux.shape)


def normalise_for_cyclestarnet(
    flux: np.ndarray,
    error: np.ndarray,
    bitmask: np.ndarray | None = None,
    *,
    normalisation: Literal["payne", "aspcap"] = "payne",
    badmask: int = PIXMASK_BAD,
    cont_pixels: np.ndarray | None = None,
    crop: int = CYCLESTARNET_CROP,
    error_floor: float = ERROR_FLOOR,
    max_error: float = MAX_ERROR,
    source: str = "spectrum",
) -> CycleStarNetSpectrum:
    """An APOGEE spectrum in Cycle-StarNet's observed domain (spec §B4.2 steps 1–4).

    Parameters
    ----------
    flux, error
        (L,) or (N, L) with L = 8,575 (apStar grid; converted with :func:`to_aspcap_grid`) or 7,214 (ASPCAP
        grid, e.g. synthetic spectra, which must be normalised the same way).
    bitmask
        The apStar bitmask on the same grid, or ``None`` (aspcapStar, synthetic spectra).
    normalisation
        ``"payne"``: divide flux and error by :func:`payne_continuum` (the paper's choice for both domains).
        ``"aspcap"``: the flux is already continuum normalised (aspcapStar); allowed only when both domains
        use it (``apogee.normalisation``).
    badmask
        Bitmask bits that mask a pixel (:data:`PIXMASK_BAD`, or :data:`PIXMASK_BAD_SKYLINE`).
    cont_pixels
        Continuum pixels for :func:`payne_continuum` (the Cannon pixels by default).
    crop
        Pixels dropped from the blue end: 47 (the authors' code) leaves the 7,167 Cycle-StarNet's network needs.
    error_floor, max_error
        Errors are raised to ``error_floor`` (0.005); pixels with error > ``max_error`` (0.05) are masked.
    source
        Name for the error messages (the file).

    Returns
    -------
    CycleStarNetSpectrum
        ``flux``, ``error`` (float64, all finite) and ``mask`` (bool, True = use the pixel: not flagged by the
        bitmask, not dead, error ≤ ``max_error``), each (7214 − crop,) or (N, 7214 − crop).

    Raises
    ------
    ApogeeFormatError
        When the spectra are not 8,575 or 7,214 pixels long.
    ValueError
        For an unknown ``normalisation``, a ``crop`` outside [0, 7214), or a chip without enough usable
        continuum pixels.
    """
    if normalisation not in ("payne", "aspcap"):
        raise ValueError(f"normalisation must be 'payne' or 'aspcap', not {normalisation!r}")
    if not 0 <= int(crop) < N_ASPCAP_PIXELS:
        raise ValueError(f"crop must be in [0, {N_ASPCAP_PIXELS}), not {crop}")
    flux = _on_aspcap_grid(flux, "flux", source)
    error = _on_aspcap_grid(error, "error", source)
    if bitmask is not None:
        bitmask = _on_aspcap_grid(bitmask, "bitmask", source)
    flux, error, good = flag_bad_pixels(flux, error, bitmask, badmask=badmask)
    if normalisation == "payne":
        continuum = payne_continuum(flux, error, good=good, cont_pixels=cont_pixels, source=source)
        usable = np.isfinite(continuum) & (continuum > 0)
        safe = np.where(usable, continuum, 1.0)
        # A pixel whose continuum is not positive (a wild fit at a chip edge) has no normalised value:
        # it becomes a neutral masked pixel (flux 1, error 1, which the > max_error rule masks anyway).
        flux = np.where(usable, flux / safe, 1.0)
        error = np.where(usable, error / safe, 1.0)
        good &= usable
    error = np.maximum(error, error_floor)
    mask = good & (error <= max_error)
    crop = int(crop)
    return CycleStarNetSpectrum(flux[..., crop:], error[..., crop:], mask[..., crop:])
