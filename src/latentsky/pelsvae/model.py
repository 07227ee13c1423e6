"""PELS-VAE: the conditional VAE of paper 000 (Martínez-Palomera et al.), Sec. 3, as a torch module.

The model (Sec. 3.1, Fig. 3):

* **Encoder.** A sequential network — a TCN (Bai et al. 2018) or a GRU/LSTM — reads the scaled light curve
  one observation at a time, as (scaled magnitude, scaled error, Δt). Its *last* time step's output is
  concatenated with the one-hot variability class and, for cVAE-P (Sec. 4.2), the standardised physical
  parameters (T_eff, M_G, log10 P); fully connected layers (ReLU + dropout) follow, then two heads give
  the mean μ and log-variance log σ² of the latent Gaussian (z_dim dimensions).
* **Decoder.** z (sampled with the reparameterisation trick, eq. 1) concatenated with the one-hot class is
  repeated over the time steps; each step is tagged with its time, and the same kind of sequential network
  (same hyperparameters) runs over the sequence; a fully connected layer and a sigmoid return two channels
  in [0, 1]: the scaled magnitude and the scaled error. Physical parameters enter the encoder only
  (Sec. 4.2: "concatenated to the label vector and provided to the encoder component").
* **Loss** (eq. 4): error-weighted MSE + β·KL(q(z|x) ‖ N(0, I)) + a KL term between the predicted and the
  true error distributions; see :func:`pelsvae_loss`.

Time tags. The paper says both that the latent vector is "concatenated with the observations times of the
light curve (as in Naul et al. 2018)" and that "each time step is tagged with the corresponding observed
difference in time Δt_i = t_i − t_{i−1}". We give the decoder both, the phase and Δt
(``PelsVaeConfig.phase_tags``, on by default), and the encoder reads them too (the issue's "magnitudes,
errors and times"): a causal TCN's output at step t sees only its receptive field (249 steps for the
paper's k = 5, d = 2, 5 blocks, shorter than t_len = 300), so from Δt alone it could not tell where in the
cycle a late step lies, and the encoder's last step could not place the features it sees in phase. The
phase also keeps generation at a cadence other than the training one (:func:`generate`) in
distribution, where Δt alone would not be. Choose a TCN whose receptive field
(:attr:`PelsVaeConfig.receptive_field`) covers most of t_len: the encoder summarises a curve by its last
step, which sees only that many points. Δt is multiplied by
``t_len`` so that a uniformly sampled curve has Δt ≈ 1 in network units.

Absolute phase carries no information in the training data: curves are folded at a fixed epoch and the
augmented copies are phase-shifted at random (Sec. 2.2), so the latent vector has to encode where in
phase a curve's features lie. Expect a plateau of several epochs before the model learns that.

Scaling. See :class:`LightCurveScaler`: one global affine map of (mag − per-curve median), fitted on the
training set, so that amplitudes stay comparable between curves.

Shapes: B light curves, T time steps (padded at the end to the longest curve; ``mask`` marks real points),
C classes. Units: magnitudes and errors in mag (scaled: dimensionless), phase in [0, 1), period in days,
T_eff in K, M_G in mag.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from latentsky.pelsvae.config import SIGMA_FLOOR, PelsVaeConfig
from latentsky.pelsvae.data import (
    LightCurveScaler,
    PelsVaeBatch,
    class_indices,
    frame_to_tensors,
    onehot_from_indices,
)

__all__ = [
    "TemporalBlock",
    "TCN",
    "RNN",
    "PelsVae",
    "pelsvae_loss",
    "encode",
    "sample_latents",
    "generate",
    "reconstruct",
    "build_pelsvae",
    "pelsvae_state",
]


# ---------------------------------------------------------------------------------------------------------
# Networks
# ---------------------------------------------------------------------------------------------------------


class _CausalConv1d(nn.Module):
    """Conv1d padded on the left by (k − 1)·d only, so output step t sees inputs ≤ t (Bai et al. 2018).

    Bai et al. pad both sides and "chomp" the right end; padding the left alone is the same operation.
    """

    def __init__(self, c_in: int, c_out: int, kernel_size: int, dilation: int, weight_norm: bool) -> None:
        super().__init__()
        self.left_pad = (kernel_size - 1) * dilation
        conv = nn.Conv1d(c_in, c_out, kernel_size, dilation=dilation)
        self.conv = nn.utils.parametrizations.weight_norm(conv) if weight_norm else conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (self.left_pad, 0)))


class TemporalBlock(nn.Module):
    """Residual block of two dilated causal convolutions, each followed by ReLU and dropout (Bai et al.).

    Input and output (B, C, T); a 1×1 convolution matches the residual's channels when they change.
    """

    def __init__(
        self, c_in: int, c_out: int, kernel_size: int, dilation: int, dropout: float, weight_norm: bool
    ) -> None:
        super().__init__()
        self.net = nn.Sequential(
            _CausalConv1d(c_in, c_out, kernel_size, dilation, weight_norm),
            nn.ReLU(),
            nn.Dropout(dropout),
            _CausalConv1d(c_out, c_out, kernel_size, dilation, weight_norm),
            nn.ReLU(),
            nn.Dropout(dropout),
        )
        self.downsample = nn.Conv1d(c_in, c_out, 1) if c_in != c_out else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        res = x if self.downsample is None else self.downsample(x)
        return torch.relu(self.net(x) + res)


class TCN(nn.Module):
    """Temporal convolutional network: ``n_blocks`` temporal blocks, block i with dilation ``dilation**i``.

    Maps (B, T, in_features) to (B, T, h_size); causal, so output step t depends on inputs ≤ t only,
    within :attr:`receptive_field` steps.
    """

    def __init__(
        self,
        in_features: int,
        h_size: int,
        n_blocks: int,
        kernel_size: int,
        dilation: int,
        dropout: float,
        weight_norm: bool = True,
    ) -> None:
        super().__init__()
        self.blocks = nn.Sequential(
            *(
                TemporalBlock(
                    in_features if i == 0 else h_size, h_size, kernel_size, dilation**i, dropout, weight_norm
                )
                for i in range(n_blocks)
            )
        )
        # Two convolutions per block, each reaching (k − 1)·d_i steps back.
        self.receptive_field = 1 + 2 * (kernel_size - 1) * sum(dilation**i for i in range(n_blocks))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x.transpose(1, 2)).transpose(1, 2)


class RNN(nn.Module):
    """GRU or LSTM, batch first: (B, T, in_features) → (B, T, h_size). Unidirectional, hence causal."""

    def __init__(self, kind: str, in_features: int, h_size: int, n_layers: int, dropout: float) -> None:
        super().__init__()
        cls = {"gru": nn.GRU, "lstm": nn.LSTM}[kind]
        # torch applies RNN dropout between stacked layers only (and warns for a single layer).
        self.rnn = cls(
            in_features, h_size, n_layers, batch_first=True, dropout=dropout if n_layers > 1 else 0.0
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rnn(x)[0]


def _sequence_net(config: PelsVaeConfig, in_features: int) -> nn.Module:
    if config.seq_arch == "tcn":
        return TCN(
            in_features,
            config.h_size,
            config.n_blocks,
            config.kernel_size,
            config.dilation,
            config.dropout,
            config.weight_norm,
        )
    return RNN(config.seq_arch, in_features, config.h_size, config.n_layers, config.dropout)


class PelsVae(nn.Module):
    """The conditional VAE of paper 000 Fig. 3 (cVAE, or cVAE-P with ``config.use_physics``).

    Time steps past a curve's length (padding) never influence real steps: both sequential networks are
    causal, the encoder reads the output at each curve's last real step, and the loss is masked.
    """

    #: Inputs per encoder step besides the time tags (:meth:`time_tags`): scaled magnitude and error.
    ENCODER_STEP_FEATURES = 2

    def __init__(self, config: PelsVaeConfig) -> None:
        super().__init__()
        self.config = config
        n_time = 3 if config.phase_tags else 1
        self.encoder_seq = _sequence_net(config, self.ENCODER_STEP_FEATURES + n_time)
        layers: list[nn.Module] = []
        width = config.h_size + config.n_classes + config.n_physics
        for size in config.fc_sizes:
            layers += [nn.Linear(width, size), nn.ReLU(), nn.Dropout(config.dropout)]
            width = size
        self.encoder_fc = nn.Sequential(*layers)
        self.fc_mu = nn.Linear(width, config.z_dim)
        self.fc_logvar = nn.Linear(width, config.z_dim)
        self.decoder_seq = _sequence_net(config, config.z_dim + config.n_classes + n_time)
        self.decoder_out = nn.Linear(config.h_size, 2)

    def time_tags(self, phase: torch.Tensor, dt: torch.Tensor) -> torch.Tensor:
        """(B, T, n) tags of each step: Δt·t_len, and with ``phase_tags`` (cos 2πφ, sin 2πφ).

        The phase enters as a point on the unit circle, continuous across the wrap φ = 1 → 0, so that a
        shift in phase — which the latent vector has to encode, since augmentation shifts curves at random
        — is a rotation of the tags rather than a jump.
        """
        tags = [dt * self.config.t_len]
        if self.config.phase_tags:
            angle = 2.0 * torch.pi * phase
            tags = [torch.cos(angle), torch.sin(angle), *tags]
        return torch.stack(tags, dim=-1)

    def init_output_levels(self, mag_level: float, err_level: float) -> None:
        """Start the decoder's sigmoid outputs at typical scaled values (biases = their logits).

        At sigmoid(0) = 0.5 the error channel would start ~100× above the typical scaled error, making
        the error-KL term of eq. 4 ~10⁴ per point and dominating the first hundreds of steps.
        """
        levels = torch.tensor([mag_level, err_level], dtype=torch.float32).clamp(1e-4, 1 - 1e-4)
        with torch.no_grad():
            self.decoder_out.bias.copy_(torch.logit(levels))

    def encode(
        self,
        mag: torch.Tensor,
        err: torch.Tensor,
        phase: torch.Tensor,
        dt: torch.Tensor,
        onehot: torch.Tensor,
        physics: torch.Tensor | None = None,
        lengths: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(μ, log σ²), each (B, z_dim), from scaled (B, T) inputs; ``phase`` and ``dt`` in phase units."""
        x = torch.cat([torch.stack([mag, err], dim=-1), self.time_tags(phase, dt)], dim=-1)
        h = self.encoder_seq(x)
        if lengths is None:
            last = h[:, -1]
        else:
            last = h[torch.arange(h.shape[0], device=h.device), lengths.to(h.device) - 1]
        parts = [last, onehot]
        if self.config.use_physics:
            if physics is None:
                raise ValueError("a use_physics PELS-VAE (cVAE-P) needs the physical parameters")
            parts.append(physics)
        feats = self.encoder_fc(torch.cat(parts, dim=-1))
        return self.fc_mu(feats), self.fc_logvar(feats)

    def decode(
        self, z: torch.Tensor, onehot: torch.Tensor, phase: torch.Tensor, dt: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Scaled (magnitude, error), each (B, T) in (0, 1), from z (B, z_dim) at the given phases (B, T)."""
        b, t = phase.shape
        cond = torch.cat([z, onehot], dim=-1)[:, None, :].expand(b, t, -1)
        tags = self.time_tags(phase, dt)
        out = torch.sigmoid(self.decoder_out(self.decoder_seq(torch.cat([cond, tags], dim=-1))))
        return out[..., 0], out[..., 1]

    def forward(
        self, batch: PelsVaeBatch, sample: bool = True, generator: torch.Generator | None = None
    ) -> dict[str, torch.Tensor]:
        """Encode, draw z = μ + σ ⊙ ε (eq. 1; z = μ if not ``sample``), decode at the batch's own phases.

        Returns ``mu``, ``logvar``, ``z`` (B, z_dim) and ``mag``, ``err`` (B, T), scaled.
        """
        mu, logvar = self.encode(
            batch.mag, batch.err, batch.phase, batch.dt, batch.onehot, batch.physics, batch.lengths
        )
        if sample:
            eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
            z = mu + torch.exp(0.5 * logvar) * eps
        else:
            z = mu
        mag, err = self.decode(z, batch.onehot, batch.phase, batch.dt)
        return {"mu": mu, "logvar": logvar, "z": z, "mag": mag, "err": err}


# ---------------------------------------------------------------------------------------------------------
# Loss (eq. 4)
# ---------------------------------------------------------------------------------------------------------


def pelsvae_loss(
    mag: torch.Tensor,
    mag_hat: torch.Tensor,
    err: torch.Tensor,
    err_hat: torch.Tensor,
    mu: torch.Tensor,
    logvar: torch.Tensor,
    *,
    beta: float,
    mask: torch.Tensor | None = None,
    sigma_floor: float = SIGMA_FLOOR,
) -> dict[str, torch.Tensor]:
    """The three terms of paper 000 eq. 4, on scaled quantities.

    Parameters
    ----------
    mag, mag_hat : (B, T) observed and reconstructed scaled magnitudes x, x̂.
    err, err_hat : (B, T) measurement errors σ and reconstructed errors σ̂ (scaled).
    mu, logvar : (B, z_dim) latent mean and log-variance of q(z|x).
    beta : KL weight β.
    mask : (B, T) bool, True on real points (default: all).
    sigma_floor : lower bound applied to σ and σ̂ (scaled units; see :data:`SIGMA_FLOOR`).

    Returns
    -------
    dict of scalar tensors
        ``recon``: mean over real points of ((x − x̂)/σ)², the first term of eq. 4.
        ``kl``: β · ½ Σ_dims (σ_z² + μ² − log σ_z² − 1), averaged over curves. Eq. 4 as printed reads
        −β Σ (σ² + μ² − log σ − 1): the sign (it is *added* to a loss that is minimised), the ½ and
        log σ² (not log σ) are typos of the standard closed form of KL(N(μ, σ²) ‖ N(0, 1)) (Kingma &
        Welling 2013), which we use. Averaging over curves matches the first term's normalisation.
        ``err_kl``: "D_KL(σ̂ ‖ σ)" of eq. 4, which the paper describes only as making the reconstructed
        errors follow the true ones. We read each error as the width of a zero-mean Gaussian noise
        distribution and take, per point, KL(N(0, σ̂²) ‖ N(0, σ²)) = log(σ/σ̂) + σ̂²/(2σ²) − ½ —
        zero iff σ̂ = σ, and scale-free (it depends on σ̂/σ only), so precise and noisy curves weigh
        the same — averaged over real points.
        ``total``: recon + kl + err_kl.
    """
    if mask is None:
        mask = torch.ones_like(mag, dtype=torch.bool)
    w = mask.to(mag.dtype)
    n_points = w.sum().clamp_min(1.0)
    sigma = err.clamp_min(sigma_floor)
    sigma_hat = err_hat.clamp_min(sigma_floor)
    recon = (((mag - mag_hat) / sigma) ** 2 * w).sum() / n_points
    kl = beta * 0.5 * (torch.exp(logvar) + mu**2 - logvar - 1.0).sum(dim=-1).mean()
    ratio2 = (sigma_hat / sigma) ** 2
    err_kl = ((-0.5 * torch.log(ratio2) + 0.5 * ratio2 - 0.5) * w).sum() / n_points
    return {"total": recon + kl + err_kl, "recon": recon, "kl": kl, "err_kl": err_kl}


# ---------------------------------------------------------------------------------------------------------
# Using a trained model
# ---------------------------------------------------------------------------------------------------------


def _chunks(n: int, size: int) -> list[np.ndarray]:
    return [np.arange(i, min(i + size, n)) for i in range(0, n, size)]


def encode(
    model: PelsVae,
    frame: pd.DataFrame,
    scaler: LightCurveScaler,
    *,
    device: str | torch.device = "cpu",
    batch_size: int = 1024,
    return_logvar: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Latent means μ (N, z_dim) of the light curves in ``frame`` (eval mode, no dropout).

    With ``return_logvar``, returns (μ, log σ²); draw samples from them with :func:`sample_latents`
    (paper Sec. 4.2 samples each latent vector 10 times for the latent→physics regression).
    """
    model = model.to(device).eval()
    batch = frame_to_tensors(frame, model.config, scaler, device)
    mus, logvars = [], []
    with torch.no_grad():
        for idx in _chunks(len(batch), batch_size):
            b = batch.index(idx)
            mu, logvar = model.encode(b.mag, b.err, b.phase, b.dt, b.onehot, b.physics, b.lengths)
            mus.append(mu.cpu().numpy())
            logvars.append(logvar.cpu().numpy())
    z_dim = model.config.z_dim
    mu = np.concatenate(mus) if mus else np.zeros((0, z_dim), dtype=np.float32)
    logvar = np.concatenate(logvars) if logvars else np.zeros((0, z_dim), dtype=np.float32)
    return (mu, logvar) if return_logvar else mu


def sample_latents(
    mu: np.ndarray, logvar: np.ndarray, n_samples: int, rng: np.random.Generator
) -> np.ndarray:
    """Draws z ~ N(μ, σ²) per curve: shape (N, n_samples, z_dim)."""
    mu = np.asarray(mu, dtype=np.float64)
    sd = np.exp(0.5 * np.asarray(logvar, dtype=np.float64))
    return mu[:, None, :] + sd[:, None, :] * rng.standard_normal((mu.shape[0], n_samples, mu.shape[1]))


def _decode_sorted(
    model: PelsVae,
    z: np.ndarray,
    onehot: np.ndarray,
    sorted_phase: np.ndarray,
    device: str | torch.device,
    batch_size: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Scaled decoder output (N, T) at ascending phases (N, T), with Δt_0 = 0 as in training."""
    dt = np.diff(sorted_phase, axis=1, prepend=sorted_phase[:, :1])
    model = model.to(device).eval()
    xs, ss = [], []
    with torch.no_grad():
        for idx in _chunks(len(z), batch_size):
            x, s = model.decode(
                torch.as_tensor(z[idx], device=device),
                torch.as_tensor(onehot[idx], device=device),
                torch.as_tensor(np.ascontiguousarray(sorted_phase[idx]), dtype=torch.float32, device=device),
                torch.as_tensor(dt[idx], dtype=torch.float32, device=device),
            )
            xs.append(x.cpu().numpy())
            ss.append(s.cpu().numpy())
    return np.concatenate(xs).astype(np.float64), np.concatenate(ss).astype(np.float64)


def generate(
    model: PelsVae,
    scaler: LightCurveScaler,
    var_class: str | Sequence[str],
    z: np.ndarray,
    phases: np.ndarray,
    median_mag: float | np.ndarray = 0.0,
    *,
    device: str | torch.device = "cpu",
    batch_size: int = 1024,
    sampling: str = "grid",
) -> tuple[np.ndarray, np.ndarray]:
    """Decode latent vectors into light curves at any phases (any cadence, Sec. 4.3).

    Parameters
    ----------
    model, scaler : trained model and its scaler.
    var_class : one class for all curves, or one per curve.
    z : (z_dim,) for one curve or (N, z_dim).
    phases : (T,) shared by all curves or (N, T), in any order; taken modulo 1 (phase = ((t − t0)/P) mod 1).
    median_mag : scalar or (N,) reference magnitude (mag); 0 gives magnitudes relative to the median.
    sampling : ``"grid"`` (default) decodes at ``t_len`` evenly spaced phases — the sampling density the
        decoder was trained at — and interpolates periodically to ``phases``; ``"direct"`` feeds the
        requested phases and their Δt to the decoder as they are. The decoder's Δt input makes its output
        depend on the density of the sampling: a demo model decoded at twice its training density gave
        time-reversed RR Lyrae. ``grid`` keeps every cadence in distribution; ``direct`` is the paper's
        literal reading, safe for cadences of about ``t_len`` points per cycle.

    Returns
    -------
    (mag, err) : (N, T) in mag (or (T,) for a 1-D ``z``), in the caller's order of ``phases``. The decoder
        runs on phases sorted ascending (the order it was trained on, Δt ≥ 0).
    """
    if sampling not in ("grid", "direct"):
        raise ValueError(f"sampling must be 'grid' or 'direct', got {sampling!r}")
    cfg = model.config
    z = np.asarray(z, dtype=np.float32)
    single = z.ndim == 1
    z = np.atleast_2d(z)
    if z.shape[1] != cfg.z_dim:
        raise ValueError(f"z must have {cfg.z_dim} columns (z_dim), got shape {z.shape}")
    n = z.shape[0]
    phases = np.mod(np.asarray(phases, dtype=np.float64), 1.0)
    if phases.ndim == 1:
        phases = np.broadcast_to(phases, (n, phases.shape[0]))
    if phases.shape[0] != n or phases.ndim != 2 or phases.shape[1] == 0:
        raise ValueError(f"phases must be (T,) or ({n}, T) with T ≥ 1, got shape {phases.shape}")
    if not np.all(np.isfinite(phases)):
        raise ValueError("phases must be finite")
    classes = [var_class] * n if isinstance(var_class, str) else list(var_class)
    if len(classes) != n:
        raise ValueError(f"var_class must be one class or {n} classes, got {len(classes)}")
    onehot = onehot_from_indices(class_indices(classes, cfg.classes), cfg.n_classes)
    if sampling == "grid":
        grid = (np.arange(cfg.t_len) + 0.5) / cfg.t_len
        x_grid, s_grid = _decode_sorted(
            model, z, onehot, np.broadcast_to(grid, (n, grid.size)), device, batch_size
        )
        x = np.stack([np.interp(phases[i], grid, x_grid[i], period=1.0) for i in range(n)])
        s = np.stack([np.interp(phases[i], grid, s_grid[i], period=1.0) for i in range(n)])
        mag, err = scaler.inverse_transform(x, s, median_mag)
        return (mag[0], err[0]) if single else (mag, err)
    order = np.argsort(phases, axis=1, kind="stable")
    sorted_ph = np.take_along_axis(phases, order, axis=1)
    x_sorted, s_sorted = _decode_sorted(model, z, onehot, sorted_ph, device, batch_size)
    x = np.empty_like(x_sorted)
    s = np.empty_like(s_sorted)
    np.put_along_axis(x, order, x_sorted, axis=1)
    np.put_along_axis(s, order, s_sorted, axis=1)
    mag, err = scaler.inverse_transform(x, s, median_mag)
    return (mag[0], err[0]) if single else (mag, err)


def reconstruct(
    model: PelsVae,
    frame: pd.DataFrame,
    scaler: LightCurveScaler,
    *,
    device: str | torch.device = "cpu",
    batch_size: int = 1024,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Decoder reconstructions (z = μ) of the curves in ``frame`` at their own phases (Sec. 4.1, Fig. 5).

    Returns lists of per-curve (magnitude, error) arrays in mag, including each curve's median magnitude.
    """
    model = model.to(device).eval()
    batch = frame_to_tensors(frame, model.config, scaler, device)
    mags: list[np.ndarray] = []
    errs: list[np.ndarray] = []
    with torch.no_grad():
        for idx in _chunks(len(batch), batch_size):
            b = batch.index(idx)
            out = model(b, sample=False)
            m, e = scaler.inverse_transform(out["mag"].cpu().numpy(), out["err"].cpu().numpy(), b.median_mag)
            for k, length in enumerate(b.lengths.cpu().numpy()):
                mags.append(m[k, :length])
                errs.append(e[k, :length])
    return mags, errs


def pelsvae_state(model: PelsVae, scaler: LightCurveScaler) -> dict[str, Any]:
    """Plain-container description of a model (config, weights, scaler) for a checkpoint."""
    return {
        "kind": "pelsvae",
        "config": model.config.as_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "scaler": scaler.as_dict(),
    }


def build_pelsvae(
    state: Mapping[str, Any], device: str | torch.device = "cpu"
) -> tuple[PelsVae, LightCurveScaler]:
    """Rebuild (model in eval mode, scaler) from :func:`pelsvae_state`'s dict."""
    if state.get("kind") != "pelsvae":
        raise ValueError(f"not a PELS-VAE model state (kind {state.get('kind')!r})")
    model = PelsVae(PelsVaeConfig.from_dict(state["config"]))
    model.load_state_dict(state["state_dict"])
    return model.to(device).eval(), LightCurveScaler.from_dict(state["scaler"])
