"""PELS-VAE stage (paper 000 Secs. 4.2–4.3): regressors as files, cadences, requests, generation at user
timestamps, the evaluation figures of merit, and — on the simulation, where RR Lyrae shape depends on T_eff
by construction — generated RR Lyrae that change shape the right way as T_eff rises."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from latentsky.pelsvae.config import PelsVaeConfig, network_config
from latentsky.pelsvae.data import has_physics, rows_for_model
from latentsky.pelsvae.evaluation import (
    class_mean_templates,
    reconstruction_scores,
    rrlyrae_sequence,
    sequence_correlations,
    shape_statistics,
    table3,
    template_curves,
    weighted_mse,
)
from latentsky.pelsvae.generation import (
    cadence_times,
    generate_lightcurves,
    read_requests,
    read_times_table,
    request_times,
)
from latentsky.pelsvae.model import reconstruct
from latentsky.pelsvae.regression import fit_regressors, load_regressors, save_regressors
from latentsky.pelsvae.training import train_pelsvae
from latentsky.provenance.files import read_checkpoint_provenance
from latentsky.simulate.ogle import pulsation_profile, simulate_ogle_fields
from latentsky.variables.lightcurves import align_to_epoch, rise_fraction, training_sets

# ---------------------------------------------------------------------------------------------------------
# Shape statistics and epochs
# ---------------------------------------------------------------------------------------------------------


def test_rise_fraction_orders_profiles_and_is_half_for_a_sinusoid():
    phase = np.linspace(0, 1, 300, endpoint=False)
    measured = [rise_fraction(phase, pulsation_profile(phase, r, 1.0)) for r in (0.12, 0.2, 0.3, 0.4, 0.5)]
    assert np.all(np.diff(measured) > 0) and measured[-1] == pytest.approx(0.5, abs=0.03)


@pytest.mark.parametrize("rise", [0.15, 0.3, 0.5])
def test_rise_fraction_and_epoch_alignment_of_a_known_profile(rise):
    rng = np.random.default_rng(0)
    phase = np.sort(rng.uniform(size=400))
    offset = 0.37
    mag = 0.6 * pulsation_profile(np.mod(phase - offset, 1.0), rise, 1.0)  # maximum light at phase 0.37
    # The 5-bin running mean (0.125 in phase) can move each extremum by up to ~half its width: 0.1.
    assert rise_fraction(phase, mag) == pytest.approx(rise, abs=0.1)
    ph, m, _ = align_to_epoch(phase, mag, np.full_like(mag, 0.01), "RRLYR")
    assert np.all(np.diff(ph) >= 0)
    # Brightest point now at phase 0, within the smoothing (0.0625) and bin (0.0125) half-widths.
    assert np.abs(np.mod(ph[np.argmin(m)] + 0.5, 1.0) - 0.5) < 0.08
    stats = shape_statistics(ph, m)
    assert stats["amplitude"] == pytest.approx(0.6, abs=0.1)
    # Eclipsing binaries: phase 0 at minimum light (the faintest point).
    ph, m, _ = align_to_epoch(phase, mag, np.full_like(mag, 0.01), "ECL")
    assert np.abs(np.mod(ph[np.argmax(m)] + 0.5, 1.0) - 0.5) < 0.08


def test_template_and_weighted_mse_by_hand():
    train = pd.DataFrame(
        {
            "var_class": ["CEP", "CEP"],
            "phase": [np.array([0.1, 0.6]), np.array([0.1, 0.6])],
            "mag": [np.array([10.0, 11.0]), np.array([12.0, 14.0])],
        }
    )
    templates = class_mean_templates(train, n_bins=2)
    # Each curve counted from its epoch (maximum light, phase ≈ 0.11): the bright points fall just before the
    # wrap, in bin 1 (10 − 10.5 and 12 − 13), the faint ones in bin 0 (11 − 10.5 and 14 − 13).
    np.testing.assert_allclose(templates["CEP"], [0.75, -0.75])
    frame = pd.DataFrame(
        {"var_class": ["CEP"], "phase": [np.array([0.2, 0.7])], "mag": [np.array([5.0, 7.0])]}
    )
    (curve,) = template_curves(frame, templates)
    np.testing.assert_allclose(curve, [6.0 - 0.75, 6.0 + 0.75])
    assert weighted_mse([np.array([5.0, 7.0])], [curve], [np.array([0.5, 0.25])]) == pytest.approx(
        np.mean([(0.25 / 0.5) ** 2, (0.25 / 0.25) ** 2])
    )


# ---------------------------------------------------------------------------------------------------------
# Requests, cadences, timestamps
# ---------------------------------------------------------------------------------------------------------


def test_cadences_start_at_t0_and_bad_specs_are_named():
    rng = np.random.default_rng(1)
    t = cadence_times("regular:10:5", 100.0, 0.5, rng)
    np.testing.assert_allclose(t, 100.0 + 0.5 * np.arange(10))
    t = cadence_times("phases:4", 10.0, 2.0, rng)
    np.testing.assert_allclose(t, [10.0, 10.5, 11.0, 11.5])
    t = cadence_times("random:50:20", 0.0, 1.0, rng)
    assert len(t) == 50 and np.all(np.diff(t) >= 0) and 0 <= t.min() and t.max() <= 20
    t = cadence_times("ogle3:500:3", 0.0, 1.0, rng)
    season = np.floor((t + 1.0) / 365.25)
    assert set(season) <= {0.0, 1.0, 2.0} and np.all(np.mod(t + 1.0, 365.25) < 242)  # 240-night seasons
    for bad in ("weekly:3", "regular:0:5", "regular:2.5:5", "random:10", "regular:10:-1"):
        with pytest.raises(ValueError, match="cadence"):
            cadence_times(bad, 0.0, 1.0, rng)


def test_requests_fill_defaults_and_name_bad_values():
    req = read_requests([{"var_class": "RRLYR", "teff": 6500, "abs_g": 0.6, "period": 0.55}])
    assert req.loc[0, "n_samples"] == 1 and req.loc[0, "t0"] == 0.0 and req.loc[0, "request"] == 0
    with pytest.raises(ValueError, match="period"):
        read_requests([{"var_class": "RRLYR", "teff": 6500, "abs_g": 0.6, "period": -1}])
    with pytest.raises(ValueError, match=r"column\(s\) \['teff'\]"):
        read_requests([{"var_class": "RRLYR", "abs_g": 0.6, "period": 0.5}])
    with pytest.raises(ValueError, match="n_samples"):
        read_requests([{"var_class": "RRLYR", "teff": 6500, "abs_g": 0.6, "period": 0.5, "n_samples": 0}])


def test_times_table_per_request_or_shared(tmp_path):
    path = tmp_path / "times.csv"
    path.write_text("request,time\na,1.0\na,2.5\nb,7.0\n")
    table = read_times_table(path)
    requests = read_requests(
        [
            {"request": "a", "var_class": "CEP", "teff": 5500, "abs_g": -3, "period": 5},
            {"request": "b", "var_class": "CEP", "teff": 5600, "abs_g": -3, "period": 6},
        ]
    )
    times = request_times(requests, np.random.default_rng(0), times_table=table)
    np.testing.assert_array_equal(times["a"], [1.0, 2.5])
    np.testing.assert_array_equal(times["b"], [7.0])
    shared = tmp_path / "shared.csv"
    shared.write_text("time\n3.0\n4.0\n")
    times = request_times(requests, np.random.default_rng(0), times_table=read_times_table(shared))
    np.testing.assert_array_equal(times["b"], [3.0, 4.0])
    bad = tmp_path / "bad.csv"
    bad.write_text("mjd\n1.0\n")
    with pytest.raises(ValueError, match="needs a column 'time'"):
        read_times_table(bad)
    bad.write_text("time\n1.0\nnan\n")
    with pytest.raises(ValueError, match="row 1"):
        read_times_table(bad)


# ---------------------------------------------------------------------------------------------------------
# Regressors as files; generation at user timestamps
# ---------------------------------------------------------------------------------------------------------


def _curves(n: int, rng: np.random.Generator, n_points: int = 40) -> pd.DataFrame:
    """RR Lyrae-like curves whose amplitude falls with T_eff, and some without physics."""
    rows = []
    for i in range(n):
        teff = rng.uniform(6000, 7500)
        amp = 0.9 - 0.4 * (teff - 6000) / 1500
        phase = np.sort(rng.uniform(size=n_points))
        err = np.full(n_points, 0.02)
        mag = (
            16
            + amp * pulsation_profile(np.mod(phase - rng.uniform(), 1.0), 0.3, 1.0)
            + rng.normal(0, 0.02, n_points)
        )
        rows.append(
            {
                "ogle_id": f"S{i}",
                "var_class": "RRLYR",
                "phase": phase,
                "mag": mag,
                "err": err,
                "teff": teff if i % 4 else np.nan,
                "abs_g": 0.6,
                "period": rng.uniform(0.4, 0.7),
            }
        )
    return pd.DataFrame(rows)


def _linear_and_forest(result, train: pd.DataFrame, val: pd.DataFrame, n_repeats: int):
    names = ("linear", "random_forest")
    return fit_regressors(
        "cvae_p", result.model, result.scaler, train, val, seed=0, names=names, n_repeats=n_repeats
    )


@pytest.fixture(scope="module")
def small_model():
    rng = np.random.default_rng(3)
    train, val = _curves(64, rng), _curves(24, rng)
    config = network_config(
        {
            "h_size": 8,
            "z_dim": 3,
            "n_blocks": 2,
            "kernel_size": 3,
            "fc_sizes": [8],
            "t_len": 40,
            "batch_size": 16,
        },
        "cvae_p",
    )
    assert config.use_physics and len(rows_for_model(train, "cvae_p")) == has_physics(train).sum() == 48
    result = train_pelsvae(
        rows_for_model(train, "cvae_p"), rows_for_model(val, "cvae_p"), config, seed=0, epochs=2
    )
    regs = _linear_and_forest(result, train, val, n_repeats=10)
    return result, regs


def test_regressors_round_trip_with_provenance(tmp_path, small_model):
    _, regs = small_model
    assert regs.n_train_rows == 48 * 10 and set(regs.rmse) == {"linear", "random_forest", "class_mean"}
    assert all(np.isfinite(v) and v > 0 for v in regs.rmse.values())
    path = tmp_path / "regressors.pt"
    save_regressors(path, regs, {"rule": "pelsvae_regression"})
    assert read_checkpoint_provenance(path) == {"rule": "pelsvae_regression"}
    back = load_regressors(path)
    assert back.rmse == regs.rmse and back.classes == regs.classes
    assert back.physics_range == regs.physics_range
    (lo, hi) = regs.physics_range["RRLYR"]["teff"]
    assert 6000 <= lo < 6100 and 7400 < hi <= 7500  # the training curves' T_eff ~ U(6000, 7500)
    args = (np.array([6500.0]), np.array([0.6]), np.array([0.5]), ["RRLYR"], np.array([0.3]))
    np.testing.assert_array_equal(back.predict("random_forest", *args), regs.predict("random_forest", *args))
    with pytest.raises(ValueError, match="positive period"):
        regs.predict(
            "linear", np.array([6500.0]), np.array([0.6]), np.array([0.0]), ["RRLYR"], np.array([0.3])
        )
    with pytest.raises(ValueError, match="not among the model's classes|unknown class"):
        regs.predict("linear", *args[:3], ["QSO"], args[4])
    table = table3({"cvae_p": regs}).set_index("regressor")
    assert table["cvae_p_paper"].dropna().to_dict() == {"linear": 0.794, "random_forest": 0.289}
    assert np.isnan(table.loc["class_mean", "cvae_p_paper"])  # the baseline row: no paper value


def test_generation_follows_the_callers_timestamps(small_model):
    result, regs = small_model
    requests = read_requests(
        [
            {
                "request": "r",
                "var_class": "RRLYR",
                "teff": 6200,
                "abs_g": 0.6,
                "period": 0.5,
                "t0": 3.0,
                "n_samples": 3,
            },
            {
                "request": "s",
                "var_class": "RRLYR",
                "teff": 7200,
                "abs_g": 0.6,
                "period": 0.45,
                "median_mag": 15.0,
            },
        ]
    )
    times = {"r": np.array([9.0, 3.0, 3.25, 100.0]), "s": np.linspace(0, 10, 17)}
    out = generate_lightcurves(
        result.model, result.scaler, regs, "linear", requests, times, np.random.default_rng(0)
    )
    assert len(out) == 4 and out["request"].tolist() == ["r", "r", "r", "s"]
    assert out["sample"].tolist() == [0, 1, 2, 0]
    first = out.iloc[0]
    np.testing.assert_array_equal(first["time"], [9.0, 3.0, 3.25, 100.0])
    np.testing.assert_allclose(first["phase"], np.mod((np.array([9.0, 3.0, 3.25, 100.0]) - 3.0) / 0.5, 1.0))
    # Epochs at the same phase (t0 and t0 + 12 P) get the same magnitude.
    assert first["mag"][0] == pytest.approx(first["mag"][1], abs=1e-9)
    assert len(out.iloc[3]["mag"]) == 17 and abs(np.median(out.iloc[3]["mag"]) - 15.0) < 1.0
    # Samples of one request differ only by their dummy draw.
    assert len(set(out.loc[out["request"] == "r", "dummy"])) == 3
    # Same seed, same light curves.
    again = generate_lightcurves(
        result.model, result.scaler, regs, "linear", requests, times, np.random.default_rng(0)
    )
    pd.testing.assert_frame_equal(out, again)


def test_generation_outside_the_training_physics_is_a_one_line_error(small_model):
    # The regressors saw RR Lyrae with M_G = 0.6 and T_eff 6000–7500 K only; a request elsewhere would be an
    # extrapolation (linear, MLP) or the edge leaf (random forest), not the star asked for.
    result, regs = small_model

    def generate(**request):
        row = {"request": "q", "var_class": "RRLYR", "teff": 6500, "abs_g": 0.6, "period": 0.5, **request}
        return generate_lightcurves(
            result.model, result.scaler, regs, "linear", read_requests([row]), np.linspace(0, 1, 5),
            np.random.default_rng(0),
        )  # fmt: skip

    assert len(generate()) == 1
    with pytest.raises(
        ValueError,
        match=r"^generation request 'q': abs_g = -3\.5 mag is outside the RRLYR training range 0\.6 … 0\.6 mag",
    ) as err:
        generate(abs_g=-3.5)
    assert "\n" not in str(err.value)
    with pytest.raises(
        ValueError, match=r"teff = 9000 K is outside the RRLYR training range 60\d\d\.\d+ … 7[34]\d\d"
    ):
        generate(teff=9000)
    with pytest.raises(
        ValueError, match=r"no CEP light curve with physics .* classes with physics: \['RRLYR'\]"
    ):
        generate(var_class="CEP")


def test_residual_sampling_gives_the_variety_the_dummy_does_not(small_model, tmp_path):
    # Paper 000 Sec. 4.2 hopes the dummy dimension makes the samples of one request differ; for a regressor
    # fitted on rows that differ only in the dummy it hardly does. Adding a validation residual of the class
    # gives the samples the spread of latents the physics leaves open.
    result, regs = small_model
    request = read_requests([{"request": "q", "var_class": "RRLYR", "teff": 6500, "abs_g": 0.6, "period": 0.5,
                              "n_samples": 40}])  # fmt: skip
    times = np.linspace(0, 1, 50)

    def latents(sampling):
        out = generate_lightcurves(
            result.model, result.scaler, regs, "linear", request, times, np.random.default_rng(0),
            latent_sampling=sampling,
        )  # fmt: skip
        assert set(out["latent_sampling"]) == {sampling}
        return np.stack(out["z"].to_numpy())

    dummy, residual = latents("dummy"), latents("residual")
    pool = np.asarray(regs.residuals["linear"]["RRLYR"])
    assert pool.shape[1] == dummy.shape[1] and len(pool) == 18 * 10  # 18 validation curves with T_eff × 10
    # The linear regressor's dummy coefficient moves z by a tiny fraction of the residual spread.
    assert dummy.std(axis=0).max() < 0.2 * pool.std(axis=0).min()
    np.testing.assert_allclose(residual.std(axis=0), pool.std(axis=0), rtol=0.35)
    # Round trip through the regressors file; a class without residuals is named.
    back = load_regressors(save_regressors(tmp_path / "r.pt", regs, {}))
    assert back.residuals == regs.residuals
    with pytest.raises(ValueError, match="no validation residuals of class CEP"):
        regs.residual_draws("linear", ["CEP"], np.random.default_rng(0))
    with pytest.raises(ValueError, match="latent_sampling 'posterior'"):
        generate_lightcurves(result.model, result.scaler, regs, "linear", request, times,
                             np.random.default_rng(0), latent_sampling="posterior")  # fmt: skip


# ---------------------------------------------------------------------------------------------------------
# The physics reaches the generated shape (paper 000 Fig. 8), on the simulated OGLE fields
# ---------------------------------------------------------------------------------------------------------

SIM = {
    "n_objects": 2500,
    "dt_yr": 15.5,
    "crowding": 0.6,
    "fraction_gaia_class": 0.3,
    "fraction_teff": 0.67,
    "fraction_missing_bp_rp": 0.05,
}


def test_generated_rr_lyrae_follow_teff_as_the_simulation_does():
    """Cool RRab: large amplitude, steep rise; hot RRc: small amplitude, near-sinusoid (rise → 0.5).

    A small cVAE-P is trained on simulated RR Lyrae and Cepheids with their true T_eff and M_G, the
    regressors are fitted, and RR Lyrae are generated along T_eff at fixed M_G and period. One torch thread:
    the small model's trained weights (and so the rise-fraction trend of the linear regressor, which is weak
    at this size) differ with the thread count's summation order; the test fixes it as the demo's jobs do."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _rr_lyrae_sequence_checks()
    finally:
        torch.set_num_threads(threads)


