"""Tests of the physics → latent regression of paper 000 Sec. 4.2 (Table 3)."""

from __future__ import annotations

import numpy as np
import pytest

from latentsky.pelsvae.data import class_one_hot, physics_vector
from latentsky.pelsvae.regression import (
    CLASS_MEAN_BASELINE,
    REGRESSORS,
    class_mean_latents,
    fit_latent_regressors,
    predict_latent,
    regression_design,
    rmse,
)

CLASSES = ("CEP", "RRLYR")


def _objects(n: int, rng: np.random.Generator):
    """Objects whose latent mean is a known non-linear function of the physics (plus a class offset)."""
    teff = rng.uniform(5500, 7500, n)
    abs_g = rng.uniform(-3, 1, n)
    period = 10 ** rng.uniform(-0.5, 1.0, n)
    labels = np.where(rng.uniform(size=n) < 0.5, "CEP", "RRLYR")
    phys = physics_vector(teff, abs_g, period)
    mu = np.column_stack(
        [
            ((teff - 6500) / 500) ** 2 - 1,
            np.tanh(3 * (abs_g + 1)) + (labels == "CEP"),
            np.sin(4 * np.log10(period)),
        ]
    )
    logvar = np.full_like(mu, np.log(0.1**2))
    return phys, class_one_hot(labels, CLASSES), mu, logvar


def test_design_repeats_objects_and_draws_latents():
    rng = np.random.default_rng(1)
    phys, oh, mu, logvar = _objects(7, rng)
    d = regression_design(phys, oh, mu, logvar, rng)
    assert d.X.shape == (700, 3 + 2 + 1) and d.Y.shape == (700, 3)
    # The 100 rows of an object differ only in the dummy, which is U(0, 1).
    rows = d.X[d.object_index == 3]
    np.testing.assert_array_equal(rows[:, :5], np.tile(rows[0, :5], (100, 1)))
    assert 0 <= d.X[:, -1].min() and d.X[:, -1].max() < 1 and np.ptp(rows[:, -1]) > 0.8
    # 10 distinct draws per object, each used 10 times, scattered by σ = 0.1 around μ.
    assert len(np.unique(d.Y[d.object_index == 3][:, 0])) == 10
    resid = d.Y - np.repeat(mu, 100, axis=0)
    assert resid.std() == pytest.approx(0.1, rel=0.15)
    np.testing.assert_allclose(physics_vector([6000.0], [0.5], [10.0]), [[6000.0, 0.5, 1.0]])


def test_bad_inputs_are_named():
    rng = np.random.default_rng(2)
    phys, oh, mu, logvar = _objects(3, rng)
    phys[1, 0] = np.nan
    with pytest.raises(ValueError, match="physics row 1"):
        regression_design(phys, oh, mu, logvar, rng)
    with pytest.raises(ValueError, match="multiple"):
        regression_design(phys[:1], oh[:1], mu[:1], logvar[:1], rng, n_repeats=15)
    with pytest.raises(ValueError, match="'LPV'"):
        class_one_hot(["LPV"], CLASSES)


def test_regressors_recover_a_known_mapping():
    rng = np.random.default_rng(3)
    train = regression_design(*_objects(200, rng), rng, n_repeats=10, n_latent_samples=10)
    val = regression_design(*_objects(60, rng), rng, n_repeats=10, n_latent_samples=10)
    models, scores = fit_latent_regressors(train, val, seed=0)
    assert set(scores) == {*REGRESSORS, CLASS_MEAN_BASELINE} and set(models) == set(REGRESSORS)
    # The latent scatter is 0.1: a regressor that learned the mapping sits near it; predicting the mean
    # latent everywhere does far worse, the class's mean latent (which knows the CEP offset of z_1) a little
    # better. The linear model cannot follow the square, tanh and sine.
    baseline = rmse(val.Y, np.tile(train.Y.mean(axis=0), (len(val.Y), 1)))
    assert baseline > 0.5
    assert baseline > scores[CLASS_MEAN_BASELINE] > 2 * scores["random_forest"]
    assert scores["random_forest"] < 0.45 and scores["mlp"] < 0.3
    assert scores["linear"] > 1.5 * scores["random_forest"]
    z = predict_latent(models["mlp"], physics_vector([6500.0], [-1.0], [10 ** 0.25]),
                       class_one_hot(["RRLYR"], CLASSES), dummy=[0.5])  # fmt: skip
    np.testing.assert_allclose(z[0], [-1.0, 0.0, np.sin(1.0)], atol=0.25)


def test_class_mean_baseline_by_hand():
    rng = np.random.default_rng(4)
    train = regression_design(*_objects(40, rng), rng, n_repeats=10, n_latent_samples=10)
    val = regression_design(*_objects(10, rng), rng, n_repeats=10, n_latent_samples=10)
    pred = class_mean_latents(train, val)
    cep_train, cep_val = train.X[:, 3] == 1, val.X[:, 3] == 1
    np.testing.assert_allclose(pred[cep_val], np.tile(train.Y[cep_train].mean(axis=0), (cep_val.sum(), 1)))
    np.testing.assert_allclose(pred[~cep_val][0], train.Y[~cep_train].mean(axis=0))
