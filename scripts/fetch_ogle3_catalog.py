"""Rules fetch_ogle3_catalog and fetch_ogle4_catalog: one OGLE-III CVS or OGLE-IV OCVS directory
({target}/{cls}) — objects and I-band light curves."""

from latentsky.fetch.ogle3 import fetch_ogle3_catalog
from latentsky.jobs import job_logging, job_record

smk = snakemake  # noqa: F821 - injected by Snakemake

with job_logging(smk) as log:
    archive = smk.params.archive
    survey = smk.params.survey
    result = fetch_ogle3_catalog(
        smk.wildcards.target,
        smk.wildcards.cls,
        smk.output.objects,
        smk.output.light_curves,
        survey=survey,
        base_url=archive["ogle4_base_url"] if survey == "ogle4" else archive["base_url"],
        light_curves=archive["light_curves"],
        record=job_record(smk),
    )
    log.info(
        "%s: %d objects, %d epochs; %d without a light curve, %d without a period",
        result.directory_url,
        result.n_objects,
        result.n_epochs,
        len(result.without_light_curve),
        len(result.without_period),
    )
