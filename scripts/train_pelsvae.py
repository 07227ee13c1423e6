"""Rule train_pelsvae: cVAE or cVAE-P of paper 000 Sec. 3, resumable from its last checkpoint."""

import math

import pandas as pd
from tqdm import tqdm

from latentsky.jobs import job_logging, job_record, use_job_threads
from latentsky.pelsvae.config import network_config
from latentsky.pelsvae.data import rows_for_model
from latentsky.pelsvae.training import save_pelsvae, train_pelsvae
from latentsky.provenance.files import write_parquet
from latentsky.training import describe_device, resolve_device

smk = snakemake  # noqa: F821 - injected by Snakemake

with job_logging(smk) as log:
    use_job_threads(smk)
    cfg = smk.params.pelsvae
    name = smk.wildcards.model
    seed = smk.params.seed
    device = resolve_device(cfg["device"])
    config = network_config(cfg["network"], name, cfg["model_overrides"].get(name))
    train = rows_for_model(pd.read_parquet(smk.input.train), name)
    val = rows_for_model(pd.read_parquet(smk.input.val), name)
    log.info("%s: %d training and %d validation curves", name, len(train), len(val))
    record = job_record(smk, seed=seed, device=describe_device(device))
    total = config.epochs * math.ceil(len(train) / config.batch_size)
    with tqdm(total=total, desc=f"train_pelsvae {name}", mininterval=5) as bar:
        result = train_pelsvae(
            train,
            val,
            config,
            seed=seed,
            device=device,
            resume_path=smk.params.resume,
            checkpoint_every=cfg["checkpoint_every"],
            resume_record=record,
            progress=lambda step, epoch, loss: bar.update(step - bar.n),
        )
    extra = {
        "n_train_curves": len(train),
        "n_val_curves": len(val),
        "final_step": result.final_step,
        "resumed_from_step": result.resumed_from_step,
    }
    save_pelsvae(smk.output.model, result, {**record, "extra": extra})
    write_parquet(result.history.assign(model=name), smk.output.history, record)
    last = result.history.iloc[-1] if len(result.history) else None
    if last is not None:
        log.info("final validation loss %.4g after %d steps", last["val_loss"], result.final_step)
