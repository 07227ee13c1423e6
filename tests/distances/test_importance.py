"""The paper-004 importance-sampling scheme (method: paper) on analytic CMD densities, where the right
answer is known."""

import numpy as np
import pytest
import torch
from scipy import integrate

from latentsky.distances.dust import ConstantDust, NoDust
from latentsky.distances.importance import (
    PaperSettings,
    iterate_dust,
    sample_truncated_parallax,
    weighted_quantiles,
)
from latentsky.distances.posterior import PosteriorSettings, distance_posteriors
from latentsky.distances.prior import DistancePrior
from latentsky.distances.stars import DistanceFlag, Stars
from latentsky.extinction import CRANMER2020


def paper(n_samples=512, n_iterations=10, prior=None):
    """The paper's scheme with its flat prior (the catalog's default is the grid)."""
    prior = prior or DistancePrior("flat")
    return PosteriorSettings(
        method="paper", prior=prior, paper=PaperSettings(n_samples=n_samples, n_iterations=n_iterations)
    )


class GaussianCMD(torch.nn.Module):
    """A normalised Gaussian density in (g, bp−rp, bp−g): a stand-in flow with a known answer."""

    def __init__(self, mean, std):
        super().__init__()
        self.mean = torch.tensor(mean, dtype=torch.float32)
        self.std = torch.tensor(std, dtype=torch.float32)

    def log_prob(self, x):
        z = (x - self.mean) / self.std
        return (-0.5 * z**2 - torch.log(self.std) - 0.5 * np.log(2 * np.pi)).sum(dim=1)


def one_star(parallax, error, g_mag=10.0, bp_rp=1.0, bp_g=0.4, n=1, ra=180.0, dec=30.0):
    def arr(v):
        return np.full(n, float(v))

    return Stars(arr(ra), arr(dec), arr(parallax), arr(error), arr(g_mag), arr(bp_rp), arr(bp_g))


BROAD = GaussianCMD([5.0, 1.0, 0.4], [200.0, 200.0, 200.0])  # ~flat over any realistic CMD


def grid_posterior_moments(parallax, error, log_prior, g_mag=None, cmd_mean=0.0, cmd_std=np.inf):
    """Mean and std of p(d) ∝ N(1000/d; ϖ, σ) · N(G − 5 log10(d/10); μ_g, s_g) · π(d), by quadrature.

    The truth for a Gaussian CMD density without dust (colours then contribute a constant factor).
    """

    def log_dens(d):
        out = -0.5 * ((1000.0 / d - parallax) / error) ** 2 + log_prior(d)
        if g_mag is not None:
            out = out - 0.5 * ((g_mag - 5.0 * np.log10(d / 10.0) - cmd_mean) / cmd_std) ** 2
        return out

    # Integrate in ln d on a fine grid: the densities here span decades in distance.
    ln_d = np.linspace(np.log(1.0), np.log(1e6), 200001)
    d = np.exp(ln_d)
    lw = log_dens(d) + ln_d  # dd = d dln d
    w = np.exp(lw - lw.max())
    m1 = integrate.trapezoid(w * d, ln_d) / integrate.trapezoid(w, ln_d)
    m2 = integrate.trapezoid(w * d * d, ln_d) / integrate.trapezoid(w, ln_d)
    return m1, np.sqrt(m2 - m1 * m1)


def test_precise_parallax_gives_inverse_parallax():
    # ϖ = 10 ± 0.01 mas: the likelihood pins d to 100 pc ± 0.1 pc; any smooth CMD prior cannot move it.
    stars = one_star(10.0, 0.01, g_mag=10.0)
    flow = GaussianCMD([5.0, 1.0, 0.4], [2.0, 1.0, 1.0])
    out = distance_posteriors(stars, flow, NoDust(), paper(n_samples=512), np.random.default_rng(1))
    assert out["has_posterior"][0]
    assert out["dist_mean"][0] == pytest.approx(100.0, abs=0.05)
    assert out["dist_std"][0] == pytest.approx(0.1, rel=0.15)
    assert out["dist_q16"][0] < 100.0 < out["dist_q84"][0]


def test_flat_prior_is_handled_in_the_weights():
    # The posterior is likelihood × CMD density × the stated prior. Sampling ϖ alone gives a
    # uniform-in-parallax prior (∝ d⁻²); the weights must turn it into the flat prior of the catalog.
    parallax, error, g_mag = 2.0, 0.5, 13.0  # SNR 4: the prior matters at the 10 % level
    cmd = {"cmd_mean": 4.5, "cmd_std": 1.0}
    stars = one_star(parallax, error, g_mag=g_mag, n=64)
    flow = GaussianCMD([cmd["cmd_mean"], 1.0, 0.4], [cmd["cmd_std"], 200.0, 200.0])
    settings = paper(n_samples=4096, n_iterations=1)
    out = distance_posteriors(stars, flow, NoDust(), settings, np.random.default_rng(2))
    mean_flat, std_flat = grid_posterior_moments(parallax, error, lambda d: 0.0, g_mag, **cmd)
    # Monte-Carlo error of a 4096-sample importance estimate averaged over 64 stars: well under 2 %.
    assert np.mean(out["dist_mean"]) == pytest.approx(mean_flat, rel=0.02)
    assert np.mean(out["dist_std"]) == pytest.approx(std_flat, rel=0.05)
    mean_plx, _ = grid_posterior_moments(parallax, error, lambda d: -2.0 * np.log(d), g_mag, **cmd)
    assert abs(mean_plx - mean_flat) / mean_flat > 0.05  # the test can tell the two priors apart


