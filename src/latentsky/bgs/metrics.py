"""Figures of merit of the BGS outlier catalog (paper 003 Secs. 4–5) and the PCA baseline they are
compared with: outlier recall per kind at the top fractions, the PCA χ² of a restframe spectrum outside
the galaxies' span, the redshift-invariance ratio of the latents and the latent dimensionality.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = [
    "outlier_recall",
    "pca_chi2",
    "invariance_ratio",
    "restframe_matrix",
]


def outlier_recall(
    score: np.ndarray, is_outlier: np.ndarray, kinds: np.ndarray, fractions: Sequence[float] = (0.01, 0.05)
) -> dict[str, dict[str, float]]:
    """Share of the true outliers among the top ``fraction`` by ``score`` (higher = more anomalous),
    overall and per kind: ``{"top_1pct": {"all": r, kind: r, ...}, ...}``."""
    score = np.asarray(score, dtype=np.float64)
    n = len(score)
    out: dict[str, dict[str, float]] = {}
    order = np.argsort(-score, kind="stable")
    for frac in fractions:
        top = np.zeros(n, dtype=bool)
        top[order[: max(1, int(round(frac * n)))]] = True
        key = f"top_{round(frac * 100)}pct"
        res = {"all": float(top[is_outlier].mean()) if is_outlier.any() else float("nan")}
        for kind in sorted(set(kinds[is_outlier])):
            sel = is_outlier & (kinds == kind)
            res[str(kind)] = float(top[sel].mean())
        out[key] = res
    return out


def pca_chi2(
    train: np.ndarray, train_w: np.ndarray, data: np.ndarray, data_w: np.ndarray, n_components: int
) -> np.ndarray:
    """Reduced χ² of each spectrum's weighted projection on the training set's first principal components
    (restframe spectra on a common grid; the baseline of the outlier search)."""
    mean = np.average(train, axis=0, weights=np.maximum(train_w, 1e-12) if (train_w > 0).any() else None)
    x = train - mean
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    basis = vt[:n_components]  # (K, L)
    chi2 = np.empty(len(data))
    for i, (y, w) in enumerate(zip(data - mean, data_w, strict=True)):
        a = basis * w  # weighted least squares for the coefficients
        coef = np.linalg.lstsq(a @ basis.T, a @ y, rcond=None)[0]
        r = y - coef @ basis
        n = max((w > 0).sum(), 1)
        chi2[i] = float((w * r**2).sum() / n)
    return chi2


def invariance_ratio(s: np.ndarray, s_aug: np.ndarray) -> float:
    """Mean distance between random pairs of latents over the mean distance of each latent to its
    augmented copy (paper 003: augmented copies 21× closer than random pairs)."""
    own = np.linalg.norm(s - s_aug, axis=1).mean()
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, len(s), size=(2, 4 * len(s)))
    keep = a != b
    rand = np.linalg.norm(s[a[keep]] - s[b[keep]], axis=1).mean()
    return float(rand / own) if own > 0 else float("inf")


def latent_dimensionality(latents: np.ndarray) -> dict[str, Any]:
    """How many latent directions the autoencoder uses: the eigenvalues of the latents' covariance as
    fractions of the total variance (largest first) and their participation ratio (Σλ)² / Σλ² — S for a
    latent space filled evenly in all S directions, 1 when every spectrum lies on one line. The flow's
    density is only as informative as the latents it is fitted to (paper 003 Sec. 3): where the variance
    lies along ~1 direction, an outlier that the encoder maps onto that line looks like a galaxy."""
    s = np.asarray(latents, dtype=np.float64)
    if s.ndim != 2 or len(s) < 2:
        raise ValueError(f"latent_dimensionality needs (N ≥ 2, S) latents, got shape {s.shape}")
    cov = np.cov(s, rowvar=False).reshape(s.shape[1], s.shape[1])
    eig = np.clip(np.linalg.eigvalsh(cov), 0.0, None)[::-1]  # round-off can leave −1e−17
    total = eig.sum()
    if total <= 0:
        return {"variance_fractions": [0.0] * len(eig), "participation_ratio": 0.0}
    return {
        "variance_fractions": (eig / total).tolist(),
        "participation_ratio": float(total**2 / (eig**2).sum()),
    }


def restframe_matrix(
    flux: np.ndarray, ivar: np.ndarray, z: np.ndarray, wave_obs: np.ndarray, wave_rest: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Spectra resampled to a common restframe grid (weights 0 outside each spectrum's coverage)."""
    out = np.zeros((len(flux), len(wave_rest)))
    w_out = np.zeros_like(out)
    for i in range(len(flux)):
        lam = wave_obs / (1 + z[i])
        out[i] = np.interp(wave_rest, lam, flux[i])
        w_out[i] = np.interp(wave_rest, lam, ivar[i]) * ((wave_rest >= lam[0]) & (wave_rest <= lam[-1]))
    return out, w_out
