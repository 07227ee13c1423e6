"""Training Cycle-StarNet (paper 002 §3.1, App. B; the authors' ``training_fns.train_iter``).

Each iteration draws one unpaired batch per domain and takes two Adam steps:

1. **Generator** (encoders and decoders; critics frozen). With d the weighted masked MSE
   (:func:`weighted_masked_mse`):
   L_rec = d(x_s, X_s→s) + d(x_o, X_o→o) (eq. 3); L_cr = d(x_s, X_s→o→s) + d(x_o, X_o→s→o) (eq. 7, the o→s→o
   cycle with the original z_sp); L_gen = H(1, C_s(X_o→s, z_o)) + H(1, C_o(X_s→o, [z_s, z_sp,s→o])) — only the
   cross-domain terms, target flipped; L_AE = λ_synth (L_rec,s + L_cr,s) + λ_obs (L_rec,o + L_cr,o) + λ_gen
   L_gen (eq. 1). X_s→o takes the z_sp of the observed spectrum in the same batch.
2. **Critics**, on detached tensors: H(1, C_s(X_s→s, z_s)) + H(0, C_s(X_o→s, z_o)) + H(1, C_o(X_o→o, [z_o,
   z_sp,o])) + H(0, C_o(X_s→o, [z_s, z_sp,s→o])) (eq. 4), × λ_dis. "Real" is the within-domain
   *reconstruction*, not the input (footnote 3; ``use_real_as_true = False``), so transfers come out denoised.

Errors: the synthetic domain has a constant error of 0.005 in flux (the code's "standard MSE"), the observed
its own, floored at 0.005; both divided by the flux standardisation's scale. Masked pixels count in the mean
(as the code), so a heavily masked spectrum has a smaller loss.

Deviations, all in the config: a reconstruction-only warm-up (λ_gen = 0 for the first
``warmup_reconstruction_only`` iterations; the authors start adversarial at once), learning-rate milestones as
fractions of the run (the paper's × 0.7 at 50k…200k of 350k iterations), and mixed precision (bf16 autocast)
where the hardware has it. The batch order and everything random depends only on (seed, iteration), and a
resume file holds both optimisers, both schedulers and the history, so a job killed by SIGTERM continues to the
same weights as an uninterrupted one (on CPU; cuDNN's transposed-convolution backward is not deterministic).
"""

from __future__ import annotations

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
from latentsky.cyclestarnet.model import CycleStarNet, NetworkSettings
from latentsky.provenance.files import load_checkpoint, save_checkpoint
from latentsky.training import PRECISIONS, resolve_precision, run_key

__all__ = [
    "Domains",
    "TrainingSettings",
    "latent_scores",
    "paired_validation",
    "train_cyclestarnet",
    "load_cyclestarnet",
    "save_cyclestarnet",
    "weighted_masked_mse",
]

log = logging.getLogger(__name__)

_RESUME_KIND = "cyclestarnet-resume"
#: Floor of every pixel's flux error (paper §4.1.2; the synthetic domain's constant error).
ERROR_FLOOR = 0.005


