"""Rule simulate_ogle_fields: simulated OGLE-III variables, their light curves, the Gaia sky around them, truth."""

from latentsky.jobs import job_logging, job_record
from latentsky.provenance.files import write_parquet
from latentsky.simulate.ogle import simulate_ogle_fields

smk = snakemake  # noqa: F821 - injected by Snakemake

with job_logging(smk) as log:
    sim = simulate_ogle_fields(smk.params.simulated, seed=smk.params.seed)
    record = job_record(smk, seed=smk.params.seed)
    for name in ("objects", "light_curves", "gaia", "truth", "reddening_map"):
        table = getattr(sim, name)
        write_parquet(table, smk.output[name], record)
        log.info("%s: %d rows", name, len(table))
