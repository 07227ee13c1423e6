"""Training the CMD flow: determinism, resume from a checkpoint, and the paper's best-estimate points."""

import numpy as np
import pytest
import torch

from latentsky.distances.dust import ConstantDust, NoDust
from latentsky.distances.flow import CMDFlow, FlowArchitecture, build_flow_from_state, flow_state
from latentsky.distances.stars import Stars
from latentsky.distances.training import (
    CMDFlowTrainer,
    TrainingSettings,
    resume_from,
    run_key,
    trainer_resume_state,
    training_points,
)
from latentsky.provenance.files import load_checkpoint, save_checkpoint

SETTINGS = TrainingSettings(
    architecture=FlowArchitecture(n_blocks=2, hidden_features=16),
    batch_size=128,
    n_rounds=3,
    steps_per_round=10,
    checkpoint_every=5,
)


def synthetic_stars(n=600, seed=0):
    """A thin main sequence M_G = 4 + 3 (BP−RP − 1) at 100 pc – 2 kpc, parallax SNR from 2 to 200."""
    rng = np.random.default_rng(seed)
    colour = rng.uniform(0.5, 2.0, n)
    abs_g = 4.0 + 3.0 * (colour - 1.0) + rng.normal(0, 0.1, n)
    d = rng.uniform(100, 2000, n)
    err = rng.uniform(0.02, 0.3, n)
    plx = 1000.0 / d + rng.normal(0, err)
    g = abs_g + 5 * np.log10(d / 10)
    return Stars(
        ra=rng.uniform(0, 360, n),
        dec=rng.uniform(-20, 60, n),
        parallax=plx,
        parallax_error=err,
        g_mag=g,
        bp_rp=colour,
        bp_g=0.4 * colour,
        phot_var=np.full(n, 1e-4),
    ), abs_g


def test_best_estimate_points_follow_the_paper():
    stars, abs_g = synthetic_stars()
    pts = training_points(stars, None, ConstantDust(0.1), SETTINGS, np.random.default_rng(1))
    # Dereddened colours: observed minus E(BP−RP) = 0.85 × 0.901 E per Bayestar unit.
    np.testing.assert_allclose(pts.points[:, 1], stars.bp_rp - 0.1 * 0.85 * 0.901)
    np.testing.assert_allclose(pts.points[:, 2], stars.bp_g - 0.1 * 0.39 * 0.901)
    # High-SNR stars: g_best = mean of g_i is the absolute magnitude less A_G = 2.71 · 0.901 · 0.1 (the synthetic
    # photometry is unreddened, so dereddening subtracts it), to within the parallax-noise scatter.
    snr = stars.parallax / stars.parallax_error
    good = snr > 50
    assert good.sum() > 20
    assert np.median(np.abs(pts.points[good, 0] - (abs_g[good] - 0.271 * 0.901))) < 0.03
    # σ_P² grows as the parallax SNR falls (Var(g_i) from the 32 parallax samples).
    low = snr < 5
    assert np.median(pts.variance[low]) > 10 * np.median(pts.variance[good])


def test_training_is_deterministic_and_resumes_to_the_same_weights(tmp_path):
    stars, _ = synthetic_stars()
    full = CMDFlowTrainer(stars, NoDust(), SETTINGS, seed=3)
    full.train()
    again = CMDFlowTrainer(stars, NoDust(), SETTINGS, seed=3)
    again.train()
    for k, v in full.model.state_dict().items():
        assert torch.equal(v, again.model.state_dict()[k]), k

    # Interrupted mid-round (step 15 of rounds of 10), checkpointed through the real file format, resumed.
    key = run_key(SETTINGS, 3, ["inputs"])
    path = tmp_path / "resume.pt"
    first = CMDFlowTrainer(stars, NoDust(), SETTINGS, seed=3)
    first.train(until_step=15)
    save_checkpoint(trainer_resume_state(first, first.state(), key), path, {"rule": "test"})
    resumed = CMDFlowTrainer(stars, NoDust(), SETTINGS, seed=3)
    payload, _ = load_checkpoint(path)
    assert not resume_from(resumed, payload, run_key(SETTINGS, 4, ["inputs"]))  # another run's file
    assert resume_from(resumed, payload, key)
    assert resumed.step == 15
    resumed.train()
    assert resumed.losses == pytest.approx(full.losses, rel=0, abs=0)
    for k, v in full.model.state_dict().items():
        assert torch.equal(v, resumed.model.state_dict()[k]), k


def test_flow_density_is_normalised_and_round_trips():
    # A trained-looking flow's density integrates to 1 over a box holding its mass (MC estimate).
    stars, _ = synthetic_stars()
    trainer = CMDFlowTrainer(stars, NoDust(), SETTINGS, seed=0)
    trainer.train()
    model = trainer.model.eval()
    rng = np.random.default_rng(0)
    low, high = np.array([-4.0, -1.0, -1.0]), np.array([12.0, 3.5, 1.5])
    x = torch.as_tensor(rng.uniform(low, high, (200000, 3)), dtype=torch.float32)
    with torch.no_grad():
        integral = torch.exp(model.log_prob(x)).mean().item() * np.prod(high - low)
    assert integral == pytest.approx(1.0, abs=0.05)
    rebuilt = build_flow_from_state(flow_state(model))
    with torch.no_grad():
        assert torch.allclose(rebuilt.log_prob(x[:100]), model.log_prob(x[:100]))
        # Outside the support box the posterior density is zero.
        assert torch.isinf(rebuilt.log_density(torch.tensor([[-40.0, 1.0, 0.4]]))).all()


def test_flow_rejects_bad_standardisation():
    with pytest.raises(ValueError, match="feature_std"):
        CMDFlow(FlowArchitecture(1, 4), np.zeros(3), np.array([1.0, 0.0, 1.0]))
