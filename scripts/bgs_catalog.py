"""Rule bgs_catalog: log p_galaxy, log p_star, fidelity and outlier rank for every BGS target, with the
metrics of paper 003 (fidelity per split, redshift invariance, outlier recall against a PCA baseline) and
the galaxy latents' dimensionality."""

import numpy as np
import pandas as pd
import torch

from latentsky.bgs.autoencoder import SpenderSettings, augment_redshift, encode_spectra
from latentsky.bgs.catalog import load_bgs_models, score_spectra
from latentsky.bgs.figures import outlier_gallery
from latentsky.bgs.metrics import (
    invariance_ratio,
    latent_dimensionality,
    outlier_recall,
    pca_chi2,
    restframe_matrix,
)
from latentsky.jobs import job_logging, job_record, use_job_threads
from latentsky.provenance.files import nan_to_null, save_figure, write_json, write_parquet
from latentsky.training import resolve_device

smk = snakemake  # noqa: F821 - injected by Snakemake

with job_logging(smk) as log:
    use_job_threads(smk)
    cfg = smk.params.bgs
    settings = SpenderSettings.from_dict(cfg["autoencoder"])
    device = str(resolve_device(cfg["device"]))
    models = load_bgs_models(
        smk.input.galaxy_model, smk.input.galaxy_flow, smk.input.star_model, smk.input.star_flow, device,
        bin_factor=settings.bin_factor,
    )  # fmt: skip
    spectra = pd.read_parquet(smk.input.spectra).merge(pd.read_parquet(smk.input.split), on="target_id")
    scores = score_spectra(spectra, models, device)
    catalog, usable, data = scores.catalog, scores.usable, scores.data
    rows = spectra[usable]
    s_gal, loss, chi2 = scores.latents, scores.fidelity_loss, scores.reduced_chi2
    galaxy_ae, instrument = models.galaxy_ae, models.instrument
    n = len(spectra)
    record = job_record(smk, seed=smk.params.seed)
    write_parquet(catalog, smk.output.catalog, record)

    # Metrics.
    split = rows["split"].to_numpy()
    metrics = {
        "n_targets": n,
        "n_with_probability": int(usable.sum()),
        "fidelity_loss": {
            s: float(loss[split == s].mean()) for s in ("train", "val", "test") if (split == s).any()
        },
        "fidelity_loss_paper": {"train": 0.384, "val": 0.391, "test": 0.386},
        "reduced_chi2_median": {
            s: float(np.median(chi2[split == s])) for s in ("train", "val", "test") if (split == s).any()
        },
    }
    if (split == "train").sum() >= 2:
        metrics["galaxy_latent_dimensionality"] = latent_dimensionality(s_gal[split == "train"])
    test = split == "test"
    if test.sum() >= 2:
        t = data.index(np.flatnonzero(test))
        gen = torch.Generator(device=device).manual_seed(smk.params.seed % 2**62)
        spec_a, w_a, z_a = augment_redshift(
            t.spec, t.w, t.z, instrument.wave_obs, settings.z_max, settings.noise_scale, gen
        )
        s_aug = encode_spectra(galaxy_ae, type(t)(spec_a, w_a, z_a))
        metrics["redshift_invariance_ratio"] = invariance_ratio(s_gal[test], s_aug)
        metrics["redshift_invariance_ratio_paper"] = 21.0
    if smk.input.get("truth"):
        truth = pd.read_parquet(smk.input.truth).set_index("target_id").loc[rows["target_id"]]
        is_out = truth["is_outlier"].to_numpy(bool)
        kinds = truth["kind"].to_numpy(str)
        wave_obs = instrument.wave_obs.cpu().numpy()
        wave_rest = galaxy_ae.decoder.wave_rest.cpu().numpy()
        rest, rest_w = restframe_matrix(
            data.spec.cpu().numpy(), data.w.cpu().numpy(), rows["z"].to_numpy(), wave_obs, wave_rest
        )
        train = split == "train"
        pca = pca_chi2(rest[train], rest_w[train], rest, rest_w, cfg["pca_components"])
        metrics["outlier_recall"] = {
            "spender_flow": outlier_recall(-catalog.loc[usable, "log_p_galaxy"].to_numpy(), is_out, kinds),
            "pca_baseline": outlier_recall(pca, is_out, kinds),
        }
        metrics["n_outliers"] = {str(kk): int(v) for kk, v in pd.Series(kinds[is_out]).value_counts().items()}
        star_truth = kinds == "star"
        llr = catalog.loc[usable, "log_likelihood_ratio"].to_numpy()
        metrics["stars_by_likelihood_ratio"] = {
            "median_llr_stars": float(np.median(llr[star_truth])) if star_truth.any() else None,
            "median_llr_galaxies": float(np.median(llr[kinds == "galaxy"])),
        }
    write_json(nan_to_null(metrics), smk.output.metrics, record)
    figure = outlier_gallery(
        rows.reset_index(drop=True), catalog.loc[usable].reset_index(drop=True), galaxy_ae, instrument, data
    )
    save_figure(figure, smk.output.gallery, record, dpi=90)
    log.info("metrics: %s", {k: v for k, v in metrics.items() if k != "outlier_recall"})
