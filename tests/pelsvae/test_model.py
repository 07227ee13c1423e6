"""PELS-VAE (paper 000 Sec. 3): causal TCN, eq. 4 by hand, scaling, shapes, generation, resume, learning."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from latentsky.pelsvae.config import SIGMA_FLOOR, PelsVaeConfig
from latentsky.pelsvae.data import LightCurveScaler, frame_to_tensors
from latentsky.pelsvae.evaluation import class_mean_templates, template_curves, weighted_mse
from latentsky.pelsvae.model import TCN, PelsVae, encode, generate, pelsvae_loss, reconstruct, sample_latents
from latentsky.pelsvae.training import load_pelsvae, save_pelsvae, train_pelsvae

TINY = dict(h_size=8, z_dim=3, n_blocks=2, kernel_size=3, fc_sizes=(8,), t_len=40, dropout=0.2)


def synthetic_curves(
    n: int, rng: np.random.Generator, n_points: int = 40, classes=("RRLYR", "CEP"), phase_jitter: bool = True
) -> pd.DataFrame:
    """Light curves in the results/lightcurves layout: RRLYR a sawtooth, CEP a sinusoid, of amplitude
    0.1–0.8 mag around a random median magnitude, with 0.01–0.015 mag Gaussian errors (and noise)."""
    rows = []
    for i in range(n):
        cls = classes[i % len(classes)]
        phase = (
            np.sort(rng.uniform(0.0, 1.0, n_points)) if phase_jitter else np.linspace(0, 1, n_points, False)
        )
        amp = rng.uniform(0.1, 0.8)
        shape = (phase - 0.5) if cls == "RRLYR" else 0.5 * np.cos(2 * np.pi * phase)
        err = 0.01 * rng.uniform(1.0, 1.5, n_points)
        mag = 15.0 + rng.normal(0.0, 1.0) + amp * shape + rng.normal(0.0, 1.0, n_points) * err
        rows.append(
            {
                "ogle_id": f"SYN-{i:04d}",
                "var_class": cls,
                "phase": phase,
                "mag": mag,
                "err": err,
                "period": rng.uniform(0.3, 30.0),
                "teff": 5000.0 + 3000.0 * amp,
                "abs_g": rng.normal(0.5, 1.0),
                "amp": amp,
            }
        )
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------------------------------------
# 1. Causality of the TCN
# ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("part", ["encoder_seq", "decoder_seq"])
def test_tcn_is_causal_with_the_stated_receptive_field(part):
    torch.manual_seed(0)
    model = PelsVae(PelsVaeConfig(**TINY)).eval()  # eval: no dropout
    net = getattr(model, part)
    assert isinstance(net, TCN)
    # Two blocks, kernel 3, dilations 1 and 2, two convolutions each: 1 + 2·2·(1 + 2) = 13 steps.
    assert net.receptive_field == 13
    n_in = net.blocks[0].net[0].conv.in_channels
    x = torch.randn(2, 40, n_in)
    t = 25
    with torch.no_grad():
        y = net(x)
        future = x.clone()
        future[:, t + 1 :] += torch.randn_like(future[:, t + 1 :])
        y_future = net(future)
        # Nothing at steps ≤ t moves when only steps > t change: exactly, not approximately.
        assert torch.equal(y[:, : t + 1], y_future[:, : t + 1])
        assert not torch.allclose(y[:, t + 1 :], y_future[:, t + 1 :])
        now = x.clone()
        now[:, t] += 1.0
        assert not torch.allclose(net(now)[:, t], y[:, t])
        # The oldest step that reaches t is t − 12; t − 13 is out of reach.
        edge = x.clone()
        edge[:, t - 12] += 1.0
        assert not torch.allclose(net(edge)[:, t], y[:, t])
        beyond = x.clone()
        beyond[:, t - 13] += 1.0
        assert torch.equal(net(beyond)[:, t], y[:, t])


def test_encoder_ignores_padding_after_each_curves_length():
    torch.manual_seed(0)
    for arch in ("tcn", "gru"):
        model = PelsVae(PelsVaeConfig(**{**TINY, "seq_arch": arch})).eval()
        mag, err, dt = torch.rand(3, 40), torch.rand(3, 40) * 0.01, torch.rand(3, 40) / 40
        phase = torch.cumsum(dt, dim=1)
        onehot = torch.eye(8)[:3]
        lengths = torch.tensor([40, 31, 7])
        with torch.no_grad():
            mu, logvar = model.encode(mag, err, phase, dt, onehot, lengths=lengths)
            garbage = mag.clone()
            garbage[1, 31:] = 5.0
            garbage[2, 7:] = -3.0
            phase = phase.clone()
            phase[1, 31:] = 0.0  # padding phases do not matter either
            mu2, logvar2 = model.encode(garbage, err, phase, dt, onehot, lengths=lengths)
        assert torch.equal(mu, mu2) and torch.equal(logvar, logvar2)


# ----------------------------------------------------------------------------------------------------------
# 2. Eq. 4, term by term, against numbers computed by hand
# ----------------------------------------------------------------------------------------------------------


def test_loss_terms_match_hand_computation():
    x = np.array([[0.5, 0.6, 0.7], [0.2, 0.3, 0.9]])
    x_hat = np.array([[0.52, 0.57, 0.7], [0.25, 0.3, 0.1]])
    sig = np.array([[0.01, 0.02, 0.05], [1e-6, 0.01, 0.02]])  # 1e-6 is below the floor
    sig_hat = np.array([[0.02, 0.02, 0.04], [0.01, 0.005, 0.5]])
    mask = np.array([[True, True, True], [True, True, False]])  # last point is padding
    mu = np.array([[0.5, -1.0], [0.0, 2.0]])
    logvar = np.array([[0.0, np.log(0.25)], [np.log(4.0), -1.0]])

    sig_c = np.maximum(sig, SIGMA_FLOOR)
    sig_hat_c = np.maximum(sig_hat, SIGMA_FLOOR)
    # (1) error-weighted MSE over the 5 real points: (0.02/0.01)² + (0.03/0.02)² + 0 + (0.05/1e-4)² + 0.
    recon = (4.0 + 2.25 + 0.0 + 250000.0 + 0.0) / 5
    np.testing.assert_allclose(recon, (((x - x_hat) / sig_c) ** 2)[mask].mean())
    # (2) ½ Σ(σ² + μ² − log σ² − 1) per curve, mean over curves, times β.
    kl_curves = [
        0.5 * ((1 + 0.25 - 0 - 1) + (0.25 + 1 - np.log(0.25) - 1)),
        0.5 * ((4 + 0 - np.log(4.0) - 1) + (np.exp(-1.0) + 4 + 1 - 1)),
    ]
    # (3) KL(N(0, σ̂²) ‖ N(0, σ²)) = log(σ/σ̂) + σ̂²/(2σ²) − ½ per real point, mean.
    r = sig_hat_c / sig_c
    err_kl = (np.log(1 / r) + r**2 / 2 - 0.5)[mask].mean()
    first = np.log(0.5) + 2.0 - 0.5  # σ = 0.01, σ̂ = 0.02
    np.testing.assert_allclose((np.log(1 / r) + r**2 / 2 - 0.5)[0, 0], first)

    t = {k: torch.tensor(v, dtype=torch.float64) for k, v in dict(x=x, xh=x_hat, s=sig, sh=sig_hat).items()}
    for beta in (1.0, 0.75, 0.0):
        out = pelsvae_loss(
            t["x"],
            t["xh"],
            t["s"],
            t["sh"],
            torch.tensor(mu),
            torch.tensor(logvar),
            beta=beta,
            mask=torch.tensor(mask),
        )
        assert out["recon"].item() == pytest.approx(recon, rel=1e-12)
        assert out["kl"].item() == pytest.approx(beta * np.mean(kl_curves), rel=1e-12, abs=1e-15)
        assert out["err_kl"].item() == pytest.approx(err_kl, rel=1e-12)
        assert out["total"].item() == pytest.approx(recon + beta * np.mean(kl_curves) + err_kl, rel=1e-12)
    # Perfect reconstruction with σ̂ = σ and q(z|x) = N(0, I) costs nothing.
    zero = pelsvae_loss(t["x"], t["x"], t["s"], t["s"], torch.zeros(2, 2), torch.zeros(2, 2), beta=0.75)
    assert zero["total"].item() == 0.0


# ----------------------------------------------------------------------------------------------------------
# 3. Scaling
# ----------------------------------------------------------------------------------------------------------


def test_scaler_round_trips_and_keeps_amplitudes():
    rng = np.random.default_rng(3)
    train = synthetic_curves(60, rng)
    scaler = LightCurveScaler.fit(train)
    # The fitted map: 0.05 % / 99.95 % quantiles of mag − median, widened by 5 % of their span.
    dm = np.concatenate([np.asarray(m) - np.median(m) for m in train["mag"]])
    lo, hi = np.quantile(dm, [5e-4, 1 - 5e-4])
    assert scaler.low == pytest.approx(lo - 0.05 * (hi - lo))
    assert scaler.high == pytest.approx(hi + 0.05 * (hi - lo))
    # Round trip to 1e-6 mag, with the median given back.
    mag, err = np.asarray(train["mag"][0]), np.asarray(train["err"][0])
    x, s, med = scaler.transform(mag, err)
    back, back_err = scaler.inverse_transform(x, s, med)
    np.testing.assert_allclose(back, mag, atol=1e-6, rtol=0)
    np.testing.assert_allclose(back_err, err, atol=1e-9, rtol=0)
    # Relative magnitudes by default.
    rel, _ = scaler.inverse_transform(x, s)
    np.testing.assert_allclose(rel, mag - np.median(mag), atol=1e-9)
    # Two curves with 0.2 and 0.8 mag peak-to-peak amplitude at very different brightness keep 1:4.
    phase = np.linspace(0, 1, 100, endpoint=False)
    curves = np.stack([12.0 + 0.1 * np.sin(2 * np.pi * phase), 18.0 + 0.4 * np.sin(2 * np.pi * phase)])
    xs, ss, _ = scaler.transform(curves, np.full_like(curves, 0.01))
    ptp = xs.max(axis=1) - xs.min(axis=1)
    assert ptp[1] / ptp[0] == pytest.approx(4.0, rel=1e-9)
    # Errors share the magnitudes' scale: an error of 1/4 of the amplitude stays 1/4.
    assert ss[0, 0] / ptp[0] == pytest.approx(0.01 / 0.2)


def test_scaler_standardises_physics_over_rows_that_have_all_three():
    rng = np.random.default_rng(4)
    train = synthetic_curves(20, rng)
    train.loc[[0, 1], "teff"] = np.nan  # rows 0 and 1 do not count, for any parameter
    scaler = LightCurveScaler.fit(train)
    ok = train.iloc[2:]
    expected_mean = [ok["teff"].mean(), ok["abs_g"].mean(), np.log10(ok["period"]).mean()]
    expected_std = [ok["teff"].std(ddof=0), ok["abs_g"].std(ddof=0), np.log10(ok["period"]).std(ddof=0)]
    np.testing.assert_allclose(scaler.phys_mean, expected_mean)
    np.testing.assert_allclose(scaler.phys_std, expected_std)
    z = scaler.transform_physics(ok["teff"], ok["abs_g"], ok["period"])
    np.testing.assert_allclose(z.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(z.std(axis=0), 1.0)
    assert LightCurveScaler.from_dict(scaler.as_dict()) == scaler


# ----------------------------------------------------------------------------------------------------------
# 4. Shapes, configuration and bad input
# ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("arch", ["tcn", "gru", "lstm"])
@pytest.mark.parametrize("use_physics", [False, True])
def test_shapes_for_every_architecture(arch, use_physics):
    rng = np.random.default_rng(5)
    frame = synthetic_curves(6, rng)
    # Unequal lengths (the workflow makes a few 298-point curves) are padded and masked.
    frame.at[1, "phase"], frame.at[1, "mag"], frame.at[1, "err"] = (
        frame.loc[1, c][:33] for c in ("phase", "mag", "err")
    )
    config = PelsVaeConfig(**{**TINY, "seq_arch": arch, "n_layers": 2, "use_physics": use_physics})
    scaler = LightCurveScaler.fit(frame)
    batch = frame_to_tensors(frame, config, scaler)
    assert batch.mag.shape == (6, 40) and batch.onehot.shape == (6, 8)
    assert batch.lengths.tolist() == [40, 33, 40, 40, 40, 40]
    assert int(batch.mask.sum()) == 5 * 40 + 33
    assert (batch.physics is not None) == use_physics
    if use_physics:
        assert batch.physics.shape == (6, 3)
    # Δt_0 = 0 and Δt_i = phase_i − phase_{i−1}.
    np.testing.assert_allclose(batch.dt[0, 1:].numpy(), np.diff(frame["phase"][0]), rtol=1e-5, atol=1e-7)
    assert batch.dt[:, 0].abs().max() == 0
    torch.manual_seed(0)
    model = PelsVae(config)
    out = model(batch)
    assert out["mu"].shape == out["logvar"].shape == out["z"].shape == (6, 3)
    assert out["mag"].shape == out["err"].shape == (6, 40)
    assert float(out["mag"].detach().min()) > 0 and float(out["mag"].detach().max()) < 1  # sigmoid
    mu = encode(model, frame, scaler)
    assert mu.shape == (6, 3)
    mu2, logvar = encode(model, frame, scaler, return_logvar=True)
    np.testing.assert_array_equal(mu, mu2)
    draws = sample_latents(mu2, logvar, 10, np.random.default_rng(0))
    assert draws.shape == (6, 10, 3)
    mags, errs = reconstruct(model, frame, scaler)
    assert [len(m) for m in mags] == [40, 33, 40, 40, 40, 40] and len(errs) == 6


def test_missing_physics_and_bad_rows_are_clear_errors():
    rng = np.random.default_rng(6)
    frame = synthetic_curves(4, rng)
    config = PelsVaeConfig(**{**TINY, "use_physics": True})
    scaler = LightCurveScaler.fit(frame)
    no_teff = frame.copy()
    no_teff.loc[2, "teff"] = np.nan
    with pytest.raises(ValueError, match=r"column 'teff'.*SYN-0002.*has_physics"):
        frame_to_tensors(no_teff, config, scaler)
    with pytest.raises(ValueError, match=r"abs_g"):
        frame_to_tensors(frame.drop(columns="abs_g"), config, scaler)
    bad_period = frame.copy()
    bad_period.loc[0, "period"] = -1.0
    with pytest.raises(ValueError, match=r"column 'period'"):
        frame_to_tensors(bad_period, config, scaler)
    # The same rows are fine for a cVAE, which does not read the physics.
    frame_to_tensors(no_teff.drop(columns="abs_g"), PelsVaeConfig(**TINY), scaler)
    unknown = frame.copy()
    unknown.loc[0, "var_class"] = "MIRA"
    with pytest.raises(ValueError, match=r"column 'var_class'.*MIRA"):
        frame_to_tensors(unknown, config, scaler)
    unsorted = frame.copy()
    unsorted.at[3, "phase"] = frame["phase"][3][::-1]
    with pytest.raises(ValueError, match=r"SYN-0003.*'phase' must be ascending"):
        frame_to_tensors(unsorted, config, scaler)
    with pytest.raises(ValueError, match="seq_arch"):
        PelsVaeConfig(seq_arch="transformer")
    with pytest.raises(ValueError, match="unknown pelsvae config keys"):
        PelsVaeConfig.from_dict({"hsize": 3})


def test_config_defaults_are_table2_best_and_round_trip():
    c = PelsVaeConfig()
    table2 = dict(seq_arch="tcn", h_size=48, z_dim=4, beta=0.75, dropout=0.2, batch_size=128, lr=1e-3)
    table2.update(lr_schedule="cosine", n_blocks=5, kernel_size=5, dilation=2, n_layers=1, epochs=100)
    assert {k: getattr(c, k) for k in table2} == table2
    assert c.classes == ("ACEP", "CEP", "DSCT", "ECL", "ELL", "LPV", "RRLYR", "T2CEP")
    assert PelsVaeConfig.from_dict(c.as_dict()) == c
    # Paper-size TCN: receptive field 1 + 2·4·(1 + 2 + 4 + 8 + 16) = 249 steps.
    assert PelsVae(c).encoder_seq.receptive_field == 249


# ----------------------------------------------------------------------------------------------------------
# 5. Generation at any cadence
# ----------------------------------------------------------------------------------------------------------


def test_generate_returns_values_in_the_callers_phase_order():
    torch.manual_seed(1)
    config = PelsVaeConfig(**TINY)
    model = PelsVae(config).eval()
    scaler = LightCurveScaler(low=-0.6, high=0.9, median_err=0.01)
    rng = np.random.default_rng(7)
    phases = rng.uniform(0, 1, 25)
    z = rng.normal(size=(3, config.z_dim))
    for sampling in ("grid", "direct"):
        mag, err = generate(
            model, scaler, ["RRLYR", "CEP", "ECL"], z, phases, [14.0, 15.0, 16.0], sampling=sampling
        )
        order = np.argsort(phases)
        mag_s, err_s = generate(
            model, scaler, ["RRLYR", "CEP", "ECL"], z, phases[order], [14, 15, 16], sampling=sampling
        )
        np.testing.assert_array_equal(mag[:, order], mag_s)
        np.testing.assert_array_equal(err[:, order], err_s)
    # Grid sampling decodes t_len evenly spaced phases: at those phases it is the direct decoding.
    grid = (np.arange(config.t_len) + 0.5) / config.t_len
    np.testing.assert_allclose(
        generate(model, scaler, "CEP", z[1], grid)[0],
        generate(model, scaler, "CEP", z[1], grid, sampling="direct")[0],
        atol=1e-9,
    )
    assert mag.shape == err.shape == (3, 25)
    # The medians are added per curve, and the scaled output maps into [median + low, median + high].
    assert np.all((mag[1] > 15.0 - 0.6) & (mag[1] < 15.0 + 0.9))
    # Phases are periodic: t/P = 1.3 is phase 0.3.
    m1, _ = generate(model, scaler, "CEP", z[1], phases + 1.0)
    m0, _ = generate(model, scaler, "CEP", z[1], phases)
    np.testing.assert_allclose(m1, m0, atol=1e-6)
    assert m0.shape == (25,)
    with pytest.raises(ValueError, match="z must have 3 columns"):
        generate(model, scaler, "CEP", np.zeros((2, 5)), phases)


# ----------------------------------------------------------------------------------------------------------
# 6. Determinism and resume
# ----------------------------------------------------------------------------------------------------------

RESUME_CONFIG = PelsVaeConfig(**{**TINY, "batch_size": 16})  # 48 curves: 3 steps per epoch


class Interrupt(Exception):
    pass


def _stop_after(n: int):
    def progress(step: int, epoch: int, loss: float) -> None:
        if step == n:
            raise Interrupt

    return progress


def _assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


@pytest.fixture(scope="module")
def resume_data():
    rng = np.random.default_rng(8)
    return synthetic_curves(48, rng), synthetic_curves(16, rng)


@pytest.fixture(scope="module")
def uninterrupted(resume_data):
    train, val = resume_data
    return train_pelsvae(train, val, RESUME_CONFIG, seed=11, epochs=3)


def test_same_seed_gives_identical_weights_and_history(resume_data, uninterrupted):
    train, val = resume_data
    again = train_pelsvae(train, val, RESUME_CONFIG, seed=11, epochs=3)
    _assert_same_weights(uninterrupted.model, again.model)
    pd.testing.assert_frame_equal(uninterrupted.history, again.history)
    assert uninterrupted.final_step == 9
    other = train_pelsvae(train, val, RESUME_CONFIG, seed=12, epochs=3)
    assert not torch.equal(other.model.fc_mu.weight, uninterrupted.model.fc_mu.weight)
    # History: one row per epoch; cosine lr = lr · ½(1 + cos(π e / E)) during epoch e = 0, 1, 2.
    h = uninterrupted.history
    assert h["epoch"].tolist() == [1, 2, 3]
    np.testing.assert_allclose(h["lr"], 1e-3 * 0.5 * (1 + np.cos(np.pi * np.arange(3) / 3)))
    np.testing.assert_allclose(h["val_loss"], h["val_recon"] + h["val_kl"] + h["val_err_kl"], rtol=1e-6)


@pytest.mark.parametrize(
    ("every", "stop_at"),
    [
        (2, 5),
        (3, 7),
    ],  # resume mid-epoch (checkpoint at step 4), and between an epoch's last step and its validation
)
def test_interrupted_run_resumes_to_bit_identical_weights(
    tmp_path, resume_data, uninterrupted, every, stop_at
):
    train, val = resume_data
    path = tmp_path / "resume.pt"
    with pytest.raises(Interrupt):
        train_pelsvae(
            train,
            val,
            RESUME_CONFIG,
            seed=11,
            epochs=3,
            resume_path=path,
            checkpoint_every=every,
            resume_record={"rule": "test"},
            progress=_stop_after(stop_at),
        )
    # A run with another seed ignores this resume file (and overwrites it, so do it on a copy).
    other = tmp_path / "other.pt"
    other.write_bytes(path.read_bytes())
    fresh = train_pelsvae(train, val, RESUME_CONFIG, seed=12, epochs=3, resume_path=other)
    assert fresh.resumed_from_step == 0
    # With dropout 0.2 this holds only if torch's RNG state (dropout masks, ε) comes from the checkpoint.
    resumed = train_pelsvae(
        train, val, RESUME_CONFIG, seed=11, epochs=3, resume_path=path, checkpoint_every=every
    )
    assert resumed.resumed_from_step == (stop_at // every) * every
    assert resumed.final_step == 9
    _assert_same_weights(uninterrupted.model, resumed.model)
    pd.testing.assert_frame_equal(uninterrupted.history, resumed.history)


@pytest.mark.parametrize(
    "variant",
    [
        dict(
            seq_arch="lstm", n_layers=2, lr_schedule="plateau", lr_patience=0, lr_gamma=0.5, use_physics=True
        ),
        dict(seq_arch="gru", lr_schedule="exponential", lr_gamma=0.5),
    ],
)
def test_other_architectures_and_schedules_resume_too(tmp_path, resume_data, variant):
    """Every scheduler's and RNN's state survives the checkpoint file (loaded with weights_only=True)."""
    train, val = resume_data
    config = PelsVaeConfig(**{**TINY, "batch_size": 16, **variant})
    full = train_pelsvae(train, val, config, seed=5, epochs=3)
    path = tmp_path / "resume.pt"
    with pytest.raises(Interrupt):
        train_pelsvae(
            train,
            val,
            config,
            seed=5,
            epochs=3,
            resume_path=path,
            checkpoint_every=4,
            progress=_stop_after(6),
        )
    resumed = train_pelsvae(train, val, config, seed=5, epochs=3, resume_path=path, checkpoint_every=4)
    assert resumed.resumed_from_step == 4
    _assert_same_weights(full.model, resumed.model)
    pd.testing.assert_frame_equal(full.history, resumed.history)
    lr = full.history["lr"].to_numpy()
    if config.lr_schedule == "exponential":
        np.testing.assert_allclose(lr, 1e-3 * 0.5 ** np.arange(3))
    else:  # plateau with patience 0 halves the rate after each epoch whose validation loss is no record
        val_loss = full.history["val_loss"].to_numpy()
        record = np.concatenate([[True], val_loss[1:2] < val_loss[:1] * (1 - 1e-4)])
        np.testing.assert_allclose(lr[1:], 1e-3 * 0.5 ** np.cumsum(~record)[:2])


def test_saved_model_loads_back(tmp_path, resume_data, uninterrupted):
    train, _ = resume_data
    path = tmp_path / "model.pt"
    save_pelsvae(path, uninterrupted, {"rule": "train_pelsvae"})
    model, scaler, config, extra = load_pelsvae(path)
    assert config == uninterrupted.config and config.epochs == 3
    assert scaler == uninterrupted.scaler
    _assert_same_weights(uninterrupted.model, model)
    np.testing.assert_array_equal(encode(model, train, scaler), encode(uninterrupted.model, train, scaler))
    pd.testing.assert_frame_equal(extra["history"], uninterrupted.history)
    assert extra["provenance"] == {"rule": "train_pelsvae"} and extra["seed"] == 11


# ----------------------------------------------------------------------------------------------------------
# 7. It learns
# ----------------------------------------------------------------------------------------------------------


def test_short_training_beats_the_class_mean_template():
    """Held-out curves: PELS-VAE's reconstruction has a lower error-weighted MSE than each class's mean
    curve, i.e. the latent space carries what distinguishes curves of one class (here: the amplitude)."""
    rng = np.random.default_rng(1)
    n_points = 64
    train = synthetic_curves(192, rng, n_points)
    val = synthetic_curves(32, rng, n_points)
    test = synthetic_curves(64, rng, n_points)
    config = PelsVaeConfig(
        h_size=16,
        n_blocks=3,
        kernel_size=5,
        fc_sizes=(32,),
        t_len=n_points,
        batch_size=16,
        lr=5e-3,
        beta=0.1,
        dropout=0.0,
    )
    result = train_pelsvae(train, val, config, seed=0, epochs=40)
    assert result.history["val_loss"].iloc[-1] < 0.5 * result.history["val_loss"].iloc[0]
    recon, _ = reconstruct(result.model, test, result.scaler)
    vae = weighted_mse(list(test["mag"]), recon, list(test["err"]))
    # Class-mean template: mean of (mag − median) in 20 phase bins over the training curves of the class.
    template = template_curves(test, class_mean_templates(train))
    baseline = weighted_mse(list(test["mag"]), template, list(test["err"]))
    assert vae < 0.5 * baseline, (vae, baseline)

    # The latent means encode the amplitude, which the template cannot know: a linear map fitted on the
    # training curves' μ predicts the held-out amplitudes (R² against their spread).
    def design(frame: pd.DataFrame) -> np.ndarray:
        mu = encode(result.model, frame, result.scaler)
        is_cep = (frame["var_class"] == "CEP").to_numpy(dtype=float)[:, None]
        return np.column_stack([mu, mu * is_cep, is_cep, np.ones(len(frame))])

    coef, *_ = np.linalg.lstsq(design(train), train["amp"].to_numpy(), rcond=None)
    residual = test["amp"].to_numpy() - design(test) @ coef
    r2 = 1 - residual.var() / test["amp"].var(ddof=0)
    assert r2 > 0.6, r2
