"""The Payne emulator (Ting et al. 2019; Cycle-StarNet's ``build_emulator``): forward and label scaling by
hand, the two published file formats against a direct numpy forward, training accuracy on an analytic toy,
best-validation weights, determinism, resume, and label derivatives."""

from collections import OrderedDict

import numpy as np
import pytest
import torch

from latentsky.payne import (
    LEAKY_SLOPE,
    PayneEmulator,
    PayneSettings,
    emulator_error,
    load_cycle_sn_payne,
    load_payne,
    load_payne_npz,
    save_payne,
    train_payne,
)
from latentsky.provenance.files import save_checkpoint


@pytest.fixture(autouse=True)
def _one_thread():
    """One torch thread: the training tests are small matrix products, which a second thread on a shared
    2-core machine slows down rather than speeds up (and bitwise determinism is checked within one setting)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# --- forward and label scaling -----------------------------------------------------------------------------


def _hand_net() -> PayneEmulator:
    """2 labels → 2 → 2 → 3 pixels with small integer-ish weights, so the forward can be done on paper."""
    model = PayneEmulator(2, 3, hidden=2, y_min=[0.0, 10.0], y_max=[2.0, 30.0]).double()
    with torch.no_grad():
        model.net[0].weight.copy_(torch.tensor([[1.0, 2.0], [-3.0, 1.0]], dtype=torch.float64))
        model.net[0].bias.copy_(torch.tensor([0.1, 0.0], dtype=torch.float64))
        model.net[2].weight.copy_(torch.tensor([[1.0, 0.0], [2.0, -1.0]], dtype=torch.float64))
        model.net[2].bias.copy_(torch.tensor([0.5, -0.2], dtype=torch.float64))
        model.net[4].weight.copy_(torch.tensor([[1.0, 1.0], [0.0, 2.0], [-1.0, 0.0]], dtype=torch.float64))
        model.net[4].bias.copy_(torch.tensor([1.0, 0.0, 0.5], dtype=torch.float64))
    return model


def test_label_scaling_and_forward_match_a_hand_computation():
    model = _hand_net()
    y = torch.tensor([[1.5, 12.0]], dtype=torch.float64)
    # (1.5 − 0)/2 − 0.5 = 0.25; (12 − 10)/20 − 0.5 = −0.4
    assert torch.allclose(model.scale_labels(y), torch.tensor([[0.25, -0.4]], dtype=torch.float64))
    # Layer 1: [0.25 − 0.8 + 0.1, −0.75 − 0.4] = [−0.45, −1.15] → LeakyReLU(0.01) → [−0.0045, −0.0115]
    # Layer 2: [−0.0045 + 0.5, −0.009 + 0.0115 − 0.2] = [0.4955, −0.1975] → [0.4955, −0.001975]
    # Output: [0.4955 − 0.001975 + 1, 2·(−0.001975), −0.4955 + 0.5]
    expected = torch.tensor([[1.493525, -0.00395, 0.0045]], dtype=torch.float64)
    assert torch.allclose(model(y), expected, rtol=0, atol=1e-12)
    # The training labels' extremes map to ∓0.5.
    ends = torch.tensor([[0.0, 10.0], [2.0, 30.0]], dtype=torch.float64)
    assert torch.equal(
        model.scale_labels(ends), torch.tensor([[-0.5, -0.5], [0.5, 0.5]], dtype=torch.float64)
    )
    assert LEAKY_SLOPE == 0.01


def test_scaler_refuses_a_label_without_range():
    with pytest.raises(ValueError, match=r"labels \[1\]"):
        PayneEmulator(2, 3, hidden=4, y_min=[0.0, 5.0], y_max=[1.0, 5.0])
    with pytest.raises(ValueError, match="3 minima"):
        PayneEmulator(3, 3, hidden=4, y_min=[0.0, 5.0], y_max=[1.0, 6.0])


def test_label_gradients_by_autograd_equal_central_finite_differences():
    torch.manual_seed(5)
    y_min, y_max = np.array([3800.0, 0.5, -1.5]), np.array([5500.0, 3.5, 0.5])
    model = PayneEmulator(3, 20, hidden=16, y_min=y_min, y_max=y_max).double()
    rng = np.random.default_rng(5)
    for y0 in rng.uniform(y_min, y_max, size=(4, 3)):
        y = torch.tensor(y0, dtype=torch.float64)
        jac = torch.autograd.functional.jacobian(model, y)  # (20 pixels, 3 labels)
        fd = torch.empty_like(jac)
        for j in range(3):
            h = 1e-6 * (y_max[j] - y_min[j])
            e = torch.zeros(3, dtype=torch.float64)
            e[j] = h
            with torch.no_grad():
                fd[:, j] = (model(y + e) - model(y - e)) / (2 * h)
        # The net is piecewise linear in the labels, so the central difference is exact away from a LeakyReLU
        # kink (a kink within ±1e-6 of the label range has probability ~1e-5 here); what is left is rounding,
        # ε·|f|/h ≈ 1e-16·1/1e-6 per unit of scaled label — 1e-7 relative leaves a wide margin.
        assert torch.allclose(jac, fd, rtol=1e-7, atol=1e-7 * float(jac.abs().max()))
        assert float(jac.abs().max()) > 0


# --- published formats -------------------------------------------------------------------------------------


def _published_arrays(n_labels=4, hidden=7, n_pixels=11, seed=0) -> dict[str, np.ndarray]:
    """Arrays as The Payne's training.py saves them: float32 ``Linear`` parameters (out, in), float64 scaler."""
    rng = np.random.default_rng(seed)
    shapes = {
        "w_array_0": (hidden, n_labels),
        "w_array_1": (hidden, hidden),
        "w_array_2": (n_pixels, hidden),
        "b_array_0": (hidden,),
        "b_array_1": (hidden,),
        "b_array_2": (n_pixels,),
    }
    arrays = {k: rng.normal(0, 0.5, s).astype(np.float32) for k, s in shapes.items()}
    arrays["x_min"] = np.array([3500.0, 0.0, -2.0, 0.5])[:n_labels]
    arrays["x_max"] = np.array([6000.0, 5.0, 0.5, 2.5])[:n_labels]
    return arrays


