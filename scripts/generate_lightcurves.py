"""Rule generate_lightcurves: new light curves for given class, T_eff, M_G and period at any cadence
(paper 000 Sec. 4.3)."""

import numpy as np

from latentsky.jobs import job_logging, job_record
from latentsky.pelsvae.generation import generate_lightcurves, read_requests, read_times_table, request_times
from latentsky.pelsvae.regression import load_regressors
from latentsky.pelsvae.training import load_pelsvae
from latentsky.provenance.files import write_parquet
from latentsky.training import describe_device, resolve_device

smk = snakemake  # noqa: F821 - injected by Snakemake

with job_logging(smk) as log:
    cfg = smk.params.generation
    device = resolve_device(smk.params.device)
    rng = np.random.default_rng(smk.params.seed)
    model, scaler, _, _ = load_pelsvae(smk.input.model, str(device))
    regressors = load_regressors(smk.input.regressors)
    requests = read_requests(cfg["requests"])
    table = read_times_table(smk.input.times) if smk.input.get("times") else None
    times = request_times(requests, rng, cadence=cfg["cadence"], times_table=table)
    curves = generate_lightcurves(
        model,
        scaler,
        regressors,
        cfg["regressor"],
        requests,
        times,
        rng,
        device=str(device),
        latent_sampling=cfg["latent_sampling"],
    )
    record = job_record(smk, seed=smk.params.seed, device=describe_device(device))
    write_parquet(curves, smk.output[0], record)
    log.info("%d light curves for %d requests", len(curves), len(requests))
