"""Rule xp_catalog_hats: the HATS catalog-level files over every XP latent partition."""

from latentsky.io.hats import default_skymap_order, finalize_catalog
from latentsky.jobs import job_logging, job_record

smk = snakemake  # noqa: F821 - injected by Snakemake

with job_logging(smk) as log:
    written = finalize_catalog(
        smk.params.catalog_dir,
        "latentsky_xp_latents",
        smk.params.order,
        list(smk.input),
        job_record(smk),
        extra_properties={"default_columns": "source_id ra dec has_latent z_mu anomaly_score flags"},
        skymap_order=default_skymap_order(smk.params.order),
    )
    log.info("wrote %s", ", ".join(str(p) for p in written))
