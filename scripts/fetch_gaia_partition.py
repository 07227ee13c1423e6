"""Rule fetch_gaia_partition: one partition's source_id range from the Gaia archive, as the archive sends it."""

from latentsky.fetch.gaia_archive import fetch_bulk_partition, fetch_partition_tap
from latentsky.jobs import job_logging

smk = snakemake  # noqa: F821 - injected by Snakemake

with job_logging(smk) as log:
    archive = smk.params.archive
    pixel, order = int(smk.wildcards.pixel), smk.params.partition_order
    if archive["method"] == "bulk":
        result = fetch_bulk_partition(pixel, order, smk.output[0], base_url=archive["bulk_url"])
    else:
        result = fetch_partition_tap(pixel, order, smk.output[0], table=archive["tap_table"])
    log.info("fetched %s", result)
