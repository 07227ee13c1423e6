"""Figures of the BGS outlier catalog: the gallery of the lowest-probability spectra (paper 003 Fig. 3)."""

from __future__ import annotations

import matplotlib

__all__ = [
    "outlier_gallery",
]

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402


def outlier_gallery(rows: pd.DataFrame, catalog: pd.DataFrame, model, instrument, data, n: int = 8) -> Figure:
    """The ``n`` spectra with the lowest log p_galaxy (grey, masked pixels dropped) with the autoencoder's
    reconstruction (red); ``rows``/``catalog``/``data`` are aligned on the spectra that have a probability."""
    order = np.argsort(catalog["log_p_galaxy"].to_numpy(), kind="stable")[:n]
    wave = instrument.wave_obs.cpu().numpy()
    fig, axes = plt.subplots(len(order), 1, figsize=(10, 1.6 * max(len(order), 1)), squeeze=False)
    for ax, i in zip(axes[:, 0], order, strict=False):
        b = data.index(np.array([i]))
        with torch.no_grad():
            recon = model(b.spec, instrument, z=b.z)[0].cpu().numpy()
        spec, w = b.spec[0].cpu().numpy(), b.w[0].cpu().numpy()
        good = w > 0
        ax.plot(wave[good], spec[good], color="0.6", lw=0.6)
        ax.plot(wave, recon, color="tab:red", lw=0.6)
        row = catalog.iloc[i]
        ax.set_title(
            f"target {row['target_id']}  z={row['z']:.3f}  log p_gal={row['log_p_galaxy']:.1f}  "
            f"log p_star={row['log_p_star']:.1f}",
            fontsize=7,
        )
        ax.tick_params(labelsize=6)
        lo, hi = np.percentile(spec[good], [1, 99]) if good.any() else (0, 1)
        ax.set_ylim(lo - 0.3 * abs(hi - lo), hi + 0.3 * abs(hi - lo))
    axes[-1, 0].set_xlabel("observed wavelength (Å)")
    fig.tight_layout()
    return fig
