"""The photometric-noise model: the CMD density through a star's errors, against Monte-Carlo convolution,
and what it does to the coverage of the grid's intervals for faint stars with known true distances."""

import numpy as np
import pytest
import torch

from latentsky.distances.dust import NoDust
from latentsky.distances.flow import CMDFlow, FlowArchitecture
from latentsky.distances.noise import (
    NoiseModelSettings,
    NoisyCMDFlow,
    build_noise_model_from_state,
    cmd_log_density,
    cmd_noise,
    noise_model_state,
    photometric_errors,
    train_noise_model,
)
from latentsky.distances.posterior import PosteriorSettings, distance_posteriors
from latentsky.distances.prior import DistancePrior
from latentsky.distances.stars import Stars


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """These tests train small flows: one thread is as fast and gives the same floats on any machine.
    Restored afterwards, so tests elsewhere see the thread count they were written for."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# A toy dwarf sequence: M_G rises 3 mag per mag of BP−RP, 0.25 mag wide; BP−G follows BP−RP. Narrow enough
# that a 0.15 mag colour error at the faint end matters (it moves M_G by ~0.45 mag along the sequence).
SLOPE, WIDTH = 3.0, 0.25


def toy_cmd(n: int, rng: np.random.Generator) -> np.ndarray:
    c1 = rng.uniform(0.8, 2.2, n)
    g = 4.0 + SLOPE * (c1 - 0.8) + WIDTH * rng.standard_normal(n)
    c2 = 0.4 * c1 + 0.01 * rng.standard_normal(n)
    return np.column_stack([g, c1, c2])


@pytest.fixture(scope="module")
def cmd_flow() -> CMDFlow:
    """A small flow fitted to the toy CMD (the 'CMD flow' the noise model is distilled from)."""
    rng = np.random.default_rng(0)
    x = toy_cmd(100_000, rng)
    torch.manual_seed(0)
    flow = CMDFlow(FlowArchitecture(n_blocks=4, hidden_features=32), x.mean(0), x.std(0))
    flow.set_support(x, np.ones(len(x)))
    opt = torch.optim.Adam(flow.parameters(), lr=3e-3)
    xt = torch.as_tensor(x, dtype=torch.float32)
    for _ in range(700):
        loss = -flow.log_prob(xt[torch.randint(0, len(x), (1024,))]).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return flow.eval()


@pytest.fixture(scope="module")
def noise_model(cmd_flow) -> NoisyCMDFlow:
    rng = np.random.default_rng(1)
    # Errors as a survey has them: from millimag to 0.3 mag, BP noisier than RP, G tiny.
    sigma_bp = np.exp(rng.uniform(np.log(0.002), np.log(0.3), 5000))
    errors = np.column_stack([0.05 * sigma_bp, sigma_bp, 0.6 * sigma_bp])
    model, losses = train_noise_model(
        cmd_flow, errors, NoiseModelSettings(steps=900, batch_size=1024, n_pool=50_000), seed=0
    )
    assert np.mean(losses[-50:]) < np.mean(losses[:50])
    return model


def test_cmd_noise_has_the_covariance_of_the_three_bands():
    sg, sb, sr = 0.01, 0.2, 0.1
    eps = cmd_noise(np.tile([sg, sb, sr], (400_000, 1)), np.random.default_rng(2))
    expected = np.array(
        [[sg**2, 0.0, -(sg**2)], [0.0, sb**2 + sr**2, sb**2], [-(sg**2), sb**2, sb**2 + sg**2]]
    )
    np.testing.assert_allclose(np.cov(eps.T), expected, atol=4e-4)


def test_photometric_errors_replace_missing_and_clip():
    err = photometric_errors(np.array([np.nan, 0.01]), np.array([-1.0, 5.0]), np.array([0.0, 0.02]))
    np.testing.assert_allclose(err, [[1e-4, 1e-4, 1e-4], [0.01, 1.0, 0.02]])


def _mc_convolution(flow, x, errors, n=4000, seed=3):
    eps = torch.as_tensor(
        cmd_noise(np.tile(errors, (n, 1)), np.random.default_rng(seed)), dtype=torch.float32
    )
    with torch.no_grad():
        lp = torch.stack([flow.log_prob(p - eps) for p in torch.as_tensor(x, dtype=torch.float32)])
    return (torch.logsumexp(lp, dim=1) - np.log(n)).numpy()


@pytest.mark.parametrize("sigma_bp", [0.003, 0.15])
def test_noise_model_matches_the_convolved_density(cmd_flow, noise_model, sigma_bp):
    """On points drawn from the convolution itself, ln P_noisy agrees with a 4,000-draw Monte-Carlo
    convolution of the CMD flow to 0.3 nats in the median (distilled for 900 steps: measured 0.16–0.19)."""
    errors = np.array([0.05 * sigma_bp, sigma_bp, 0.6 * sigma_bp])
    rng = np.random.default_rng(4)
    with torch.no_grad():
        x = cmd_flow.sample(300).numpy()
    x = x + cmd_noise(np.tile(errors, (len(x), 1)), rng)
    reference = _mc_convolution(cmd_flow, x, errors)
    with torch.no_grad():
        got = noise_model.log_prob(
            torch.as_tensor(x, dtype=torch.float32),
            torch.as_tensor(np.tile(errors, (len(x), 1)), dtype=torch.float32),
        ).numpy()
    assert np.median(np.abs(got - reference)) < 0.3
    if sigma_bp > 0.1:
        # … and the convolution is not the CMD itself: at noisy points the noise-free flow is ~20 nats lower.
        with torch.no_grad():
            plain = cmd_flow.log_prob(torch.as_tensor(x, dtype=torch.float32)).numpy()
        assert np.median(reference - plain) > 5.0


def test_noise_model_round_trips_through_its_state(cmd_flow, noise_model):
    from latentsky.distances.flow import flow_state

    again = build_noise_model_from_state(noise_model_state(noise_model), flow_state(cmd_flow))
    x = torch.as_tensor([[6.0, 1.5, 0.6], [9.0, 2.0, 0.8]])
    e = torch.as_tensor([[0.001, 0.1, 0.05]] * 2)
    with torch.no_grad():
        np.testing.assert_allclose(
            again.log_prob(x, e).numpy(), noise_model.log_prob(x, e).numpy(), rtol=1e-6
        )


def _faint_survey(n: int, rng: np.random.Generator):
    """Stars on the toy sequence at EDSD distances (L = 1 kpc), no dust, parallax SNR mostly < 2, colours
    with 0.12–0.2 mag errors (BP-dominated, as at G ≈ 20)."""
    d = rng.gamma(3.0, 1000.0, n)  # the EDSD prior's distribution with L = 1 kpc
    x = toy_cmd(n, rng)
    sigma_bp = rng.uniform(0.12, 0.2, n)
    errors = np.column_stack([0.05 * sigma_bp, sigma_bp, 0.6 * sigma_bp])
    obs = x + cmd_noise(errors, rng)
    g = obs[:, 0] + 5 * np.log10(d / 10)
    sigma_plx = 0.6
    plx = 1000.0 / d + sigma_plx * rng.standard_normal(n)
    stars = Stars(
        ra=np.full(n, 180.0),
        dec=np.full(n, 30.0),
        parallax=plx,
        parallax_error=np.full(n, sigma_plx),
        g_mag=g,
        bp_rp=obs[:, 1],
        bp_g=obs[:, 2],
        phot_err=errors,
    )
    return stars, d


def test_convolving_the_noise_restores_coverage_for_faint_stars(noise_model):
    """The grid's 68 % interval holds the true distance for 68 % of faint stars when the likelihood
    includes their colour errors; at the measured colours (paper 004) the intervals are too narrow.
    With 1,500 stars the binomial 2σ is ±0.024."""
    stars, truth = _faint_survey(1500, np.random.default_rng(5))
    prior = DistancePrior("edsd", 1.0)
    cover = {}
    for mode in ("convolve", "ignore"):
        post = distance_posteriors(
            stars,
            noise_model,
            NoDust(),
            PosteriorSettings(prior=prior, photometric_noise=mode),
            np.random.default_rng(0),
        )
        ok = post["has_posterior"]
        assert ok.mean() > 0.95
        inside = (post["dist_q16"] <= truth) & (truth <= post["dist_q84"])
        cover[mode] = float(np.mean(inside[ok]))
    assert 0.63 <= cover["convolve"] <= 0.73, cover
    assert cover["ignore"] < cover["convolve"] - 0.05, cover


def test_convolve_without_a_noise_model_is_refused(cmd_flow):
    stars, _ = _faint_survey(10, np.random.default_rng(6))
    with pytest.raises(ValueError, match="photometric_noise: convolve needs a model trained with a noise"):
        distance_posteriors(
            stars,
            cmd_flow,
            NoDust(),
            PosteriorSettings(photometric_noise="convolve"),
            np.random.default_rng(0),
        )
    with pytest.raises(ValueError, match="photometric_noise must be one of"):
        PosteriorSettings(photometric_noise="sometimes")
    with pytest.raises(ValueError, match="noise_model needs"):
        NoiseModelSettings(steps=-1)


def test_log_density_without_rows_is_the_noise_free_flow(cmd_flow, noise_model):
    stars, _ = _faint_survey(4, np.random.default_rng(7))
    pts = np.array([[6.0, 1.5, 0.6], [8.0, 1.9, 0.76]])
    plain = cmd_log_density(cmd_flow, stars)(pts, None)
    np.testing.assert_allclose(cmd_log_density(noise_model, stars)(pts, None), plain)
    np.testing.assert_allclose(
        cmd_log_density(noise_model, stars, photometric_noise="ignore")(pts, np.array([0, 1])), plain
    )
    assert not np.allclose(cmd_log_density(noise_model, stars)(pts, np.array([0, 1])), plain)
