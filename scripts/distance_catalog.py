"""Rule distance_catalog: the HATS catalog-level files over all distance partitions."""

from latentsky.io.hats import default_skymap_order, finalize_catalog
from latentsky.jobs import job_logging, job_record

smk = snakemake  # noqa: F821 - injected by Snakemake

with job_logging(smk) as log:
    written = finalize_catalog(
        smk.params.catalog_dir,
        "latentsky_distances",
        smk.params.partition_order,
        list(smk.input),
        job_record(smk),
        extra_properties={
            "default_columns": "source_id ra dec dist_mean dist_std dist_q16 dist_q50 dist_q84 flags"
        },
        # point_map.fits and skymap.fits, from which hats and lsdb build the catalog's MOC.
        skymap_order=default_skymap_order(smk.params.partition_order),
    )
    log.info("wrote %s", ", ".join(str(p) for p in written))
