"""Rule evaluate_pelsvae: Table 3, reconstruction against the class template, the RR Lyrae T_eff
sequence of Fig. 8, and Figs. 4–8 of paper 000."""

import pandas as pd

from latentsky.io.markdown import markdown_table
from latentsky.jobs import job_logging, job_record, use_job_threads
from latentsky.pelsvae.evaluation import evaluation_metrics, reconstruct_test_sets, table3, teff_sequence
from latentsky.pelsvae.figures import (
    latent_pairs_figure,
    reconstruction_figure,
    rrlyrae_sequence_figure,
    validation_loss_figure,
)
from latentsky.pelsvae.model import encode
from latentsky.pelsvae.regression import load_regressors
from latentsky.pelsvae.training import load_pelsvae
from latentsky.provenance.files import atomic_output, nan_to_null, save_figure, write_json, write_parquet
from latentsky.training import resolve_device

smk = snakemake  # noqa: F821 - injected by Snakemake

with job_logging(smk) as log:
    use_job_threads(smk)
    cfg = smk.params.pelsvae
    device = str(resolve_device(cfg["device"]))
    names = list(smk.params.models)
    train = pd.read_parquet(smk.input.train)
    test = pd.read_parquet(smk.input.test)
    models = {n: load_pelsvae(p, device) for n, p in zip(names, smk.input.models, strict=True)}
    regressors = {n: load_regressors(p) for n, p in zip(names, smk.input.regressors, strict=True)}
    record = job_record(smk, seed=smk.params.seed)

    reconstruction, recon_curves = reconstruct_test_sets(models, test, train, device)
    # Fig. 8: generated RR Lyrae along T_eff with cVAE-P and each of its regressors.
    model, scaler, _, _ = models["cvae_p"]
    fig8 = cfg["figures"]
    grid, sequence = teff_sequence(
        model, scaler, regressors["cvae_p"], train,
        n_steps=fig8["rrlyrae_teff_steps"], n_samples=fig8["rrlyrae_samples"], seed=smk.params.seed,
    )  # fmt: skip
    write_parquet(sequence, smk.output.rrlyrae_sequence, record)

    table = table3(regressors)
    write_parquet(table, smk.output.table3, record)
    with atomic_output(smk.output.table3_md) as tmp:
        tmp.write_text(markdown_table(table.round(3)))

    histories = {name: extra["history"] for name, (_, _, _, extra) in models.items()}
    metrics = evaluation_metrics(regressors, reconstruction, histories, grid, sequence)
    write_json(nan_to_null(metrics), smk.output.metrics, record)

    save_figure(validation_loss_figure(histories), smk.output.loss, record, dpi=100)
    for name, key in (("cvae", "recon_cvae"), ("cvae_p", "recon_cvae_p")):
        rows, curves = recon_curves[name]
        title = f"{name}: test-set light curves (grey) and reconstructions (blue)"
        save_figure(reconstruction_figure(rows, curves, title), smk.output[key], record, dpi=90)
    cvae, cvae_scaler, _, _ = models["cvae"]
    real_test = test.reset_index(drop=True)
    mu = encode(cvae, real_test, cvae_scaler, device=device)
    figure = latent_pairs_figure(mu, real_test["var_class"], "cvae: latent means μ of the test set")
    save_figure(figure, smk.output.latents, record, dpi=90)
    save_figure(rrlyrae_sequence_figure(sequence), smk.output.rrlyrae, record, dpi=100)
    log.info("regression RMSE %s; reconstruction %s", metrics["regression_rmse"], reconstruction)
