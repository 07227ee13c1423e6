"""Figures of the Gaia survey and the distance catalog (paper 004 Figs. 1, 4, 7): the simulated
survey's colour–magnitude diagram by population, the dust map, the training loss, raw against posterior
CMDs and the cluster distances.
"""

from __future__ import annotations

import contextlib
import io
import os

import matplotlib

matplotlib.use("Agg")  # figures are files; never open a window on a cluster node

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

POPULATION_COLOURS = {
    "main_sequence": "tab:blue",
    "giant_branch": "tab:red",
    "red_clump": "tab:orange",
    "white_dwarf": "tab:purple",
}


def absolute_g_from_parallax(g: np.ndarray, parallax_mas: np.ndarray) -> np.ndarray:
    """M_G = G + 5 log10(ϖ / 100 mas): the naive absolute magnitude from the inverse parallax."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return g + 5.0 * np.log10(parallax_mas / 100.0)


def cmd_figure(observed: pd.DataFrame, truth: pd.DataFrame) -> Figure:
    """Three panels: true dereddened CMD by population; observed CMD at ϖ/σ > 10; all ϖ > 0."""
    merged = observed.merge(truth, on="source_id", validate="1:1")
    fig, axes = plt.subplots(1, 3, figsize=(15, 5.5), sharey=True, constrained_layout=True)
    ax = axes[0]
    for population, colour in POPULATION_COLOURS.items():
        sel = merged["population"] == population
        ax.scatter(
            merged.loc[sel, "true_bp_rp0"],
            merged.loc[sel, "true_abs_g"],
            s=1,
            c=colour,
            alpha=0.5,
            label=f"{population.replace('_', ' ')} ({int(sel.sum())})",
            rasterized=True,
        )
    ax.legend(markerscale=8, fontsize=8, loc="lower left")
    ax.set_title("truth: dereddened, true distance")
    ax.set_ylabel(r"$M_G$")

    parallax = merged["parallax"].to_numpy(dtype=float)
    snr = parallax / merged["parallax_error"].to_numpy(dtype=float)
    abs_g = absolute_g_from_parallax(merged["phot_g_mean_mag"].to_numpy(dtype=float), parallax)
    bp_rp = merged["bp_rp"].to_numpy(dtype=float, na_value=np.nan)
    for ax, sel, title in (
        (axes[1], snr > 10, r"observed, $\varpi/\sigma_\varpi > 10$"),
        (axes[2], parallax > 0, r"observed, all $\varpi > 0$"),
    ):
        ok = sel & np.isfinite(bp_rp)
        ax.hexbin(
            bp_rp[ok], abs_g[ok], gridsize=120, bins="log", extent=(-1, 4.5, -5, 17), mincnt=1, cmap="viridis"
        )
        ax.set_title(f"{title} ({int(ok.sum())} stars)")
    for ax in axes:
        ax.set_xlabel("BP − RP")
        ax.set_xlim(-1, 4.5)
    axes[0].set_ylim(17, -5)
    return fig


def dust_map_figure(
    bayestar_path: str | os.PathLike, distances_pc: tuple[float, ...] = (1000.0, 1e5)
) -> Figure:
    """Best-fit reddening of a Bayestar-format map at the given distances, Galactic Mollweide.

    Read through ``dustmaps.bayestar.BayestarQuery`` — the same reader the distance model uses — so the
    figure shows what downstream stages see, holes and footprint included.
    """
    from astropy import units as u
    from astropy.coordinates import SkyCoord
    from dustmaps.bayestar import BayestarQuery

    with contextlib.redirect_stdout(io.StringIO()):  # BayestarQuery prints its loading progress
        query = BayestarQuery(map_fname=os.fspath(bayestar_path), version="bayestar2019")
    lon = np.linspace(-180, 180, 361)
    lat = np.linspace(-90, 90, 181)
    lon_c, lat_c = np.meshgrid(0.5 * (lon[1:] + lon[:-1]), 0.5 * (lat[1:] + lat[:-1]))
    fig, axes = plt.subplots(
        1,
        len(distances_pc),
        figsize=(7 * len(distances_pc), 4),
        subplot_kw={"projection": "mollweide"},
        constrained_layout=True,
    )
    for ax, d in zip(np.atleast_1d(axes), distances_pc, strict=True):
        coords = SkyCoord(
            l=lon_c.ravel() * u.deg, b=lat_c.ravel() * u.deg, distance=d * u.pc, frame="galactic"
        )
        red = np.asarray(query(coords, mode="best"), dtype=float).reshape(lon_c.shape)
        ax.set_facecolor("0.8")
        # Mollweide axes want radians with longitude increasing to the left, as on the sky.
        finite = red[np.isfinite(red)]
        # The Galactic mid-plane to the far edge is orders of magnitude dustier than the rest of the sky:
        # cap the colour scale at the 95th percentile so the high-latitude structure stays visible.
        vmax = float(np.percentile(finite, 95)) if finite.size else 1.0
        mesh = ax.pcolormesh(
            -np.radians(lon),
            np.radians(lat),
            np.ma.masked_invalid(red),
            cmap="magma_r",
            shading="flat",
            vmin=0,
            vmax=vmax,
        )
        ax.set_xticklabels([])
        label = "far edge" if d >= 1e4 else f"{d / 1000:g} kpc"
        ax.set_title(f"E (Bayestar units) to {label}")
        fig.colorbar(mesh, ax=ax, orientation="horizontal", shrink=0.6, pad=0.05, extend="max")
    return fig


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


def cmd_comparison_figure(catalog: pd.DataFrame, parallax_offset_mas: float | np.ndarray) -> Figure:
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
    rows: list[dict],
    distances: dict[tuple[str, float], np.ndarray],
    truth_kpc: float | None,
    title: str | None = None,
) -> Figure:
    """Paper 004 Fig. 8: distance distributions of a cluster's stars per method and SNR limit.

    ``truth_kpc``: the true (simulation) or literature distance, drawn in green; None draws none. The range
    is 0–3 kpc as in the paper for a distant cluster, 0–3× the distance for a nearer one.
    """
    methods = ("inverse_parallax", "edsd_prior", "flow")
    limits = sorted({r["snr_below"] for r in rows})
    fig, axes = plt.subplots(
        len(methods), len(limits), figsize=(5 * len(limits), 9), sharex=True, constrained_layout=True
    )
    axes = np.atleast_2d(axes)
    top = 3.0 if truth_kpc is None else min(3.0, 3.0 * truth_kpc)
    if title:
        fig.suptitle(title)
    for i, method in enumerate(methods):
        for j, limit in enumerate(limits):
            ax = axes[i, j]
            values = distances.get((method, limit), np.array([])) / 1000.0
            ax.hist(values[(values > 0) & (values < top)], bins=60, range=(0, top), color="0.4")
            if truth_kpc is not None:
                ax.axvline(truth_kpc, color="tab:green", label=f"reference {truth_kpc:.3f} kpc")
            fit = next((r for r in rows if r["method"] == method and r["snr_below"] == limit), None)
            if fit and "center_kpc" in fit:
                ax.axvline(
                    fit["center_kpc"], color="tab:red", ls="--", label=f"fit {fit['center_kpc']:.3f} kpc"
                )
            snr = f"parallax SNR < {limit:g}" if np.isfinite(limit) else "all stars"
            ax.set_title(f"{method.replace('_', ' ')}, {snr}", fontsize=9)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=8)
    for ax in axes[-1]:
        ax.set_xlabel("distance (kpc)")
    return fig