@dataclass
class TrainingSettings:
    """Optimisation of :func:`train_cyclestarnet` (paper App. B at its values; the demo's in the config).

    Attributes
    ----------
    batch_size : spectra per domain and iteration (paper 8).
    iterations : generator + critic steps (paper 350,000).
    lr, betas : Adam for both optimisers (paper 1e-4, the code's betas (0.5, 0.999)).
    critic_lr : the critics' learning rate when it differs from ``lr`` (None = ``lr``, the paper). Two-timescale
        training is the usual remedy when the critics win (generator BCE 8–13); measured on the demo's domains
        it did not align the latents (docs/cyclestarnet.md), so the default stays the paper's.
    lr_decay, lr_milestones : × ``lr_decay`` at these fractions of ``iterations`` (paper 0.7 at 1/7, 2/7, 3/7, 4/7).
    loss_weights : λ_synth, λ_obs, λ_gen, λ_dis (paper 3/9/1/1 for real APOGEE; the mock's 90/90/1/1).
    warmup_reconstruction_only : iterations with λ_gen = 0 at the start (0 = the authors).
    validate_every : iterations between paired-validation rows of the history.
    checkpoint_every : iterations between resume files.
    precision : fp32, bf16 or auto (bf16 where the hardware has bfloat16 arithmetic).
    """

    batch_size: int = 16
    iterations: int = 2000
    lr: float = 1e-3
    critic_lr: float | None = None
    betas: list[float] = field(default_factory=lambda: [0.5, 0.999])
    lr_decay: float = 0.7
    lr_milestones: list[float] = field(default_factory=lambda: [0.5, 0.7, 0.9])
    loss_weights: dict[str, float] = field(
        default_factory=lambda: {"synth": 90.0, "obs": 90.0, "gen": 1.0, "dis": 1.0}
    )
    warmup_reconstruction_only: int = 200
    validate_every: int = 100
    checkpoint_every: int = 200
    precision: str = "fp32"

    def __post_init__(self) -> None:
        if set(self.loss_weights) != {"synth", "obs", "gen", "dis"}:
            raise ValueError(
                f"cyclestarnet.training.loss_weights needs synth, obs, gen and dis; got {sorted(self.loss_weights)}"
            )
        if self.precision not in PRECISIONS:
            raise ValueError(f"cyclestarnet.training.precision {self.precision!r} not one of {PRECISIONS}")
        if self.critic_lr is not None and not self.critic_lr > 0:
            raise ValueError(
                f"cyclestarnet.training.critic_lr must be > 0 (or null = lr); got {self.critic_lr}"
            )
        if not all(0 < f < 1 for f in self.lr_milestones):
            raise ValueError(f"lr_milestones are fractions of the run in (0, 1); got {self.lr_milestones}")

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None) -> TrainingSettings:
        return dataclass_from_dict(cls, dict(config or {}), "cyclestarnet.training")


@dataclass
class Domains:
    """Training and paired-validation spectra, standardised: x = (flux − mean)/scale, error = σ/scale.

    ``synth`` (n_s, P) and ``obs``, ``obs_error``, ``obs_weight`` (n_o, P) are unpaired; the ``val_*`` arrays are
    paired (row i of both domains has the same labels). ``synth_error`` is the synthetic domain's constant
    error (0.005/scale); ``obs_weight`` is 1 for a usable pixel, 0 for a masked one."""

    synth: np.ndarray
    obs: np.ndarray
    obs_error: np.ndarray
    obs_weight: np.ndarray
    val_synth: np.ndarray
    val_obs: np.ndarray
    val_obs_error: np.ndarray
    val_obs_weight: np.ndarray
    synth_error: float

    def digest(self) -> str:
        import hashlib

        h = hashlib.sha256()
        for name in ("synth", "obs", "obs_error", "obs_weight", "val_synth", "val_obs"):
            h.update(np.ascontiguousarray(getattr(self, name), dtype=np.float32).tobytes())
        return h.hexdigest()


def weighted_masked_mse(
    pred: torch.Tensor, target: torch.Tensor, error: torch.Tensor | float, weight: torch.Tensor | float = 1.0
) -> torch.Tensor:
    """mean over pixels and spectra of ((pred − target) · weight / error)² — the authors'
    ``weighted_masked_mse_loss``: masked pixels (weight 0) count in the mean."""
    return torch.mean(((pred - target) * weight / error) ** 2)


def _bce(logit: torch.Tensor, target: float) -> torch.Tensor:
    return nn.functional.binary_cross_entropy_with_logits(
        logit.float(), torch.full_like(logit.float(), target)
    )


def _iteration_rng(seed: int, iteration: int) -> np.random.Generator:
    return np.random.default_rng([seed, iteration, 2])


def _schedulers(settings: TrainingSettings, optimizers: list[torch.optim.Optimizer]) -> list[Any]:
    milestones = sorted({max(1, round(f * settings.iterations)) for f in settings.lr_milestones})
    return [torch.optim.lr_scheduler.MultiStepLR(o, milestones, gamma=settings.lr_decay) for o in optimizers]


