"""DESI spectra for the BGS outlier catalog (paper 003, Liang et al., Sec. 2): coadd + Redrock files to
normalised spectra on the observed-frame grid of the ``spender`` DESI instrument.

Per target (one row each, none dropped — a target the method cannot use keeps its row with a flag):

1. the B, R and Z arms are combined onto the 7,781-pixel grid 3600…9824 Å (0.8 Å; the arms' own pixels,
   which the grid contains) by inverse variance where they overlap; pixels with a non-zero DESI ``MASK``
   bit get zero weight;
2. the ~100 strongest sky lines are masked (``spender.instrument.get_skyline_mask``, the mask the SPENDER
   authors use: zero weight within ≥ 5 Å of each line, wider for brighter lines; ~25 % of the pixels);
3. the spectrum is divided by its median flux over restframe 5300–5850 Å at the Redrock redshift (weights
   × norm²), "a region that is relatively quiescent and accessible at all redshifts";
4. the paper's sample cuts are flags: Redrock ``SPECTYPE`` (GALAXY for BGS, STAR for MWS), ``ZWARN`` = 0,
   z in [0, 0.8], a good fibre (``COADD_FIBERSTATUS`` = 0), and a usable normalisation.

Units: wavelengths in Å (vacuum, as DESI), flux in 10⁻¹⁷ erg s⁻¹ cm⁻² Å⁻¹ before normalisation.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = [
    "ARMS",
    "NORM_WINDOW_REST",
    "Z_RANGE",
    "DesiFlag",
    "DesiFormatError",
    "DesiSpectra",
    "desi_wavelength_grid",
    "skyline_mask",
    "combine_arms",
    "normalise",
    "read_desi_coadd",
]

#: The three DESI spectrograph arms, blue to red.
ARMS = ("b", "r", "z")
#: Paper 003 Sec. 2: normalisation window in restframe wavelength (Å).
NORM_WINDOW_REST = (5300.0, 5850.0)
#: Paper 003 Sec. 2: BGS redshift range kept.
Z_RANGE = (0.0, 0.8)
#: Two wavelengths closer than this (Å) are the same pixel (DESI's coaddition uses the same tolerance).
_WAVE_TOLERANCE = 1e-4


class DesiFlag(enum.IntFlag):
    """Why a spectrum is outside the paper's sample (the row is kept, with the flag)."""

    SPECTYPE = 1  # Redrock class is not the one asked for (GALAXY for BGS, STAR for MWS)
    ZWARN = 2  # Redrock warning flags set
    Z_RANGE = 4  # redshift outside [0, 0.8]
    BAD_FIBER = 8  # COADD_FIBERSTATUS != 0
    NO_NORM = 16  # no unmasked pixel with positive median flux in restframe 5300–5850 Å
    NO_REDSHIFT = 32  # target absent from the Redrock file


class DesiFormatError(ValueError):
    """A DESI file lacks an extension or column the reader needs; the message names both."""


def desi_wavelength_grid() -> np.ndarray:
    """The observed-frame grid of ``spender``'s DESI instrument: 3600…9824 Å in 7,781 steps of 0.8 Å."""
    from spender.data.desi import DESI

    return DESI._wave_obs.numpy().astype(np.float64)


def skyline_mask(wave: np.ndarray) -> np.ndarray:
    """True on pixels ``spender`` masks around the strong sky lines (paper 003 Sec. 2's telluric mask)."""
    import torch
    from spender.instrument import get_skyline_mask

    return get_skyline_mask(torch.as_tensor(np.asarray(wave, dtype=np.float64))).numpy()


@dataclass
class DesiSpectra:
    """Spectra of N targets on the grid ``wave`` (L pixels).

    Attributes
    ----------
    target_id : (N,) int64 DESI TARGETID.
    z, zerr : (N,) Redrock redshift and its error (NaN where the target has none).
    spectype : (N,) Redrock SPECTYPE (stripped), "" where none.
    zwarn : (N,) Redrock ZWARN (-1 where none).
    wave : (L,) observed wavelength (Å).
    flux : (N, L) float32 flux divided by ``norm`` (unnormalised where ``norm`` is NaN).
    ivar : (N, L) float32 weights = inverse variance of ``flux`` (0 on masked pixels).
    norm : (N,) median flux in the restframe window (NaN where it could not be computed).
    flags : (N,) int :class:`DesiFlag` bits; 0 = in the paper's sample.
    """

    target_id: np.ndarray
    z: np.ndarray
    zerr: np.ndarray
    spectype: np.ndarray
    zwarn: np.ndarray
    wave: np.ndarray
    flux: np.ndarray
    ivar: np.ndarray
    norm: np.ndarray
    flags: np.ndarray

    def __len__(self) -> int:
        return int(self.target_id.shape[0])

    @property
    def selected(self) -> np.ndarray:
        """Rows in the paper's sample (no flag set)."""
        return self.flags == 0

    def flag_names(self) -> list[str]:
        """Comma-separated names of each row's flags ("" for none)."""
        return [",".join(f.name.lower() for f in DesiFlag if v & f) for v in self.flags]

    def table(self) -> pd.DataFrame:
        """One row per target: identifiers, redshift, flags and the normalised spectrum as list columns."""
        return pd.DataFrame(
            {
                "target_id": self.target_id,
                "z": self.z,
                "zerr": self.zerr,
                "spectype": self.spectype,
                "zwarn": self.zwarn,
                "norm": self.norm,
                "flags": self.flags,
                "flag_names": self.flag_names(),
                "flux": list(self.flux),
                "ivar": list(self.ivar),
            }
        )


