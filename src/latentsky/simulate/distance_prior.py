"""A distance-prior table for the simulated survey, made the way Bailer-Jones et al. (2021) made theirs.

Bailer-Jones et al. (2021, Sec. 2.3) fitted a generalised gamma distribution (GGD)
π(d) ∝ d^β exp(−(d/L)^α) to the distances of the stars of a *mock* Gaia catalogue (GeDR3mock, Rybizki et
al. 2020) in each HEALPix level-5 pixel and published the parameters (``prior_summary.csv``). For the
simulated survey the mock is an independent draw of the same simulator (its own seed, more stars, the
same magnitude limit): the prior knows the Galaxy model, not the stars being catalogued.

Two tables come from the same mock, one per table-driven prior of :mod:`latentsky.distances.prior`:

* :func:`ggd_prior_table` — the GGD per pixel, in the authors' layout (``prior_summary.csv`` columns). The
  demo's mock cannot fill 12 288 level-5 pixels, so the fit is made at a coarser order (``fit_order``) and
  written for each level-5 child.
* :func:`tabulated_prior_table` — the mock's histogram in ln d per pixel at ``fit_order``, shrunk towards the
  all-sky histogram (``SHRINK_STARS`` pseudo-stars), which has half a pseudo-count per bin, so no bin is
  empty. The simulated disc ends at a hard edge, which no GGD can follow; this table can.

The mock is the simulator's space density without the magnitude limit (:func:`mock_space_density`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize, special

from latentsky.distances.prior import GGD_TABLE_ORDER
from latentsky.io.healpix import radec_to_healpix
from latentsky.simulate.gaia import draw_disc_positions, validate_survey_config

#: Fewer mock stars than this in a fit pixel: the pixel takes the all-sky fit.
MIN_STARS_PER_FIT = 50
#: A fit uses at most this many of its pixel's mock stars (every k-th: the mock is in random order). Three
#: parameters are fixed to a few per cent by far fewer, and the fit's cost grows with the stars.
MAX_STARS_PER_FIT = 20_000


def _every_kth(values: np.ndarray, at_most: int) -> np.ndarray:
    return values[:: max(1, -(-len(values) // at_most))]


#: α is capped: a population with a hard outer edge (the simulated disc at 10 kpc) drives α → ∞ (a step
#: at L); α = 20 already puts e^−38 at 1.2 L and keeps (d/L)^α finite.
LN_MAX_ALPHA = float(np.log(20.0))


def fit_ggd(distance_pc: np.ndarray) -> tuple[float, float, float]:
    """Maximum-likelihood (L [pc], α, β) of the normalised π(d) = α d^β exp(−(d/L)^α) / (L^(β+1) Γ((β+1)/α)).

    Fitted in (ln L, ln α, ln(β+1)) from the EDSD start (α = 1, β = 2, L = mean/3). scipy's
    ``gengamma.fit`` wanders into degenerate corners (L of a few pc, α ≪ 1) for such samples, so the
    likelihood is maximised directly.
    """
    d = np.asarray(distance_pc, dtype=float)
    d = d[np.isfinite(d) & (d > 0)]
    scale = float(np.mean(d))
    x = d / scale  # fit in units of the mean: well-conditioned

    def nll(theta: np.ndarray) -> float:
        ln_l, ln_a, ln_b1 = theta
        a, b1 = np.exp(min(ln_a, LN_MAX_ALPHA)), np.exp(ln_b1)
        z = np.exp(a * (np.log(x) - ln_l))
        ll = np.log(a) - b1 * ln_l - special.gammaln(b1 / a) + (b1 - 1.0) * np.log(x) - z
        return -float(np.mean(ll))

    start = np.array([np.log(1.0 / 3.0), 0.0, np.log(3.0)])
    res = optimize.minimize(
        nll, start, method="Nelder-Mead", options={"xatol": 1e-6, "fatol": 1e-9, "maxiter": 4000}
    )
    ln_l, ln_a, ln_b1 = res.x
    return float(np.exp(ln_l) * scale), float(np.exp(min(ln_a, LN_MAX_ALPHA))), float(np.exp(ln_b1) - 1.0)


def mock_space_density(
    survey_cfg: Mapping[str, Any], seed: int, n_mock_stars: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ra, dec, distance) of ``n_mock_stars`` draws from the simulator's stellar density, no selection.

    The prior is the space density along the line of sight, d² ρ(d): under paper 004's model the CMD
    density is the same at every distance, so the magnitude limit must not enter the prior as well (the
    distance distribution of the *catalogued* stars would count it twice and pull faint stars near).
    """
    from astropy import units as u
    from astropy.coordinates import SkyCoord

    disc = validate_survey_config(survey_cfg).disc
    l_deg, b_deg, d_pc = draw_disc_positions(int(n_mock_stars), disc, np.random.default_rng(seed))
    icrs = SkyCoord(l=l_deg * u.deg, b=b_deg * u.deg, frame="galactic").icrs
    return icrs.ra.deg, icrs.dec.deg, d_pc


