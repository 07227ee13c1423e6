"""Rule train_bgs_flow: the MAF over an autoencoder's latents (paper 003 Sec. 3.2)."""

import numpy as np
import pandas as pd

from latentsky.bgs.autoencoder import SpenderSettings, encode_spectra, load_autoencoder, table_tensors
from latentsky.bgs.flow import save_flow, train_flow
from latentsky.jobs import job_logging, job_record, use_job_threads
from latentsky.training import resolve_device

smk = snakemake  # noqa: F821 - injected by Snakemake

with job_logging(smk) as log:
    use_job_threads(smk)
    cfg = smk.params.bgs
    settings = SpenderSettings.from_dict(cfg["autoencoder"])
    device = str(resolve_device(cfg["device"]))
    model, _ = load_autoencoder(smk.input.model, settings.bin_factor, device)
    spectra = pd.read_parquet(smk.input.spectra).merge(pd.read_parquet(smk.input.split), on="target_id")
    latents = {}
    for name in ("train", "val"):
        part = spectra[spectra["split"] == name]
        latents[name] = encode_spectra(model, table_tensors(part, settings.bin_factor, device))
    f = cfg["flow"]
    flow, history = train_flow(
        latents["train"], latents["val"], seed=smk.params.seed, epochs=f["epochs"], batch_size=f["batch_size"],
        lr=f["lr"], hidden_features=f["hidden_features"], num_transforms=f["num_transforms"],
    )  # fmt: skip
    save_flow(
        smk.output.flow, flow, latents["train"], history, job_record(smk, seed=smk.params.seed),
        hidden_features=f["hidden_features"], num_transforms=f["num_transforms"],
    )  # fmt: skip
    log.info("flow: train −log p %.3f, val %.3f", history[-1]["train_nll"], history[-1]["val_nll"])
    if not np.isfinite(history[-1]["train_nll"]):
        raise FloatingPointError(f"{smk.output.flow}: the flow's training likelihood is not finite")
