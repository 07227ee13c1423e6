"""Rule evaluate_pelsvae: Table 3, reconstruction against the class template, the RR Lyrae T_eff
sequence of Fig. 8, and Figs. 4–8 of paper 000."""

import numpy as np
import pandas as pd

from latentsky.io.markdown import markdown_table
from latentsky.jobs import job_logging, job_record, use_job_threads
from latentsky.pelsvae.data import rows_for_model
from latentsky.pelsvae.evaluation import (
    TABLE3_PAPER,
    reconstruction_scores,
    rrlyrae_sequence,
    sequence_correlations,
    sequence_grid,
    table3,
)
from latentsky.pelsvae.figures import (
    latent_pairs_figure,
    reconstruction_figure,
    rrlyrae_sequence_figure,
    validation_loss_figure,
)
from latentsky.pelsvae.model import encode, reconstruct
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

    reconstruction, recon_curves = {}, {}
    for name, (model, scaler, _, _) in models.items():
        rows = rows_for_model(test, name)
        recon_curves[name] = (rows, reconstruct(model, rows, scaler, device=device)[0])
        reconstruction[name] = reconstruction_scores(rows, recon_curves[name][1], rows_for_model(train, name))

    # Fig. 8: generated RR Lyrae along T_eff with cVAE-P and each of its regressors.
    model, scaler, _, _ = models["cvae_p"]
    regs = regressors["cvae_p"]
    grid = sequence_grid(train, "RRLYR", cfg["figures"]["rrlyrae_teff_steps"])
    sequence = rrlyrae_sequence(
        model,
        scaler,
        {name: (lambda *a, name=name: regs.predict(name, *a)) for name in regs.regressors},
        grid["teff"],
        abs_g=grid["abs_g"],
        period=grid["period"],
        n_samples=cfg["figures"]["rrlyrae_samples"],
        rng=np.random.default_rng(smk.params.seed),
    )
    write_parquet(sequence, smk.output.rrlyrae_sequence, record)

    table = table3(regressors)
    write_parquet(table, smk.output.table3, record)
    with atomic_output(smk.output.table3_md) as tmp:
        tmp.write_text(markdown_table(table.round(3)))

    histories = {name: extra["history"] for name, (_, _, _, extra) in models.items()}
    metrics = {
        "regression_rmse": {name: dict(r.rmse) for name, r in regressors.items()},
        "regression_rmse_paper": TABLE3_PAPER,
        "regression_rows": {
            name: {"train": r.n_train_rows, "val": r.n_val_rows} for name, r in regressors.items()
        },
        "reconstruction": reconstruction,
        "final_val_loss": {name: float(h["val_loss"].iloc[-1]) for name, h in histories.items() if len(h)},
        "epochs": {name: int(len(h)) for name, h in histories.items()},
        "rrlyrae_teff_sequence": {
            "grid": {
                "teff": list(map(float, grid["teff"])),
                "abs_g": grid["abs_g"],
                "period": grid["period"],
            },
            "spearman_with_teff": sequence_correlations(sequence),
            "training_data_spearman_with_teff": grid["data_spearman"],
        },
    }
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