def ggd_prior_table(ra: np.ndarray, dec: np.ndarray, distance_pc: np.ndarray, fit_order: int) -> pd.DataFrame:
    """GGD per ``fit_order`` pixel, written per level-5 child (columns as ``prior_summary.csv``)."""
    if not 0 <= fit_order <= GGD_TABLE_ORDER:
        raise ValueError(f"fit_order must be in 0…{GGD_TABLE_ORDER}, got {fit_order}")
    pix = radec_to_healpix(ra, dec, fit_order)
    all_sky = fit_ggd(_every_kth(distance_pc, MAX_STARS_PER_FIT))
    children = 4 ** (GGD_TABLE_ORDER - fit_order)
    rows = []
    for p in range(12 * 4**fit_order):
        sel = distance_pc[pix == p]
        fit = fit_ggd(_every_kth(sel, MAX_STARS_PER_FIT)) if len(sel) >= MIN_STARS_PER_FIT else all_sky
        rows.extend((child, *fit, len(sel)) for child in range(p * children, (p + 1) * children))
    return pd.DataFrame(rows, columns=["healpix", "GGDrlen", "GGDalpha", "GGDbeta", "n_mock"])


#: Pseudo-stars of the all-sky shape added to each pixel's histogram (shrinkage for sparse pixels).
SHRINK_STARS = 50.0
#: Histogram range: 10 pc … 100 kpc in ln d.
TABLE_RANGE_PC = (10.0, 1.0e5)
#: Bins over that range: 256 (0.036 in ln d, 3.7 % in distance). The table is interpolated linearly in log
#: density between bin centres, so a bin smooths the disc's hard edge at 10 kpc, where the d³ρ of distant
#: faint stars peaks, over about one bin: with 64 bins (0.14 in ln d) the demo's faint stars' posteriors
#: sat too near and their 90 % intervals held the truth for 0.85 of them; with 256, 0.88 (0.89 with the
#: exact density along each line of sight).
TABLE_BINS = 256


def tabulated_prior_table(
    ra: np.ndarray, dec: np.ndarray, distance_pc: np.ndarray, fit_order: int, n_bins: int = TABLE_BINS
) -> pd.DataFrame:
    """Density per unit ln d per ``fit_order`` pixel (columns of the ``tabulated`` prior)."""
    edges = np.linspace(*np.log(TABLE_RANGE_PC), n_bins + 1)
    width = np.diff(edges)
    centres = np.exp(0.5 * (edges[1:] + edges[:-1]))
    ln_d = np.log(np.clip(distance_pc, *TABLE_RANGE_PC))
    all_sky = np.histogram(ln_d, edges)[0] + 0.5  # half a pseudo-count per bin: no bin is empty
    all_sky = all_sky / all_sky.sum()
    n_pix = 12 * 4**fit_order
    pix = radec_to_healpix(ra, dec, fit_order)
    bins = np.clip(np.searchsorted(edges, ln_d, side="right") - 1, 0, n_bins - 1)
    counts = np.bincount(pix * n_bins + bins, minlength=n_pix * n_bins).reshape(n_pix, n_bins)
    counts = counts + SHRINK_STARS * all_sky
    density = counts / counts.sum(axis=1, keepdims=True) / width
    return pd.DataFrame(
        {
            "healpix_order": fit_order,
            "healpix": np.repeat(np.arange(n_pix), n_bins),
            "distance_pc": np.tile(centres, n_pix),
            "density": density.ravel(),
        }
    )
