"""Rule simulate_xp_survey: the labelled cross-match and the unlabelled XP sample with known truth (spec A2)."""

from latentsky.jobs import job_logging, job_record
from latentsky.provenance.files import write_parquet
from latentsky.simulate.xp import simulate_xp_survey

smk = snakemake  # noqa: F821 - injected by Snakemake

with job_logging(smk) as log:
    cfg = smk.params.simulated
    survey = simulate_xp_survey(
        cfg["n_crossmatch"],
        cfg["n_unlabelled"],
        seed=smk.params.seed,
        anomaly_fraction=cfg["anomaly_fraction"],
        crossmatch_anomaly_fraction=cfg["crossmatch_anomaly_fraction"],
        correlations=cfg["correlations"],
    )
    record = job_record(smk, seed=smk.params.seed)
    for sample, table, truth in zip(smk.params.samples, smk.output.tables, smk.output.truth, strict=True):
        write_parquet(survey[sample]["observed"], table, record)
        write_parquet(survey[sample]["truth"], truth, record)
        kinds = survey[sample]["truth"]["anomaly_kind"].value_counts().to_dict()
        log.info("%s: %d stars; anomaly kinds %s", sample, len(survey[sample]["observed"]), kinds)