def latent_scores(
    zsh_synth: torch.Tensor,
    zsh_obs: torch.Tensor,
    zsh_synthobs: torch.Tensor,
    zsh_obssynth: torch.Tensor,
    zsp_obs: torch.Tensor | None = None,
    zsp_synthobs: torch.Tensor | None = None,
) -> dict[str, float]:
    """The authors' latent "z scores" on a paired set (``evaluation_checkpoint``): every latent variable scaled
    to [0, 1] by its min and max over all four encodings, then the mean |difference| between the synthetic and
    observed encodings of the same star (``zsh``), between a spectrum's and its transfer's (``zsh_synth``:
    z_s vs z of X_s→o; ``zsh_obs``: z_o vs z of X_o→s), and of z_sp before and after a transfer (``zsp``)."""
    stack = torch.cat([zsh_synth, zsh_obs, zsh_synthobs, zsh_obssynth], 0)
    lo, span = stack.min(0).values, (stack.max(0).values - stack.min(0).values).clamp_min(1e-12)

    def norm(z: torch.Tensor) -> torch.Tensor:
        return (z - lo) / span

    out = {
        "zsh": float(torch.mean(torch.abs(norm(zsh_obs) - norm(zsh_synth)))),
        "zsh_synth": float(torch.mean(torch.abs(norm(zsh_synth) - norm(zsh_synthobs)))),
        "zsh_obs": float(torch.mean(torch.abs(norm(zsh_obs) - norm(zsh_obssynth)))),
    }
    if zsp_obs is not None and zsp_synthobs is not None:
        sp = torch.cat([zsp_obs, zsp_synthobs], 0)
        lo_sp, span_sp = sp.min(0).values, (sp.max(0).values - sp.min(0).values).clamp_min(1e-12)
        out["zsp"] = float(
            torch.mean(torch.abs((zsp_obs - lo_sp) / span_sp - (zsp_synthobs - lo_sp) / span_sp))
        )
    return out


@torch.no_grad()
def paired_validation(
    model: CycleStarNet,
    x_s: torch.Tensor,
    x_o: torch.Tensor,
    err_o: torch.Tensor,
    w_o: torch.Tensor,
    synth_error: float,
) -> dict[str, float]:
    """The code's validation on paired spectra: ``x_synthobs_val`` = d(T_s→o(x_s) with the pair's own z_sp,
    x_o), ``x_obssynth_val`` = d(T_o→s(x_o), x_s), and :func:`latent_scores`."""
    model.eval()
    zsh_s = model.synth_to_z(x_s)
    zsh_o, zsp_o = model.obs_to_z(x_o)
    x_so = model.z_to_obs(zsh_s, zsp_o)
    x_os = model.z_to_synth(zsh_o)
    zsh_os = model.synth_to_z(x_os)
    zsh_so, zsp_so = model.obs_to_z(x_so)
    out = {
        "x_synthobs_val": float(weighted_masked_mse(x_so, x_o, err_o, w_o)),
        "x_obssynth_val": float(weighted_masked_mse(x_os, x_s, synth_error)),
    }
    out.update(latent_scores(zsh_s, zsh_o, zsh_so, zsh_os, zsp_o, zsp_so))
    return out


