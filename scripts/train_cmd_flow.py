"""Rule train_cmd_flow: the CMD normalizing flow of paper 004, resumable from its last checkpoint."""

from tqdm import tqdm

from latentsky.distances.figures import loss_curve_figure
from latentsky.distances.inputs import dust_source
from latentsky.distances.pipeline import train_cmd_flow
from latentsky.distances.training import training_settings
from latentsky.io.gaia import read_partitions
from latentsky.io.gaia_columns import canonical_gaia
from latentsky.jobs import job_logging, job_record, use_job_threads
from latentsky.provenance.files import parquet_num_rows, save_checkpoint, save_figure, write_parquet
from latentsky.provenance.record import sha256_file
from latentsky.training import describe_device, resolve_device

smk = snakemake  # noqa: F821 - injected by Snakemake

with job_logging(smk) as log:
    use_job_threads(smk)
    cfg = smk.params.distances
    seed = smk.params.seed
    device = resolve_device(cfg["device"])
    # With a cap on training stars, read a seeded sample of each partition (twice the cap, before the
    # training cuts) rather than the whole catalog; train_cmd_flow applies the exact cap after the cuts.
    total = sum(parquet_num_rows(p) for p in smk.input.observed)
    cap = cfg["max_train_stars"]
    fraction = min(1.0, 2.0 * cap / total) if cap and total else None
    gaia = canonical_gaia(read_partitions(smk.input.observed, sample_fraction=fraction, seed=seed), "sources")
    dust = dust_source(cfg["dust"], smk.input.get("dust"))
    record = job_record(smk, seed=seed, device=describe_device(device))
    total = training_settings(cfg).total_steps
    with tqdm(total=total, desc="train_cmd_flow", mininterval=5) as bar:
        result = train_cmd_flow(
            gaia,
            dust,
            cfg,
            seed,
            device,
            input_digests=[sha256_file(p) for p in smk.input],
            resume_path=smk.params.resume,
            resume_record=record,
            progress=lambda step, loss: bar.update(step - bar.n),
        )
    state = result.model_state()
    extra = {k: state[k] for k in ("n_train_stars", "removed_by_cut", "final_step", "noise_model_final_loss")}
    extra["resumed_from_step"] = result.resumed_from_step
    save_checkpoint(state, smk.output.model, {**record, "extra": extra})
    history = result.history()
    write_parquet(history, smk.output.history, record)
    steps_per_round = result.trainer.settings.steps_per_round
    save_figure(loss_curve_figure(history, steps_per_round), smk.output.loss_figure, record, dpi=110)
    log.info("final loss %.4f after %d steps", history["loss"].iloc[-1], result.trainer.step)
