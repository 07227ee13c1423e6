"""What Cycle-StarNet learns about missing lines (paper 002 §3.2.1, §4.2, Figs. 10–11): the transfer of a
synthetic spectrum, the response functions and the recovery and attribution of the masked features.

* **Transfer** T_s→o of a synthetic spectrum in flux units: the emulator's spectrum with the line mask set to
  1.0 (the synthetic domain's missing lines), standardised, mapped by the network with a split latent z_sp (one
  star's own, or the mean over observed stars as the authors do for Fig. 10), back to flux.
* **Response functions** (eq. 8): J_synth,j = ∂Payne_masked(y)/∂y_j and J_s→o,j = ∂T_s→o(Payne_masked(y))/∂y_j;
  J_diff = J_s→o − J_synth is what the network adds where the synthetic model is blind. By autograd
  (``torch.func.jacrev``) by default; the authors' notebook takes forward differences of +0.05 in physical units
  (``method="finite_difference"``), and the two agree (a test).
* **Recovery** of a masked feature k with pixels P_k at one star: R_k = Σ_P (P_m − T) / Σ_P (P_m − x_true), the
  absorption the transfer puts back over the absorption the synthetic model lacks (1 = the line fully restored,
  0 = still missing). On an *unmasked* strong feature the same numerator over the feature's own absorption
  Σ_P (1 − P_m) is the false fill (should be ≈ 0): the spec's form with x_true − P_m in the denominator would divide
  by ≈ 0 there.
* **Attribution** of feature k: score_j = Σ_{p∈P_k} −J_diff,j(p) for each element j (a line deepens with its
  element's abundance, so the right element has the largest positive score); the prediction is the argmax.
  CN features are scored "C or N" as well — by design their depth depends on [C/H] + [N/H] (Fig. 11).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from latentsky.cyclestarnet.model import CycleStarNet

__all__ = [
    "FluxScale",
    "attribute_features",
    "feature_recovery",
    "feature_sums",
    "mean_split_latent",
    "reference_star",
    "recovery_over_stars",
    "response_functions",
    "transfer_flux",
]


@dataclass(frozen=True)
class FluxScale:
    """The domains' standardisation x = (flux − mean)/scale (two scalars over all synthetic training spectra,
    as the authors' ``mean_and_std_PAYNE_specs.npy``)."""

    mean: float
    scale: float

    def to_x(self, flux: torch.Tensor) -> torch.Tensor:
        return (flux - self.mean) / self.scale

    def to_flux(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale + self.mean


def _masked(flux: torch.Tensor, line_mask: torch.Tensor) -> torch.Tensor:
    # The synthetic domain's missing lines: masked pixels set to the continuum (1.0) before standardising.
    return torch.where(line_mask, torch.ones_like(flux), flux)


def transfer_flux(
    model: CycleStarNet,
    synth_flux: torch.Tensor,
    line_mask: torch.Tensor,
    scale: FluxScale,
    z_sp: torch.Tensor | None,
) -> torch.Tensor:
    """T_s→o(Payne_masked) in flux units for synthetic spectra ``synth_flux`` (batch, P) (unmasked emulator
    output); ``z_sp`` one per spectrum or a single one for all."""
    x = scale.to_x(_masked(synth_flux, line_mask))
    return scale.to_flux(model.synth_to_obs(x, z_sp))


def response_functions(
    model: CycleStarNet,
    spectrum: Callable[[torch.Tensor], torch.Tensor],
    y: torch.Tensor,
    line_mask: torch.Tensor,
    scale: FluxScale,
    z_sp: torch.Tensor | None,
    *,
    method: str = "autograd",
    delta: float = 0.05,
) -> dict[str, np.ndarray]:
    """J_synth, J_transfer (= J_s→o) and J_diff, each (n_labels, P), at the physical labels ``y`` (n_labels,).

    ``spectrum`` maps a batch of physical labels (b, n_labels) to unmasked flux (b, P) — the emulator.
    ``method`` ``autograd`` (exact) or ``finite_difference`` (forward differences of ``delta`` in physical units,
    divided by ``delta``: the authors' notebook)."""
    model.eval()
    dtype = next(model.parameters()).dtype  # float64 for a model cast with .double() (exact comparisons)
    y = y.detach().to(dtype).reshape(1, -1)

    def synth(yy: torch.Tensor) -> torch.Tensor:
        return _masked(spectrum(yy), line_mask)

    def transferred(yy: torch.Tensor) -> torch.Tensor:
        return transfer_flux(model, spectrum(yy), line_mask, scale, z_sp)

    if method == "autograd":
        j_s = torch.func.jacrev(lambda v: synth(v.unsqueeze(0))[0])(y[0])  # (P, n_labels)
        j_t = torch.func.jacrev(lambda v: transferred(v.unsqueeze(0))[0])(y[0])
        j_s, j_t = j_s.T, j_t.T
    elif method == "finite_difference":
        steps = y + delta * torch.eye(y.shape[1], dtype=dtype)
        with torch.no_grad():
            j_s = (synth(steps) - synth(y)) / delta
            j_t = (transferred(steps) - transferred(y)) / delta
    else:
        raise ValueError(f"response method {method!r} not one of autograd, finite_difference")
    j_s, j_t = j_s.detach().numpy().astype(np.float64), j_t.detach().numpy().astype(np.float64)
    return {"J_synth": j_s, "J_transfer": j_t, "J_diff": j_t - j_s}


def feature_recovery(
    features: pd.DataFrame,
    transferred: np.ndarray,
    synth_masked: np.ndarray,
    observed_true: np.ndarray,
) -> pd.DataFrame:
    """Per strong feature (rows of the line mask's feature table: ``first_pixel``, ``last_pixel`` inclusive,
    ``masked``), at one star: ``missing_absorption`` Σ_P (P_m − x_true), ``recovered_absorption`` Σ_P (P_m − T),
    ``recovery_ratio`` their ratio (masked features), ``own_absorption`` Σ_P (1 − P_m) and ``false_fill``
    recovered/own (unmasked features). Spectra are 1-D flux arrays on the network's pixels."""
    rows = []
    for first, last, masked in features[["first_pixel", "last_pixel", "masked"]].itertuples(index=False):
        sl = slice(int(first), int(last) + 1)
        missing = float(np.sum(synth_masked[sl] - observed_true[sl]))
        recovered = float(np.sum(synth_masked[sl] - transferred[sl]))
        own = float(np.sum(1.0 - synth_masked[sl]))
        rows.append(
            {
                "missing_absorption": missing,
                "recovered_absorption": recovered,
                "recovery_ratio": recovered / missing if masked and missing > 0 else np.nan,
                "own_absorption": own,
                "false_fill": recovered / own if not masked and own > 0 else np.nan,
            }
        )
    return pd.DataFrame(rows, index=features.index)


def attribute_features(
    features: pd.DataFrame, j_diff: np.ndarray, label_names: Sequence[str], elements: Sequence[str]
) -> pd.DataFrame:
    """Per feature: the element scores Σ_{p∈P_k} −J_diff,j(p) over the abundance labels of ``elements``
    (``label_names`` says which row of ``j_diff`` is which, e.g. ``[Fe/H]`` for ``Fe``), the attributed element
    (argmax), the top three with their scores, and whether it is right (``correct``; ``correct_c_or_n`` counts C
    and N as one for C and N features)."""
    rows = [label_names.index(f"[{e}/H]") for e in elements]
    scores = np.stack(
        [
            -j_diff[rows, int(a) : int(b) + 1].sum(axis=1)
            for a, b in features[["first_pixel", "last_pixel"]].itertuples(index=False)
        ]
    )
    order = np.argsort(-scores, axis=1)
    names = np.asarray(elements)
    out = pd.DataFrame(index=features.index)
    out["attributed_element"] = names[order[:, 0]]
    for rank in range(min(3, len(elements))):
        out[f"top{rank + 1}_element"] = names[order[:, rank]]
        out[f"top{rank + 1}_score"] = scores[np.arange(len(scores)), order[:, rank]]
    truth = features["element"].to_numpy()
    out["correct"] = out["attributed_element"].to_numpy() == truth
    cn = np.isin(truth, ("C", "N"))
    out["correct_c_or_n"] = np.where(cn, np.isin(out["attributed_element"], ("C", "N")), out["correct"])
    out["in_top2"] = (out["top1_element"].to_numpy() == truth) | (out["top2_element"].to_numpy() == truth)
    return out


def feature_sums(features: pd.DataFrame, spectra: np.ndarray) -> np.ndarray:
    """Σ over each feature's pixels of ``spectra`` (n, P) → (n, n_features), by cumulative sums (no loop over
    stars)."""
    cs = np.concatenate([np.zeros((len(spectra), 1)), np.cumsum(spectra, axis=1)], axis=1)
    first = features["first_pixel"].to_numpy(dtype=int)
    last = features["last_pixel"].to_numpy(dtype=int)
    return cs[:, last + 1] - cs[:, first]


def recovery_over_stars(
    features: pd.DataFrame, transferred: np.ndarray, synth_masked: np.ndarray, observed_true: np.ndarray
) -> np.ndarray:
    """R_k of every masked feature at every star (n, n_features; NaN for unmasked features or where nothing
    is missing) — the reference-giant statistic of :func:`feature_recovery` over a population."""
    missing = feature_sums(features, synth_masked - observed_true)
    recovered = feature_sums(features, synth_masked - transferred)
    masked = features["masked"].to_numpy(dtype=bool)[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(masked & (missing > 0), recovered / missing, np.nan)


@dataclass
class ReferenceStar:
    """One star through the synthetic model and the network (the authors' Fig. 10 reference giant): its labels,
    the emulator's full spectrum, the masked synthetic spectrum, the transfer with ``z_sp`` and the split latent
    used, all flux on the network's pixels."""

    labels: torch.Tensor
    full: np.ndarray
    synth_masked: np.ndarray
    transferred: np.ndarray
    z_sp: torch.Tensor | None


@torch.no_grad()
def mean_split_latent(
    model: CycleStarNet, scale: FluxScale, observed_flux: np.ndarray
) -> torch.Tensor | None:
    """The mean z_sp of observed spectra (the authors take 1,000 validation spectra for Fig. 10); None without a
    split latent."""
    _, z_sp = model.obs_to_z(scale.to_x(torch.as_tensor(observed_flux, dtype=torch.float32)))
    return None if z_sp is None else z_sp.mean(0, keepdim=True)


@torch.no_grad()
def reference_star(
    model: CycleStarNet,
    spectrum: Callable[[torch.Tensor], torch.Tensor],
    labels: np.ndarray,
    line_mask: np.ndarray,
    scale: FluxScale,
    z_sp: torch.Tensor | None,
) -> ReferenceStar:
    """:class:`ReferenceStar` for physical ``labels`` (n_labels,), ``spectrum`` the emulator."""
    y = torch.as_tensor(np.asarray(labels), dtype=torch.float32)
    full = spectrum(y[None])
    mask = torch.as_tensor(line_mask)
    transferred = transfer_flux(model, full, mask, scale, z_sp)
    full_np = full.double().numpy()[0]
    return ReferenceStar(y, full_np, np.where(line_mask, 1.0, full_np), transferred.double().numpy()[0], z_sp)
