"""Figures of merit of the BGS outlier catalog (paper 003 Secs. 3–5) and the PCA baseline they are
compared with: outlier recall per kind at the top fractions, the PCA χ² of a restframe spectrum outside
the galaxies' span, the redshift-invariance ratio of the latents and the latent dimensionality.

:func:`catalog_metrics` assembles them into the metrics document of the ``bgs_catalog`` rule
(``results/metrics/bgs.json``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from latentsky.bgs.autoencoder import SpectraTensors, SpenderSettings
    from latentsky.bgs.catalog import BgsModels, Scores

__all__ = [
    "FIDELITY_LOSS_PAPER",
    "REDSHIFT_INVARIANCE_PAPER",
    "outlier_recall",
    "pca_chi2",
    "invariance_ratio",
    "latent_dimensionality",
    "restframe_matrix",
    "split_fidelity",
    "augmented_latents",
    "redshift_invariance",
    "pca_baseline",
    "pca_fit",
    "pca_basis",
    "pca_project",
    "pca_heldout_fit",
    "training_convergence",
    "outlier_counts",
    "likelihood_ratio_medians",
    "outlier_search",
    "catalog_metrics",
]

#: Paper 003 Sec. 3: the fidelity loss after training on the training, validation and test sets.
FIDELITY_LOSS_PAPER: dict[str, float] = {"train": 0.384, "val": 0.391, "test": 0.386}
#: Paper 003 Sec. 3: spectra and their redshift-augmented copies are 21× closer than random pairs.
REDSHIFT_INVARIANCE_PAPER = 21.0
#: The splits of the BGS sample (``latentsky.bgs.catalog.SPLITS``), in the metrics' order.
_SPLITS = ("train", "val", "test")


def outlier_recall(
    score: np.ndarray, is_outlier: np.ndarray, kinds: np.ndarray, fractions: Sequence[float] = (0.01, 0.05)
) -> dict[str, dict[str, float]]:
    """Share of the true outliers among the top ``fraction`` by ``score`` (higher = more anomalous),
    overall and per kind: ``{"top_1pct": {"all": r, kind: r, ...}, ...}``."""
    score = np.asarray(score, dtype=np.float64)
    n = len(score)
    out: dict[str, dict[str, float]] = {}
    order = np.argsort(-score, kind="stable")
    for frac in fractions:
        top = np.zeros(n, dtype=bool)
        top[order[: max(1, int(round(frac * n)))]] = True
        key = f"top_{round(frac * 100)}pct"
        res = {"all": float(top[is_outlier].mean()) if is_outlier.any() else float("nan")}
        for kind in sorted(set(kinds[is_outlier])):
            sel = is_outlier & (kinds == kind)
            res[str(kind)] = float(top[sel].mean())
        out[key] = res
    return out


def pca_chi2(
    train: np.ndarray, train_w: np.ndarray, data: np.ndarray, data_w: np.ndarray, n_components: int
) -> np.ndarray:
    """Reduced χ² of each spectrum's weighted projection on the training set's first principal components
    (restframe spectra on a common grid; the baseline of the outlier search)."""
    return pca_fit(train, train_w, data, data_w, n_components)[1]


def pca_fit(
    train: np.ndarray, train_w: np.ndarray, data: np.ndarray, data_w: np.ndarray, n_components: int
) -> tuple[np.ndarray, np.ndarray]:
    """(coefficients (N, K), reduced χ² (N,)) of each spectrum's weighted least-squares projection on the
    first ``n_components`` principal components of the training set."""
    return pca_project(*pca_basis(train, train_w, n_components), data, data_w)


def pca_basis(train: np.ndarray, train_w: np.ndarray, n_components: int) -> tuple[np.ndarray, np.ndarray]:
    """(weighted mean (L,), first ``n_components`` principal components (K, L)) of the training spectra."""
    mean = np.average(train, axis=0, weights=np.maximum(train_w, 1e-12) if (train_w > 0).any() else None)
    _, _, vt = np.linalg.svd(train - mean, full_matrices=False)
    return mean, vt[:n_components]


def pca_project(
    mean: np.ndarray, basis: np.ndarray, data: np.ndarray, data_w: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Weighted least-squares coefficients on ``basis`` and reduced χ² of each spectrum (see :func:`pca_fit`)."""
    chi2 = np.empty(len(data))
    coefs = np.empty((len(data), len(basis)))
    for i, (y, w) in enumerate(zip(data - mean, data_w, strict=True)):
        a = basis * w  # weighted least squares for the coefficients
        coefs[i] = np.linalg.lstsq(a @ basis.T, a @ y, rcond=None)[0]
        r = y - coefs[i] @ basis
        n = max((w > 0).sum(), 1)
        chi2[i] = float((w * r**2).sum() / n)
    return coefs, chi2