def _big_endian_free(a: np.ndarray) -> np.ndarray:
    return np.asarray(a).astype(np.asarray(a).dtype.newbyteorder("="), copy=False)


def combine_arms(
    waves: dict[str, np.ndarray],
    fluxes: dict[str, np.ndarray],
    ivars: dict[str, np.ndarray],
    masks: dict[str, np.ndarray],
    grid: np.ndarray,
    source: str = "coadd",
) -> tuple[np.ndarray, np.ndarray]:
    """Inverse-variance combination of the arms onto ``grid`` (each arm's pixels must be grid pixels).

    Parameters
    ----------
    waves : arm → (L_arm,) wavelengths (Å); fluxes, ivars, masks : arm → (N, L_arm).
    grid : (L,) target grid.

    Returns
    -------
    (flux, ivar) : (N, L); pixels no unmasked arm covers have flux 0 and ivar 0.
    """
    n = next(iter(fluxes.values())).shape[0]
    num = np.zeros((n, grid.size))
    ivar = np.zeros((n, grid.size))
    for arm in waves:
        w = np.asarray(waves[arm], dtype=np.float64)
        idx = np.searchsorted(grid, w - _WAVE_TOLERANCE)
        idx = np.clip(idx, 0, grid.size - 1)
        off = np.abs(grid[idx] - w) > _WAVE_TOLERANCE
        if off.any():
            raise DesiFormatError(
                f"{source}: {arm.upper()}_WAVELENGTH pixel {w[off][0]:.4f} Å is not on the DESI grid "
                f"({grid[0]:.1f}…{grid[-1]:.1f} Å in {grid[1] - grid[0]:.1f} Å steps); resample first"
            )
        wt = np.where(np.asarray(masks[arm]) == 0, np.asarray(ivars[arm], dtype=np.float64), 0.0)
        wt = np.where(np.isfinite(wt) & (wt > 0), wt, 0.0)
        f = np.nan_to_num(np.asarray(fluxes[arm], dtype=np.float64))
        np.add.at(num, (slice(None), idx), wt * f)
        np.add.at(ivar, (slice(None), idx), wt)
    flux = np.divide(num, ivar, out=np.zeros_like(num), where=ivar > 0)
    return flux, ivar


