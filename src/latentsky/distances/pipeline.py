"""Train the CMD flow on a Gaia table and catalogue a Gaia table: the two steps of paper 004.

Shared by the Snakemake scripts (``train_cmd_flow``, ``distance_catalog_partition``) and by
``latentsky distances train|catalog`` for a user's own table, so both give the same answer for the same
inputs and settings. Settings are the ``distances`` config block (config/schema.yaml).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from latentsky.distances.dust import DustSource
from latentsky.distances.flow import CMDFlow, build_flow_from_state, flow_state
from latentsky.distances.inputs import (
    calibration_flags,
    catalog_frame,
    dust_source,
    posterior_settings,
    stars_from_gaia,
    training_mask,
)
from latentsky.distances.noise import (
    NoiseModelSettings,
    NoisyCMDFlow,
    build_noise_model_from_state,
    noise_model_state,
    train_noise_model,
)
from latentsky.distances.parallax import parallax_correction
from latentsky.distances.posterior import distance_posteriors
from latentsky.distances.training import (
    MIN_TRAINING_STARS,
    CMDFlowTrainer,
    TrainerState,
    resume_from,
    run_key,
    trainer_resume_state,
    training_settings,
)
from latentsky.io.gaia import read_partitions
from latentsky.io.gaia_columns import canonical_gaia
from latentsky.provenance.files import load_checkpoint, parquet_num_rows, save_checkpoint

log = logging.getLogger(__name__)


@dataclass
class TrainingResult:
    trainer: CMDFlowTrainer
    n_train_stars: int
    removed_by_cut: dict[str, int]
    resumed_from_step: int
    noise_model: NoisyCMDFlow | None = None
    noise_model_losses: tuple[float, ...] = ()

    def history(self) -> pd.DataFrame:
        """Loss per optimiser step, with the round it belongs to."""
        losses = np.asarray(self.trainer.losses)
        steps = np.arange(1, len(losses) + 1, dtype=np.int64)
        return pd.DataFrame(
            {"step": steps, "round": (steps - 1) // self.trainer.settings.steps_per_round, "loss": losses}
        )

    def model_state(self) -> dict[str, Any]:
        """Payload of the final model checkpoint (see :func:`load_cmd_flow`)."""
        noise = self.noise_model
        return {
            "model": flow_state(self.trainer.model),
            "noise_model": noise_model_state(noise) if noise is not None else None,
            "noise_model_final_loss": self.noise_model_losses[-1] if self.noise_model_losses else None,
            "training": self.trainer.settings.as_dict(),
            "n_train_stars": self.n_train_stars,
            "removed_by_cut": self.removed_by_cut,
            "final_step": self.trainer.step,
        }


def train_cmd_flow(
    gaia: pd.DataFrame,
    dust: DustSource,
    distances: Mapping[str, Any],
    seed: int,
    device: torch.device,
    *,
    input_digests: list[str],
    resume_path: str | Path | None = None,
    resume_record: Mapping[str, Any] | None = None,
    progress: Callable[[int, float], None] | None = None,
) -> TrainingResult:
    """Select training stars with the paper's cuts and train, resuming from ``resume_path`` if it holds
    a checkpoint of the same run (same settings, seed and ``input_digests``); checkpoints go there."""
    correction = parallax_correction(gaia, distances)
    stars = stars_from_gaia(gaia, correction.offset_mas)
    keep, removed = training_mask(gaia, stars, dust, distances["ruwe_limit"], distances["train_min_dec_deg"])
    train_idx = np.flatnonzero(keep)
    cap = distances.get("max_train_stars", 0)
    if cap and len(train_idx) > cap:
        train_idx = np.sort(np.random.default_rng([seed, 0]).choice(train_idx, cap, replace=False))
    log.info("training stars: %d of %d; removed by cut: %s", len(train_idx), len(stars), removed)
    if len(train_idx) < MIN_TRAINING_STARS:
        raise ValueError(
            f"only {len(train_idx)} stars pass the training cuts (removed: {removed}); "
            f"the flow needs at least {MIN_TRAINING_STARS}"
        )
    settings = training_settings(dict(distances))
    key = run_key(settings, seed, input_digests)
    trainer = CMDFlowTrainer(stars.subset(train_idx), dust, settings, seed=seed, device=device)
    start = 0
    if resume_path is not None and Path(resume_path).is_file():
        payload, _ = load_checkpoint(resume_path, map_location=str(device))
        if resume_from(trainer, payload, key):
            start = trainer.step
            log.info("resumed from %s at step %d", resume_path, start)
        else:
            log.info("ignoring %s: it belongs to another run (settings, seed or inputs differ)", resume_path)

    def on_resume_point(state: TrainerState) -> None:
        if resume_path is not None:
            save_checkpoint(trainer_resume_state(trainer, state, key), resume_path, resume_record or {})

    trainer.train(on_resume_point=on_resume_point, progress=progress)
    result = TrainingResult(trainer, int(len(train_idx)), removed, start)
    noise_settings = NoiseModelSettings(**dict(distances.get("noise_model", {})))
    if noise_settings.steps > 0:
        # Distilled after the CMD flow (a few minutes at most); a run killed here redoes only this part.
        model, losses = train_noise_model(
            trainer.model, stars.phot_err[train_idx], noise_settings, seed, device
        )
        result.noise_model, result.noise_model_losses = model, tuple(losses)
    return result


def load_cmd_flow(path: str | Path, device: torch.device) -> CMDFlow | NoisyCMDFlow:
    """The trained CMD model from a checkpoint written by the training rule or CLI: a
    :class:`NoisyCMDFlow` (the CMD flow is its ``cmd``) when the checkpoint carries a noise model."""
    state, _ = load_checkpoint(path, map_location=str(device))
    if state.get("noise_model"):
        return build_noise_model_from_state(state["noise_model"], state["model"]).to(device)
    return build_flow_from_state(state["model"]).to(device)


def posterior_catalog(
    gaia: pd.DataFrame,
    flow: CMDFlow,
    dust: DustSource,
    distances: Mapping[str, Any],
    seed: int,
    device: torch.device,
    progress: Callable[[int], None] | None = None,
    prior_table: str | None = None,
) -> pd.DataFrame:
    """One catalog row per star of ``gaia`` (see :func:`latentsky.distances.inputs.catalog_frame`), with the
    parallax correction applied to each (``parallax_offset``) and the flags of the calibrations it fell
    back from (:func:`latentsky.distances.inputs.calibration_flags`)."""
    correction = parallax_correction(gaia, distances)
    stars = stars_from_gaia(gaia, correction.offset_mas)
    posterior = distance_posteriors(
        stars,
        flow,
        dust,
        posterior_settings(distances["posterior"], prior_table),
        np.random.default_rng(seed),
        ruwe=gaia["ruwe"].to_numpy(dtype=float, na_value=np.nan),
        ruwe_limit=distances["ruwe_limit"],
        device=device,
        progress=progress,
    )
    posterior["flags"] = np.asarray(posterior["flags"]) | calibration_flags(gaia, correction)
    return catalog_frame(gaia, posterior, correction.offset_mas)


def partition_rows_catalog(
    source: str | Path,
    rows: tuple[int, int] | None,
    model: str | Path,
    distances: Mapping[str, Any],
    seed: int,
    device: torch.device,
    dust_map: str | None = None,
    prior_table: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> pd.DataFrame:
    """The catalog rows of one source partition, or of its rows [start, stop) (one job's slice of a
    partition too large for one job: ``distances.catalog_resources.max_rows_per_job``).

    The grid posterior of a star depends on that star alone, so a partition computed in slices equals
    the partition computed whole."""
    gaia = canonical_gaia(read_partitions([source]), str(source))
    if rows is not None:
        start, stop = rows
        if not 0 <= start < stop <= len(gaia):
            raise ValueError(
                f"{source}: rows {start}–{stop} asked for, the partition holds {len(gaia)} (stale partition "
                "index? rerun the gaia_partition_index checkpoint)"
            )
        gaia = gaia.iloc[start:stop].reset_index(drop=True)
    if len(gaia) == 0:
        raise ValueError(f"{source}: the partition holds no stars; there is no catalog to write")
    flow = load_cmd_flow(model, device)
    dust = dust_source(distances["dust"], dust_map)
    return posterior_catalog(gaia, flow, dust, distances, seed, device, progress, prior_table)


def catalog_job_rows(
    smk: Any, rows: tuple[int, int] | None, device: torch.device, label: str
) -> pd.DataFrame:
    """:func:`partition_rows_catalog` with a Snakemake job's inputs and params (the partition and slice
    rules share it), its progress on a tqdm bar named ``label``."""
    total = parquet_num_rows(smk.input.source) if rows is None else rows[1] - rows[0]
    with tqdm(total=total, desc=label, mininterval=5) as bar:
        return partition_rows_catalog(
            smk.input.source,
            rows,
            smk.input.model,
            smk.params.distances,
            smk.params.seed,
            device,
            smk.input.get("dust"),
            smk.input.get("prior_table"),
            bar.update,
        )
