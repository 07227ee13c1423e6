"""PELS-VAE's settings (paper 000 Sec. 3, Table 2): the classes, the physical parameters, the network
hyperparameters (:class:`PelsVaeConfig`) and the two models of Sec. 4.2 (:data:`MODELS`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from latentsky.config import dataclass_from_dict

__all__ = [
    "CLASSES",
    "SEQ_ARCHS",
    "LR_SCHEDULES",
    "PHYSICS_COLUMNS",
    "SIGMA_FLOOR",
    "PelsVaeConfig",
    "MODELS",
    "network_config",
]

#: The eight OGLE-III classes of paper 000 (Table 1), in the fixed order of the one-hot encoding.
CLASSES: tuple[str, ...] = ("ACEP", "CEP", "DSCT", "ECL", "ELL", "LPV", "RRLYR", "T2CEP")
#: Table 2: seq_arch ∈ {TCN, GRU, LSTM}.
SEQ_ARCHS = ("tcn", "gru", "lstm")
#: Table 2: lr_sch ∈ {None, Exponential, Cosine, Plateau}.
LR_SCHEDULES = ("none", "exponential", "cosine", "plateau")
#: Columns of the physical parameters of cVAE-P (Sec. 4.2), in the order of the encoder's input.
PHYSICS_COLUMNS = ("teff", "abs_g", "period")
#: Lower bound on the *scaled* measurement error in the loss. With the training scale of a few magnitudes
#: (see :class:`LightCurveScaler`) it is ~0.3 mmag, five times below the best OGLE-III errors (~1.5 mmag),
#: so it never reweights real data; it only keeps a zero or corrupt error (and a sigmoid output that
#: underflows) from dividing by zero in eq. 4.
SIGMA_FLOOR = 1e-4


@dataclass(frozen=True)
class PelsVaeConfig:
    """Every hyperparameter of PELS-VAE. Defaults are Table 2's best values (paper scale).

    Attributes
    ----------
    seq_arch : "tcn", "gru" or "lstm" (Table 2 best: TCN).
    h_size : hidden units of the TCN / RNN (best 48).
    z_dim : latent dimension (best 4; Sec. 3.2).
    beta : KL weight β of eq. 3–4 (best 0.75).
    dropout : dropout probability p_drop (best 0.2), in the TCN blocks, the encoder's dense layers and
        between stacked RNN layers.
    batch_size : b_size (best 128).
    lr : Adam learning rate (best 1e-3).
    lr_schedule : "none", "exponential", "cosine" (best) or "plateau"; stepped once per epoch.
    lr_gamma : decay factor of the "exponential" (per epoch) and "plateau" (per plateau) schedules; the
        paper does not give it.
    lr_patience : epochs without improvement of the validation loss before "plateau" decays the lr.
    n_blocks, kernel_size, dilation : TCN temporal blocks (best 5), kernel size (best 5), dilation base d
        (2; block i has dilation d**i).
    weight_norm : weight normalisation of the TCN convolutions (as in Bai et al. 2018).
    n_layers : stacked RNN layers (GRU/LSTM only).
    fc_sizes : widths of the encoder's dense layers after the sequential network (not given in the paper).
    epochs : training epochs (paper: 100).
    t_len : nominal sequence length (Sec. 2.1: 300); Δt is multiplied by it to be O(1).
    classes : class names in one-hot order.
    use_physics : cVAE-P (T_eff, M_G, log10 P into the encoder, Sec. 4.2) instead of cVAE (Sec. 4.1).
    phase_tags : tag each encoder and decoder step with its phase as well as Δt (module docstring).
    """

    seq_arch: str = "tcn"
    h_size: int = 48
    z_dim: int = 4
    beta: float = 0.75
    dropout: float = 0.2
    batch_size: int = 128
    lr: float = 1e-3
    lr_schedule: str = "cosine"
    lr_gamma: float = 0.95
    lr_patience: int = 5
    n_blocks: int = 5
    kernel_size: int = 5
    dilation: int = 2
    weight_norm: bool = True
    n_layers: int = 1
    fc_sizes: tuple[int, ...] = (64, 32)
    epochs: int = 100
    t_len: int = 300
    classes: tuple[str, ...] = CLASSES
    use_physics: bool = False
    phase_tags: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "fc_sizes", tuple(int(s) for s in self.fc_sizes))
        object.__setattr__(self, "classes", tuple(str(c) for c in self.classes))
        if self.seq_arch not in SEQ_ARCHS:
            raise ValueError(f"pelsvae seq_arch must be one of {SEQ_ARCHS}, got {self.seq_arch!r}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"pelsvae lr_schedule must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}")
        for name in ("h_size", "z_dim", "batch_size", "n_blocks", "kernel_size", "dilation", "n_layers"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"pelsvae {name} must be ≥ 1, got {getattr(self, name)}")
        if self.epochs < 0 or self.t_len < 1 or self.lr_patience < 0:
            raise ValueError(f"pelsvae epochs ≥ 0, t_len ≥ 1, lr_patience ≥ 0 required, got {self}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"pelsvae dropout must be in [0, 1), got {self.dropout}")
        if self.beta < 0 or self.lr <= 0 or not 0 < self.lr_gamma <= 1:
            raise ValueError(
                f"pelsvae needs beta ≥ 0, lr > 0, 0 < lr_gamma ≤ 1, got {self.beta}, {self.lr}, {self.lr_gamma}"
            )
        if any(s < 1 for s in self.fc_sizes):
            raise ValueError(f"pelsvae fc_sizes must be positive, got {self.fc_sizes}")
        if not self.classes or len(set(self.classes)) != len(self.classes):
            raise ValueError(f"pelsvae classes must be non-empty and unique, got {self.classes}")

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def receptive_field(self) -> int | None:
        """Steps a TCN output sees (1 + 2(k − 1) Σ_i d^i); None for a GRU/LSTM, which sees every step."""
        if self.seq_arch != "tcn":
            return None
        return 1 + 2 * (self.kernel_size - 1) * sum(self.dilation**i for i in range(self.n_blocks))

    @property
    def n_physics(self) -> int:
        return len(PHYSICS_COLUMNS) if self.use_physics else 0

    def as_dict(self) -> dict[str, Any]:
        """Plain dict (lists for tuples) for config files and checkpoints."""
        d = asdict(self)
        d["fc_sizes"] = list(self.fc_sizes)
        d["classes"] = list(self.classes)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> PelsVaeConfig:
        """Inverse of :meth:`as_dict`; keys left out take their defaults, unknown keys are an error."""
        return dataclass_from_dict(cls, d, "pelsvae config")


#: The two generative models of Sec. 4.2 → whether the encoder sees the physical parameters.
MODELS: dict[str, bool] = {"cvae": False, "cvae_p": True}


def network_config(
    network: Mapping[str, Any], model: str, overrides: Mapping[str, Any] | None = None
) -> PelsVaeConfig:
    """The ``pelsvae.network`` config block, with ``pelsvae.model_overrides[model]`` on top, →
    :class:`PelsVaeConfig` for ``model`` (cvae | cvae_p). Unknown keys are an error naming them."""
    if model not in MODELS:
        raise ValueError(f"unknown PELS-VAE model {model!r}; expected one of {list(MODELS)}")
    return PelsVaeConfig.from_dict({**dict(network), **dict(overrides or {}), "use_physics": MODELS[model]})
