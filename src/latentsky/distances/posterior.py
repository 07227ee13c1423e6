"""Distance posteriors from parallax, photometry, dust and the learned CMD (paper 004, Sec. 2–3.2, 4.2).

The paper's scheme, for each star:

1. Draw parallaxes ϖ_i from the DR2 likelihood truncated to ϖ > 0 (eq. 1); d_i = 1/ϖ_i.
2. Start from d_best = mean(d_i). Repeat (5× in training, 10× in evaluation): query the dust map at
   d_best, deredden the photometry (A_G = 2.71 E, …), turn each d_i into an absolute magnitude g_i, weight
   each sample by the CMD density P(g_i, bp−rp, bp−g) and set d_best to the weighted mean (eq. 2).
3. The posterior is the weighted sample set {d_i, w_i}.

**The prior.** Sampling ϖ_i from the truncated normal is importance sampling with a proposal
q(d) ∝ N(1/d; ϖ_obs, σ_ϖ) · |dϖ/dd| = N(1/d; ϖ_obs, σ_ϖ) · d⁻², i.e. the parallax likelihood times an
implicit prior ∝ d⁻² (uniform in parallax). The target posterior is
p(d | data) ∝ N(1/d; ϖ_obs, σ_ϖ) · P_CMD(g(d), colours(d)) · π(d), so the correct importance weight is

    w_i ∝ P_CMD(g_i, …) · π(d_i) · d_i²,

and for the paper's catalog prior — flat over non-negative distance (Sec. 4.2) — w_i ∝ P_CMD · d_i².
Leaving out d_i² would silently use the uniform-in-parallax prior instead. Training follows eq. 2 as
printed (w_i ∝ P_CMD, the prior the paper trained with); evaluation uses the stated prior.

Everything here runs in batches of stars on the flow's device (CPU or GPU).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.stats import truncnorm

from latentsky.distances.dust import DustSource
from latentsky.extinction import CRANMER2020, GaiaExtinctionCoefficients

#: Lindegren et al. (2018): DR2 parallaxes are on average 0.029 mas too small; paper 004 adds it globally.
DR2_PARALLAX_OFFSET_MAS = 0.029
#: Quantiles written to the catalog (as fractions).
CATALOG_QUANTILES = (0.05, 0.16, 0.50, 0.84, 0.95)


class DistanceFlag(enum.IntFlag):
    """Why a star has no posterior (first five bits) or what to be careful about (the rest)."""

    NO_PARALLAX = 1  # parallax or its error missing, or error ≤ 0
    MISSING_G = 2
    MISSING_BP_RP = 4  # no BP/RP photometry: the CMD density needs both colours
    OUTSIDE_DUST_FOOTPRINT = 8  # south of the dust map's footprint (Bayestar: dec < −30°)
    IN_DUST_HOLE = 16  # inside the footprint, but the map has no data there
    RUWE_ABOVE_LIMIT = 32  # posterior computed, but the astrometry is suspect (RUWE ≥ 1.4)
    LOW_EFFECTIVE_SAMPLES = 64  # posterior computed from fewer than MIN_EFFECTIVE_SAMPLES effective samples
    OUTSIDE_CMD_SUPPORT = 128  # no posterior draw lands where the CMD model has support: no posterior


#: Flags that leave a star without a posterior.
NO_POSTERIOR = (
    DistanceFlag.NO_PARALLAX
    | DistanceFlag.MISSING_G
    | DistanceFlag.MISSING_BP_RP
    | DistanceFlag.OUTSIDE_DUST_FOOTPRINT
    | DistanceFlag.IN_DUST_HOLE
    | DistanceFlag.OUTSIDE_CMD_SUPPORT
)
MIN_EFFECTIVE_SAMPLES = 5.0


@dataclass(frozen=True)
class DistancePrior:
    """π(d) over d ≥ 0: ``flat`` (paper 004 catalog) or ``edsd``, d² exp(−d/L) (Bailer-Jones 2015)."""

    kind: str = "flat"
    length_kpc: float = 1.35

    def __post_init__(self) -> None:
        if self.kind not in ("flat", "edsd"):
            raise ValueError(f"distance prior kind must be 'flat' or 'edsd', got {self.kind!r}")
        if not self.length_kpc > 0:
            raise ValueError(f"distance prior length_kpc must be > 0, got {self.length_kpc}")

    def log_density(self, distance_pc: np.ndarray) -> np.ndarray:
        """log π(d) up to a constant."""
        d = np.asarray(distance_pc, dtype=float)
        if self.kind == "flat":
            return np.zeros_like(d)
        return 2.0 * np.log(d) - d / (1000.0 * self.length_kpc)


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

    def __post_init__(self) -> None:
        n = len(self.ra)
        if self.phot_var is None:
            self.phot_var = np.zeros(n)
        for name in ("dec", "parallax", "parallax_error", "g_mag", "bp_rp", "bp_g", "phot_var"):
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


def sample_truncated_parallax(
    parallax: np.ndarray, error: np.ndarray, n_samples: int, rng: np.random.Generator
) -> np.ndarray:
    """ϖ_i ~ N(ϖ_obs, σ) truncated to ϖ > 0 (paper 004 eq. 1); shape (N, n_samples), mas.

    scipy's truncnorm samples the far tail accurately, so strongly negative ϖ_obs/σ still gives valid,
    strictly positive draws.
    """
    parallax = np.asarray(parallax, dtype=float)[:, None]
    error = np.asarray(error, dtype=float)[:, None]
    a = (0.0 - parallax) / error
    u = rng.random((parallax.shape[0], n_samples))
    draws = truncnorm.ppf(u, a, np.inf, loc=parallax, scale=error)
    # ppf can return exactly 0 (or inf) at the extreme tail in floating point; keep draws strictly positive.
    tiny = 1e-6 * error
    return np.clip(draws, tiny, None)


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
    flow: torch.nn.Module, points: np.ndarray, device: str | torch.device = "cpu"
) -> np.ndarray:
    """log P_CMD for points of shape (..., 3), eval mode, no gradients; −inf outside the flow's support."""
    shape = points.shape[:-1]
    density = getattr(flow, "log_density", flow.log_prob)
    with torch.no_grad():
        x = torch.as_tensor(points.reshape(-1, 3), dtype=torch.float32, device=device)
        lp = density(x).double().cpu().numpy()
    return lp.reshape(shape)