def invariance_ratio(s: np.ndarray, s_aug: np.ndarray) -> float:
    """Mean distance between random pairs of latents over the mean distance of each latent to its
    augmented copy (paper 003: augmented copies 21× closer than random pairs)."""
    own = np.linalg.norm(s - s_aug, axis=1).mean()
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, len(s), size=(2, 4 * len(s)))
    keep = a != b
    rand = np.linalg.norm(s[a[keep]] - s[b[keep]], axis=1).mean()
    return float(rand / own) if own > 0 else float("inf")


def latent_dimensionality(latents: np.ndarray) -> dict[str, Any]:
    """How many latent directions the autoencoder uses: the eigenvalues of the latents' covariance as
    fractions of the total variance (largest first) and their participation ratio (Σλ)² / Σλ² — S for a
    latent space filled evenly in all S directions, 1 when every spectrum lies on one line. The flow's
    density is only as informative as the latents it is fitted to (paper 003 Sec. 3): where the variance
    lies along ~1 direction, an outlier that the encoder maps onto that line looks like a galaxy."""
    s = np.asarray(latents, dtype=np.float64)
    if s.ndim != 2 or len(s) < 2:
        raise ValueError(f"latent_dimensionality needs (N ≥ 2, S) latents, got shape {s.shape}")
    cov = np.cov(s, rowvar=False).reshape(s.shape[1], s.shape[1])
    eig = np.clip(np.linalg.eigvalsh(cov), 0.0, None)[::-1]  # round-off can leave −1e−17
    total = eig.sum()
    if total <= 0:
        return {"variance_fractions": [0.0] * len(eig), "participation_ratio": 0.0}
    return {
        "variance_fractions": (eig / total).tolist(),
        "participation_ratio": float(total**2 / (eig**2).sum()),
    }


