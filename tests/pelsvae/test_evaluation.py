"""The figures of merit of the evaluate_pelsvae rule (paper 000 Sec. 4) on inputs whose answers are known:
test-set reconstructions against the class template, the Fig. 8 T_eff sequence, and the metrics document
(Table 3, training histories, sequence correlations) in its key order."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from latentsky.pelsvae.config import PelsVaeConfig
from latentsky.pelsvae.data import LightCurveScaler
from latentsky.pelsvae.evaluation import (
    TABLE3_PAPER,
    class_mean_templates,
    evaluation_metrics,
    fourier_curves,
    reconstruct_test_sets,
    reconstruction_scores,
    regression_metrics,
    sequence_grid,
    sequence_metrics,
    teff_sequence,
    training_metrics,
    weighted_mse,
)
from latentsky.pelsvae.model import PelsVae, generate, reconstruct

TINY = dict(h_size=8, z_dim=3, n_blocks=2, kernel_size=3, fc_sizes=(8,), t_len=40, dropout=0.2)


def _curve(ogle_id: str, mag, err, teff: float, var_class: str = "CEP") -> dict:
    return {
        "ogle_id": ogle_id,
        "var_class": var_class,
        "phase": np.array([0.1, 0.6]),
        "mag": np.asarray(mag, dtype=np.float64),
        "err": np.asarray(err, dtype=np.float64),
        "teff": teff,
        "abs_g": 0.5,
        "period": 3.0,
    }


def test_reconstruct_test_sets_score_each_model_on_its_own_rows():
    # Two-point curves at phases 0.1 and 0.6 (template bins 2 and 12 of 20). Training: A (with physics)
    # has offsets ∓0.5 from its median, B (no T_eff) ∓1: the cvae template (A and B) is ∓0.75, the
    # cvae_p one (A alone) ∓0.5.
    train = pd.DataFrame(
        [_curve("A", [10.0, 11.0], [0.1, 0.1], 6000.0), _curve("B", [12.0, 14.0], [0.1, 0.1], np.nan)]
    )
    test = pd.DataFrame(
        [_curve("T1", [5.0, 7.0], [0.5, 0.25], 6500.0), _curve("T2", [1.0, 1.0], [1.0, 1.0], np.nan)]
    )
    torch.manual_seed(0)
    scaler = LightCurveScaler.fit(pd.concat([train, test]))  # two rows with physics to standardise
    models = {
        "cvae": (PelsVae(PelsVaeConfig(**TINY)).eval(), scaler, None, None),
        "cvae_p": (PelsVae(PelsVaeConfig(**TINY, use_physics=True)).eval(), scaler, None, None),
    }
    scores, curves = reconstruct_test_sets(models, test, train)
    assert list(scores) == list(curves) == ["cvae", "cvae_p"]
    # cvae sees both test curves, cvae_p only T1, which has physics.
    assert curves["cvae"][0]["ogle_id"].tolist() == ["T1", "T2"]
    assert curves["cvae_p"][0]["ogle_id"].tolist() == ["T1"]
    assert scores["cvae"]["n_curves"] == 2 and scores["cvae_p"]["n_curves"] == 1
    # Every curve is counted from its epoch (the bin of its brighter point for a Cepheid): A, B and T1 shift
    # alike, so T1 meets the cvae template 6 ∓ 0.75: ((0.25/0.5)² + (0.25/0.25)²)/2. The flat T2 has its
    # "epoch" elsewhere, lands in bins no training curve filled (offset 0) and matches its median exactly.
    assert scores["cvae"]["class_template"] == pytest.approx((0.25 + 1.0 + 0.0 + 0.0) / 4)
    assert scores["cvae"]["per_class"]["CEP"]["class_template"] == pytest.approx(0.3125)
    # T1 against the cvae_p template 6 ∓ 0.5: ((0.5/0.5)² + (0.5/0.25)²)/2.
    assert scores["cvae_p"]["class_template"] == pytest.approx(2.5)
    # The VAE term is the error-weighted MSE of the model's own reconstructions.
    for name, (model, _, _, _) in models.items():
        rows = curves[name][0]
        recon = reconstruct(model, rows, scaler)[0]
        for got, want in zip(curves[name][1], recon, strict=True):
            np.testing.assert_allclose(got, want)
        vae = weighted_mse(list(rows["mag"]), recon, list(rows["err"]))
        assert scores[name]["vae"] == pytest.approx(vae)
        assert scores[name]["ratio"] == pytest.approx(vae / scores[name]["class_template"])


def _sinusoids(n: int, rng: np.random.Generator, amplitude: float = 0.5, err: float = 0.02) -> pd.DataFrame:
    """RR Lyrae-like curves (a fundamental and its first harmonic) at random phase offsets, as the augmented
    training copies are."""
    rows = []
    for i in range(n):
        phase = np.sort(rng.uniform(size=120))
        shape = np.cos(2 * np.pi * (phase - rng.uniform())) + 0.3 * np.cos(4 * np.pi * (phase - 0.1))
        mag = 15 + amplitude * shape + rng.normal(0, err, phase.size)
        rows.append(
            {"ogle_id": f"S{i}", "var_class": "RRLYR", "phase": phase, "mag": mag, "err": np.full(120, err)}
        )
    return pd.DataFrame(rows)


def test_reconstruction_baselines_mean_something():
    # The class template counts each curve from its epoch: built from curves at random phase offsets it keeps
    # the class's amplitude (unaligned, the offsets average it to nothing).
    rng = np.random.default_rng(5)
    train, test = _sinusoids(60, rng), _sinusoids(10, rng)
    template = class_mean_templates(train)["RRLYR"]
    shape_amplitude = np.median([np.ptp(m) for m in train["mag"]])
    assert np.ptp(template) > 0.7 * shape_amplitude
    # A two-harmonic Fourier series describes these curves to the noise (χ² per point ≈ 1, 2·2 + 1 of 120
    # points fitted); the template, one shape for every curve, does not (the harmonics' relative phase varies).
    scores = reconstruction_scores(test, list(fourier_curves(test, 2)), train)
    assert scores["fourier_2"] == pytest.approx(1.0, abs=0.2) and scores["fourier_6"] < scores["fourier_2"]
    assert scores["class_template"] > 5 * scores["fourier_2"]
    assert scores["ratio_fourier_2"] == pytest.approx(1.0) and scores["ratio"] < 0.2
    assert set(scores["per_class"]["RRLYR"]) == set(scores) - {"n_curves", "per_class"}


class _ConstantRegressors:
    """Stand-in LatentRegressors: ``zero`` maps every input to z = 0, ``teff`` to z = (T_eff/1000, 0, 0);
    the arguments of every call are kept."""

    regressors = {"zero": None, "teff": None}

    def __init__(self):
        self.calls = []

    def predict(self, name, teff, abs_g, period, classes, dummy):
        self.calls.append((name, teff, abs_g, period, list(classes), dummy))
        z = np.zeros((len(teff), 3))
        if name == "teff":
            z[:, 0] = teff / 1000.0
        return z


def _rrlyrae_training_set() -> pd.DataFrame:
    """Noise-free sinusoidal RR Lyrae whose amplitude falls as T_eff rises, and rows the grid must skip."""
    phase = np.linspace(0.0, 1.0, 30, endpoint=False)
    rows = []
    for i, teff in enumerate(np.linspace(6000.0, 7000.0, 11)):
        amp = 1.0 - (teff - 6000.0) / 2000.0
        rows.append(
            {
                "ogle_id": f"R{i}",
                "var_class": "RRLYR",
                "phase": phase,
                "mag": 16.0 + amp * np.sin(2 * np.pi * phase),
                "err": np.full(30, 0.01),
                "teff": teff,
                "abs_g": 0.4 + 0.04 * i,  # median 0.6
                "period": 0.5 + 0.01 * i,  # median 0.55
                "augmented": False,
            }
        )
    extra = dict(rows[0], ogle_id="AUG", teff=99999.0, abs_g=9.0, augmented=True)
    cep = dict(rows[0], ogle_id="CEP", var_class="CEP", teff=1000.0)
    no_physics = dict(rows[0], ogle_id="NOP", teff=np.nan)
    return pd.DataFrame(rows + [extra, cep, no_physics])


# Every training sinusoid has the same skewness: its correlation with T_eff is undefined (NaN).
@pytest.mark.filterwarnings("ignore:An input array is constant")
def test_teff_sequence_spans_the_real_rr_lyrae_at_their_median_mg_and_period():
    train = _rrlyrae_training_set()
    torch.manual_seed(0)
    scaler = LightCurveScaler.fit(train)
    model = PelsVae(PelsVaeConfig(**TINY, use_physics=True)).eval()
    regs = _ConstantRegressors()
    grid, sequence = teff_sequence(model, scaler, regs, train, n_steps=4, n_samples=2, seed=5)
    # 5th–95th percentile of the 11 real RR Lyrae T_eff (6000…7000 K): 6050…6950 K; the augmented, CEP and
    # no-physics rows are left out.
    np.testing.assert_allclose(grid["teff"], [6050.0, 6350.0, 6650.0, 6950.0])
    assert grid["abs_g"] == pytest.approx(0.6) and grid["period"] == pytest.approx(0.55)
    assert grid["data_spearman"]["amplitude"] == pytest.approx(-1.0)
    # One row per regressor × T_eff × sample, regressors in their order.
    assert len(sequence) == 2 * 4 * 2
    assert sequence["regressor"].tolist() == ["zero"] * 8 + ["teff"] * 8
    assert sequence["sample"].tolist() == [0, 1] * 8
    np.testing.assert_allclose(sequence["teff"][:8], np.repeat(grid["teff"], 2))
    # Every call gets the grid's M_G and period, class RRLYR and the same seeded dummy draws.
    dummy = np.random.default_rng(5).uniform(size=8)
    for name, (called, teff, abs_g, period, classes, d) in zip(["zero", "teff"], regs.calls, strict=True):
        assert called == name
        np.testing.assert_allclose(teff, np.repeat(grid["teff"], 2))
        np.testing.assert_allclose(abs_g, 0.6)
        np.testing.assert_allclose(period, 0.55)
        assert classes == ["RRLYR"] * 8
        np.testing.assert_array_equal(d, dummy)
    # z = 0 for every curve: the zero regressor's curves are all the decoder's curve at z = 0.
    phase = (np.arange(200) + 0.5) / 200
    mag0, _ = generate(model, scaler, "RRLYR", np.zeros((1, 3)), phase)
    for m in sequence.loc[sequence["regressor"] == "zero", "mag"]:
        np.testing.assert_allclose(m, mag0[0], rtol=1e-6, atol=1e-9)
    assert sequence_grid(train, "RRLYR", 4)["teff"].tolist() == grid["teff"].tolist()


def test_regression_metrics_beside_table3():
    regressors = {
        "cvae": SimpleNamespace(
            rmse={"linear": 0.5, "random_forest": 0.25}, n_train_rows=480, n_val_rows=240
        ),
        "cvae_p": SimpleNamespace(rmse={"linear": 0.75}, n_train_rows=360, n_val_rows=120),
    }
    m = regression_metrics(regressors)
    assert list(m) == ["regression_rmse", "regression_rmse_paper", "regression_rows"]
    assert m["regression_rmse"] == {
        "cvae": {"linear": 0.5, "random_forest": 0.25},
        "cvae_p": {"linear": 0.75},
    }
    assert m["regression_rmse"]["cvae"] is not regressors["cvae"].rmse  # a copy
    assert m["regression_rmse_paper"] == TABLE3_PAPER
    assert m["regression_rmse_paper"]["cvae_p"]["random_forest"] == 0.289
    assert m["regression_rows"] == {"cvae": {"train": 480, "val": 240}, "cvae_p": {"train": 360, "val": 120}}


def test_training_metrics_take_the_last_epoch():
    histories = {
        "cvae": pd.DataFrame({"epoch": [1, 2, 3], "val_loss": [3.0, 2.0, 1.5]}),
        "cvae_p": pd.DataFrame(
            {"epoch": pd.Series([], dtype="int64"), "val_loss": pd.Series([], dtype=float)}
        ),
    }
    m = training_metrics(histories)
    assert list(m) == ["final_val_loss", "epochs"]
    assert m["final_val_loss"] == {"cvae": 1.5}  # no epochs run: no final loss
    assert m["epochs"] == {"cvae": 3, "cvae_p": 0}
    assert type(m["final_val_loss"]["cvae"]) is float and type(m["epochs"]["cvae"]) is int


def _sequence_table() -> tuple[dict, pd.DataFrame]:
    grid = {
        "teff": np.array([6000.0, 6500.0, 7000.0]),
        "abs_g": 0.6,
        "period": 0.55,
        "data_spearman": {"amplitude": -0.9, "skewness": 0.5, "rise_fraction": 0.7},
    }
    teff = np.repeat(grid["teff"], 2)
    sequence = pd.DataFrame(
        {
            "regressor": ["linear"] * 6,
            "teff": teff,
            "sample": [0, 1] * 3,
            "amplitude": [0.9, 0.8, 0.6, 0.5, 0.3, 0.2],  # falls with T_eff
            "skewness": [0.1] * 6,  # constant: no correlation (NaN)
            "rise_fraction": [0.2, 0.2, 0.3, 0.3, 0.4, 0.4],  # rises with T_eff, same within a T_eff
        }
    )
    return grid, sequence


def test_sequence_metrics_by_hand():
    grid, sequence = _sequence_table()
    m = sequence_metrics(grid, sequence)
    assert list(m) == ["grid", "spearman_with_teff", "training_data_spearman_with_teff"]
    assert m["grid"] == {"teff": [6000.0, 6500.0, 7000.0], "abs_g": 0.6, "period": 0.55}
    assert all(type(t) is float for t in m["grid"]["teff"])  # JSON-ready, not numpy
    rho = m["spearman_with_teff"]["linear"]
    # T_eff ranks 1.5, 1.5, 3.5, 3.5, 5.5, 5.5 (deviations ∓2, 0, ±2) against amplitude ranks 6…1
    # (deviations 2.5…−2.5): ρ = −16 / √(16 · 17.5). Rise fractions tie as T_eff does: ρ = 1.
    assert rho["amplitude"] == pytest.approx(-16 / np.sqrt(16 * 17.5))
    assert rho["rise_fraction"] == pytest.approx(1.0)
    assert np.isnan(rho["skewness"])
    assert m["training_data_spearman_with_teff"] == {"amplitude": -0.9, "skewness": 0.5, "rise_fraction": 0.7}


def test_evaluation_metrics_document_in_key_order():
    grid, sequence = _sequence_table()
    regressors = {"cvae": SimpleNamespace(rmse={"linear": 0.5}, n_train_rows=10, n_val_rows=5)}
    reconstruction = {
        "cvae": {"n_curves": 2, "vae": 1.0, "class_template": 2.0, "ratio": 0.5, "per_class": {}}
    }
    histories = {"cvae": pd.DataFrame({"val_loss": [4.0, 3.0]})}
    m = evaluation_metrics(regressors, reconstruction, histories, grid, sequence)
    assert list(m) == [
        "regression_rmse",
        "regression_rmse_paper",
        "regression_rows",
        "reconstruction",
        "final_val_loss",
        "epochs",
        "rrlyrae_teff_sequence",
    ]
    assert m["reconstruction"] == reconstruction
    assert m["final_val_loss"] == {"cvae": 3.0} and m["epochs"] == {"cvae": 2}
    assert m["regression_rows"] == {"cvae": {"train": 10, "val": 5}}
    sequence_part = m["rrlyrae_teff_sequence"]
    assert list(sequence_part) == ["grid", "spearman_with_teff", "training_data_spearman_with_teff"]
    assert sequence_part["grid"]["teff"] == [6000.0, 6500.0, 7000.0]
