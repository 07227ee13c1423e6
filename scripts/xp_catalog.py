"""Rule xp_catalog: the latent catalog of every XP star (paper 001; spec A1.6), the Cannon beside it."""

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from latentsky.io.gaia_xp import read_xp_continuous
from latentsky.jobs import job_logging, job_record
from latentsky.provenance.files import write_parquet
from latentsky.xp.cannon import load_cannon
from latentsky.xp.catalog import (
    LABEL_COLUMNS,
    full_covariance_chi2_of_file,
    split_crossmatch,
    xp_catalog,
)
from latentsky.xp.svae import load_svae

smk = snakemake  # noqa: F821 - injected by Snakemake

with job_logging(smk) as log:
    model, settings, norm = load_svae(smk.input.model)
    cannon, _ = load_cannon(smk.input.cannon)
    tables = {}
    split = {}
    full_cov = {}
    for sample, path in zip(smk.params.samples, smk.input.tables, strict=True):
        table = read_xp_continuous(path)
        labels = None
        if sample == "crossmatch":
            present = [c for c in LABEL_COLUMNS.values() if c in pq.read_schema(path).names]
            labels = pd.read_parquet(path, columns=present)
            names = split_crossmatch(table, smk.params.split, smk.params.split_seed)
            split.update(zip(np.asarray(table.source_id).tolist(), names.tolist(), strict=True))
        tables[sample] = (table, labels)
        full_cov[sample] = full_covariance_chi2_of_file(path, model, norm, smk.params.missing_band)
    catalog = xp_catalog(
        tables,
        model,
        norm,
        missing_band=smk.params.missing_band,
        split=split,
        cannon=cannon,
        full_cov_chi2=full_cov,
    )
    log.info(
        "%d stars, %d with a latent; flagged without one: %s",
        len(catalog),
        int(catalog["has_latent"].sum()),
        catalog.loc[~catalog["has_latent"], "flag_names"].value_counts().to_dict(),
    )
    write_parquet(catalog, smk.output[0], job_record(smk))