def _numpy_payne(labels: np.ndarray, a: dict[str, np.ndarray]) -> np.ndarray:
    """The forward of The_Payne's spectral_model.get_spectrum_from_neural_net, star by star, in float64."""

    def leaky_relu(z):
        return np.maximum(0, z) + 0.01 * np.minimum(0, z)

    out = []
    for y in labels:
        scaled = (y - a["x_min"]) / (a["x_max"] - a["x_min"]) - 0.5
        inside = np.einsum("ij,j->i", a["w_array_0"].astype(np.float64), scaled) + a["b_array_0"]
        outside = np.einsum("ij,j->i", a["w_array_1"].astype(np.float64), leaky_relu(inside)) + a["b_array_1"]
        out.append(
            np.einsum("ij,j->i", a["w_array_2"].astype(np.float64), leaky_relu(outside)) + a["b_array_2"]
        )
    return np.array(out)


def _labels(a, n=6, seed=1):
    return np.random.default_rng(seed).uniform(a["x_min"], a["x_max"], size=(n, len(a["x_min"])))


def test_npz_loader_reproduces_the_payne_forward(tmp_path):
    a = _published_arrays()
    path = tmp_path / "NN_normalized_spectra.npz"
    np.savez(path, **a, training_loss=np.ones(3), validation_loss=np.ones(3))  # extra arrays as The Payne's
    model = load_payne_npz(path)
    assert (model.n_labels, model.hidden, model.n_pixels) == (4, 7, 11)
    y = _labels(a)
    truth = _numpy_payne(y, a)
    # float32 weights are copied exactly; in float64 the forward is the same arithmetic up to rounding.
    assert np.allclose(model.double().predict(y), truth, rtol=0, atol=1e-12)
    # The default float32 model: rounding of the scaled labels and sums, ~1e-7 of |activations| ≲ 10.
    assert np.allclose(load_payne_npz(path).predict(y), truth, rtol=0, atol=1e-5)


