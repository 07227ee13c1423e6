"""Rule pelsvae_regression: physics → latent regressors of paper 000 Sec. 4.2 with Table 3's RMSE."""

import numpy as np
import pandas as pd

from latentsky.jobs import job_logging, job_record
from latentsky.pelsvae.data import has_physics
from latentsky.pelsvae.regression import fit_regressors, save_regressors
from latentsky.pelsvae.training import load_pelsvae
from latentsky.training import resolve_device

smk = snakemake  # noqa: F821 - injected by Snakemake

with job_logging(smk) as log:
    cfg = smk.params.pelsvae
    reg = cfg["regression"]
    seed = smk.params.seed
    device = str(resolve_device(cfg["device"]))
    model, scaler, _, _ = load_pelsvae(smk.input.model, device)
    train = pd.read_parquet(smk.input.train)
    val = pd.read_parquet(smk.input.val)
    train = train[has_physics(train)]
    if reg["max_curves"] and len(train) > reg["max_curves"]:
        # A seeded sample keeps paper-scale fits (60,000 curves × 100 repeats) within one node's memory.
        keep = np.random.default_rng([seed, 0]).choice(len(train), reg["max_curves"], replace=False)
        train = train.iloc[np.sort(keep)]
    regs = fit_regressors(
        smk.wildcards.model,
        model,
        scaler,
        train,
        val,
        seed=seed,
        names=reg["regressors"],
        n_repeats=reg["n_repeats"],
        n_latent_samples=reg["n_latent_samples"],
        n_jobs=smk.threads,
        device=device,
    )
    record = job_record(smk, seed=seed, extra={"rmse": regs.rmse, "n_train_rows": regs.n_train_rows})
    save_regressors(smk.output.regressors, regs, record)
    log.info("validation RMSE %s on %d rows", regs.rmse, regs.n_val_rows)
