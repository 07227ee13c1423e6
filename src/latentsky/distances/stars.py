"""What the distance model reads of a star, the catalog flags, and the CMD point at a distance (paper 004).

Shared by both posterior schemes (:mod:`latentsky.distances.grid`, the default, and the paper's importance
sampling in :mod:`latentsky.distances.importance`) and by training (:mod:`latentsky.distances.training`).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import numpy as np
import torch

from latentsky.extinction import CRANMER2020, GaiaExtinctionCoefficients

#: Lindegren et al. (2018): DR2 parallaxes are on average 0.029 mas too small; paper 004 adds it globally.
DR2_PARALLAX_OFFSET_MAS = 0.029
#: Quantiles written to the catalog (as fractions).
CATALOG_QUANTILES = (0.05, 0.16, 0.50, 0.84, 0.95)
#: Points per flow call: bounds memory (≈ 8.4 kB per point for the paper's 35 × 500 flow on a CPU).
FLOW_CHUNK_POINTS = 65536


class DistanceFlag(enum.IntFlag):
    """Why a star has no posterior, or what to be careful about when it has one.

    Bits 1–16 and 128 leave the star without a posterior; the others annotate a computed posterior. A bit
    names who is at fault: the star's data (1, 2, 4, 32, 128, 1024), the dust map (8, 16, 256, 512), the
    paper's sampler (64), or a calibration the pipeline had to fall back from (2048, 4096) — those two
    say nothing against the star itself.
    """

    NO_PARALLAX = 1  # parallax or its error missing, or error ≤ 0
    MISSING_G = 2
    MISSING_BP_RP = 4  # no BP/RP photometry: the CMD density needs both colours
    OUTSIDE_DUST_FOOTPRINT = 8  # south of the dust map's footprint (Bayestar: dec < −30°)
    IN_DUST_HOLE = 16  # inside the footprint, but the map has no data there
    RUWE_ABOVE_LIMIT = 32  # posterior computed, but the astrometry is suspect (RUWE ≥ 1.4)
    LOW_EFFECTIVE_SAMPLES = 64  # paper scheme only: fewer than MIN_EFFECTIVE_SAMPLES effective draws
    # At no distance the parallax allows (±10σ) and the grid spans does the dereddened CMD point fall
    # inside the CMD model's support: the star's photometry and parallax disagree with every star trained on.
    OUTSIDE_CMD_SUPPORT = 128
    DUST_UNRELIABLE_DISTANCE = 256  # posterior median outside the map's reliable distance range there
    DUST_NOT_CONVERGED = 512  # the map's line-of-sight fit did not converge in this pixel
    # Grid only: the colours lay outside the CMD support at every distance but within 3σ of their
    # photometric errors; the posterior uses them moved onto the support's edge.
    COLOURS_MOVED_TO_SUPPORT = 1024
    # The star's DR2 RUWE was normalised with an empirical u0 from its own table, for want of ESA's table
    # (Lindegren et al. 2018, GAIA-C3-TN-LU-LL-124; sources.gaia.*.u0_table): the RUWE cut of training and
    # RUWE_ABOVE_LIMIT are approximate for it (biased where the table is crowded or selected).
    RUWE_EMPIRICAL_U0 = 2048
    # distances.parallax_zero_point lindegren2021: the star's G, colour or solution type lies outside the
    # calibration of Lindegren et al. (2021) (6 < G < 21; ν_eff 1.1–1.9 for 5p, pseudocolour 1.24–1.72
    # for 6p) or an input is missing; its parallax got the global offset instead.
    ZERO_POINT_OUTSIDE_CALIBRATION = 4096


#: Flags that leave a star without a posterior.
NO_POSTERIOR = (
    DistanceFlag.NO_PARALLAX
    | DistanceFlag.MISSING_G
    | DistanceFlag.MISSING_BP_RP
    | DistanceFlag.OUTSIDE_DUST_FOOTPRINT
    | DistanceFlag.IN_DUST_HOLE
    | DistanceFlag.OUTSIDE_CMD_SUPPORT
)


@dataclass
class Stars:
    """The inputs the model needs, one entry per star (parallax already offset-corrected), magnitudes."""

    ra: np.ndarray
    dec: np.ndarray
    parallax: np.ndarray  # mas
    parallax_error: np.ndarray  # mas
    g_mag: np.ndarray  # apparent G
    bp_rp: np.ndarray
    bp_g: np.ndarray
    phot_var: np.ndarray = field(default=None)  # type: ignore[assignment]  # σ²_G + σ²_{bp−rp} + σ²_{bp−g}
    # (N, 3) σ_G, σ_BP, σ_RP in mag, for the noise-convolved CMD likelihood (latentsky.distances.noise).
    phot_err: np.ndarray = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        n = len(self.ra)
        if self.phot_var is None:
            self.phot_var = np.zeros(n)
        if self.phot_err is None:
            self.phot_err = np.zeros((n, 3))
        for name in ("dec", "parallax", "parallax_error", "g_mag", "bp_rp", "bp_g", "phot_var", "phot_err"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"Stars.{name} has {len(getattr(self, name))} entries, expected {n}")

    def __len__(self) -> int:
        return len(self.ra)

    def subset(self, index: np.ndarray) -> Stars:
        return Stars(**{k: np.asarray(getattr(self, k))[index] for k in self.__dataclass_fields__})


def usable(stars: Stars) -> np.ndarray:
    """Flags that depend only on the star's own measurements (no dust, no model)."""
    flags = np.zeros(len(stars), dtype=np.int64)
    bad_plx = ~np.isfinite(stars.parallax) | ~np.isfinite(stars.parallax_error) | ~(stars.parallax_error > 0)
    flags[bad_plx] |= DistanceFlag.NO_PARALLAX
    flags[~np.isfinite(stars.g_mag)] |= DistanceFlag.MISSING_G
    flags[~np.isfinite(stars.bp_rp) | ~np.isfinite(stars.bp_g)] |= DistanceFlag.MISSING_BP_RP
    return flags