def test_cycle_sn_loader_reproduces_the_forward(tmp_path):
    a = _published_arrays(seed=3)
    # Cycle-StarNet's emulator is a bare torch.nn.Sequential; its state dict names the keys we must read.
    seq = torch.nn.Sequential(
        torch.nn.Linear(4, 7), torch.nn.LeakyReLU(0.01), torch.nn.Linear(7, 7), torch.nn.LeakyReLU(0.01)
    )
    seq.append(torch.nn.Linear(7, 11))
    with torch.no_grad():
        for k, i in enumerate((0, 2, 4)):
            seq[i].weight.copy_(torch.from_numpy(a[f"w_array_{k}"]))
            seq[i].bias.copy_(torch.from_numpy(a[f"b_array_{k}"]))
    path = tmp_path / "PAYNE.pth.tar"
    state = OrderedDict((k, v.clone()) for k, v in seq.state_dict().items())
    torch.save({"Payne": state, "y_min": torch.tensor(a["x_min"]), "y_max": torch.tensor(a["x_max"])}, path)
    model = load_cycle_sn_payne(path)
    y = _labels(a, seed=4)
    assert np.allclose(model.double().predict(y), _numpy_payne(y, a), rtol=0, atol=1e-12)
    # And the authors' own composition: scale, then the Sequential (network.CycleSN.y_to_synth).
    yt = torch.tensor(y, dtype=torch.float32)
    y_min, y_max = (torch.tensor(a[k], dtype=torch.float32) for k in ("x_min", "x_max"))
    theirs = seq((yt - y_min) / (y_max - y_min) - 0.5)
    # Same float32 operations in the same order: equal to rounding.
    assert torch.allclose(load_cycle_sn_payne(path)(yt), theirs, rtol=0, atol=1e-6)


def test_npz_loader_names_the_missing_or_inconsistent_array(tmp_path):
    a = _published_arrays()
    missing = tmp_path / "missing.npz"
    np.savez(missing, **{k: v for k, v in a.items() if k != "x_max"})
    with pytest.raises(ValueError, match=r"missing\.npz.*x_max"):
        load_payne_npz(missing)
    bad = tmp_path / "bad_shape.npz"
    np.savez(bad, **{**a, "w_array_1": np.zeros((7, 5), np.float32)})
    with pytest.raises(ValueError, match=r"bad_shape\.npz: w_array_1 must have shape \(7, 7\)"):
        load_payne_npz(bad)
    scaler = tmp_path / "scaler.npz"
    np.savez(scaler, **{**a, "x_min": a["x_min"][:3]})
    with pytest.raises(ValueError, match=r"scaler\.npz: x_min must have shape \(4,\)"):
        load_payne_npz(scaler)
    per_pixel = tmp_path / "ting2018.npz"
    np.savez(per_pixel, **{**a, "w_array_0": np.zeros((11, 7, 4), np.float32)})
    with pytest.raises(ValueError, match="Ting et al. 2018"):
        load_payne_npz(per_pixel)
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes((tmp_path / "missing.npz").read_bytes()[:200])
    with pytest.raises(ValueError, match=r"truncated\.npz: not a readable \.npz"):
        load_payne_npz(truncated)
    with pytest.raises(FileNotFoundError):
        load_payne_npz(tmp_path / "absent.npz")


def test_cycle_sn_loader_names_the_missing_key(tmp_path):
    seq = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.LeakyReLU(0.01), torch.nn.Linear(5, 5))
    seq.extend([torch.nn.LeakyReLU(0.01), torch.nn.Linear(5, 8)])
    lo, hi = torch.zeros(3), torch.ones(3)
    path = tmp_path / "PAYNE.pth.tar"
    torch.save({"Payne": seq.state_dict(), "y_max": hi}, path)
    with pytest.raises(ValueError, match=r"PAYNE\.pth\.tar: .*lacks key\(s\) \['y_min'\]"):
        load_cycle_sn_payne(path)
    sd = dict(seq.state_dict())
    sd["1.weight"] = sd.pop("2.weight")
    torch.save({"Payne": sd, "y_min": lo, "y_max": hi}, path)
    with pytest.raises(ValueError, match=r"lacks \['2\.weight'\] / has unexpected \['1\.weight'\]"):
        load_cycle_sn_payne(path)
    torch.save({"Payne": seq.state_dict(), "y_min": torch.zeros(4), "y_max": torch.ones(4)}, path)
    with pytest.raises(ValueError, match=r"y_min must have shape \(3,\)"):
        load_cycle_sn_payne(path)
    path.write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="not a readable torch checkpoint"):
        load_cycle_sn_payne(path)
    # Objects other than tensors are refused by torch.load(weights_only=True); the message stays one line.
    torch.save({"Payne": seq.state_dict(), "y_min": np.zeros(3), "y_max": np.ones(3)}, path)
    with pytest.raises(ValueError, match="not a readable torch checkpoint") as info:
        load_cycle_sn_payne(path)
    assert "\n" not in str(info.value)


