"""Training PELS-VAE (paper 000, Sec. 3.2): Adam, β-weighted eq. 4, resumable to bit-identical weights.

The paper trains with Adam for 100 epochs with the Table 2 hyperparameters (batch 128, lr 10⁻³, cosine
learning-rate schedule) and selects models on the validation loss. This module does that, one epoch at a
time: shuffled mini-batches (order from a numpy Generator seeded with (seed, epoch)), one optimiser step per
batch, then — with the model in eval mode — the loss on the validation set, one history row and one
scheduler step.

**Determinism and resume.** Everything random comes from the seed: weights (``torch.manual_seed``), batch
order (per-epoch Generator), dropout masks and the ε of eq. 1 (torch's global generator). The validation
loss draws its ε from a separate generator seeded the same way every epoch, so it neither disturbs the
training stream nor moves between epochs for reasons other than the weights. Every ``checkpoint_every``
optimiser steps the trainer's whole state — weights, Adam moments, scheduler, position (epoch, batch,
step), the running epoch loss, history so far and torch's RNG state (dropout!) — is written atomically with
a *run key* (hash of the configuration, seed, number of epochs and the training/validation data's content).
A run started again with the same key continues from the file and ends with bit-identical weights on CPU,
as :func:`train_pelsvae` is tested to do. On a GPU the run is repeatable only as far as its kernels are.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import logging
import math
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from latentsky import training
from latentsky.pelsvae.config import PHYSICS_COLUMNS, PelsVaeConfig
from latentsky.pelsvae.data import LightCurveScaler, PelsVaeBatch, frame_to_tensors
from latentsky.pelsvae.model import PelsVae, build_pelsvae, pelsvae_loss, pelsvae_state
from latentsky.provenance.files import load_checkpoint, save_checkpoint

__all__ = [
    "HISTORY_COLUMNS",
    "PelsVaeTrainer",
    "PelsVaeResult",
    "data_digest",
    "run_key",
    "train_pelsvae",
    "save_pelsvae",
    "load_pelsvae",
]

log = logging.getLogger(__name__)

#: Columns of the per-epoch history (losses are the means of eq. 4's terms; ``lr`` is the epoch's rate).
HISTORY_COLUMNS = ("epoch", "train_loss", "val_loss", "val_recon", "val_kl", "val_err_kl", "lr")
#: Checkpoint kind of the resume file (distinct from the final model's "pelsvae").
_RESUME_KIND = "pelsvae-resume"


def data_digest(frame: pd.DataFrame | None) -> str:
    """sha256 of what training reads from a light-curve table (curves, classes, physics), in row order."""
    h = hashlib.sha256()
    if frame is None:
        return h.hexdigest()
    h.update(str(len(frame)).encode())
    for col in ("ogle_id", "var_class"):
        if col in frame:
            h.update("\x1f".join(map(str, frame[col])).encode())
    for col in ("phase", "mag", "err"):
        if col in frame:
            for arr in frame[col]:
                a = np.asarray(arr, dtype=np.float64)
                h.update(np.int64(a.size).tobytes())
                h.update(a.tobytes())
    for col in PHYSICS_COLUMNS:
        if col in frame:
            h.update(pd.to_numeric(frame[col], errors="coerce").to_numpy(dtype=np.float64).tobytes())
    return h.hexdigest()


def run_key(config: PelsVaeConfig, seed: int, epochs: int, digests: list[str]) -> str:
    """Identity of a run: a resume file from another run (config, seed, epochs or data) is ignored."""
    return training.run_key(config=config.as_dict(), seed=int(seed), epochs=int(epochs), data=digests)


@contextlib.contextmanager
def _deterministic(device: torch.device) -> Iterator[None]:
    """Deterministic kernels while training, restoring the caller's setting afterwards.

    On CPU ``torch.use_deterministic_algorithms`` costs nothing here (conv/RNN CPU kernels are already
    deterministic) and guards against future ops that are not. On CUDA it would raise for cuBLAS unless
    CUBLAS_WORKSPACE_CONFIG is set before start-up, so there we only pin cuDNN.
    """
    if device.type == "cpu":
        prev = torch.are_deterministic_algorithms_enabled()
        prev_warn = torch.is_deterministic_algorithms_warn_only_enabled()
        torch.use_deterministic_algorithms(True)
        try:
            yield
        finally:
            torch.use_deterministic_algorithms(prev, warn_only=prev_warn)
    else:
        prev_det, prev_bench = torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
        try:
            yield
        finally:
            torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = prev_det, prev_bench


def _make_scheduler(
    config: PelsVaeConfig, optimizer: torch.optim.Optimizer, epochs: int
) -> torch.optim.lr_scheduler.LRScheduler | torch.optim.lr_scheduler.ReduceLROnPlateau | None:
    if config.lr_schedule == "cosine":
        # Annealed from lr to 0 over the whole run, one step per epoch (Table 2: Cosine).
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(epochs, 1))
    if config.lr_schedule == "exponential":
        return torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=config.lr_gamma)
    if config.lr_schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, factor=config.lr_gamma, patience=config.lr_patience
        )
    return None


class PelsVaeTrainer:
    """Epochs of shuffled mini-batch Adam steps on eq. 4; resumable at any step (see the module docstring).

    Parameters
    ----------
    train_frame, val_frame : light-curve tables (see :func:`latentsky.pelsvae.data.frame_to_tensors`); a
        ``use_physics`` model needs physical parameters on every row. ``val_frame`` may be None or empty
        (validation columns of the history are then NaN).
    config : hyperparameters.
    seed : seeds weights, batch order, dropout and ε.
    device : torch device.
    epochs : overrides ``config.epochs``.
    """

    def __init__(
        self,
        train_frame: pd.DataFrame,
        val_frame: pd.DataFrame | None,
        config: PelsVaeConfig,
        seed: int,
        device: str | torch.device = "cpu",
        epochs: int | None = None,
    ) -> None:
        self.config = config
        self.seed = int(seed)
        self.device = torch.device(device)
        self.epochs = int(config.epochs if epochs is None else epochs)
        if len(train_frame) == 0:
            raise ValueError("the PELS-VAE training table is empty")
        self.scaler = LightCurveScaler.fit(train_frame)
        self.train_data = frame_to_tensors(train_frame, config, self.scaler, self.device)
        self.val_data: PelsVaeBatch | None = None
        if val_frame is not None and len(val_frame):
            self.val_data = frame_to_tensors(val_frame, config, self.scaler, self.device)
        torch.manual_seed(self.seed)
        self.model = PelsVae(config).to(self.device)
        self.model.init_output_levels(self.scaler.zero_level, self.scaler.median_err)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.lr)
        self.scheduler = _make_scheduler(config, self.optimizer, self.epochs)
        self.n_batches = math.ceil(len(self.train_data) / config.batch_size)
        self.epoch = 0  # epochs completed
        self.batch = 0  # batches of the current epoch done
        self.step = 0  # optimiser steps done
        self._loss_sum = 0.0
        self._loss_n = 0
        self.history: list[dict[str, float]] = []

    def _order(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, 2, epoch]).permutation(len(self.train_data))

    def state(self) -> dict[str, Any]:
        """Everything needed to continue exactly (plain containers and tensors; a deep copy)."""
        cuda_rng = None
        if self.device.type == "cuda":
            cuda_rng = torch.cuda.get_rng_state(self.device).clone()
        return {
            "epoch": self.epoch,
            "batch": self.batch,
            "step": self.step,
            "loss_sum": self._loss_sum,
            "loss_n": self._loss_n,
            "model": copy.deepcopy({k: v.detach().cpu() for k, v in self.model.state_dict().items()}),
            "optimizer": copy.deepcopy(self.optimizer.state_dict()),
            "scheduler": None if self.scheduler is None else copy.deepcopy(self.scheduler.state_dict()),
            "torch_rng": torch.get_rng_state().clone(),
            "cuda_rng": cuda_rng,
            "history": {c: [row[c] for row in self.history] for c in HISTORY_COLUMNS},
            "scaler": self.scaler.as_dict(),
        }

    def load_state(self, state: Mapping[str, Any]) -> None:
        """Continue from :meth:`state`'s dict."""
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state["scheduler"] is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self.epoch, self.batch, self.step = int(state["epoch"]), int(state["batch"]), int(state["step"])
        self._loss_sum, self._loss_n = float(state["loss_sum"]), int(state["loss_n"])
        hist = state["history"]
        self.history = [
            {c: hist[c][i] for c in HISTORY_COLUMNS} for i in range(len(hist[HISTORY_COLUMNS[0]]))
        ]
        torch.set_rng_state(state["torch_rng"])
        if state.get("cuda_rng") is not None and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda_rng"], self.device)

    def train(
        self,
        on_resume_point: Callable[[dict[str, Any]], None] | None = None,
        checkpoint_every: int = 500,
        progress: Callable[[int, int, float], None] | None = None,
    ) -> None:
        """Train to ``self.epochs``; ``on_resume_point(state)`` every ``checkpoint_every`` steps and at the end;
        ``progress(step, epoch, loss)`` after every step (epoch counted from 0)."""
        if checkpoint_every < 1:
            raise ValueError(f"checkpoint_every must be ≥ 1, got {checkpoint_every}")
        bs = self.config.batch_size
        with _deterministic(self.device):
            while self.epoch < self.epochs:
                order = self._order(self.epoch)
                while self.batch < self.n_batches:
                    loss = self._step(order[self.batch * bs : (self.batch + 1) * bs])
                    self.batch += 1
                    self.step += 1
                    self._loss_sum += loss
                    self._loss_n += 1
                    # A checkpoint taken after an epoch's last batch resumes straight into its validation.
                    if on_resume_point is not None and self.step % checkpoint_every == 0:
                        on_resume_point(self.state())
                    if progress is not None:
                        progress(self.step, self.epoch, loss)
                self._end_epoch()
        if on_resume_point is not None:
            on_resume_point(self.state())

    def _loss(self, batch: PelsVaeBatch, out: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Eq. 4's terms for the model output ``out`` on ``batch`` (:func:`pelsvae_loss`)."""
        return pelsvae_loss(
            batch.mag,
            out["mag"],
            batch.err,
            out["err"],
            out["mu"],
            out["logvar"],
            beta=self.config.beta,
            mask=batch.mask,
            sigma_floor=self.scaler.sigma_floor,
        )

    def _step(self, idx: np.ndarray) -> float:
        self.model.train()
        b = self.train_data.index(idx)
        terms = self._loss(b, self.model(b, sample=True))
        loss = terms["total"]
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"PELS-VAE loss is not finite at step {self.step + 1} (epoch {self.epoch + 1}): "
                + ", ".join(f"{k}={float(v):.4g}" for k, v in terms.items())
            )
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return float(loss.detach().cpu())

    def validate(self, batch_size: int = 1024) -> dict[str, float]:
        """Eq. 4 on the whole validation set (eval mode; ε from a generator seeded by the run's seed)."""
        if self.val_data is None:
            return {k: float("nan") for k in ("total", "recon", "kl", "err_kl")}
        self.model.eval()
        gen = torch.Generator(device=self.device)
        gen.manual_seed(int(np.random.default_rng([self.seed, 3]).integers(2**62)))
        data = self.val_data
        parts: dict[str, list[torch.Tensor]] = {k: [] for k in ("mag", "err", "mu", "logvar")}
        with torch.no_grad():
            for start in range(0, len(data), batch_size):
                idx = np.arange(start, min(start + batch_size, len(data)))
                b = data.index(idx)
                out = self.model(b, sample=True, generator=gen)
                pad = data.mag.shape[1] - b.mag.shape[1]
                parts["mag"].append(torch.nn.functional.pad(out["mag"], (0, pad)))
                parts["err"].append(torch.nn.functional.pad(out["err"], (0, pad)))
                parts["mu"].append(out["mu"])
                parts["logvar"].append(out["logvar"])
            terms = self._loss(data, {k: torch.cat(v) for k, v in parts.items()})
        return {k: float(v) for k, v in terms.items()}

    def _end_epoch(self) -> None:
        val = self.validate()
        lr = float(self.optimizer.param_groups[0]["lr"])
        train_loss = self._loss_sum / self._loss_n if self._loss_n else float("nan")
        self.history.append(
            {
                "epoch": float(self.epoch + 1),
                "train_loss": train_loss,
                "val_loss": val["total"],
                "val_recon": val["recon"],
                "val_kl": val["kl"],
                "val_err_kl": val["err_kl"],
                "lr": lr,
            }
        )
        if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            self.scheduler.step(val["total"] if self.val_data is not None else train_loss)
        elif self.scheduler is not None:
            self.scheduler.step()
        log.info(
            "epoch %d/%d: train %.4g, val %.4g (recon %.4g, kl %.4g, err_kl %.4g), lr %.3g",
            self.epoch + 1,
            self.epochs,
            train_loss,
            val["total"],
            val["recon"],
            val["kl"],
            val["err_kl"],
            lr,
        )
        self.epoch += 1
        self.batch = 0
        self._loss_sum, self._loss_n = 0.0, 0

    def history_frame(self) -> pd.DataFrame:
        df = pd.DataFrame(self.history, columns=list(HISTORY_COLUMNS))
        return df.astype({"epoch": "int64"})


