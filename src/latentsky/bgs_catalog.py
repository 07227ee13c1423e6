"""The BGS outlier-probability catalog (paper 003 Secs. 3–5): splits, flow files, the catalog table, the
PCA baseline and the figures of merit.

Catalog (one row per BGS target, flagged ones included with null results): ``target_id``, ``z``, ``flags``
/ ``flag_names`` (:class:`latentsky.desi_io.DesiFlag`), ``split``, ``log_p_galaxy`` (galaxy flow on the
galaxy autoencoder's latents), ``log_p_star`` (star flow on the star autoencoder's latents of the same
spectrum, read at z = 0 as the MWS model is), ``log_likelihood_ratio`` = log p_star − log p_galaxy (the
paper's proposed star/galaxy score, Sec. 5), ``fidelity`` (reduced χ² of the galaxy reconstruction),
``latents`` (S values) and ``outlier_rank`` (1 = lowest log p_galaxy among the sample).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from latentsky.checkpoints import load_checkpoint, save_checkpoint

__all__ = [
    "SPLITS",
    "split_targets",
    "save_flow",
    "load_flow",
    "outlier_ranks",
    "outlier_recall",
    "pca_chi2",
    "invariance_ratio",
    "restframe_matrix",
]

SPLITS = ("train", "val", "test")


def split_targets(target_id: np.ndarray, fractions: Sequence[float], seed: int) -> np.ndarray:
    """Random 70/15/15 (paper 003 Sec. 2) assignment of targets to train/val/test, stable under reordering:
    each target's split comes from a seeded permutation of the sorted ids."""
    ids = np.asarray(target_id)
    order = np.random.default_rng(seed).permutation(len(ids))
    sorted_pos = np.argsort(ids, kind="stable")
    cuts = np.floor(np.cumsum(fractions)[:-1] / np.sum(fractions) * len(ids)).astype(int)
    label = np.empty(len(ids), dtype=object)
    for name, part in zip(SPLITS, np.split(order, cuts), strict=True):
        label[sorted_pos[part]] = name
    return label.astype(str)


def save_flow(path: str | os.PathLike, flow, latents: np.ndarray, history: list, provenance: Mapping) -> Path:
    """The flow as a latentsky checkpoint; ``state["state_dict"]`` is what ``spender.load_flow_model`` reads
    from a published flow file (and :func:`load_flow` reads both)."""
    state = {
        "kind": "spender-flow",
        "state_dict": {k: v.detach().cpu() for k, v in flow.state_dict().items()},
        "n_latent": int(latents.shape[1]),
        "init_latents_percentiles": np.percentile(latents, [16, 84], axis=0).tolist(),
        "init_latents_std": np.maximum(latents.std(axis=0), 1e-3).tolist(),
        "history": list(history),
    }
    return save_checkpoint(state, path, provenance)


def load_flow(
    path: str | os.PathLike, n_latent: int | None = None, hidden_features: int = 64, num_transforms: int = 5
):
    """A flow of ours (:func:`save_flow`), or — with ``n_latent`` — a published spender flow file (its
    state dict alone, as ``spender.load_flow_model`` reads it)."""
    from spender import NeuralDensityEstimator

    try:
        state, _ = load_checkpoint(path)
        sd, n = state["state_dict"], int(state["n_latent"])
    except Exception as exc:  # not ours: a plain spender state dict
        if n_latent is None:
            raise ValueError(
                f"{path}: not a latentsky flow file; give n_latent to read a spender flow"
            ) from exc
        sd, n = torch.load(path, map_location="cpu", weights_only=True), int(n_latent)
    flow = NeuralDensityEstimator(
        dim=n,
        initial_pos={"bounds": [[0.0, 0.0]] * n, "std": [0.05] * n},
        hidden_features=hidden_features,
        num_transforms=num_transforms,
    )
    flow.load_state_dict(sd)
    return flow.eval()


def outlier_ranks(log_p: np.ndarray, usable: np.ndarray) -> np.ndarray:
    """1 for the lowest log p among ``usable`` rows, 2 for the next…; 0 for rows without a probability."""
    ranks = np.zeros(len(log_p), dtype=np.int64)
    idx = np.flatnonzero(usable & np.isfinite(log_p))
    order = idx[np.argsort(log_p[idx], kind="stable")]
    ranks[order] = np.arange(1, len(order) + 1)
    return ranks


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
