"""The scatter variational auto-encoder (sVAE) for Gaia XP coefficient spectra (Laroche & Speagle 2023,
paper 001), written here in torch: no package ships it, and the authors' ``xp_vae`` code (2024) differs from
the paper in architecture and loss, so both are offered as presets of one class.

* **Inputs** (Sec. 2.1). The 55 BP + 55 RP coefficients divided by the G-band flux (removing brightness),
  then standardised per coefficient with the training set's mean and standard deviation
  (:class:`XpNormalisation`, stored in the model file — the authors keep theirs in a separate file that is not
  published). Errors are scaled the same way; correlations are not used in training (as the paper).
* **Model** (Sec. 2.2, Fig. 1). Encoder 110 → 80 → 50 → 30 (GELU) → (μ, ln σ²) ∈ ℝ⁶; a decoder mirroring
  it → x̂ (110); a second decoder of the same shape, with its own weights, → the star-by-star scatter ŝ,
  made positive by a sigmoid (what the published model does: ŝ < 1 population σ of each coefficient).
  ``architecture: code`` is the authors' 2024 network: 110 → 90 → 70 → 50 → 30 → 10, each hidden layer
  Linear → BatchNorm → GELU, and decoders that start with a bare Linear(6 → 10).
* **Loss** (eqs. 1–5). Per star, with v_i = σ²_x,i + ŝ²_i(z):
  χ² = 1/(2N) Σ (x_i − x̂_i)²/v_i (eq. 3), P = 1/(2N) Σ ln v_i (eq. 4),
  D_KL = 1/(2 n_z) Σ_j [μ_j² + σ²_j − 1 − ln σ²_j] (eq. 5), L = ⟨χ² + P + D_KL⟩_batch (eqs. 1–2).
  ``loss_reduction: sum`` is the authors' code: the same terms summed rather than averaged, which weights the
  KL term 18.3× less relative to the reconstruction (a β-VAE with β = (1/6)/(1/110) in the paper's form).
* **Training** (Sec. 2.3). SGD with momentum 0.9 (not stated in the paper), batch 1,024, initial learning
  rate 0.1 with cosine decay (the form of the decay is not stated), 100 epochs; ``optimizer: adamw`` with
  ``schedule: warm_restarts`` is the authors' code (AdamW 1e-4, cosine warm restarts T₀ = 500). ln σ²_z is
  clamped to [−12, 8] and gradients clipped (norm 10) so SGD at 0.1 cannot blow up on a bad batch — both
  deviations from the paper, visible in the config (``clip_grad_norm: null`` turns clipping off).
* **Resume.** A resume file after every ``checkpoint_every`` epochs (model, optimiser, schedule, history):
  a job killed by SIGTERM or SLURM preemption continues and reaches the same weights as an uninterrupted
  run, because batch order and the reparameterisation draws depend only on (seed, epoch).
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from latentsky.config import dataclass_from_dict
from latentsky.provenance.files import load_checkpoint, save_checkpoint
from latentsky.training import run_key

__all__ = [
    "ARCHITECTURES",
    "N_COEFFICIENTS",
    "SvaeSettings",
    "XpNormalisation",
    "fit_normalisation",
    "standardise",
    "ScatterVAE",
    "build_svae",
    "svae_loss_terms",
    "train_svae",
    "SvaeOutputs",
    "encode_xp",
    "save_svae",
    "load_svae",
]

#: 55 BP + 55 RP coefficients (Gaia DR3 XP continuous representation).
N_COEFFICIENTS = 110
#: ``svae.architecture`` → (hidden widths, batch norm, a bare first decoder layer to the last width).
ARCHITECTURES = {
    "paper": ((80, 50, 30), False, False),
    "code": ((90, 70, 50, 30, 10), True, True),
}
_LOGVAR_RANGE = (-12.0, 8.0)
_MODEL_KIND = "xp-scatter-vae"
_RESUME_KIND = "xp-scatter-vae-resume"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SvaeSettings:
    """One sVAE preset (``svae.presets.<name>`` in the config; defaults are the paper's, Sec. 2.2–2.3).

    Attributes
    ----------
    architecture : ``"paper"`` (80/50/30, GELU) or ``"code"`` (the authors' 2024 network, see module doc).
    latent_dim : n_z (paper: 6).
    loss_reduction : ``"mean"`` (paper eqs. 1–5) or ``"sum"`` (authors' code).
    scatter_activation : ``"sigmoid"`` (paper and code; ŝ < 1 in standardised units) or ``"softplus"``.
    optimizer : ``"sgd"`` (with ``momentum``) or ``"adamw"`` (with ``weight_decay``).
    lr, lr_min : initial and final learning rate of the cosine schedule.
    schedule : ``"cosine"`` (one decay over all epochs to ``lr_min``), ``"warm_restarts"`` (period
        ``restart_period`` epochs, to 1e-10, the authors' code) or ``"constant"``.
    batch_size, epochs : mini-batch and number of passes (paper: 1,024 and 100).
    clip_grad_norm : gradient-norm clip (``None``: off).
    checkpoint_every : epochs between resume files.
    """

    architecture: str = "paper"
    latent_dim: int = 6
    loss_reduction: str = "mean"
    scatter_activation: str = "sigmoid"
    optimizer: str = "sgd"
    lr: float = 0.1
    lr_min: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 0.01
    schedule: str = "cosine"
    restart_period: int = 500
    batch_size: int = 1024
    epochs: int = 100
    clip_grad_norm: float | None = 10.0
    checkpoint_every: int = 1

    def __post_init__(self) -> None:
        choices = {
            "architecture": tuple(ARCHITECTURES),
            "loss_reduction": ("mean", "sum"),
            "scatter_activation": ("sigmoid", "softplus"),
            "optimizer": ("sgd", "adamw"),
            "schedule": ("cosine", "warm_restarts", "constant"),
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"svae.{name} must be one of {allowed}, not {getattr(self, name)!r}")
        if self.latent_dim < 1 or self.batch_size < 2 or self.epochs < 0 or self.lr <= 0:
            raise ValueError(f"svae settings need latent_dim ≥ 1, batch_size ≥ 2, epochs ≥ 0, lr > 0: {self}")
        if self.checkpoint_every < 1 or self.restart_period < 1:
            raise ValueError("svae.checkpoint_every and svae.restart_period must be ≥ 1")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], what: str = "svae preset") -> SvaeSettings:
        """From a config block; unknown keys are an error naming them."""
        return dataclass_from_dict(cls, d, what)


# --- inputs (paper Sec. 2.1) -------------------------------------------------------------------------------


@dataclass(frozen=True)
class XpNormalisation:
    """Per-coefficient mean and standard deviation of the G-flux-normalised training coefficients."""

    mean: np.ndarray
    std: np.ndarray

    def to_dict(self) -> dict[str, list[float]]:
        return {"mean": [float(v) for v in self.mean], "std": [float(v) for v in self.std]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> XpNormalisation:
        return cls(np.asarray(d["mean"], dtype=np.float64), np.asarray(d["std"], dtype=np.float64))


def fit_normalisation(coefficients: np.ndarray, g_flux: np.ndarray) -> XpNormalisation:
    """Mean and standard deviation per coefficient of c/F_G over the rows given (the training set); NaN
    entries (a missing band) are ignored."""
    scaled = np.asarray(coefficients, dtype=np.float64) / np.asarray(g_flux, dtype=np.float64)[:, None]
    mean = np.nanmean(scaled, axis=0)
    std = np.nanstd(scaled, axis=0)
    if not np.all(np.isfinite(std)) or np.any(std <= 0):
        raise ValueError(
            "XP normalisation: a coefficient has no spread (or no finite value) in the training set"
        )
    return XpNormalisation(mean, std)


def standardise(
    coefficients: np.ndarray, errors: np.ndarray, g_flux: np.ndarray, norm: XpNormalisation
) -> tuple[np.ndarray, np.ndarray]:
    """(x, σ_x) in standardised units: x = (c/F_G − μ)/s, σ_x = (e/F_G)/s (paper Sec. 2.1)."""
    g = np.asarray(g_flux, dtype=np.float64)[:, None]
    x = (np.asarray(coefficients, dtype=np.float64) / g - norm.mean) / norm.std
    sigma = np.asarray(errors, dtype=np.float64) / g / norm.std
    return x, sigma


# --- model (paper Sec. 2.2) ---------------------------------------------------------------------------------


def _mlp(widths: list[int], batch_norm: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in zip(widths[:-1], widths[1:], strict=True):
        layers.append(nn.Linear(a, b))
        if batch_norm:
            layers.append(nn.BatchNorm1d(b))
        layers.append(nn.GELU())
    return nn.Sequential(*layers)


class ScatterVAE(nn.Module):
    """Encoder → (μ, ln σ²); a decoder z → x̂ and a scatter decoder z → ŝ > 0 (paper Fig. 1).

    Parameters
    ----------
    hidden : encoder widths after the 110 inputs (the decoders mirror them).
    latent_dim : n_z.
    batch_norm : BatchNorm1d after every hidden Linear (authors' code).
    bare_first_decoder_layer : the decoders start with Linear(n_z → hidden[-1]) without activation (code).
    scatter_activation : ``"sigmoid"`` or ``"softplus"``.
    """

    def __init__(
        self,
        hidden: tuple[int, ...] = ARCHITECTURES["paper"][0],
        latent_dim: int = 6,
        batch_norm: bool = False,
        bare_first_decoder_layer: bool = False,
        scatter_activation: str = "sigmoid",
        n_inputs: int = N_COEFFICIENTS,
    ) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.encoder = _mlp([n_inputs, *hidden], batch_norm)
        self.mu = nn.Linear(hidden[-1], latent_dim)
        self.log_var = nn.Linear(hidden[-1], latent_dim)
        rev = list(reversed(hidden))

        def decoder(last: nn.Module | None) -> nn.Sequential:
            first = [nn.Linear(latent_dim, rev[0])] if bare_first_decoder_layer else []
            body = _mlp(([rev[0]] if bare_first_decoder_layer else [latent_dim]) + rev, batch_norm)
            head = [nn.Linear(rev[-1], n_inputs)] + ([last] if last is not None else [])
            return nn.Sequential(*first, *body, *head)

        self.decoder = decoder(None)
        self.scatter = decoder(nn.Sigmoid() if scatter_activation == "sigmoid" else nn.Softplus())

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(μ, ln σ²) of the approximate posterior, ln σ² clamped to [−12, 8]."""
        h = self.encoder(x)
        return self.mu(h), self.log_var(h).clamp(*_LOGVAR_RANGE)

    def decode(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(x̂, ŝ) at latent z."""
        return self.decoder(z), self.scatter(z)

    def forward(
        self, x: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(x̂, ŝ, μ, ln σ²) with z = μ + ε·exp(½ ln σ²) (the reparameterisation trick)."""
        mu, log_var = self.encode(x)
        eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        x_hat, s_hat = self.decode(mu + eps * torch.exp(0.5 * log_var))
        return x_hat, s_hat, mu, log_var


def build_svae(settings: SvaeSettings) -> ScatterVAE:
    hidden, batch_norm, bare = ARCHITECTURES[settings.architecture]
    return ScatterVAE(hidden, settings.latent_dim, batch_norm, bare, settings.scatter_activation)


def svae_loss_terms(
    x: torch.Tensor,
    sigma: torch.Tensor,
    x_hat: torch.Tensor,
    s_hat: torch.Tensor,
    mu: torch.Tensor,
    log_var: torch.Tensor,
    reduction: str = "mean",
    weight: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Per-star χ² (eq. 3), penalty P (eq. 4) and D_KL (eq. 5); ``reduction="sum"`` drops the 1/N and
    1/n_z (authors' code). ``weight`` (0/1 per coefficient) leaves out missing coefficients; N is then the
    number of weighted coefficients of each star."""
    v = sigma**2 + s_hat**2
    w = torch.ones_like(x) if weight is None else weight
    r2 = torch.where(w > 0, (x - x_hat) ** 2 / v, torch.zeros_like(x))
    chi2 = 0.5 * (w * r2).sum(dim=1)
    penalty = 0.5 * (w * torch.log(v)).sum(dim=1)
    kl = 0.5 * (mu**2 + torch.exp(log_var) - 1.0 - log_var).sum(dim=1)
    if reduction == "mean":
        n = w.sum(dim=1).clamp_min(1.0)
        chi2, penalty, kl = chi2 / n, penalty / n, kl / mu.shape[1]
    return {"chi2": chi2, "penalty": penalty, "kl": kl, "total": chi2 + penalty + kl}


# --- training (paper Sec. 2.3) ------------------------------------------------------------------------------


def _digest(*arrays: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def _optimizer(model: nn.Module, settings: SvaeSettings) -> torch.optim.Optimizer:
    if settings.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=settings.lr, momentum=settings.momentum)
    return torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)


def _scheduler(optimizer: torch.optim.Optimizer, settings: SvaeSettings):
    if settings.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(
            optimizer, T_max=max(settings.epochs, 1), eta_min=settings.lr_min
        )
    if settings.schedule == "warm_restarts":
        return torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(
            optimizer, T_0=settings.restart_period, eta_min=1e-10
        )
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: 1.0)


def _epoch_generator(seed: int, epoch: int, device: torch.device) -> torch.Generator:
    gen = torch.Generator(device=device)
    gen.manual_seed(int(np.random.default_rng([seed, epoch, 11]).integers(2**62)))
    return gen


def _mean_terms(model: ScatterVAE, x, sigma, weight, settings: SvaeSettings, gen) -> dict[str, float]:
    """Batch-size-independent averages of the loss terms over a whole set (sampled z, as in training)."""
    sums = {"chi2": 0.0, "penalty": 0.0, "kl": 0.0, "total": 0.0}
    with torch.no_grad():
        for start in range(0, len(x), 4096):
            sl = slice(start, start + 4096)
            x_hat, s_hat, mu, log_var = model(x[sl], gen)
            terms = svae_loss_terms(
                x[sl], sigma[sl], x_hat, s_hat, mu, log_var, settings.loss_reduction, weight[sl]
            )
            for k in sums:
                sums[k] += float(terms[k].sum())
    return {k: v / max(len(x), 1) for k, v in sums.items()}


def train_svae(
    train: tuple[np.ndarray, np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray, np.ndarray],
    settings: SvaeSettings,
    *,
    seed: int,
    device: str | torch.device = "cpu",
    resume_path: str | os.PathLike | None = None,
    resume_record: Mapping[str, Any] | None = None,
    progress: Callable[[int, dict[str, float]], None] | None = None,
) -> tuple[ScatterVAE, list[dict[str, float]]]:
    """Train on standardised ``(x, σ_x, weight)`` arrays (n, 110) each; returns (model in eval mode, history
    with one row per epoch: lr and the mean χ², P, D_KL and total of the training and validation sets).

    Raises ``FloatingPointError`` naming the epoch when the loss stops being finite (e.g. a learning rate too
    large for SGD), rather than writing a model of NaNs."""
    device = torch.device(device)
    torch.manual_seed(seed)
    model = build_svae(settings).to(device)
    optimizer = _optimizer(model, settings)
    scheduler = _scheduler(optimizer, settings)

    def tensors(arrays):
        return [torch.as_tensor(np.nan_to_num(a), dtype=torch.float32, device=device) for a in arrays]

    x_tr, s_tr, w_tr = tensors(train)
    x_va, s_va, w_va = tensors(val)
    key = run_key(settings=asdict(settings), seed=seed, data=_digest(*train, *val))
    history: list[dict[str, float]] = []
    start_epoch = 0
    if resume_path is not None and Path(resume_path).is_file():
        state, _ = load_checkpoint(resume_path, map_location=str(device))
        if state.get("kind") == _RESUME_KIND and state.get("run_key") == key:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            history = list(state["history"])
            start_epoch = int(state["epoch"])
            log.info("resumed from %s after epoch %d of %d", resume_path, start_epoch, settings.epochs)
        else:
            log.info(
                "%s belongs to another run (settings, seed or data differ); starting afresh", resume_path
            )
    n = len(x_tr)
    for epoch in range(start_epoch, settings.epochs):
        gen = _epoch_generator(seed, epoch, device)
        order = torch.as_tensor(np.random.default_rng([seed, epoch]).permutation(n), device=device)
        lr = optimizer.param_groups[0]["lr"]
        model.train()
        for start in range(0, n, settings.batch_size):
            idx = order[start : start + settings.batch_size]
            if len(idx) < 2:  # BatchNorm needs two rows; one left-over star waits for the next epoch
                continue
            x_hat, s_hat, mu, log_var = model(x_tr[idx], gen)
            terms = svae_loss_terms(
                x_tr[idx], s_tr[idx], x_hat, s_hat, mu, log_var, settings.loss_reduction, w_tr[idx]
            )
            loss = terms["total"].mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if settings.clip_grad_norm is not None:
                nn.utils.clip_grad_norm_(model.parameters(), settings.clip_grad_norm)
            optimizer.step()
        scheduler.step()
        model.eval()
        eval_gen = _epoch_generator(seed, epoch + 1_000_000, device)
        row = {"epoch": float(epoch + 1), "lr": float(lr)}
        for split, (xs, ss, ws) in {"train": (x_tr, s_tr, w_tr), "val": (x_va, s_va, w_va)}.items():
            for k, v in _mean_terms(model, xs, ss, ws, settings, eval_gen).items():
                row[f"{split}_{k}"] = v
        if not np.isfinite(row["train_total"]):
            raise FloatingPointError(
                f"sVAE training diverged at epoch {epoch + 1} (loss {row['train_total']}); lower svae lr "
                f"(now {settings.lr}) or set clip_grad_norm"
            )
        history.append(row)
        last = epoch + 1 == settings.epochs
        if resume_path is not None and ((epoch + 1) % settings.checkpoint_every == 0 or last):
            resume_state = {
                "kind": _RESUME_KIND,
                "run_key": key,
                "epoch": epoch + 1,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "history": list(history),
            }
            save_checkpoint(resume_state, resume_path, resume_record or {})
        if progress is not None:
            progress(epoch + 1, row)
    return model.eval(), history


# --- inference (paper Sec. 3; the catalog) ------------------------------------------------------------------


@dataclass
class SvaeOutputs:
    """Per star, at the latent mean μ (not a random draw, so a catalog is reproducible): latent mean and
    ln σ², reconstruction x̂ and scatter ŝ in standardised units."""

    mu: np.ndarray
    log_var: np.ndarray
    x_hat: np.ndarray
    s_hat: np.ndarray
    extra: dict[str, np.ndarray] = field(default_factory=dict)


def encode_xp(model: ScatterVAE, x: np.ndarray, batch_size: int = 8192) -> SvaeOutputs:
    """Encode standardised coefficients (n, 110); NaN inputs are encoded as 0 (the training mean) — callers
    decide whether such rows get a latent at all."""
    device = next(model.parameters()).device
    model = model.eval()
    out: dict[str, list[np.ndarray]] = {"mu": [], "log_var": [], "x_hat": [], "s_hat": []}
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            xb = torch.as_tensor(
                np.nan_to_num(x[start : start + batch_size]), dtype=torch.float32, device=device
            )
            mu, log_var = model.encode(xb)
            x_hat, s_hat = model.decode(mu)
            for k, v in zip(out, (mu, log_var, x_hat, s_hat), strict=True):
                out[k].append(v.cpu().numpy().astype(np.float64))
    if not out["mu"]:
        d = model.latent_dim
        return SvaeOutputs(np.zeros((0, d)), np.zeros((0, d)), np.zeros((0, 110)), np.zeros((0, 110)))
    return SvaeOutputs(*(np.concatenate(v) for v in out.values()))


def save_svae(
    path: str | os.PathLike,
    model: ScatterVAE,
    settings: SvaeSettings,
    norm: XpNormalisation,
    history: list[dict[str, float]],
    provenance: Mapping[str, Any],
) -> Path:
    """Weights, settings, the input normalisation and the training history in one checkpoint."""
    state = {
        "kind": _MODEL_KIND,
        "settings": asdict(settings),
        "normalisation": norm.to_dict(),
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "history": list(history),
    }
    return save_checkpoint(state, path, provenance)


def load_svae(
    path: str | os.PathLike, device: str | torch.device = "cpu"
) -> tuple[ScatterVAE, SvaeSettings, XpNormalisation]:
    """(model in eval mode, settings, normalisation) from :func:`save_svae`'s file."""
    state, _ = load_checkpoint(path, map_location=str(device))
    if state.get("kind") != _MODEL_KIND:
        raise ValueError(f"{path}: not an XP scatter-VAE model file (kind {state.get('kind')!r})")
    settings = SvaeSettings.from_dict(state["settings"])
    model = build_svae(settings).to(device)
    model.load_state_dict(state["model"])
    return model.eval(), settings, XpNormalisation.from_dict(state["normalisation"])
