"""Rule fetch_apogee_allstar: APOGEE DR17 allStar(Lite) from the SDSS Science Archive Server (spec §A4.2)."""

from latentsky.fetch.gaia_xp import fetch_apogee_allstar
from latentsky.jobs import job_logging

smk = snakemake  # noqa: F821 - injected by Snakemake

with job_logging(smk) as log:
    fetch_apogee_allstar(smk.output[0], smk.params.url)
    log.info("allStar from %s → %s", smk.params.url, smk.output[0])
