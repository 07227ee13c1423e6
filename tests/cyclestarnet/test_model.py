"""The Cycle-StarNet network against the paper's Table 1 and its convolution arithmetic, the weighted masked MSE
against a hand computation, the critics' targets, and training: determinism and resume to the same weights."""

import numpy as np
import pytest
import torch

from latentsky.cyclestarnet.model import CycleStarNet, NetworkSettings, latent_length, spectrum_length
from latentsky.cyclestarnet.training import (
    Domains,
    TrainingSettings,
    latent_scores,
    train_cyclestarnet,
    weighted_masked_mse,
)
from latentsky.provenance.files import load_checkpoint

STRIDES = [4, 4, 4, 2, 2]  # E_synth/E_obs then E_sh (Table 1)


def test_convolution_arithmetic_and_refusal_of_other_lengths():
    assert spectrum_length(24, STRIDES) == 7167 and spectrum_length(4, STRIDES) == 2047
    assert spectrum_length(6, STRIDES) == 2559
    assert latent_length(7167, STRIDES) == 24 and latent_length(2047, STRIDES) == 4
    for n in (7214, 7166, 7168, 2048, 2000):
        with pytest.raises(ValueError, match=rf"^a spectrum of {n} pixels does not fit"):
            latent_length(n, STRIDES)
    with pytest.raises(ValueError, match="nearest lengths that do are 6911 and 7167"):
        NetworkSettings(n_pixels=7000)


def test_table_1_shapes_and_parameter_counts_at_width_1():
    settings = NetworkSettings(n_pixels=7167, width_factor=1.0, shared_z_filters=25, split_z_filters=4)
    model = CycleStarNet(settings)
    x = torch.zeros(2, 7167)
    hidden = model.encoder_obs(x.unsqueeze(1))
    assert hidden.shape == (2, 64, 447)
    z_sh, z_sp = model.obs_to_z(x)
    assert z_sh.shape == (2, 25, 24) and z_sp.shape == (2, 4, 24)
    assert model.decoder_sh(z_sh).shape == (2, 128, 447) and model.decoder_sp(z_sp).shape == (2, 32, 447)
    assert model.z_to_obs(z_sh, z_sp).shape == (2, 7167) and model.z_to_synth(z_sh).shape == (2, 7167)
    assert model.critic_obs.x_branch(x.unsqueeze(1)).shape == (2, 256, 6)
    assert model.critic_obs.z_branch(torch.cat([z_sh, z_sp], 1)).shape == (2, 512, 24)
    assert model.critic_obs_logit(x, z_sh, z_sp).shape == (2, 1)
    # The spec counted the authors' network: generator ≈ 2.7M, critics ≈ 1.0M parameters.
    n_gen = sum(p.numel() for p in model.generator_parameters())
    n_critic = sum(p.numel() for p in model.critic_parameters())
    assert n_gen == 2_686_815 and n_critic == 990_018
    # The shared latent is instance-normalised (no affine): zero mean, unit variance per channel.
    z = model.synth_to_z(torch.randn(3, 7167))
    np.testing.assert_allclose(z.mean(-1).detach(), 0.0, atol=1e-5)
    with pytest.raises(ValueError, match=r"this network takes \(batch, 7167\)"):
        model.synth_to_z(torch.zeros(1, 7214))


def test_the_critic_needs_enough_pixels_for_its_strided_branch():
    with pytest.raises(ValueError, match="critic's 5 stride-4 convolutions need more than 511 pixels"):
        CycleStarNet(
            NetworkSettings(
                n_pixels=511,
                shared_strides=[4, 2],
                split_strides=[4, 2],
                shared_filters=[128, 256],
                split_filters=[32, 32],
            )
        )


def test_weighted_masked_mse_against_a_hand_computation():
    pred = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    target = torch.tensor([[1.5, 2.0, 1.0], [1.0, -1.0, 2.0]])
    error = torch.tensor([[0.5, 1.0, 2.0], [1.0, 1.0, 4.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 1.0]])
    # ((−0.5/0.5)², 0, (2/2)², (−1/1)², masked → 0, (−2/4)²) summed = 1 + 0 + 1 + 1 + 0 + 0.25, over 6 pixels:
    # the masked pixel counts in the mean, as the authors' weighted_masked_mse_loss.
    assert float(weighted_masked_mse(pred, target, error, mask)) == pytest.approx(3.25 / 6)
    assert float(weighted_masked_mse(pred, target, 0.5)) == pytest.approx(
        float(((pred - target) / 0.5).pow(2).mean())
    )