def _normalised_weights(log_w: np.ndarray) -> np.ndarray:
    log_w = np.where(np.isfinite(log_w), log_w, -np.inf)
    peak = np.max(log_w, axis=1, keepdims=True)
    peak = np.where(np.isfinite(peak), peak, 0.0)
    w = np.exp(log_w - peak)
    total = w.sum(axis=1, keepdims=True)
    # A star whose every sample has zero density (outside the CMD's support) gets equal weights here, so
    # the dust iteration keeps its parallax-only estimate; the final posterior flags it instead
    # (DistanceFlag.OUTSIDE_CMD_SUPPORT) and reports nothing.
    w = np.where(total > 0, w / np.where(total > 0, total, 1.0), 1.0 / log_w.shape[1])
    return w


@dataclass
class DustIterationResult:
    """State after the iterative dust scheme for a batch of stars."""

    distances: np.ndarray  # (N, S) distance samples, pc
    weights: np.ndarray  # (N, S) normalised importance weights
    reddening: np.ndarray  # (N, S) reddening the final weights were computed with
    d_best: np.ndarray  # (N,) final weighted-mean distance
    d_best_history: np.ndarray  # (N, n_iterations + 1)
    reddening_at_best: np.ndarray  # (N, n_map_samples) map samples at the final d_best


def iterate_dust(
    stars: Stars,
    log_density: Callable[[np.ndarray], np.ndarray],
    dust: DustSource,
    *,
    n_samples: int,
    n_iterations: int,
    rng: np.random.Generator,
    prior: DistancePrior | None,
    use_map_samples: bool,
    coeffs: GaiaExtinctionCoefficients = CRANMER2020,
) -> DustIterationResult:
    """The iterative dust/distance scheme of paper 004 Sec. 3.2 for a batch of stars with valid inputs.

    ``prior=None`` weights by P_CMD alone (eq. 2 as printed, used in training); a :class:`DistancePrior`
    adds π(d_i)·d_i² (see the module docstring). ``use_map_samples`` pairs each parallax sample with a
    random posterior sample of the dust map (evaluation); otherwise the map's median is used (training).
    """
    plx = sample_truncated_parallax(stars.parallax, stars.parallax_error, n_samples, rng)
    d = 1000.0 / plx
    d_best = d.mean(axis=1)
    history = [d_best]
    pick = rng.integers(0, max(dust.n_samples, 1), size=d.shape) if use_map_samples else None
    log_prior = 0.0 if prior is None else prior.log_density(d) + 2.0 * np.log(d)
    weights = np.full(d.shape, 1.0 / n_samples)
    red = np.zeros_like(d)

    def reddening_per_sample(map_samples: np.ndarray) -> np.ndarray:
        if use_map_samples:
            return np.take_along_axis(map_samples, pick % map_samples.shape[1], axis=1)
        return np.broadcast_to(np.median(map_samples, axis=1)[:, None], d.shape)

    for _ in range(n_iterations):
        red = reddening_per_sample(dust.samples(stars.ra, stars.dec, d_best))
        points = absolute_cmd(stars.g_mag[:, None], stars.bp_rp[:, None], stars.bp_g[:, None], d, red, coeffs)
        weights = _normalised_weights(log_density(points) + log_prior)
        d_best = np.sum(weights * d, axis=1)
        history.append(d_best)
    # The dust estimate reported for the star: the map at the final d_best (paper 004 Sec. 3.2).
    map_samples = dust.samples(stars.ra, stars.dec, d_best)
    return DustIterationResult(
        distances=d,
        weights=weights,
        reddening=np.asarray(red, dtype=float),
        d_best=d_best,
        d_best_history=np.stack(history, axis=1),
        reddening_at_best=map_samples,
    )


def final_posterior_samples(
    stars: Stars,
    log_density: Callable[[np.ndarray], np.ndarray],
    map_samples_at_best: np.ndarray,
    settings: PosteriorSettings,
    rng: np.random.Generator,
    coeffs: GaiaExtinctionCoefficients = CRANMER2020,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weighted posterior draws ``(distances, weights, reddening)``, each (N, n_samples).

    Fresh truncated-normal parallax draws, each paired with one posterior sample of the dust map at the
    converged d_best (or the map median), weighted by P_CMD · π(d) · d² (module docstring).
    """
    plx = sample_truncated_parallax(stars.parallax, stars.parallax_error, settings.n_samples, rng)
    d = 1000.0 / plx
    if settings.use_map_samples:
        pick = rng.integers(0, map_samples_at_best.shape[1], size=d.shape)
        red = np.take_along_axis(map_samples_at_best, pick, axis=1)
    else:
        red = np.broadcast_to(np.median(map_samples_at_best, axis=1)[:, None], d.shape)
    points = absolute_cmd(stars.g_mag[:, None], stars.bp_rp[:, None], stars.bp_g[:, None], d, red, coeffs)
    log_w = log_density(points) + settings.prior.log_density(d) + 2.0 * np.log(d)
    w = _normalised_weights(log_w)
    w[~np.any(np.isfinite(log_w), axis=1)] = np.nan  # outside the CMD support: no posterior
    return d, w, np.asarray(red, dtype=float)


def weighted_quantiles(values: np.ndarray, weights: np.ndarray, quantiles: tuple[float, ...]) -> np.ndarray:
    """Per-row weighted quantiles, shape (N, len(quantiles)); linear interpolation of the weighted CDF."""
    order = np.argsort(values, axis=1)
    v = np.take_along_axis(values, order, axis=1)
    w = np.take_along_axis(weights, order, axis=1)
    cdf = np.cumsum(w, axis=1) - 0.5 * w  # midpoint rule: a single sample sits at its own quantile
    cdf /= cdf[:, -1:] + 0.5 * w[:, -1:]
    out = np.empty((values.shape[0], len(quantiles)))
    for k, q in enumerate(quantiles):
        idx = np.clip((cdf < q).sum(axis=1), 1, values.shape[1] - 1)
        lo = np.take_along_axis(cdf, (idx - 1)[:, None], axis=1)[:, 0]
        hi = np.take_along_axis(cdf, idx[:, None], axis=1)[:, 0]
        vlo = np.take_along_axis(v, (idx - 1)[:, None], axis=1)[:, 0]
        vhi = np.take_along_axis(v, idx[:, None], axis=1)[:, 0]
        t = np.clip((q - lo) / np.where(hi > lo, hi - lo, 1.0), 0.0, 1.0)
        out[:, k] = vlo + t * (vhi - vlo)
    return out


@dataclass(frozen=True)
class PosteriorSettings:
    """Evaluation settings (paper 004: 10 dust iterations, flat prior over d ≥ 0, map samples).

    The dust iteration only has to locate d_best, so it runs on ``n_iteration_samples`` parallax draws
    (32, as in training); the reported posterior is then drawn afresh with ``n_samples`` draws, the dust
    fixed at the converged d_best. More final draws resolve the 5 % / 95 % quantiles of low-SNR stars,
    whose importance weights concentrate on a small part of the parallax proposal.
    """

    n_samples: int = 512
    n_iteration_samples: int = 32
    n_iterations: int = 10
    prior: DistancePrior = DistancePrior("flat")
    batch_size: int = 4096
    use_map_samples: bool = True

    def __post_init__(self) -> None:
        if self.n_samples < 2 or self.n_iteration_samples < 1 or self.n_iterations < 1 or self.batch_size < 1:
            raise ValueError(f"invalid posterior settings: {self}")


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

    This is the single entry point of the catalog: ``settings`` chooses the scheme (the paper's importance
    sampling today). Returns the :data:`POSTERIOR_COLUMNS`, ``flags`` (:class:`DistanceFlag` bits) and
    ``has_posterior``.
    """
    n = len(stars)
    flags = usable(stars)
    cov = dust.coverage(stars.ra, stars.dec)
    flags[cov.outside_footprint] |= DistanceFlag.OUTSIDE_DUST_FOOTPRINT
    flags[cov.in_hole] |= DistanceFlag.IN_DUST_HOLE
    if ruwe is not None:
        flags[np.asarray(ruwe, dtype=float) >= ruwe_limit] |= DistanceFlag.RUWE_ABOVE_LIMIT
    out = {name: np.full(n, np.nan) for name in POSTERIOR_COLUMNS}
    todo = np.flatnonzero((flags & NO_POSTERIOR) == 0)
    flow.eval()

    def log_density(points: np.ndarray) -> np.ndarray:
        return flow_log_prob(flow, points, device)

    for start in range(0, len(todo), settings.batch_size):
        idx = todo[start : start + settings.batch_size]
        batch = stars.subset(idx)
        res = iterate_dust(
            batch,
            log_density,
            dust,
            n_samples=settings.n_iteration_samples,
            n_iterations=settings.n_iterations,
            rng=rng,
            prior=settings.prior,
            use_map_samples=settings.use_map_samples,
            coeffs=coeffs,
        )
        d, w, red = final_posterior_samples(
            batch, log_density, res.reddening_at_best, settings, rng, coeffs=coeffs
        )
        unsupported = np.isnan(w[:, 0])
        flags[idx[unsupported]] |= DistanceFlag.OUTSIDE_CMD_SUPPORT
        mean = np.sum(w * d, axis=1)
        out["dist_mean"][idx] = mean
        out["dist_std"][idx] = np.sqrt(np.sum(w * (d - mean[:, None]) ** 2, axis=1))
        q = weighted_quantiles(d, w, CATALOG_QUANTILES)
        for k, name in enumerate(("dist_q05", "dist_q16", "dist_q50", "dist_q84", "dist_q95")):
            out[name][idx] = q[:, k]
        out["reddening"][idx] = res.reddening_at_best.mean(axis=1)
        out["reddening_err"][idx] = res.reddening_at_best.std(axis=1)
        points = absolute_cmd(batch.g_mag[:, None], batch.bp_rp[:, None], batch.bp_g[:, None], d, red, coeffs)
        for k, name in enumerate(("abs_g", "bp_rp0", "bp_g0")):
            out[name][idx] = np.sum(w * points[..., k], axis=1)
        ess = 1.0 / np.sum(w**2, axis=1)
        out["effective_samples"][idx] = ess
        flags[idx[ess < MIN_EFFECTIVE_SAMPLES]] |= DistanceFlag.LOW_EFFECTIVE_SAMPLES
        if progress is not None:
            progress(len(idx))
    out["flags"] = flags
    out["has_posterior"] = (flags & NO_POSTERIOR) == 0
    return out
