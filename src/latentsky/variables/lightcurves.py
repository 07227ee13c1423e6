"""Light-curve preparation of paper 000 (Martínez-Palomera et al.), Sec. 2.1–2.2, as pure functions.

Order of the stage, per object (Sec. 2.1): drop multi-mode / semi-regular subtypes
(:func:`keep_subtype`), keep SNR ≥ 5 on the raw curve (:func:`snr`; the paper and the authors' notebook cut
before cleaning), 3 iterations of 3σ clipping on magnitude and error about the folded shape
(:func:`sigma_clip_lightcurve` with the period), fold on the catalog period (:func:`fold`) — these three are
:func:`clean_and_fold` — and undersample to t_len = 300 points (:func:`undersample`). Per data set
(Sec. 2.2): split the *real* objects by class first (:func:`stratified_split`), then plan augmented copies
for train/validation only (:func:`balance_classes`, :func:`augmentation_plan`) and make them
(:func:`augment`). Splitting before augmenting keeps every copy of
a test object out of training, so the test metrics are measured on real, unseen light curves.

Units: time in days (HJD − 2450000), magnitudes and errors in mag, periods in days, phase in [0, 1).
Randomness comes only from the :class:`numpy.random.Generator` passed in, so results are reproducible.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from astropy.stats import sigma_clip

__all__ = [
    "SNR_MIN",
    "T_LEN",
    "DROPPED_SUBTYPES",
    "snr",
    "sigma_clip_lightcurve",
    "keep_subtype",
    "fold",
    "rise_fraction",
    "align_to_epoch",
    "epoch_phase",
    "EPOCH_AT_MINIMUM_LIGHT",
    "undersample",
    "clean_and_fold",
    "faint_points",
    "preprocess_lightcurve",
    "augment",
    "balance_classes",
    "stratified_split",
    "augmentation_plan",
    "table1_counts",
]

#: Paper 000 Sec. 2.1: "We removed light curves with SNR < 5".
SNR_MIN = 5.0
#: Paper 000 Sec. 2.1: sequence length t_len = 300 observations.
T_LEN = 300

#: Subtypes dropped per class (paper 000 Sec. 2.1: multi-mode pulsators and semi-regular variables give
#: "amorphous shapes" when folded on one period). The vocabulary is OGLE-III's, as it appears in the
#: authors' cross-match tables: Cepheids (CEP, ACEP, DSCT) write modes as F, 1O, 2O and multi-mode stars as
#: joined modes (F/1O, 1O/2O, 1O/2O/3O, F/1O+nr for non-radial, rad+nrad); RR Lyrae RRd are double-mode;
#: OGLE-III LPVs are Mira, SRV or OSARG, with a C/O (carbon-/oxygen-rich) flag. The paper names SRV,
#: OSARG, C and O as the largest dropped LPV groups, so only Miras are kept. ``C`` is dropped for LPV only:
#: in the ECL tables ``C``/``NC`` mean contact / non-contact binaries, which fold cleanly and are kept.
#: Any subtype containing "/" or "+" (several modes) is dropped for every class as well.
DROPPED_SUBTYPES: dict[str, frozenset[str]] = {
    "CEP": frozenset({"F/1O", "1O/2O", "1O/3O", "1O/2O/3O", "F/1O/2O", "F/2O"}),
    "ACEP": frozenset({"F/1O", "1O/2O"}),
    "DSCT": frozenset({"MULTIMODE", "F/1O", "1O/2O", "F/1O+NR", "RAD+NRAD"}),
    "RRLYR": frozenset({"RRD"}),
    "LPV": frozenset({"SRV", "OSARG", "C", "O", "SR", "OSARG_RGB", "OSARG_AGB"}),
    "T2CEP": frozenset(),
    "ECL": frozenset(),
    "ELL": frozenset(),
}


def snr(mag: np.ndarray, err: np.ndarray) -> float:
    """Variability signal-to-noise: standard deviation of the magnitudes over the median error.

    The paper defines SNR as "the variability amplitude" over "the mean photometric uncertainty"
    (Sec. 2.1) without fixing the amplitude. The authors' ``SNR`` column fixes it: for
    OGLE-LMC-CEP-0674 (``var_conf_matches.csv``, SNR 32.54862) ``std(mag) / median(err)`` of the OGLE-III
    light curve gives 32.54862, whereas a percentile or peak-to-peak amplitude gives 51–97. This function
    uses that definition so that the SNR ≥ 5 cut selects the same objects as the published data set.
    The standard deviation is also robust enough here because the cut is applied after sigma clipping.

    Parameters
    ----------
    mag, err : array_like
        Magnitudes and their errors (mag); NaNs are ignored.

    Returns
    -------
    float
        std(mag) (ddof = 0) / median(err), dimensionless; NaN for fewer than 2 points.
    """
    mag = np.asarray(mag, dtype=np.float64)
    err = np.asarray(err, dtype=np.float64)
    good = np.isfinite(mag) & np.isfinite(err)
    if good.sum() < 2:
        return float("nan")
    return float(np.std(mag[good]) / np.median(err[good]))


def sigma_clip_lightcurve(
    time: np.ndarray,
    mag: np.ndarray,
    err: np.ndarray,
    n_iter: int = 3,
    n_sigma: float = 3.0,
    period: float | None = None,
    err_floor: float = 0.001,
    n_bins: int = 20,
) -> np.ndarray:
    """Mask of points kept by iterative σ clipping of magnitude and error (paper 000 Sec. 2.1).

    Each iteration clips magnitudes, then errors, among the points still kept, around the median with the
    standard deviation as σ (:func:`astropy.stats.sigma_clip`, one iteration each so that the two
    quantities alternate as the paper's "3 iterations of 3σ clipping over the magnitude and uncertainty").

    Parameters
    ----------
    time, mag, err : array_like
        Time (d), magnitude (mag), error (mag), same length.
    n_iter : int
        Number of iterations (paper: 3).
    n_sigma : float
        Clipping threshold in σ (paper: 3).
    period : float, optional
        Period (d). The paper clips the raw magnitudes; with a period given, the magnitude clipping acts on
        residuals from the folded shape of ``n_bins`` phase bins, in units of each bin's own scatter
        (:func:`_phase_binned_residuals`), which keeps the deep, short eclipses of detached binaries (a few %
        of the points, far from the median magnitude, on steep branches) from being clipped.
    err_floor : float
        Lower bound (mag) on σ for the error clipping. OGLE-III errors are printed to 0.001 mag, so most
        curves have 1–4 distinct error values and σ(err) < 0.001; without a floor, a point one rounding step
        above the median error would be rejected.
    n_bins : int
        Phase bins for the residuals when ``period`` is given.

    Returns
    -------
    numpy.ndarray of bool
        True for points kept. Non-finite points are always rejected.
    """
    time = np.asarray(time, dtype=np.float64)
    mag = np.asarray(mag, dtype=np.float64)
    err = np.asarray(err, dtype=np.float64)
    if not (time.shape == mag.shape == err.shape) or time.ndim != 1:
        raise ValueError(
            f"time, mag, err must be 1-D of equal length, got {time.shape}, {mag.shape}, {err.shape}"
        )
    keep = np.isfinite(time) & np.isfinite(mag) & np.isfinite(err)

    def floored_std(x: np.ndarray, axis: int | None = None) -> np.ndarray:
        return np.maximum(np.std(x, axis=axis), err_floor)

    for _ in range(n_iter):
        values = (
            mag if period is None else _phase_binned_residuals(fold(time, period), mag, err, keep, n_bins)
        )
        clipped = sigma_clip(values[keep], sigma=n_sigma, maxiters=1, masked=True)
        keep[np.flatnonzero(keep)[np.ma.getmaskarray(clipped)]] = False
        clipped = sigma_clip(err[keep], sigma=n_sigma, maxiters=1, stdfunc=floored_std, masked=True)
        keep[np.flatnonzero(keep)[np.ma.getmaskarray(clipped)]] = False
    return keep


def _bin_medians(phase: np.ndarray, values: np.ndarray, n_bins: int) -> np.ndarray:
    """Median of ``values`` in each of ``n_bins`` equal phase bins (NaN where a bin is empty)."""
    bins = np.minimum((np.mod(phase, 1.0) * n_bins).astype(int), n_bins - 1)
    med = np.full(n_bins, np.nan)
    for b in np.unique(bins):
        med[b] = np.median(values[bins == b])
    return med


def _phase_binned_residuals(
    phase: np.ndarray, mag: np.ndarray, err: np.ndarray, keep: np.ndarray, n_bins: int
) -> np.ndarray:
    """Residuals from the folded shape in units of the local scatter, for clipping "at the same phase".

    The shape is the kept points' bin medians, interpolated cyclically between bin centres so a steep
    eclipse branch is not a step; each residual is divided by the robust scatter (1.4826 × MAD) of the
    residuals in its bin, floored at the whole curve's robust scatter and its median error. With one
    global σ, the steep, deep eclipse of a detached binary carries the largest residuals of the curve and
    half its points were clipped; scaled locally, 94 % of the demo's in-eclipse points stay, and an
    isolated outlier is still far from its neighbours in phase (tests/variables/test_lightcurves.py).
    """
    centres = (np.arange(n_bins) + 0.5) / n_bins
    med = _bin_medians(phase[keep], mag[keep], n_bins)
    filled = np.isfinite(med)
    if filled.sum() < 2:
        return np.zeros_like(mag)
    resid = mag - np.interp(phase, centres[filled], med[filled], period=1.0)
    local = 1.4826 * _bin_medians(phase[keep], np.abs(resid[keep]), n_bins)
    # Floored at the curve's overall robust scatter (and its median error): a bin's MAD from a dozen points
    # can come out small by chance, and only bins that are really wider (eclipse branches) should widen.
    floor = max(float(np.median(err[keep])), 1.4826 * float(np.median(np.abs(resid[keep]))))
    local = np.where(np.isfinite(local), np.maximum(local, floor), floor)
    return resid / local[np.minimum((phase * n_bins).astype(int), n_bins - 1)]


#: Two or more pulsation modes written without a separator ("F1O", "1O2O"), as some tables (and this
#: project's simulation once) write OGLE's "F/1O", "1O/2O".
_JOINED_MODES = re.compile(r"(?:F|[1-9]O){2,}")


def keep_subtype(var_class: str, subtype: str | None) -> bool:
    """Whether an object of this class and subtype stays in the data set (paper 000 Sec. 2.1).

    Parameters
    ----------
    var_class : str
        OGLE-III class (``CEP``, ``RRLYR``, ``LPV``, ...).
    subtype : str or None
        OGLE-III subtype (``F``, ``1O/2O``, ``RRd``, ``Mira``, ``OSARG``...); case-insensitive. Missing
        subtypes are kept (a class without a subtype vocabulary, e.g. ELL).

    Returns
    -------
    bool
        False for the subtypes of :data:`DROPPED_SUBTYPES` (the whole string or its first token, the type of
        a "type flag" subtype such as "SRV C") and for any multi-mode subtype ("/" or "+", or modes joined
        without a separator such as "F1O").
    """
    if subtype is None or (isinstance(subtype, float) and np.isnan(subtype)):
        return True
    sub = str(subtype).strip().upper()
    if "/" in sub or "+" in sub or _JOINED_MODES.fullmatch(sub):
        return False
    # Some ident tables carry the type and a flag (an LPV's "Mira O": O-rich); the first token is the type.
    first = sub.split()[0] if sub else sub
    dropped = DROPPED_SUBTYPES.get(str(var_class).strip().upper(), frozenset())
    return sub not in dropped and first not in dropped


def fold(time: np.ndarray, period: float, t0: float | None = None) -> np.ndarray:
    """Phase of each observation, in [0, 1).

    Parameters
    ----------
    time : array_like
        Times (d, HJD − 2450000).
    period : float
        Period (d), > 0.
    t0 : float, optional
        Reference epoch (d). Default 0 (HJD 2450000): a fixed epoch makes the phase of a point independent
        of which other points survive clipping; the absolute phase carries no information anyway, because
        augmentation applies a uniform random phase shift (paper 000 Sec. 2.2).

    Returns
    -------
    numpy.ndarray
        (time − t0) / period modulo 1, in [0, 1).
    """
    if not period > 0:
        raise ValueError(f"period must be > 0 d, got {period}")
    time = np.asarray(time, dtype=np.float64)
    phase = np.mod((time - (0.0 if t0 is None else t0)) / period, 1.0)
    # np.mod of a tiny negative number can round to exactly 1.0.
    return np.where(phase >= 1.0, 0.0, phase)


def _smoothed_bin_medians(phase: np.ndarray, mag: np.ndarray, n_bins: int) -> np.ndarray | None:
    """Medians of ``n_bins`` phase bins, empty bins filled by cyclic interpolation, smoothed by a cyclic
    5-bin running mean so that noise does not move the extremes; None with fewer than two filled bins."""
    med = _bin_medians(np.asarray(phase, dtype=np.float64), np.asarray(mag, dtype=np.float64), n_bins)
    filled = np.isfinite(med)
    if filled.sum() < 2:
        return None
    centres = (np.arange(n_bins) + 0.5) / n_bins
    med = np.interp(centres, centres[filled], med[filled], period=1.0)
    return np.convolve(np.r_[med[-2:], med, med[:2]], np.ones(5) / 5, mode="valid")


def rise_fraction(phase: np.ndarray, mag: np.ndarray, n_bins: int = 40) -> float:
    """Fraction of the cycle from minimum to maximum light of a folded curve (0.5 for a sinusoid; small
    for the steep rise of RRab stars and long-period Cepheids), independent of the phase zero point."""
    smooth = _smoothed_bin_medians(phase, mag, n_bins)
    if smooth is None:
        return float("nan")
    # Magnitudes: maximum light is the minimum magnitude.
    return float(np.mod(np.argmin(smooth) - np.argmax(smooth), n_bins) / n_bins)


#: Classes whose catalog epoch (phase 0) is minimum light — the primary eclipse — rather than maximum.
EPOCH_AT_MINIMUM_LIGHT = frozenset({"ECL", "ELL"})


def epoch_phase(phase: np.ndarray, mag: np.ndarray, var_class: str, n_bins: int = 40) -> float:
    """The phase of a folded curve's catalog-convention epoch (:func:`align_to_epoch`): the bin centre of
    the smoothed phase-binned medians' maximum light (minimum light for :data:`EPOCH_AT_MINIMUM_LIGHT`);
    0 for a curve too sparse to tell."""
    smooth = _smoothed_bin_medians(np.asarray(phase, dtype=np.float64), mag, n_bins)
    if smooth is None:
        return 0.0
    at_min_light = str(var_class).upper() in EPOCH_AT_MINIMUM_LIGHT
    return (int(np.argmax(smooth) if at_min_light else np.argmin(smooth)) + 0.5) / n_bins


def align_to_epoch(
    phase: np.ndarray, mag: np.ndarray, err: np.ndarray, var_class: str, n_bins: int = 40
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Shift a folded curve so that phase 0 is at its catalog-convention epoch, re-sorted by phase.

    OGLE-III (like most variable-star catalogs) gives T0 at maximum light for pulsators and at the
    primary minimum for eclipsing and ellipsoidal binaries (:data:`EPOCH_AT_MINIMUM_LIGHT`); the extremum
    is that of the smoothed phase-binned medians, placed at its bin centre.
    """
    phase = np.asarray(phase, dtype=np.float64)
    extremum = epoch_phase(phase, mag, var_class, n_bins)
    shifted = np.mod(phase - extremum, 1.0)
    shifted = np.where(shifted >= 1.0, 0.0, shifted)
    order = np.argsort(shifted, kind="stable")
    return shifted[order], np.asarray(mag)[order], np.asarray(err)[order]


def undersample(
    phase: np.ndarray,
    mag: np.ndarray,
    err: np.ndarray,
    n: int = T_LEN,
    rng: np.random.Generator | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random subset of ``n`` points without replacement (all if fewer), sorted by phase (paper 000 Sec. 2.1).

    Parameters
    ----------
    phase, mag, err : array_like
        Phase in [0, 1), magnitude (mag), error (mag).
    n : int
        Target length t_len (paper: 300).
    rng : numpy.random.Generator
        Source of randomness (required: undersampling is random by definition).

    Returns
    -------
    tuple of numpy.ndarray
        (phase, mag, err) of length min(n, len(phase)), sorted by phase.
    """
    if rng is None:
        raise ValueError("undersample needs a numpy Generator (rng) for reproducibility")
    phase, mag, err = (np.asarray(x, dtype=np.float64) for x in (phase, mag, err))
    idx = np.arange(phase.size) if phase.size <= n else rng.choice(phase.size, size=n, replace=False)
    idx = idx[np.argsort(phase[idx], kind="stable")]
    return phase[idx], mag[idx], err[idx]


def clean_and_fold(
    time: np.ndarray,
    mag: np.ndarray,
    err: np.ndarray,
    period: float,
    snr_min: float = SNR_MIN,
    n_bins: int | None = None,
) -> tuple[float, tuple[np.ndarray, np.ndarray, np.ndarray] | None]:
    """The per-object cleaning of paper 000 Sec. 2.1: SNR cut, clipping, folding — in the paper's order.

    The SNR (:func:`snr`) is measured on the raw curve, as the paper ("we removed light curves with SNR < 5"
    before describing the clipping) and the authors' notebook (``snr`` of the raw curve, then
    ``preprocess_lc``) do. The 3 × 3σ clipping then acts on residuals from the folded shape
    (:func:`sigma_clip_lightcurve` with ``period``): clipped about the raw median instead, the eclipses of a
    detached binary — a few per cent of its points, far below the median brightness — are the "outliers"
    (the clipping kept 4 % of the demo's in-eclipse points, and the SNR of what was left failed the cut for
    155 of 211 detached binaries).

    Parameters
    ----------
    time, mag, err : array_like
        The raw light curve: time (d), magnitude and error (mag).
    period : float
        Catalog period (d), > 0.
    snr_min : float
        The cut (paper: 5).
    n_bins : int, optional
        Phase bins of the clipping's reference shape; default one per 12 points, between 20 and 100, so a
        detached eclipse (≈ 0.05–0.1 in phase) spans several bins and each bin's median follows it.

    Returns
    -------
    (snr, folded)
        The raw curve's SNR, and (phase, mag, err) of the kept points sorted by phase, or None when the SNR
        is below ``snr_min`` (or undefined: fewer than two finite points).
    """
    time, mag, err = (np.asarray(x, dtype=np.float64) for x in (time, mag, err))
    value = snr(mag, err)
    if not value >= snr_min:
        return value, None
    if n_bins is None:
        n_bins = int(np.clip(time.size // 12, 20, 100))
    keep = sigma_clip_lightcurve(time, mag, err, period=period, n_bins=n_bins)
    phase = fold(time[keep], period)
    order = np.argsort(phase, kind="stable")
    return value, (phase[order], mag[keep][order], err[keep][order])


def faint_points(mag: np.ndarray) -> np.ndarray:
    """The points of a curve fainter than median + ½(99.5th percentile − median): an eclipsing binary's
    in-eclipse points, a pulsator's minimum light. What a cleaning must not clip (paper 000 Sec. 2.1 keeps
    the shape; the stage's ``faint_kept`` says how much of it survived)."""
    mag = np.asarray(mag, dtype=np.float64)
    finite = np.isfinite(mag)
    if not finite.any():
        return np.zeros(mag.shape, dtype=bool)
    med = np.median(mag[finite])
    return finite & (mag > med + 0.5 * (np.percentile(mag[finite], 99.5) - med))


def preprocess_lightcurve(
    time: np.ndarray,
    mag: np.ndarray,
    err: np.ndarray,
    period: float,
    rng: np.random.Generator,
    n: int = T_LEN,
    snr_min: float = SNR_MIN,
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """One light curve through the whole of paper 000 Sec. 2.1: :func:`clean_and_fold`, then
    :func:`undersample` to ``n`` points.

    Returns
    -------
    tuple of numpy.ndarray or None
        (phase, mag, err) sorted by phase, or None if the light curve fails SNR ≥ ``snr_min``.
    """
    _, folded = clean_and_fold(time, mag, err, period, snr_min=snr_min)
    return None if folded is None else undersample(*folded, n=n, rng=rng)


def augment(
    phase: np.ndarray,
    mag: np.ndarray,
    err: np.ndarray,
    n_copies: int,
    rng: np.random.Generator,
    n: int = T_LEN,
) -> np.ndarray:
    """Augmented copies of a folded, *untrimmed* light curve (paper 000 Sec. 2.2, Fig. 1 columns 2–4).

    Each copy: (1) resample every magnitude from N(mag, err²); (2) add one phase shift drawn from U[0, 1),
    modulo 1; (3) undersample to ``n`` points sorted by phase. Errors are carried unchanged.

    Parameters
    ----------
    phase, mag, err : array_like
        Folded light curve (phase in [0, 1), mag, mag), all points (before undersampling).
    n_copies : int
        Number of copies (≥ 0).
    rng : numpy.random.Generator
        Source of randomness; the result is a deterministic function of its state.
    n : int
        Points per copy (t_len).

    Returns
    -------
    numpy.ndarray
        Shape (n_copies, min(n, len(phase)), 3): phase, mag, err per point.
    """
    phase, mag, err = (np.asarray(x, dtype=np.float64) for x in (phase, mag, err))
    m = min(n, phase.size)
    out = np.empty((n_copies, m, 3))
    for k in range(n_copies):
        new_mag = rng.normal(mag, err)
        new_phase = np.mod(phase + rng.uniform(0.0, 1.0), 1.0)
        new_phase = np.where(new_phase >= 1.0, 0.0, new_phase)
        p, mm, e = undersample(new_phase, new_mag, err, n=n, rng=rng)
        out[k, :, 0], out[k, :, 1], out[k, :, 2] = p, mm, e
    return out


def balance_classes(
    objects: pd.DataFrame,
    target_small: int = 5000,
    target_large: int = 10000,
    small_class_limit: int = 2000,
    ecl_reduce_to: int | None = None,
    rng: np.random.Generator | None = None,
    class_col: str = "var_class",
    id_col: str = "ogle_id",
    physics_col: str = "has_physics",
    class_sizes: Mapping[str, int] | None = None,
) -> pd.DataFrame:
    """Number of augmented copies per real object to balance the classes (paper 000 Sec. 2.2, Table 1).

    A class with fewer than ``small_class_limit`` objects is brought to ``target_small`` examples, others
    to ``target_large`` (paper: 2,000 / ~5,000 / ~10,000). The deficit is spread evenly: every object gets
    ``deficit // N`` copies and a random selection of ``deficit % N`` objects one more, so the class total
    is exactly the target. Classes already at or above their target get no copies. ECL, "noticeably larger"
    than the rest, is first reduced to ``ecl_reduce_to`` objects (default ``target_large``) keeping objects
    with physical parameters first (``physics_col`` True), then a random choice of the others.

    Parameters
    ----------
    objects : pandas.DataFrame
        One row per real object with ``id_col``, ``class_col`` and (for ECL reduction) ``physics_col``.
    target_small, target_large, small_class_limit, ecl_reduce_to : int
        Counts (the demo configuration scales them down).
    rng : numpy.random.Generator
        Source of randomness.
    class_sizes : mapping, optional
        Objects per class in the whole sample, which decide small or large; default the counts in
        ``objects``. :func:`augmentation_plan` balances one split at a time and passes the whole sample's
        counts: a split holds only part of a class, and judged by its own count ELL (2,269 objects, 1,361 in
        training) would be "small" and get half the paper's examples.

    Returns
    -------
    pandas.DataFrame
        ``id_col``, ``class_col``, ``keep`` (False for ECL objects removed by the reduction) and
        ``n_copies`` (augmented copies to make, 0 for removed objects), in the input order.
    """
    if rng is None:
        raise ValueError("balance_classes needs a numpy Generator (rng) for reproducibility")
    if objects[id_col].duplicated().any():
        raise ValueError(f"column {id_col} must be unique: one row per real object")
    out = objects[[id_col, class_col]].copy()
    out["keep"] = True
    out["n_copies"] = 0
    for cls, group in objects.groupby(class_col, sort=True):
        idx = group.index.to_numpy()
        if cls == "ECL":
            limit = target_large if ecl_reduce_to is None else ecl_reduce_to
            if len(idx) > limit:
                has_phys = (
                    group[physics_col].fillna(False).astype(bool).to_numpy()
                    if physics_col in group
                    else np.zeros(len(idx), dtype=bool)
                )
                # Random order inside each priority group, physics first (paper: "prioritizing sources
                # with physical parameters").
                order = np.lexsort((rng.permutation(len(idx)), ~has_phys))
                out.loc[idx[order[limit:]], "keep"] = False
                idx = idx[order[:limit]]
        n_obj = len(idx)
        size = len(group) if class_sizes is None else int(class_sizes.get(cls, len(group)))
        target = target_small if size < small_class_limit else target_large
        deficit = target - n_obj
        if deficit <= 0 or n_obj == 0:
            continue
        copies = np.full(n_obj, deficit // n_obj)
        copies[rng.choice(n_obj, size=deficit % n_obj, replace=False)] += 1
        out.loc[idx, "n_copies"] = copies
    return out


def stratified_split(
    objects: pd.DataFrame,
    fractions: Sequence[float] = (0.6, 0.2, 0.2),
    rng: np.random.Generator | None = None,
    class_col: str = "var_class",
    id_col: str = "ogle_id",
    names: Sequence[str] = ("train", "val", "test"),
    group_col: str | None = None,
) -> pd.Series:
    """Assign each REAL object to train / validation / test, stratified by class.

    Must run before augmentation (paper 000 Sec. 2.2 augments "sources", so copies of one star would
    otherwise land in both train and test and inflate the test scores). Within each class the objects are
    shuffled and cut at round(cumulative fraction × N), so every class keeps the same proportions.

    Parameters
    ----------
    objects : pandas.DataFrame
        One row per real object (unique ``id_col``) with ``class_col``.
    fractions : sequence of float
        Fractions per split, summing to 1 (DESIGN.md: 60/20/20).
    rng : numpy.random.Generator
        Source of randomness.
    group_col : str, optional
        Objects with the same non-null value here go to one split — the split of the first of them in input
        order. With the accepted Gaia ``source_id``: two OGLE objects matched to one Gaia source (the
        cross-match's ``source_shared``, possibly one star listed twice) carry the same physics and must not
        sit on both sides of train/test (review of paper 000, 2.6).

    Returns
    -------
    pandas.Series
        Split name per object, indexed by ``id_col``, in the input order.
    """
    if rng is None:
        raise ValueError("stratified_split needs a numpy Generator (rng) for reproducibility")
    fractions = np.asarray(fractions, dtype=np.float64)
    if len(fractions) != len(names) or np.any(fractions < 0) or not np.isclose(fractions.sum(), 1.0):
        raise ValueError(f"fractions must be {len(names)} non-negative numbers summing to 1, got {fractions}")
    if objects[id_col].duplicated().any():
        raise ValueError(f"column {id_col} must be unique: split real objects, not augmented copies")
    assignment = pd.Series(names[0], index=objects[id_col].to_numpy(), name="split", dtype=object)
    assignment.index.name = id_col
    for _, group in objects.groupby(class_col, sort=True):
        ids = group[id_col].to_numpy()[rng.permutation(len(group))]
        cuts = np.round(np.cumsum(fractions)[:-1] * len(ids)).astype(int)
        for name, part in zip(names, np.split(ids, cuts), strict=True):
            assignment.loc[part] = name
    if group_col is not None and group_col in objects.columns:
        keys = objects[group_col]
        shared = keys.notna() & keys.duplicated(keep=False)
        for _, members in objects.loc[shared.to_numpy(), id_col].groupby(keys[shared].to_numpy(), sort=False):
            assignment.loc[members.to_numpy()] = assignment.loc[members.iloc[0]]
    return assignment


def augmentation_plan(
    objects: pd.DataFrame,
    split: pd.Series,
    rng: np.random.Generator,
    augment_splits: Sequence[str] = ("train", "val"),
    fractions: Mapping[str, float] | None = None,
    class_col: str = "var_class",
    id_col: str = "ogle_id",
    **balance_kwargs: int | None,
) -> pd.DataFrame:
    """One row per example of the final data set: real objects of every split plus augmented copies.

    Copies are planned per split with :func:`balance_classes`, only for ``augment_splits``; the test split
    keeps its real objects only. Whether a class is small or large is decided on the whole sample. Each
    augmented split's class targets are the paper's targets scaled by its share of the augmented splits
    (``fractions``, default 0.6 / 0.2 for train / val → 75 % / 25 %).

    Returns
    -------
    pandas.DataFrame
        ``id_col``, ``class_col``, ``split``, ``copy`` (0 = the real light curve, 1… = augmented) and
        ``augmented`` (bool).
    """
    fractions = dict(fractions or {"train": 0.6, "val": 0.2, "test": 0.2})
    total = sum(fractions[s] for s in augment_splits)
    base = objects[[id_col, class_col]].copy()
    base["split"] = split.reindex(base[id_col].to_numpy()).to_numpy()
    if base["split"].isna().any():
        raise ValueError("every object needs a split assignment")
    sizes = objects[class_col].value_counts().to_dict()  # small or large by the whole class, not a split
    rows = []
    for name, part in base.groupby("split", sort=True):
        if name not in augment_splits:
            rows.append(part.assign(copy=0, augmented=False))
            continue
        scale = fractions[name] / total
        kwargs = dict(balance_kwargs)
        for key, default in (("target_small", 5000), ("target_large", 10000)):
            kwargs[key] = round(scale * (kwargs.get(key) or default))
        if kwargs.get("ecl_reduce_to") is not None:
            kwargs["ecl_reduce_to"] = round(scale * kwargs["ecl_reduce_to"])
        plan = balance_classes(
            objects.loc[part.index],
            rng=rng,
            class_col=class_col,
            id_col=id_col,
            class_sizes=sizes,
            **kwargs,
        ).loc[lambda d: d["keep"]]
        reps = plan["n_copies"].to_numpy() + 1
        expanded = plan.loc[plan.index.repeat(reps), [id_col, class_col]].copy()
        expanded["split"] = name
        expanded["copy"] = np.concatenate([np.arange(r) for r in reps]) if len(reps) else []
        expanded["augmented"] = expanded["copy"] > 0
        rows.append(expanded)
    return pd.concat(rows, ignore_index=True)


def table1_counts(objects: pd.DataFrame, class_col: str = "var_class") -> pd.DataFrame:
    """Class counts in the shape of paper 000 Table 1 (one stage: one of its column groups).

    Parameters
    ----------
    objects : pandas.DataFrame
        One row per light curve with ``class_col`` and optionally Gaia ``teff_val``, ``radius_val``,
        ``lum_val`` (the :func:`latentsky.io.ogle.read_ogle_gaia_xmatch` names; ``teff``, ``radius``,
        ``luminosity`` or ``lum`` also accepted).

    Returns
    -------
    pandas.DataFrame
        Indexed by class plus a ``Total`` row: ``n``; when Teff is present ``n_teff`` and ``pct_teff``; when
        radius and luminosity are present ``n_r_l`` (both given) and ``pct_r_l``. Percentages of ``n``.
    """
    grouped = objects.groupby(class_col, sort=True)
    table = pd.DataFrame({"n": grouped.size()})

    def first(*names: str) -> str | None:
        return next((c for c in names if c in objects.columns), None)

    teff, rad, lum = (
        first("teff_val", "teff"),
        first("radius_val", "radius"),
        first("lum_val", "luminosity", "lum"),
    )
    flags = {}
    if teff:
        flags["teff"] = objects[teff].notna()
    if rad and lum:
        flags["r_l"] = objects[rad].notna() & objects[lum].notna()
    for name, flag in flags.items():
        table[f"n_{name}"] = flag.groupby(objects[class_col]).sum().astype(int)
    table.loc["Total"] = table.sum()
    table = table.astype(int)
    for name in flags:
        table[f"pct_{name}"] = 100.0 * table[f"n_{name}"] / table["n"]
    table.index.name = class_col
    return table


#: Why an object is not in the training sets (one status per object; nothing is dropped silently).
STATUS_KEPT = "kept"
STATUS_DROPPED_SUBTYPE = "dropped_subtype"
STATUS_LOW_SNR = "low_snr"
STATUS_NO_PERIOD = "no_period"
STATUS_NO_LIGHT_CURVE = "no_light_curve"
#: An ECL object left out by the reduction of the class (paper 000 Sec. 2.2, :func:`balance_classes`).
STATUS_ECL_REDUCED = "ecl_reduced"


def training_sets(
    objects: pd.DataFrame,
    light_curves: pd.DataFrame,
    rng: np.random.Generator,
    *,
    n_points: int = T_LEN,
    snr_min: float = SNR_MIN,
    fractions: Sequence[float] = (0.6, 0.2, 0.2),
    **balance_kwargs: int | None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The whole light-curve stage of paper 000 Sec. 2: from objects and their raw light curves to examples.

    Steps: drop multi-mode / semi-regular subtypes; SNR ≥ ``snr_min`` on the raw curve, 3 × 3σ clipping about
    the folded shape and folding on the catalog period (:func:`clean_and_fold`); split the *real* objects
    60/20/20 by class; undersample each to ``n_points``; add augmented copies (Gaussian resampling within
    errors, uniform phase shift, undersampling) to train and validation only,
    balancing the classes (:func:`augmentation_plan`).

    Parameters
    ----------
    objects : one row per object: ``ogle_id``, ``var_class``, ``subtype``, ``period`` (d), optionally
        ``has_physics`` and physical parameters (carried into the examples).
    light_curves : long table ``ogle_id``, ``time`` (d), ``mag``, ``err``.

    Returns
    -------
    (examples, status)
        ``examples``: one row per light curve of the data sets — ``ogle_id``, ``var_class``, ``split``,
        ``copy`` (0 = real), ``augmented``, list columns ``phase``, ``mag``, ``err`` (``n_points`` each, or
        fewer for a shorter curve), and the object's other columns. ``status``: one row per input object
        with ``status`` (:data:`STATUS_KEPT` or why not: ``dropped_subtype``, ``no_period``, ``no_light_curve``,
        ``low_snr``, ``ecl_reduced``), ``snr`` (of the raw curve), ``n_epochs`` and ``n_kept`` (points before
        and after clipping), ``faint_kept`` (the fraction of :func:`faint_points` the clipping kept) and
        ``split`` (none unless in a data set).
    """
    objects = objects.reset_index(drop=True)
    if "has_physics" not in objects:
        objects = objects.assign(has_physics=False)
    groups = {k: g for k, g in light_curves.groupby("ogle_id", sort=False)}
    status = pd.DataFrame(
        {
            "ogle_id": objects["ogle_id"],
            "status": STATUS_KEPT,
            "snr": np.nan,
            "n_epochs": 0,
            "n_kept": 0,
            "faint_kept": np.nan,
        }
    )
    folded: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    for i, obj in objects.iterrows():
        if not keep_subtype(obj["var_class"], obj.get("subtype")):
            status.loc[i, "status"] = STATUS_DROPPED_SUBTYPE
            continue
        if not (np.isfinite(obj["period"]) and obj["period"] > 0):
            status.loc[i, "status"] = STATUS_NO_PERIOD
            continue
        lc = groups.get(obj["ogle_id"])
        if lc is None:
            status.loc[i, "status"] = STATUS_NO_LIGHT_CURVE
            continue
        t, m, e = (lc[c].to_numpy(dtype=np.float64) for c in ("time", "mag", "err"))
        status.loc[i, "snr"], curve = clean_and_fold(t, m, e, float(obj["period"]), snr_min=snr_min)
        status.loc[i, "n_epochs"] = len(t)
        if curve is None:
            status.loc[i, "status"] = STATUS_LOW_SNR
            continue
        faint = faint_points(m)
        status.loc[i, ["n_kept", "faint_kept"]] = len(curve[0]), np.isin(m[faint], curve[1]).mean()
        folded[obj["ogle_id"]] = curve

    usable = objects[status["status"].to_numpy() == STATUS_KEPT]
    # Objects matched to one Gaia source share a split (they share its physics).
    split = stratified_split(usable, fractions, rng, group_col="source_id")
    plan = augmentation_plan(
        usable,
        split,
        rng,
        fractions=dict(zip(("train", "val", "test"), fractions, strict=True)),
        **balance_kwargs,
    )
    # Objects the ECL reduction left out are in no data set: they say so, and have no split.
    reduced = status["ogle_id"].isin(usable["ogle_id"]) & ~status["ogle_id"].isin(plan["ogle_id"])
    status.loc[reduced, "status"] = STATUS_ECL_REDUCED
    status["split"] = status["ogle_id"].map(split).where(~reduced)
    rows = []
    for ogle_id, part in plan.groupby("ogle_id", sort=False):
        phase, mag, err = folded[ogle_id]
        real = undersample(phase, mag, err, n=n_points, rng=rng)
        curves = [np.column_stack(real)]
        n_aug = int(part["augmented"].sum())
        if n_aug:
            curves.extend(augment(phase, mag, err, n_aug, rng, n=n_points))
        for (_, row), curve in zip(part.sort_values("copy").iterrows(), curves, strict=True):
            rows.append(
                {
                    "ogle_id": ogle_id,
                    "split": row["split"],
                    "copy": int(row["copy"]),
                    "augmented": bool(row["augmented"]),
                    "phase": curve[:, 0].tolist(),
                    "mag": curve[:, 1].tolist(),
                    "err": curve[:, 2].tolist(),
                }
            )
    examples = pd.DataFrame(rows).merge(objects, on="ogle_id", how="left", validate="m:1")
    first = ["ogle_id", "var_class", "split", "copy", "augmented", "phase", "mag", "err"]
    examples = examples[first + [c for c in examples.columns if c not in first]]
    return examples, status
