"""Rule simulate_desi_heldout: held-out BGS spectra (own seed, own TARGETIDs) as a DESI coadd + Redrock pair,
and their truth; scored by bgs_catalog with the trained models, never trained on (issue 17)."""

import numpy as np

from latentsky.jobs import job_logging, job_record
from latentsky.provenance.files import write_parquet
from latentsky.simulate.desi import FIRST_TARGET_ID, HELDOUT_TARGET_OFFSET, simulate_desi, write_desi_files

smk = snakemake  # noqa: F821 - injected by Snakemake

with job_logging(smk) as log:
    cfg = smk.params.simulated
    heldout = {
        "n_bgs": cfg["n_eval"],
        "n_mws": 0,
        "outlier_fraction": cfg["eval_outlier_fraction"],
        "population": cfg["population"],
    }
    sim = simulate_desi(heldout, smk.params.seed, first_target_id=FIRST_TARGET_ID + HELDOUT_TARGET_OFFSET)
    record = job_record(smk, seed=smk.params.seed)
    write_desi_files(sim, np.arange(len(sim.targets)), smk.output.coadd, smk.output.redrock, record)
    write_parquet(sim.targets, smk.output.truth, record)
    log.info("held-out targets: %s", sim.targets.groupby("kind").size().to_dict())
