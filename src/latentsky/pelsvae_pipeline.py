"""The PELS-VAE stage of the workflow (paper 000 Secs. 3–4): which rows train which model, the
physics → latent regressors as a file, and generating new light curves at any cadence.

Two models are trained on the same light-curve sets (Sec. 4.2):

* ``cvae`` — conditioned on the class only (Sec. 4.1), trained on every training curve;
* ``cvae_p`` — class plus (T_eff, M_G, P) in the encoder, trained on the curves whose object has all three
  (the paper's Table 1: ~38 % of the validated objects have a Gaia T_eff; augmentation favours them).

For both, a regressor maps (physics, class, dummy ~ U(0, 1)) to the latent space
(:mod:`latentsky.latent_regression`); generating a light curve (Sec. 4.3) is: physics → regressor → z →
decoder at the phases ((t − t0) / P) mod 1 of the requested times.
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

from latentsky.checkpoints import load_checkpoint, save_checkpoint
from latentsky.latent_regression import (
    N_LATENT_SAMPLES,
    N_REPEATS,
    REGRESSORS,
    RegressionDesign,
    fit_latent_regressors,
    predict_latent,
    regression_design,
)
from latentsky.lightcurves import align_to_epoch
from latentsky.pelsvae import (
    PHYSICS_COLUMNS,
    LightCurveScaler,
    PelsVae,
    PelsVaeConfig,
    class_one_hot,
    encode,
    generate,
    physics_vector,
)

__all__ = [
    "MODELS",
    "CADENCE_KINDS",
    "network_config",
    "has_physics",
    "rows_for_model",
    "epoch_aligned",
    "regression_inputs",
    "LatentRegressors",
    "fit_regressors",
    "save_regressors",
    "load_regressors",
    "cadence_times",
    "read_times_table",
    "read_requests",
    "request_times",
    "generate_lightcurves",
]

#: The two generative models of Sec. 4.2 → whether the encoder sees the physical parameters.
MODELS: dict[str, bool] = {"cvae": False, "cvae_p": True}
#: Cadence descriptions understood by :func:`cadence_times`.
CADENCE_KINDS = ("regular", "random", "phases", "ogle3")
_REGRESSORS_KIND = "pelsvae-latent-regressors"


def network_config(
    network: Mapping[str, Any], model: str, overrides: Mapping[str, Any] | None = None
) -> PelsVaeConfig:
    """The ``pelsvae.network`` config block, with ``pelsvae.model_overrides[model]`` on top, →
    :class:`PelsVaeConfig` for ``model`` (cvae | cvae_p). Unknown keys are an error naming them."""
    if model not in MODELS:
        raise ValueError(f"unknown PELS-VAE model {model!r}; expected one of {list(MODELS)}")
    return PelsVaeConfig.from_dict({**dict(network), **dict(overrides or {}), "use_physics": MODELS[model]})


def has_physics(frame: pd.DataFrame) -> np.ndarray:
    """Rows whose object has T_eff, M_G and a positive period (the physical vector of cVAE-P)."""
    missing = [c for c in PHYSICS_COLUMNS if c not in frame.columns]
    if missing:
        return np.zeros(len(frame), dtype=bool)
    raw = physics_vector(*(pd.to_numeric(frame[c], errors="coerce").to_numpy() for c in PHYSICS_COLUMNS))
    return np.isfinite(raw).all(axis=1)


def rows_for_model(frame: pd.DataFrame, model: str) -> pd.DataFrame:
    """The rows ``model`` trains (or is validated) on: all for cvae, those with physics for cvae_p."""
    if not MODELS[model]:
        return frame.reset_index(drop=True)
    return frame[has_physics(frame)].reset_index(drop=True)


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
    for ECL/ELL), :func:`latentsky.lightcurves.align_to_epoch`."""
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
    regressors : name (:data:`~latentsky.latent_regression.REGRESSORS`) → fitted scikit-learn pipeline.
    rmse : name → validation RMSE over all latent dimensions.
    n_train_rows, n_val_rows : regression rows (objects × n_repeats) fitted and scored.
    """

    model: str
    classes: tuple[str, ...]
    regressors: dict[str, Any]
    rmse: dict[str, float]
    n_train_rows: int
    n_val_rows: int
    settings: dict[str, Any] = field(default_factory=dict)

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
    """Fit the Table-3 regressors on ``train`` and score them on ``val`` (both light-curve tables)."""
    rng = np.random.default_rng([seed, 1])
    kw = dict(n_repeats=n_repeats, n_latent_samples=n_latent_samples, device=device)
    design_train = regression_inputs(model, scaler, train, rng, **kw)
    design_val = regression_inputs(model, scaler, val, rng, **kw)
    fitted, scores = fit_latent_regressors(design_train, design_val, seed=seed, names=names, n_jobs=n_jobs)
    return LatentRegressors(
        model=model_name,
        classes=tuple(model.config.classes),
        regressors=fitted,
        rmse=scores,
        n_train_rows=len(design_train.X),
        n_val_rows=len(design_val.X),
        settings={"n_repeats": n_repeats, "n_latent_samples": n_latent_samples, "seed": seed},
    )


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
    )


# ---------------------------------------------------------------------------------------------------------
# Generation (Sec. 4.3)
# ---------------------------------------------------------------------------------------------------------


def cadence_times(spec: str, t0: float, period: float, rng: np.random.Generator) -> np.ndarray:
    """Observation times (d) from a cadence description, starting at ``t0``.

    ``regular:N:SPAN`` — N epochs evenly spaced over SPAN days; ``random:N:SPAN`` — N epochs uniform at random
    in SPAN days (sorted); ``phases:N`` — N epochs evenly spaced over one period (a smooth folded curve);
    ``ogle3:N:SEASONS`` — N epochs spread over SEASONS observing seasons of ~240 nights a year with nightly
    sampling and a ±3 h jitter, like the OGLE-III bulge/LMC cadence.
    """
    kind, *args = str(spec).split(":")
    try:
        values = [float(a) for a in args]
    except ValueError:
        values = []
    want = {"regular": 2, "random": 2, "phases": 1, "ogle3": 2}
    if kind not in want or len(values) != want[kind] or values[0] < 1 or int(values[0]) != values[0]:
        raise ValueError(
            f"cadence {spec!r}: expected regular:N:SPAN, random:N:SPAN, phases:N or ogle3:N:SEASONS "
            "with an integer N ≥ 1 (SPAN in days)"
        )
    n = int(values[0])
    if kind == "phases":
        return t0 + period * np.arange(n) / n
    span = values[1]
    if span <= 0:
        raise ValueError(f"cadence {spec!r}: the span must be positive")
    if kind == "regular":
        return t0 + span * np.arange(n) / n
    if kind == "random":
        return np.sort(t0 + span * rng.uniform(size=n))
    # ogle3: nights inside seasons of 240 d every 365.25 d, one or more epochs per night.
    season = np.floor(span * rng.uniform(size=n))
    night = np.floor(240.0 * rng.uniform(size=n))
    jitter = rng.normal(0.0, 0.125, size=n)
    return np.sort(t0 + 365.25 * season + night + jitter)


def read_times_table(path: str | os.PathLike) -> pd.DataFrame:
    """Timestamps from a file: CSV, ECSV/ASCII with a header, or Parquet, with a column ``time`` (d) and
    optionally ``request`` (which request each time belongs to; without it every request uses them all)."""
    p = Path(path)
    if p.suffix.lower() in (".parquet", ".pq"):
        table = pd.read_parquet(p)
    else:
        from astropy.table import Table

        try:
            table = Table.read(p, format="ascii").to_pandas()
        except Exception as exc:  # astropy raises many types for unreadable text
            raise ValueError(f"{path}: cannot read a table of timestamps ({exc})") from exc
    if "time" not in table.columns:
        raise ValueError(f"{path}: needs a column 'time' (days); it has {list(table.columns)}")
    times = pd.to_numeric(table["time"], errors="coerce")
    if times.isna().any():
        row = int(np.flatnonzero(times.isna().to_numpy())[0])
        raise ValueError(f"{path}: column 'time' row {row} is not a finite number")
    out = pd.DataFrame({"time": times.to_numpy(np.float64)})
    if "request" in table.columns:
        out["request"] = table["request"].to_numpy()
    return out


#: Request columns: required, then optional with their defaults.
REQUEST_REQUIRED = ("var_class", "teff", "abs_g", "period")
REQUEST_DEFAULTS: dict[str, Any] = {"t0": 0.0, "n_samples": 1, "median_mag": 0.0}


def read_requests(requests: pd.DataFrame | Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Normalise generation requests: one row per (class, T_eff [K], M_G [mag], P [d]) with ``t0`` (d),
    ``n_samples`` (light curves per request, each with its own dummy draw) and ``median_mag`` (the
    median I magnitude to add; 0 gives magnitudes relative to the median). Bad values are named."""
    frame = pd.DataFrame(list(requests) if not isinstance(requests, pd.DataFrame) else requests).copy()
    missing = [c for c in REQUEST_REQUIRED if c not in frame.columns]
    if missing:
        raise ValueError(f"generation requests need column(s) {missing}; got {list(frame.columns)}")
    for col, default in REQUEST_DEFAULTS.items():
        frame[col] = frame[col].fillna(default) if col in frame else default
    for col in ("teff", "abs_g", "period", "t0", "median_mag"):
        frame[col] = pd.to_numeric(frame[col], errors="coerce")
        bad = ~np.isfinite(frame[col].to_numpy(np.float64))
        if col == "period":
            bad |= ~(frame[col].to_numpy(np.float64) > 0)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"generation request {i}: {col} must be a finite number, got {frame[col].iloc[i]!r}"
            )
    n = pd.to_numeric(frame["n_samples"], errors="coerce")
    if not ((n >= 1) & (n == n.round())).all():
        raise ValueError(
            f"generation requests: n_samples must be integers ≥ 1, got {frame['n_samples'].tolist()}"
        )
    frame["n_samples"] = n.astype(np.int64)
    frame["var_class"] = frame["var_class"].astype(str)
    if "request" not in frame:
        frame["request"] = np.arange(len(frame))
    if frame["request"].duplicated().any():
        raise ValueError("generation requests: the 'request' column must be unique")
    return frame.reset_index(drop=True)


