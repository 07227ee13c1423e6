"""Regression from physical parameters to a VAE's latent space (paper 000 Sec. 4.2, Table 3).

After training, PELS-VAE connects the physical space to the latent space with a regression, so that a user
can ask for a light curve of given class, Teff, M_G and period: regress → latent vector → decoder. The paper
compares three scikit-learn regressors (linear, random forest, multi-layer perceptron) by their validation
RMSE (Table 3: 0.863 / 0.299 / 0.863 for cVAE, 0.794 / 0.289 / 0.798 for cVAE-P).

Two devices keep the generation variational (Sec. 4.2):

* a "dummy" input dimension drawn from U(0, 1): each object's physical vector is repeated
  ``n_repeats`` = 100 times, differing only in the dummy value, so the regressor can map the dummy to the
  spread of latents that the same physics allows;
* ``n_latent_samples`` = 10 draws z ~ N(μ, σ) from the encoder per object as targets (each draw serves
  ``n_repeats / n_latent_samples`` of the repeated rows).

The inputs are the physical vector (Teff in K, M_G in mag, log10 P with P in d), the one-hot class (the
decoder is class-conditioned, and the latent distributions differ between classes; the paper does not say
whether its regressors saw the class — giving it is the choice that lets one regressor serve all classes)
and the dummy. Inputs are standardised inside the scikit-learn pipeline.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.base import RegressorMixin
from sklearn.ensemble import RandomForestRegressor
from sklearn.linear_model import LinearRegression
from sklearn.neural_network import MLPRegressor
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from latentsky.pelsvae import class_one_hot as one_hot
from latentsky.pelsvae import physics_vector

__all__ = [
    "REGRESSORS",
    "N_REPEATS",
    "N_LATENT_SAMPLES",
    "RegressionDesign",
    "fit_latent_regressors",
    "make_regressor",
    "one_hot",
    "physics_vector",
    "predict_latent",
    "regression_design",
    "rmse",
]

#: The three regressors of Table 3, in its order.
REGRESSORS: tuple[str, ...] = ("linear", "random_forest", "mlp")
#: Sec. 4.2: 100 repeated physical vectors per object, 10 latent samples per object.
N_REPEATS = 100
N_LATENT_SAMPLES = 10


@dataclass
class RegressionDesign:
    """Rows for fitting: inputs ``X`` (physics, one-hot class, dummy) and latent targets ``Y``."""

    X: np.ndarray
    Y: np.ndarray
    object_index: np.ndarray  # which input object each row comes from


def regression_design(
    physics: np.ndarray,
    classes_one_hot: np.ndarray,
    mu: np.ndarray,
    logvar: np.ndarray,
    rng: np.random.Generator,
    *,
    n_repeats: int = N_REPEATS,
    n_latent_samples: int = N_LATENT_SAMPLES,
) -> RegressionDesign:
    """Expand N objects into N · ``n_repeats`` regression rows (module docstring).

    Parameters
    ----------
    physics : (N, 3) array from :func:`physics_vector`; rows with a non-finite value raise ValueError.
    classes_one_hot : (N, K) array from :func:`one_hot`.
    mu, logvar : (N, z_dim) encoder means and log-variances of each object's latent distribution.
    rng : numpy Generator for the dummy values and latent draws.
    n_repeats, n_latent_samples : ``n_repeats`` must be a multiple of ``n_latent_samples``.
    """
    physics = np.asarray(physics, dtype=np.float64)
    n = physics.shape[0]
    if not np.isfinite(physics).all():
        bad = int(np.flatnonzero(~np.isfinite(physics).all(axis=1))[0])
        raise ValueError(
            f"physics row {bad} is not finite ({physics[bad]}); select objects with physics first"
        )
    if n_repeats % n_latent_samples:
        raise ValueError(
            f"n_repeats ({n_repeats}) must be a multiple of n_latent_samples ({n_latent_samples})"
        )
    if mu.shape != logvar.shape or mu.shape[0] != n or classes_one_hot.shape[0] != n:
        raise ValueError("physics, classes_one_hot, mu and logvar must have one row per object")
    sigma = np.exp(0.5 * np.asarray(logvar, dtype=np.float64))
    draws = mu[:, None, :] + sigma[:, None, :] * rng.standard_normal((n, n_latent_samples, mu.shape[1]))
    # Row r of an object uses draw r mod n_latent_samples: every draw serves n_repeats / n_latent_samples rows.
    targets = np.repeat(draws, n_repeats // n_latent_samples, axis=1).reshape(n * n_repeats, -1)
    dummy = rng.uniform(size=(n * n_repeats, 1))
    X = np.hstack(
        [np.repeat(physics, n_repeats, axis=0), np.repeat(classes_one_hot, n_repeats, axis=0), dummy]
    )
    return RegressionDesign(X=X, Y=targets, object_index=np.repeat(np.arange(n), n_repeats))


def make_regressor(name: str, seed: int, n_jobs: int = 1) -> Pipeline:
    """A standardising pipeline around one of :data:`REGRESSORS` (scikit-learn, as in the paper);
    ``n_jobs`` parallelises the random forest."""
    models: dict[str, RegressorMixin] = {
        "linear": LinearRegression(),
        # Leaves of ≥ 5 rows: a fully grown forest would memorise the dummy dimension of each training row.
        "random_forest": RandomForestRegressor(
            n_estimators=100, min_samples_leaf=5, n_jobs=n_jobs, random_state=seed
        ),
        "mlp": MLPRegressor(
            hidden_layer_sizes=(64, 64), max_iter=200, early_stopping=True, random_state=seed, tol=1e-4
        ),
    }
    if name not in models:
        raise ValueError(f"unknown regressor {name!r}; expected one of {list(REGRESSORS)}")
    return make_pipeline(StandardScaler(), models[name])


def rmse(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Root-mean-square error over all rows and latent dimensions (Table 3's figure)."""
    return float(np.sqrt(np.mean((np.asarray(y_true) - np.asarray(y_pred)) ** 2)))


def fit_latent_regressors(
    train: RegressionDesign,
    val: RegressionDesign,
    *,
    seed: int,
    names: Sequence[str] = REGRESSORS,
    n_jobs: int = 1,
) -> tuple[dict[str, Pipeline], dict[str, float]]:
    """Fit each regressor on ``train`` and return the fitted pipelines and their validation RMSE."""
    fitted, scores = {}, {}
    for name in names:
        model = make_regressor(name, seed, n_jobs)
        model.fit(train.X, train.Y)
        if "randomforestregressor" in model.named_steps:
            # Predict on one thread: with n_jobs > 1 scikit-learn sums the trees' predictions in the
            # order the threads finish, so the last bits of every prediction change from run to run.
            model.set_params(randomforestregressor__n_jobs=1)
        fitted[name] = model
        scores[name] = rmse(val.Y, model.predict(val.X))
    return fitted, scores


def predict_latent(
    model: Pipeline,
    physics: np.ndarray,
    classes_one_hot: np.ndarray,
    rng: np.random.Generator | None = None,
    dummy: np.ndarray | None = None,
) -> np.ndarray:
    """Latent vectors for new physical vectors: the dummy dimension drawn from U(0, 1) unless given."""
    physics = np.atleast_2d(np.asarray(physics, dtype=np.float64))
    if dummy is None:
        rng = rng if rng is not None else np.random.default_rng()
        dummy = rng.uniform(size=physics.shape[0])
    X = np.hstack(
        [physics, np.atleast_2d(classes_one_hot), np.asarray(dummy, dtype=np.float64).reshape(-1, 1)]
    )
    return model.predict(X)
