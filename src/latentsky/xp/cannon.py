"""The Cannon (Ness et al. 2015) as the baseline of paper 001 (Laroche & Speagle 2023, Sec. 3).

A quadratic (or linear) polynomial in standardised stellar labels predicts every Gaia XP coefficient, with a
per-coefficient population scatter s_k fitted by maximum likelihood (spec A1.5). Paper 001 trains it on the
same APOGEE × XP cross-match and the same standardised coefficients as the sVAE, and compares the sVAE's
star-by-star scatter with this "Cannon population scatter" (its Fig. 2).

Why hand-written
----------------
No Cannon on PyPI runs under numpy 2.x (spec D1, verified): ``annieslasso`` 0.2.96 / Casey's ``thecannon``
fails in ``CannonModel.train()`` (``scipy.optimize.fmin`` returns a 1-element array for the scatter, and it
references ``np.linalg.linalg.LinAlgError``, gone in numpy 2.4); Ho's ``TheCannon`` 0.7.3 uses
``np.linalg.linalg.LinAlgError`` too; ``the-cannon`` 0.2.6 imports ``numpy.RankWarning``, removed in 2.0.
thecannon also skips every pixel whose mean inverse variance is < 1 (``np.sum(ivar) < ivar.size``); that
guard is deliberately *not* reproduced here — the fit uses whatever weights the data carry. Writing it in
numpy also lets the fit run on all coefficients at once (batched normal equations and a vectorised 1-D
scatter search) instead of a Python loop over pixels.

Model
-----
With ℓ' = (ℓ − ℓ_fid)/ℓ_scale (ℓ_fid the median and ℓ_scale = (p97.5 − p2.5)/2 of the training labels),

    v(ℓ) = [1, ℓ'_a, ℓ'_a ℓ'_b (a ≤ b)]           (10 terms for 3 labels; order 1 keeps [1, ℓ'_a])
    x_nk = θ_k · v(ℓ_n) + e_nk,   e_nk ~ N(0, σ²_nk + s²_k)

and the training step (Ness et al. 2015, Sec. 2; spec A1.5) is, for every coefficient k,

    (θ_k, s_k) = argmin_{θ, s} Σ_n [ (x_nk − θ·v_n)² / (σ²_nk + s²) + ln(σ²_nk + s²) ].
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

import numpy as np

__all__ = ["CannonModel", "fit_cannon", "save_cannon", "load_cannon"]

#: Ridge added to the normal equations, relative to the mean diagonal of VᵀWV (numerical safety only).
_RIDGE = 1e-10
#: Convergence of the scatter search: Newton step in ln s² (far below the statistical precision of any s²),
#: and the most steps (the bracket spans ln(max r²/min σ²) + 32 e-folds; bisection halves it each step).
_SCATTER_TOL = 1e-9
_SCATTER_MAX_STEPS = 100
#: Lower end of the ln s² bracket, relative to the smallest usable σ² of the coefficient.
_S2_FLOOR = 1e-14

_SCATTER_MODES = ("ml", "median_chi2")


def _n_terms(n_labels: int, order: int) -> int:
    return 1 + n_labels + (n_labels * (n_labels + 1) // 2 if order == 2 else 0)


@dataclass
class CannonModel:
    """A trained Cannon: polynomial coefficients θ and population scatter s² per XP coefficient.

    Attributes
    ----------
    label_names : tuple of str
        Names of the labels, in the column order of every ``labels`` array.
    fiducial : ndarray, shape (n_labels,)
        ℓ_fid, the median of each training label.
    scale : ndarray, shape (n_labels,)
        ℓ_scale = (p97.5 − p2.5)/2 of each training label.
    theta : ndarray, shape (n_pix, n_terms)
        θ_k, one row per coefficient, in the term order of :meth:`design_matrix`.
    s2 : ndarray, shape (n_pix,)
        Population scatter s²_k, in the (squared) units of the data.
    order : int
        Polynomial order, 1 or 2.
    scatter_mode : str
        How ``s2`` was fitted: ``"ml"`` or ``"median_chi2"`` (see :func:`fit_cannon`).
    """

    label_names: tuple[str, ...]
    fiducial: np.ndarray
    scale: np.ndarray
    theta: np.ndarray
    s2: np.ndarray
    order: int = 2
    scatter_mode: str = "ml"

    def __post_init__(self) -> None:
        self.label_names = tuple(str(name) for name in self.label_names)
        self.fiducial = np.asarray(self.fiducial, dtype=float)
        self.scale = np.asarray(self.scale, dtype=float)
        self.theta = np.asarray(self.theta, dtype=float)
        self.s2 = np.asarray(self.s2, dtype=float)
        self.order = int(self.order)
        if self.order not in (1, 2):
            raise ValueError(f"order must be 1 or 2, got {self.order}")
        n_labels = len(self.label_names)
        if self.fiducial.shape != (n_labels,) or self.scale.shape != (n_labels,):
            raise ValueError(
                f"fiducial {self.fiducial.shape} and scale {self.scale.shape} must have shape ({n_labels},)"
            )
        if self.theta.ndim != 2 or self.theta.shape[1] != _n_terms(n_labels, self.order):
            raise ValueError(
                f"theta has shape {self.theta.shape}; expected (n_pix, {_n_terms(n_labels, self.order)})"
            )
        if self.s2.shape != (self.theta.shape[0],):
            raise ValueError(f"s2 has shape {self.s2.shape}; expected ({self.theta.shape[0]},)")

    @property
    def n_labels(self) -> int:
        """Number of labels L."""
        return len(self.label_names)

    @property
    def n_pix(self) -> int:
        """Number of modelled coefficients ("pixels") P."""
        return self.theta.shape[0]

    @property
    def n_terms(self) -> int:
        """Number of polynomial terms: 1 + L (+ L(L+1)/2 for order 2)."""
        return self.theta.shape[1]

    @property
    def scatter(self) -> np.ndarray:
        """Population scatter s_k = √s²_k, shape (n_pix,)."""
        return np.sqrt(self.s2)

    @property
    def term_names(self) -> tuple[str, ...]:
        """Readable names of the design-matrix columns, e.g. ``("1", "teff", "logg", "teff*teff", ...)``."""
        names = ["1", *self.label_names]
        if self.order == 2:
            names += [
                f"{self.label_names[a]}*{self.label_names[b]}"
                for a in range(self.n_labels)
                for b in range(a, self.n_labels)
            ]
        return tuple(names)

    def _check_labels(self, labels: np.ndarray) -> np.ndarray:
        labels = np.asarray(labels, dtype=float)
        if labels.ndim == 1 and self.n_labels == 1:
            labels = labels[:, None]
        if labels.ndim != 2 or labels.shape[1] != self.n_labels:
            raise ValueError(f"labels have shape {labels.shape}; expected (n, {self.n_labels})")
        return labels

    def design_matrix(self, labels: np.ndarray) -> np.ndarray:
        """The Cannon's label vectors v(ℓ) for a set of stars.

        .. math:: v(ℓ) = [1,\\ ℓ'_a,\\ ℓ'_a ℓ'_b\\ (a ≤ b)],\\qquad ℓ' = (ℓ − ℓ_{fid}) / ℓ_{scale}

        with the linear terms in label order and the quadratic ones in the order (0,0), (0,1), …, (0,L−1),
        (1,1), …, (L−1,L−1) (see :attr:`term_names`); order 1 keeps only [1, ℓ'_a].

        Parameters
        ----------
        labels : ndarray, shape (n, n_labels)
            Labels in the units of training, columns in ``label_names`` order.

        Returns
        -------
        ndarray, shape (n, n_terms)
        """
        labels = self._check_labels(labels)
        lp = (labels - self.fiducial) / self.scale
        columns = [np.ones((lp.shape[0], 1)), lp]
        if self.order == 2:
            a, b = np.triu_indices(self.n_labels)
            columns.append(lp[:, a] * lp[:, b])
        return np.concatenate(columns, axis=1)

    def predict(self, labels: np.ndarray) -> np.ndarray:
        """Model coefficients θ_k · v(ℓ_n), shape (n, n_pix)."""
        return self.design_matrix(labels) @ self.theta.T

    def normalised_residuals(self, labels: np.ndarray, x: np.ndarray, sigma: np.ndarray) -> np.ndarray:
        """Residuals in units of the total standard deviation.

        .. math:: r_{nk} = (x_{nk} − θ_k · v(ℓ_n)) / \\sqrt{σ²_{nk} + s²_k}

        Parameters
        ----------
        labels : ndarray, shape (n, n_labels)
        x, sigma : ndarray, shape (n, n_pix)
            Observed coefficients and their reported uncertainties.

        Returns
        -------
        ndarray, shape (n, n_pix)
            ~ N(0, 1) where the model holds; NaN where x or σ is not finite.
        """
        x = np.asarray(x, dtype=float)
        sigma = np.asarray(sigma, dtype=float)
        return (x - self.predict(labels)) / np.sqrt(sigma**2 + self.s2)

    def to_npz(self, path: str | PathLike[str]) -> None:
        """Write the model as plain numpy arrays (readable with ``allow_pickle=False``)."""
        np.savez(
            Path(path),
            label_names=np.array(self.label_names, dtype=str),
            fiducial=self.fiducial,
            scale=self.scale,
            theta=self.theta,
            s2=self.s2,
            order=np.array(self.order, dtype=np.int64),
            scatter_mode=np.array(self.scatter_mode, dtype=str),
        )

    @classmethod
    def from_npz(cls, path: str | PathLike[str]) -> CannonModel:
        """Read a model written by :meth:`to_npz`."""
        with np.load(Path(path), allow_pickle=False) as data:
            return cls(
                label_names=tuple(str(name) for name in data["label_names"]),
                fiducial=data["fiducial"],
                scale=data["scale"],
                theta=data["theta"],
                s2=data["s2"],
                order=int(data["order"]),
                scatter_mode=str(data["scatter_mode"]),
            )


def _solve_theta(
    vv: np.ndarray, design: np.ndarray, x: np.ndarray, sig2: np.ndarray, s2: np.ndarray
) -> np.ndarray:
    """Weighted least squares for every coefficient at once, at fixed s².

    θ_k = (Vᵀ W_k V + λ_k I)⁻¹ Vᵀ W_k x_k with W_k = diag(1/(σ²_nk + s²_k)) (σ² = ∞, so weight 0, on ignored
    entries) and λ_k a ridge of ``_RIDGE`` times the mean diagonal of Vᵀ W_k V. ``vv`` holds the outer
    products v_n v_nᵀ flattened to (n, T²), so all P normal matrices come from one matrix product.
    """
    n_terms = design.shape[1]
    w = 1.0 / (sig2 + s2)
    normal = (w.T @ vv).reshape(-1, n_terms, n_terms)
    rhs = (w * x).T @ design
    diag = np.arange(n_terms)
    ridge = _RIDGE * normal[:, diag, diag].mean(axis=1)
    normal[:, diag, diag] += ridge[:, None]
    return np.linalg.solve(normal, rhs[:, :, None])[:, :, 0]


def _neg2_loglike(r2: np.ndarray, sig2: np.ndarray, use: np.ndarray, s2: np.ndarray) -> np.ndarray:
    """Σ_n u_nk [r²_nk/(σ²_nk + s²_k) + ln(σ²_nk + s²_k)] per coefficient."""
    var = sig2 + s2
    return np.where(use, r2 / var + np.log(var), 0.0).sum(axis=0)


def _scatter_ml(r2: np.ndarray, sig2: np.ndarray, use: np.ndarray, s2_start: np.ndarray) -> np.ndarray:
    """Maximum-likelihood s²_k at fixed θ, all coefficients at once.

    With t = ln s², the objective's slope is ∂f/∂t = s² Σ_n (σ²_nk + s² − r²_nk)/(σ²_nk + s²)² (ignored
    entries carry σ² = ∞ and r² = 0, so they drop out). It is positive for s² ≥ max_n r²_nk, so a minimum
    lies in [0, max r²]. Safeguarded Newton in t (Newton steps inside the bracket [``_S2_FLOOR`` · min σ²,
    max r²] that the slope's sign keeps shrinking, bisection otherwise) converges in a few steps from the
    previous alternation's s². Where the slope at s² = 0 is already ≥ 0 the optimum is the boundary s² = 0
    (unless the objective has two minima, which takes wildly varying σ); those coefficients do not hold up
    the convergence test, and s² = 0 is kept wherever it scores at least as well as the iterate.
    """
    r2_max = r2.max(axis=0)
    sig2_min = np.where(use, sig2, np.inf).min(axis=0)
    lo = np.log(_S2_FLOOR * sig2_min)
    hi = np.log(np.maximum(r2_max, 2.0 * _S2_FLOOR * sig2_min))
    inv0 = 1.0 / sig2
    interior = (inv0 * (1.0 - r2 * inv0)).sum(axis=0) < 0
    if not np.all(s2_start > 0):
        moment = np.where(use, r2 - sig2, np.nan)
        moment = np.nanmean(moment, axis=0)
        s2_start = np.where(s2_start > 0, s2_start, np.maximum(moment, 1e-2 * sig2_min))
    t = np.clip(np.log(s2_start), lo, hi)
    for _ in range(_SCATTER_MAX_STEPS):
        s2 = np.exp(t)
        inv = 1.0 / (sig2 + s2)
        q = r2 * inv
        slope = s2 * (inv * (1.0 - q)).sum(axis=0)
        curvature = slope + s2 * s2 * (inv * inv * (2.0 * q - 1.0)).sum(axis=0)
        rising = slope > 0
        hi = np.where(rising, t, hi)
        lo = np.where(rising, lo, t)
        with np.errstate(divide="ignore", invalid="ignore"):
            step = np.where(curvature > 0, slope / curvature, np.inf)
        done = np.abs(step) < _SCATTER_TOL
        newton = t - step
        ok = done | ((newton >= lo) & (newton <= hi))
        t = np.where(ok, newton, 0.5 * (lo + hi))
        if np.all(done | ~interior):
            break
    s2 = np.exp(t)
    at_zero = _neg2_loglike(r2, sig2, use, np.zeros_like(s2)) <= _neg2_loglike(r2, sig2, use, s2)
    return np.where(at_zero, 0.0, s2)


def _scatter_median_chi2(r2: np.ndarray, sig2: np.ndarray, use: np.ndarray) -> np.ndarray:
    """s²_k with median_n r²_nk/(σ²_nk + s²_k) = 1 (0 where that median is already ≤ 1 at s² = 0).

    Since r²/(σ² + s²) ≤ 1 exactly when r² − σ² ≤ s², the root is the median of d_n = r²_nk − σ²_nk over
    usable entries: at least half the d_n lie on either side of it, hence at least half the ratios lie on
    either side of 1 (exact for an odd number of entries; for an even number numpy's median averages the two
    middle d_n and the ratio median lands within their gap of 1).
    """
    d = np.where(use, r2 - sig2, np.nan)
    return np.maximum(np.nanmedian(d, axis=0), 0.0)


def fit_cannon(
    labels: np.ndarray,
    x: np.ndarray,
    sigma: np.ndarray,
    *,
    label_names: Sequence[str],
    order: int = 2,
    scatter: str = "ml",
    n_alternations: int = 5,
    weights_mask: np.ndarray | None = None,
) -> CannonModel:
    """Train a Cannon: polynomial θ_k and population scatter s²_k for every coefficient k.

    For each coefficient k (spec A1.5; the training step of Ness et al. 2015, Sec. 2),

    .. math::

        (θ_k, s_k) = \\arg\\min_{θ, s} \\sum_n u_{nk} \\left[ \\frac{(x_{nk} − θ · v(ℓ_n))²}{σ²_{nk} + s²}
                      + \\ln(σ²_{nk} + s²) \\right],

    with u_nk ∈ {0, 1} the usable-entry mask. The minimisation alternates, starting from s² = 0,
    (i) weighted least squares for θ_k at fixed s_k, θ_k = (VᵀWV)⁻¹VᵀWx with W = diag(u/(σ² + s²)), solved
    for all coefficients together, and (ii) a 1-D bounded search over ln s_k at fixed θ_k, vectorised over
    coefficients; a last θ step follows the last scatter step, so θ is the WLS solution at the returned s².

    Parameters
    ----------
    labels : ndarray, shape (n, n_labels)
        Training labels (e.g. APOGEE Teff, log g, [M/H]); must be finite.
    x : ndarray, shape (n, n_pix)
        Training coefficients (standardised XP coefficients, spec A1.1).
    sigma : ndarray, shape (n, n_pix)
        Their 1σ uncertainties, in the units of ``x``.
    label_names : sequence of str
        One name per label column.
    order : {2, 1}
        Polynomial order of v(ℓ).
    scatter : {"ml", "median_chi2"}
        ``"ml"`` (default): step (ii) maximises the likelihood above. ``"median_chi2"``: step (ii) sets s_k
        such that median_n r²_nk/(σ²_nk + s²_k) = 1 and 0 where that median is already ≤ 1 (the heuristic of
        spec A1.5). For Gaussian residuals r²/(σ² + s²) ~ χ²₁, whose median is 0.455, not 1, so this
        heuristic lands *below* the true s² (for constant σ at s²_mc ≈ 0.455 (σ² + s²) − σ²); it is kept as
        the spec's alternative, not as an estimator of s².
    n_alternations : int
        Number of (θ, s) alternations (3–5 converge, spec A1.5).
    weights_mask : ndarray of bool, shape (n, n_pix), optional
        False marks entries to ignore. Entries with non-finite x or σ, or σ ≤ 0, are ignored regardless. Ignored
        entries get zero weight in both steps; their rows still count for the other coefficients.

    Returns
    -------
    CannonModel

    Raises
    ------
    ValueError
        On mismatched shapes, a label with non-finite values (named in the message) or no spread, or a
        coefficient with fewer usable entries than polynomial terms.
    """
    if scatter not in _SCATTER_MODES:
        raise ValueError(f"scatter must be one of {_SCATTER_MODES}, got {scatter!r}")
    if order not in (1, 2):
        raise ValueError(f"order must be 1 or 2, got {order}")
    if n_alternations < 1:
        raise ValueError(f"n_alternations must be ≥ 1, got {n_alternations}")
    label_names = tuple(str(name) for name in label_names)
    labels = np.asarray(labels, dtype=float)
    if labels.ndim == 1:
        labels = labels[:, None]
    x = np.asarray(x, dtype=float)
    sigma = np.asarray(sigma, dtype=float)
    if x.ndim == 1:
        x, sigma = x[:, None], sigma.reshape(-1, 1)
    n_stars, n_labels = labels.shape
    if len(label_names) != n_labels:
        raise ValueError(f"{len(label_names)} label names for {n_labels} label columns")
    if x.shape[0] != n_stars or sigma.shape != x.shape:
        raise ValueError(f"labels {labels.shape}, x {x.shape} and sigma {sigma.shape} do not match")
    bad = [name for name, column in zip(label_names, labels.T, strict=True) if not np.isfinite(column).all()]
    if bad:
        counts = ", ".join(
            f"{name} ({int((~np.isfinite(labels[:, label_names.index(name)])).sum())} stars)" for name in bad
        )
        raise ValueError(f"non-finite training labels: {counts}; drop or fix those stars")

    fiducial = np.median(labels, axis=0)
    p_lo, p_hi = np.percentile(labels, [2.5, 97.5], axis=0)
    scale = (p_hi - p_lo) / 2.0
    flat = [name for name, s in zip(label_names, scale, strict=True) if not s > 0]
    if flat:
        raise ValueError(f"labels without spread (p97.5 = p2.5): {', '.join(flat)}")

    use = np.isfinite(x) & np.isfinite(sigma) & (sigma > 0)
    if weights_mask is not None:
        weights_mask = np.asarray(weights_mask, dtype=bool)
        if weights_mask.shape != x.shape:
            raise ValueError(f"weights_mask has shape {weights_mask.shape}; expected {x.shape}")
        use &= weights_mask
    n_terms = _n_terms(n_labels, order)
    n_use = use.sum(axis=0)
    short = np.flatnonzero(n_use < n_terms + 1)
    if short.size:
        raise ValueError(
            f"coefficients {short.tolist()} have fewer usable entries than the {n_terms} polynomial terms + 1"
        )
    x = np.where(use, x, 0.0)
    sig2 = np.where(use, sigma**2, np.inf)

    model = CannonModel(
        label_names=label_names,
        fiducial=fiducial,
        scale=scale,
        theta=np.zeros((x.shape[1], n_terms)),
        s2=np.zeros(x.shape[1]),
        order=order,
        scatter_mode=scatter,
    )
    design = model.design_matrix(labels)
    vv = (design[:, :, None] * design[:, None, :]).reshape(n_stars, n_terms * n_terms)

    s2 = np.zeros(x.shape[1])
    for _ in range(n_alternations):
        theta = _solve_theta(vv, design, x, sig2, s2)
        r2 = np.where(use, x - design @ theta.T, 0.0) ** 2
        s2 = _scatter_ml(r2, sig2, use, s2) if scatter == "ml" else _scatter_median_chi2(r2, sig2, use)
    model.theta = _solve_theta(vv, design, x, sig2, s2)
    model.s2 = s2
    return model


def save_cannon(path: str | PathLike[str], model: CannonModel, normalisation: dict, provenance: dict) -> Path:
    """The workflow's model file: the Cannon's arrays and the coefficient normalisation it was fitted in
    (:class:`latentsky.xp.svae.XpNormalisation` as a dict) in a latentsky checkpoint, with provenance."""
    from latentsky.provenance.files import save_checkpoint

    state = {
        "kind": "xp-cannon",
        "label_names": list(model.label_names),
        "fiducial": model.fiducial.tolist(),
        "scale": model.scale.tolist(),
        "theta": model.theta.tolist(),
        "s2": model.s2.tolist(),
        "order": model.order,
        "scatter_mode": model.scatter_mode,
        "normalisation": dict(normalisation),
    }
    return save_checkpoint(state, path, provenance)


def load_cannon(path: str | PathLike[str]) -> tuple[CannonModel, dict]:
    """(model, normalisation dict) from :func:`save_cannon`'s file."""
    from latentsky.provenance.files import load_checkpoint

    state, _ = load_checkpoint(path)
    if state.get("kind") != "xp-cannon":
        raise ValueError(f"{path}: not an XP Cannon model file (kind {state.get('kind')!r})")
    keys = ("label_names", "fiducial", "scale", "theta", "s2", "order", "scatter_mode")
    return CannonModel(**{k: state[k] for k in keys}), state["normalisation"]
