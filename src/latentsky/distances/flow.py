"""The colour–magnitude density P(g, bp−rp, bp−g) as a masked autoregressive flow (paper 004, Sec. 3.1).

Cranmer et al. model the dereddened absolute CMD with a MAF (Papamakarios et al. 2017) built from blocks
MADE → BatchNorm → Reverse; 35 blocks of 500 hidden units at paper scale. We build it from nflows' own
transforms rather than re-implementing them:

* MADE — ``MaskedAffineAutoregressiveTransform`` with one hidden feed-forward block, i.e. three masked
  dense layers (in → hidden → hidden → 2·features), as the paper describes MADE;
* BatchNorm — nflows' flow batch-norm (Dinh et al. 2016), which uses batch statistics in training mode
  and running averages in eval mode;
* Reverse — ``ReversePermutation``.

Weights are Xavier-normal initialised (paper Sec. 3.3). Inputs are standardised by a fixed affine map
fitted to the training data (stored as buffers, so a checkpoint is self-contained); its log-Jacobian is
included, so :meth:`CMDFlow.log_prob` is a normalised density in (g, bp−rp, bp−g) magnitudes.

**Support.** Far outside its training data a flow's density is an extrapolation of its affine layers and
need not keep falling: we measured a demo-size model giving M_G = −30 a higher density than M_G = −10.
The posterior multiplies the density by π(d)·d² (see :mod:`latentsky.distances.posterior`), and d² grows
by 10¹⁴ between 1 kpc and 10 Mpc, so such a tail captures low-SNR stars at absurd distances.
:meth:`CMDFlow.log_density` — what the posterior uses — is therefore zero outside the box the training
data support (per feature, between weighted 0.05 % and 99.95 % quantiles widened by a margin; set by
:meth:`CMDFlow.set_support`). Training uses the unrestricted :meth:`CMDFlow.log_prob`.
"""

from __future__ import annotations

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

#: The three CMD coordinates, in this order: absolute G, and the two dereddened colours.
FEATURES = ("g", "bp_rp", "bp_g")
#: Tail mass left out on each side when setting the supported box, and the margin added beyond it (mag).
SUPPORT_QUANTILE = 5e-4
SUPPORT_MARGIN_MAG = 1.0


@dataclass(frozen=True)
class FlowArchitecture:
    """Size of the MAF. Paper scale: 35 blocks × 500 hidden units (paper 004 Sec. 3.3)."""

    n_blocks: int = 35
    hidden_features: int = 500

    def __post_init__(self) -> None:
        if self.n_blocks < 1 or self.hidden_features < 1:
            raise ValueError(f"flow architecture needs n_blocks ≥ 1 and hidden_features ≥ 1, got {self}")


