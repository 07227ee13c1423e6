"""Rule train_cmd_flow: the CMD normalizing flow of paper 004, resumable from its last checkpoint."""

from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from latentsky.checkpoints import load_checkpoint, save_checkpoint
from latentsky.cmd_flow import flow_state
from latentsky.cmd_training import (
    MIN_TRAINING_STARS,
    CMDFlowTrainer,
    resume_from,
    run_key,
    trainer_checkpoint_state,
    training_settings,
)
from latentsky.distance_catalog import (
    canonical_gaia,
    describe_device,
    dust_source,
    resolve_device,
    stars_from_gaia,
    training_mask,
)
from latentsky.distance_figures import loss_curve_figure
from latentsky.gaia_summary import read_partitions
from latentsky.jobs import job_logging, job_record, use_job_threads
from latentsky.outputs import save_figure, write_parquet
from latentsky.provenance import sha256_file

smk = snakemake  # noqa: F821 - injected by Snakemake

with job_logging(smk) as log:
    use_job_threads(smk)
    cfg = smk.params.distances
    seed = smk.params.seed
    device = resolve_device(cfg["device"])
    gaia = canonical_gaia(read_partitions(smk.input.observed), "source partitions")
    stars = stars_from_gaia(gaia, cfg["parallax_offset_mas"])
    dust = dust_source(cfg["dust"], smk.input.get("dust"))
    keep, removed = training_mask(gaia, stars, dust, cfg["ruwe_limit"], cfg["train_min_dec_deg"])
    train_idx = np.flatnonzero(keep)
    if cfg["max_train_stars"] and len(train_idx) > cfg["max_train_stars"]:
        rng = np.random.default_rng([seed, 0])
        train_idx = np.sort(rng.choice(train_idx, cfg["max_train_stars"], replace=False))
    log.info("training stars: %d of %d; removed by cut: %s", len(train_idx), len(stars), removed)
    if len(train_idx) < MIN_TRAINING_STARS:
        raise ValueError(
            f"only {len(train_idx)} stars pass the training cuts (removed: {removed}); "
            f"the flow needs at least {MIN_TRAINING_STARS}"
        )

    settings = training_settings(cfg)
    key = run_key(settings, seed, [sha256_file(p) for p in smk.input])
    trainer = CMDFlowTrainer(stars.subset(train_idx), dust, settings, seed=seed, device=device)
    resume_path = Path(smk.params.resume)
    if resume_path.is_file():
        payload, _ = load_checkpoint(resume_path, map_location=str(device))
        if resume_from(trainer, payload, key):
            log.info("resumed from %s at step %d", resume_path, trainer.step)
        else:
            log.info("ignoring %s: it belongs to another run (settings, seed or inputs differ)", resume_path)

    record = job_record(smk, seed=seed, device=describe_device(device))

    def checkpoint(state):
        save_checkpoint(trainer_checkpoint_state(trainer, state, key), resume_path, record)

    with tqdm(total=settings.total_steps, initial=trainer.step, desc="train_cmd_flow", mininterval=5) as bar:
        trainer.train(on_checkpoint=checkpoint, progress=lambda step, loss: bar.update(1))

    extra = {"n_train_stars": int(len(train_idx)), "removed_by_cut": removed, "final_step": trainer.step}
    save_checkpoint(
        {"model": flow_state(trainer.model), "training": settings.as_dict(), **extra},
        smk.output.model,
        {**record, "extra": extra},
    )
    history = pd.DataFrame(
        {
            "step": np.arange(1, len(trainer.losses) + 1, dtype=np.int64),
            "round": np.arange(len(trainer.losses), dtype=np.int64) // settings.steps_per_round,
            "loss": np.asarray(trainer.losses),
        }
    )
    write_parquet(history, smk.output.history, record)
    save_figure(loss_curve_figure(history, settings.steps_per_round), smk.output.loss_figure, record, dpi=110)
    log.info("final loss %.4f after %d steps", trainer.losses[-1], trainer.step)
