"""The BGS outlier-probability catalog (paper 003 Secs. 3–5): splits, flow files, the catalog table, the
PCA baseline and the figures of merit.

Catalog (one row per BGS target, flagged ones included with null results): ``target_id``, ``z``, ``flags``
/ ``flag_names`` (:class:`latentsky.desi_io.DesiFlag`), ``split``, ``log_p_galaxy`` (galaxy flow on the
galaxy autoencoder's latents), ``log_p_star`` (star flow on the star autoencoder's latents of the same
spectrum, read at z = 0 as the MWS model is), ``log_likelihood_ratio`` = log p_star − log p_galaxy (the
paper's proposed star/galaxy score, Sec. 5), ``fidelity`` (reduced χ² of the galaxy reconstruction),
``latents`` (S values), ``galaxy_quantile`` (share of the galaxy model's training spectra with a lower
log p_galaxy: 0.001 = rarer than 99.9 % of the BGS training sample) and ``outlier_rank`` (1 = lowest
log p_galaxy among the rows scored together).

:func:`score_spectra` makes these rows for any spectra table (the workflow's BGS sample, or a user's own
coadd through ``latentsky score-desi``) from the four model files (:func:`load_bgs_models`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
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
    "BgsModels",
    "load_bgs_models",
    "Scores",
    "score_spectra",
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


def save_flow(
    path: str | os.PathLike,
    flow,
    latents: np.ndarray,
    history: list,
    provenance: Mapping,
    *,
    hidden_features: int,
    num_transforms: int,
) -> Path:
    """The flow as a latentsky checkpoint; ``state["state_dict"]`` is what ``spender.load_flow_model`` reads
    from a published flow file (and :func:`load_flow` reads both). The architecture and the log p of the
    training latents (``reference_log_p``, for :func:`score_spectra`'s quantiles) are kept beside it."""
    from latentsky.bgs_model import log_prob

    state = {
        "kind": "spender-flow",
        "state_dict": {k: v.detach().cpu() for k, v in flow.state_dict().items()},
        "n_latent": int(latents.shape[1]),
        "hidden_features": int(hidden_features),
        "num_transforms": int(num_transforms),
        "reference_log_p": np.sort(log_prob(flow, latents)).tolist(),
        "init_latents_percentiles": np.percentile(latents, [16, 84], axis=0).tolist(),
        "init_latents_std": np.maximum(latents.std(axis=0), 1e-3).tolist(),
        "history": list(history),
    }
    return save_checkpoint(state, path, provenance)


def load_flow(
    path: str | os.PathLike, n_latent: int | None = None, hidden_features: int = 64, num_transforms: int = 5
):
    """A flow of ours (:func:`save_flow`; its architecture from the file), or — with ``n_latent`` — a
    published spender flow file (its state dict alone, as ``spender.load_flow_model`` reads it, with the
    architecture given here). The flow has ``reference_log_p`` (sorted; empty for a spender file)."""
    from spender import NeuralDensityEstimator

    try:
        state, _ = load_checkpoint(path)
        sd, n = state["state_dict"], int(state["n_latent"])
        hidden_features = int(state.get("hidden_features", hidden_features))
        num_transforms = int(state.get("num_transforms", num_transforms))
        reference = np.asarray(state.get("reference_log_p", []), dtype=np.float64)
    except Exception as exc:  # not ours: a plain spender state dict
        if n_latent is None:
            raise ValueError(
                f"{path}: not a latentsky flow file; give n_latent to read a spender flow"
            ) from exc
        sd, n = torch.load(path, map_location="cpu", weights_only=True), int(n_latent)
        reference = np.zeros(0)
    flow = NeuralDensityEstimator(
        dim=n,
        initial_pos={"bounds": [[0.0, 0.0]] * n, "std": [0.05] * n},
        hidden_features=hidden_features,
        num_transforms=num_transforms,
    )
    flow.load_state_dict(sd)
    flow.reference_log_p = reference
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


@dataclass
class BgsModels:
    """The four trained models of the catalog: galaxy (BGS) and star (MWS) autoencoders and their flows."""

    galaxy_ae: Any
    galaxy_flow: Any
    star_ae: Any
    star_flow: Any
    instrument: Any
    bin_factor: int


def load_bgs_models(
    galaxy_model: str | os.PathLike,
    galaxy_flow: str | os.PathLike,
    star_model: str | os.PathLike,
    star_flow: str | os.PathLike,
    device: str = "cpu",
    bin_factor: int | None = None,
) -> BgsModels:
    """Load the model files. ``bin_factor`` defaults to the one the galaxy model was trained at (recorded in
    our files; give it for a published spender model, which is at the full DESI grid, 1)."""
    from latentsky.bgs_model import autoencoder_settings, load_autoencoder

    if bin_factor is None:
        settings = autoencoder_settings(galaxy_model)
        bin_factor = settings.bin_factor if settings is not None else 1
    galaxy_ae, instrument = load_autoencoder(galaxy_model, bin_factor, device)
    star_ae, _ = load_autoencoder(star_model, bin_factor, device)
    return BgsModels(galaxy_ae, load_flow(galaxy_flow), star_ae, load_flow(star_flow), instrument, bin_factor)


@dataclass
class Scores:
    """:func:`score_spectra`'s result: the catalog (one row per input row) and, for the scored rows
    (``usable``), the tensors and arrays the metrics use."""

    catalog: pd.DataFrame
    usable: np.ndarray
    data: Any
    latents: np.ndarray
    fidelity_loss: np.ndarray
    reduced_chi2: np.ndarray


def score_spectra(spectra: pd.DataFrame, models: BgsModels, device: str = "cpu") -> Scores:
    """Catalog rows (module docstring) for a spectra table (``latentsky.desi_io.DesiSpectra.table``
    columns; ``split`` is copied when present). Rows with flags keep their row with null results."""
    from latentsky.bgs_model import encode_spectra, fidelity, log_prob, table_tensors

    usable = (spectra["flags"] == 0).to_numpy()
    rows = spectra[usable]
    data = table_tensors(rows, models.bin_factor, device)
    s_gal = encode_spectra(models.galaxy_ae, data)
    loss, chi2 = fidelity(models.galaxy_ae, models.instrument, data)
    s_star = encode_spectra(models.star_ae, data)
    n, k = len(spectra), models.galaxy_ae.encoder.n_latent
    columns = ["target_id", "z", "flags", "flag_names"] + (["split"] if "split" in spectra else [])
    catalog = spectra[columns].reset_index(drop=True).copy()
    log_p_galaxy = log_prob(models.galaxy_flow, s_gal)
    reference = getattr(models.galaxy_flow, "reference_log_p", np.zeros(0))
    quantile = (
        np.searchsorted(reference, log_p_galaxy, side="left") / len(reference)
        if len(reference)
        else np.full(len(rows), np.nan)
    )
    for name, values in (
        ("log_p_galaxy", log_p_galaxy),
        ("log_p_star", log_prob(models.star_flow, s_star)),
        ("fidelity", chi2),
        ("fidelity_loss", loss),
        ("galaxy_quantile", quantile),
    ):
        col = np.full(n, np.nan)
        col[usable] = values
        catalog[name] = col
    catalog["log_likelihood_ratio"] = catalog["log_p_star"] - catalog["log_p_galaxy"]
    latents = np.full((n, k), np.nan, dtype=np.float32)
    latents[usable] = s_gal
    catalog["latents"] = list(latents)
    catalog["has_probability"] = usable
    catalog["outlier_rank"] = outlier_ranks(catalog["log_p_galaxy"].to_numpy(), usable)
    return Scores(catalog, usable, data, s_gal, loss, chi2)
