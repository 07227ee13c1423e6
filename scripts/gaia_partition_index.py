"""Checkpoint gaia_partition_index: rows per source partition, so catalogs are made for non-empty pixels."""

from latentsky.jobs import job_logging, job_record
from latentsky.provenance.files import parquet_num_rows, write_json

smk = snakemake  # noqa: F821 - injected by Snakemake

with job_logging(smk) as log:
    rows = {}
    for path in smk.input:
        # Paths end in Npix=<pixel>.parquet (rules/sources.smk).
        pixel = int(path.rsplit("Npix=", 1)[1].removesuffix(".parquet"))
        rows[str(pixel)] = parquet_num_rows(path)
    index = {"order": smk.params.partition_order, "rows": rows, "n_stars": sum(rows.values())}
    write_json(index, smk.output[0], job_record(smk))
    log.info("%d stars in %d non-empty partitions", index["n_stars"], sum(n > 0 for n in rows.values()))
