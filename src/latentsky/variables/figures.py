"""Figures of the light-curve stage: paper 000 Fig. 1 (raw, folded, undersampled, augmented) per class."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # figures are files; never open a window on a cluster node

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from latentsky.variables.lightcurves import fold  # noqa: E402


def fig1_panels(objects: pd.DataFrame, light_curves: pd.DataFrame, train: pd.DataFrame) -> Figure:
    """One row per class: the raw light curve, folded on the catalog period, the undersampled training
    curve, and one augmented copy of it (paper 000 Fig. 1)."""
    classes = sorted(train["var_class"].unique())
    fig, axes = plt.subplots(
        len(classes), 4, figsize=(16, 2.4 * len(classes)), squeeze=False, constrained_layout=True
    )
    titles = ("raw I-band light curve", "folded", "folded, undersampled (real)", "augmented copy")
    for row, var_class in enumerate(classes):
        examples = train[train["var_class"] == var_class]
        with_copy = examples.groupby("ogle_id")["copy"].max()
        ogle_id = with_copy.idxmax()  # an object with augmented copies when there is one
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
