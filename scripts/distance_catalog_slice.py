"""Rule distance_catalog_slice: distance posteriors for rows [start, stop) of one HEALPix partition, for a
partition too large for one job (distances.catalog_resources.max_rows_per_job)."""

from latentsky.distances.pipeline import catalog_job_rows
from latentsky.jobs import job_logging, job_record, use_job_threads
from latentsky.provenance.files import write_parquet
from latentsky.training import describe_device, resolve_device

smk = snakemake  # noqa: F821 - injected by Snakemake

with job_logging(smk) as log:
    use_job_threads(smk)
    cfg = smk.params.distances
    start, stop = int(smk.wildcards.start), int(smk.wildcards.stop)
    device = resolve_device(cfg["device"])
    label = f"Npix={smk.wildcards.pixel} rows {start}–{stop}"
    catalog = catalog_job_rows(smk, (start, stop), device, label)
    write_parquet(
        catalog, smk.output[0], job_record(smk, seed=smk.params.seed, device=describe_device(device))
    )
    log.info("rows %d–%d: %d with a posterior", start, stop, int(catalog["has_posterior"].sum()))
