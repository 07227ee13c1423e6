"""The Payne spectral emulator (Ting et al. 2019) as Cycle-StarNet uses it (O'Briain et al. 2021, paper 002
Sec. 3.2 and footnote 4): one multi-layer perceptron from stellar labels to a whole continuum-normalised
spectrum, written here in torch because The Payne is not on PyPI and trains on CUDA only.

* **Network** (The_Payne ``training.py``; Cycle_SN ``network.build_emulator``).
  ``Linear(n_labels, 300) – LeakyReLU(0.01) – Linear(300, 300) – LeakyReLU(0.01) – Linear(300, n_pixels)``;
  25 labels and 7,214 ASPCAP pixels in the paper, 14 labels and 2,047 pixels in the CPU demo (spec B2.2).
* **Label scaling.** ``(y − y_min)/(y_max − y_min) − 0.5`` with y_min, y_max the minimum and maximum of the
  training labels, so every label spans [−0.5, 0.5]. The scaler lives in the module as buffers, so
  :meth:`PayneEmulator.forward` takes *physical* labels and is differentiable with respect to them —
  Cycle-StarNet's response functions are ∂(spectrum)/∂(label) taken through it (paper Sec. 5.1).
* **Training** (The_Payne ``training.py``). L1 loss × 10⁴ (the factor only rescales the loss to readable
  numbers), mini-batches, and the weights with the best validation loss are the ones kept (the guard
  against over-fitting The Payne relies on). The authors use RAdam at lr 1e-4, batch 512, 10⁴ epochs on a
  GPU; the CPU demo uses Adam 1e-3 → 1e-4 (cosine over the steps), batch 256, ~3,000 steps (spec B2.2).
  Both are :class:`PayneSettings` presets. Counting is in optimiser *steps*, not epochs, so the demo's
  budget does not depend on the training-set size.
* **Resume.** A resume file every ``checkpoint_every`` steps (model, optimiser, schedule, best weights,
  history): a job killed by SIGTERM or SLURM pre-emption continues and reaches the same weights as an
  uninterrupted run, because the batch order depends only on (seed, epoch) and nothing else is random.
* **Published emulators.** :func:`load_payne_npz` reads The Payne's ``NN_normalized_spectra.npz``
  (``w_array_0..2`` as torch ``Linear.weight`` (out, in), ``b_array_0..2``, ``x_min``, ``x_max``; the forward
  of ``spectral_model.get_spectrum_from_neural_net``) and :func:`load_cycle_sn_payne` Cycle-StarNet's
  ``PAYNE.pth.tar`` (``{'Payne': Sequential state dict, 'y_min', 'y_max'}``), so a user-supplied emulator is
  used exactly as the authors' code would use it (``payne.pretrained`` in the config).
"""

from __future__ import annotations

import copy
import hashlib
import logging
import os
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from latentsky.provenance.files import load_checkpoint, save_checkpoint
from latentsky.training import run_key

__all__ = [
    "LEAKY_SLOPE",
    "LOSS_SCALE",
    "PayneSettings",
    "PayneEmulator",
    "train_payne",
    "save_payne",
    "load_payne",
    "load_payne_npz",
    "load_cycle_sn_payne",
    "emulator_error",
]