def restframe_matrix(
    flux: np.ndarray, ivar: np.ndarray, z: np.ndarray, wave_obs: np.ndarray, wave_rest: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Spectra resampled to a common restframe grid (weights 0 outside each spectrum's coverage)."""
    out = np.zeros((len(flux), len(wave_rest)))
    w_out = np.zeros_like(out)
    for i in range(len(flux)):
        lam = wave_obs / (1 + z[i])
        out[i] = np.interp(wave_rest, lam, flux[i])
        w_out[i] = np.interp(wave_rest, lam, ivar[i]) * ((wave_rest >= lam[0]) & (wave_rest <= lam[-1]))
    return out, w_out


def split_fidelity(loss: np.ndarray, chi2: np.ndarray, split: np.ndarray) -> dict[str, dict[str, float]]:
    """Reconstruction quality per split, beside the paper's fidelity losses (paper 003 Sec. 3).

    Parameters
    ----------
    loss, chi2 : numpy.ndarray
        Per spectrum: spender's fidelity loss and the reduced χ² of the reconstruction
        (``latentsky.bgs.autoencoder.fidelity``).
    split : numpy.ndarray
        Per spectrum: ``"train"``, ``"val"`` or ``"test"``.

    Returns
    -------
    dict
        ``fidelity_loss`` (split → mean loss), ``fidelity_loss_paper`` (:data:`FIDELITY_LOSS_PAPER`) and
        ``reduced_chi2_median`` (split → median χ²); splits in train, val, test order, absent ones left out.
    """
    return {
        "fidelity_loss": {s: float(loss[split == s].mean()) for s in _SPLITS if (split == s).any()},
        "fidelity_loss_paper": dict(FIDELITY_LOSS_PAPER),
        "reduced_chi2_median": {s: float(np.median(chi2[split == s])) for s in _SPLITS if (split == s).any()},
    }


def augmented_latents(
    galaxy_ae: Any, instrument: Any, data: SpectraTensors, settings: SpenderSettings, seed: int, device: str
) -> np.ndarray:
    """Latents of a redshift-augmented copy of each spectrum (paper 003 Sec. 3: the invariance test).

    Parameters
    ----------
    galaxy_ae, instrument : the galaxy autoencoder and its instrument (``BgsModels``).
    data : the spectra (``SpectraTensors``).
    settings : the autoencoder settings: ``z_max`` and ``noise_scale`` of the augmentation
        (``latentsky.bgs.autoencoder.augment_redshift``).
    seed : seeds the augmentation's ``torch.Generator`` (taken modulo 2⁶²).
    device : the torch device of ``data``.

    Returns
    -------
    numpy.ndarray
        (N, S) latents of the augmented copies, in the order of ``data``.
    """
    import torch

    from latentsky.bgs.autoencoder import augment_redshift, encode_spectra

    gen = torch.Generator(device=device).manual_seed(seed % 2**62)
    spec_a, w_a, z_a = augment_redshift(
        data.spec, data.w, data.z, instrument.wave_obs, settings.z_max, settings.noise_scale, gen
    )
    return encode_spectra(galaxy_ae, type(data)(spec_a, w_a, z_a))


def redshift_invariance(latents: np.ndarray, augmented: np.ndarray) -> dict[str, float]:
    """The redshift-invariance ratio (:func:`invariance_ratio`) beside the paper's (paper 003 Sec. 3).

    Returns
    -------
    dict
        ``redshift_invariance_ratio`` and ``redshift_invariance_ratio_paper``
        (:data:`REDSHIFT_INVARIANCE_PAPER`).
    """
    return {
        "redshift_invariance_ratio": invariance_ratio(latents, augmented),
        "redshift_invariance_ratio_paper": REDSHIFT_INVARIANCE_PAPER,
    }


def pca_baseline(
    flux: np.ndarray,
    ivar: np.ndarray,
    z: np.ndarray,
    wave_obs: np.ndarray,
    wave_rest: np.ndarray,
    train: np.ndarray,
    n_components: int,
) -> np.ndarray:
    """Outlier score of the PCA baseline: each spectrum moved to the restframe (:func:`restframe_matrix`)
    and scored by :func:`pca_chi2` against the first ``n_components`` principal components of the
    ``train`` rows (boolean mask).

    Returns
    -------
    numpy.ndarray
        (N,) reduced χ² (higher = more anomalous).
    """
    rest, rest_w = restframe_matrix(flux, ivar, z, wave_obs, wave_rest)
    return pca_chi2(rest[train], rest_w[train], rest, rest_w, n_components)


def pca_heldout_fit(
    train: SpectraTensors,
    data: SpectraTensors,
    wave_obs: np.ndarray,
    wave_rest: np.ndarray,
    n_components: int,
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """:func:`pca_fit` (coefficients, reduced χ²) of the ``train`` spectra (in-sample, the reference) and of
    the held-out ``data``, against the principal components of the ``train`` spectra alone."""
    rest_t, w_t = restframe_matrix(
        train.spec.cpu().numpy(), train.w.cpu().numpy(), train.z.cpu().numpy(), wave_obs, wave_rest
    )
    rest_d, w_d = restframe_matrix(
        data.spec.cpu().numpy(), data.w.cpu().numpy(), data.z.cpu().numpy(), wave_obs, wave_rest
    )
    mean, basis = pca_basis(rest_t, w_t, n_components)
    return pca_project(mean, basis, rest_t, w_t), pca_project(mean, basis, rest_d, w_d)


def training_convergence(history: pd.DataFrame) -> dict[str, Any]:
    """Whether the autoencoder's training had converged: the least-squares slope of the validation fidelity
    loss per epoch over the last 10 % of the epochs (at least the last 3), and that slope times the number
    of epochs relative to the final loss — the share of the loss another run of the same length would
    remove at that rate (near 0: converged; −0.1: still falling by a tenth)."""
    loss = history["val_fidelity"].to_numpy(float)
    n = len(loss)
    if n < 3:
        return {"epochs": n, "last_10pct_slope_per_epoch": None, "relative_change_per_run": None}
    k = max(3, int(np.ceil(0.1 * n)))
    slope = float(np.polyfit(np.arange(k, dtype=float), loss[-k:], 1)[0])
    return {
        "epochs": n,
        "final_val_fidelity": float(loss[-1]),
        "last_10pct_slope_per_epoch": slope,
        "relative_change_per_run": float(slope * n / loss[-1]) if loss[-1] != 0 else None,
    }


def outlier_counts(is_outlier: np.ndarray, kinds: np.ndarray) -> dict[str, int]:
    """Number of true outliers per kind, most frequent first (``pandas.Series.value_counts`` order).

    Returns
    -------
    dict
        kind → count over the rows where ``is_outlier``.
    """
    return {str(kk): int(v) for kk, v in pd.Series(kinds[is_outlier]).value_counts().items()}


def likelihood_ratio_medians(llr: np.ndarray, kinds: np.ndarray) -> dict[str, float | None]:
    """Medians of log p_star − log p_galaxy for the true stars and the true galaxies (paper 003 Sec. 5:
    the likelihood ratio as a star/galaxy score).

    Returns
    -------
    dict
        ``median_llr_stars`` (None without stars) and ``median_llr_galaxies`` (NaN without galaxies).
    """
    star_truth = kinds == "star"
    return {
        "median_llr_stars": float(np.median(llr[star_truth])) if star_truth.any() else None,
        "median_llr_galaxies": float(np.median(llr[kinds == "galaxy"])),
    }


def outlier_search(
    flow_score: np.ndarray,
    pca_score: np.ndarray,
    is_outlier: np.ndarray,
    kinds: np.ndarray,
    llr: np.ndarray,
) -> dict[str, Any]:
    """The outlier search against the simulation's truth (paper 003 Secs. 4–5).

    Parameters
    ----------
    flow_score : −log p_galaxy per spectrum (the paper's outlier score, Sec. 4).
    pca_score : the PCA baseline's score (:func:`pca_baseline`).
    is_outlier, kinds : the truth per spectrum (``kind``: ``"galaxy"``, ``"star"``, …).
    llr : log p_star − log p_galaxy per spectrum.

    Returns
    -------
    dict
        ``outlier_recall`` (``spender_flow`` and ``pca_baseline``: :func:`outlier_recall`), ``n_outliers``
        (:func:`outlier_counts`) and ``stars_by_likelihood_ratio`` (:func:`likelihood_ratio_medians`).
    """
    return {
        "outlier_recall": {
            "spender_flow": outlier_recall(flow_score, is_outlier, kinds),
            "pca_baseline": outlier_recall(pca_score, is_outlier, kinds),
        },
        "n_outliers": outlier_counts(is_outlier, kinds),
        "stars_by_likelihood_ratio": likelihood_ratio_medians(llr, kinds),
    }


def catalog_metrics(
    spectra: pd.DataFrame,
    scores: Scores,
    models: BgsModels,
    settings: SpenderSettings,
    *,
    seed: int,
    device: str,
    pca_components: int,
    truth: pd.DataFrame | None = None,
    heldout: tuple[pd.DataFrame, Scores, pd.DataFrame] | None = None,
) -> dict[str, Any]:
    """The metrics document of the BGS outlier catalog (paper 003 Secs. 3–5).

    Parameters
    ----------
    spectra : the spectra table that was scored, with its ``split`` column.
    scores, models : ``latentsky.bgs.catalog.score_spectra``'s result and the models it used.
    settings : the galaxy autoencoder's settings (the redshift augmentation).
    seed, device : the augmentation's seed (:func:`augmented_latents`) and torch device.
    pca_components : principal components of the PCA baseline.
    truth : the simulation's truth (``target_id``, ``is_outlier``, ``kind``); None for real data.
    heldout : (spectra, their scores, their truth) of a simulated set no model was trained on: adds
        ``heldout_evaluation`` (:func:`latentsky.bgs.evaluation.heldout_evaluation`, referenced to this
        catalog's training rows).

    Returns
    -------
    dict
        In this order: ``n_targets``, ``n_with_probability``, the :func:`split_fidelity` keys;
        ``galaxy_latent_dimensionality`` (:func:`latent_dimensionality` of the training latents) with ≥ 2
        training spectra; the :func:`redshift_invariance` keys with ≥ 2 test spectra; the
        :func:`outlier_search` keys with ``truth``; ``heldout_evaluation`` with ``heldout``.
    """
    catalog, usable, data = scores.catalog, scores.usable, scores.data
    rows = spectra[usable]
    s_gal = scores.latents
    split = rows["split"].to_numpy()
    metrics = {
        "n_targets": len(spectra),
        "n_with_probability": int(usable.sum()),
        **split_fidelity(scores.fidelity_loss, scores.reduced_chi2, split),
    }
    if (split == "train").sum() >= 2:
        metrics["galaxy_latent_dimensionality"] = latent_dimensionality(s_gal[split == "train"])
    test = split == "test"
    if test.sum() >= 2:
        t = data.index(np.flatnonzero(test))
        s_aug = augmented_latents(models.galaxy_ae, models.instrument, t, settings, seed, device)
        metrics.update(redshift_invariance(s_gal[test], s_aug))
    if truth is not None:
        truth = truth.set_index("target_id").loc[rows["target_id"]]  # the scored rows, in their order
        kinds = truth["kind"].to_numpy(str)
        pca = pca_baseline(
            data.spec.cpu().numpy(),
            data.w.cpu().numpy(),
            rows["z"].to_numpy(),
            models.instrument.wave_obs.cpu().numpy(),
            models.galaxy_ae.decoder.wave_rest.cpu().numpy(),
            split == "train",
            pca_components,
        )
        metrics.update(
            outlier_search(
                -catalog.loc[usable, "log_p_galaxy"].to_numpy(),
                pca,
                truth["is_outlier"].to_numpy(bool),
                kinds,
                catalog.loc[usable, "log_likelihood_ratio"].to_numpy(),
            )
        )
    if heldout is not None and truth is not None and (split == "train").sum() >= 2:
        metrics["heldout_evaluation"] = _heldout_metrics(
            rows, scores, models, heldout, truth, seed, pca_components
        )
    return metrics


def _heldout_metrics(
    rows: pd.DataFrame,
    scores: Scores,
    models: BgsModels,
    heldout: tuple[pd.DataFrame, Scores, pd.DataFrame],
    truth: pd.DataFrame,  # of ``rows``, in their order
    seed: int,
    pca_components: int,
) -> dict[str, Any]:
    """:func:`latentsky.bgs.evaluation.heldout_evaluation` of the held-out set, every reference (PCA basis,
    S/N medians, percentiles) from the catalog's training rows; held-out spectra the reader flagged are
    counted per kind, not scored."""
    from latentsky.bgs.evaluation import (
        detectability,
        evaluation_kinds,
        fidelity_by_snr,
        heldout_evaluation,
        latent_information,
        population_complexity,
    )

    h_spectra, h_scores, h_truth = heldout
    train = np.flatnonzero(rows["split"].to_numpy() == "train")
    h_rows = h_spectra[h_scores.usable]
    by_id = h_truth.set_index("target_id")
    kinds = evaluation_kinds(by_id.loc[h_rows["target_id"]])
    all_kinds = evaluation_kinds(by_id.loc[h_spectra["target_id"]])
    wave_obs = models.instrument.wave_obs.cpu().numpy()
    wave_rest = models.galaxy_ae.decoder.wave_rest.cpu().numpy()
    (coef_train, pca_train), (coef_heldout, pca_heldout) = pca_heldout_fit(
        scores.data.index(train), h_scores.data, wave_obs, wave_rest, pca_components
    )
    log_p = scores.catalog.loc[scores.usable, "log_p_galaxy"].to_numpy()
    unscored = all_kinds[~h_scores.usable]
    galaxies = kinds == "galaxy"
    spec, w = h_scores.data.spec.cpu().numpy(), h_scores.data.w.cpu().numpy()
    snr = np.array([np.median(s[wi > 0] * np.sqrt(wi[wi > 0])) for s, wi in zip(spec, w, strict=True)])
    return {
        **heldout_evaluation(
            kinds=kinds,
            log_p_galaxy=h_scores.catalog.loc[h_scores.usable, "log_p_galaxy"].to_numpy(),
            reduced_chi2=h_scores.reduced_chi2,
            pca_chi2=pca_heldout,
            norm=h_rows["norm"].to_numpy(float),
            train_log_p_galaxy=log_p[train],
            train_reduced_chi2=scores.reduced_chi2[train],
            train_pca_chi2=pca_train,
            train_norm=rows["norm"].to_numpy(float)[train],
            seed=seed,
        ),
        "n_flagged_by_reader": {
            str(k): int(v) for k, v in zip(*np.unique(unscored, return_counts=True), strict=True)
        },
        "pca_components": pca_components,
        "galaxy_fidelity_by_snr": fidelity_by_snr(
            {"spender": h_scores.reduced_chi2[galaxies], "pca_baseline": pca_heldout[galaxies]}, snr[galaxies]
        ),
        "population_complexity": population_complexity(wave_rest, seed),
        "detectability": detectability(h_truth, models.bin_factor, int(models.instrument.wave_obs.numel())),
        "latent_information": latent_information(
            {"latents": scores.latents[train], "pca_coefficients": coef_train},
            truth.iloc[train],
            {"latents": h_scores.latents, "pca_coefficients": coef_heldout},
            h_truth.set_index("target_id").loc[h_rows["target_id"]],
        ),
    }