def train_cyclestarnet(
    domains: Domains,
    network: NetworkSettings,
    settings: TrainingSettings,
    *,
    seed: int,
    device: str | torch.device = "cpu",
    resume_path: str | os.PathLike | None = None,
    resume_record: Mapping[str, Any] | None = None,
    progress: Callable[[int, dict[str, float]], None] | None = None,
) -> tuple[CycleStarNet, list[dict[str, float]]]:
    """Train Cycle-StarNet on ``domains``; returns (model in eval mode, history with one row per
    ``validate_every`` iterations: the iteration, lr, the mean training losses since the last row and the paired
    validation of :func:`paired_validation`).

    Raises ``FloatingPointError`` naming the iteration when a loss stops being finite."""
    device = torch.device(device)
    precision = resolve_precision(settings.precision, device)
    torch.manual_seed(seed)
    model = CycleStarNet(network).to(device)
    opt_g = torch.optim.Adam(model.generator_parameters(), lr=settings.lr, betas=tuple(settings.betas))
    critic_lr = settings.lr if settings.critic_lr is None else settings.critic_lr
    opt_c = torch.optim.Adam(model.critic_parameters(), lr=critic_lr, betas=tuple(settings.betas))
    sched_g, sched_c = _schedulers(settings, [opt_g, opt_c])

    def t(a: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.asarray(a, dtype=np.float32), device=device)

    x_s, x_o, e_o, w_o = t(domains.synth), t(domains.obs), t(domains.obs_error), t(domains.obs_weight)
    val = [t(a) for a in (domains.val_synth, domains.val_obs, domains.val_obs_error, domains.val_obs_weight)]
    e_s = float(domains.synth_error)
    lam = settings.loss_weights
    key = run_key(network=network.as_dict(), settings=asdict(settings), seed=seed, data=domains.digest())
    history: list[dict[str, float]] = []
    running: dict[str, float] = {}  # loss sums since the last history row (kept in the resume file)
    start = 0
    if resume_path is not None and Path(resume_path).is_file():
        state, _ = load_checkpoint(resume_path, map_location=str(device))
        if state.get("kind") == _RESUME_KIND and state.get("run_key") == key:
            model.load_state_dict(state["model"])
            for obj, name in ((opt_g, "opt_g"), (opt_c, "opt_c"), (sched_g, "sched_g"), (sched_c, "sched_c")):
                obj.load_state_dict(state[name])
            history, start = list(state["history"]), int(state["iteration"])
            running = dict(state["running"])
            log.info("resumed from %s after iteration %d of %d", resume_path, start, settings.iterations)
        else:
            log.info(
                "%s belongs to another run (settings, seed or data differ); starting afresh", resume_path
            )

    autocast = torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=precision == "bf16")
    for it in range(start, settings.iterations):
        rng = _iteration_rng(seed, it)
        i_s = torch.as_tensor(rng.integers(len(x_s), size=settings.batch_size), device=device)
        i_o = torch.as_tensor(rng.integers(len(x_o), size=settings.batch_size), device=device)
        xs, xo, eo, wo = x_s[i_s], x_o[i_o], e_o[i_o], w_o[i_o]
        lam_gen = 0.0 if it < settings.warmup_reconstruction_only else lam["gen"]

        # 1. generator step (critics' weights not updated: only the generator's optimiser steps)
        model.train()
        with autocast:
            zsh_s = model.synth_to_z(xs)
            zsh_o, zsp_o = model.obs_to_z(xo)
            x_ss, x_oo = model.z_to_synth(zsh_s), model.z_to_obs(zsh_o, zsp_o)
            x_so, x_os = model.z_to_obs(zsh_s, zsp_o), model.z_to_synth(zsh_o)
            zsh_os = model.synth_to_z(x_os)
            zsh_so, zsp_so = model.obs_to_z(x_so)
            x_oso, x_sos = model.z_to_obs(zsh_os, zsp_o), model.z_to_synth(zsh_so)
            gen_s = model.critic_synth_logit(x_os, zsh_o)
            gen_o = model.critic_obs_logit(x_so, zsh_s, zsp_so)
        terms = {
            "rec_synth": weighted_masked_mse(x_ss.float(), xs, e_s),
            "rec_obs": weighted_masked_mse(x_oo.float(), xo, eo, wo),
            "cc_synth": weighted_masked_mse(x_sos.float(), xs, e_s),
            "cc_obs": weighted_masked_mse(x_oso.float(), xo, eo, wo),
            "gen_synth": _bce(gen_s, 1.0),
            "gen_obs": _bce(gen_o, 1.0),
        }
        loss_g = (
            lam["synth"] * (terms["rec_synth"] + terms["cc_synth"])
            + lam["obs"] * (terms["rec_obs"] + terms["cc_obs"])
            + lam_gen * (terms["gen_synth"] + terms["gen_obs"])
        )
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()

        # 2. critic step on detached tensors; "real" = the within-domain reconstructions
        with autocast:
            c_terms = {
                "dis_real_synth": _bce(model.critic_synth_logit(x_ss.detach(), zsh_s.detach()), 1.0),
                "dis_fake_synth": _bce(model.critic_synth_logit(x_os.detach(), zsh_o.detach()), 0.0),
                "dis_real_obs": _bce(
                    model.critic_obs_logit(x_oo.detach(), zsh_o.detach(), _detach(zsp_o)), 1.0
                ),
                "dis_fake_obs": _bce(
                    model.critic_obs_logit(x_so.detach(), zsh_s.detach(), _detach(zsp_so)), 0.0
                ),
            }
        loss_c = lam["dis"] * sum(c_terms.values())
        opt_c.zero_grad(set_to_none=True)
        loss_c.backward()
        opt_c.step()
        lr = opt_g.param_groups[0]["lr"]
        sched_g.step()
        sched_c.step()

        for k, v in {**terms, **c_terms}.items():
            running[k] = running.get(k, 0.0) + float(v.detach())
        running["n"] = running.get("n", 0.0) + 1
        if not np.isfinite(float(loss_g.detach())) or not np.isfinite(float(loss_c.detach())):
            raise FloatingPointError(
                f"Cycle-StarNet training diverged at iteration {it + 1} (generator loss {float(loss_g)}, critic "
                f"loss {float(loss_c)}); lower cyclestarnet.training.lr (now {settings.lr})"
            )
        done = it + 1
        if done % settings.validate_every == 0 or done == settings.iterations:
            n = running.pop("n")
            row = {"iteration": float(done), "lr": float(lr), **{k: v / n for k, v in running.items()}}
            row.update(paired_validation(model, *val, synth_error=e_s))
            history.append(row)
            running = {}
            if progress is not None:
                progress(done, row)
        if resume_path is not None and (done % settings.checkpoint_every == 0 or done == settings.iterations):
            state = {
                "kind": _RESUME_KIND,
                "run_key": key,
                "iteration": done,
                "model": model.state_dict(),
                "opt_g": opt_g.state_dict(),
                "opt_c": opt_c.state_dict(),
                "sched_g": sched_g.state_dict(),
                "sched_c": sched_c.state_dict(),
                "history": list(history),
                "running": dict(running),
            }
            save_checkpoint(state, resume_path, resume_record or {})
    return model.eval(), history


