"""Rule xp_catalog_partition: the latent catalog of one HEALPix partition of XP stars (catalog preset), written
as a HATS partition file (paper 001; spec A5). One row per input star, positions from the input's ra/dec."""

from latentsky.io.hats import write_partition
from latentsky.jobs import job_logging, job_record
from latentsky.xp.catalog import partition_catalog
from latentsky.xp.svae import load_svae

smk = snakemake  # noqa: F821 - injected by Snakemake

with job_logging(smk) as log:
    model, _, norm = load_svae(smk.input.model)
    catalog = partition_catalog(smk.input.table, model, norm, smk.params.missing_band)
    write_partition(catalog, smk.params.catalog_dir, smk.params.order, smk.params.pixel, job_record(smk))
    log.info(
        "pixel %d (order %d): %d stars, %d with a latent",
        smk.params.pixel,
        smk.params.order,
        len(catalog),
        int(catalog["has_latent"].sum()),
    )
