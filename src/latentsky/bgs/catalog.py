"""The BGS outlier-probability catalog (paper 003 Secs. 3–5): the train/val/test split and the catalog
table. The figures of merit and the PCA baseline are in :mod:`latentsky.bgs.metrics`, the flows and their
files in :mod:`latentsky.bgs.flow`.

Catalog (one row per BGS target, flagged ones included with null results): ``target_id``, ``z``, ``flags``
/ ``flag_names`` (:class:`latentsky.io.desi.DesiFlag`), ``split``, ``log_p_galaxy`` (galaxy flow on the
galaxy autoencoder's latents), ``log_p_star`` (star flow on the star autoencoder's latents of the same
spectrum, read at z = 0 as the MWS model is), ``log_likelihood_ratio`` = log p_star − log p_galaxy (the
paper's proposed star/galaxy score, Sec. 5), ``fidelity`` (reduced χ² of the galaxy reconstruction),
``latents`` (S values), ``galaxy_quantile`` (share of the galaxy model's training spectra with a lower
log p_galaxy: 0.001 = rarer than 99.9 % of the BGS training sample) and ``outlier_rank`` (1 = lowest
log p_galaxy among the rows scored together).

:func:`score_spectra` makes these rows for any spectra table (the workflow's BGS sample, or a user's own
coadd through ``latentsky score-desi``) from the four model files (:func:`load_bgs_models`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from latentsky.bgs.flow import load_flow
from latentsky.training import SPLITS, outlier_ranks, split_targets

__all__ = [
    "SPLITS",
    "split_targets",
    "outlier_ranks",
    "BgsModels",
    "load_bgs_models",
    "Scores",
    "score_spectra",
]


@dataclass
class BgsModels:
    """The four trained models of the catalog: galaxy (BGS) and star (MWS) autoencoders and their flows."""

    galaxy_ae: Any
    galaxy_flow: Any
    star_ae: Any
    star_flow: Any
    instrument: Any
    bin_factor: int


def load_bgs_models(
    galaxy_model: str | os.PathLike,
    galaxy_flow: str | os.PathLike,
    star_model: str | os.PathLike,
    star_flow: str | os.PathLike,
    device: str = "cpu",
    bin_factor: int | None = None,
) -> BgsModels:
    """Load the model files. ``bin_factor`` defaults to the one the galaxy model was trained at (recorded in
    our files; give it for a published spender model, which is at the full DESI grid, 1)."""
    from latentsky.bgs.autoencoder import autoencoder_settings, load_autoencoder

    if bin_factor is None:
        settings = autoencoder_settings(galaxy_model)
        bin_factor = settings.bin_factor if settings is not None else 1
    galaxy_ae, instrument = load_autoencoder(galaxy_model, bin_factor, device)
    star_ae, _ = load_autoencoder(star_model, bin_factor, device)
    return BgsModels(galaxy_ae, load_flow(galaxy_flow), star_ae, load_flow(star_flow), instrument, bin_factor)


@dataclass
class Scores:
    """:func:`score_spectra`'s result: the catalog (one row per input row) and, for the scored rows
    (``usable``), the tensors and arrays the metrics use."""

    catalog: pd.DataFrame
    usable: np.ndarray
    data: Any
    latents: np.ndarray
    fidelity_loss: np.ndarray
    reduced_chi2: np.ndarray


def score_spectra(spectra: pd.DataFrame, models: BgsModels, device: str = "cpu") -> Scores:
    """Catalog rows (module docstring) for a spectra table (``latentsky.io.desi.DesiSpectra.table``
    columns; ``split`` is copied when present). Rows with flags keep their row with null results."""
    from latentsky.bgs.autoencoder import encode_spectra, fidelity, table_tensors
    from latentsky.bgs.flow import log_prob

    usable = (spectra["flags"] == 0).to_numpy()
    rows = spectra[usable]
    n, k = len(spectra), models.galaxy_ae.encoder.n_latent
    if len(rows):
        data = table_tensors(rows, models.bin_factor, device)
        s_gal = encode_spectra(models.galaxy_ae, data)
        loss, chi2 = fidelity(models.galaxy_ae, models.instrument, data, latents=s_gal)
        s_star = encode_spectra(models.star_ae, data)
    else:
        # Nothing to score (no target of the class, or every row flagged): the flagged rows are still
        # the catalog, with null results; the models are not run on an empty batch.
        data, s_gal, s_star = None, np.zeros((0, k), np.float32), np.zeros((0, k), np.float32)
        loss, chi2 = np.zeros(0), np.zeros(0)
    columns = ["target_id", "z", "flags", "flag_names"] + (["split"] if "split" in spectra else [])
    catalog = spectra[columns].reset_index(drop=True).copy()
    log_p_galaxy = log_prob(models.galaxy_flow, s_gal) if len(rows) else np.zeros(0)
    reference = getattr(models.galaxy_flow, "reference_log_p", np.zeros(0))
    quantile = (
        np.searchsorted(reference, log_p_galaxy, side="left") / len(reference)
        if len(reference)
        else np.full(len(rows), np.nan)
    )
    for name, values in (
        ("log_p_galaxy", log_p_galaxy),
        ("log_p_star", log_prob(models.star_flow, s_star) if len(rows) else np.zeros(0)),
        ("fidelity", chi2),
        ("fidelity_loss", loss),
        ("galaxy_quantile", quantile),
    ):
        col = np.full(n, np.nan)
        col[usable] = values
        catalog[name] = col
    catalog["log_likelihood_ratio"] = catalog["log_p_star"] - catalog["log_p_galaxy"]
    latents = np.full((n, k), np.nan, dtype=np.float32)
    latents[usable] = s_gal
    # An empty catalog keeps the column types a reader of a full one expects (no null-typed columns).
    catalog["flag_names"] = catalog["flag_names"].astype(str)
    catalog["latents"] = (
        list(latents) if n else pd.Series([], dtype=pd.ArrowDtype(pa.list_(pa.float32())), name="latents")
    )
    catalog["has_probability"] = usable
    catalog["outlier_rank"] = outlier_ranks(catalog["log_p_galaxy"].to_numpy(), usable)
    return Scores(catalog, usable, data, s_gal, loss, chi2)
