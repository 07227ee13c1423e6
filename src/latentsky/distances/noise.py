"""The CMD density seen through each star's photometric noise (an extension of paper 004).

Paper 004's posterior (Sec. 3.2) evaluates the CMD density at the star's *measured* colours, as if they had
no error. For a faint star that is far from true: at G ≈ 20.5, σ(BP−RP) ≈ 0.3 mag, wider than the main
sequence, so the density at the measured point is the wrong likelihood and the posterior comes out too
narrow. Measured on the demo's simulated survey (4,000 stars, RUWE < 1.4): with the simulation's own,
noise-free CMD the grid's 68 % interval held the true distance for 38 % of the stars at parallax SNR < 2;
convolving that CMD with each star's photometric noise raised it to 56 %.

The likelihood the posterior needs is the convolution

    P_noisy(x | σ) = ∫ P_CMD(x − ε) N(ε | 0, Σ(σ)) dε,

with ε the error of (g, BP−RP, BP−G) — the three bands' errors σ_G, σ_BP, σ_RP are independent, so
ε = (δG, δBP − δRP, δBP − δG) and the colours' errors are correlated through BP. Evaluating the integral by
Monte Carlo at every grid node would multiply the cost by the number of draws; instead a second flow,
conditioned on (ln σ_G, ln σ_BP, ln σ_RP), is trained once on draws of x + ε with x from the CMD flow and
σ from the training stars' own errors (any pairing is right: the target is the convolution at each σ).
The posterior then evaluates one conditional density per node, at the cost of one flow evaluation.

``posterior.photometric_noise: ignore`` gives the paper's likelihood (the CMD flow itself).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch
from nflows.distributions.normal import StandardNormal
from nflows.flows.base import Flow
from nflows.transforms.autoregressive import MaskedAffineAutoregressiveTransform
from nflows.transforms.base import CompositeTransform
from nflows.transforms.normalization import BatchNorm
from nflows.transforms.permutations import ReversePermutation
from torch import nn

from latentsky.distances.flow import CMDFlow, FlowArchitecture, build_flow_from_state
from latentsky.distances.stars import FLOW_CHUNK_POINTS, Stars, flow_log_prob

log = logging.getLogger(__name__)

#: Photometric errors (mag) are clipped to this range before they condition the noise model: below it the
#: convolution is the CMD itself to a thousandth of a magnitude, above it no Gaia colour is usable.
ERROR_RANGE_MAG = (1e-4, 1.0)
PHOTOMETRIC_NOISE_MODES = ("convolve", "ignore")


@dataclass(frozen=True)
class NoiseModelSettings:
    """Training of the noise-conditioned flow (``distances.noise_model``); ``steps: 0`` trains none."""

    steps: int = 3000
    batch_size: int = 2048
    learning_rate: float = 1e-3
    n_pool: int = 400_000  # CMD-flow draws the batches are taken from
    uniform_error_fraction: float = 0.2  # of each batch: errors log-uniform over the stars' range

    def __post_init__(self) -> None:
        if self.steps < 0 or self.batch_size < 1 or self.n_pool < self.batch_size:
            raise ValueError(f"noise_model needs steps ≥ 0, batch_size ≥ 1, n_pool ≥ batch_size, got {self}")
        if not 0.0 <= self.uniform_error_fraction <= 1.0:
            raise ValueError(f"noise_model uniform_error_fraction must lie in [0, 1], got {self}")

    def as_dict(self) -> dict:
        return asdict(self)


def photometric_errors(g_err: np.ndarray, bp_err: np.ndarray, rp_err: np.ndarray) -> np.ndarray:
    """(N, 3) errors σ_G, σ_BP, σ_RP (mag), non-finite or non-positive ones taken as the smallest error."""
    err = np.column_stack([g_err, bp_err, rp_err]).astype(float)
    return np.clip(np.where(np.isfinite(err) & (err > 0), err, ERROR_RANGE_MAG[0]), *ERROR_RANGE_MAG)


def cmd_noise(errors: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One draw of the (g, BP−RP, BP−G) error per row of ``errors`` (σ_G, σ_BP, σ_RP)."""
    d = rng.standard_normal(errors.shape) * errors
    return np.column_stack([d[:, 0], d[:, 1] - d[:, 2], d[:, 1] - d[:, 0]])


