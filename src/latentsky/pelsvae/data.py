"""Light curves as PELS-VAE reads them (paper 000 Sec. 3): the global scaling
(:class:`LightCurveScaler`), the physical vector (T_eff, M_G, log10 P), padded batches
(:class:`PelsVaeBatch`, :func:`frame_to_tensors`) and which rows train which model.

Shapes: B light curves, T time steps (padded at the end to the longest curve; ``mask`` marks real
points), C classes. Units: magnitudes and errors in mag (scaled: dimensionless), phase in [0, 1),
period in days, T_eff in K, M_G in mag.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import pandas as pd
import torch

from latentsky.pelsvae.config import MODELS, PHYSICS_COLUMNS, SIGMA_FLOOR, PelsVaeConfig

__all__ = [
    "LightCurveScaler",
    "PelsVaeBatch",
    "class_one_hot",
    "physics_vector",
    "frame_to_tensors",
    "has_physics",
    "rows_for_model",
]


# ---------------------------------------------------------------------------------------------------------
# Scaling
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LightCurveScaler:
    """Global affine scaling of light curves and standardisation of the physical parameters.

    Each curve is taken relative to its median magnitude, Δm = mag − median(mag), and mapped to the
    sigmoid's range by **one** affine map for all curves, x = (Δm − low) / (high − low); errors are divided
    by the same scale, s = err / (high − low), so x/s ratios — and the error-weighted loss of eq. 4 — are
    those of the data in magnitudes. The paper scales the light curves without saying how; a per-curve
    min–max map would erase the amplitude, which carries physics (e.g. the RR Lyrae amplitude falls with
    T_eff, Sec. 4.3 and Fig. 8), and that is what cVAE-P must learn to link to the physical parameters.

    ``low``/``high`` are the 0.05 % and 99.95 % quantiles of Δm over every training point, widened by 5 %
    of their span on each side: the quantiles keep a handful of outliers (e.g. a residual spike that σ
    clipping left) from shrinking every other curve, and the margin keeps ordinary extremes away from the
    flat ends of the sigmoid where gradients vanish. The ~0.1 % of points beyond are clipped to [0, 1]
    when the training tensors are built (:func:`frame_to_tensors`); :meth:`transform` itself does not clip,
    so it inverts exactly.

    Attributes
    ----------
    low, high : Δm (mag) mapped to 0 and 1.
    median_err : median scaled error of the training points (initial level of the decoder's error channel).
    phys_mean, phys_std : mean and standard deviation of (T_eff [K], M_G [mag], log10 P [log10 d]) over the
        training rows that have all three; None if there are none.
    """

    low: float
    high: float
    median_err: float
    phys_mean: tuple[float, float, float] | None = None
    phys_std: tuple[float, float, float] | None = None

    #: Quantile of Δm mapped (before the margin) to 0; 1 − it is mapped to 1.
    QUANTILE = 5e-4
    #: Margin added beyond the quantiles, as a fraction of their span.
    MARGIN = 0.05

    def __post_init__(self) -> None:
        if not (np.isfinite(self.low) and np.isfinite(self.high) and self.high > self.low):
            raise ValueError(f"scaler needs finite low < high, got {self.low}, {self.high}")

    @property
    def scale(self) -> float:
        """Magnitudes per scaled unit (mag)."""
        return float(self.high - self.low)

    @property
    def zero_level(self) -> float:
        """Scaled value of a curve's median magnitude (Δm = 0)."""
        return float(-self.low / self.scale)

    @property
    def sigma_floor(self) -> float:
        """:data:`SIGMA_FLOOR`, the floor of scaled errors in the loss."""
        return SIGMA_FLOOR

    @classmethod
    def fit(cls, frame: pd.DataFrame) -> LightCurveScaler:
        """Fit on a training table (list columns ``mag``, ``err``; optionally the physics columns).

        Parameters
        ----------
        frame : training light curves, one row per curve, magnitudes and errors in mag.
        """
        _require_columns(frame, ("mag", "err"), "fitting the light-curve scaler")
        if len(frame) == 0:
            raise ValueError("cannot fit the light-curve scaler on an empty training table")
        dm, errs = [], []
        for mag, err in zip(frame["mag"], frame["err"], strict=True):
            m = np.asarray(mag, dtype=np.float64)
            e = np.asarray(err, dtype=np.float64)
            good = np.isfinite(m) & np.isfinite(e)
            if good.any():
                dm.append(m[good] - np.median(m[good]))
                errs.append(e[good])
        if not dm:
            raise ValueError("column 'mag': no finite magnitudes in the training table")
        all_dm = np.concatenate(dm)
        lo, hi = np.quantile(all_dm, [cls.QUANTILE, 1.0 - cls.QUANTILE])
        if hi <= lo:  # constant curves (only in degenerate tests): any positive span works
            lo, hi = lo - 0.5, hi + 0.5
        span = hi - lo
        low, high = float(lo - cls.MARGIN * span), float(hi + cls.MARGIN * span)
        median_err = float(np.median(np.concatenate(errs))) / (high - low)
        phys_mean = phys_std = None
        if all(c in frame for c in PHYSICS_COLUMNS):
            raw = _raw_physics(frame)
            ok = np.all(np.isfinite(raw), axis=1)
            if ok.sum() >= 2:
                mean, std = raw[ok].mean(axis=0), raw[ok].std(axis=0)
                std = np.where(std > 0, std, 1.0)
                phys_mean = tuple(float(v) for v in mean)
                phys_std = tuple(float(v) for v in std)
        return cls(low, high, median_err, phys_mean, phys_std)

    def transform(
        self, mag: np.ndarray, err: np.ndarray, median_mag: float | np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Scale magnitudes and errors of one curve (1-D) or of curves along the last axis.

        Parameters
        ----------
        mag, err : magnitudes and errors (mag).
        median_mag : reference magnitude per curve (mag); default the median of ``mag`` along the last axis.

        Returns
        -------
        (x, s, median_mag) : scaled magnitudes and errors (not clipped), and the medians used (mag).
        """
        mag = np.asarray(mag, dtype=np.float64)
        err = np.asarray(err, dtype=np.float64)
        med = np.median(mag, axis=-1) if median_mag is None else np.asarray(median_mag, dtype=np.float64)
        x = (mag - np.expand_dims(med, -1) - self.low) / self.scale
        return x, err / self.scale, med

    def inverse_transform(
        self, x: np.ndarray, s: np.ndarray, median_mag: float | np.ndarray = 0.0
    ) -> tuple[np.ndarray, np.ndarray]:
        """Scaled (x, s) back to magnitudes: median_mag + low + x·scale, and s·scale (mag).

        ``median_mag`` is a scalar or one value per curve (leading axes of ``x``); 0 gives magnitudes
        relative to the curve's median.
        """
        x = np.asarray(x, dtype=np.float64)
        s = np.asarray(s, dtype=np.float64)
        med = np.asarray(median_mag, dtype=np.float64)
        if med.ndim:
            med = np.expand_dims(med, -1)
        return med + self.low + x * self.scale, s * self.scale

    def transform_physics(self, teff: np.ndarray, abs_g: np.ndarray, period: np.ndarray) -> np.ndarray:
        """Standardised (T_eff [K], M_G [mag], log10 P [P in d]) as an (N, 3) array."""
        raw = np.column_stack(
            [
                np.asarray(teff, dtype=np.float64),
                np.asarray(abs_g, dtype=np.float64),
                _log10_period(np.asarray(period, dtype=np.float64)),
            ]
        )
        return self._standardise(raw)

    def _standardise(self, raw: np.ndarray) -> np.ndarray:
        """(N, 3) rows of (T_eff, M_G, log10 P) → standardised."""
        if self.phys_mean is None or self.phys_std is None:
            raise ValueError(
                "the scaler has no physical-parameter statistics: no training row had teff, abs_g and "
                "period all known, so a use_physics model cannot be trained on this table"
            )
        return (raw - np.asarray(self.phys_mean)) / np.asarray(self.phys_std)

    def as_dict(self) -> dict[str, Any]:
        return {
            "low": self.low,
            "high": self.high,
            "median_err": self.median_err,
            "phys_mean": None if self.phys_mean is None else list(self.phys_mean),
            "phys_std": None if self.phys_std is None else list(self.phys_std),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> LightCurveScaler:
        pm, ps = d.get("phys_mean"), d.get("phys_std")
        return cls(
            float(d["low"]),
            float(d["high"]),
            float(d["median_err"]),
            None if pm is None else tuple(float(v) for v in pm),
            None if ps is None else tuple(float(v) for v in ps),
        )


def _log10_period(period: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(period > 0, np.log10(np.where(period > 0, period, 1.0)), np.nan)


def physics_vector(teff: np.ndarray, abs_g: np.ndarray, period: np.ndarray) -> np.ndarray:
    """(N, 3) array of T_eff (K), M_G (mag) and log10 P (P in d): the physical space of cVAE-P (Sec. 4.2).

    A period that is not positive gives NaN (not −inf), so callers select complete rows with isfinite.
    """
    return np.column_stack(
        [
            np.asarray(teff, dtype=np.float64),
            np.asarray(abs_g, dtype=np.float64),
            _log10_period(np.asarray(period, dtype=np.float64)),
        ]
    )


def _raw_physics(frame: pd.DataFrame) -> np.ndarray:
    return physics_vector(*(pd.to_numeric(frame[c], errors="coerce").to_numpy() for c in PHYSICS_COLUMNS))


def _require_columns(frame: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{what} needs column(s) {missing}; the table has {list(frame.columns)}")


# ---------------------------------------------------------------------------------------------------------
# Batches
# ---------------------------------------------------------------------------------------------------------


@dataclass
class PelsVaeBatch:
    """Network inputs for B light curves, padded at the end to T steps.

    Attributes
    ----------
    mag, err : (B, T) scaled magnitude (clipped to [0, 1]) and scaled error; 0 in padding.
    phase : (B, T) phase in [0, 1), ascending within each curve.
    dt : (B, T) Δt_i = phase_i − phase_{i−1}, Δt_0 = 0 (in phase units, not multiplied by t_len).
    mask : (B, T) bool, True on real points.
    lengths : (B,) int64 number of real points.
    onehot : (B, C) one-hot class.
    physics : (B, 3) standardised (T_eff, M_G, log10 P), or None for a cVAE.
    median_mag : (B,) float64 numpy, each curve's median magnitude (mag), to undo the scaling.
    """

    mag: torch.Tensor
    err: torch.Tensor
    phase: torch.Tensor
    dt: torch.Tensor
    mask: torch.Tensor
    lengths: torch.Tensor
    onehot: torch.Tensor
    physics: torch.Tensor | None
    median_mag: np.ndarray

    def __len__(self) -> int:
        return int(self.mag.shape[0])

    def index(self, idx: np.ndarray | torch.Tensor) -> PelsVaeBatch:
        """Rows ``idx``, trimmed to their longest curve (padding beyond it changes nothing: see
        :class:`PelsVae` — the networks are causal and the loss is masked)."""
        idx_np = np.asarray(idx.cpu() if isinstance(idx, torch.Tensor) else idx, dtype=np.int64)
        it = torch.as_tensor(idx_np, device=self.mag.device)
        lengths = self.lengths[it]
        t = int(lengths.max()) if len(idx_np) else 0
        return PelsVaeBatch(
            mag=self.mag[it, :t],
            err=self.err[it, :t],
            phase=self.phase[it, :t],
            dt=self.dt[it, :t],
            mask=self.mask[it, :t],
            lengths=lengths,
            onehot=self.onehot[it],
            physics=None if self.physics is None else self.physics[it],
            median_mag=self.median_mag[idx_np],
        )

    def to(self, device: str | torch.device) -> PelsVaeBatch:
        def move(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.to(device)

        return PelsVaeBatch(
            *(move(getattr(self, f.name)) for f in fields(self) if f.name != "median_mag"),
            median_mag=self.median_mag,
        )


def class_one_hot(values: Sequence[Any], classes: Sequence[str]) -> np.ndarray:
    """(N, len(classes)) float32 one-hot rows; a label outside ``classes`` raises ValueError naming it."""
    return onehot_from_indices(class_indices(values, classes), len(classes))


def class_indices(values: Sequence[Any], classes: Sequence[str]) -> np.ndarray:
    lookup = {c: i for i, c in enumerate(classes)}
    idx = np.array([lookup.get(str(v), -1) for v in values], dtype=np.int64)
    if (idx < 0).any():
        unknown = sorted({str(v) for v, i in zip(values, idx, strict=True) if i < 0})
        raise ValueError(f"column 'var_class': unknown class(es) {unknown}; the model knows {list(classes)}")
    return idx


def onehot_from_indices(idx: np.ndarray, n_classes: int) -> np.ndarray:
    out = np.zeros((len(idx), n_classes), dtype=np.float32)
    out[np.arange(len(idx)), idx] = 1.0
    return out


def _row_name(frame: pd.DataFrame, i: int) -> str:
    if "ogle_id" in frame.columns:
        return f"row {i} ({frame['ogle_id'].iloc[i]})"
    return f"row {i}"


def frame_to_tensors(
    frame: pd.DataFrame,
    config: PelsVaeConfig,
    scaler: LightCurveScaler,
    device: str | torch.device = "cpu",
) -> PelsVaeBatch:
    """Build the network inputs from light-curve rows (the ``results/lightcurves/*.parquet`` layout).

    Parameters
    ----------
    frame : one row per light curve with ``var_class`` and list columns ``phase`` (ascending, in [0, 1]),
        ``mag`` and ``err`` (mag) of equal length per row; for a ``use_physics`` model also ``teff`` (K),
        ``abs_g`` (mag) and ``period`` (d), known for every row (select ``has_physics`` rows first).
    config, scaler : the model's configuration and the training set's scaling.
    device : where the tensors are put.

    Raises
    ------
    ValueError
        Naming the column (and row) for: a missing column, an unknown class, rows of unequal lengths,
        non-finite values, unsorted or out-of-range phases, missing physical parameters.
    """
    cols = ["var_class", "phase", "mag", "err"] + (list(PHYSICS_COLUMNS) if config.use_physics else [])
    _require_columns(frame, cols, "the PELS-VAE")
    n = len(frame)
    phases = [np.asarray(p, dtype=np.float64) for p in frame["phase"]]
    mags = [np.asarray(m, dtype=np.float64) for m in frame["mag"]]
    errs = [np.asarray(e, dtype=np.float64) for e in frame["err"]]
    lengths = np.array([len(p) for p in phases], dtype=np.int64)
    for i in range(n):
        if not len(mags[i]) == len(errs[i]) == lengths[i]:
            raise ValueError(
                f"{_row_name(frame, i)}: columns 'phase', 'mag', 'err' have unequal lengths "
                f"{lengths[i]}, {len(mags[i])}, {len(errs[i])}"
            )
        if lengths[i] == 0:
            raise ValueError(f"{_row_name(frame, i)}: column 'phase' is empty")
        for name, arr in (("phase", phases[i]), ("mag", mags[i]), ("err", errs[i])):
            if not np.all(np.isfinite(arr)):
                raise ValueError(f"{_row_name(frame, i)}: column {name!r} has non-finite values")
        if np.any(np.diff(phases[i]) < 0) or phases[i][0] < 0 or phases[i][-1] > 1:
            raise ValueError(f"{_row_name(frame, i)}: column 'phase' must be ascending within [0, 1]")
    t = int(lengths.max()) if n else 0
    x = np.zeros((n, t), dtype=np.float32)
    s = np.zeros((n, t), dtype=np.float32)
    ph = np.zeros((n, t), dtype=np.float32)
    dt = np.zeros((n, t), dtype=np.float32)
    mask = np.zeros((n, t), dtype=bool)
    medians = np.zeros(n, dtype=np.float64)
    for i in range(n):
        li = lengths[i]
        xi, si, medians[i] = scaler.transform(mags[i], errs[i])
        # Points beyond the training quantiles (≈0.1 %) are clipped to the sigmoid's range; see the scaler.
        x[i, :li] = np.clip(xi, 0.0, 1.0)
        s[i, :li] = si
        ph[i, :li] = phases[i]
        dt[i, 1:li] = np.diff(phases[i])
        mask[i, :li] = True
    onehot = onehot_from_indices(class_indices(list(frame["var_class"]), config.classes), config.n_classes)
    physics = None
    if config.use_physics:
        raw = _raw_physics(frame)
        for k, name in enumerate(PHYSICS_COLUMNS):
            bad = ~np.isfinite(raw[:, k])
            if bad.any():
                raise ValueError(
                    f"column {name!r}: {int(bad.sum())} of {n} rows have no valid value (first: "
                    f"{_row_name(frame, int(np.argmax(bad)))}); a use_physics model (cVAE-P) needs teff, "
                    "abs_g and period > 0 for every row — select the has_physics rows"
                )
        physics = torch.as_tensor(scaler._standardise(raw), dtype=torch.float32)
    batch = PelsVaeBatch(
        mag=torch.from_numpy(x),
        err=torch.from_numpy(s),
        phase=torch.from_numpy(ph),
        dt=torch.from_numpy(dt),
        mask=torch.from_numpy(mask),
        lengths=torch.from_numpy(lengths),
        onehot=torch.from_numpy(onehot),
        physics=physics,
        median_mag=medians,
    )
    return batch.to(device)


def has_physics(frame: pd.DataFrame) -> np.ndarray:
    """Rows whose object has T_eff, M_G and a positive period (the physical vector of cVAE-P)."""
    missing = [c for c in PHYSICS_COLUMNS if c not in frame.columns]
    if missing:
        return np.zeros(len(frame), dtype=bool)
    raw = physics_vector(*(pd.to_numeric(frame[c], errors="coerce").to_numpy() for c in PHYSICS_COLUMNS))
    return np.isfinite(raw).all(axis=1)


def rows_for_model(frame: pd.DataFrame, model: str) -> pd.DataFrame:
    """The rows ``model`` trains (or is validated) on: all for cvae, those with physics for cvae_p."""
    if not MODELS[model]:
        return frame.reset_index(drop=True)
    return frame[has_physics(frame)].reset_index(drop=True)
