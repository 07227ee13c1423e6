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

import io
import os
import pickle
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sklearn
from sklearn.base import RegressorMixin
from sklearn.ensemble import RandomForestRegressor
from sklearn.linear_model import LinearRegression
from sklearn.neural_network import MLPRegressor
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from latentsky.pelsvae.config import PHYSICS_COLUMNS
from latentsky.pelsvae.data import LightCurveScaler, class_one_hot, has_physics, physics_vector
from latentsky.pelsvae.model import PelsVae, encode
from latentsky.provenance.files import load_checkpoint, save_checkpoint
from latentsky.variables.lightcurves import align_to_epoch

__all__ = [
    "REGRESSORS",
    "CLASS_MEAN_BASELINE",
    "class_mean_latents",
    "N_REPEATS",
    "N_LATENT_SAMPLES",
    "RegressionDesign",
    "fit_latent_regressors",
    "make_regressor",
    "predict_latent",
    "regression_design",
    "rmse",
    "epoch_aligned",
    "regression_inputs",
    "LatentRegressors",
    "physics_range",
    "validation_residuals",
    "fit_regressors",
    "save_regressors",
    "load_regressors",
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
    classes_one_hot : (N, K) array from :func:`latentsky.pelsvae.data.class_one_hot`.
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


def make_regressor(name: str, seed: int, n_jobs: int = 1, min_samples_leaf: int = 5) -> Pipeline:
    """A standardising pipeline around one of :data:`REGRESSORS` (scikit-learn, as in the paper);
    ``n_jobs`` parallelises the random forest, ``min_samples_leaf`` bounds its leaves (a fully grown forest
    would memorise the dummy dimension of each training row)."""
    models: dict[str, RegressorMixin] = {
        "linear": LinearRegression(),
        "random_forest": RandomForestRegressor(
            n_estimators=100, min_samples_leaf=min_samples_leaf, n_jobs=n_jobs, random_state=seed
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
    min_samples_leaf: int = 5,
) -> tuple[dict[str, Pipeline], dict[str, float]]:
    """Fit each regressor on ``train`` and return the fitted pipelines and their validation RMSE, with the
    RMSE of :data:`CLASS_MEAN_BASELINE` beside them (the class's mean latent: what the regressors gain over
    it is what the physics explains beyond the class label)."""
    fitted, scores = {}, {}
    for name in names:
        model = make_regressor(name, seed, n_jobs, min_samples_leaf)
        model.fit(train.X, train.Y)
        if "randomforestregressor" in model.named_steps:
            # Predict on one thread: with n_jobs > 1 scikit-learn sums the trees' predictions in the
            # order the threads finish, so the last bits of every prediction change from run to run.
            model.set_params(randomforestregressor__n_jobs=1)
        fitted[name] = model
        scores[name] = rmse(val.Y, model.predict(val.X))
    scores[CLASS_MEAN_BASELINE] = rmse(val.Y, class_mean_latents(train, val))
    return fitted, scores


#: The Table 3 baseline row: each curve's latent predicted by the mean latent of its class in training.
CLASS_MEAN_BASELINE = "class_mean"


def class_mean_latents(train: RegressionDesign, val: RegressionDesign) -> np.ndarray:
    """For each row of ``val``, the mean target of the ``train`` rows of its class (the one-hot columns of X,
    between the three physics columns and the dummy); the overall mean for a class absent from ``train``."""
    cls_train = np.argmax(train.X[:, 3:-1], axis=1)
    cls_val = np.argmax(val.X[:, 3:-1], axis=1)
    means = np.tile(train.Y.mean(axis=0), (train.X.shape[1] - 4, 1))
    for k in np.unique(cls_train):
        means[k] = train.Y[cls_train == k].mean(axis=0)
    return means[cls_val]


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


_REGRESSORS_KIND = "pelsvae-latent-regressors"


def regression_inputs(
    model: PelsVae,
    scaler: LightCurveScaler,
    frame: pd.DataFrame,
    rng: np.random.Generator,
    *,
    n_repeats: int = N_REPEATS,
    n_latent_samples: int = N_LATENT_SAMPLES,
    device: str = "cpu",
) -> RegressionDesign:
    """Regression rows (Sec. 4.2) from the curves of ``frame`` that have physics: encode them (μ, log σ²),
    draw ``n_latent_samples`` latents each, repeat the physical vector ``n_repeats`` times with a dummy.

    Each curve is encoded with phase 0 at its catalog-convention epoch (:func:`epoch_aligned`). Training
    shifts curves in phase at random (Sec. 2.2 augmentation), so part of every latent vector says where
    the curve's maximum lies; that part is unrelated to the physics, and a regressor would average it
    away — decoding to a curve smeared over all phase offsets. Aligned, the targets differ only by what
    the physics can explain, and a generated curve has its maximum (or primary minimum) at t0.
    """
    rows = epoch_aligned(frame[has_physics(frame)].reset_index(drop=True))
    if rows.empty:
        raise ValueError(
            "no light curve with T_eff, M_G and period: the physics → latent regression has nothing to fit"
        )
    mu, logvar = encode(model, rows, scaler, device=device, return_logvar=True)
    physics = physics_vector(*(pd.to_numeric(rows[c]).to_numpy() for c in PHYSICS_COLUMNS))
    onehot = class_one_hot(rows["var_class"], model.config.classes)
    return regression_design(
        physics, onehot, mu, logvar, rng, n_repeats=n_repeats, n_latent_samples=n_latent_samples
    )


def epoch_aligned(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of a light-curve table with every curve shifted so that phase 0 is at maximum light (minimum
    for ECL/ELL), :func:`latentsky.variables.lightcurves.align_to_epoch`."""
    out = frame.copy()
    aligned = [
        align_to_epoch(np.asarray(p), np.asarray(m), np.asarray(e), c)
        for p, m, e, c in zip(frame["phase"], frame["mag"], frame["err"], frame["var_class"], strict=True)
    ]
    for k, col in enumerate(("phase", "mag", "err")):
        out[col] = [a[k] for a in aligned]
    return out


@dataclass
class LatentRegressors:
    """Fitted physics → latent regressors of one generative model, with their validation RMSE (Table 3).

    Attributes
    ----------
    model : generative model they serve (cvae | cvae_p).
    classes : the model's one-hot class order (the regressors' class inputs).
    regressors : name (:data:`~latentsky.pelsvae.regression.REGRESSORS`) → fitted scikit-learn pipeline.
    rmse : name → validation RMSE over all latent dimensions, with the ``class_mean`` baseline's.
    n_train_rows, n_val_rows : regression rows (objects × n_repeats) fitted and scored.
    physics_range : class → {teff, abs_g, period} → [min, max] over the training curves with physics: the
        support the regressors were fitted on (:meth:`check_support`).
    """

    model: str
    classes: tuple[str, ...]
    regressors: dict[str, Any]
    rmse: dict[str, float]
    n_train_rows: int
    n_val_rows: int
    settings: dict[str, Any] = field(default_factory=dict)
    physics_range: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    residuals: dict[str, dict[str, list[list[float]]]] = field(default_factory=dict)

    def residual_draws(self, name: str, var_class: Sequence[str], rng: np.random.Generator) -> np.ndarray:
        """One validation residual z − ẑ of regressor ``name`` per row, drawn from the row's class: what
        the physics leaves unexplained, for :func:`~latentsky.pelsvae.generation.generate_lightcurves`'
        ``latent_sampling="residual"``."""
        table = self.residuals.get(name, {})
        out = []
        for cls in var_class:
            pool = table.get(str(cls))
            if not pool:
                raise ValueError(
                    f"no validation residuals of class {cls} for the {name} regressor of {self.model}; "
                    f"classes with residuals: {sorted(table)} (refit with this version to keep them)"
                )
            out.append(pool[int(rng.integers(len(pool)))])
        return np.asarray(out, dtype=np.float64)

    def check_support(
        self,
        teff: np.ndarray,
        abs_g: np.ndarray,
        period: np.ndarray,
        var_class: Sequence[str],
        labels: Sequence[Any] | None = None,
    ) -> None:
        """A one-line ``ValueError`` for the first physical vector outside its class's training range.

        Outside the range a linear or MLP regressor extrapolates and a random forest returns its edge
        leaf, so the curve would not answer the request (paper 000 Sec. 4.3 generates inside its data).
        ``labels`` name the vectors in the message (default their position).
        """
        values = {"teff": teff, "abs_g": abs_g, "period": period}
        units = {"teff": "K", "abs_g": "mag", "period": "d"}
        for i, cls in enumerate(var_class):
            label = f"request {i}" if labels is None else str(list(labels)[i])
            support = self.physics_range.get(str(cls))
            if support is None:
                raise ValueError(
                    f"{label}: no {cls} light curve with physics was in the {self.model} regressors' "
                    f"training set; classes with physics: {sorted(self.physics_range)}"
                )
            for name, (lo, hi) in support.items():
                v = float(np.asarray(values[name], dtype=np.float64)[i])
                if not lo <= v <= hi:
                    raise ValueError(
                        f"{label}: {name} = {v:g} {units[name]} is outside the {cls} training range "
                        f"{lo:g} … {hi:g} {units[name]} of the {self.model} regressors"
                    )

    def predict(
        self,
        name: str,
        teff: np.ndarray,
        abs_g: np.ndarray,
        period: np.ndarray,
        var_class: Sequence[str],
        dummy: np.ndarray,
    ) -> np.ndarray:
        """Latent vectors (N, z_dim) for physical vectors, classes and dummy values in [0, 1)."""
        if name not in self.regressors:
            raise ValueError(f"unknown regressor {name!r}; this file holds {sorted(self.regressors)}")
        physics = physics_vector(teff, abs_g, period)
        bad = ~np.isfinite(physics).all(axis=1)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"request {i}: T_eff, M_G and a positive period are required, got {physics[i].tolist()} "
                "(T_eff, M_G, log10 P)"
            )
        onehot = class_one_hot(list(var_class), self.classes)
        return predict_latent(self.regressors[name], physics, onehot, dummy=dummy)


def fit_regressors(
    model_name: str,
    model: PelsVae,
    scaler: LightCurveScaler,
    train: pd.DataFrame,
    val: pd.DataFrame,
    *,
    seed: int,
    names: Sequence[str] = REGRESSORS,
    n_repeats: int = N_REPEATS,
    n_latent_samples: int = N_LATENT_SAMPLES,
    n_jobs: int = 1,
    device: str = "cpu",
) -> LatentRegressors:
    """Fit the Table-3 regressors on ``train`` and score them on the real (not augmented) curves of ``val``.

    Augmented validation copies repeat one object's physics with a perturbed curve: a small class's few
    objects would weigh as their copies (on the demo, 75 of cVAE-P's 285 validation rows were copies of one δ
    Scuti star), so Table 3 and the residuals kept for sampling use each validation object once.
    """
    if "augmented" in val.columns:
        val = val[~val["augmented"].astype(bool).to_numpy()]
    rng = np.random.default_rng([seed, 1])
    kw = dict(n_repeats=n_repeats, n_latent_samples=n_latent_samples, device=device)
    design_train = regression_inputs(model, scaler, train, rng, **kw)
    design_val = regression_inputs(model, scaler, val, rng, **kw)
    # Random-forest leaves of half an object's block of repeated rows (which differ only in the dummy): the
    # forest's size then grows with the objects, not the repeats. Measured on 50,000 rows of 500 objects
    # (tests/pelsvae/test_regression's mapping): leaves of 5 → 1.8 kB a row (3.6 GB at the paper's 2M rows),
    # validation RMSE 0.311; leaves of 50 → 0.18 kB a row (350 MB), RMSE 0.311.
    leaf = max(5, n_repeats // 2)
    fitted, scores = fit_latent_regressors(
        design_train, design_val, seed=seed, names=names, n_jobs=n_jobs, min_samples_leaf=leaf
    )
    residuals = validation_residuals(fitted, design_val, model.config.classes, rng)
    return LatentRegressors(
        model=model_name,
        classes=tuple(model.config.classes),
        regressors=fitted,
        rmse=scores,
        n_train_rows=len(design_train.X),
        n_val_rows=len(design_val.X),
        settings={
            "n_repeats": n_repeats,
            "n_latent_samples": n_latent_samples,
            "seed": seed,
            "random_forest_min_samples_leaf": leaf,
        },
        physics_range=physics_range(train),
        residuals=residuals,
    )


#: Validation residuals kept per regressor and class for residual sampling at generation.
MAX_RESIDUALS_PER_CLASS = 500


def validation_residuals(
    fitted: Mapping[str, Pipeline],
    val: RegressionDesign,
    classes: Sequence[str],
    rng: np.random.Generator,
    max_per_class: int = MAX_RESIDUALS_PER_CLASS,
) -> dict[str, dict[str, list[list[float]]]]:
    """Per regressor and class, up to ``max_per_class`` residuals z − ẑ of the validation rows (z a draw
    from the encoder's posterior, ẑ the regressor's prediction): the spread of latents that one physical
    vector leaves open, which the dummy dimension does not give (Sec. 4.2; module docstring)."""
    cls = np.argmax(val.X[:, 3:-1], axis=1)
    out: dict[str, dict[str, list[list[float]]]] = {}
    for name, model in fitted.items():
        resid = val.Y - model.predict(val.X)
        out[name] = {}
        for k in np.unique(cls):
            rows = np.flatnonzero(cls == k)
            if len(rows) > max_per_class:
                rows = np.sort(rng.choice(rows, size=max_per_class, replace=False))
            out[name][str(classes[k])] = resid[rows].tolist()
    return out


def physics_range(frame: pd.DataFrame) -> dict[str, dict[str, list[float]]]:
    """class → {teff, abs_g, period} → [min, max] over the rows of ``frame`` with all three."""
    rows = frame[has_physics(frame)]
    return {
        str(cls): {c: [float(group[c].min()), float(group[c].max())] for c in PHYSICS_COLUMNS}
        for cls, group in rows.groupby("var_class", sort=True)
    }


def save_regressors(path: str | os.PathLike, regs: LatentRegressors, provenance: Mapping[str, Any]) -> Path:
    """Write the regressors as a latentsky checkpoint (provenance readable without unpickling them).

    scikit-learn estimators have no portable format; they are pickled into the file's ``pickled`` field
    with the scikit-learn version, and :func:`load_regressors` refuses another version.
    """
    buf = io.BytesIO()
    pickle.dump(regs.regressors, buf, protocol=pickle.HIGHEST_PROTOCOL)
    state = {
        "kind": _REGRESSORS_KIND,
        "model": regs.model,
        "classes": list(regs.classes),
        "rmse": dict(regs.rmse),
        "n_train_rows": regs.n_train_rows,
        "n_val_rows": regs.n_val_rows,
        "settings": dict(regs.settings),
        "physics_range": dict(regs.physics_range),
        "residuals": dict(regs.residuals),
        "sklearn_version": sklearn.__version__,
        "pickled": buf.getvalue(),
    }
    return save_checkpoint(state, path, provenance)


def load_regressors(path: str | os.PathLike) -> LatentRegressors:
    """Read :func:`save_regressors`' file. Unpickles scikit-learn objects: open only files you trust
    (``latentsky audit`` checks a file's lineage first)."""
    state, _ = load_checkpoint(path)
    if state.get("kind") != _REGRESSORS_KIND:
        raise ValueError(f"{path}: not a PELS-VAE regressor file (kind {state.get('kind')!r})")
    if state["sklearn_version"] != sklearn.__version__:
        raise ValueError(
            f"{path}: written with scikit-learn {state['sklearn_version']}, this is {sklearn.__version__}; "
            "rerun the pelsvae_regression rule to refit"
        )
    return LatentRegressors(
        model=state["model"],
        classes=tuple(state["classes"]),
        regressors=pickle.loads(state["pickled"]),  # noqa: S301 - our own file, version-checked
        rmse=dict(state["rmse"]),
        n_train_rows=int(state["n_train_rows"]),
        n_val_rows=int(state["n_val_rows"]),
        settings=dict(state["settings"]),
        physics_range=dict(state.get("physics_range", {})),
        residuals=dict(state.get("residuals", {})),
    )