def request_times(
    requests: pd.DataFrame,
    rng: np.random.Generator,
    *,
    cadence: str | None = None,
    times_table: pd.DataFrame | None = None,
) -> dict[Any, np.ndarray]:
    """Timestamps (d) for every request: from ``times_table`` (:func:`read_times_table`; per request when it
    has a ``request`` column, else shared) or else from the ``cadence`` description, started at each
    request's t0 (:func:`cadence_times`)."""
    if times_table is not None:
        if "request" not in times_table:
            shared = times_table["time"].to_numpy(np.float64)
            return {req: shared for req in requests["request"]}
        groups = {k: g["time"].to_numpy(np.float64) for k, g in times_table.groupby("request", sort=False)}
        # Request ids from a CSV arrive as numbers or strings: compare as strings.
        by_text = {str(k): v for k, v in groups.items()}
        missing = [r for r in requests["request"] if str(r) not in by_text]
        if missing:
            raise ValueError(f"the timestamps table has no rows for request(s) {missing}")
        return {req: by_text[str(req)] for req in requests["request"]}
    if cadence is None:
        raise ValueError("give either a timestamps table or a cadence description")
    return {
        row.request: cadence_times(cadence, float(row.t0), float(row.period), rng)
        for row in requests.itertuples(index=False)
    }


