"""Figures of merit of a trained PELS-VAE (paper 000 Sec. 4): reconstruction against a class-mean
template, and the morphology of generated RR Lyrae along a T_eff sequence (Fig. 8).

* **Reconstruction.** The error-weighted mean squared residual ((x − x̂)/σ)² — eq. 4's first term in
  magnitudes, the χ² per point — of the decoder's reconstruction (z = μ) of held-out curves, beside two
  baselines computed on the same curves: the *class-mean template* (the mean of (mag − median) in phase
  bins over the class's training curves, each curve shifted to its epoch first — unaligned, the random
  phases of the augmented copies average the shape away and the template is flat), and a *Fourier series*
  fitted to each curve by weighted least squares (:data:`FOURIER_ORDERS` harmonics: 2 has five free
  numbers, about the VAE's latent; 6 is the usual empirical model of a pulsator). A model whose latent space
  carries what distinguishes curves of one class beats the template; the Fourier fits say how close it
  comes to a per-curve description.
* **RR Lyrae in T_eff** (Sec. 4.3, Fig. 8). RR Lyrae go from the sawtooth of the cool Bailey type ab
  (fast rise, large amplitude, brief bright maximum: negative magnitude skewness) to the near-sinusoid of
  the hot type c. Generated curves along a T_eff grid, at fixed M_G and period, are measured by
  :func:`shape_statistics`; the Spearman correlation of each statistic with T_eff says whether — and how
  strongly — a regressor carries the physics into the generated shape.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy import stats

from latentsky.pelsvae.data import LightCurveScaler, rows_for_model
from latentsky.pelsvae.model import PelsVae, generate, reconstruct
from latentsky.variables.lightcurves import epoch_phase, rise_fraction

if TYPE_CHECKING:
    from latentsky.pelsvae.regression import LatentRegressors

__all__ = [
    "TABLE3_PAPER",
    "TEMPLATE_BINS",
    "FOURIER_ORDERS",
    "fourier_curves",
    "reconstruction_scores",
    "sequence_grid",
    "table3",
    "class_mean_templates",
    "template_curves",
    "weighted_mse",
    "shape_statistics",
    "rrlyrae_sequence",
    "sequence_correlations",
    "reconstruct_test_sets",
    "teff_sequence",
    "regression_metrics",
    "training_metrics",
    "sequence_metrics",
    "evaluation_metrics",
]

#: Phase bins of the class-mean template.
TEMPLATE_BINS = 20
#: Harmonics of the per-curve Fourier-series baselines.
FOURIER_ORDERS = (2, 6)
#: Paper 000 Table 3: validation RMSE of the physics → latent regressors.
TABLE3_PAPER: dict[str, dict[str, float]] = {
    "cvae": {"linear": 0.863, "random_forest": 0.299, "mlp": 0.863},
    "cvae_p": {"linear": 0.794, "random_forest": 0.289, "mlp": 0.798},
}


def _bin(phase: np.ndarray, n_bins: int) -> np.ndarray:
    return np.minimum((np.mod(np.asarray(phase), 1.0) * n_bins).astype(int), n_bins - 1)


def class_mean_templates(train: pd.DataFrame, n_bins: int = TEMPLATE_BINS) -> dict[str, np.ndarray]:
    """Per class, the mean of (mag − median mag) in ``n_bins`` phase bins over its training curves (mag),
    each curve's phase counted from its epoch (:func:`~latentsky.variables.lightcurves.epoch_phase`).

    Empty bins take the class's overall mean offset (0 by construction of the median)."""
    templates = {}
    for cls, group in train.groupby("var_class"):
        total, count = np.zeros(n_bins), np.zeros(n_bins)
        for phase, mag in zip(group["phase"], group["mag"], strict=True):
            mag = np.asarray(mag, dtype=np.float64)
            b = _bin(np.asarray(phase) - epoch_phase(phase, mag, str(cls)), n_bins)
            np.add.at(total, b, mag - np.median(mag))
            np.add.at(count, b, 1)
        templates[str(cls)] = np.where(count > 0, total / np.maximum(count, 1), 0.0)
    return templates