def absolute_cmd(
    g_mag: np.ndarray,
    bp_rp: np.ndarray,
    bp_g: np.ndarray,
    distance_pc: np.ndarray,
    reddening: np.ndarray,
    coeffs: GaiaExtinctionCoefficients = CRANMER2020,
) -> np.ndarray:
    """(g, bp−rp, bp−g): dereddened absolute G and colours; broadcasts, last axis of the result is 3."""
    g = g_mag - coeffs.a_g * reddening - 5.0 * np.log10(distance_pc / 10.0)
    c1 = bp_rp - coeffs.e_bp_rp * reddening
    c2 = bp_g - coeffs.e_bp_g * reddening
    g, c1, c2 = np.broadcast_arrays(g, c1, c2)
    return np.stack([g, c1, c2], axis=-1)


def flow_log_prob(
    flow: torch.nn.Module,
    points: np.ndarray,
    device: str | torch.device = "cpu",
    chunk_points: int = FLOW_CHUNK_POINTS,
) -> np.ndarray:
    """log P_CMD for points of shape (..., 3), eval mode, no gradients; −inf outside the flow's support.

    Evaluated ``chunk_points`` at a time so memory stays bounded whatever the batch of stars.
    """
    shape = points.shape[:-1]
    flat = points.reshape(-1, 3)
    density = flow.log_density if hasattr(flow, "log_density") else flow.log_prob
    out = np.empty(flat.shape[0])
    with torch.inference_mode():
        for start in range(0, flat.shape[0], chunk_points):
            x = torch.as_tensor(flat[start : start + chunk_points], dtype=torch.float32, device=device)
            out[start : start + chunk_points] = density(x).double().cpu().numpy()
    return out.reshape(shape)


def support_box(flow: torch.nn.Module) -> tuple[np.ndarray, np.ndarray]:
    """The (low, high) corners of the box where the CMD model has support (±inf when it has no box)."""
    low = getattr(flow, "support_low", None)
    high = getattr(flow, "support_high", None)
    if low is None or high is None:
        return np.full(3, -np.inf), np.full(3, np.inf)
    return low.detach().cpu().double().numpy(), high.detach().cpu().double().numpy()