class NoisyCMDFlow(nn.Module):
    """P_noisy(g, bp−rp, bp−g | σ_G, σ_BP, σ_RP), beside the noise-free CMD flow it was distilled from.

    :meth:`log_density` is zero outside the CMD flow's support box, as :meth:`CMDFlow.log_density`."""

    def __init__(self, cmd: CMDFlow, architecture: FlowArchitecture | None = None) -> None:
        super().__init__()
        self.cmd = cmd
        self.architecture = architecture or cmd.architecture
        n = 3
        self.register_buffer("support_low", cmd.support_low.clone())
        self.register_buffer("support_high", cmd.support_high.clone())
        blocks: list[nn.Module] = []
        for _ in range(self.architecture.n_blocks):
            blocks.append(
                MaskedAffineAutoregressiveTransform(
                    features=n,
                    hidden_features=self.architecture.hidden_features,
                    context_features=3,
                    num_blocks=1,
                    use_residual_blocks=False,
                )
            )
            blocks.append(BatchNorm(n))
            blocks.append(ReversePermutation(n))
        self.flow = Flow(CompositeTransform(blocks), StandardNormal([n]))

    @staticmethod
    def context(errors: torch.Tensor) -> torch.Tensor:
        """ln σ mapped onto [−1, 1] over :data:`ERROR_RANGE_MAG`."""
        lo, hi = np.log(ERROR_RANGE_MAG[0]), np.log(ERROR_RANGE_MAG[1])
        ln = torch.log(torch.clamp(errors, *ERROR_RANGE_MAG))
        return (2.0 * ln - (lo + hi)) / (hi - lo)

    def log_prob(self, x: torch.Tensor, errors: torch.Tensor) -> torch.Tensor:
        """log P_noisy per row of ``x`` (N, 3) for the errors (N, 3) σ_G, σ_BP, σ_RP."""
        mean, std = self.cmd.feature_mean, self.cmd.feature_std
        z = (x - mean) / std
        return self.flow.log_prob(z, context=self.context(errors)) - torch.log(std).sum()

    def log_density(self, x: torch.Tensor, errors: torch.Tensor) -> torch.Tensor:
        inside = torch.all((x >= self.support_low) & (x <= self.support_high), dim=1)
        return torch.where(inside, self.log_prob(x, errors), torch.full_like(x[:, 0], -torch.inf))


def train_noise_model(
    cmd: CMDFlow,
    star_errors: np.ndarray,
    settings: NoiseModelSettings,
    seed: int,
    device: str | torch.device = "cpu",
    progress: Callable[[int, float], None] | None = None,
) -> tuple[NoisyCMDFlow, list[float]]:
    """Distil P_CMD ⊛ N(0, Σ(σ)) into a :class:`NoisyCMDFlow` (module docstring); ``star_errors`` (N, 3) are
    the training stars' σ_G, σ_BP, σ_RP. Returns the model (eval mode) and the loss per step."""
    device = torch.device(device)
    rng = np.random.default_rng([seed, 7])
    torch.manual_seed(seed + 7)
    cmd = cmd.to(device).eval()
    low, high = cmd.support_low.cpu().numpy(), cmd.support_high.cpu().numpy()
    pool: list[np.ndarray] = []
    with torch.inference_mode():  # draws inside the support box, which is what the posterior uses
        while sum(len(p) for p in pool) < settings.n_pool:
            x = cmd.sample(settings.n_pool).cpu().numpy().astype(float)
            pool.append(x[np.all(np.isfinite(x) & (x >= low) & (x <= high), axis=1)])
    points = np.concatenate(pool)[: settings.n_pool]
    errors = photometric_errors(*np.asarray(star_errors, dtype=float).T)
    ln_lo, ln_hi = np.log(errors).min(axis=0), np.log(errors).max(axis=0)
    model = NoisyCMDFlow(cmd).to(device)
    for p in model.cmd.parameters():
        p.requires_grad_(False)
    trainable = [p for name, p in model.named_parameters() if not name.startswith("cmd.")]
    optimizer = torch.optim.Adam(trainable, lr=settings.learning_rate)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, max(settings.steps, 1))
    losses: list[float] = []
    n_uniform = int(round(settings.uniform_error_fraction * settings.batch_size))
    for step in range(settings.steps):
        x = points[rng.integers(0, len(points), settings.batch_size)]
        sigma = errors[rng.integers(0, len(errors), settings.batch_size)]
        sigma[:n_uniform] = np.exp(rng.uniform(ln_lo, ln_hi, size=(n_uniform, 3)))
        noisy = x + cmd_noise(sigma, rng)
        model.train()
        model.cmd.eval()
        loss = -model.log_prob(
            torch.as_tensor(noisy, dtype=torch.float32, device=device),
            torch.as_tensor(sigma, dtype=torch.float32, device=device),
        ).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(float(loss.detach().cpu()))
        if progress is not None:
            progress(step + 1, losses[-1])
    model.eval()
    log.info("noise model: %d steps, final loss %.4f", settings.steps, losses[-1] if losses else np.nan)
    return model, losses


