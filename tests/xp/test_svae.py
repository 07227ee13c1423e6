"""The scatter VAE (paper 001 Sec. 2): loss terms by hand, both architectures, determinism and resume."""

import math

import numpy as np
import pytest
import torch

from latentsky.xp.svae import (
    ScatterVAE,
    SvaeSettings,
    XpNormalisation,
    build_svae,
    encode_xp,
    fit_normalisation,
    load_svae,
    save_svae,
    standardise,
    svae_loss_terms,
    train_svae,
)


def _hand_terms(x, sigma, x_hat, s_hat, mu, log_var):
    """Eqs. 3–5 star by star with Python floats."""
    out = []
    for i in range(len(x)):
        v = [sigma[i][k] ** 2 + s_hat[i][k] ** 2 for k in range(len(x[i]))]
        chi2 = sum((x[i][k] - x_hat[i][k]) ** 2 / v[k] for k in range(len(v))) / 2
        pen = sum(math.log(vk) for vk in v) / 2
        kl = sum(mu[i][j] ** 2 + math.exp(log_var[i][j]) - 1 - log_var[i][j] for j in range(len(mu[i]))) / 2
        out.append((chi2, pen, kl))
    return out


def test_loss_terms_match_a_hand_computation_for_both_reductions():
    rng = np.random.default_rng(3)
    n, N, nz = 4, 110, 6
    arrays = [rng.normal(size=(n, N)), rng.uniform(0.01, 0.5, (n, N)), rng.normal(size=(n, N))]
    arrays += [rng.uniform(0.05, 1, (n, N)), rng.normal(size=(n, nz)), rng.normal(size=(n, nz))]
    x, sigma, x_hat, s_hat, mu, log_var = arrays
    hand = _hand_terms(*(a.tolist() for a in arrays))
    tensors = [torch.as_tensor(a, dtype=torch.float64) for a in arrays]
    for reduction, (cn, kn) in {"sum": (1, 1), "mean": (N, nz)}.items():
        terms = svae_loss_terms(*tensors, reduction=reduction)
        for i, (chi2, pen, kl) in enumerate(hand):
            assert float(terms["chi2"][i]) == pytest.approx(chi2 / cn, rel=1e-12)
            assert float(terms["penalty"][i]) == pytest.approx(pen / cn, rel=1e-12)
            assert float(terms["kl"][i]) == pytest.approx(kl / kn, rel=1e-12)
            assert float(terms["total"][i]) == pytest.approx(chi2 / cn + pen / cn + kl / kn, rel=1e-12)
    # The KL term is the closed form of KL(N(μ, σ²) ‖ N(0, 1)), checked against torch.distributions.
    q = torch.distributions.Normal(tensors[4], torch.exp(0.5 * tensors[5]))
    p = torch.distributions.Normal(torch.zeros_like(tensors[4]), torch.ones_like(tensors[4]))
    closed = torch.distributions.kl_divergence(q, p).sum(dim=1)
    assert torch.allclose(svae_loss_terms(*tensors, reduction="sum")["kl"], closed)


def test_masked_coefficients_leave_the_loss_and_n_counts_the_rest():
    rng = np.random.default_rng(4)
    t = [torch.as_tensor(a) for a in (rng.normal(size=(2, 110)), rng.uniform(0.1, 1, (2, 110)))]
    x_hat, s_hat = torch.as_tensor(rng.normal(size=(2, 110))), torch.full((2, 110), 0.3, dtype=torch.float64)
    mu, lv = torch.zeros(2, 6, dtype=torch.float64), torch.zeros(2, 6, dtype=torch.float64)
    w = torch.ones(2, 110, dtype=torch.float64)
    w[:, :55] = 0  # a missing BP band
    masked = svae_loss_terms(t[0], t[1], x_hat, s_hat, mu, lv, "mean", w)
    rp_only = svae_loss_terms(t[0][:, 55:], t[1][:, 55:], x_hat[:, 55:], s_hat[:, 55:], mu, lv, "mean")
    assert torch.allclose(masked["total"], rp_only["total"])


