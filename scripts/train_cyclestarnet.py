"""Rule train_cyclestarnet: Cycle-StarNet on the unpaired synthetic (the emulator's spectra with the line mask)
and observed training stars, validated on the paired stars (paper 002 §3.1, App. B; spec B1.2–B1.4)."""

import numpy as np
import pandas as pd

from latentsky.cyclestarnet.domains import emulate, observed_arrays, standardised_domains
from latentsky.cyclestarnet.mask import mask_from_features
from latentsky.cyclestarnet.model import NetworkSettings
from latentsky.cyclestarnet.training import TrainingSettings, save_cyclestarnet, train_cyclestarnet
from latentsky.jobs import job_logging, job_record, use_job_threads
from latentsky.payne import load_payne
from latentsky.provenance.files import write_parquet
from latentsky.simulate.apogee import LABEL_NAMES
from latentsky.training import describe_device, resolve_device

smk = snakemake  # noqa: F821 - injected by Snakemake

with job_logging(smk) as log:
    use_job_threads(smk)
    emulator = load_payne(smk.input.emulator)
    stars = pd.read_parquet(smk.input.labels)
    mask = mask_from_features(pd.read_parquet(smk.input.line_mask), emulator.n_pixels)
    obs = observed_arrays(smk.input.observed)
    synth_labels = stars.loc[stars["split"] == "synth_train", list(LABEL_NAMES)].to_numpy()
    val_labels = stars.set_index("star_id").loc[obs["val"].star_id, list(LABEL_NAMES)].to_numpy()
    domains, scale = standardised_domains(
        emulate(emulator, synth_labels), obs["obs_train"], emulate(emulator, val_labels), obs["val"], mask
    )
    network = NetworkSettings(n_pixels=emulator.n_pixels, **smk.params.network)
    settings = TrainingSettings.from_config(smk.params.training)
    device = resolve_device(smk.params.device)
    record = job_record(smk, seed=smk.params.seed, device=describe_device(device))
    log.info(
        "%d synthetic + %d observed training spectra, %d paired validation; flux scale %s; %s; %s",
        len(domains.synth),
        len(domains.obs),
        len(domains.val_obs),
        scale,
        network,
        settings,
    )
    model, history = train_cyclestarnet(
        domains,
        network,
        settings,
        seed=smk.params.seed,
        device=device,
        resume_path=smk.params.resume,
        resume_record=record,
        progress=lambda it, row: log.info(
            "iteration %d: rec synth %.3g obs %.3g, cycle obs %.3g, gen %.3g/%.3g; val x_synthobs %.3g, zsh %.3f",
            it,
            row["rec_synth"],
            row["rec_obs"],
            row["cc_obs"],
            row["gen_synth"],
            row["gen_obs"],
            row["x_synthobs_val"],
            row["zsh"],
        ),
    )
    save_cyclestarnet(smk.output.model, model.cpu(), settings, scale, history, record)
    write_parquet(pd.DataFrame(history).astype(np.float64), smk.output.history, record)
