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

A DESI coadd holds every target class a fibre was assigned to (a bright-program HEALPix coadd: BGS, MWS
and secondary targets). ``target_class`` ("bgs" / "mws") reads the rows whose FIBERMAP target bits
(``BGS_TARGET`` / ``MWS_TARGET`` and their ``SV1_``/``SV2_``/``SV3_`` forms) are set: those are the
sample's input objects. :func:`read_desi_coadds` reads many files into one table; a target in more than
one file (e.g. observed in SV1 and SV3) keeps one row per file, all but the one with the highest Redrock
``TSNR2_BGS`` flagged ``DUPLICATE``.

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
    "read_desi_coadds",
    "TARGET_CLASSES",
]

#: The three DESI spectrograph arms, blue to red.
ARMS = ("b", "r", "z")
#: Paper 003 Sec. 2: normalisation window in restframe wavelength (Å).
NORM_WINDOW_REST = (5300.0, 5850.0)
#: Paper 003 Sec. 2: BGS redshift range kept.
Z_RANGE = (0.0, 0.8)
#: FIBERMAP target-bit columns of each target class (main survey and SV1–SV3), paper 003 Sec. 2.
TARGET_CLASSES = {
    cls: tuple(f"{prefix}{cls.upper()}_TARGET" for prefix in ("", "SV1_", "SV2_", "SV3_"))
    for cls in ("bgs", "mws")
}
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
    DUPLICATE = 64  # the same TARGETID has a spectrum of higher TSNR2_BGS in another file


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
    tsnr2 : (N,) Redrock ``TSNR2_BGS`` (NaN where the file has no TSNR2 table).
    source : (N,) name of the coadd file of each row.
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
    tsnr2: np.ndarray
    source: np.ndarray

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
                "tsnr2_bgs": self.tsnr2,
                "source_file": self.source,
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
    return _big_endian_free(_data(table, path)[name])


def _data(hdu, path: str | os.PathLike):
    """An extension's data; astropy reads it only now, so a truncated file fails here (with a reshape
    error that names nothing): say which file and extension."""
    try:
        return hdu.data
    except (OSError, ValueError, TypeError, IndexError) as exc:
        raise DesiFormatError(
            f"{path}: extension {hdu.name} cannot be read — truncated or corrupt file? ({exc})"
        ) from exc


def read_desi_coadd(
    coadd_path: str | os.PathLike,
    redrock_path: str | os.PathLike | None = None,
    *,
    spectype: str = "GALAXY",
    z_range: Sequence[float] | None = Z_RANGE,
    target_class: str | None = None,
) -> DesiSpectra:
    """Read a DESI coadd and its Redrock file into normalised spectra (module docstring).

    Parameters
    ----------
    coadd_path : ``coadd-*.fits``.
    redrock_path : ``redrock-*.fits``; default: the coadd's name with "coadd" replaced by "redrock".
    spectype : Redrock class of the sample (GALAXY for BGS, STAR for MWS); other rows are flagged.
    z_range : redshifts kept (inclusive); others are flagged. None for no cut (MWS: the paper selects stars
        by SPECTYPE and ZWARN only, and radial velocities make their z negative half the time).
    target_class : "bgs" or "mws" to read only that class's targets (FIBERMAP bits, :data:`TARGET_CLASSES`);
        None for every row (the simulated files hold one class each).
    """

    coadd_path = Path(coadd_path)
    if redrock_path is None:
        redrock_path = coadd_path.with_name(coadd_path.name.replace("coadd", "redrock"))
    grid = desi_wavelength_grid()
    with _open_fits(coadd_path, "FITS") as hdul:
        fibermap = _hdu(hdul, "FIBERMAP", coadd_path)
        target_id = _column(fibermap, "TARGETID", coadd_path, "FIBERMAP").astype(np.int64)
        rows_kept = _target_rows(fibermap, target_class, coadd_path)
        fiberstatus = (
            _column(fibermap, "COADD_FIBERSTATUS", coadd_path, "FIBERMAP")
            if "COADD_FIBERSTATUS" in fibermap.columns.names
            else np.zeros(len(target_id), dtype=np.int64)
        )
        parts: dict[str, dict[str, np.ndarray]] = {k: {} for k in ("wave", "flux", "ivar", "mask")}
        for arm in ARMS:
            a = arm.upper()
            parts["wave"][arm] = _big_endian_free(
                _data(_hdu(hdul, f"{a}_WAVELENGTH", coadd_path), coadd_path)
            )
            parts["flux"][arm] = _big_endian_free(_data(_hdu(hdul, f"{a}_FLUX", coadd_path), coadd_path))
            parts["ivar"][arm] = _big_endian_free(_data(_hdu(hdul, f"{a}_IVAR", coadd_path), coadd_path))
            parts["mask"][arm] = _big_endian_free(_data(_hdu(hdul, f"{a}_MASK", coadd_path), coadd_path))
            if parts["flux"][arm].shape != (len(target_id), parts["wave"][arm].size):
                raise DesiFormatError(
                    f"{coadd_path}: {a}_FLUX has shape {parts['flux'][arm].shape}, expected "
                    f"({len(target_id)} targets, {parts['wave'][arm].size} pixels)"
                )
            for key in ("flux", "ivar", "mask"):
                parts[key][arm] = parts[key][arm][rows_kept]
        target_id, fiberstatus = target_id[rows_kept], np.asarray(fiberstatus)[rows_kept]
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
        rows = np.array([pos.get(t, -1) for t in target_id], dtype=np.int64)
        have = rows >= 0
        z[have] = _column(red, "Z", redrock_path, "REDSHIFTS")[rows[have]]
        zerr[have] = _column(red, "ZERR", redrock_path, "REDSHIFTS")[rows[have]]
        zwarn[have] = _column(red, "ZWARN", redrock_path, "REDSHIFTS")[rows[have]]
        spectypes = np.char.strip(_column(red, "SPECTYPE", redrock_path, "REDSHIFTS").astype(str))
        types[have] = spectypes[rows[have]]
        tsnr2 = np.full(len(target_id), np.nan)
        if "TSNR2" in rr and "TSNR2_BGS" in rr["TSNR2"].columns.names:
            t_id = _column(rr["TSNR2"], "TARGETID", redrock_path, "TSNR2").astype(np.int64)
            t_pos = {t: i for i, t in enumerate(t_id)}
            t_rows = np.array([t_pos.get(t, -1) for t in target_id], dtype=np.int64)
            t_have = t_rows >= 0
            tsnr2[t_have] = _column(rr["TSNR2"], "TSNR2_BGS", redrock_path, "TSNR2")[t_rows[t_have]]

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
        tsnr2=tsnr2,
        source=np.full(len(target_id), coadd_path.name, dtype=object).astype(str),
    )


