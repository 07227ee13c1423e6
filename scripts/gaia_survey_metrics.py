"""Rule gaia_survey_metrics: results/metrics/sources.json for the Gaia source table."""

from latentsky.distances.survey import survey_summary, truth_summary
from latentsky.io.gaia import read_partitions
from latentsky.io.gaia_columns import canonical_gaia
from latentsky.jobs import job_logging, job_record
from latentsky.provenance.files import write_json

smk = snakemake  # noqa: F821 - injected by Snakemake

with job_logging(smk) as log:
    observed = canonical_gaia(read_partitions(smk.input.observed), "source partitions")
    gaia = {**survey_summary(observed), "n_partitions": len(smk.input.observed)}
    if smk.input.truth:
        gaia["truth"] = truth_summary(observed, read_partitions(smk.input.truth))
    write_json({"gaia": gaia}, smk.output[0], job_record(smk))
    log.info("metrics: %s", gaia)
