"""The Cycle-StarNet network (O'Briain et al. 2021, paper 002, §3.1 and Table 1): UNIT-style deterministic
auto-encoders for a synthetic and an observed spectral domain with a shared latent space, a split latent for
what only the observed domain has, and two critics — written here in torch (the authors' code needs
``distutils`` and ``torch.set_default_tensor_type``, both gone from current Python/torch).

Blocks (filters N, kernel K, stride S; LeakyReLU(0.1) after every convolution unless noted):

=============  ==============================================================================================
E_synth, E_obs Conv(32,7,4), Conv(64,7,4)                                     — the domain encoders
E_sh           Conv(128,7,4), Conv(256,7,2), Conv(512,7,2), Conv(z_sh,1,1) → InstanceNorm (no affine) → z_sh
E_sp           Conv(32,7,4), Conv(32,7,2), Conv(32,7,2), Conv(z_sp,1,1) → InstanceNorm → z_sp (obs only)
D_sh, D_sp     transposed convolutions mirroring E_sh, E_sp (their filters in reverse order)
D_synth, D_obs DConv(64,7,4), DConv(32,7,4), Conv(1,1,1) (no activation); D_obs reads [D_sh(z_sh), D_sp(z_sp)]
C_synth, C_obs x: Conv(16,32,64,128,256; K7, S4); z: Conv 1×1 (32,64,128,256,512); flatten, concat, Linear→1
=============  ==============================================================================================

At ``width_factor`` 1.0 these are Table 1's widths (``configs/kurucz_to_apogee_1.ini``: z_sh 25 channels,
z_sp 4 for §4.1, 1 for §4.2); the CPU demo scales every width by 1/8 (spec B2.3). Convolutions have no
padding, so only some spectrum lengths map onto a whole latent: :func:`spectrum_length` gives the length for a
latent length m (m = 24 → 7,167 pixels, the ASPCAP grid less 47; m = 4 → 2,047) and the network refuses any
other. The critics return logits: the sigmoid of the paper is folded into ``BCEWithLogitsLoss`` (the same
objective, stable in float16/bfloat16).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from latentsky.config import dataclass_from_dict

__all__ = [
    "CycleStarNet",
    "NetworkSettings",
    "latent_length",
    "spectrum_length",
]


def spectrum_length(latent: int, strides: Sequence[int], kernel: int = 7) -> int:
    """The input length that valid (unpadded) convolutions with ``strides`` and ``kernel`` map onto exactly
    ``latent`` positions, and transposed convolutions map back: L ← (L − 1)·s + K, applied from the last layer
    to the first (paper Table 1: 24 → 7,167 for strides 4, 4, 4, 2, 2)."""
    length = int(latent)
    for s in reversed(list(strides)):
        length = (length - 1) * int(s) + int(kernel)
    return length


def latent_length(n_pixels: int, strides: Sequence[int], kernel: int = 7) -> int:
    """The latent length of an ``n_pixels`` spectrum; a ``ValueError`` naming the nearest valid lengths when the
    convolutions would drop pixels (the decoder could not give the spectrum back)."""
    length = int(n_pixels)
    for s in strides:
        if length < kernel:
            break
        length = (length - kernel) // int(s) + 1
    if length >= 1 and spectrum_length(length, strides, kernel) == n_pixels:
        return length
    below = max(1, length)
    lo, hi = spectrum_length(below, strides, kernel), spectrum_length(below + 1, strides, kernel)
    if lo > n_pixels:
        lo, hi = None, lo
    raise ValueError(
        f"a spectrum of {n_pixels} pixels does not fit the network's convolutions (kernel {kernel}, strides "
        f"{list(strides)}); the nearest lengths that do are {lo} and {hi} pixels"
    )


@dataclass
class NetworkSettings:
    """The network's shape (paper Table 1 at ``width_factor`` 1.0, ``shared_z_filters`` 25).

    Attributes
    ----------
    n_pixels : spectrum length; must satisfy :func:`latent_length` (2,047 or 7,167 for the defaults).
    width_factor : multiplies every convolution width (the demo's 0.125 is spec B2.3's CPU size).
    shared_z_filters, split_z_filters : channels of z_sh and z_sp (paper 25 and 4 [§4.1] / 1 [§4.2]);
        ``split_z_filters`` 0 drops the split latent.
    domain_filters…critic_z_filters : the per-block widths before ``width_factor``; strides as Table 1.
    kernel : the convolutions' kernel length (7).
    leaky_slope : LeakyReLU slope of every block (0.1, the authors' ``activation = leakyrelu``).
    """

    n_pixels: int = 2047
    width_factor: float = 0.125
    shared_z_filters: int = 12
    split_z_filters: int = 1
    domain_filters: list[int] = field(default_factory=lambda: [32, 64])
    domain_strides: list[int] = field(default_factory=lambda: [4, 4])
    shared_filters: list[int] = field(default_factory=lambda: [128, 256, 512])
    shared_strides: list[int] = field(default_factory=lambda: [4, 2, 2])
    split_filters: list[int] = field(default_factory=lambda: [32, 32, 32])
    split_strides: list[int] = field(default_factory=lambda: [4, 2, 2])
    critic_x_filters: list[int] = field(default_factory=lambda: [16, 32, 64, 128, 256])
    critic_x_strides: list[int] = field(default_factory=lambda: [4, 4, 4, 4, 4])
    critic_z_filters: list[int] = field(default_factory=lambda: [32, 64, 128, 256, 512])
    kernel: int = 7
    leaky_slope: float = 0.1

    def __post_init__(self) -> None:
        if len(self.split_strides) != len(self.shared_strides):
            raise ValueError("split_strides must have as many layers as shared_strides (z_sh and z_sp align)")
        if self.width_factor <= 0:
            raise ValueError(f"width_factor must be > 0, got {self.width_factor}")
        self.latent_length  # noqa: B018 - validates n_pixels against the convolution arithmetic

    @classmethod
    def from_config(cls, config: dict[str, Any] | None) -> NetworkSettings:
        """From the ``cyclestarnet.network`` config mapping; an unknown key is a one-line error naming it."""
        return dataclass_from_dict(cls, config or {}, "cyclestarnet.network")

    def width(self, n: int) -> int:
        return max(1, round(n * self.width_factor))

    @property
    def latent_length(self) -> int:
        return latent_length(self.n_pixels, [*self.domain_strides, *self.shared_strides], self.kernel)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _init(module: nn.Module) -> None:
    # Xavier-uniform convolution weights and biases of 0.01, as the authors' init_weights.
    if isinstance(module, (nn.Conv1d, nn.ConvTranspose1d)):
        nn.init.xavier_uniform_(module.weight)
        nn.init.constant_(module.bias, 0.01)


def _encoder(
    c_in: int, filters: Sequence[int], strides: Sequence[int], k: int, slope: float, z: int | None
) -> nn.Sequential:
    layers: list[nn.Module] = []
    for c_out, s in zip(filters, strides, strict=True):
        layers += [nn.Conv1d(c_in, c_out, k, s), nn.LeakyReLU(slope)]
        c_in = c_out
    if z is not None:
        layers += [nn.Conv1d(c_in, z, 1, 1), nn.InstanceNorm1d(z)]
    return nn.Sequential(*layers)


def _decoder(
    c_in: int, filters: Sequence[int], strides: Sequence[int], k: int, slope: float, to_spectrum: bool
) -> nn.Sequential:
    # The mirror of an encoder: its filters and strides in reverse order, as transposed convolutions.
    layers: list[nn.Module] = []
    for c_out, s in zip(reversed(filters), reversed(strides), strict=True):
        layers += [nn.ConvTranspose1d(c_in, c_out, k, s), nn.LeakyReLU(slope)]
        c_in = c_out
    if to_spectrum:
        layers.append(nn.Conv1d(c_in, 1, 1, 1))
    return nn.Sequential(*layers)


class Critic(nn.Module):
    """A domain critic (paper §3.1.3): a spectrum branch of strided convolutions and a latent branch of 1×1
    convolutions, flattened and joined by one linear layer. Returns the logit of "a within-domain
    reconstruction" (the authors' critics see reconstructions as real, not inputs; footnote 3)."""

    def __init__(self, settings: NetworkSettings, z_channels: int, z_length: int):
        super().__init__()
        w, k, slope = settings.width, settings.kernel, settings.leaky_slope
        layers: list[nn.Module] = []
        c_in, length = 1, settings.n_pixels
        for c_out, s in zip(settings.critic_x_filters, settings.critic_x_strides, strict=True):
            layers += [nn.Conv1d(c_in, w(c_out), k, s), nn.LeakyReLU(slope)]
            c_in, length = w(c_out), (length - k) // s + 1
        if length < 1:
            raise ValueError(
                f"the critic's {len(settings.critic_x_strides)} stride-{settings.critic_x_strides[0]} convolutions "
                f"need more than {settings.n_pixels} pixels; use fewer critic_x_filters"
            )
        self.x_branch = nn.Sequential(*layers)
        layers, c = [], z_channels
        for c_out in settings.critic_z_filters:
            layers += [nn.Conv1d(c, w(c_out), 1, 1), nn.LeakyReLU(slope)]
            c = w(c_out)
        self.z_branch = nn.Sequential(*layers)
        self.out = nn.Linear(c_in * length + c * z_length, 1)

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        hx = self.x_branch(x.unsqueeze(1)).flatten(1)
        hz = self.z_branch(z).flatten(1)
        return self.out(torch.cat([hx, hz], dim=1))


class CycleStarNet(nn.Module):
    """Encoders, decoders and critics of paper 002 (Fig. 2). Spectra are (batch, n_pixels) tensors of
    standardised flux; latents (batch, channels, latent_length).

    The four mappings of §3.1: ``X_s→s = z_to_synth(synth_to_z(x_s))``,
    ``X_o→o = z_to_obs(*obs_to_z(x_o))``, ``X_s→o = z_to_obs(synth_to_z(x_s), z_sp)`` with the z_sp of an
    observed spectrum, ``X_o→s = z_to_synth(obs_to_z(x_o)[0])``.
    """

    def __init__(self, settings: NetworkSettings):
        super().__init__()
        self.settings = settings
        w, k, slope = settings.width, settings.kernel, settings.leaky_slope
        dom = [w(c) for c in settings.domain_filters]
        sh = [w(c) for c in settings.shared_filters]
        sp = [w(c) for c in settings.split_filters]
        self.use_split = settings.split_z_filters > 0
        self.encoder_synth = _encoder(1, dom, settings.domain_strides, k, slope, None)
        self.encoder_obs = _encoder(1, dom, settings.domain_strides, k, slope, None)
        self.encoder_sh = _encoder(dom[-1], sh, settings.shared_strides, k, slope, settings.shared_z_filters)
        self.decoder_sh = _decoder(settings.shared_z_filters, sh, settings.shared_strides, k, slope, False)
        obs_channels = sh[0]
        if self.use_split:
            self.encoder_sp = _encoder(
                dom[-1], sp, settings.split_strides, k, slope, settings.split_z_filters
            )
            self.decoder_sp = _decoder(settings.split_z_filters, sp, settings.split_strides, k, slope, False)
            obs_channels += sp[0]
        self.decoder_synth = _decoder(sh[0], dom, settings.domain_strides, k, slope, True)
        self.decoder_obs = _decoder(obs_channels, dom, settings.domain_strides, k, slope, True)
        m = settings.latent_length
        self.critic_synth = Critic(settings, settings.shared_z_filters, m)
        self.critic_obs = Critic(settings, settings.shared_z_filters + settings.split_z_filters, m)
        self.apply(_init)

    # --- the generator side -------------------------------------------------------------------------------
    def _check(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 2 or x.shape[1] != self.settings.n_pixels:
            raise ValueError(
                f"spectra of shape {tuple(x.shape)}; this network takes (batch, {self.settings.n_pixels})"
            )
        return x

    def synth_to_z(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder_sh(self.encoder_synth(self._check(x).unsqueeze(1)))

    def obs_to_z(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        hidden = self.encoder_obs(self._check(x).unsqueeze(1))
        return self.encoder_sh(hidden), (self.encoder_sp(hidden) if self.use_split else None)

    def z_to_synth(self, z_sh: torch.Tensor) -> torch.Tensor:
        return self.decoder_synth(self.decoder_sh(z_sh)).squeeze(1)

    def z_to_obs(self, z_sh: torch.Tensor, z_sp: torch.Tensor | None) -> torch.Tensor:
        hidden = self.decoder_sh(z_sh)
        if self.use_split:
            if z_sp is None:
                raise ValueError("this network has a split latent: z_to_obs needs z_sp")
            if (
                z_sp.shape[0] != z_sh.shape[0]
            ):  # one z_sp (e.g. the mean of observed stars) for every spectrum
                z_sp = z_sp.expand(z_sh.shape[0], -1, -1)
            hidden = torch.cat([hidden, self.decoder_sp(z_sp)], dim=1)
        return self.decoder_obs(hidden).squeeze(1)

    def synth_to_obs(self, x_s: torch.Tensor, z_sp: torch.Tensor | None) -> torch.Tensor:
        """T_s→o: a synthetic spectrum as the observed domain would show it, with the given split latent."""
        return self.z_to_obs(self.synth_to_z(x_s), z_sp)

    def obs_to_synth(self, x_o: torch.Tensor) -> torch.Tensor:
        """T_o→s: an observed spectrum as the synthetic model would give it."""
        return self.z_to_synth(self.obs_to_z(x_o)[0])

    # --- the critics ----------------------------------------------------------------------------------------
    def critic_synth_logit(self, x: torch.Tensor, z_sh: torch.Tensor) -> torch.Tensor:
        return self.critic_synth(x, z_sh)

    def critic_obs_logit(
        self, x: torch.Tensor, z_sh: torch.Tensor, z_sp: torch.Tensor | None
    ) -> torch.Tensor:
        return self.critic_obs(x, z_sh if z_sp is None else torch.cat([z_sh, z_sp], dim=1))

    def generator_parameters(self) -> list[nn.Parameter]:
        return [p for name, p in self.named_parameters() if not name.startswith("critic_")]

    def critic_parameters(self) -> list[nn.Parameter]:
        return [p for name, p in self.named_parameters() if name.startswith("critic_")]
