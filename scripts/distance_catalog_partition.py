"""Rule distance_catalog_partition: distance posteriors for every star of one HEALPix partition."""

import numpy as np
from tqdm import tqdm

from latentsky.checkpoints import load_checkpoint
from latentsky.cmd_flow import build_flow_from_state
from latentsky.distance_catalog import (
    canonical_gaia,
    catalog_frame,
    describe_device,
    dust_source,
    posterior_settings,
    resolve_device,
    stars_from_gaia,
)
from latentsky.distance_posterior import distance_posteriors
from latentsky.gaia_summary import read_partitions
from latentsky.hats_catalog import write_partition
from latentsky.jobs import job_logging, job_record, use_job_threads

smk = snakemake  # noqa: F821 - injected by Snakemake

with job_logging(smk) as log:
    use_job_threads(smk)
    cfg = smk.params.distances
    pixel = int(smk.wildcards.pixel)
    if int(smk.wildcards.dir) != 10000 * (pixel // 10000):
        raise ValueError(
            f"{smk.output[0]}: Dir={smk.wildcards.dir} does not match Npix={pixel} (HATS layout)"
        )
    device = resolve_device(cfg["device"])
    state, _ = load_checkpoint(smk.input.model, map_location=str(device))
    flow = build_flow_from_state(state["model"]).to(device)
    gaia = canonical_gaia(read_partitions([smk.input.source]), smk.input.source)
    if len(gaia) == 0:
        raise ValueError(
            f"{smk.input.source}: partition {pixel} holds no stars; there is no catalog to write"
        )
    stars = stars_from_gaia(gaia, cfg["parallax_offset_mas"])
    dust = dust_source(cfg["dust"], smk.input.get("dust"))
    with tqdm(total=len(stars), desc=f"Npix={pixel}", mininterval=5) as bar:
        posterior = distance_posteriors(
            stars,
            flow,
            dust,
            posterior_settings(cfg["posterior"]),
            np.random.default_rng(smk.params.seed),
            ruwe=gaia["ruwe"].to_numpy(dtype=float, na_value=np.nan),
            ruwe_limit=cfg["ruwe_limit"],
            device=device,
            progress=bar.update,
        )
    catalog = catalog_frame(gaia, posterior)
    record = job_record(smk, seed=smk.params.seed, device=describe_device(device))
    written = write_partition(catalog, smk.params.catalog_dir, smk.params.partition_order, pixel, record)
    if str(written) != smk.output[0]:
        raise RuntimeError(f"HATS placed partition {pixel} at {written}, the rule declares {smk.output[0]}")
    log.info(
        "partition %d: %d stars, %d with a posterior",
        pixel,
        len(catalog),
        int(catalog["has_posterior"].sum()),
    )