def generate_lightcurves(
    model: PelsVae,
    scaler: LightCurveScaler,
    regressors: LatentRegressors,
    regressor: str,
    requests: pd.DataFrame,
    times: Mapping[Any, np.ndarray] | np.ndarray,
    rng: np.random.Generator,
    *,
    device: str = "cpu",
) -> pd.DataFrame:
    """New light curves (Sec. 4.3): one row per (request, sample), list columns ``time``, ``phase``, ``mag``,
    ``err`` in the order of the given times.

    Parameters
    ----------
    model, scaler : a trained PELS-VAE and its scaler; ``regressors`` fitted on its latent space.
    regressor : which regressor maps physics to latents (linear | random_forest | mlp).
    requests : output of :func:`read_requests`.
    times : one array of times (d) for every request, or request → array.
    rng : draws the dummy dimension of each sample.
    """
    if regressors.classes != tuple(model.config.classes):
        raise ValueError("the regressors were fitted for a model with other classes")
    rows = requests.loc[requests.index.repeat(requests["n_samples"])].reset_index(drop=True)
    rows["sample"] = rows.groupby("request").cumcount()
    rows["dummy"] = rng.uniform(size=len(rows))
    z = regressors.predict(
        regressor, rows["teff"], rows["abs_g"], rows["period"], rows["var_class"], rows["dummy"]
    )
    per_row_times = []
    for req in rows["request"]:
        t = times.get(req) if isinstance(times, Mapping) else times
        if t is None or len(t) == 0:
            raise ValueError(f"generation request {req!r}: no timestamps")
        per_row_times.append(np.asarray(t, dtype=np.float64))
    out_mag, out_err, out_phase = [], [], []
    # Requests with the same number of epochs are decoded together (the decoder takes (N, T) phases).
    lengths = np.array([len(t) for t in per_row_times])
    mags: list[np.ndarray | None] = [None] * len(rows)
    errs: list[np.ndarray | None] = [None] * len(rows)
    phases: list[np.ndarray | None] = [None] * len(rows)
    for length in np.unique(lengths):
        idx = np.flatnonzero(lengths == length)
        t = np.stack([per_row_times[i] for i in idx])
        p = rows["period"].to_numpy(np.float64)[idx, None]
        t0 = rows["t0"].to_numpy(np.float64)[idx, None]
        phase = np.mod((t - t0) / p, 1.0)
        mag, err = generate(
            model,
            scaler,
            rows["var_class"].iloc[idx].tolist(),
            z[idx],
            phase,
            rows["median_mag"].to_numpy(np.float64)[idx],
            device=device,
        )
        for k, i in enumerate(idx):
            mags[i], errs[i], phases[i] = mag[k], err[k], phase[k]
    out_mag = [m.tolist() for m in mags]
    out_err = [e.tolist() for e in errs]
    out_phase = [p.tolist() for p in phases]
    columns = ["request", "sample", "var_class", "teff", "abs_g", "period", "t0", "median_mag", "dummy"]
    out = rows[columns].copy()
    out["regressor"] = regressor
    out["model"] = regressors.model
    out["z"] = [list(map(float, v)) for v in z]
    out["time"] = [t.tolist() for t in per_row_times]
    out["phase"] = out_phase
    out["mag"] = out_mag
    out["err"] = out_err
    return out
