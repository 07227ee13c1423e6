"""Figures of the XP scatter VAE (paper 001 Figs. 1–3) and its training curves."""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib

__all__ = [
    "example_reconstruction",
    "normalised_errors",
    "wavelength_residuals_figure",
    "latent_coverage_figure",
    "training_curves",
]

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

_COOL, _LOW_G = 4000.0, 1.5  # the paper's green and yellow regions of Fig. 2 (our failure regions, spec A2.6)


def example_reconstruction(
    c: np.ndarray,
    sigma: np.ndarray,
    svae: np.ndarray,
    s_hat: np.ndarray,
    cannon: np.ndarray,
    s_pop: np.ndarray,
) -> Figure:
    """Fig. 1-like: one star's G-normalised coefficients (symlog) with the sVAE and Cannon reconstructions,
    error bars √(σ² + s²) with ŝ (sVAE) or the population s (Cannon)."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharey=False)
    k = np.arange(55)
    for ax, (band, sl) in zip(axes, {"BP": slice(0, 55), "RP": slice(55, 110)}.items(), strict=True):
        ax.errorbar(k, c[sl], yerr=sigma[sl], fmt="o", ms=3, color="k", label="XP coefficients")
        ax.errorbar(
            k + 0.2,
            svae[sl],
            yerr=np.sqrt(sigma[sl] ** 2 + s_hat[sl] ** 2),
            fmt="s",
            ms=2.5,
            color="tab:purple",
            label="sVAE (ŝ)",
        )
        ax.errorbar(
            k - 0.2,
            cannon[sl],
            yerr=np.sqrt(sigma[sl] ** 2 + s_pop[sl] ** 2),
            fmt="^",
            ms=2.5,
            color="tab:grey",
            label="Cannon (population s)",
        )
        ax.set_yscale("symlog", linthresh=1e-4)
        ax.set_xlabel(f"{band} coefficient index")
        ax.set_title(band)
    axes[0].set_ylabel("coefficient / G flux")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def normalised_errors(
    labels: Mapping[str, np.ndarray],
    r_svae: np.ndarray,
    r_cannon: np.ndarray,
    s_hat: np.ndarray,
    s_pop: np.ndarray,
    coefficients: Mapping[str, int],
) -> Figure:
    """Fig. 2: normalised errors of the 3rd BP and RP coefficients against the catalog labels for the sVAE
    (top) and the Cannon (middle); the sVAE's star-by-star scatter against the Cannon's population scatter
    (bottom, grey lines). Cool and low-gravity stars shaded."""
    names = {"teff": "Teff [K]", "logg": "log g", "m_h": "[M/H]"}
    fig, axes = plt.subplots(3, 3, figsize=(12, 9), sharex="col")
    colours = dict(zip(coefficients, ("tab:blue", "tab:red"), strict=False))
    for j, (label, title) in enumerate(names.items()):
        v = labels[label]
        for coef, k in coefficients.items():
            kw = dict(s=2, alpha=0.3, color=colours[coef], label=coef)
            axes[0, j].scatter(v, r_svae[:, k], **kw)
            axes[1, j].scatter(v, r_cannon[:, k], **kw)
            axes[2, j].scatter(v, s_hat[:, k], **kw)
            axes[2, j].axhline(s_pop[k], color=colours[coef], ls="--", lw=1)
        for i in range(3):
            ax = axes[i, j]
            if label == "teff":
                ax.axvspan(np.nanmin(v), _COOL, color="tab:green", alpha=0.1)
            if label == "logg":
                ax.axvspan(np.nanmin(v), _LOW_G, color="gold", alpha=0.15)
        for i in range(2):
            axes[i, j].set_yscale("symlog", linthresh=3)
            axes[i, j].axhline(5, color="k", lw=0.5, ls=":")
            axes[i, j].axhline(-5, color="k", lw=0.5, ls=":")
        axes[2, j].set_yscale("log")
        axes[2, j].set_xlabel(title)
    axes[0, 0].set_ylabel("sVAE normalised error")
    axes[1, 0].set_ylabel("Cannon normalised error")
    axes[2, 0].set_ylabel("scatter (std. units)\nsVAE ŝ; Cannon s (dashed)")
    axes[0, 0].legend(fontsize=8, markerscale=4)
    fig.tight_layout()
    return fig


def wavelength_residuals_figure(residuals: Mapping) -> Figure:
    """Fig. 2 in wavelength space: median and 16–84 % band of the fractional residual of the sVAE and the
    Cannon per wavelength, one panel per label region (:func:`latentsky.xp.evaluation.wavelength_residuals`)."""
    regions = residuals["regions"]
    wl = np.asarray(residuals["wavelength_nm"])
    fig, axes = plt.subplots(1, len(regions), figsize=(4.6 * len(regions), 3.6), sharey=True, squeeze=False)
    colours = {"svae": "tab:purple", "cannon": "tab:grey"}
    for ax, (name, row) in zip(axes[0], regions.items(), strict=True):
        for model, colour in colours.items():
            if model not in row:
                continue
            r = row[model]
            ax.fill_between(wl, r["p16"], r["p84"], color=colour, alpha=0.25, lw=0)
            label = f"{model} (median |Δ| {r['median_abs']:.2%})"
            ax.plot(wl, r["p50"], color=colour, lw=1.2, label=label)
        ax.axhline(0, color="k", lw=0.5)
        ax.set_title(f"{name} ({row['n_stars']} stars)")
        ax.set_xlabel("wavelength [nm]")
        ax.legend(fontsize=7)
    axes[0, 0].set_ylabel("(model − observed) / observed")
    fig.tight_layout()
    return fig


def latent_coverage_figure(
    mu_crossmatch: np.ndarray, mu_unlabelled: np.ndarray, dims: tuple[int, int]
) -> Figure:
    """Fig. 3: two latent dimensions, the labelled cross-match over the unlabelled stars."""
    fig, ax = plt.subplots(figsize=(5.5, 5))
    i, j = dims
    ax.scatter(
        mu_unlabelled[:, i], mu_unlabelled[:, j], s=1, alpha=0.3, color="tab:blue", label="unlabelled XP"
    )
    ax.scatter(
        mu_crossmatch[:, i], mu_crossmatch[:, j], s=1, alpha=0.3, color="tab:orange", label="XP × APOGEE"
    )
    ax.set_xlabel(f"z{i}")
    ax.set_ylabel(f"z{j}")
    ax.legend(markerscale=8, fontsize=8)
    fig.tight_layout()
    return fig


def training_curves(histories: Mapping[str, pd.DataFrame]) -> Figure:
    """Training and validation loss per epoch, one panel per preset (the presets' losses are in different
    units: means in the paper's form, sums in the authors' code)."""
    fig, axes = plt.subplots(1, len(histories), figsize=(5 * len(histories), 3.6), squeeze=False)
    for ax, (preset, h) in zip(axes[0], histories.items(), strict=True):
        for split, style in (("train", "-"), ("val", "--")):
            ax.plot(h["epoch"], h[f"{split}_total"], style, label=f"{split} total")
            ax.plot(h["epoch"], h[f"{split}_kl"], style, label=f"{split} KL", alpha=0.6)
        ax.set_title(f"preset {preset}")
        ax.set_xlabel("epoch")
        ax.legend(fontsize=8)
    axes[0, 0].set_ylabel("loss per star")
    fig.tight_layout()
    return fig
