"""Figures of the light-curve stage: paper 000 Fig. 1 (raw, folded, undersampled, augmented) per class, and
the Magellanic Cepheids' period–luminosity relation that shows whether the adopted M_G are physical."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # figures are files; never open a window on a cluster node

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from latentsky.variables.lightcurves import fold  # noqa: E402


def fig1_objects(train: pd.DataFrame) -> dict[str, str]:
    """The object :func:`fig1_panels` shows per class: one with augmented copies where the class has them —
    so the rule reads a handful of raw curves, not those of every training object."""
    chosen = {}
    for var_class, examples in train.groupby("var_class", sort=True):
        chosen[str(var_class)] = str(examples.groupby("ogle_id")["copy"].max().idxmax())
    return chosen


def fig1_panels(objects: pd.DataFrame, light_curves: pd.DataFrame, train: pd.DataFrame) -> Figure:
    """One row per class: the raw light curve, folded on the catalog period, the undersampled training
    curve, and one augmented copy of it (paper 000 Fig. 1); ``light_curves`` needs only the raw curves of
    :func:`fig1_objects`."""
    chosen = fig1_objects(train)
    classes = sorted(chosen)
    fig, axes = plt.subplots(
        len(classes), 4, figsize=(16, 2.4 * len(classes)), squeeze=False, constrained_layout=True
    )
    titles = ("raw I-band light curve", "folded", "folded, undersampled (real)", "augmented copy")
    for row, var_class in enumerate(classes):
        examples = train[train["var_class"] == var_class]
        ogle_id = chosen[var_class]
        obj = objects.set_index("ogle_id").loc[ogle_id]
        lc = light_curves[light_curves["ogle_id"] == ogle_id]
        mine = examples[examples["ogle_id"] == ogle_id].sort_values("copy")
        real, aug = mine.iloc[0], mine.iloc[-1]
        ax = axes[row]
        ax[0].errorbar(lc["time"], lc["mag"], lc["err"], fmt=".", ms=2, lw=0.5)
        ax[0].set_ylabel(f"{var_class}\nI (mag)")
        phase = fold(lc["time"].to_numpy(), float(obj["period"]))
        ax[1].errorbar(phase, lc["mag"], lc["err"], fmt=".", ms=2, lw=0.5)
        ax[2].errorbar(real["phase"], real["mag"], real["err"], fmt=".", ms=2, lw=0.5, color="tab:green")
        if aug["augmented"]:
            ax[3].errorbar(aug["phase"], aug["mag"], aug["err"], fmt=".", ms=2, lw=0.5, color="tab:orange")
        else:
            ax[3].text(0.5, 0.5, "class needs no augmentation", ha="center", transform=ax[3].transAxes)
        for k, a in enumerate(ax):
            a.invert_yaxis()
            if row == 0:
                a.set_title(titles[k])
        ax[1].text(0.02, 0.05, f"{ogle_id}, P = {obj['period']:.4g} d", transform=ax[1].transAxes, fontsize=7)
    for a in axes[-1, 1:]:
        a.set_xlabel("phase")
    axes[-1, 0].set_xlabel("HJD − 2450000")
    return fig


def cepheid_period_luminosity(
    frames: dict[str, pd.DataFrame], fits: dict[str, pd.DataFrame], systems: tuple[str, ...] = ("LMC", "SMC")
) -> Figure:
    """M_G against log10 P of the Magellanic Cepheids, one row per distance choice (``frames``: label → the
    :func:`latentsky.variables.physics.adopted_physics` rows with ``system``, ``subtype``, ``period``), one
    column per system, each mode with its fitted line (``fits``: label → :func:`period_luminosity`)."""
    fig, axes = plt.subplots(
        len(frames), len(systems), figsize=(5 * len(systems), 3.6 * len(frames)), squeeze=False,
        sharex=True, constrained_layout=True,
    )  # fmt: skip
    colours = {"F": "tab:blue", "1O": "tab:orange"}
    for row, (label, frame) in enumerate(frames.items()):
        fit = fits[label]
        for col, name in enumerate(systems):
            ax = axes[row, col]
            sel = frame[(frame["system"] == name) & (frame["var_class"] == "CEP")]
            for mode, colour in colours.items():
                part = sel[sel["subtype"] == mode]
                logp = np.log10(part["period"].to_numpy(np.float64))
                ax.scatter(logp, part["abs_g"], s=3, alpha=0.5, color=colour, label=f"{mode} ({len(part)})")
                line = fit[(fit["system"] == name) & (fit["subtype"] == mode)]
                if len(line):
                    x = np.linspace(logp.min(), logp.max(), 2)
                    r = line.iloc[0]
                    ax.plot(x, r["slope"] * x + r["zero_point"], color="k", lw=1)
                    ax.text(
                        0.02, 0.04 + 0.08 * list(colours).index(mode),
                        f"{mode}: slope {r['slope']:.2f}, σ {r['scatter']:.2f} mag", transform=ax.transAxes,
                        fontsize=7,
                    )  # fmt: skip
            ax.invert_yaxis()
            ax.set_title(f"{name} Cepheids — M_G from {label}", fontsize=9)
            ax.set_ylabel("M_G (mag)")
            ax.legend(fontsize=7, loc="upper left", markerscale=3)
    for ax in axes[-1]:
        ax.set_xlabel("log10 P (d)")
    return fig
