"""What every trainer shares: the device a job runs on and the key that ties a resume file to its run.

The distance flow, PELS-VAE and the SPENDER autoencoders all train through these, so ``device: auto``
means the same thing in every rule and a resume file from another configuration is never picked up.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

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
