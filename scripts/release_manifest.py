"""Rule release_manifest: sha256, size and row count of every released file."""

from latentsky.jobs import job_logging, job_record
from latentsky.provenance.manifest import write_manifest

smk = snakemake  # noqa: F821 - injected by Snakemake

with job_logging(smk) as log:
    table = write_manifest(smk.input, smk.output.manifest, smk.output.sha256, job_record(smk))
    log.info("released %d files, %d bytes", table.num_rows, sum(table["size"].to_pylist()))
