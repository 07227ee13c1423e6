"""Rule distance_catalog_margin: the HATS margin cache of the distance catalog, beside it."""

from latentsky.io.hats import write_margin_catalog
from latentsky.jobs import job_logging, job_record

smk = snakemake  # noqa: F821 - injected by Snakemake

with job_logging(smk) as log:
    written = write_margin_catalog(
        smk.params.catalog_dir,
        smk.params.margin_dir,
        smk.params.threshold_arcsec,
        job_record(smk),
    )
    partitions = [p for p in written if p.name.startswith("Npix=")]
    log.info(
        "%g arcsec margin of %s: %d partitions; wrote %s",
        smk.params.threshold_arcsec,
        smk.params.catalog_dir,
        len(partitions),
        ", ".join(str(p) for p in written if p not in partitions),
    )
