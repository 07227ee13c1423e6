"""Rule distance_catalog_partition: distance posteriors for every star of one HEALPix partition.

A partition within ``distances.catalog_resources.max_rows_per_job`` is computed here; a larger one arrives
as the slices rule distance_catalog_slice computed side by side, which this job joins. Either way the
partition file is the same (a star's posterior depends on that star alone).
"""

import pandas as pd

from latentsky.distances.pipeline import catalog_job_rows
from latentsky.io.hats import write_partition
from latentsky.jobs import job_logging, job_record, use_job_threads
from latentsky.provenance.files import parquet_num_rows
from latentsky.training import describe_device, resolve_device

smk = snakemake  # noqa: F821 - injected by Snakemake

with job_logging(smk) as log:
    use_job_threads(smk)
    cfg = smk.params.distances
    pixel = int(smk.wildcards.pixel)
    if int(smk.wildcards.dir) != 10000 * (pixel // 10000):
        raise ValueError(
            f"{smk.output[0]}: Dir={smk.wildcards.dir} does not match Npix={pixel} (HATS layout)"
        )
    slices = list(smk.input.get("slices", []))
    device = resolve_device(cfg["device"])
    if slices:
        # The slices are temporary: the record lists what they were computed from (model, source, dust,
        # prior), which an audit can check, and the row ranges and seeds of the slice jobs.
        catalog = pd.concat([pd.read_parquet(p) for p in slices], ignore_index=True)
        expected = parquet_num_rows(smk.input.source)
        if len(catalog) != expected:
            raise ValueError(
                f"{smk.input.source}: {expected} rows, its {len(slices)} slices hold {len(catalog)}; "
                "rerun them (the partition changed after the slices were computed?)"
            )
        extra = {"slices": [p.rsplit("/", 1)[1].removesuffix(".parquet") for p in slices]}
        record = job_record(smk, device=describe_device(device), extra=extra, leave_out=slices)
    else:
        catalog = catalog_job_rows(smk, None, device, f"Npix={pixel}")
        record = job_record(smk, seed=smk.params.seed, device=describe_device(device))
    written = write_partition(catalog, smk.params.catalog_dir, smk.params.partition_order, pixel, record)
    if str(written) != smk.output[0]:
        raise RuntimeError(f"HATS placed partition {pixel} at {written}, the rule declares {smk.output[0]}")
    n_post = int(catalog["has_posterior"].sum())
    log.info("partition %d: %d stars, %d with a posterior", pixel, len(catalog), n_post)