def noise_model_state(model: NoisyCMDFlow) -> dict:
    """What :func:`build_noise_model_from_state` needs (the CMD flow is stored beside it, not here)."""
    return {
        "architecture": asdict(model.architecture),
        "state_dict": {
            k: v.detach().cpu() for k, v in model.state_dict().items() if not k.startswith("cmd.")
        },
    }


def build_noise_model_from_state(state: dict, cmd_state: dict) -> NoisyCMDFlow:
    model = NoisyCMDFlow(build_flow_from_state(cmd_state), FlowArchitecture(**state["architecture"]))
    missing, unexpected = model.load_state_dict(state["state_dict"], strict=False)
    if unexpected or any(not k.startswith("cmd.") for k in missing):
        raise ValueError(f"noise model state does not fit its architecture: {missing=}, {unexpected=}")
    model.eval()
    return model


#: ``log_cmd(points, rows)``: log density of CMD points (P, 3); ``rows`` (P,) says which star of the batch
#: each point belongs to (its photometric errors), ``None`` for the noise-free density.
LogCMD = Callable[[np.ndarray, "np.ndarray | None"], np.ndarray]


def cmd_log_density(
    model: nn.Module,
    stars: Stars,
    device: str | torch.device = "cpu",
    chunk_points: int = FLOW_CHUNK_POINTS,
    photometric_noise: str = "convolve",
) -> LogCMD:
    """The CMD likelihood for a batch of ``stars``: with a :class:`NoisyCMDFlow` and ``convolve``, the
    density through each point's star's errors; otherwise (or when ``rows`` is None) the CMD flow's."""
    if photometric_noise not in PHOTOMETRIC_NOISE_MODES:
        raise ValueError(
            f"photometric_noise must be one of {PHOTOMETRIC_NOISE_MODES}, got {photometric_noise!r}"
        )
    noisy = isinstance(model, NoisyCMDFlow) and photometric_noise == "convolve"
    plain = model.cmd if isinstance(model, NoisyCMDFlow) else model
    errors = stars.phot_err

    def log_cmd(points: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        if not noisy or rows is None:
            return flow_log_prob(plain, points, device, chunk_points)
        flat = points.reshape(-1, 3)
        err = errors[np.broadcast_to(rows, points.shape[:-1]).reshape(-1)]
        out = np.empty(len(flat))
        with torch.inference_mode():
            for start in range(0, len(flat), chunk_points):
                sl = slice(start, start + chunk_points)
                x = torch.as_tensor(flat[sl], dtype=torch.float32, device=device)
                e = torch.as_tensor(err[sl], dtype=torch.float32, device=device)
                out[sl] = model.log_density(x, e).double().cpu().numpy()
        return out.reshape(points.shape[:-1])

    return log_cmd
