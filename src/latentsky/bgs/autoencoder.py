"""The SPENDER autoencoder of the BGS outlier catalog (paper 003, Sec. 3), through the ``spender`` package
(Melchior et al. 2022; Liang et al. 2023). The flows on its latents are in :mod:`latentsky.bgs.flow`.

* **Instrument.** ``spender``'s DESI instrument: the observed grid 3600…9824 Å (7,781 pixels of 0.8 Å).
  ``bin_factor`` > 1 trains on that grid averaged in blocks of ``bin_factor`` pixels (an
  ``spender.Instrument`` with the coarser ``wave_obs``): the stock encoder (convolutions of 128/256/512
  filters over every pixel; 10.6 M parameters) takes ~8 s per batch of 32 on one CPU thread at full
  resolution, so the CPU demo bins; paper-scale runs use ``bin_factor: 1`` on a GPU.
* **Model.** ``spender.SpectrumAutoencoder`` with S = 6 latents, restframe grid from
  λ_obs,min / (1 + z_max) to λ_obs,max.
* **Training** (Sec. 3.1). Phase 1: the fidelity loss (spender's weighted MSE of the observed-frame
  reconstruction). Phase 2: fidelity + ``similarity_amp`` × the similarity loss + ``consistency_amp`` ×
  the consistency loss between each spectrum and an augmented copy — redshifted to a new z drawn in
  [0, z_max] (resampled on the observed grid, pixels moved off the grid get zero weight) with added noise
  (``spender.loss``, which the authors' training scripts use the same way).
* **Resume.** With ``resume_path``, the trainer writes a resume file (model, optimiser, schedule, the
  augmentation generator's state, history) atomically after every epoch; a job killed by SIGTERM or SLURM
  preemption and started again continues from the last completed epoch and reaches the same weights as an
  uninterrupted run (batch order and augmentation draws depend only on the seed and the epoch).
* **Files.** Models are written in spender's own layout (``{"model": state_dict, "losses": ...}``, read by
  ``spender.load_model(path, instrument)``) with latentsky's checkpoint keys and provenance beside it, so
  a published spender model file can stand in for ours (:func:`load_autoencoder`).
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from latentsky.config import dataclass_from_dict
from latentsky.provenance.files import atomic_output, load_checkpoint, save_checkpoint
from latentsky.training import PRECISIONS, resolve_precision, run_key

__all__ = [
    "SpenderSettings",
    "PRECISIONS",
    "SIMILARITY_SPACES",
    "resolve_precision",
    "binned_instrument",
    "bin_spectra",
    "fill_masked",
    "restframe_grid",
    "restframe_pixels",
    "augment_redshift",
    "build_autoencoder",
    "train_autoencoder",
    "SpectraTensors",
    "spectra_tensors",
    "table_tensors",
    "tensors_digest",
    "encode_spectra",
    "fidelity",
    "save_autoencoder",
    "load_autoencoder",
    "autoencoder_settings",
]

_FORMAT = "latentsky-checkpoint-v1"
#: Values of ``bgs.autoencoder.similarity_space``.
SIMILARITY_SPACES = ("data", "restframe")
_RESUME_KIND = "spender-autoencoder-resume"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SpenderSettings:
    """Hyperparameters of the autoencoder stage (paper 003 Sec. 3; defaults at paper scale).

    Attributes
    ----------
    n_latent : latent dimension S (paper: 6).
    bin_factor : observed pixels averaged into one (1 = the full DESI grid).
    z_max : highest redshift of the sample and of the redshift augmentation (paper: 0.8).
    n_rest : restframe pixels over λ_min/(1+z_max)…λ_max (default: :func:`restframe_pixels`, derived from
        the binned observed pixel and z_max so the restframe is nowhere coarser than the data).
    epochs_phase1, epochs_phase2 : epochs of fidelity-only and of full training.
    batch_size, lr : Adam mini-batches and (peak) learning rate.
    lr_schedule : ``"onecycle"`` (warm up to ``lr`` over the first 30 % of all steps of both phases, then
        cosine annealing: what lets a short CPU run converge) or ``"constant"``.
    similarity_amp, consistency_amp : weights of the phase-2 losses (spender's LossConfig defaults).
    similarity_space : where the similarity loss measures how alike two spectra are: ``"data"`` — the
        observed spectra resampled to the restframe, weighted by their noise (paper 003 Sec. 3.1: "spectra
        that are close in data space are also close in latent space"; ``spender.loss.similarity_loss``),
        or ``"restframe"`` — the decoded restframe spectra (``similarity_restframe_loss``, what spender's
        ``get_losses`` uses). Only the data-space form sees spectra the decoder cannot yet reproduce.
    noise_scale : the augmented copy's added Gaussian noise, in units of each pixel's σ (0.5: at 1σ the copy
        has half its original's S/N², and the consistency loss pulls latents towards what noise leaves).
    precision : ``"fp32"``; ``"bf16"`` (mixed precision: convolutions and matrix products of the training
        passes in bfloat16 under ``torch.autocast``, weights, optimiser and losses in float32 — the
        standard GPU recipe; the demo's training is 1.7× faster on a CPU with AMX); ``"auto"``: bf16 where the
        device computes it natively (:func:`resolve_precision`), else fp32. Scoring is always float32.
    """

    n_latent: int = 6
    bin_factor: int = 1
    z_max: float = 0.8
    n_rest: int | None = None
    epochs_phase1: int = 50
    epochs_phase2: int = 50
    batch_size: int = 512
    lr: float = 1e-3
    lr_schedule: str = "onecycle"
    similarity_amp: float = 3.0
    consistency_amp: float = 1.0
    noise_scale: float = 0.5
    similarity_space: str = "data"
    precision: str = "fp32"

    def __post_init__(self) -> None:
        if self.n_latent < 1 or self.bin_factor < 1 or self.batch_size < 2:
            raise ValueError(f"spender settings need n_latent ≥ 1, bin_factor ≥ 1, batch_size ≥ 2: {self}")
        if not 0 < self.z_max < 5 or self.lr <= 0 or min(self.epochs_phase1, self.epochs_phase2) < 0:
            raise ValueError(f"spender settings need 0 < z_max < 5, lr > 0, epochs ≥ 0: {self}")
        if self.lr_schedule not in ("onecycle", "constant"):
            raise ValueError(
                f"bgs.autoencoder.lr_schedule must be 'onecycle' or 'constant', not {self.lr_schedule!r}"
            )
        if self.similarity_space not in SIMILARITY_SPACES:
            raise ValueError(
                f"bgs.autoencoder.similarity_space must be one of {SIMILARITY_SPACES}, "
                f"not {self.similarity_space!r}"
            )
        if self.precision not in PRECISIONS:
            raise ValueError(f"bgs.autoencoder.precision must be one of {PRECISIONS}, not {self.precision!r}")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SpenderSettings:
        """From the ``bgs.autoencoder`` config block; unknown keys are an error naming them."""
        return dataclass_from_dict(cls, d, "bgs.autoencoder")


def _desi_wave() -> torch.Tensor:
    from spender.data.desi import DESI

    return DESI._wave_obs.to(torch.float32)


def binned_instrument(bin_factor: int):
    """``spender``'s DESI instrument, or (``bin_factor`` > 1) an Instrument on its grid averaged in blocks."""
    from spender.data.desi import DESI
    from spender.instrument import Instrument

    if bin_factor == 1:
        return DESI()
    wave = _desi_wave()
    n = (wave.numel() // bin_factor) * bin_factor
    return Instrument(wave[:n].reshape(-1, bin_factor).mean(dim=1))


def bin_spectra(flux: np.ndarray, ivar: np.ndarray, bin_factor: int) -> tuple[np.ndarray, np.ndarray]:
    """Inverse-variance-weighted means of ``bin_factor`` adjacent pixels (ivar: their sum); trailing
    pixels that do not fill a block are dropped, as in :func:`binned_instrument`."""
    flux = np.asarray(flux, dtype=np.float64)
    ivar = np.asarray(ivar, dtype=np.float64)
    if bin_factor == 1:
        return flux.astype(np.float32), ivar.astype(np.float32)
    n = (flux.shape[1] // bin_factor) * bin_factor
    f = flux[:, :n].reshape(flux.shape[0], -1, bin_factor)
    w = ivar[:, :n].reshape(ivar.shape[0], -1, bin_factor)
    wsum = w.sum(axis=2)
    mean = np.divide((f * w).sum(axis=2), wsum, out=np.zeros_like(wsum), where=wsum > 0)
    return mean.astype(np.float32), wsum.astype(np.float32)


def restframe_pixels(wave_obs: torch.Tensor, z_max: float) -> int:
    """The fewest restframe pixels over λ_min/(1+z_max)…λ_max that are nowhere coarser than an observed
    pixel: at z_max an observed pixel Δλ spans Δλ/(1+z_max) in the restframe, so
    n = ⌈(λ_max − λ_min/(1+z_max)) (1+z_max) / Δλ⌉ (≈ 1,100 for the DESI grid binned 16×, 17,600 at full
    resolution). A coarser grid (the demo's former 700) smooths what the decoder can express below the
    data's resolution (issue 17)."""
    w = wave_obs.double()
    lo, hi = float(w.min()) / (1.0 + z_max), float(w.max())
    step = float((w[-1] - w[0]) / (w.numel() - 1))
    return int(np.ceil((hi - lo) * (1.0 + z_max) / step)) + 1


def restframe_grid(wave_obs: torch.Tensor, z_max: float, n_rest: int | None = None) -> torch.Tensor:
    """Restframe wavelengths covering every observed pixel for 0 ≤ z ≤ z_max; ``n_rest`` None gives
    :func:`restframe_pixels`."""
    n = int(n_rest or restframe_pixels(wave_obs, z_max))
    return torch.linspace(float(wave_obs.min()) / (1 + z_max), float(wave_obs.max()), n, dtype=torch.float32)


def augment_redshift(
    spec: torch.Tensor,
    w: torch.Tensor,
    z: torch.Tensor,
    wave_obs: torch.Tensor,
    z_max: float,
    noise_scale: float,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A copy of each spectrum moved to a new redshift z' ~ U(0, z_max) with added noise.

    The observed spectrum at λ is the restframe spectrum at λ/(1 + z); at z' it is sampled at
    λ (1 + z)/(1 + z'). Pixels whose source falls off the observed grid, or next to a zero-weight pixel,
    get zero weight. Noise of ``noise_scale`` σ per pixel is added (and the weights reduced to match).
    """
    from spender.util import interp1d

    z_new = torch.rand(z.shape, generator=generator, device=z.device) * z_max
    src = wave_obs[None, :] * ((1 + z[:, None]) / (1 + z_new[:, None]))
    spec_new = interp1d(wave_obs, spec, src)
    w_new = interp1d(wave_obs, (w > 0).to(spec.dtype), src)
    inside = (src >= wave_obs[0]) & (src <= wave_obs[-1])
    w_src = interp1d(wave_obs, w, src)
    w_new = torch.where(inside & (w_new > 0.999), w_src, torch.zeros_like(w_src))
    sigma = torch.where(w_new > 0, w_new.clamp_min(1e-12).rsqrt(), torch.zeros_like(w_new))
    noise = torch.randn(spec.shape, generator=generator, device=spec.device) * sigma * noise_scale
    w_new = w_new / (1 + noise_scale**2)
    return spec_new + noise, w_new, z_new


def build_autoencoder(settings: SpenderSettings):
    """(``spender.SpectrumAutoencoder``, its instrument) for ``settings``."""
    from spender import SpectrumAutoencoder

    instrument = binned_instrument(settings.bin_factor)
    wave_rest = restframe_grid(instrument.wave_obs, settings.z_max, settings.n_rest)
    return SpectrumAutoencoder(instrument, wave_rest, n_latent=settings.n_latent), instrument


@dataclass
class SpectraTensors:
    """Normalised spectra on the instrument grid: ``spec``, ``w`` (N, L) and ``z`` (N,)."""

    spec: torch.Tensor
    w: torch.Tensor
    z: torch.Tensor

    def __len__(self) -> int:
        return int(self.spec.shape[0])

    def index(self, idx: np.ndarray) -> SpectraTensors:
        it = torch.as_tensor(idx, device=self.spec.device)
        return SpectraTensors(self.spec[it], self.w[it], self.z[it])


def fill_masked(flux: np.ndarray, ivar: np.ndarray) -> np.ndarray:
    """``flux`` with every zero-weight pixel replaced by linear interpolation between the nearest weighted
    pixels (the nearest one beyond the ends; 0 where a row has none).

    spender's encoder sees the spectrum, not its weights: a masked sky line or a missing spectrograph arm
    (flux 0 in a DESI coadd) would reach it as a dip to zero — an 'anomaly' of the data's handling, not of
    the object (issue 17). The losses weight these pixels by 0, so the fill only keeps them neutral."""
    out = np.array(flux, dtype=np.float32, copy=True)
    pix = np.arange(out.shape[1])
    for i in np.flatnonzero((ivar <= 0).any(axis=1)):
        good = ivar[i] > 0
        out[i] = np.interp(pix, pix[good], out[i, good]) if good.any() else 0.0
    return out


def spectra_tensors(
    flux: np.ndarray, ivar: np.ndarray, z: np.ndarray, bin_factor: int, device: str | torch.device = "cpu"
) -> SpectraTensors:
    """Bin, fill the masked pixels (:func:`fill_masked`) and move normalised spectra (``latentsky.io.desi``
    rows) to the device."""
    f, w = bin_spectra(flux, ivar, bin_factor)
    f = fill_masked(f, w)
    return SpectraTensors(
        torch.as_tensor(f, device=device),
        torch.as_tensor(w, device=device),
        torch.as_tensor(np.asarray(z, dtype=np.float32), device=device),
    )


def table_tensors(frame, bin_factor: int, device: str | torch.device = "cpu") -> SpectraTensors:
    """:func:`spectra_tensors` of the rows of a spectra table (``results/desi/<survey>_spectra.parquet``:
    list columns ``flux``, ``ivar`` and a column ``z``)."""
    from latentsky.io.spectra import stack_column

    return spectra_tensors(
        stack_column(frame["flux"]), stack_column(frame["ivar"]), frame["z"].to_numpy(), bin_factor, device
    )


def tensors_digest(data: SpectraTensors) -> str:
    """sha256 of the spectra, weights and redshifts (a resume file from other data is ignored)."""
    h = hashlib.sha256()
    for t in (data.spec, data.w, data.z):
        h.update(t.detach().cpu().numpy().tobytes())
    return h.hexdigest()


def _epoch_loss(model, instrument, data: SpectraTensors, batch_size: int) -> float:
    with torch.no_grad():
        total = 0.0
        for start in range(0, len(data), batch_size):
            b = data.index(np.arange(start, min(start + batch_size, len(data))))
            total += float(model.loss(b.spec, b.w, instrument, z=b.z))
    return total / max(len(data), 1)


def train_autoencoder(
    train: SpectraTensors,
    val: SpectraTensors,
    settings: SpenderSettings,
    *,
    seed: int,
    device: str | torch.device = "cpu",
    progress: Callable[[int, str, float], None] | None = None,
    resume_path: str | os.PathLike | None = None,
    resume_record: Mapping[str, Any] | None = None,
) -> tuple[Any, Any, list[dict[str, float]]]:
    """Train phase 1 then phase 2 (module docstring). Returns (model, instrument, history rows with
    ``epoch``, ``phase``, ``train_loss`` (phase objective per spectrum), ``val_fidelity`` and the
    ``precision`` the passes ran in).

    ``resume_path``: resume file written after every epoch (with ``resume_record`` as its
    provenance) and continued from when it belongs to this run (same settings, seed and data)."""
    from spender.loss import LossConfig, consistency_loss, similarity_loss, similarity_restframe_loss

    torch.manual_seed(seed)
    model, instrument = build_autoencoder(settings)
    model = model.to(device)
    instrument = instrument.to(device)
    gen = torch.Generator(device=device)
    gen.manual_seed(int(np.random.default_rng([seed, 7]).integers(2**62)))
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr)
    n_batches = sum(1 for start in range(0, len(train), settings.batch_size) if len(train) - start >= 2)
    total_steps = n_batches * (settings.epochs_phase1 + settings.epochs_phase2)
    scheduler = (
        torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=settings.lr, total_steps=total_steps)
        if settings.lr_schedule == "onecycle" and total_steps > 0
        else None
    )
    precision = resolve_precision(settings.precision, device)
    autocast = torch.autocast(
        device_type=torch.device(device).type, dtype=torch.bfloat16, enabled=precision == "bf16"
    )
    log.info("training in %s (precision setting %r)", precision, settings.precision)
    loss_config = LossConfig(similarity_amp=settings.similarity_amp, consistency_amp=settings.consistency_amp)

    def similarity(b: SpectraTensors, s: torch.Tensor) -> torch.Tensor:
        if settings.similarity_space == "data":
            return similarity_loss(instrument, model, b.spec, b.w, b.z, s, config=loss_config)
        return similarity_restframe_loss(model, s, config=loss_config)

    history: list[dict[str, Any]] = []
    phases = ["fidelity"] * settings.epochs_phase1 + ["full"] * settings.epochs_phase2
    key = run_key(settings=asdict(settings), seed=seed, data=[tensors_digest(train), tensors_digest(val)])
    start_epoch = 0
    if resume_path is not None and Path(resume_path).is_file():
        state, _ = load_checkpoint(resume_path, map_location=str(device))
        if state.get("kind") == _RESUME_KIND and state.get("run_key") == key:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            if scheduler is not None:
                scheduler.load_state_dict(state["scheduler"])
            gen.set_state(state["generator"].cpu() if gen.device.type == "cpu" else state["generator"])
            history = list(state["history"])
            start_epoch = int(state["epoch"])
            log.info("resumed from %s after epoch %d of %d", resume_path, start_epoch, len(phases))
        else:
            log.info(
                "%s belongs to another run (settings, seed or data differ); starting afresh", resume_path
            )
    for epoch, phase in enumerate(phases):
        if epoch < start_epoch:
            continue
        order = np.random.default_rng([seed, epoch]).permutation(len(train))
        model.train()
        total = 0.0
        for start in range(0, len(order), settings.batch_size):
            idx = order[start : start + settings.batch_size]
            if len(idx) < 2:
                continue
            b = train.index(idx)
            if phase == "full":  # the augmented copies are made in float32, outside autocast
                spec_a, w_a, z_a = augment_redshift(
                    b.spec, b.w, b.z, instrument.wave_obs, settings.z_max, settings.noise_scale, gen
                )
            with autocast:
                s = model.encode(b.spec)
                loss = model.loss(b.spec, b.w, instrument, z=b.z, s=s)
                if phase == "full":
                    s_a = model.encode(spec_a)
                    loss = (
                        loss
                        + model.loss(spec_a, w_a, instrument, z=z_a, s=s_a)
                        + settings.similarity_amp * similarity(b, s)
                        + settings.consistency_amp * consistency_loss(s, s_a)
                    )
            loss = loss.float()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            total += float(loss.detach())
        model.eval()
        row = {
            "epoch": float(epoch + 1),
            "phase": phase,
            "train_loss": total / max(len(train), 1),
            "val_fidelity": _epoch_loss(model, instrument, val, settings.batch_size),
            "precision": precision,
        }
        history.append(row)
        if resume_path is not None:
            resume_state = {
                "kind": _RESUME_KIND,
                "run_key": key,
                "epoch": epoch + 1,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict() if scheduler is not None else {},
                "generator": gen.get_state(),
                "history": list(history),
            }
            save_checkpoint(resume_state, resume_path, resume_record or {})
        if progress is not None:
            progress(epoch + 1, phase, row["val_fidelity"])
    return model.eval(), instrument, history


def encode_spectra(model, data: SpectraTensors, batch_size: int = 256) -> np.ndarray:
    """Latents s (N, S) of the spectra."""
    out = []
    with torch.no_grad():
        for start in range(0, len(data), batch_size):
            b = data.index(np.arange(start, min(start + batch_size, len(data))))
            out.append(model.encode(b.spec).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, model.encoder.n_latent), dtype=np.float32)


def fidelity(
    model, instrument, data: SpectraTensors, batch_size: int = 256, latents: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Per spectrum: spender's fidelity loss and the reduced χ² = Σ w (y − ŷ)² / (number of weighted
    pixels) of the observed-frame reconstruction. ``latents`` (:func:`encode_spectra` of the same data)
    spare the encoder, most of a pass's cost; without them the spectra are encoded here."""
    losses, chi2 = [], []
    with torch.no_grad():
        for start in range(0, len(data), batch_size):
            idx = np.arange(start, min(start + batch_size, len(data)))
            b = data.index(idx)
            s = (
                model.encode(b.spec)
                if latents is None
                else torch.as_tensor(latents[idx], device=b.spec.device)
            )
            losses.append(model.loss(b.spec, b.w, instrument, z=b.z, s=s, individual=True).cpu().numpy())
            recon = model(b.spec, instrument, z=b.z, s=s)
            n = (b.w > 0).sum(dim=1).clamp_min(1)
            chi2.append(((b.w * (b.spec - recon) ** 2).sum(dim=1) / n).cpu().numpy())
    return np.concatenate(losses), np.concatenate(chi2)


def save_autoencoder(
    path: str | os.PathLike,
    model,
    settings: SpenderSettings,
    history: list[dict[str, Any]],
    provenance: Mapping[str, Any],
) -> Path:
    """Write ``{"model": state_dict, "losses": …}`` (spender's layout) plus latentsky's checkpoint keys."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    losses = torch.tensor([[r["train_loss"], r["val_fidelity"]] for r in history], dtype=torch.float64)
    payload = {
        "model": state,
        "losses": losses,
        "format": _FORMAT,
        "state": {"kind": "spender-autoencoder", "settings": asdict(settings), "history": list(history)},
        "provenance": dict(provenance),
    }
    with atomic_output(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def load_autoencoder(path: str | os.PathLike, bin_factor: int = 1, device: str | torch.device = "cpu"):
    """(model, instrument) from a file of ours or a published spender model, via ``spender.load_model``."""
    import spender

    instrument = binned_instrument(bin_factor)
    model = spender.load_model(str(path), instrument, map_location=device, weights_only=True)
    return model.eval(), instrument


def autoencoder_settings(path: str | os.PathLike) -> SpenderSettings | None:
    """The settings a model file of ours was trained with; None for a published spender file."""
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != _FORMAT:
        return None
    return SpenderSettings.from_dict(payload["state"]["settings"])