def _rr_lyrae_sequence_checks() -> None:
    torch.manual_seed(0)
    sim = simulate_ogle_fields(SIM, 5)
    objects = sim.objects.merge(sim.truth[["ogle_id", "teff", "abs_g"]], on="ogle_id")
    objects = objects[objects["var_class"].isin(["RRLYR", "CEP"])].assign(has_physics=True)
    light_curves = sim.light_curves[sim.light_curves["ogle_id"].isin(objects["ogle_id"])]
    examples, _ = training_sets(
        objects,
        light_curves,
        np.random.default_rng(0),
        n_points=100,
        target_small=600,
        target_large=600,
        small_class_limit=10,
    )
    train, val = examples[examples["split"] == "train"], examples[examples["split"] == "val"]
    config = PelsVaeConfig(
        h_size=16,
        n_blocks=4,
        kernel_size=5,
        fc_sizes=(32,),
        batch_size=32,
        lr=3e-3,
        epochs=30,
        dropout=0.0,
        t_len=100,
        use_physics=True,
    )
    result = train_pelsvae(train, val, config, seed=0)
    regs = _linear_and_forest(result, train, val, n_repeats=20)
    teff = np.linspace(6000, 7400, 6)
    sequence = rrlyrae_sequence(
        result.model,
        result.scaler,
        {name: (lambda *a, name=name: regs.predict(name, *a)) for name in regs.regressors},
        teff,
        abs_g=0.6,
        period=0.55,
        n_samples=3,
        rng=np.random.default_rng(1),
    )
    rho = sequence_correlations(sequence)
    means = sequence.groupby(["regressor", "teff"])[["amplitude", "rise_fraction"]].mean()
    for name in ("linear", "random_forest"):
        cool, hot = means.loc[(name, teff[0])], means.loc[(name, teff[-1])]
        # The simulation: A_I ≈ 0.75 → 0.25 mag and rise 0.12 → 0.45 from 6,000 to 7,500 K.
        assert rho[name]["amplitude"] < -0.8, (name, rho)
        assert hot["amplitude"] < 0.75 * cool["amplitude"], (name, means)
        assert rho[name]["rise_fraction"] > 0.0 and hot["rise_fraction"] > cool["rise_fraction"], (
            name,
            means,
        )

    # The same model reconstructs held-out curves far better than the class-mean template.
    test = examples[examples["split"] == "test"]
    recon, _ = reconstruct(result.model, test, result.scaler)
    scores = reconstruction_scores(test.reset_index(drop=True), recon, train)
    assert scores["ratio"] < 0.5 and scores["n_curves"] == len(test), scores


def test_table3_is_scored_on_real_validation_curves_only(small_model):
    """Review 2.4: augmented validation copies must not weigh an object by its number of copies."""
    result, _ = small_model
    rng = np.random.default_rng(3)
    train, val = _curves(64, rng), _curves(24, rng)
    copies = pd.concat(
        [val.assign(ogle_id=val["ogle_id"] + f"-copy{k}") for k in range(3)], ignore_index=True
    )
    with_copies = pd.concat([val.assign(augmented=False), copies.assign(augmented=True)], ignore_index=True)
    real = _linear_and_forest(result, train, val, n_repeats=10)
    mixed = _linear_and_forest(result, train, with_copies, n_repeats=10)
    assert mixed.n_val_rows == real.n_val_rows
    assert mixed.rmse == pytest.approx(real.rmse)