def test_latent_scores_are_zero_for_identical_encodings_and_follow_the_authors_scaling():
    z = torch.randn(10, 3, 4)
    scores = latent_scores(z, z, z, z, z[:, :1], z[:, :1])
    assert scores == {"zsh": 0.0, "zsh_synth": 0.0, "zsh_obs": 0.0, "zsp": 0.0}
    # Two encodings at the extremes of the set differ by 1 in every scaled variable.
    lo, hi = torch.zeros(5, 2, 4), torch.ones(5, 2, 4)
    assert latent_scores(lo, hi, lo, hi)["zsh"] == pytest.approx(1.0)


def _domains(n=48, p=219, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(1, p))

    def spectra(k, noise):
        return (base * rng.uniform(0.5, 1.5, size=(k, 1)) + noise * rng.normal(size=(k, p))).astype(
            np.float32
        )

    err = np.full((n, p), 0.1, np.float32)
    weight = (rng.random((n, p)) > 0.01).astype(np.float32)
    return Domains(
        spectra(n, 0.0),
        spectra(n, 0.1),
        err,
        weight,
        spectra(16, 0.0),
        spectra(16, 0.1),
        err[:16],
        weight[:16],
        0.1,
    )


def _tiny_settings(**kw):
    base = {
        "batch_size": 4,
        "iterations": 12,
        "validate_every": 4,
        "checkpoint_every": 3,
        "warmup_reconstruction_only": 4,
        "precision": "fp32",
        "lr_milestones": [0.5],
    }
    return TrainingSettings(**{**base, **kw})


def test_training_is_deterministic_and_resumes_to_the_same_weights(tmp_path, small_network):
    domains, net = _domains(), small_network
    model_a, hist_a = train_cyclestarnet(domains, net, _tiny_settings(), seed=3)
    model_b, hist_b = train_cyclestarnet(domains, net, _tiny_settings(), seed=3)
    for (name, a), b in zip(model_a.state_dict().items(), model_b.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert hist_a == hist_b and [row["iteration"] for row in hist_a] == [4, 8, 12]

    # A run killed after iteration 7 (its last resume file at 6) continues to the same weights and history.
    resume = tmp_path / "resume.pt"

    class Killed(Exception):
        pass

    def kill_at_7(iteration, row):
        if iteration >= 8:
            raise Killed

    with pytest.raises(Killed):
        train_cyclestarnet(
            domains, net, _tiny_settings(), seed=3, resume_path=resume, resume_record={}, progress=kill_at_7
        )
    model_c, hist_c = train_cyclestarnet(
        domains, net, _tiny_settings(), seed=3, resume_path=resume, resume_record={}
    )
    for (name, a), c in zip(model_a.state_dict().items(), model_c.state_dict().values(), strict=True):
        assert torch.equal(a, c), name
    assert hist_c == hist_a
    # The learning rate fell by lr_decay at half the run.
    assert hist_a[0]["lr"] == pytest.approx(1e-3) and hist_a[-1]["lr"] == pytest.approx(1e-3 * 0.7)


def test_the_critics_take_their_own_learning_rate(tmp_path, small_network):
    # critic_lr (the demo's lr/10) reaches the critics' optimiser only, and decays with the same schedule.
    resume = tmp_path / "resume.pt"
    settings = _tiny_settings(critic_lr=2e-4)
    train_cyclestarnet(_domains(), small_network, settings, seed=3, resume_path=resume, resume_record={})
    state, _ = load_checkpoint(resume)
    assert state["opt_g"]["param_groups"][0]["lr"] == pytest.approx(1e-3 * 0.7)
    assert state["opt_c"]["param_groups"][0]["lr"] == pytest.approx(2e-4 * 0.7)
    with pytest.raises(ValueError, match="critic_lr must be > 0"):
        TrainingSettings(critic_lr=0.0)


def test_training_reduces_the_reconstruction_loss_and_another_seed_differs(small_network):
    domains, net = _domains(n=64), small_network
    settings = _tiny_settings(iterations=150, validate_every=50, batch_size=8, lr=1e-3)
    _, hist = train_cyclestarnet(domains, net, settings, seed=1)
    assert hist[-1]["rec_obs"] < 0.5 * hist[0]["rec_obs"]
    assert hist[-1]["x_synthobs_val"] < hist[0]["x_synthobs_val"]
    _, other = train_cyclestarnet(domains, net, settings, seed=2)
    assert other[-1]["rec_obs"] != hist[-1]["rec_obs"]


def test_settings_name_a_bad_key():
    with pytest.raises(ValueError, match=r"unknown cyclestarnet.training keys \['iters'\]"):
        TrainingSettings.from_config({"iters": 3})
    with pytest.raises(ValueError, match="loss_weights needs synth, obs, gen and dis"):
        TrainingSettings(loss_weights={"synth": 1.0})
