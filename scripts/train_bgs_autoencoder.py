"""Rule train_bgs_autoencoder: SPENDER on BGS galaxies or MWS stars (paper 003 Sec. 3.1, Sec. 5)."""

import pandas as pd
from tqdm import tqdm

from latentsky.bgs.autoencoder import SpenderSettings, save_autoencoder, table_tensors, train_autoencoder
from latentsky.bgs.catalog import split_targets
from latentsky.jobs import job_logging, job_record, use_job_threads
from latentsky.provenance.files import write_parquet
from latentsky.training import describe_device, resolve_device

smk = snakemake  # noqa: F821 - injected by Snakemake

with job_logging(smk) as log:
    use_job_threads(smk)
    cfg = smk.params.bgs
    seed = smk.params.seed
    device = resolve_device(cfg["device"])
    settings = SpenderSettings.from_dict(cfg["autoencoder"])
    spectra = pd.read_parquet(smk.input.spectra)
    sample = spectra[spectra["flags"] == 0].reset_index(drop=True)
    split = split_targets(sample["target_id"].to_numpy(), cfg["split"], seed)
    tensors = {
        name: table_tensors(sample[split == name], settings.bin_factor, device) for name in ("train", "val")
    }
    log.info(
        "%d of %d spectra in the sample; train %d, val %d",
        len(sample),
        len(spectra),
        len(tensors["train"]),
        len(tensors["val"]),
    )
    record = job_record(smk, seed=seed, device=describe_device(device))
    total = settings.epochs_phase1 + settings.epochs_phase2
    with tqdm(total=total, desc=f"train_bgs_autoencoder {smk.wildcards.survey}") as bar:
        model, _, history = train_autoencoder(
            tensors["train"],
            tensors["val"],
            settings,
            seed=seed,
            device=device,
            progress=lambda epoch, phase, loss: bar.update(epoch - bar.n),
            resume_path=smk.params.resume,
            resume_record=record,
        )
    save_autoencoder(smk.output.model, model, settings, history, record)
    write_parquet(pd.DataFrame(history), smk.output.history, record)
    splits = spectra[["target_id"]].assign(split="not_in_sample")
    splits.loc[spectra["flags"].to_numpy() == 0, "split"] = split
    write_parquet(splits, smk.output.split, record)
    log.info("final validation fidelity %.4g", history[-1]["val_fidelity"] if history else float("nan"))