@dataclass
class PelsVaeResult:
    """A finished training run.

    Attributes
    ----------
    model : trained :class:`~latentsky.pelsvae.model.PelsVae` (eval mode).
    scaler : the training set's :class:`~latentsky.pelsvae.data.LightCurveScaler`.
    config : hyperparameters; ``epochs`` is the number actually run.
    history : per-epoch :data:`HISTORY_COLUMNS`.
    seed, run_key : identity of the run.
    final_step : optimiser steps taken in total.
    resumed_from_step : step of the resume checkpoint this run continued from (0: started fresh).
    """

    model: PelsVae
    scaler: LightCurveScaler
    config: PelsVaeConfig
    history: pd.DataFrame
    seed: int
    run_key: str
    final_step: int
    resumed_from_step: int


def train_pelsvae(
    train_frame: pd.DataFrame,
    val_frame: pd.DataFrame | None,
    config: PelsVaeConfig,
    *,
    seed: int,
    device: str | torch.device = "cpu",
    epochs: int | None = None,
    resume_path: str | os.PathLike | None = None,
    checkpoint_every: int = 500,
    resume_record: Mapping[str, Any] | None = None,
    resume: bool = True,
    progress: Callable[[int, int, float], None] | None = None,
) -> PelsVaeResult:
    """Train PELS-VAE on ``train_frame``, validating on ``val_frame`` after each epoch.

    Parameters
    ----------
    train_frame, val_frame : light-curve tables (``results/lightcurves/{train,val}.parquet`` layout).
    config : hyperparameters (Table 2 defaults).
    seed : the run's seed; same seed and data give bit-identical weights on CPU.
    device : torch device.
    epochs : overrides ``config.epochs`` (the returned config records the number run).
    resume_path : resume file, written atomically every ``checkpoint_every`` optimiser steps and at the
        end; None for no checkpoints.
    resume_record : provenance record stored in the resume file.
    resume : continue from ``resume_path`` if it holds a checkpoint of this run (same run key).
    progress : ``progress(step, epoch, loss)`` after every optimiser step; an exception it raises stops
        training (the resume file keeps the last checkpoint).
    """
    trainer = PelsVaeTrainer(train_frame, val_frame, config, seed, device, epochs)
    key = run_key(config, seed, trainer.epochs, [data_digest(train_frame), data_digest(val_frame)])
    resumed_from = 0
    if resume_path is not None and resume and Path(resume_path).is_file():
        payload, _ = load_checkpoint(resume_path, map_location=str(trainer.device))
        if payload.get("kind") == _RESUME_KIND and payload.get("run_key") == key:
            trainer.load_state(payload["trainer"])
            resumed_from = trainer.step
            log.info("resumed from %s at step %d (epoch %d)", resume_path, trainer.step, trainer.epoch)
        else:
            log.info(
                "ignoring %s: it belongs to another run (config, seed, epochs or data differ)",
                resume_path,
            )

    on_resume_point = None
    if resume_path is not None:

        def on_resume_point(state: dict[str, Any]) -> None:
            save_checkpoint(
                {"kind": _RESUME_KIND, "run_key": key, "trainer": state},
                Path(resume_path),
                dict(resume_record or {}),
            )

    trainer.train(
        on_resume_point=on_resume_point,
        checkpoint_every=checkpoint_every,
        progress=progress,
    )
    trainer.model.eval()
    ran = PelsVaeConfig.from_dict({**config.as_dict(), "epochs": trainer.epochs})
    trainer.model.config = ran
    return PelsVaeResult(
        model=trainer.model,
        scaler=trainer.scaler,
        config=ran,
        history=trainer.history_frame(),
        seed=trainer.seed,
        run_key=key,
        final_step=trainer.step,
        resumed_from_step=resumed_from,
    )


