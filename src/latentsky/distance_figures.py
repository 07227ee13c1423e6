"""Figures of the distance pipeline (paper 004): loss curves, Fig. 4 CMDs, Fig. 8 cluster distances."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # figures are files; never open a window on a cluster node

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from latentsky.survey_figures import absolute_g_from_parallax  # noqa: E402


def loss_curve_figure(history: pd.DataFrame, steps_per_round: int) -> Figure:
    """Training loss per step with a running mean; dashed lines where the dust estimates were refreshed."""
    fig, ax = plt.subplots(figsize=(8, 4.5), constrained_layout=True)
    loss = history["loss"].to_numpy()
    ax.plot(history["step"], loss, lw=0.5, alpha=0.4, label="mini-batch loss")
    window = max(1, min(50, len(loss) // 10))
    smooth = np.convolve(loss, np.ones(window) / window, mode="valid")
    ax.plot(history["step"].to_numpy()[window - 1 :], smooth, lw=1.5, label=f"running mean ({window} steps)")
    for boundary in range(steps_per_round, int(history["step"].max()), steps_per_round):
        ax.axvline(boundary, color="0.6", ls="--", lw=0.8)
    ax.set_xlabel("optimiser step")
    ax.set_ylabel(r"$-\sum_i w_i \log P(g, bp-rp, bp-g)_i$, $w \propto 1/\sigma_P^2$")
    ax.set_title("CMD flow training (dashed: dust/distance estimates refreshed)")
    ax.legend()
    return fig


def cmd_comparison_figure(catalog: pd.DataFrame, parallax_offset_mas: float) -> Figure:
    """Paper 004 Fig. 4: inverse-parallax CMD (left) against the posterior CMD (right), by parallax SNR."""
    plx = catalog["parallax"].to_numpy(dtype=float) + parallax_offset_mas
    snr = plx / catalog["parallax_error"].to_numpy(dtype=float)
    has = catalog["has_posterior"].to_numpy(dtype=bool)
    raw_g = absolute_g_from_parallax(catalog["phot_g_mean_mag"].to_numpy(dtype=float), plx)
    raw_c = catalog["bp_rp"].to_numpy(dtype=float)
    post_g = catalog["abs_g"].to_numpy(dtype=float)
    post_c = catalog["bp_rp0"].to_numpy(dtype=float)
    fig, axes = plt.subplots(3, 2, figsize=(10, 13), sharex=True, sharey=True, constrained_layout=True)
    extent = (-1.0, 4.5, -5.0, 17.0)
    for row, (cut, label) in enumerate(
        ((None, "all stars"), (10, r"$\varpi/\sigma_\varpi > 10$"), (50, r"$> 50$"))
    ):
        sel = has if cut is None else has & (snr > cut)
        raw = sel & (plx > 0) & np.isfinite(raw_c)
        for col, (x, y, ok, title) in enumerate(
            (
                (raw_c, raw_g, raw, r"Gaia: $1/\varpi$, reddened (ϖ > 0 only)"),
                (post_c, post_g, sel, "model: posterior mean, dereddened (all ϖ)"),
            )
        ):
            ax = axes[row, col]
            if ok.sum() > 0:
                ax.hexbin(x[ok], y[ok], gridsize=100, bins="log", extent=extent, mincnt=1, cmap="viridis")
            ax.set_title(f"{title}\n{label}: {int(ok.sum())} stars", fontsize=9)
    for ax in axes[-1]:
        ax.set_xlabel("BP − RP")
    for ax in axes[:, 0]:
        ax.set_ylabel(r"$M_G$")
    axes[0, 0].set_xlim(extent[0], extent[1])
    axes[0, 0].set_ylim(extent[3], extent[2])
    return fig


def cluster_figure(
    rows: list[dict], distances: dict[tuple[str, float], np.ndarray], truth_kpc: float
) -> Figure:
    """Paper 004 Fig. 8: distance distributions of the cluster cone per method and SNR limit."""
    methods = ("inverse_parallax", "edsd_prior", "flow")
    limits = sorted({r["snr_below"] for r in rows})
    fig, axes = plt.subplots(
        len(methods), len(limits), figsize=(5 * len(limits), 9), sharex=True, constrained_layout=True
    )
    axes = np.atleast_2d(axes)
    for i, method in enumerate(methods):
        for j, limit in enumerate(limits):
            ax = axes[i, j]
            values = distances.get((method, limit), np.array([])) / 1000.0
            ax.hist(values[(values > 0) & (values < 3)], bins=60, range=(0, 3), color="0.4")
            ax.axvline(truth_kpc, color="tab:green", label=f"truth {truth_kpc:.3f} kpc")
            fit = next((r for r in rows if r["method"] == method and r["snr_below"] == limit), None)
            if fit and "center_kpc" in fit:
                ax.axvline(
                    fit["center_kpc"], color="tab:red", ls="--", label=f"fit {fit['center_kpc']:.3f} kpc"
                )
            ax.set_title(f"{method.replace('_', ' ')}, parallax SNR < {limit:g}", fontsize=9)
            ax.legend(fontsize=8)
    for ax in axes[-1]:
        ax.set_xlabel("distance (kpc)")
    return fig