#: Negative slope of The Payne's LeakyReLU (torch's default, and ``spectral_model.leaky_relu``'s 0.01).
LEAKY_SLOPE = 0.01
#: The Payne multiplies its L1 loss by 10⁴ (``training.py``); kept so loss values compare with theirs.
LOSS_SCALE = 1.0e4
_MODEL_KIND = "payne-emulator"
_RESUME_KIND = "payne-emulator-resume"
#: The npz arrays of The Payne's published networks (``utils.read_in_neural_network``).
_NPZ_KEYS = ("w_array_0", "w_array_1", "w_array_2", "b_array_0", "b_array_1", "b_array_2", "x_min", "x_max")
#: Keys of Cycle-StarNet's ``torch.nn.Sequential`` emulator (Linear layers at positions 0, 2 and 4).
_SEQUENTIAL_KEYS = ("0.weight", "0.bias", "2.weight", "2.bias", "4.weight", "4.bias")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PayneSettings:
    """How the emulator is trained (the ``payne:`` config block; defaults are the CPU demo of spec B2.2).

    Attributes
    ----------
    hidden : neurons in each of the two hidden layers (paper and both codes: 300).
    steps : optimiser steps (demo ~3,000; the authors: 10⁴ epochs of 12,000/512 steps).
    batch_size : spectra per step (demo 256; the authors 512).
    lr, lr_min : initial learning rate and the end of the cosine schedule.
    optimizer : ``"adam"`` (demo; The Payne's original ``training.py``) or ``"radam"`` (The Payne's current
        ``training.py``, lr 1e-4).
    schedule : ``"cosine"`` (lr → lr_min over ``steps``) or ``"constant"`` (the authors').
    loss : ``"l1"`` (The Payne and Cycle-StarNet's emulator) or ``"l2"`` (The Payne's first release, MSE);
        either times 10⁴.
    validate_every : steps between evaluations of the validation loss (and of the best-weights choice).
    checkpoint_every : steps between resume files.
    """

    hidden: int = 300
    steps: int = 3000
    batch_size: int = 256
    lr: float = 1.0e-3
    lr_min: float = 1.0e-4
    optimizer: str = "adam"
    schedule: str = "cosine"
    loss: str = "l1"
    validate_every: int = 100
    checkpoint_every: int = 500

    def __post_init__(self) -> None:
        choices = {"optimizer": ("adam", "radam"), "schedule": ("cosine", "constant"), "loss": ("l1", "l2")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"payne.{name} must be one of {allowed}, not {getattr(self, name)!r}")
        if self.hidden < 1 or self.steps < 0 or self.batch_size < 1:
            raise ValueError(f"payne settings need hidden ≥ 1, steps ≥ 0, batch_size ≥ 1: {self}")
        if not (self.lr > 0 and 0 <= self.lr_min <= self.lr):
            raise ValueError(
                f"payne settings need lr > 0 and 0 ≤ lr_min ≤ lr (lr {self.lr}, lr_min {self.lr_min})"
            )
        if self.validate_every < 1 or self.checkpoint_every < 1:
            raise ValueError("payne.validate_every and payne.checkpoint_every must be ≥ 1")

    @classmethod
    def from_config(cls, block: Mapping[str, Any]) -> PayneSettings:
        """From the ``payne:`` config block (spec B5) or a flat mapping of these fields.

        The block's ``hidden`` sits at its top level and the rest under ``training:``; ``pretrained`` (which
        file to load instead of training) and ``training.n_spectra`` (how many spectra to simulate) are read by
        the workflow, not the trainer, and are accepted and ignored here. Any other key is an error naming it.
        """
        known = {f.name for f in fields(cls)}
        flat = {k: v for k, v in block.items() if k not in ("pretrained", "training")}
        unknown = sorted(set(flat) - known)
        if unknown:
            raise ValueError(
                f"unknown payne keys {unknown}; known keys: {sorted(known | {'pretrained', 'training'})}"
            )
        training = dict(block.get("training") or {})
        training.pop("n_spectra", None)
        unknown = sorted(set(training) - known)
        if unknown:
            raise ValueError(
                f"unknown payne.training keys {unknown}; known keys: {sorted(known | {'n_spectra'})}"
            )
        both = sorted(set(flat) & set(training))
        if both:
            raise ValueError(f"payne keys {both} given both at the top level and under payne.training")
        return cls(**flat, **training)


