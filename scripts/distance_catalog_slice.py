"""Rule distance_catalog_slice: distance posteriors for rows [start, stop) of one HEALPix partition, for a
partition too large for one job (distances.catalog_resources.max_rows_per_job)."""

from tqdm import tqdm

from latentsky.distances.pipeline import partition_rows_catalog
from latentsky.jobs import job_logging, job_record, use_job_threads
from latentsky.provenance.files import write_parquet
from latentsky.training import describe_device, resolve_device

smk = snakemake  # noqa: F821 - injected by Snakemake

with job_logging(smk) as log:
    use_job_threads(smk)
    cfg = smk.params.distances
    start, stop = int(smk.wildcards.start), int(smk.wildcards.stop)
    device = resolve_device(cfg["device"])
    with tqdm(
        total=stop - start, desc=f"Npix={smk.wildcards.pixel} rows {start}–{stop}", mininterval=5
    ) as bar:
        catalog = partition_rows_catalog(
            smk.input.source,
            (start, stop),
            smk.input.model,
            cfg,
            smk.params.seed,
            device,
            smk.input.get("dust"),
            smk.input.get("prior_table"),
            bar.update,
        )
    write_parquet(
        catalog, smk.output[0], job_record(smk, seed=smk.params.seed, device=describe_device(device))
    )
    log.info("rows %d–%d: %d with a posterior", start, stop, int(catalog["has_posterior"].sum()))
