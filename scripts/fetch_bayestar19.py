"""Rule fetch_bayestar19: the real Bayestar19 map (Green et al. 2019), by dustmaps' own fetch."""

from latentsky.fetch.bayestar import fetch_bayestar
from latentsky.jobs import job_logging

smk = snakemake  # noqa: F821 - injected by Snakemake

with job_logging(smk) as log:
    path = fetch_bayestar(smk.output[0], version="bayestar2019")
    log.info("Bayestar19 map at %s", path)