def save_pelsvae(path: str | os.PathLike, result: PelsVaeResult, provenance: Mapping[str, Any]) -> Path:
    """Write the trained model (config, weights, scaler, history) atomically with its provenance record."""
    state = pelsvae_state(result.model, result.scaler)
    state["history"] = {c: result.history[c].tolist() for c in HISTORY_COLUMNS}
    state["seed"] = result.seed
    state["run_key"] = result.run_key
    state["final_step"] = result.final_step
    state["resumed_from_step"] = result.resumed_from_step
    return save_checkpoint(state, path, provenance)


def load_pelsvae(
    path: str | os.PathLike, device: str | torch.device = "cpu"
) -> tuple[PelsVae, LightCurveScaler, PelsVaeConfig, dict[str, Any]]:
    """Read a model written by :func:`save_pelsvae` (``torch.load(weights_only=True)``).

    Returns (model in eval mode, scaler, config, extra) with ``extra`` holding ``history`` (DataFrame),
    ``seed``, ``run_key``, ``final_step``, ``resumed_from_step`` and ``provenance``.
    """
    state, provenance = load_checkpoint(path, map_location=str(torch.device(device)))
    try:
        model, scaler = build_pelsvae(state, device)
    except (KeyError, ValueError) as exc:
        raise ValueError(f"{path}: not a PELS-VAE model checkpoint ({exc})") from exc
    hist = pd.DataFrame({c: state["history"][c] for c in HISTORY_COLUMNS}).astype({"epoch": "int64"})
    extra = {
        "history": hist,
        "seed": state.get("seed"),
        "run_key": state.get("run_key"),
        "final_step": state.get("final_step"),
        "resumed_from_step": state.get("resumed_from_step"),
        "provenance": provenance,
    }
    return model, scaler, model.config, extra