# --- training ----------------------------------------------------------------------------------------------

N_PIX, N_LINES = 120, 30
_LINES = np.random.default_rng(0)
CENTRES = np.sort(_LINES.uniform(0, N_PIX, N_LINES))
DEPTH0 = _LINES.uniform(0.05, 0.25, N_LINES)
SENSITIVITY = _LINES.uniform(-1, 1, (N_LINES, 3))


def _toy(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A smooth analytic spectrum: f = exp(−Σ_k τ_k(y) G_k), 30 Gaussian lines on 120 pixels whose optical
    depths vary as exp(linear in the labels) and whose widths grow with Teff; labels (Teff, log g, [Fe/H])."""
    rng = np.random.default_rng(seed)
    y = np.stack([rng.uniform(4000, 5000, n), rng.uniform(1.5, 3.5, n), rng.uniform(-1.0, 0.3, n)], axis=1)
    u = np.stack([(y[:, 0] - 4500) / 500, y[:, 1] - 2.5, y[:, 2] + 0.35], axis=1)  # each within ~[−1, 1]
    tau = DEPTH0 * np.exp(u @ SENSITIVITY.T)
    sigma = 1.5 * (1 + 0.15 * u[:, :1])
    profile = np.exp(
        -0.5 * ((np.arange(N_PIX)[None, None] - CENTRES[None, :, None]) / sigma[:, :, None]) ** 2
    )
    return y, np.exp(-(tau[:, :, None] * profile).sum(axis=1))


def test_training_on_a_smooth_toy_reaches_the_demo_accuracy():
    y_tr, f_tr = _toy(3000, 1)
    y_va, f_va = _toy(500, 2)
    settings = PayneSettings(hidden=100, steps=3000, batch_size=128, lr=3e-3, lr_min=3e-5, validate_every=250)
    model, history = train_payne(y_tr, f_tr, y_va, f_va, settings, seed=0)
    err = emulator_error(model, y_va, f_va)
    # Predicting the mean training spectrum is 3 % off at the median pixel (every pixel sits in a line), so
    # the toy is not met trivially. Spec B3's demo target for the emulator is a median < 0.3 % (The Payne
    # reaches ~1e-3 on Kurucz spectra). This configuration measured a median of 0.090–0.095 % and a p95 of
    # 0.39–0.45 % over seeds 0–2; the same settings with 500 steps give 0.22 % and 1.1 %. The bounds (0.2 %,
    # 1 %) leave a 2× margin for platform-dependent rounding and still fail a net trained 1/6 as long.
    baseline = np.median(np.abs(f_tr.mean(axis=0) - f_va) / f_va)
    assert baseline > 0.02
    assert err["median"] < 2e-3 and err["p95"] < 1e-2
    assert err["n_values"] == 500 * N_PIX
    assert [r["step"] for r in history] == [float(s) for s in range(250, 3001, 250)]
    assert history[-1]["val_loss"] < history[0]["val_loss"] / 5
    # The scaler comes from the training labels (The Payne's min/max).
    assert np.allclose(model.y_min.numpy(), y_tr.min(axis=0)) and np.allclose(
        model.y_max.numpy(), y_tr.max(axis=0)
    )
    # Gradients flow to the physical labels of a trained net.
    y = torch.tensor(y_va[:2], dtype=torch.float32, requires_grad=True)
    model(y).sum().backward()
    assert torch.all(torch.isfinite(y.grad)) and float(y.grad.abs().sum()) > 0


def test_the_weights_with_the_best_validation_loss_are_kept():
    # 12 noisy training spectra and a constant learning rate: the net first learns the lines, then fits the
    # noise, and the validation loss (noiseless spectra) rises again — The Payne's reason to keep the best.
    y_tr, f_tr = _toy(12, 3)
    f_tr = f_tr + np.random.default_rng(3).normal(0, 0.03, f_tr.shape)
    y_va, f_va = _toy(200, 4)
    settings = PayneSettings(
        hidden=64, steps=1500, batch_size=12, lr=3e-3, schedule="constant", validate_every=25
    )
    model, history = train_payne(y_tr, f_tr, y_va, f_va, settings, seed=1)
    val = np.array([r["val_loss"] for r in history])
    best = int(np.argmin(val))
    assert best < len(val) - 1 and val[-1] > 1.2 * val[best], (
        "the toy must over-fit for this test to mean anything"
    )
    assert [r["best_val_loss"] for r in history] == list(np.minimum.accumulate(val))
    with torch.no_grad():
        returned = 1e4 * float(
            (model(torch.tensor(y_va, dtype=torch.float32)) - torch.tensor(f_va)).abs().mean()
        )
    # The returned weights give the best row's loss (float32 sums, ~1e-6 relative), not the last row's.
    assert returned == pytest.approx(val[best], rel=1e-4)


def _small_run(tmp_path=None, **kw):
    y_tr, f_tr = _toy(300, 5)
    y_va, f_va = _toy(60, 6)
    settings = PayneSettings(hidden=32, steps=60, batch_size=64, validate_every=10, checkpoint_every=20)
    return train_payne(y_tr, f_tr, y_va, f_va, settings, **kw)


def test_training_is_deterministic_given_the_seed():
    a, hist_a = _small_run(seed=7)
    b, hist_b = _small_run(seed=7)
    c, _ = _small_run(seed=8)
    for k, v in a.state_dict().items():
        assert torch.equal(v, b.state_dict()[k]), k
    assert hist_a == hist_b
    assert not torch.equal(a.net[0].weight, c.net[0].weight)


def _overfit_run(**kw):
    """The over-fitting set-up of the test above, shortened: its best validation comes early (step ~125)."""
    y_tr, f_tr = _toy(12, 3)
    f_tr = f_tr + np.random.default_rng(3).normal(0, 0.03, f_tr.shape)
    y_va, f_va = _toy(200, 4)
    settings = PayneSettings(
        hidden=64,
        steps=400,
        batch_size=12,
        lr=3e-3,
        schedule="constant",
        validate_every=25,
        checkpoint_every=90,
    )
    return train_payne(y_tr, f_tr, y_va, f_va, settings, **kw)


def test_resume_after_an_interruption_reaches_the_uninterrupted_weights(tmp_path):
    reference, ref_history = _overfit_run(seed=1)
    best_step = min(ref_history, key=lambda r: r["val_loss"])["step"]
    # The best weights predate the resume file, so they must come back from it, not from the resumed steps.
    assert best_step <= 180

    class Stop(Exception):
        pass

    def stop_at_250(step, row):
        if step == 250:
            raise Stop

    resume = tmp_path / "payne.resume.pt"
    with pytest.raises(Stop):
        _overfit_run(seed=1, resume_path=resume, resume_record={"rule": "test"}, progress=stop_at_250)
    assert resume.is_file()  # last written at step 180 (checkpoint_every), the job died at 250
    steps_seen = []
    model, history = _overfit_run(
        seed=1, resume_path=resume, progress=lambda step, row: steps_seen.append(step)
    )
    # Resumed after step 180, mid-way between validations (the running train loss comes back too).
    assert steps_seen == list(range(200, 401, 25))
    for k, v in reference.state_dict().items():
        assert torch.equal(v, model.state_dict()[k]), k
    assert history == ref_history
    # The same with the cosine schedule (its position must come back from the resume file too).
    cosine_ref, _ = _small_run(seed=7)
    cosine_resume = tmp_path / "cosine.resume.pt"

    def stop_at_30(step, row):
        if step == 30:
            raise Stop

    with pytest.raises(Stop):
        _small_run(seed=7, resume_path=cosine_resume, progress=stop_at_30)
    cosine, _ = _small_run(seed=7, resume_path=cosine_resume)
    for k, v in cosine_ref.state_dict().items():
        assert torch.equal(v, cosine.state_dict()[k]), k
    # A resume file of another run (another seed) is ignored: the result is that run's from scratch.
    other, _ = _small_run(seed=8, resume_path=tmp_path / "small.resume.pt")
    stale, _ = _small_run(seed=8, resume_path=resume)
    assert torch.equal(other.net[4].weight, stale.net[4].weight)


def test_training_input_errors():
    y, f = _toy(20, 0)
    s = PayneSettings(hidden=8, steps=2, batch_size=4)
    with pytest.raises(ValueError, match="training set.*same n"):
        train_payne(y[:10], f, y, f, s, seed=0)
    with pytest.raises(ValueError, match="validation set has 2 labels"):
        train_payne(y, f, y[:, :2], f, s, seed=0)
    bad = f.copy()
    bad[3, 4] = np.nan
    with pytest.raises(ValueError, match="spectra contain NaN"):
        train_payne(y, bad, y, f, s, seed=0)
    const = y.copy()
    const[:, 1] = 2.5
    with pytest.raises(ValueError, match=r"labels \[1\]"):
        train_payne(const, f, y, f, s, seed=0)


# --- settings and model files -------------------------------------------------------------------------------


def test_settings_from_the_config_block_and_bad_keys():
    block = {
        "pretrained": None,
        "hidden": 300,
        "training": {"n_spectra": 5000, "steps": 3000, "batch_size": 256, "lr": 1.0e-3, "loss": "l1"},
    }
    s = PayneSettings.from_config(block)
    assert (s.hidden, s.steps, s.batch_size, s.lr, s.loss) == (300, 3000, 256, 1e-3, "l1")
    authors = PayneSettings.from_config({"hidden": 300, "optimizer": "radam", "lr": 1e-4, "lr_min": 1e-4})
    assert authors.optimizer == "radam"
    with pytest.raises(ValueError, match=r"unknown payne\.training keys \['lrr'\]"):
        PayneSettings.from_config({"training": {"lrr": 1e-3}})
    with pytest.raises(ValueError, match=r"unknown payne keys \['hiden'\]"):
        PayneSettings.from_config({"hiden": 300})
    with pytest.raises(ValueError, match="payne.optimizer must be one of"):
        PayneSettings(optimizer="sgd")
    with pytest.raises(ValueError, match="lr_min"):
        PayneSettings(lr=1e-4, lr_min=1e-3)


def test_save_and_load_round_trip(tmp_path):
    model, history = _small_run(seed=2)
    settings = PayneSettings(hidden=32)
    path = save_payne(model, tmp_path / "payne.pt", {"rule": "test"}, settings, history)
    loaded = load_payne(path)
    y = _toy(5, 9)[0]
    assert np.array_equal(loaded.predict(y), model.predict(y))
    assert torch.equal(loaded.y_min, model.y_min) and torch.equal(loaded.y_max, model.y_max)
    other = tmp_path / "other.pt"
    save_checkpoint({"kind": "something-else"}, other, {})
    with pytest.raises(ValueError, match=r"other\.pt: not a Payne emulator file"):
        load_payne(other)


def test_emulator_error_is_the_relative_error_quantiles():
    # A net whose output is 1 everywhere (zero weights, last bias 1): with truth f = 1/(1 + e) the relative
    # error |1 − f|/f is e, so the quantiles are those of the chosen e.
    model = PayneEmulator(2, 3, hidden=4).double()
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        model.net[4].bias.fill_(1.0)
    e = np.array([[0.01, 0.02, 0.03], [0.04, 0.05, 0.06]])
    err = emulator_error(model, np.zeros((2, 2)) + 0.5, 1 / (1 + e))
    # median of six values: (0.03 + 0.04)/2; p95 by linear interpolation: 0.05 + 0.75·0.01
    assert err["median"] == pytest.approx(0.035) and err["p95"] == pytest.approx(0.0575)
    assert err["n_values"] == 6
    with pytest.raises(ValueError, match="> 0"):
        emulator_error(model, np.zeros((2, 2)), -e)
    with pytest.raises(ValueError, match=r"spectra \(n, 3\)"):
        emulator_error(model, np.zeros((2, 2)), e[:, :2])
