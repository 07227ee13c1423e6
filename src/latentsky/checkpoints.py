"""Model checkpoints that carry the same provenance record as every other output.

A checkpoint is a ``torch.save`` dict with the model/optimiser state under ``"state"`` and the record
under ``"provenance"``; it is written through :func:`latentsky.outputs.atomic_output`, so a job killed
while saving (SLURM preemption, SIGTERM) leaves the previous checkpoint intact and no partial file.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from latentsky.outputs import ProvenanceError, atomic_output

_FORMAT = "latentsky-checkpoint-v1"


def save_checkpoint(state: Mapping[str, Any], path: str | os.PathLike, provenance: Mapping[str, Any]) -> Path:
    """Atomically save ``state`` (tensors, numbers, strings, nested dicts) with its provenance."""
    import torch

    payload = {"format": _FORMAT, "state": dict(state), "provenance": dict(provenance)}
    with atomic_output(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def load_checkpoint(
    path: str | os.PathLike, map_location: str = "cpu"
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Load ``(state, provenance)``. Only plain containers and tensors are unpickled (``weights_only``)."""
    import torch

    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises several unrelated types for corrupt or foreign files
        raise ProvenanceError(f"{path}: not a readable latentsky checkpoint ({exc})") from exc
    if not isinstance(payload, dict) or payload.get("format") != _FORMAT:
        raise ProvenanceError(f"{path}: not a latentsky checkpoint (missing format {_FORMAT!r})")
    return payload["state"], payload["provenance"]


def read_checkpoint_provenance(path: str | os.PathLike) -> dict[str, Any]:
    return load_checkpoint(path)[1]


def run_key(**identity: Any) -> str:
    """The identity of a training run (settings, seed, data digests… as JSON-serialisable keywords): a resume
    file whose key differs belongs to another run and is ignored."""
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()
