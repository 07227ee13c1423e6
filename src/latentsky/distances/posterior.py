"""Distance posteriors for a table of stars: the catalog's single entry point (paper 004, Sec. 3.2, 4.2).

``PosteriorSettings.method`` chooses the scheme:

* ``grid`` (default) — the exact posterior on a per-star log-distance grid, dust taken at each distance
  from one line-of-sight lookup (:mod:`latentsky.distances.grid`);
* ``paper`` — paper 004's importance sampling with its iterated dust distance
  (:mod:`latentsky.distances.importance`), kept to reproduce the paper and scored beside the grid.

The grid's CMD likelihood is, by default, the CMD density convolved with each star's photometric noise
when the model carries a noise model (``photometric_noise: convolve``, :mod:`latentsky.distances.noise`);
``ignore`` and the paper's scheme use the noise-free density, as paper 004 does.

Both use the same inputs, prior (:mod:`latentsky.distances.prior`), flags and output columns. Flags that
do not depend on the scheme are set here: the star's own data (:func:`~latentsky.distances.stars.usable`),
the dust map's coverage, the RUWE limit and the map's reliability at the posterior median.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from latentsky.distances.dust import DustSource
from latentsky.distances.grid import GridSettings, grid_catalog_columns, grid_posterior
from latentsky.distances.importance import PaperSettings, paper_catalog_columns
from latentsky.distances.noise import PHOTOMETRIC_NOISE_MODES, NoisyCMDFlow, cmd_log_density
from latentsky.distances.prior import DistancePrior
from latentsky.distances.stars import (
    FLOW_CHUNK_POINTS,
    NO_POSTERIOR,
    DistanceFlag,
    Stars,
    support_box,
    usable,
)
from latentsky.extinction import CRANMER2020, GaiaExtinctionCoefficients

POSTERIOR_METHODS = ("grid", "paper")


@dataclass(frozen=True)
class PosteriorSettings:
    """The ``distances.posterior`` config block (config/schema.yaml documents each key)."""

    method: str = "grid"
    prior: DistancePrior = DistancePrior()
    batch_size: int = 4096
    chunk_points: int = FLOW_CHUNK_POINTS
    n_quantiles: int = 0  # > 0: also the 100-quantile product (grid only), a list column dist_quantiles
    grid: GridSettings = field(default_factory=GridSettings)
    paper: PaperSettings = field(default_factory=PaperSettings)
    # "ignore" (paper 004) or "convolve" (the workflow's default: config/schema.yaml), which needs a model
    # trained with a noise model (latentsky.distances.noise).
    photometric_noise: str = "ignore"

    def __post_init__(self) -> None:
        if self.photometric_noise not in PHOTOMETRIC_NOISE_MODES:
            raise ValueError(
                f"posterior photometric_noise must be one of {PHOTOMETRIC_NOISE_MODES}, "
                f"got {self.photometric_noise!r}"
            )
        if self.method not in POSTERIOR_METHODS:
            raise ValueError(f"posterior method must be one of {POSTERIOR_METHODS}, got {self.method!r}")
        if self.batch_size < 1 or self.chunk_points < 1 or self.n_quantiles < 0:
            raise ValueError(f"invalid posterior settings: {self}")
        if self.n_quantiles and self.method != "grid":
            raise ValueError("posterior n_quantiles needs method 'grid' (the paper's scheme has only draws)")

    @property
    def flow_evaluations_per_star(self) -> int:
        """Upper bound for a star with a posterior (the grid evaluates only nodes inside the support)."""
        if self.method == "paper":
            return self.paper.flow_evaluations_per_star
        return self.grid.flow_nodes_per_star  # per dust profile: × the map's samples for dust_samples all


POSTERIOR_COLUMNS = (
    "dist_mean",
    "dist_std",
    "dist_q05",
    "dist_q16",
    "dist_q50",
    "dist_q84",
    "dist_q95",
    "reddening",
    "reddening_err",
    "abs_g",
    "bp_rp0",
    "bp_g0",
    "effective_samples",
)


def distance_posteriors(
    stars: Stars,
    flow: torch.nn.Module,
    dust: DustSource,
    settings: PosteriorSettings,
    rng: np.random.Generator,
    *,
    ruwe: np.ndarray | None = None,
    ruwe_limit: float = 1.4,
    device: str | torch.device = "cpu",
    coeffs: GaiaExtinctionCoefficients = CRANMER2020,
    progress: Callable[[int], None] | None = None,
) -> dict[str, np.ndarray]:
    """Posterior summaries for every star; one entry per input star, NaN where there is no posterior.

    Returns the :data:`POSTERIOR_COLUMNS` (plus ``dist_quantiles`` (N, n_quantiles) when asked for),
    ``flags`` (:class:`DistanceFlag` bits), ``has_posterior``, ``flow_evaluations`` (the count made) and
    ``n_processed`` (stars the scheme ran on).
    """
    n = len(stars)
    flags = usable(stars)
    cov = dust.coverage(stars.ra, stars.dec)
    flags[cov.outside_footprint] |= DistanceFlag.OUTSIDE_DUST_FOOTPRINT
    flags[cov.in_hole] |= DistanceFlag.IN_DUST_HOLE
    if ruwe is not None:
        flags[np.asarray(ruwe, dtype=float) >= ruwe_limit] |= DistanceFlag.RUWE_ABOVE_LIMIT
    out = {name: np.full(n, np.nan) for name in POSTERIOR_COLUMNS}
    if settings.n_quantiles:
        out["dist_quantiles"] = np.full((n, settings.n_quantiles), np.nan)
    todo = np.flatnonzero((flags & NO_POSTERIOR) == 0)
    noise = settings.photometric_noise if settings.method == "grid" else "ignore"
    if noise == "convolve" and not isinstance(flow, NoisyCMDFlow) and hasattr(flow, "feature_mean"):
        raise ValueError(
            "posterior photometric_noise: convolve needs a model trained with a noise model "
            "(distances.noise_model.steps > 0); retrain it, or set posterior.photometric_noise: ignore"
        )
    flow.eval()
    evaluations = 0
    box = support_box(flow)
    for start in range(0, len(todo), settings.batch_size):
        idx = todo[start : start + settings.batch_size]
        batch = stars.subset(idx)
        log_cmd = cmd_log_density(flow, batch, device, settings.chunk_points, noise)

        def log_density(points: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
            nonlocal evaluations
            evaluations += int(np.prod(points.shape[:-1]))
            return log_cmd(points, rows)  # noqa: B023 - called within this iteration only

        prior = settings.prior.parameters(batch.ra, batch.dec)
        profiles = dust.profiles(batch.ra, batch.dec)
        if settings.method == "grid":
            post, _ = grid_posterior(batch, profiles, prior, log_density, box, settings.grid, coeffs)
            columns, batch_flags = grid_catalog_columns(batch, post, coeffs, settings.n_quantiles)
        else:
            columns, batch_flags = paper_catalog_columns(
                batch, log_density, dust, prior, settings.paper, rng, coeffs
            )
        for name, values in columns.items():
            out[name][idx] = values
        # The map's own reliability where the posterior puts the star (Green et al. 2019, Sec. 4).
        dm50 = 5.0 * np.log10(columns["dist_q50"]) - 5.0
        with np.errstate(invalid="ignore"):
            unreliable = (dm50 < profiles.dm_reliable_min) | (dm50 > profiles.dm_reliable_max)
        batch_flags[np.isfinite(dm50) & unreliable] |= DistanceFlag.DUST_UNRELIABLE_DISTANCE
        batch_flags[~profiles.converged] |= DistanceFlag.DUST_NOT_CONVERGED
        flags[idx] |= batch_flags
        if progress is not None:
            progress(len(idx))
    out["flags"] = flags
    out["has_posterior"] = (flags & NO_POSTERIOR) == 0
    out["flow_evaluations"] = np.asarray(evaluations)
    out["n_processed"] = np.asarray(len(todo))  # stars the scheme ran on (no input flag stopped them)
    return out
