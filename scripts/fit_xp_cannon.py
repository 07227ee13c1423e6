"""Rule fit_xp_cannon: the quadratic Cannon on the sVAE's training stars and their catalog labels (paper 001
Sec. 3), in the same standardised coefficients."""

import numpy as np

from latentsky.io.gaia_xp import read_xp_continuous
from latentsky.jobs import job_logging, job_record
from latentsky.xp.cannon import fit_cannon, save_cannon
from latentsky.xp.catalog import model_inputs, read_catalog_labels, split_crossmatch, training_normalisation

smk = snakemake  # noqa: F821 - injected by Snakemake

with job_logging(smk) as log:
    cfg = smk.params.cannon
    table = read_xp_continuous(smk.input.crossmatch)
    split = split_crossmatch(table, smk.params.split, smk.params.split_seed)
    norm = training_normalisation(table, split, smk.params.missing_band)
    inputs = model_inputs(table, norm, smk.params.missing_band)
    labels = read_catalog_labels(smk.input.crossmatch, cfg["labels"])
    rows = (split == "train") & inputs.usable & np.all(np.isfinite(labels), axis=1)
    log.info(
        "Cannon on %d training stars with finite %s (of %d in the training split)",
        int(rows.sum()),
        cfg["labels"],
        int((split == "train").sum()),
    )
    model = fit_cannon(
        labels[rows],
        inputs.x[rows],
        inputs.sigma[rows],
        label_names=tuple(cfg["labels"]),
        order=cfg["order"],
        scatter=cfg["scatter"],
        weights_mask=inputs.weight[rows] > 0,
    )
    log.info("population scatter s_k (standardised units): median %.3g", float(np.median(model.scatter)))
    save_cannon(smk.output.model, model, norm.to_dict(), job_record(smk))
