"""Rule xp_sources_from_parts: a sample's fetched XP parts in one table, the cross-match with its APOGEE DR17
labels joined by Gaia source_id (spec §A4.2). Streamed a batch of rows at a time."""

from latentsky.fetch.gaia_xp import read_apogee_allstar
from latentsky.jobs import job_logging, job_record
from latentsky.xp.sources import merge_xp_parts

smk = snakemake  # noqa: F821 - injected by Snakemake

with job_logging(smk) as log:
    allstar = read_apogee_allstar(smk.input.allstar[0]) if smk.input.allstar else None
    n = merge_xp_parts(smk.input.parts, smk.output[0], job_record(smk), allstar=allstar)
    log.info("%d %s stars from %d parts", n, smk.wildcards.sample, len(smk.input.parts))
