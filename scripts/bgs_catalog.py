"""Rule bgs_catalog: log p_galaxy, log p_star, fidelity and outlier rank for every BGS target, with the
metrics of paper 003 (fidelity per split, redshift invariance, outlier recall against a PCA baseline) and
the galaxy latents' dimensionality."""

import pandas as pd

from latentsky.bgs.autoencoder import SpenderSettings
from latentsky.bgs.catalog import load_bgs_models, score_spectra
from latentsky.bgs.figures import outlier_gallery
from latentsky.bgs.metrics import catalog_metrics, training_convergence
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
    catalog, usable = scores.catalog, scores.usable
    record = job_record(smk, seed=smk.params.seed)
    write_parquet(catalog, smk.output.catalog, record)

    # Metrics (paper 003 Secs. 3–5); the outlier search needs the simulation's truth.
    truth = pd.read_parquet(smk.input.truth) if smk.input.get("truth") else None
    heldout = None
    if smk.input.get("heldout_spectra"):  # a simulated set no model was trained on (issue 17)
        h_spectra = pd.read_parquet(smk.input.heldout_spectra)
        heldout = (
            h_spectra,
            score_spectra(h_spectra, models, device),
            pd.read_parquet(smk.input.heldout_truth),
        )
    metrics = catalog_metrics(
        spectra, scores, models, settings,
        seed=smk.params.seed, device=device, pca_components=cfg["pca_components"], truth=truth,
        heldout=heldout,
    )  # fmt: skip
    if smk.params.population:
        metrics["simulated_population"] = smk.params.population
    metrics["training_convergence"] = {
        survey: training_convergence(pd.read_parquet(path))
        for survey, path in zip(("galaxy_autoencoder", "star_autoencoder"), smk.input.histories, strict=True)
    }
    write_json(nan_to_null(metrics), smk.output.metrics, record)
    figure = outlier_gallery(
        spectra[usable].reset_index(drop=True),
        catalog.loc[usable].reset_index(drop=True),
        models.galaxy_ae,
        models.instrument,
        scores.data,
    )
    save_figure(figure, smk.output.gallery, record, dpi=90)
    log.info("metrics: %s", {k: v for k, v in metrics.items() if k != "outlier_recall"})