def _detach(z: torch.Tensor | None) -> torch.Tensor | None:
    return None if z is None else z.detach()


_MODEL_KIND = "cyclestarnet"


def save_cyclestarnet(
    path: str | os.PathLike,
    model: CycleStarNet,
    settings: TrainingSettings,
    scale: Any,
    history: list[dict[str, float]],
    provenance: Mapping[str, Any],
) -> Path:
    """The trained network with everything needed to use it: its shape, the flux standardisation (two
    scalars) and the training settings and history."""
    state = {
        "kind": _MODEL_KIND,
        "network": model.settings.as_dict(),
        "training": asdict(settings),
        "flux_scale": {"mean": float(scale.mean), "scale": float(scale.scale)},
        "model": model.state_dict(),
        "history": list(history),
    }
    return save_checkpoint(state, path, provenance)


def load_cyclestarnet(
    path: str | os.PathLike, device: str | torch.device = "cpu"
) -> tuple[CycleStarNet, Any]:
    """(model in eval mode, :class:`~latentsky.cyclestarnet.lines.FluxScale`) from :func:`save_cyclestarnet`."""
    from latentsky.cyclestarnet.lines import FluxScale

    state, _ = load_checkpoint(path, map_location=str(device))
    if state.get("kind") != _MODEL_KIND:
        raise ValueError(f"{path}: not a Cycle-StarNet model file (kind {state.get('kind')!r})")
    model = CycleStarNet(NetworkSettings(**state["network"]))
    model.load_state_dict(state["model"])
    return model.to(device).eval(), FluxScale(**state["flux_scale"])
