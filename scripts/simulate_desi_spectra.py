"""Rule simulate_desi_spectra: BGS (with injected outliers) and MWS spectra as DESI coadd + Redrock files."""

import numpy as np

from latentsky.jobs import job_logging, job_record
from latentsky.provenance.files import write_parquet
from latentsky.simulate.desi import simulate_desi, write_desi_files

smk = snakemake  # noqa: F821 - injected by Snakemake

with job_logging(smk) as log:
    sim = simulate_desi(smk.params.simulated, smk.params.seed)
    record = job_record(smk, seed=smk.params.seed)
    survey = sim.targets["survey"].to_numpy()
    for name, coadd, redrock in zip(smk.params.surveys, smk.output.coadd, smk.output.redrock, strict=True):
        write_desi_files(sim, np.flatnonzero(survey == name), coadd, redrock, record)
    write_parquet(sim.targets, smk.output.truth, record)
    log.info("targets: %s", sim.targets.groupby(["survey", "kind"]).size().to_dict())
