"""The latent-space density of the BGS outlier catalog (paper 003 Sec. 3.2): a MAF through spender's
``NeuralDensityEstimator`` (nflows), its training, log p, and its file (ours with provenance, or a
published spender flow file).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from latentsky.provenance.files import load_checkpoint, save_checkpoint

__all__ = [
    "build_flow",
    "train_flow",
    "log_prob",
    "save_flow",
    "load_flow",
]


# ---------------------------------------------------------------------------------------------------------
# The latent-space density (paper 003 Sec. 3.2): a MAF through spender's NeuralDensityEstimator (nflows)
# ---------------------------------------------------------------------------------------------------------


def build_flow(latents: np.ndarray, hidden_features: int = 64, num_transforms: int = 5, seed: int = 0):
    """``spender.NeuralDensityEstimator`` (a MAF) initialised around the latents' range.

    spender's ``build_maf`` draws the flow's initial shift with ``np.random.uniform`` from numpy's global
    generator: it is seeded from ``seed`` here (and restored afterwards), or two runs would start — and
    end — at different flows. ``torch.manual_seed`` covers the network weights and permutations."""
    from spender import NeuralDensityEstimator

    lo, hi = np.percentile(latents, [16, 84], axis=0)
    initial_pos = {
        "bounds": [[float(a), float(b)] for a, b in zip(lo, hi, strict=True)],
        "std": [float(v) for v in np.maximum(latents.std(axis=0), 1e-3)],
    }
    saved = np.random.get_state()  # noqa: NPY002 - spender draws from the legacy global generator
    np.random.seed(int(np.random.default_rng([seed, 11]).integers(2**32)))  # noqa: NPY002
    try:
        return NeuralDensityEstimator(
            dim=latents.shape[1],
            initial_pos=initial_pos,
            hidden_features=hidden_features,
            num_transforms=num_transforms,
        )
    finally:
        np.random.set_state(saved)  # noqa: NPY002


def train_flow(
    latents: np.ndarray,
    val_latents: np.ndarray,
    *,
    seed: int,
    epochs: int = 200,
    batch_size: int = 512,
    lr: float = 1e-3,
    hidden_features: int = 64,
    num_transforms: int = 5,
) -> tuple[Any, list[dict[str, float]]]:
    """Fit the flow by maximum likelihood; returns (flow in eval mode, per-epoch mean −log p rows)."""
    torch.manual_seed(seed)
    flow = build_flow(latents, hidden_features, num_transforms, seed)
    x = torch.as_tensor(np.asarray(latents, dtype=np.float32))
    xv = torch.as_tensor(np.asarray(val_latents, dtype=np.float32))
    optimizer = torch.optim.Adam(flow.parameters(), lr=lr)
    # Cosine annealing to lr/100: at a constant rate the validation likelihood keeps jumping by ~1 nat
    # between epochs, and with it the order of the least likely spectra (the outlier ranks).
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(epochs, 1), eta_min=lr / 100)
    history = []
    for epoch in range(epochs):
        order = np.random.default_rng([seed, epoch]).permutation(len(x))
        flow.train()
        total = 0.0
        for start in range(0, len(order), batch_size):
            b = x[torch.as_tensor(order[start : start + batch_size])]
            loss = -flow.log_prob(b).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(b)
        scheduler.step()
        flow.eval()
        with torch.no_grad():
            history.append(
                {
                    "epoch": float(epoch + 1),
                    # The mean over the epoch's batches (as the weights moved): free, unlike a second pass.
                    "train_nll": total / max(len(x), 1),
                    "val_nll": float(-flow.log_prob(xv).mean()) if len(xv) else float("nan"),
                }
            )
    return flow.eval(), history


def log_prob(flow, latents: np.ndarray) -> np.ndarray:
    """log p(s) of each latent vector under the flow (nats)."""
    with torch.no_grad():
        return (
            flow.log_prob(torch.as_tensor(np.asarray(latents, dtype=np.float32))).numpy().astype(np.float64)
        )


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