def test_architectures_have_the_paper_and_code_shapes():
    paper = build_svae(SvaeSettings())
    widths = [m.out_features for m in paper.encoder if isinstance(m, torch.nn.Linear)]
    assert widths == [80, 50, 30] and paper.mu.out_features == 6
    dec = [m.out_features for m in paper.decoder if isinstance(m, torch.nn.Linear)]
    assert dec == [30, 50, 80, 110]
    assert isinstance(paper.scatter[-1], torch.nn.Sigmoid)
    code = build_svae(SvaeSettings(architecture="code"))
    assert [m.out_features for m in code.encoder if isinstance(m, torch.nn.Linear)] == [90, 70, 50, 30, 10]
    assert any(isinstance(m, torch.nn.BatchNorm1d) for m in code.encoder)
    # The authors' decoder starts with a bare Linear(6 → 10).
    assert isinstance(code.decoder[0], torch.nn.Linear) and code.decoder[0].out_features == 10
    assert not isinstance(code.decoder[1], torch.nn.GELU)
    for model in (paper, code):
        x_hat, s_hat, mu, lv = model.eval()(torch.zeros(3, 110))
        assert x_hat.shape == s_hat.shape == (3, 110) and mu.shape == lv.shape == (3, 6)
        assert torch.all(s_hat > 0)
    # Encoder 14,460 + heads 372 + two decoders of 14,750 each.
    assert sum(p.numel() for p in paper.parameters()) == 14_460 + 372 + 2 * 14_750


def test_unknown_settings_are_refused_by_name():
    with pytest.raises(ValueError, match="loss_reduction"):
        SvaeSettings(loss_reduction="median")
    with pytest.raises(ValueError, match="bogus"):
        SvaeSettings.from_dict({"bogus": 1})


def _toy(n=600, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 3))
    x = np.tanh(z @ rng.normal(size=(3, 110)))
    x = (x - x.mean(0)) / x.std(0)
    sigma = np.full_like(x, 0.05)
    x = x + sigma * rng.normal(size=x.shape)
    return x, sigma, np.ones_like(x)


def test_training_is_deterministic_and_resumes_to_the_same_weights(tmp_path):
    x, sigma, w = _toy()
    train, val = (x[:500], sigma[:500], w[:500]), (x[500:], sigma[500:], w[500:])
    settings = SvaeSettings(architecture="code", optimizer="adamw", lr=3e-3, batch_size=64, epochs=4)
    ref, hist = train_svae(train, val, settings, seed=5)
    again, _ = train_svae(train, val, settings, seed=5)
    for a, b in zip(ref.state_dict().values(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b)

    resume = tmp_path / "resume.pt"

    class Killed(Exception):
        pass

    def kill_after_two(epoch, row):
        if epoch == 2:
            raise Killed

    with pytest.raises(Killed):
        train_svae(train, val, settings, seed=5, resume_path=resume, progress=kill_after_two)
    resumed, hist_resumed = train_svae(train, val, settings, seed=5, resume_path=resume)
    for a, b in zip(ref.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert hist_resumed == hist
    # Training lowered the validation loss (the model learns something at all).
    assert hist[-1]["val_total"] < hist[0]["val_total"]


def test_normalisation_standardises_and_the_model_file_round_trips(tmp_path):
    rng = np.random.default_rng(1)
    g = 10 ** rng.uniform(4, 7, 200)
    coeff = g[:, None] * rng.normal(1, 0.2, (200, 110))
    errors = 1e-3 * np.abs(coeff)
    norm = fit_normalisation(coeff, g)
    x, sigma = standardise(coeff, errors, g, norm)
    assert np.allclose(x.mean(0), 0, atol=1e-12) and np.allclose(x.std(0), 1)
    assert np.allclose(sigma, errors / g[:, None] / norm.std)
    model = ScatterVAE()
    path = save_svae(tmp_path / "m.pt", model, SvaeSettings(), norm, [], {"rule": "test"})
    loaded, settings, norm2 = load_svae(path)
    assert settings == SvaeSettings() and isinstance(norm2, XpNormalisation)
    assert np.array_equal(norm2.std, norm.std)
    a, b = encode_xp(model, x), encode_xp(loaded, x)
    assert np.array_equal(a.mu, b.mu) and np.array_equal(a.s_hat, b.s_hat)
