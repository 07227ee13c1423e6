"""Rule gaia_survey_metrics: results/metrics/sources.json for the simulated Gaia survey."""

from latentsky.gaia_summary import read_partitions, survey_summary, truth_summary
from latentsky.jobs import job_logging, job_record
from latentsky.outputs import write_json

smk = snakemake  # noqa: F821 - injected by Snakemake

with job_logging(smk) as log:
    observed = read_partitions(smk.input.observed)
    truth = read_partitions(smk.input.truth)
    metrics = {
        "gaia": {
            **survey_summary(observed),
            "n_partitions": len(smk.input.observed),
            "truth": truth_summary(observed, truth),
        }
    }
    write_json(metrics, smk.output[0], job_record(smk))
    log.info("metrics: %s", metrics)
