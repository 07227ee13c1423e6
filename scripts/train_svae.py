"""Rule train_svae: the scatter VAE on the cross-match's training stars (paper 001 Sec. 2.3), one preset."""

import pandas as pd

from latentsky.io.gaia_xp import read_xp_continuous
from latentsky.jobs import job_logging, job_record, use_job_threads
from latentsky.provenance.files import write_parquet
from latentsky.training import describe_device, resolve_device
from latentsky.xp.catalog import model_inputs, split_crossmatch, training_normalisation
from latentsky.xp.svae import SvaeSettings, save_svae, train_svae

smk = snakemake  # noqa: F821 - injected by Snakemake

with job_logging(smk) as log:
    use_job_threads(smk)
    settings = SvaeSettings.from_dict(smk.params.settings, f"svae.presets.{smk.params.preset}")
    device = resolve_device(smk.params.device)
    table = read_xp_continuous(smk.input.crossmatch)
    split = split_crossmatch(table, smk.params.split, smk.params.split_seed)
    norm = training_normalisation(table, split, smk.params.missing_band)
    inputs = model_inputs(table, norm, smk.params.missing_band)
    sets = {
        name: tuple(a[(split == name) & inputs.usable] for a in (inputs.x, inputs.sigma, inputs.weight))
        for name in ("train", "val")
    }
    log.info(
        "%d cross-match stars, %d usable; train %d, val %d; preset %s: %s",
        len(split),
        int(inputs.usable.sum()),
        len(sets["train"][0]),
        len(sets["val"][0]),
        smk.params.preset,
        settings,
    )
    record = job_record(smk, seed=smk.params.seed, device=describe_device(device))
    model, history = train_svae(
        sets["train"],
        sets["val"],
        settings,
        seed=smk.params.seed,
        device=device,
        resume_path=smk.params.resume,
        resume_record=record,
        progress=lambda epoch, row: log.info(
            "epoch %d: train %.4g (χ² %.4g, P %.4g, KL %.4g), val %.4g",
            epoch,
            row["train_total"],
            row["train_chi2"],
            row["train_penalty"],
            row["train_kl"],
            row["val_total"],
        ),
    )
    save_svae(smk.output.model, model, settings, norm, history, record)
    write_parquet(pd.DataFrame(history).assign(preset=smk.params.preset), smk.output.history, record)
