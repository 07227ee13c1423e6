"""What every trainer shares: the device a job runs on, its arithmetic precision, the key that ties a resume
file to its run, the train/val/test split and the ranks of a catalog's outlier score.

The distance flow, PELS-VAE and the SPENDER autoencoders all train through these, so ``device: auto``
means the same thing in every rule and a resume file from another configuration is never picked up.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch


def resolve_device(spec: str) -> torch.device:
    """``auto`` → the first CUDA device if one is visible, else CPU; otherwise the named device."""
    if spec == "auto":
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    device = torch.device(spec)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {spec!r} requested but torch sees no CUDA device")
    return device


def describe_device(device: torch.device) -> str:
    """Device as recorded in provenance, e.g. ``cuda:0 (NVIDIA H100 80GB HBM3)``."""
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return str(device)


def run_key(**identity: Any) -> str:
    """The identity of a training run (settings, seed, data digests… as JSON-serialisable keywords): a resume
    file whose key differs belongs to another run and is ignored."""
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()


#: Values of a trainer's ``precision`` setting (bgs.autoencoder, cyclestarnet.training).
PRECISIONS = ("fp32", "bf16", "auto")


def resolve_precision(precision: str, device: str | torch.device) -> str:
    """``"fp32"`` or ``"bf16"`` for a ``precision`` setting on ``device``. ``"auto"`` takes bf16 only where
    the hardware has bfloat16 arithmetic: a CUDA device that supports it (Ampere and newer), or a CPU with
    AMX tiles or AVX-512 BF16 (elsewhere oneDNN emulates bf16 and it is slower than float32)."""
    if precision != "auto":
        return precision
    device = torch.device(device)
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    if device.type == "cpu":
        native = (
            getattr(torch.cpu, name, lambda: False)()
            for name in ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
        )
        return "bf16" if any(native) else "fp32"
    return "fp32"


SPLITS = ("train", "val", "test")


def split_targets(target_id: np.ndarray, fractions: Sequence[float], seed: int) -> np.ndarray:
    """Random assignment of targets to train/val/test in the given fractions (70/15/15 in paper 003 Sec. 2;
    the XP stage splits its stars the same way), stable under reordering: each target's split comes from a
    seeded permutation of the sorted ids."""
    ids = np.asarray(target_id)
    order = np.random.default_rng(seed).permutation(len(ids))
    sorted_pos = np.argsort(ids, kind="stable")
    cuts = np.floor(np.cumsum(fractions)[:-1] / np.sum(fractions) * len(ids)).astype(int)
    label = np.empty(len(ids), dtype=object)
    for name, part in zip(SPLITS, np.split(order, cuts), strict=True):
        label[sorted_pos[part]] = name
    return label.astype(str)


def outlier_ranks(log_p: np.ndarray, usable: np.ndarray) -> np.ndarray:
    """1 for the lowest log p among ``usable`` rows, 2 for the next…; 0 for rows without a probability."""
    ranks = np.zeros(len(log_p), dtype=np.int64)
    idx = np.flatnonzero(usable & np.isfinite(log_p))
    order = idx[np.argsort(log_p[idx], kind="stable")]
    ranks[order] = np.arange(1, len(order) + 1)
    return ranks
