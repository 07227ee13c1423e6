"""Figures of Cycle-StarNet on the mock experiment (paper 002 Figs. 4, 5, 7, 10, 11) and its training curves."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib

__all__ = [
    "carbon_nitrogen",
    "line_recovery",
    "residual_histograms",
    "training_curves",
]

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

_ELEMENT_COLOURS = {
    "C": "tab:grey",
    "N": "tab:blue",
    "O": "tab:cyan",
    "Mg": "tab:green",
    "Al": "tab:olive",
    "Si": "tab:orange",
    "Ca": "tab:pink",
    "Ti": "tab:brown",
    "Fe": "tab:red",
    "Ni": "tab:purple",
}


def residual_histograms(
    panels: Mapping[str, Mapping[str, np.ndarray]], xlabel: str, *, gaussian: bool = False, span: float = 5.0
) -> Figure:
    """One panel per entry (title → {label: residuals}), step histograms on a common range; ``gaussian``
    overlays N(0, 1) (Figs. 4, 5, 7)."""
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 3.8), squeeze=False)
    bins = np.linspace(-span, span, 121)
    for ax, (title, series) in zip(axes[0], panels.items(), strict=True):
        for label, values in series.items():
            v = np.asarray(values).ravel()
            ax.hist(v[np.isfinite(v)], bins=bins, histtype="step", density=True, label=label)
        if gaussian:
            ax.plot(bins, np.exp(-0.5 * bins**2) / np.sqrt(2 * np.pi), "k:", label="N(0, 1)")
        ax.set(title=title, xlabel=xlabel, yscale="log")
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _shade(ax, features: pd.DataFrame, wavelength: np.ndarray, elements: Sequence[str] | None = None) -> None:
    for row in features[features["masked"].astype(bool)].itertuples(index=False):
        if elements is not None and row.element not in elements:
            continue
        ax.axvspan(
            wavelength[int(row.first_pixel)],
            wavelength[int(row.last_pixel)],
            color=_ELEMENT_COLOURS.get(row.element, "k"),
            alpha=0.25,
            lw=0,
        )


def line_recovery(
    wavelength: np.ndarray,
    synth_masked: np.ndarray,
    transferred: np.ndarray,
    observed_true: np.ndarray,
    features: pd.DataFrame,
    j_diff: Mapping[str, np.ndarray],
) -> Figure:
    """Fig. 10 for the reference giant: the masked synthetic spectrum beside the true one; the transferred
    spectrum beside the true one; their difference with the masked features shaded by element; J_diff of a
    few elements."""
    fig, axes = plt.subplots(4, 1, figsize=(12, 10), sharex=True)
    axes[0].plot(wavelength, observed_true, color="k", lw=0.8, label="observed (noiseless truth)")
    axes[0].plot(wavelength, synth_masked, color="tab:orange", lw=0.8, label="synthetic with the line mask")
    axes[1].plot(wavelength, observed_true, color="k", lw=0.8, label="observed (noiseless truth)")
    axes[1].plot(wavelength, transferred, color="tab:blue", lw=0.8, label="T_s→o(synthetic)")
    axes[2].plot(wavelength, transferred - synth_masked, color="tab:blue", lw=0.8, label="T_s→o − synthetic")
    axes[2].plot(
        wavelength, observed_true - synth_masked, color="k", lw=0.6, alpha=0.6, label="truth − synthetic"
    )
    _shade(axes[2], features, wavelength)
    for element, values in j_diff.items():
        axes[3].plot(
            wavelength, values, lw=0.8, color=_ELEMENT_COLOURS.get(element), label=f"J_diff [{element}/H]"
        )
    _shade(axes[3], features, wavelength, list(j_diff))
    for ax, ylabel in zip(axes, ("flux", "flux", "Δ flux", "∂flux/∂[X/H]"), strict=True):
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=8, loc="lower left", ncol=4)
    axes[-1].set_xlabel("vacuum wavelength (Å)")
    fig.tight_layout()
    return fig


def carbon_nitrogen(
    wavelength: np.ndarray, j_diff: Mapping[str, np.ndarray], features: pd.DataFrame
) -> Figure:
    """Fig. 11: J_diff of C and of N, with the masked C and N features shaded."""
    fig, axes = plt.subplots(2, 1, figsize=(12, 5), sharex=True)
    for ax, element in zip(axes, ("C", "N"), strict=True):
        ax.plot(wavelength, j_diff[element], color=_ELEMENT_COLOURS[element], lw=0.8)
        _shade(ax, features, wavelength, [element])
        ax.set_ylabel(f"J_diff [{element}/H]")
    axes[-1].set_xlabel("vacuum wavelength (Å)")
    fig.tight_layout()
    return fig


def training_curves(history: pd.DataFrame) -> Figure:
    """The authors' four-panel progress plot: reconstruction and cycle losses per domain, the adversarial
    losses, the paired validation errors and the latent z scores, against the iteration."""
    fig, axes = plt.subplots(2, 2, figsize=(11, 7), sharex=True)
    it = history["iteration"]
    for col in ("rec_synth", "cc_synth", "rec_obs", "cc_obs"):
        axes[0, 0].plot(it, history[col], label=col)
    for col in ("gen_synth", "gen_obs", "dis_real_synth", "dis_fake_synth", "dis_real_obs", "dis_fake_obs"):
        axes[0, 1].plot(it, history[col], label=col)
    for col in ("x_synthobs_val", "x_obssynth_val"):
        axes[1, 0].plot(it, history[col], label=col)
    for col in ("zsh", "zsh_synth", "zsh_obs", "zsp"):
        if col in history:
            axes[1, 1].plot(it, history[col], label=col)
    for ax, title in zip(
        axes.ravel(),
        ("weighted MSE (training)", "BCE (adversarial)", "weighted MSE (paired validation)", "z scores"),
        strict=True,
    ):
        ax.set(title=title, yscale="log")
        ax.legend(fontsize=7)
    for ax in axes[1]:
        ax.set_xlabel("iteration")
    fig.tight_layout()
    return fig