def test_edsd_prior_matches_quadrature():
    parallax, error, length = 1.0, 0.4, 1.35
    stars = one_star(parallax, error, n=64)
    prior = DistancePrior("edsd", length)
    settings = paper(n_samples=4096, n_iterations=1, prior=prior)
    out = distance_posteriors(stars, BROAD, NoDust(), settings, np.random.default_rng(3))
    mean, _ = grid_posterior_moments(parallax, error, lambda d: 2.0 * np.log(d) - d / (1000.0 * length))
    assert np.mean(out["dist_mean"]) == pytest.approx(mean, rel=0.02)


def test_negative_parallax_gets_finite_positive_distance():
    # A main-sequence-like CMD prior bounds the distance even when the parallax says little.
    parallax, error, g_mag = -0.3, 0.5, 15.0
    stars = one_star(parallax, error, g_mag=g_mag, n=32)
    flow = GaussianCMD([4.5, 1.0, 0.4], [1.0, 0.3, 0.2])
    settings = paper(n_samples=4096)
    out = distance_posteriors(stars, flow, NoDust(), settings, np.random.default_rng(4))
    d = out["dist_mean"]
    assert np.all(np.isfinite(d)) and np.all(d > 0)
    expected, _ = grid_posterior_moments(parallax, error, lambda d: 0.0, g_mag, cmd_mean=4.5, cmd_std=1.0)
    assert np.mean(d) == pytest.approx(expected, rel=0.03)
    draws = sample_truncated_parallax(np.array([-5.0]), np.array([0.1]), 1000, np.random.default_rng(0))
    assert np.all(draws > 0) and np.all(np.isfinite(draws))


def test_dust_iteration_converges_to_the_map_value(tmp_path):
    # A star at 1 kpc behind a dust layer whose reddening grows linearly with distance, E(d) = 0.3 d/kpc.
    # Its photometry is made consistent with that: the scheme must find E(1 kpc) = 0.3.
    class LinearDust(ConstantDust):
        def samples(self, ra, dec, distance_pc):
            return (0.3 * np.asarray(distance_pc) / 1000.0)[:, None]

    true_e, abs_g, c1, c2 = 0.3, 4.0, 0.8, 0.35
    g_mag = abs_g + 10.0 + CRANMER2020.a_g * true_e  # DM(1 kpc) = 10
    stars = one_star(
        1.0,
        0.1,
        g_mag=g_mag,
        bp_rp=c1 + CRANMER2020.e_bp_rp * true_e,
        bp_g=c2 + CRANMER2020.e_bp_g * true_e,
        n=16,
    )  # noqa: E501
    flow = GaussianCMD([abs_g, c1, c2], [0.3, 0.1, 0.1])
    res = iterate_dust(
        stars,
        lambda p: (
            flow.log_prob(torch.as_tensor(p.reshape(-1, 3), dtype=torch.float32))
            .numpy()
            .reshape(p.shape[:-1])
        ),
        LinearDust(0.0),
        n_samples=512,
        n_iterations=10,
        rng=np.random.default_rng(5),
        prior=DistancePrior("flat").parameters(stars.ra, stars.dec),
        use_map_samples=True,
    )
    history = res.d_best_history.mean(axis=0)
    assert abs(history[-1] - history[-2]) < 2.0  # converged: the last update moved d_best by < 2 pc
    assert np.mean(res.reddening_at_best[:, 0]) == pytest.approx(true_e, abs=0.01)
    assert np.mean(res.d_best) == pytest.approx(1000.0, rel=0.02)


def test_unprocessable_stars_keep_their_row_with_a_flag():
    stars = one_star(2.0, 0.1, n=5)
    stars.bp_rp[1] = np.nan  # missing BP/RP
    stars.g_mag[2] = np.nan
    stars.parallax_error[3] = 0.0
    ruwe = np.array([1.0, 1.0, 1.0, 1.0, 2.0])
    out = distance_posteriors(
        stars, BROAD, NoDust(), paper(n_samples=64), np.random.default_rng(6), ruwe=ruwe
    )
    assert len(out["dist_mean"]) == 5
    assert list(out["has_posterior"]) == [True, False, False, False, True]
    assert out["flags"][1] & DistanceFlag.MISSING_BP_RP
    assert out["flags"][2] & DistanceFlag.MISSING_G
    assert out["flags"][3] & DistanceFlag.NO_PARALLAX
    assert out["flags"][4] == DistanceFlag.RUWE_ABOVE_LIMIT  # computed, but marked
    assert np.isnan(out["dist_mean"][1]) and np.isfinite(out["dist_mean"][4])


def test_weighted_quantiles_match_numpy_for_equal_weights():
    rng = np.random.default_rng(7)
    v = rng.normal(size=(3, 2001))
    w = np.full_like(v, 1 / v.shape[1])
    q = weighted_quantiles(v, w, (0.05, 0.5, 0.95))
    np.testing.assert_allclose(q, np.quantile(v, [0.05, 0.5, 0.95], axis=1).T, atol=0.01)
