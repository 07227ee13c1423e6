"""PELS-VAE: the conditional VAE of paper 000 (Martínez-Palomera et al.), Sec. 3, as a torch module.

The model (Sec. 3.1, Fig. 3):

* **Encoder.** A sequential network — a TCN (Bai et al. 2018) or a GRU/LSTM — reads the scaled light curve
  one observation at a time, as (scaled magnitude, scaled error, Δt). Its *last* time step's output is
  concatenated with the one-hot variability class and, for cVAE-P (Sec. 4.2), the standardised physical
  parameters (T_eff, M_G, log10 P); fully connected layers (ReLU + dropout) follow, then two heads give
  the mean μ and log-variance log σ² of the latent Gaussian (z_dim dimensions).
* **Decoder.** z (sampled with the reparameterisation trick, eq. 1) concatenated with the one-hot class is
  repeated over the time steps; each step is tagged with its time, and the same kind of sequential network
  (same hyperparameters) runs over the sequence; a fully connected layer and a sigmoid return two channels
  in [0, 1]: the scaled magnitude and the scaled error. Physical parameters enter the encoder only
  (Sec. 4.2: "concatenated to the label vector and provided to the encoder component").
* **Loss** (eq. 4): error-weighted MSE + β·KL(q(z|x) ‖ N(0, I)) + a KL term between the predicted and the
  true error distributions; see :func:`pelsvae_loss`.

Time tags. The paper says both that the latent vector is "concatenated with the observations times of the
light curve (as in Naul et al. 2018)" and that "each time step is tagged with the corresponding observed
difference in time Δt_i = t_i − t_{i−1}". We give the decoder both, the phase and Δt
(``PelsVaeConfig.phase_tags``, on by default), and the encoder reads them too (the issue's "magnitudes,
errors and times"): a causal TCN's output at step t sees only its receptive field (249 steps for the
paper's k = 5, d = 2, 5 blocks, shorter than t_len = 300), so from Δt alone it could not tell where in the
cycle a late step lies, and the encoder's last step could not place the features it sees in phase. The
phase also keeps generation at a cadence other than the training one (:func:`generate`) in
distribution, where Δt alone would not be. Choose a TCN whose receptive field
(:attr:`PelsVaeConfig.receptive_field`) covers most of t_len: the encoder summarises a curve by its last
step, which sees only that many points. Δt is multiplied by
``t_len`` so that a uniformly sampled curve has Δt ≈ 1 in network units.

Absolute phase carries no information in the training data: curves are folded at a fixed epoch and the
augmented copies are phase-shifted at random (Sec. 2.2), so the latent vector has to encode where in
phase a curve's features lie. Expect a plateau of several epochs before the model learns that.

Scaling. See :class:`LightCurveScaler`: one global affine map of (mag − per-curve median), fitted on the
training set, so that amplitudes stay comparable between curves.

Shapes: B light curves, T time steps (padded at the end to the longest curve; ``mask`` marks real points),
C classes. Units: magnitudes and errors in mag (scaled: dimensionless), phase in [0, 1), period in days,
T_eff in K, M_G in mag.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from latentsky.config import dataclass_from_dict

__all__ = [
    "CLASSES",
    "SEQ_ARCHS",
    "LR_SCHEDULES",
    "PHYSICS_COLUMNS",
    "SIGMA_FLOOR",
    "PelsVaeConfig",
    "LightCurveScaler",
    "PelsVaeBatch",
    "TemporalBlock",
    "TCN",
    "RNN",
    "PelsVae",
    "class_one_hot",
    "physics_vector",
    "frame_to_tensors",
    "pelsvae_loss",
    "encode",
    "sample_latents",
    "generate",
    "reconstruct",
    "build_pelsvae",
    "pelsvae_state",
]

#: The eight OGLE-III classes of paper 000 (Table 1), in the fixed order of the one-hot encoding.
CLASSES: tuple[str, ...] = ("ACEP", "CEP", "DSCT", "ECL", "ELL", "LPV", "RRLYR", "T2CEP")
#: Table 2: seq_arch ∈ {TCN, GRU, LSTM}.
SEQ_ARCHS = ("tcn", "gru", "lstm")
#: Table 2: lr_sch ∈ {None, Exponential, Cosine, Plateau}.
LR_SCHEDULES = ("none", "exponential", "cosine", "plateau")
#: Columns of the physical parameters of cVAE-P (Sec. 4.2), in the order of the encoder's input.
PHYSICS_COLUMNS = ("teff", "abs_g", "period")
#: Lower bound on the *scaled* measurement error in the loss. With the training scale of a few magnitudes
#: (see :class:`LightCurveScaler`) it is ~0.3 mmag, five times below the best OGLE-III errors (~1.5 mmag),
#: so it never reweights real data; it only keeps a zero or corrupt error (and a sigmoid output that
#: underflows) from dividing by zero in eq. 4.
SIGMA_FLOOR = 1e-4


@dataclass(frozen=True)
class PelsVaeConfig:
    """Every hyperparameter of PELS-VAE. Defaults are Table 2's best values (paper scale).

    Attributes
    ----------
    seq_arch : "tcn", "gru" or "lstm" (Table 2 best: TCN).
    h_size : hidden units of the TCN / RNN (best 48).
    z_dim : latent dimension (best 4; Sec. 3.2).
    beta : KL weight β of eq. 3–4 (best 0.75).
    dropout : dropout probability p_drop (best 0.2), in the TCN blocks, the encoder's dense layers and
        between stacked RNN layers.
    batch_size : b_size (best 128).
    lr : Adam learning rate (best 1e-3).
    lr_schedule : "none", "exponential", "cosine" (best) or "plateau"; stepped once per epoch.
    lr_gamma : decay factor of the "exponential" (per epoch) and "plateau" (per plateau) schedules; the
        paper does not give it.
    lr_patience : epochs without improvement of the validation loss before "plateau" decays the lr.
    n_blocks, kernel_size, dilation : TCN temporal blocks (best 5), kernel size (best 5), dilation base d
        (2; block i has dilation d**i).
    weight_norm : weight normalisation of the TCN convolutions (as in Bai et al. 2018).
    n_layers : stacked RNN layers (GRU/LSTM only).
    fc_sizes : widths of the encoder's dense layers after the sequential network (not given in the paper).
    epochs : training epochs (paper: 100).
    t_len : nominal sequence length (Sec. 2.1: 300); Δt is multiplied by it to be O(1).
    classes : class names in one-hot order.
    use_physics : cVAE-P (T_eff, M_G, log10 P into the encoder, Sec. 4.2) instead of cVAE (Sec. 4.1).
    phase_tags : tag each encoder and decoder step with its phase as well as Δt (module docstring).
    """

    seq_arch: str = "tcn"
    h_size: int = 48
    z_dim: int = 4
    beta: float = 0.75
    dropout: float = 0.2
    batch_size: int = 128
    lr: float = 1e-3
    lr_schedule: str = "cosine"
    lr_gamma: float = 0.95
    lr_patience: int = 5
    n_blocks: int = 5
    kernel_size: int = 5
    dilation: int = 2
    weight_norm: bool = True
    n_layers: int = 1
    fc_sizes: tuple[int, ...] = (64, 32)
    epochs: int = 100
    t_len: int = 300
    classes: tuple[str, ...] = CLASSES
    use_physics: bool = False
    phase_tags: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "fc_sizes", tuple(int(s) for s in self.fc_sizes))
        object.__setattr__(self, "classes", tuple(str(c) for c in self.classes))
        if self.seq_arch not in SEQ_ARCHS:
            raise ValueError(f"pelsvae seq_arch must be one of {SEQ_ARCHS}, got {self.seq_arch!r}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"pelsvae lr_schedule must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}")
        for name in ("h_size", "z_dim", "batch_size", "n_blocks", "kernel_size", "dilation", "n_layers"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"pelsvae {name} must be ≥ 1, got {getattr(self, name)}")
        if self.epochs < 0 or self.t_len < 1 or self.lr_patience < 0:
            raise ValueError(f"pelsvae epochs ≥ 0, t_len ≥ 1, lr_patience ≥ 0 required, got {self}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"pelsvae dropout must be in [0, 1), got {self.dropout}")
        if self.beta < 0 or self.lr <= 0 or not 0 < self.lr_gamma <= 1:
            raise ValueError(
                f"pelsvae needs beta ≥ 0, lr > 0, 0 < lr_gamma ≤ 1, got {self.beta}, {self.lr}, {self.lr_gamma}"
            )
        if any(s < 1 for s in self.fc_sizes):
            raise ValueError(f"pelsvae fc_sizes must be positive, got {self.fc_sizes}")
        if not self.classes or len(set(self.classes)) != len(self.classes):
            raise ValueError(f"pelsvae classes must be non-empty and unique, got {self.classes}")

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def receptive_field(self) -> int | None:
        """Steps a TCN output sees (1 + 2(k − 1) Σ_i d^i); None for a GRU/LSTM, which sees every step."""
        if self.seq_arch != "tcn":
            return None
        return 1 + 2 * (self.kernel_size - 1) * sum(self.dilation**i for i in range(self.n_blocks))

    @property
    def n_physics(self) -> int:
        return len(PHYSICS_COLUMNS) if self.use_physics else 0

    def as_dict(self) -> dict[str, Any]:
        """Plain dict (lists for tuples) for config files and checkpoints."""
        d = asdict(self)
        d["fc_sizes"] = list(self.fc_sizes)
        d["classes"] = list(self.classes)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> PelsVaeConfig:
        """Inverse of :meth:`as_dict`; keys left out take their defaults, unknown keys are an error."""
        return dataclass_from_dict(cls, d, "pelsvae config")


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
    return _onehot(_class_indices(values, classes), len(classes))


def _class_indices(values: Sequence[Any], classes: Sequence[str]) -> np.ndarray:
    lookup = {c: i for i, c in enumerate(classes)}
    idx = np.array([lookup.get(str(v), -1) for v in values], dtype=np.int64)
    if (idx < 0).any():
        unknown = sorted({str(v) for v, i in zip(values, idx, strict=True) if i < 0})
        raise ValueError(f"column 'var_class': unknown class(es) {unknown}; the model knows {list(classes)}")
    return idx


def _onehot(idx: np.ndarray, n_classes: int) -> np.ndarray:
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
    onehot = _onehot(_class_indices(list(frame["var_class"]), config.classes), config.n_classes)
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


# ---------------------------------------------------------------------------------------------------------
# Networks
# ---------------------------------------------------------------------------------------------------------


class _CausalConv1d(nn.Module):
    """Conv1d padded on the left by (k − 1)·d only, so output step t sees inputs ≤ t (Bai et al. 2018).

    Bai et al. pad both sides and "chomp" the right end; padding the left alone is the same operation.
    """

    def __init__(self, c_in: int, c_out: int, kernel_size: int, dilation: int, weight_norm: bool) -> None:
        super().__init__()
        self.left_pad = (kernel_size - 1) * dilation
        conv = nn.Conv1d(c_in, c_out, kernel_size, dilation=dilation)
        self.conv = nn.utils.parametrizations.weight_norm(conv) if weight_norm else conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (self.left_pad, 0)))


class TemporalBlock(nn.Module):
    """Residual block of two dilated causal convolutions, each followed by ReLU and dropout (Bai et al.).

    Input and output (B, C, T); a 1×1 convolution matches the residual's channels when they change.
    """

    def __init__(
        self, c_in: int, c_out: int, kernel_size: int, dilation: int, dropout: float, weight_norm: bool
    ) -> None:
        super().__init__()
        self.net = nn.Sequential(
            _CausalConv1d(c_in, c_out, kernel_size, dilation, weight_norm),
            nn.ReLU(),
            nn.Dropout(dropout),
            _CausalConv1d(c_out, c_out, kernel_size, dilation, weight_norm),
            nn.ReLU(),
            nn.Dropout(dropout),
        )
        self.downsample = nn.Conv1d(c_in, c_out, 1) if c_in != c_out else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        res = x if self.downsample is None else self.downsample(x)
        return torch.relu(self.net(x) + res)


class TCN(nn.Module):
    """Temporal convolutional network: ``n_blocks`` temporal blocks, block i with dilation ``dilation**i``.

    Maps (B, T, in_features) to (B, T, h_size); causal, so output step t depends on inputs ≤ t only,
    within :attr:`receptive_field` steps.
    """

    def __init__(
        self,
        in_features: int,
        h_size: int,
        n_blocks: int,
        kernel_size: int,
        dilation: int,
        dropout: float,
        weight_norm: bool = True,
    ) -> None:
        super().__init__()
        self.blocks = nn.Sequential(
            *(
                TemporalBlock(
                    in_features if i == 0 else h_size, h_size, kernel_size, dilation**i, dropout, weight_norm
                )
                for i in range(n_blocks)
            )
        )
        # Two convolutions per block, each reaching (k − 1)·d_i steps back.
        self.receptive_field = 1 + 2 * (kernel_size - 1) * sum(dilation**i for i in range(n_blocks))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x.transpose(1, 2)).transpose(1, 2)


class RNN(nn.Module):
    """GRU or LSTM, batch first: (B, T, in_features) → (B, T, h_size). Unidirectional, hence causal."""

    def __init__(self, kind: str, in_features: int, h_size: int, n_layers: int, dropout: float) -> None:
        super().__init__()
        cls = {"gru": nn.GRU, "lstm": nn.LSTM}[kind]
        # torch applies RNN dropout between stacked layers only (and warns for a single layer).
        self.rnn = cls(
            in_features, h_size, n_layers, batch_first=True, dropout=dropout if n_layers > 1 else 0.0
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rnn(x)[0]


def _sequence_net(config: PelsVaeConfig, in_features: int) -> nn.Module:
    if config.seq_arch == "tcn":
        return TCN(
            in_features,
            config.h_size,
            config.n_blocks,
            config.kernel_size,
            config.dilation,
            config.dropout,
            config.weight_norm,
        )
    return RNN(config.seq_arch, in_features, config.h_size, config.n_layers, config.dropout)


class PelsVae(nn.Module):
    """The conditional VAE of paper 000 Fig. 3 (cVAE, or cVAE-P with ``config.use_physics``).

    Time steps past a curve's length (padding) never influence real steps: both sequential networks are
    causal, the encoder reads the output at each curve's last real step, and the loss is masked.
    """

    #: Inputs per encoder step besides the time tags (:meth:`time_tags`): scaled magnitude and error.
    ENCODER_STEP_FEATURES = 2

    def __init__(self, config: PelsVaeConfig) -> None:
        super().__init__()
        self.config = config
        n_time = 3 if config.phase_tags else 1
        self.encoder_seq = _sequence_net(config, self.ENCODER_STEP_FEATURES + n_time)
        layers: list[nn.Module] = []
        width = config.h_size + config.n_classes + config.n_physics
        for size in config.fc_sizes:
            layers += [nn.Linear(width, size), nn.ReLU(), nn.Dropout(config.dropout)]
            width = size
        self.encoder_fc = nn.Sequential(*layers)
        self.fc_mu = nn.Linear(width, config.z_dim)
        self.fc_logvar = nn.Linear(width, config.z_dim)
        self.decoder_seq = _sequence_net(config, config.z_dim + config.n_classes + n_time)
        self.decoder_out = nn.Linear(config.h_size, 2)

    def time_tags(self, phase: torch.Tensor, dt: torch.Tensor) -> torch.Tensor:
        """(B, T, n) tags of each step: Δt·t_len, and with ``phase_tags`` (cos 2πφ, sin 2πφ).

        The phase enters as a point on the unit circle, continuous across the wrap φ = 1 → 0, so that a
        shift in phase — which the latent vector has to encode, since augmentation shifts curves at random
        — is a rotation of the tags rather than a jump.
        """
        tags = [dt * self.config.t_len]
        if self.config.phase_tags:
            angle = 2.0 * torch.pi * phase
            tags = [torch.cos(angle), torch.sin(angle), *tags]
        return torch.stack(tags, dim=-1)

    def init_output_levels(self, mag_level: float, err_level: float) -> None:
        """Start the decoder's sigmoid outputs at typical scaled values (biases = their logits).

        At sigmoid(0) = 0.5 the error channel would start ~100× above the typical scaled error, making
        the error-KL term of eq. 4 ~10⁴ per point and dominating the first hundreds of steps.
        """
        levels = torch.tensor([mag_level, err_level], dtype=torch.float32).clamp(1e-4, 1 - 1e-4)
        with torch.no_grad():
            self.decoder_out.bias.copy_(torch.logit(levels))

    def encode(
        self,
        mag: torch.Tensor,
        err: torch.Tensor,
        phase: torch.Tensor,
        dt: torch.Tensor,
        onehot: torch.Tensor,
        physics: torch.Tensor | None = None,
        lengths: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(μ, log σ²), each (B, z_dim), from scaled (B, T) inputs; ``phase`` and ``dt`` in phase units."""
        x = torch.cat([torch.stack([mag, err], dim=-1), self.time_tags(phase, dt)], dim=-1)
        h = self.encoder_seq(x)
        if lengths is None:
            last = h[:, -1]
        else:
            last = h[torch.arange(h.shape[0], device=h.device), lengths.to(h.device) - 1]
        parts = [last, onehot]
        if self.config.use_physics:
            if physics is None:
                raise ValueError("a use_physics PELS-VAE (cVAE-P) needs the physical parameters")
            parts.append(physics)
        feats = self.encoder_fc(torch.cat(parts, dim=-1))
        return self.fc_mu(feats), self.fc_logvar(feats)

    def decode(
        self, z: torch.Tensor, onehot: torch.Tensor, phase: torch.Tensor, dt: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Scaled (magnitude, error), each (B, T) in (0, 1), from z (B, z_dim) at the given phases (B, T)."""
        b, t = phase.shape
        cond = torch.cat([z, onehot], dim=-1)[:, None, :].expand(b, t, -1)
        tags = self.time_tags(phase, dt)
        out = torch.sigmoid(self.decoder_out(self.decoder_seq(torch.cat([cond, tags], dim=-1))))
        return out[..., 0], out[..., 1]

    def forward(
        self, batch: PelsVaeBatch, sample: bool = True, generator: torch.Generator | None = None
    ) -> dict[str, torch.Tensor]:
        """Encode, draw z = μ + σ ⊙ ε (eq. 1; z = μ if not ``sample``), decode at the batch's own phases.

        Returns ``mu``, ``logvar``, ``z`` (B, z_dim) and ``mag``, ``err`` (B, T), scaled.
        """
        mu, logvar = self.encode(
            batch.mag, batch.err, batch.phase, batch.dt, batch.onehot, batch.physics, batch.lengths
        )
        if sample:
            eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
            z = mu + torch.exp(0.5 * logvar) * eps
        else:
            z = mu
        mag, err = self.decode(z, batch.onehot, batch.phase, batch.dt)
        return {"mu": mu, "logvar": logvar, "z": z, "mag": mag, "err": err}


# ---------------------------------------------------------------------------------------------------------
# Loss (eq. 4)
# ---------------------------------------------------------------------------------------------------------


def pelsvae_loss(
    mag: torch.Tensor,
    mag_hat: torch.Tensor,
    err: torch.Tensor,
    err_hat: torch.Tensor,
    mu: torch.Tensor,
    logvar: torch.Tensor,
    *,
    beta: float,
    mask: torch.Tensor | None = None,
    sigma_floor: float = SIGMA_FLOOR,
) -> dict[str, torch.Tensor]:
    """The three terms of paper 000 eq. 4, on scaled quantities.

    Parameters
    ----------
    mag, mag_hat : (B, T) observed and reconstructed scaled magnitudes x, x̂.
    err, err_hat : (B, T) measurement errors σ and reconstructed errors σ̂ (scaled).
    mu, logvar : (B, z_dim) latent mean and log-variance of q(z|x).
    beta : KL weight β.
    mask : (B, T) bool, True on real points (default: all).
    sigma_floor : lower bound applied to σ and σ̂ (scaled units; see :data:`SIGMA_FLOOR`).

    Returns
    -------
    dict of scalar tensors
        ``recon``: mean over real points of ((x − x̂)/σ)², the first term of eq. 4.
        ``kl``: β · ½ Σ_dims (σ_z² + μ² − log σ_z² − 1), averaged over curves. Eq. 4 as printed reads
        −β Σ (σ² + μ² − log σ − 1): the sign (it is *added* to a loss that is minimised), the ½ and
        log σ² (not log σ) are typos of the standard closed form of KL(N(μ, σ²) ‖ N(0, 1)) (Kingma &
        Welling 2013), which we use. Averaging over curves matches the first term's normalisation.
        ``err_kl``: "D_KL(σ̂ ‖ σ)" of eq. 4, which the paper describes only as making the reconstructed
        errors follow the true ones. We read each error as the width of a zero-mean Gaussian noise
        distribution and take, per point, KL(N(0, σ̂²) ‖ N(0, σ²)) = log(σ/σ̂) + σ̂²/(2σ²) − ½ —
        zero iff σ̂ = σ, and scale-free (it depends on σ̂/σ only), so precise and noisy curves weigh
        the same — averaged over real points.
        ``total``: recon + kl + err_kl.
    """
    if mask is None:
        mask = torch.ones_like(mag, dtype=torch.bool)
    w = mask.to(mag.dtype)
    n_points = w.sum().clamp_min(1.0)
    sigma = err.clamp_min(sigma_floor)
    sigma_hat = err_hat.clamp_min(sigma_floor)
    recon = (((mag - mag_hat) / sigma) ** 2 * w).sum() / n_points
    kl = beta * 0.5 * (torch.exp(logvar) + mu**2 - logvar - 1.0).sum(dim=-1).mean()
    ratio2 = (sigma_hat / sigma) ** 2
    err_kl = ((-0.5 * torch.log(ratio2) + 0.5 * ratio2 - 0.5) * w).sum() / n_points
    return {"total": recon + kl + err_kl, "recon": recon, "kl": kl, "err_kl": err_kl}


# ---------------------------------------------------------------------------------------------------------
# Using a trained model
# ---------------------------------------------------------------------------------------------------------


def _chunks(n: int, size: int) -> list[np.ndarray]:
    return [np.arange(i, min(i + size, n)) for i in range(0, n, size)]


def encode(
    model: PelsVae,
    frame: pd.DataFrame,
    scaler: LightCurveScaler,
    *,
    device: str | torch.device = "cpu",
    batch_size: int = 1024,
    return_logvar: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Latent means μ (N, z_dim) of the light curves in ``frame`` (eval mode, no dropout).

    With ``return_logvar``, returns (μ, log σ²); draw samples from them with :func:`sample_latents`
    (paper Sec. 4.2 samples each latent vector 10 times for the latent→physics regression).
    """
    model = model.to(device).eval()
    batch = frame_to_tensors(frame, model.config, scaler, device)
    mus, logvars = [], []
    with torch.no_grad():
        for idx in _chunks(len(batch), batch_size):
            b = batch.index(idx)
            mu, logvar = model.encode(b.mag, b.err, b.phase, b.dt, b.onehot, b.physics, b.lengths)
            mus.append(mu.cpu().numpy())
            logvars.append(logvar.cpu().numpy())
    z_dim = model.config.z_dim
    mu = np.concatenate(mus) if mus else np.zeros((0, z_dim), dtype=np.float32)
    logvar = np.concatenate(logvars) if logvars else np.zeros((0, z_dim), dtype=np.float32)
    return (mu, logvar) if return_logvar else mu


def sample_latents(
    mu: np.ndarray, logvar: np.ndarray, n_samples: int, rng: np.random.Generator
) -> np.ndarray:
    """Draws z ~ N(μ, σ²) per curve: shape (N, n_samples, z_dim)."""
    mu = np.asarray(mu, dtype=np.float64)
    sd = np.exp(0.5 * np.asarray(logvar, dtype=np.float64))
    return mu[:, None, :] + sd[:, None, :] * rng.standard_normal((mu.shape[0], n_samples, mu.shape[1]))


def _decode_sorted(
    model: PelsVae,
    z: np.ndarray,
    onehot: np.ndarray,
    sorted_phase: np.ndarray,
    device: str | torch.device,
    batch_size: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Scaled decoder output (N, T) at ascending phases (N, T), with Δt_0 = 0 as in training."""
    dt = np.diff(sorted_phase, axis=1, prepend=sorted_phase[:, :1])
    model = model.to(device).eval()
    xs, ss = [], []
    with torch.no_grad():
        for idx in _chunks(len(z), batch_size):
            x, s = model.decode(
                torch.as_tensor(z[idx], device=device),
                torch.as_tensor(onehot[idx], device=device),
                torch.as_tensor(np.ascontiguousarray(sorted_phase[idx]), dtype=torch.float32, device=device),
                torch.as_tensor(dt[idx], dtype=torch.float32, device=device),
            )
            xs.append(x.cpu().numpy())
            ss.append(s.cpu().numpy())
    return np.concatenate(xs).astype(np.float64), np.concatenate(ss).astype(np.float64)


def generate(
    model: PelsVae,
    scaler: LightCurveScaler,
    var_class: str | Sequence[str],
    z: np.ndarray,
    phases: np.ndarray,
    median_mag: float | np.ndarray = 0.0,
    *,
    device: str | torch.device = "cpu",
    batch_size: int = 1024,
    sampling: str = "grid",
) -> tuple[np.ndarray, np.ndarray]:
    """Decode latent vectors into light curves at any phases (any cadence, Sec. 4.3).

    Parameters
    ----------
    model, scaler : trained model and its scaler.
    var_class : one class for all curves, or one per curve.
    z : (z_dim,) for one curve or (N, z_dim).
    phases : (T,) shared by all curves or (N, T), in any order; taken modulo 1 (phase = ((t − t0)/P) mod 1).
    median_mag : scalar or (N,) reference magnitude (mag); 0 gives magnitudes relative to the median.
    sampling : ``"grid"`` (default) decodes at ``t_len`` evenly spaced phases — the sampling density the
        decoder was trained at — and interpolates periodically to ``phases``; ``"direct"`` feeds the
        requested phases and their Δt to the decoder as they are. The decoder's Δt input makes its output
        depend on the density of the sampling: a demo model decoded at twice its training density gave
        time-reversed RR Lyrae. ``grid`` keeps every cadence in distribution; ``direct`` is the paper's
        literal reading, safe for cadences of about ``t_len`` points per cycle.

    Returns
    -------
    (mag, err) : (N, T) in mag (or (T,) for a 1-D ``z``), in the caller's order of ``phases``. The decoder
        runs on phases sorted ascending (the order it was trained on, Δt ≥ 0).
    """
    if sampling not in ("grid", "direct"):
        raise ValueError(f"sampling must be 'grid' or 'direct', got {sampling!r}")
    cfg = model.config
    z = np.asarray(z, dtype=np.float32)
    single = z.ndim == 1
    z = np.atleast_2d(z)
    if z.shape[1] != cfg.z_dim:
        raise ValueError(f"z must have {cfg.z_dim} columns (z_dim), got shape {z.shape}")
    n = z.shape[0]
    phases = np.mod(np.asarray(phases, dtype=np.float64), 1.0)
    if phases.ndim == 1:
        phases = np.broadcast_to(phases, (n, phases.shape[0]))
    if phases.shape[0] != n or phases.ndim != 2 or phases.shape[1] == 0:
        raise ValueError(f"phases must be (T,) or ({n}, T) with T ≥ 1, got shape {phases.shape}")
    if not np.all(np.isfinite(phases)):
        raise ValueError("phases must be finite")
    classes = [var_class] * n if isinstance(var_class, str) else list(var_class)
    if len(classes) != n:
        raise ValueError(f"var_class must be one class or {n} classes, got {len(classes)}")
    onehot = _onehot(_class_indices(classes, cfg.classes), cfg.n_classes)
    if sampling == "grid":
        grid = (np.arange(cfg.t_len) + 0.5) / cfg.t_len
        x_grid, s_grid = _decode_sorted(
            model, z, onehot, np.broadcast_to(grid, (n, grid.size)), device, batch_size
        )
        x = np.stack([np.interp(phases[i], grid, x_grid[i], period=1.0) for i in range(n)])
        s = np.stack([np.interp(phases[i], grid, s_grid[i], period=1.0) for i in range(n)])
        mag, err = scaler.inverse_transform(x, s, median_mag)
        return (mag[0], err[0]) if single else (mag, err)
    order = np.argsort(phases, axis=1, kind="stable")
    sorted_ph = np.take_along_axis(phases, order, axis=1)
    x_sorted, s_sorted = _decode_sorted(model, z, onehot, sorted_ph, device, batch_size)
    x = np.empty_like(x_sorted)
    s = np.empty_like(s_sorted)
    np.put_along_axis(x, order, x_sorted, axis=1)
    np.put_along_axis(s, order, s_sorted, axis=1)
    mag, err = scaler.inverse_transform(x, s, median_mag)
    return (mag[0], err[0]) if single else (mag, err)


def reconstruct(
    model: PelsVae,
    frame: pd.DataFrame,
    scaler: LightCurveScaler,
    *,
    device: str | torch.device = "cpu",
    batch_size: int = 1024,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Decoder reconstructions (z = μ) of the curves in ``frame`` at their own phases (Sec. 4.1, Fig. 5).

    Returns lists of per-curve (magnitude, error) arrays in mag, including each curve's median magnitude.
    """
    model = model.to(device).eval()
    batch = frame_to_tensors(frame, model.config, scaler, device)
    mags: list[np.ndarray] = []
    errs: list[np.ndarray] = []
    with torch.no_grad():
        for idx in _chunks(len(batch), batch_size):
            b = batch.index(idx)
            out = model(b, sample=False)
            m, e = scaler.inverse_transform(out["mag"].cpu().numpy(), out["err"].cpu().numpy(), b.median_mag)
            for k, length in enumerate(b.lengths.cpu().numpy()):
                mags.append(m[k, :length])
                errs.append(e[k, :length])
    return mags, errs


def pelsvae_state(model: PelsVae, scaler: LightCurveScaler) -> dict[str, Any]:
    """Plain-container description of a model (config, weights, scaler) for a checkpoint."""
    return {
        "kind": "pelsvae",
        "config": model.config.as_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "scaler": scaler.as_dict(),
    }


def build_pelsvae(
    state: Mapping[str, Any], device: str | torch.device = "cpu"
) -> tuple[PelsVae, LightCurveScaler]:
    """Rebuild (model in eval mode, scaler) from :func:`pelsvae_state`'s dict."""
    if state.get("kind") != "pelsvae":
        raise ValueError(f"not a PELS-VAE model state (kind {state.get('kind')!r})")
    model = PelsVae(PelsVaeConfig.from_dict(state["config"]))
    model.load_state_dict(state["state_dict"])
    return model.to(device).eval(), LightCurveScaler.from_dict(state["scaler"])
