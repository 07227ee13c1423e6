"""Rule train_payne_emulator: The Payne (Ting et al. 2019) on the toy's spectra, or a published emulator from a
local file (payne.pretrained: The Payne's .npz or a Cycle-StarNet PAYNE.pth.tar) — never downloaded."""

import pandas as pd

from latentsky.io.spectra import read_list_column
from latentsky.jobs import job_logging, job_record, use_job_threads
from latentsky.payne import (
    PayneSettings,
    emulator_error,
    load_cycle_sn_payne,
    load_payne_npz,
    save_payne,
    train_payne,
)
from latentsky.provenance.files import write_parquet
from latentsky.simulate.apogee import LABEL_NAMES
from latentsky.training import describe_device, resolve_device

smk = snakemake  # noqa: F821 - injected by Snakemake

with job_logging(smk) as log:
    use_job_threads(smk)
    cfg = smk.params.payne
    table = pd.read_parquet(smk.input.emulator_set, columns=[*LABEL_NAMES, "split"])
    flux = read_list_column(smk.input.emulator_set, "flux")
    labels = table[list(LABEL_NAMES)].to_numpy()
    train, val = (table["split"] == "train").to_numpy(), (table["split"] == "val").to_numpy()
    device = resolve_device(cfg["device"])
    record = job_record(smk, seed=smk.params.seed, device=describe_device(device))
    settings = PayneSettings.from_config({k: v for k, v in cfg.items() if k != "device"})
    if cfg["pretrained"]:
        path = smk.input.pretrained[0]
        model = (load_payne_npz if str(path).endswith(".npz") else load_cycle_sn_payne)(path)
        if model.n_labels != labels.shape[1] or model.n_pixels != flux.shape[1]:
            raise ValueError(
                f"{path}: an emulator of {model.n_labels} labels and {model.n_pixels} pixels; this experiment has "
                f"{labels.shape[1]} labels and {flux.shape[1]} pixels"
            )
        history = []
        log.info("published emulator from %s", path)
    else:
        model, history = train_payne(
            labels[train],
            flux[train],
            labels[val],
            flux[val],
            settings,
            seed=smk.params.seed,
            device=device,
            resume_path=smk.params.resume,
            resume_record=record,
            progress=lambda step, row: log.info(
                "step %d: train %.4g, val %.4g (lr %.2g)", step, row["train_loss"], row["val_loss"], row["lr"]
            ),
        )
    error = emulator_error(model.cpu(), labels[val], flux[val])
    log.info(
        "emulator error on the %d validation spectra: median %.4f %%, p95 %.4f %%",
        val.sum(),
        100 * error["median"],
        100 * error["p95"],
    )
    save_payne(model, smk.output.model, record, settings, history)
    write_parquet(
        pd.DataFrame(history, columns=["step", "lr", "train_loss", "val_loss", "best_val_loss"]),
        smk.output.history,
        record,
    )