class CMDFlow(nn.Module):
    """Normalised density over (g, bp−rp, bp−g).

    Parameters
    ----------
    architecture : number of MADE→BatchNorm→Reverse blocks and hidden units per MADE.
    feature_mean, feature_std : shape (3,), the standardisation fitted to training data (magnitudes).
    """

    def __init__(
        self,
        architecture: FlowArchitecture,
        feature_mean: np.ndarray | torch.Tensor,
        feature_std: np.ndarray | torch.Tensor,
    ) -> None:
        super().__init__()
        self.architecture = architecture
        n = len(FEATURES)
        self.register_buffer("feature_mean", torch.as_tensor(feature_mean, dtype=torch.float32).reshape(n))
        self.register_buffer("feature_std", torch.as_tensor(feature_std, dtype=torch.float32).reshape(n))
        if not torch.all(self.feature_std > 0):
            raise ValueError(f"feature_std must be positive, got {self.feature_std.tolist()}")
        self.register_buffer("support_low", torch.full((n,), -torch.inf))
        self.register_buffer("support_high", torch.full((n,), torch.inf))
        blocks: list[nn.Module] = []
        for _ in range(architecture.n_blocks):
            blocks.append(
                MaskedAffineAutoregressiveTransform(
                    features=n,
                    hidden_features=architecture.hidden_features,
                    num_blocks=1,
                    use_residual_blocks=False,
                )
            )
            blocks.append(BatchNorm(n))
            blocks.append(ReversePermutation(n))
        self.flow = Flow(CompositeTransform(blocks), StandardNormal([n]))
        self.apply(_xavier_normal)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log P(g, bp−rp, bp−g) per row of ``x`` (shape (N, 3), magnitudes); shape (N,)."""
        z = (x - self.feature_mean) / self.feature_std
        return self.flow.log_prob(z) - torch.log(self.feature_std).sum()

    def log_density(self, x: torch.Tensor) -> torch.Tensor:
        """:meth:`log_prob` inside the supported box, −inf outside it (see the module docstring)."""
        inside = torch.all((x >= self.support_low) & (x <= self.support_high), dim=1)
        return torch.where(inside, self.log_prob(x), torch.full_like(x[:, 0], -torch.inf))

    def set_support(
        self, points: np.ndarray, weights: np.ndarray, margin_mag: float = SUPPORT_MARGIN_MAG
    ) -> None:
        """Set the supported box from training points (N, 3) and their weights (N,).

        Rows with a non-finite point or a non-positive/non-finite weight are left out: one NaN would make
        the weighted quantiles NaN and collapse the box onto a single point.
        """
        ok = np.all(np.isfinite(points), axis=1) & np.isfinite(weights) & (weights > 0)
        if not np.any(ok):
            raise ValueError(
                "no training point with finite magnitudes and a positive weight: cannot set the support"
            )
        points, weights = points[ok], weights[ok]
        low, high = [], []
        for k in range(points.shape[1]):
            order = np.argsort(points[:, k])
            cdf = np.cumsum(weights[order]) / np.sum(weights)
            low.append(points[order[np.searchsorted(cdf, SUPPORT_QUANTILE)], k] - margin_mag)
            high.append(
                points[order[min(np.searchsorted(cdf, 1 - SUPPORT_QUANTILE), len(order) - 1)], k] + margin_mag
            )
        self.support_low.copy_(torch.as_tensor(low, dtype=torch.float32))
        self.support_high.copy_(torch.as_tensor(high, dtype=torch.float32))

    def sample(self, n: int) -> torch.Tensor:
        """Draw ``n`` CMD points (eval mode), shape (n, 3)."""
        return self.flow.sample(n) * self.feature_std + self.feature_mean

    def describe(self) -> dict:
        return {
            **asdict(self.architecture),
            "feature_mean": self.feature_mean.tolist(),
            "feature_std": self.feature_std.tolist(),
        }


def _xavier_normal(module: nn.Module) -> None:
    # Paper 004 Sec. 3.3: "Xavier initialization ... with a normal distribution". MaskedLinear subclasses
    # nn.Linear and applies its mask in forward, so initialising the full weight matrix is safe.
    if isinstance(module, nn.Linear):
        nn.init.xavier_normal_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def build_flow_from_state(state: dict) -> CMDFlow:
    """Rebuild a :class:`CMDFlow` from the ``model`` entry of a checkpoint written by the training rule."""
    arch = FlowArchitecture(**state["architecture"])
    model = CMDFlow(arch, state["feature_mean"], state["feature_std"])
    model.load_state_dict(state["state_dict"])
    model.eval()
    return model


def flow_state(model: CMDFlow) -> dict:
    """What :func:`build_flow_from_state` needs, as plain tensors and numbers."""
    return {
        "architecture": asdict(model.architecture),
        "support_low": model.support_low.detach().cpu().numpy().tolist(),
        "support_high": model.support_high.detach().cpu().numpy().tolist(),
        "feature_mean": model.feature_mean.detach().cpu().numpy().tolist(),
        "feature_std": model.feature_std.detach().cpu().numpy().tolist(),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }
