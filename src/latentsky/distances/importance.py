"""The paper's scheme: importance sampling of parallax draws with an iterated dust distance (paper 004).

Kept as ``distances.posterior.method: paper`` so the catalog can be reproduced as the paper made it, and
scored beside the exact grid (:mod:`latentsky.distances.grid`) in the metrics. For each star:

1. Draw parallaxes ϖ_i from the DR2 likelihood truncated to ϖ > 0 (eq. 1); d_i = 1/ϖ_i.
2. Start from d_best = mean(d_i). Repeat (5× in training, 10× in evaluation): query the dust map at
   d_best, deredden the photometry (A_G = 2.442 E, …; :mod:`latentsky.extinction`), turn each d_i into an
    absolute magnitude g_i, weight
   each sample by the CMD density P(g_i, bp−rp, bp−g) and set d_best to the weighted mean (eq. 2).
3. The posterior is the weighted sample set {d_i, w_i}.

**The prior.** Sampling ϖ_i from the truncated normal is importance sampling with a proposal
q(d) ∝ N(1/d; ϖ_obs, σ_ϖ) · |dϖ/dd| = N(1/d; ϖ_obs, σ_ϖ) · d⁻², i.e. the parallax likelihood times an
implicit prior ∝ d⁻² (uniform in parallax). The target posterior is
p(d | data) ∝ N(1/d; ϖ_obs, σ_ϖ) · P_CMD(g(d), colours(d)) · π(d), so the correct importance weight is

    w_i ∝ P_CMD(g_i, …) · π(d_i) · d_i².

Training follows eq. 2 as printed (w_i ∝ P_CMD, the prior the paper trained with); evaluation uses π.

**Known weaknesses** (issue 16, reproduced on purpose): the start at the mean of 1/ϖ runs away for SNR ≲ 1,
the dust is held at d_best for every draw, nothing tests convergence (a steep-dust dwarf/giant star can
settle into a 2-cycle), and the sample quantiles are noisy where few draws carry the weight.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.stats import truncnorm

from latentsky.distances.dust import DustSource
from latentsky.distances.prior import PriorParameters, log_prior
from latentsky.distances.stars import CATALOG_QUANTILES, DistanceFlag, Stars, absolute_cmd
from latentsky.extinction import CRANMER2020, GaiaExtinctionCoefficients

#: Below this many effective draws a posterior is flagged LOW_EFFECTIVE_SAMPLES.
MIN_EFFECTIVE_SAMPLES = 5.0


@dataclass(frozen=True)
class PaperSettings:
    """Paper 004's evaluation: 10 dust iterations on 32 draws, then ``n_samples`` fresh weighted draws.

    The dust iteration only has to locate d_best, so it runs on ``n_iteration_samples`` parallax draws
    (32, as in training); the reported posterior is then drawn afresh, the dust fixed at the converged
    d_best. More final draws resolve the 5 % / 95 % quantiles of low-SNR stars.
    """

    n_samples: int = 512
    n_iteration_samples: int = 32
    n_iterations: int = 10
    use_map_samples: bool = True

    def __post_init__(self) -> None:
        if self.n_samples < 2 or self.n_iteration_samples < 1 or self.n_iterations < 1:
            raise ValueError(f"invalid paper-scheme settings: {self}")

    @property
    def flow_evaluations_per_star(self) -> int:
        return self.n_iterations * self.n_iteration_samples + self.n_samples


def sample_truncated_parallax(
    parallax: np.ndarray, error: np.ndarray, n_samples: int, rng: np.random.Generator
) -> np.ndarray:
    """ϖ_i ~ N(ϖ_obs, σ) truncated to ϖ > 0 (paper 004 eq. 1); shape (N, n_samples), mas.

    scipy's truncnorm samples the far tail accurately, so strongly negative ϖ_obs/σ still gives valid,
    strictly positive draws.
    """
    return truncated_parallax_ppf(parallax, error, rng.random((np.shape(parallax)[0], n_samples)))


def truncated_parallax_ppf(parallax: np.ndarray, error: np.ndarray, u: np.ndarray) -> np.ndarray:
    """The parallaxes (N, K) at probabilities ``u`` (N, K) of N(ϖ_obs, σ) truncated to ϖ > 0, mas."""
    parallax = np.asarray(parallax, dtype=float)[:, None]
    error = np.asarray(error, dtype=float)[:, None]
    a = (0.0 - parallax) / error
    draws = truncnorm.ppf(u, a, np.inf, loc=parallax, scale=error)
    # ppf can return exactly 0 (or inf) at the extreme tail in floating point; keep draws strictly positive.
    tiny = 1e-6 * error
    return np.clip(draws, tiny, None)


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
    prior: PriorParameters | None,
    use_map_samples: bool,
    coeffs: GaiaExtinctionCoefficients = CRANMER2020,
) -> DustIterationResult:
    """The iterative dust/distance scheme of paper 004 Sec. 3.2 for a batch of stars with valid inputs.

    ``prior=None`` weights by P_CMD alone (eq. 2 as printed, used in training); per-star :class:`PriorParameters`
    add π(d_i)·d_i² (see the module docstring). ``use_map_samples`` pairs each parallax sample with a
    random posterior sample of the dust map (evaluation); otherwise the map's median is used (training).
    """
    plx = sample_truncated_parallax(stars.parallax, stars.parallax_error, n_samples, rng)
    d = 1000.0 / plx
    d_best = d.mean(axis=1)
    history = [d_best]
    pick = rng.integers(0, max(dust.n_samples, 1), size=d.shape) if use_map_samples else None
    log_w_prior = 0.0 if prior is None else log_prior(d, prior) + 2.0 * np.log(d)
    weights = np.full(d.shape, 1.0 / n_samples)
    red = np.zeros_like(d)

    def reddening_per_sample(map_samples: np.ndarray) -> np.ndarray:
        if use_map_samples:
            return np.take_along_axis(map_samples, pick % map_samples.shape[1], axis=1)
        return np.broadcast_to(np.median(map_samples, axis=1)[:, None], d.shape)

    for _ in range(n_iterations):
        red = reddening_per_sample(dust.samples(stars.ra, stars.dec, d_best))
        points = absolute_cmd(stars.g_mag[:, None], stars.bp_rp[:, None], stars.bp_g[:, None], d, red, coeffs)
        weights = _normalised_weights(log_density(points) + log_w_prior)
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
    settings: PaperSettings,
    prior: PriorParameters,
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
    log_w = log_density(points) + log_prior(d, prior) + 2.0 * np.log(d)
    w = _normalised_weights(log_w)
    w[~np.any(np.isfinite(log_w), axis=1)] = np.nan  # outside the CMD support: no posterior
    return d, w, np.asarray(red, dtype=float)


def weighted_quantiles(values: np.ndarray, weights: np.ndarray, quantiles: tuple[float, ...]) -> np.ndarray:
    """Per-row weighted quantiles, shape (N, len(quantiles)).

    The midpoint CDF over the draws that carry weight, interpolated linearly between them only: a draw of
    zero weight (outside the CMD support) is not part of the posterior and cannot be interpolated towards,
    and a quantile beyond the outermost weighted draw is that draw (a one-draw posterior is a point).
    """
    order = np.argsort(values, axis=1)
    v = np.take_along_axis(values, order, axis=1)
    w = np.nan_to_num(np.take_along_axis(weights, order, axis=1))
    total = w.sum(axis=1, keepdims=True)
    cdf = (np.cumsum(w, axis=1) - 0.5 * w) / np.where(total > 0, total, 1.0)
    pos = w > 0
    rows = np.arange(values.shape[0])
    first_pos = np.argmax(pos, axis=1)
    last_pos = values.shape[1] - 1 - np.argmax(pos[:, ::-1], axis=1)
    out = np.empty((values.shape[0], len(quantiles)))
    for k, q in enumerate(quantiles):
        above = pos & (cdf >= q)
        hi = np.where(above.any(axis=1), np.argmax(above, axis=1), last_pos)
        below = pos & (cdf < q)
        lo = np.where(below.any(axis=1), values.shape[1] - 1 - np.argmax(below[:, ::-1], axis=1), first_pos)
        c_lo, c_hi = cdf[rows, lo], cdf[rows, hi]
        t = np.clip((q - c_lo) / np.where(c_hi > c_lo, c_hi - c_lo, 1.0), 0.0, 1.0)
        out[:, k] = np.where(total[:, 0] > 0, v[rows, lo] + t * (v[rows, hi] - v[rows, lo]), np.nan)
    return out


def paper_catalog_columns(
    stars: Stars,
    log_density: Callable[[np.ndarray], np.ndarray],
    dust: DustSource,
    prior: PriorParameters,
    settings: PaperSettings,
    rng: np.random.Generator,
    coeffs: GaiaExtinctionCoefficients = CRANMER2020,
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The catalog's posterior columns for a batch by the paper's scheme, and the flags it sets."""
    res = iterate_dust(
        stars,
        log_density,
        dust,
        n_samples=settings.n_iteration_samples,
        n_iterations=settings.n_iterations,
        rng=rng,
        prior=prior,
        use_map_samples=settings.use_map_samples,
        coeffs=coeffs,
    )
    d, w, red = final_posterior_samples(
        stars, log_density, res.reddening_at_best, settings, prior, rng, coeffs
    )
    flags = np.zeros(len(stars), dtype=np.int64)
    unsupported = np.isnan(w[:, 0])
    flags[unsupported] |= DistanceFlag.OUTSIDE_CMD_SUPPORT
    mean = np.sum(w * d, axis=1)
    q = weighted_quantiles(d, w, CATALOG_QUANTILES)
    points = absolute_cmd(stars.g_mag[:, None], stars.bp_rp[:, None], stars.bp_g[:, None], d, red, coeffs)
    ess = 1.0 / np.sum(w**2, axis=1)
    flags[ess < MIN_EFFECTIVE_SAMPLES] |= DistanceFlag.LOW_EFFECTIVE_SAMPLES
    nan_if_unsupported = np.where(unsupported, np.nan, 1.0)
    out = {
        "dist_mean": mean,
        "dist_std": np.sqrt(np.sum(w * (d - mean[:, None]) ** 2, axis=1)),
        **{
            name: q[:, k]
            for k, name in enumerate(("dist_q05", "dist_q16", "dist_q50", "dist_q84", "dist_q95"))
        },
        # The map at the final d_best (the paper's dust estimate), only where there is a posterior.
        "reddening": res.reddening_at_best.mean(axis=1) * nan_if_unsupported,
        "reddening_err": res.reddening_at_best.std(axis=1) * nan_if_unsupported,
        **{name: np.sum(w * points[..., k], axis=1) for k, name in enumerate(("abs_g", "bp_rp0", "bp_g0"))},
        "effective_samples": ess,
    }
    return out, flags