class PayneEmulator(nn.Module):
    """Physical labels (…, n_labels) → continuum-normalised spectrum (…, n_pixels).

    Parameters
    ----------
    n_labels, n_pixels : input and output sizes.
    hidden : width of both hidden layers.
    y_min, y_max : the label scaler (per label; ``y_max > y_min``). Default 0 and 1, i.e. labels already in
        [0, 1]; :func:`train_payne` sets them from the training labels, the loaders from the file.

    Notes
    -----
    The layers are ``self.net``, a ``torch.nn.Sequential`` laid out as Cycle-StarNet's (Linear layers at
    0, 2, 4), so its state dict maps onto theirs key for key.
    """

    def __init__(
        self,
        n_labels: int,
        n_pixels: int,
        hidden: int = 300,
        y_min: np.ndarray | torch.Tensor | None = None,
        y_max: np.ndarray | torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        self.n_labels, self.n_pixels, self.hidden = int(n_labels), int(n_pixels), int(hidden)
        self.net = nn.Sequential(
            nn.Linear(n_labels, hidden),
            nn.LeakyReLU(LEAKY_SLOPE),
            nn.Linear(hidden, hidden),
            nn.LeakyReLU(LEAKY_SLOPE),
            nn.Linear(hidden, n_pixels),
        )
        self.register_buffer("y_min", torch.zeros(n_labels))
        self.register_buffer("y_max", torch.ones(n_labels))
        if y_min is not None or y_max is not None:
            self.set_label_scaling(
                np.zeros(n_labels) if y_min is None else y_min, np.ones(n_labels) if y_max is None else y_max
            )

    def set_label_scaling(self, y_min: np.ndarray | torch.Tensor, y_max: np.ndarray | torch.Tensor) -> None:
        """Set the scaler (per-label minimum and maximum of the training labels)."""
        lo = torch.as_tensor(np.asarray(y_min, dtype=np.float64).reshape(-1))
        hi = torch.as_tensor(np.asarray(y_max, dtype=np.float64).reshape(-1))
        if lo.shape != (self.n_labels,) or hi.shape != (self.n_labels,):
            raise ValueError(
                f"label scaler needs {self.n_labels} minima and maxima, got {tuple(lo.shape)} and {tuple(hi.shape)}"
            )
        bad = [
            i
            for i in range(self.n_labels)
            if not (torch.isfinite(lo[i]) and torch.isfinite(hi[i]) and hi[i] > lo[i])
        ]
        if bad:
            raise ValueError(f"label scaler: labels {bad} have no finite range with y_max > y_min")
        self.y_min.copy_(lo.to(self.y_min))
        self.y_max.copy_(hi.to(self.y_max))

    def scale_labels(self, y: torch.Tensor) -> torch.Tensor:
        """(y − y_min)/(y_max − y_min) − 0.5: every training label in [−0.5, 0.5]."""
        return (y - self.y_min) / (self.y_max - self.y_min) - 0.5

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        """Spectrum at physical labels ``y`` (…, n_labels); differentiable with respect to ``y``."""
        return self.net(self.scale_labels(y))

    def predict(self, labels: np.ndarray, batch_size: int = 4096) -> np.ndarray:
        """Spectra (n, n_pixels) as float64 numpy for labels (n, n_labels), without gradients."""
        param = next(self.parameters())
        labels = np.atleast_2d(np.asarray(labels, dtype=np.float64))
        if labels.shape[1] != self.n_labels:
            raise ValueError(
                f"Payne emulator takes {self.n_labels} labels, got an array of shape {labels.shape}"
            )
        out = np.empty((len(labels), self.n_pixels))
        with torch.no_grad():
            for start in range(0, len(labels), batch_size):
                yb = torch.as_tensor(
                    labels[start : start + batch_size], dtype=param.dtype, device=param.device
                )
                out[start : start + batch_size] = self(yb).cpu().numpy()
        return out


# --- training (The_Payne training.py; spec B2.2 point 1) ------------------------------------------------------


def _digest(*arrays: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def _check_pair(labels: np.ndarray, spectra: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(labels, dtype=np.float32)
    spectra = np.asarray(spectra, dtype=np.float32)
    if labels.ndim != 2 or spectra.ndim != 2 or len(labels) != len(spectra) or len(labels) == 0:
        raise ValueError(
            f"{what}: need labels (n, n_labels) and spectra (n, n_pixels) with the same n ≥ 1, "
            f"got {labels.shape} and {spectra.shape}"
        )
    for name, arr in (("labels", labels), ("spectra", spectra)):
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{what}: {name} contain NaN or infinite values")
    return labels, spectra


def _optimizer(model: nn.Module, settings: PayneSettings) -> torch.optim.Optimizer:
    if settings.optimizer == "radam":
        return torch.optim.RAdam(model.parameters(), lr=settings.lr)
    return torch.optim.Adam(model.parameters(), lr=settings.lr)


def _scheduler(
    optimizer: torch.optim.Optimizer, settings: PayneSettings
) -> torch.optim.lr_scheduler.LRScheduler:
    if settings.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(
            optimizer, T_max=max(settings.steps, 1), eta_min=settings.lr_min
        )
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)


def _loss(pred: torch.Tensor, target: torch.Tensor, kind: str) -> torch.Tensor:
    diff = pred - target
    return LOSS_SCALE * (diff.abs().mean() if kind == "l1" else (diff * diff).mean())


def _set_loss(model: PayneEmulator, y: torch.Tensor, x: torch.Tensor, kind: str, chunk: int = 4096) -> float:
    """The loss over a whole set (mean over every star and pixel), in chunks to bound memory."""
    total = 0.0
    with torch.no_grad():
        for start in range(0, len(y), chunk):
            sl = slice(start, start + chunk)
            total += float(_loss(model(y[sl]), x[sl], kind)) * (len(y[sl]) / len(y))
    return total


def train_payne(
    labels_train: np.ndarray,
    spectra_train: np.ndarray,
    labels_val: np.ndarray,
    spectra_val: np.ndarray,
    settings: PayneSettings,
    *,
    seed: int,
    device: str | torch.device = "cpu",
    resume_path: str | os.PathLike | None = None,
    resume_record: Mapping[str, Any] | None = None,
    progress: Callable[[int, dict[str, float]], None] | None = None,
) -> tuple[PayneEmulator, list[dict[str, float]]]:
    """Train an emulator on (labels, spectra) pairs; return the weights with the best validation loss.

    Parameters
    ----------
    labels_train, spectra_train : (n, n_labels) physical labels and (n, n_pixels) normalised spectra.
    labels_val, spectra_val : the validation set that chooses the kept weights.
    settings : :class:`PayneSettings`.
    seed : fixes the initial weights and the batch order (a permutation of the training set per epoch
        from ``(seed, epoch)``; the last ``n mod batch_size`` spectra of an epoch are skipped, as The Payne).
    device : torch device.
    resume_path : resume file, written every ``settings.checkpoint_every`` steps and at the end; read at the
        start when it belongs to this run (same settings, seed and data), otherwise ignored.
    resume_record : provenance record stored in the resume file.
    progress : called as ``progress(step, row)`` after every validation (and after the resume file of that
        step is written).

    Returns
    -------
    model : :class:`PayneEmulator` in eval mode, label scaler set from the training labels, holding the
        weights of the validation with the lowest loss.
    history : one row per validation: ``step``, ``lr`` (of the last step taken), ``train_loss`` (mean of the
        batch losses since the previous row), ``val_loss`` (whole validation set) and ``best_val_loss``.

    Raises
    ------
    ValueError
        Inconsistent shapes, NaN inputs, or a label that takes one value only in the training set.
    FloatingPointError
        The training loss stops being finite (a learning rate too large), naming the step.
    """
    y_tr, x_tr = _check_pair(labels_train, spectra_train, "Payne training set")
    y_va, x_va = _check_pair(labels_val, spectra_val, "Payne validation set")
    if y_va.shape[1] != y_tr.shape[1] or x_va.shape[1] != x_tr.shape[1]:
        raise ValueError(
            f"Payne validation set has {y_va.shape[1]} labels and {x_va.shape[1]} pixels; "
            f"the training set {y_tr.shape[1]} and {x_tr.shape[1]}"
        )
    device = torch.device(device)
    torch.manual_seed(seed)
    model = PayneEmulator(y_tr.shape[1], x_tr.shape[1], settings.hidden)
    # The Payne's scaler: min and max of the training labels (training.py).
    model.set_label_scaling(y_tr.min(axis=0), y_tr.max(axis=0))
    model = model.to(device)
    optimizer = _optimizer(model, settings)
    scheduler = _scheduler(optimizer, settings)

    def tensor(a: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(a, dtype=torch.float32, device=device)

    y_tr_t, x_tr_t, y_va_t, x_va_t = (tensor(a) for a in (y_tr, x_tr, y_va, x_va))
    key = run_key(settings=asdict(settings), seed=seed, data=_digest(y_tr, x_tr, y_va, x_va))
    history: list[dict[str, float]] = []
    best_state = copy.deepcopy(model.state_dict())
    best_val = float("inf")
    loss_sum, loss_count, start_step = 0.0, 0, 0
    if resume_path is not None and Path(resume_path).is_file():
        state, _ = load_checkpoint(resume_path, map_location=str(device))
        if state.get("kind") == _RESUME_KIND and state.get("run_key") == key:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            best_state, best_val = state["best_model"], float(state["best_val_loss"])
            history = list(state["history"])
            loss_sum, loss_count = float(state["loss_sum"]), int(state["loss_count"])
            start_step = int(state["step"])
            log.info("resumed from %s after step %d of %d", resume_path, start_step, settings.steps)
        else:
            log.info(
                "%s belongs to another run (settings, seed or data differ); starting afresh", resume_path
            )

    n = len(y_tr)
    batch = min(settings.batch_size, n)
    per_epoch = n // batch
    epoch, order = -1, None
    for step in range(start_step, settings.steps):
        if step // per_epoch != epoch:
            epoch = step // per_epoch
            order = torch.as_tensor(np.random.default_rng([seed, epoch]).permutation(n), device=device)
        i = step % per_epoch
        idx = order[i * batch : (i + 1) * batch]
        lr = optimizer.param_groups[0]["lr"]
        model.train()
        loss = _loss(model(y_tr_t[idx]), x_tr_t[idx], settings.loss)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        value = float(loss.detach())
        if not np.isfinite(value):
            raise FloatingPointError(
                f"Payne training diverged at step {step + 1} (loss {value}); lower payne lr (now {settings.lr})"
            )
        loss_sum, loss_count = loss_sum + value, loss_count + 1
        done = step + 1
        last = done == settings.steps
        row = None
        if done % settings.validate_every == 0 or last:
            model.eval()
            val = _set_loss(model, y_va_t, x_va_t, settings.loss)
            # Keep the weights with the lowest validation loss (The Payne: "always returns the best
            # neural networks before the networks start to overfit").
            if val < best_val:
                best_val = val
                best_state = copy.deepcopy(model.state_dict())
            row = {
                "step": float(done),
                "lr": float(lr),
                "train_loss": loss_sum / loss_count,
                "val_loss": val,
                "best_val_loss": best_val,
            }
            history.append(row)
            loss_sum, loss_count = 0.0, 0
        if resume_path is not None and (done % settings.checkpoint_every == 0 or last):
            resume_state = {
                "kind": _RESUME_KIND,
                "run_key": key,
                "step": done,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "best_model": best_state,
                "best_val_loss": best_val,
                "history": list(history),
                "loss_sum": loss_sum,
                "loss_count": loss_count,
            }
            save_checkpoint(resume_state, resume_path, resume_record or {})
        if progress is not None and row is not None:
            progress(done, row)
    model.load_state_dict(best_state)
    return model.eval(), history


# --- files ---------------------------------------------------------------------------------------------------


def save_payne(
    model: PayneEmulator,
    path: str | os.PathLike,
    provenance: Mapping[str, Any],
    settings: PayneSettings | None = None,
    history: list[dict[str, float]] | None = None,
) -> Path:
    """Weights, label scaler, sizes, the training settings (``None`` for a loaded published emulator) and the
    training history in one latentsky checkpoint (atomic, with its provenance record)."""
    state = {
        "kind": _MODEL_KIND,
        "n_labels": model.n_labels,
        "n_pixels": model.n_pixels,
        "hidden": model.hidden,
        "settings": None if settings is None else asdict(settings),
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "history": list(history or []),
    }
    return save_checkpoint(state, path, provenance)


def load_payne(path: str | os.PathLike, device: str | torch.device = "cpu") -> PayneEmulator:
    """The emulator (eval mode) from :func:`save_payne`'s file."""
    state, _ = load_checkpoint(path, map_location=str(device))
    if state.get("kind") != _MODEL_KIND:
        raise ValueError(f"{path}: not a Payne emulator file (kind {state.get('kind')!r})")
    model = PayneEmulator(int(state["n_labels"]), int(state["n_pixels"]), int(state["hidden"]))
    model.load_state_dict(state["model"])
    return model.to(device).eval()


def _from_arrays(
    path: str | os.PathLike,
    layers: list[tuple[str, Any, str, Any]],
    y_names: tuple[str, str],
    y_min: Any,
    y_max: Any,
) -> PayneEmulator:
    """Build an emulator from three (weight name, weight (out, in), bias name, bias) layers and the scaler,
    checking every shape against the first layer; errors name the file and the offending key."""
    arrays = []
    for w_name, w, b_name, b in layers:
        w = np.asarray(w, dtype=np.float64)
        b = np.asarray(b, dtype=np.float64)
        arrays.append((w_name, w, b_name, b))
    (w0n, w0, _, _), (w1n, w1, _, _), (w2n, w2, _, _) = arrays
    if w0.ndim == 3:
        raise ValueError(
            f"{path}: {w0n} has shape {w0.shape}: the per-pixel networks of Ting et al. 2018 (sigmoid, one "
            "small net per pixel) are not supported; expected one network with a 2-D (hidden, n_labels) weight"
        )
    if w0.ndim != 2:
        raise ValueError(f"{path}: {w0n} must be a 2-D (hidden, n_labels) array, got shape {w0.shape}")
    hidden, n_labels = w0.shape
    if w1.shape != (hidden, hidden):
        raise ValueError(
            f"{path}: {w1n} must have shape ({hidden}, {hidden}) after {w0n} {w0.shape}, got {w1.shape}"
        )
    if w2.ndim != 2 or w2.shape[1] != hidden:
        raise ValueError(f"{path}: {w2n} must have shape (n_pixels, {hidden}), got {w2.shape}")
    for w_name, w, b_name, b in arrays:
        if b.shape != (w.shape[0],):
            raise ValueError(
                f"{path}: {b_name} must have shape ({w.shape[0]},) to match {w_name}, got {b.shape}"
            )
        for name, arr in ((w_name, w), (b_name, b)):
            if not np.all(np.isfinite(arr)):
                raise ValueError(f"{path}: {name} contains NaN or infinite values")
    scaler = []
    for name, arr in zip(y_names, (y_min, y_max), strict=True):
        arr = np.asarray(arr, dtype=np.float64)
        # Cycle-StarNet's y_min may carry a leading batch axis of 1 ((1, n_labels) broadcasts in its code).
        if arr.size == n_labels and arr.ndim >= 1 and max(arr.shape, default=0) == arr.size:
            arr = arr.reshape(-1)
        if arr.shape != (n_labels,):
            raise ValueError(
                f"{path}: {name} must have shape ({n_labels},) to match {w0n} {w0.shape}, got {arr.shape}"
            )
        scaler.append(arr)
    model = PayneEmulator(n_labels, w2.shape[0], hidden)
    try:
        model.set_label_scaling(*scaler)
    except ValueError as exc:
        raise ValueError(f"{path}: {y_names[0]}/{y_names[1]}: {exc}") from None
    with torch.no_grad():
        for lin, (_, w, _, b) in zip((model.net[0], model.net[2], model.net[4]), arrays, strict=True):
            lin.weight.copy_(torch.as_tensor(w))
            lin.bias.copy_(torch.as_tensor(b))
    return model.eval()


def _first_line(exc: BaseException) -> str:
    """An exception's message cut to its first line (torch's unpickling errors run to a page)."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def load_payne_npz(path: str | os.PathLike) -> PayneEmulator:
    """An emulator from The Payne's published ``.npz`` (e.g. ``NN_normalized_spectra.npz``).

    The arrays are torch ``Linear`` parameters as The Payne saves them (``model.parameters()`` in order):
    ``w_array_k`` (out, in), ``b_array_k`` (out,), and the scaler ``x_min``, ``x_max`` (n_labels,). The
    forward equals ``spectral_model.get_spectrum_from_neural_net`` applied to
    ``(labels − x_min)/(x_max − x_min) − 0.5``.

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        Not a readable npz, an array missing, or inconsistent shapes — naming the file and the key.
    """
    try:
        with np.load(path, allow_pickle=False) as npz:
            a = {k: npz[k] for k in npz.files if k in _NPZ_KEYS}
    except FileNotFoundError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:  # ValueError: object (pickled) arrays
        raise ValueError(f"{path}: not a readable .npz file ({_first_line(exc)})") from None
    missing = [k for k in _NPZ_KEYS if k not in a]
    if missing:
        raise ValueError(
            f"{path}: The Payne network file lacks array(s) {missing}; expected {list(_NPZ_KEYS)}"
        )
    layers = [(f"w_array_{k}", a[f"w_array_{k}"], f"b_array_{k}", a[f"b_array_{k}"]) for k in range(3)]
    return _from_arrays(path, layers, ("x_min", "x_max"), a["x_min"], a["x_max"])


def load_cycle_sn_payne(path: str | os.PathLike) -> PayneEmulator:
    """An emulator from Cycle-StarNet's ``PAYNE.pth.tar``: ``{'Payne': state dict of
    Sequential(Linear, LeakyReLU, Linear, LeakyReLU, Linear), 'y_min', 'y_max'}`` (``network.build_emulator``).

    The file is read with ``torch.load(weights_only=True)``: tensors and plain containers only, so a file
    cannot run code when loaded.

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        Not a readable torch file, a key missing, or inconsistent shapes — naming the file and the key.
    """
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: no such Cycle-StarNet emulator file")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several unrelated types for corrupt or foreign files
        raise ValueError(
            f"{path}: not a readable torch checkpoint of tensors ({type(exc).__name__}: {_first_line(exc)})"
        ) from None
    if not isinstance(ckpt, Mapping):
        raise ValueError(
            f"{path}: expected a dict with keys 'Payne', 'y_min', 'y_max', got {type(ckpt).__name__}"
        )
    missing = [k for k in ("Payne", "y_min", "y_max") if k not in ckpt]
    if missing:
        raise ValueError(f"{path}: Cycle-StarNet emulator file lacks key(s) {missing}")
    sd = ckpt["Payne"]
    if not isinstance(sd, Mapping):
        raise ValueError(f"{path}: 'Payne' must be a state dict, got {type(sd).__name__}")
    missing = [k for k in _SEQUENTIAL_KEYS if k not in sd]
    extra = sorted(set(sd) - set(_SEQUENTIAL_KEYS))
    if missing or extra:
        raise ValueError(
            f"{path}: 'Payne' state dict lacks {missing} / has unexpected {extra}; expected keys "
            f"{list(_SEQUENTIAL_KEYS)} (Linear–LeakyReLU–Linear–LeakyReLU–Linear)"
        )

    def arr(v: Any) -> np.ndarray:
        return (
            v.detach().cpu().double().numpy()
            if isinstance(v, torch.Tensor)
            else np.asarray(v, dtype=np.float64)
        )

    layers = [
        (f"Payne/{i}.weight", arr(sd[f"{i}.weight"]), f"Payne/{i}.bias", arr(sd[f"{i}.bias"]))
        for i in (0, 2, 4)
    ]
    return _from_arrays(path, layers, ("y_min", "y_max"), arr(ckpt["y_min"]), arr(ckpt["y_max"]))


# --- figure of merit (spec B3) -------------------------------------------------------------------------------


def emulator_error(model: PayneEmulator, labels: np.ndarray, spectra: np.ndarray) -> dict[str, float]:
    """``emulator_error`` of spec B3: median and 95th percentile of |Payne(y) − f|/f over every pixel of
    every spectrum given (f the true normalised flux, > 0).

    Returns
    -------
    dict with ``median``, ``p95`` (fractions, not per cent) and ``n_values``.
    """
    labels, spectra = np.asarray(labels, dtype=np.float64), np.asarray(spectra, dtype=np.float64)
    if spectra.ndim != 2 or spectra.shape[1] != model.n_pixels or len(labels) != len(spectra):
        raise ValueError(
            f"emulator_error: need labels (n, {model.n_labels}) and spectra (n, {model.n_pixels}), "
            f"got {labels.shape} and {spectra.shape}"
        )
    if not np.all(np.isfinite(spectra) & (spectra > 0)):
        raise ValueError(
            "emulator_error: true spectra must be finite and > 0 (a relative error is undefined)"
        )
    rel = np.abs(model.predict(labels) - spectra) / spectra
    return {
        "median": float(np.median(rel)),
        "p95": float(np.percentile(rel, 95)),
        "n_values": int(rel.size),
    }
