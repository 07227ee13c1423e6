"""Figures of PELS-VAE for the report: paper 000 Figs. 4 (validation loss), 5 and 7 (reconstructions per
class), 6 (latent pair plot) and 8 (generated RR Lyrae along a T_eff sequence, per regressor)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib

__all__ = [
    "validation_loss_figure",
    "reconstruction_figure",
    "latent_pairs_figure",
    "rrlyrae_sequence_figure",
]

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402


def validation_loss_figure(histories: Mapping[str, pd.DataFrame]) -> Figure:
    """Fig. 4: validation (solid) and training (dashed) loss of eq. 4 per epoch, one line per model."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for (name, h), colour in zip(histories.items(), ("tab:blue", "tab:red", "tab:green"), strict=False):
        ax.plot(h["epoch"], h["val_loss"], "-", color=colour, label=f"{name} validation")
        ax.plot(h["epoch"], h["train_loss"], "--", color=colour, alpha=0.6, label=f"{name} training")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (eq. 4)")
    ax.set_yscale("log")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def reconstruction_figure(
    frame: pd.DataFrame, reconstructed: Sequence[np.ndarray], title: str, per_class: int = 3
) -> Figure:
    """Figs. 5 / 7: ``per_class`` observed curves per class (grey) with the decoder's reconstruction (blue)."""
    classes = sorted(frame["var_class"].unique())
    fig, axes = plt.subplots(
        len(classes), per_class, figsize=(2.6 * per_class, 1.6 * len(classes)), squeeze=False
    )
    for r, cls in enumerate(classes):
        idx = np.flatnonzero(frame["var_class"].to_numpy() == cls)[:per_class]
        for c in range(per_class):
            ax = axes[r, c]
            ax.invert_yaxis()
            ax.tick_params(labelsize=6)
            if c >= len(idx):
                ax.axis("off")
                continue
            i = idx[c]
            phase = np.asarray(frame["phase"].iloc[i])
            ax.errorbar(phase, frame["mag"].iloc[i], frame["err"].iloc[i], fmt=".", ms=2, color="0.6", lw=0.5)
            ax.plot(phase, reconstructed[i], ".", ms=2, color="tab:blue")
            if c == 0:
                ax.set_ylabel(cls, fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def latent_pairs_figure(mu: np.ndarray, labels: Sequence[str], title: str) -> Figure:
    """Fig. 6: pairwise joint distributions of the latent means μ, coloured by class (histograms on the
    diagonal)."""
    mu = np.asarray(mu)
    labels = np.asarray(labels)
    k = mu.shape[1]
    classes = sorted(set(labels))
    colours = plt.get_cmap("tab10")
    fig, axes = plt.subplots(k, k, figsize=(1.8 * k + 1, 1.8 * k), squeeze=False)
    for i in range(k):
        for j in range(k):
            ax = axes[i, j]
            ax.tick_params(labelsize=5)
            for n, cls in enumerate(classes):
                sel = labels == cls
                if i == j:
                    ax.hist(mu[sel, i], bins=20, histtype="step", color=colours(n % 10))
                elif j < i:
                    ax.plot(mu[sel, j], mu[sel, i], ".", ms=1, alpha=0.5, color=colours(n % 10), label=cls)
                else:
                    ax.axis("off")
            if i == k - 1:
                ax.set_xlabel(f"μ{j + 1}", fontsize=7)
            if j == 0:
                ax.set_ylabel(f"μ{i + 1}", fontsize=7)
    handles = [plt.Line2D([], [], ls="", marker="o", color=colours(n % 10)) for n in range(len(classes))]
    fig.legend(handles, classes, loc="upper right", fontsize=7)
    fig.suptitle(title, fontsize=9)
    return fig


def rrlyrae_sequence_figure(sequence: pd.DataFrame) -> Figure:
    """Fig. 8: generated RR Lyrae (sample 0) for rising T_eff, one row per regressor, with the amplitude and
    rise fraction of each curve in the panel."""
    regressors = list(dict.fromkeys(sequence["regressor"]))
    first = sequence[sequence["sample"] == 0]
    teffs = sorted(first["teff"].unique())
    fig, axes = plt.subplots(
        len(regressors), len(teffs), figsize=(1.7 * len(teffs), 1.6 * len(regressors)), squeeze=False
    )
    for r, name in enumerate(regressors):
        for c, t in enumerate(teffs):
            ax = axes[r, c]
            row = first[(first["regressor"] == name) & (first["teff"] == t)].iloc[0]
            ax.plot(row["phase"], row["mag"], "-", color="tab:red")
            ax.invert_yaxis()
            ax.tick_params(labelsize=5)
            ax.text(
                0.03,
                0.04,
                f"A={row['amplitude']:.2f} r={row['rise_fraction']:.2f}",
                transform=ax.transAxes,
                fontsize=5,
            )
            if r == 0:
                ax.set_title(f"{t:.0f} K", fontsize=7)
            if c == 0:
                ax.set_ylabel(name, fontsize=7)
    fig.suptitle("Generated RR Lyrae for rising T_eff (paper 000 Fig. 8)", fontsize=9)
    fig.tight_layout()
    return fig