def template_curves(frame: pd.DataFrame, templates: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    """The class template of each curve of ``frame`` at its phases — shifted to the curve's own epoch —
    around the curve's median (mag)."""
    out = []
    for cls, phase, mag in zip(frame["var_class"], frame["phase"], frame["mag"], strict=True):
        if cls not in templates:
            raise ValueError(f"no training curves of class {cls!r} to build its template from")
        t = templates[cls]
        shift = epoch_phase(phase, mag, str(cls))
        out.append(t[_bin(np.asarray(phase) - shift, len(t))] + np.median(np.asarray(mag, dtype=np.float64)))
    return out


def fourier_curves(frame: pd.DataFrame, n_harmonics: int) -> list[np.ndarray]:
    """Each curve of ``frame`` fitted by a Fourier series of ``n_harmonics`` in phase, weighted least squares
    (weights 1/err); a curve with fewer points than the series' 2·n + 1 terms gets its weighted mean."""
    out = []
    for phase, mag, err in zip(frame["phase"], frame["mag"], frame["err"], strict=True):
        phase, mag, err = (np.asarray(x, dtype=np.float64) for x in (phase, mag, err))
        k = np.arange(1, n_harmonics + 1)
        design = np.hstack(
            [
                np.ones((len(phase), 1)),
                np.cos(2 * np.pi * phase[:, None] * k),
                np.sin(2 * np.pi * phase[:, None] * k),
            ]
        )
        if len(phase) < design.shape[1]:
            design = design[:, :1]
        coef, *_ = np.linalg.lstsq(design / err[:, None], mag / err, rcond=None)
        out.append(design @ coef)
    return out


def weighted_mse(
    observed: Sequence[np.ndarray], model: Sequence[np.ndarray], errors: Sequence[np.ndarray]
) -> float:
    """Mean over all points of ((observed − model) / error)² (eq. 4's first term, in magnitudes)."""
    res = [
        ((np.asarray(o) - np.asarray(m)) / np.asarray(e)) ** 2
        for o, m, e in zip(observed, model, errors, strict=True)
    ]
    return float(np.mean(np.concatenate(res))) if res else float("nan")


def shape_statistics(phase: np.ndarray, mag: np.ndarray) -> dict[str, float]:
    """Morphology of one folded light curve: ``amplitude`` (95th − 5th percentile, mag), ``skewness`` of the
    magnitudes (negative for a brief bright maximum) and ``rise_fraction`` (minimum → maximum light, as a
    fraction of the cycle; 0.5 for a sinusoid)."""
    mag = np.asarray(mag, dtype=np.float64)
    lo, hi = np.percentile(mag, [5, 95])
    return {
        "amplitude": float(hi - lo),
        "skewness": float(stats.skew(mag)),
        "rise_fraction": rise_fraction(np.asarray(phase, dtype=np.float64), mag),
    }


def rrlyrae_sequence(
    model: PelsVae,
    scaler: LightCurveScaler,
    predict_latents: Mapping[str, object],
    teff: np.ndarray,
    *,
    abs_g: float,
    period: float,
    n_samples: int,
    rng: np.random.Generator,
    n_phases: int = 200,
    var_class: str = "RRLYR",
) -> pd.DataFrame:
    """Generated curves along a T_eff grid for each regressor (Fig. 8) with their shape statistics.

    Parameters
    ----------
    predict_latents : regressor name → callable(teff, abs_g, period, classes, dummy) → (N, z_dim).
    teff : the grid (K); each value gets ``n_samples`` curves with independent dummy draws.
    abs_g, period : fixed M_G (mag) and P (d) of the sequence.

    Returns
    -------
    One row per (regressor, T_eff, sample): ``regressor``, ``teff``, ``sample``, list columns ``phase`` and
    ``mag`` (relative to the median), and the :func:`shape_statistics`.
    """
    teff = np.repeat(np.asarray(teff, dtype=np.float64), n_samples)
    sample = np.tile(np.arange(n_samples), len(teff) // n_samples)
    phase = (np.arange(n_phases) + 0.5) / n_phases
    dummy = rng.uniform(size=len(teff))
    rows = []
    for name, predict in predict_latents.items():
        z = predict(
            teff, np.full_like(teff, abs_g), np.full_like(teff, period), [var_class] * len(teff), dummy
        )
        mag, _ = generate(model, scaler, var_class, z, phase)
        for t, s, m in zip(teff, sample, mag, strict=True):
            rows.append(
                {"regressor": name, "teff": t, "sample": int(s), "phase": phase.tolist(), "mag": m.tolist()}
                | shape_statistics(phase, m)
            )
    return pd.DataFrame(rows)


def sequence_correlations(sequence: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Per regressor, the Spearman correlation of each shape statistic with T_eff (NaN if constant)."""
    out: dict[str, dict[str, float]] = {}
    for name, group in sequence.groupby("regressor", sort=False):
        out[str(name)] = {}
        for stat in ("amplitude", "skewness", "rise_fraction"):
            values = group[stat].to_numpy(np.float64)
            rho = np.nan if np.ptp(values) == 0 else stats.spearmanr(group["teff"], values).statistic
            out[str(name)][stat] = float(rho)
    return out


def reconstruction_scores(
    frame: pd.DataFrame, reconstructed: Sequence[np.ndarray], train: pd.DataFrame
) -> dict[str, object]:
    """Error-weighted MSE (χ² per point) of the reconstructions of ``frame`` beside the baselines on the same
    curves — the class-mean template built from ``train`` and the per-curve Fourier fits of
    :data:`FOURIER_ORDERS` — overall and per class: ``vae``, ``class_template``, ``fourier_<n>``, ``ratio``
    (vae / template) and ``ratio_fourier_<n>`` (vae / Fourier fit; below 1: the VAE describes the curve
    better than n harmonics fitted to it)."""
    templates = class_mean_templates(train)
    usable = frame["var_class"].isin(list(templates)).to_numpy()
    rows = frame[usable].reset_index(drop=True)
    models = {
        "vae": [r for r, u in zip(reconstructed, usable, strict=True) if u],
        "class_template": template_curves(rows, templates),
        **{f"fourier_{n}": fourier_curves(rows, n) for n in FOURIER_ORDERS},
    }
    mags, errs = list(rows["mag"]), list(rows["err"])

    def scores(idx: np.ndarray) -> dict[str, float]:
        out = {
            name: weighted_mse([mags[i] for i in idx], [curves[i] for i in idx], [errs[i] for i in idx])
            for name, curves in models.items()
        }
        for name in [n for n in models if n != "vae"]:
            key = "ratio" if name == "class_template" else f"ratio_{name}"
            out[key] = out["vae"] / out[name] if out[name] > 0 else float("nan")
        return out

    classes = rows["var_class"].to_numpy()
    return {
        "n_curves": int(len(rows)),
        **scores(np.arange(len(rows))),
        "per_class": {str(c): scores(np.flatnonzero(classes == c)) for c in sorted(set(classes))},
    }


def sequence_grid(train: pd.DataFrame, var_class: str, n_steps: int) -> dict[str, object]:
    """The T_eff grid of the Fig. 8 sequence: ``n_steps`` values from the 5th to the 95th percentile of the
    class's real training curves with physics, at their median M_G and period; ``data_spearman``: the
    Spearman correlation of those real curves' shape statistics with T_eff (the target for the generated
    ones)."""
    from latentsky.pelsvae.data import has_physics

    rows = train[(train["var_class"] == var_class) & has_physics(train)]
    if "augmented" in rows:
        rows = rows[~rows["augmented"].astype(bool)]
    if len(rows) < 2:
        raise ValueError(f"fewer than two real {var_class} training curves with physics: no T_eff sequence")
    teff = rows["teff"].to_numpy(np.float64)
    lo, hi = np.percentile(teff, [5, 95])
    shapes = pd.DataFrame([shape_statistics(p, m) for p, m in zip(rows["phase"], rows["mag"], strict=True)])
    data_spearman = {
        stat: float(stats.spearmanr(teff, shapes[stat]).statistic)
        for stat in ("amplitude", "skewness", "rise_fraction")
    }
    return {
        "teff": np.linspace(lo, hi, n_steps),
        "abs_g": float(np.median(rows["abs_g"])),
        "period": float(np.median(rows["period"])),
        "data_spearman": data_spearman,
    }


def table3(regressors: Mapping[str, object]) -> pd.DataFrame:
    """Table 3's shape: one row per regressor, our validation RMSE per model beside the paper's."""
    names = list(dict.fromkeys(n for r in regressors.values() for n in r.rmse))
    out = pd.DataFrame({"regressor": names})
    for model, r in regressors.items():
        out[model] = [r.rmse.get(n, np.nan) for n in names]
        out[f"{model}_paper"] = [TABLE3_PAPER.get(model, {}).get(n, np.nan) for n in names]
    return out


def reconstruct_test_sets(
    models: Mapping[str, tuple[PelsVae, LightCurveScaler, Any, Any]],
    test: pd.DataFrame,
    train: pd.DataFrame,
    device: str = "cpu",
) -> tuple[dict[str, dict[str, object]], dict[str, tuple[pd.DataFrame, list[np.ndarray]]]]:
    """Each model's reconstructions of its test curves, scored against the class-mean template
    (paper 000 Sec. 4.1, Fig. 5).

    Parameters
    ----------
    models : model name (cvae | cvae_p) → ``latentsky.pelsvae.training.load_pelsvae``'s (model, scaler,
        config, extra).
    test, train : the light-curve sets; each model sees its own rows (``rows_for_model``: the cvae_p
        ones with physics), the template is built from the model's training rows.
    device : the torch device of the reconstructions.

    Returns
    -------
    (dict, dict)
        Model name → :func:`reconstruction_scores`, and model name → (its test rows, their reconstructed
        magnitudes), both in the order of ``models``.
    """
    reconstruction, curves = {}, {}
    for name, (model, scaler, _, _) in models.items():
        rows = rows_for_model(test, name)
        curves[name] = (rows, reconstruct(model, rows, scaler, device=device)[0])
        reconstruction[name] = reconstruction_scores(rows, curves[name][1], rows_for_model(train, name))
    return reconstruction, curves


def teff_sequence(
    model: PelsVae,
    scaler: LightCurveScaler,
    regressors: LatentRegressors,
    train: pd.DataFrame,
    *,
    n_steps: int,
    n_samples: int,
    seed: int,
) -> tuple[dict[str, object], pd.DataFrame]:
    """Fig. 8 of paper 000 (Sec. 4.3): RR Lyrae generated along T_eff with ``model`` and each of its
    ``regressors``, on the :func:`sequence_grid` of the real RR Lyrae in ``train``.

    Parameters
    ----------
    n_steps : T_eff values of the grid.
    n_samples : curves per T_eff value and regressor (independent dummy draws).
    seed : seeds the ``numpy.random.Generator`` of the dummy draws.

    Returns
    -------
    (dict, pandas.DataFrame)
        The :func:`sequence_grid` and the :func:`rrlyrae_sequence` table.
    """
    grid = sequence_grid(train, "RRLYR", n_steps)
    sequence = rrlyrae_sequence(
        model,
        scaler,
        {name: (lambda *a, name=name: regressors.predict(name, *a)) for name in regressors.regressors},
        grid["teff"],
        abs_g=grid["abs_g"],
        period=grid["period"],
        n_samples=n_samples,
        rng=np.random.default_rng(seed),
    )
    return grid, sequence


def regression_metrics(regressors: Mapping[str, LatentRegressors]) -> dict[str, dict[str, dict]]:
    """The physics → latent regressors of each model beside paper 000 Table 3.

    Returns
    -------
    dict
        ``regression_rmse`` (model → regressor → validation RMSE), ``regression_rmse_paper``
        (:data:`TABLE3_PAPER`) and ``regression_rows`` (model → ``train`` / ``val`` regression rows).
    """
    return {
        "regression_rmse": {name: dict(r.rmse) for name, r in regressors.items()},
        "regression_rmse_paper": TABLE3_PAPER,
        "regression_rows": {
            name: {"train": r.n_train_rows, "val": r.n_val_rows} for name, r in regressors.items()
        },
    }


def training_metrics(histories: Mapping[str, pd.DataFrame]) -> dict[str, dict[str, float | int]]:
    """How each model's training ended, from its history (one row per epoch, column ``val_loss``).

    Returns
    -------
    dict
        ``final_val_loss`` (model → last epoch's validation loss; models with an empty history left out)
        and ``epochs`` (model → number of epochs).
    """
    return {
        "final_val_loss": {name: float(h["val_loss"].iloc[-1]) for name, h in histories.items() if len(h)},
        "epochs": {name: int(len(h)) for name, h in histories.items()},
    }


def sequence_metrics(grid: Mapping[str, Any], sequence: pd.DataFrame) -> dict[str, dict]:
    """The RR Lyrae T_eff sequence of paper 000 Fig. 8 (Sec. 4.3) as figures of merit.

    Parameters
    ----------
    grid : :func:`sequence_grid`'s result.
    sequence : :func:`rrlyrae_sequence`'s table on that grid.

    Returns
    -------
    dict
        ``grid`` (``teff`` as a list of floats, ``abs_g``, ``period``), ``spearman_with_teff``
        (:func:`sequence_correlations`) and ``training_data_spearman_with_teff`` (the real curves'
        correlations, ``grid["data_spearman"]``).
    """
    return {
        "grid": {
            "teff": list(map(float, grid["teff"])),
            "abs_g": grid["abs_g"],
            "period": grid["period"],
        },
        "spearman_with_teff": sequence_correlations(sequence),
        "training_data_spearman_with_teff": grid["data_spearman"],
    }


def evaluation_metrics(
    regressors: Mapping[str, LatentRegressors],
    reconstruction: Mapping[str, dict[str, object]],
    histories: Mapping[str, pd.DataFrame],
    grid: Mapping[str, Any],
    sequence: pd.DataFrame,
) -> dict[str, Any]:
    """The metrics document of the PELS-VAE evaluation (paper 000 Sec. 4).

    Returns
    -------
    dict
        In this order: the :func:`regression_metrics` keys (Table 3), ``reconstruction`` (model →
        :func:`reconstruction_scores`, as given), the :func:`training_metrics` keys and
        ``rrlyrae_teff_sequence`` (:func:`sequence_metrics`, Fig. 8).
    """
    return {
        **regression_metrics(regressors),
        "reconstruction": reconstruction,
        **training_metrics(histories),
        "rrlyrae_teff_sequence": sequence_metrics(grid, sequence),
    }
