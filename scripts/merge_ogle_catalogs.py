"""Rule merge_ogle_catalogs: the fetched OGLE-III and OGLE-IV directories as one objects table and one
light-curve table."""

import pandas as pd

from latentsky.io.ogle import concat_ogle_objects, merge_light_curve_files
from latentsky.jobs import job_logging, job_record
from latentsky.provenance.files import write_parquet

smk = snakemake  # noqa: F821 - injected by Snakemake

with job_logging(smk) as log:
    objects = concat_ogle_objects(
        [pd.read_parquet(p) for p in smk.input.objects], names=list(smk.input.objects)
    )
    record = job_record(smk)
    write_parquet(objects, smk.output.objects, record)
    # Streamed, one row group at a time: the bulge LPVs alone are ~10⁸ epochs.
    n_epochs = merge_light_curve_files(list(smk.input.light_curves), smk.output.light_curves, record)
    log.info("%d objects, %d epochs from %d catalogs", len(objects), n_epochs, len(smk.input.objects))