def _target_rows(fibermap, target_class: str | None, path: str | os.PathLike) -> np.ndarray:
    """Indices of the FIBERMAP rows of ``target_class`` (all rows for None)."""
    n = len(_data(fibermap, path))
    if target_class is None:
        return np.arange(n)
    if target_class not in TARGET_CLASSES:
        raise ValueError(
            f"target_class must be one of {sorted(TARGET_CLASSES)} or None, not {target_class!r}"
        )
    columns = [c for c in TARGET_CLASSES[target_class] if c in fibermap.columns.names]
    if not columns:
        raise DesiFormatError(
            f"{path}: FIBERMAP has none of the target-bit columns {list(TARGET_CLASSES[target_class])} "
            f"needed to select {target_class.upper()} targets"
        )
    bits = np.zeros(n, dtype=bool)
    for c in columns:
        bits |= _column(fibermap, c, path, "FIBERMAP").astype(np.int64) != 0
    return np.flatnonzero(bits)


def read_desi_coadds(
    pairs: Sequence[tuple[str | os.PathLike, str | os.PathLike]],
    *,
    spectype: str = "GALAXY",
    z_range: Sequence[float] | None = Z_RANGE,
    target_class: str | None = None,
) -> DesiSpectra:
    """:func:`read_desi_coadd` of each (coadd, redrock) pair, concatenated; repeated TARGETIDs flagged
    ``DUPLICATE`` except the spectrum with the highest ``TSNR2_BGS`` (the first file's on ties or
    without TSNR2), so that every target is in the sample at most once and no row is dropped."""
    if not pairs:
        raise ValueError("read_desi_coadds needs at least one (coadd, redrock) pair")
    parts = [
        read_desi_coadd(c, r, spectype=spectype, z_range=z_range, target_class=target_class) for c, r in pairs
    ]
    fields = (
        "target_id",
        "z",
        "zerr",
        "spectype",
        "zwarn",
        "flux",
        "ivar",
        "norm",
        "flags",
        "tsnr2",
        "source",
    )
    joined = {f: np.concatenate([getattr(p, f) for p in parts]) for f in fields}
    ids, tsnr2 = joined["target_id"], np.nan_to_num(joined["tsnr2"], nan=-np.inf)
    # Best spectrum first within each TARGETID: sort by id, then −TSNR2, then file order.
    order = np.lexsort((np.arange(len(ids)), -tsnr2, ids))
    first = np.ones(len(ids), dtype=bool)
    first[1:] = ids[order][1:] != ids[order][:-1]
    duplicate = np.zeros(len(ids), dtype=bool)
    duplicate[order[~first]] = True
    joined["flags"] = joined["flags"] | np.where(duplicate, int(DesiFlag.DUPLICATE), 0)
    return DesiSpectra(wave=parts[0].wave, **joined)