def normalise(
    flux: np.ndarray, ivar: np.ndarray, wave: np.ndarray, z: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Divide each spectrum by its median flux over restframe 5300–5850 Å (pixels with weight > 0).

    Returns (flux / norm, ivar · norm², norm); norm is NaN — and the row left as it was — where the window
    holds no weighted pixel, the redshift is unknown or the median is not positive.
    """
    flux = np.array(flux, dtype=np.float64)
    ivar = np.array(ivar, dtype=np.float64)
    norm = np.full(flux.shape[0], np.nan)
    for i, zi in enumerate(np.asarray(z, dtype=np.float64)):
        if not np.isfinite(zi):
            continue
        rest = wave / (1.0 + zi)
        sel = (ivar[i] > 0) & (rest > NORM_WINDOW_REST[0]) & (rest < NORM_WINDOW_REST[1])
        if sel.any():
            m = float(np.median(flux[i, sel]))
            if m > 0 and np.isfinite(m):
                norm[i] = m
                flux[i] /= m
                ivar[i] *= m**2
    return flux, ivar, norm


def _open_fits(path: str | os.PathLike, what: str):
    from astropy.io import fits

    try:
        return fits.open(path, memmap=False)
    except (OSError, ValueError) as exc:
        raise DesiFormatError(f"{path}: not a readable {what} file ({exc})") from exc


def _hdu(hdul, name: str, path: str | os.PathLike):
    if name not in hdul:
        raise DesiFormatError(
            f"{path}: no extension {name!r} (a DESI coadd has FIBERMAP and B/R/Z _WAVELENGTH, _FLUX, "
            f"_IVAR, _MASK); found {[h.name for h in hdul]}"
        )
    return hdul[name]


def _column(table, name: str, path: str | os.PathLike, extension: str) -> np.ndarray:
    if name not in table.columns.names:
        raise DesiFormatError(f"{path}: extension {extension} has no column {name!r}")
    return _big_endian_free(table.data[name])


def read_desi_coadd(
    coadd_path: str | os.PathLike,
    redrock_path: str | os.PathLike | None = None,
    *,
    spectype: str = "GALAXY",
    z_range: Sequence[float] | None = Z_RANGE,
) -> DesiSpectra:
    """Read a DESI coadd and its Redrock file into normalised spectra (module docstring).

    Parameters
    ----------
    coadd_path : ``coadd-*.fits``.
    redrock_path : ``redrock-*.fits``; default: the coadd's name with "coadd" replaced by "redrock".
    spectype : Redrock class of the sample (GALAXY for BGS, STAR for MWS); other rows are flagged.
    z_range : redshifts kept (inclusive); others are flagged. None for no cut (MWS: the paper selects stars
        by SPECTYPE and ZWARN only, and radial velocities make their z negative half the time).
    """

    coadd_path = Path(coadd_path)
    if redrock_path is None:
        redrock_path = coadd_path.with_name(coadd_path.name.replace("coadd", "redrock"))
    grid = desi_wavelength_grid()
    with _open_fits(coadd_path, "FITS") as hdul:
        fibermap = _hdu(hdul, "FIBERMAP", coadd_path)
        target_id = _column(fibermap, "TARGETID", coadd_path, "FIBERMAP").astype(np.int64)
        fiberstatus = (
            _column(fibermap, "COADD_FIBERSTATUS", coadd_path, "FIBERMAP")
            if "COADD_FIBERSTATUS" in fibermap.columns.names
            else np.zeros(len(target_id), dtype=np.int64)
        )
        parts: dict[str, dict[str, np.ndarray]] = {k: {} for k in ("wave", "flux", "ivar", "mask")}
        for arm in ARMS:
            a = arm.upper()
            parts["wave"][arm] = _big_endian_free(_hdu(hdul, f"{a}_WAVELENGTH", coadd_path).data)
            parts["flux"][arm] = _big_endian_free(_hdu(hdul, f"{a}_FLUX", coadd_path).data)
            parts["ivar"][arm] = _big_endian_free(_hdu(hdul, f"{a}_IVAR", coadd_path).data)
            parts["mask"][arm] = _big_endian_free(_hdu(hdul, f"{a}_MASK", coadd_path).data)
            if parts["flux"][arm].shape != (len(target_id), parts["wave"][arm].size):
                raise DesiFormatError(
                    f"{coadd_path}: {a}_FLUX has shape {parts['flux'][arm].shape}, expected "
                    f"({len(target_id)} targets, {parts['wave'][arm].size} pixels)"
                )
    flux, ivar = combine_arms(
        parts["wave"], parts["flux"], parts["ivar"], parts["mask"], grid, source=str(coadd_path)
    )
    ivar[:, skyline_mask(grid)] = 0.0

    z = np.full(len(target_id), np.nan)
    zerr = np.full(len(target_id), np.nan)
    types = np.full(len(target_id), "", dtype=object)
    zwarn = np.full(len(target_id), -1, dtype=np.int64)
    with _open_fits(redrock_path, "Redrock FITS") as rr:
        red = _hdu(rr, "REDSHIFTS", redrock_path)
        rr_id = _column(red, "TARGETID", redrock_path, "REDSHIFTS").astype(np.int64)
        pos = {t: i for i, t in enumerate(rr_id)}
        rows = np.array([pos.get(t, -1) for t in target_id])
        have = rows >= 0
        z[have] = _column(red, "Z", redrock_path, "REDSHIFTS")[rows[have]]
        zerr[have] = _column(red, "ZERR", redrock_path, "REDSHIFTS")[rows[have]]
        zwarn[have] = _column(red, "ZWARN", redrock_path, "REDSHIFTS")[rows[have]]
        spectypes = np.char.strip(_column(red, "SPECTYPE", redrock_path, "REDSHIFTS").astype(str))
        types[have] = spectypes[rows[have]]

    flux, ivar, norm = normalise(flux, ivar, grid, z)
    flags = np.zeros(len(target_id), dtype=np.int64)
    flags[~have] |= DesiFlag.NO_REDSHIFT
    flags[have & (types != spectype)] |= DesiFlag.SPECTYPE
    flags[have & (zwarn != 0)] |= DesiFlag.ZWARN
    if z_range is not None:
        flags[have & ~((z >= z_range[0]) & (z <= z_range[1]))] |= DesiFlag.Z_RANGE
    flags[np.asarray(fiberstatus) != 0] |= DesiFlag.BAD_FIBER
    flags[~np.isfinite(norm)] |= DesiFlag.NO_NORM
    return DesiSpectra(
        target_id=target_id,
        z=z,
        zerr=zerr,
        spectype=types.astype(str),
        zwarn=zwarn,
        wave=grid,
        flux=flux.astype(np.float32),
        ivar=ivar.astype(np.float32),
        norm=norm,
        flags=flags,
    )
