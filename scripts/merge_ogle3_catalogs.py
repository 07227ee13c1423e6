"""Rule merge_ogle3_catalogs: the fetched OGLE-III directories as one objects table and one light-curve table."""

import pandas as pd

from latentsky.io.ogle import concat_ogle_catalogs
from latentsky.jobs import job_logging, job_record
from latentsky.provenance.files import write_parquet

smk = snakemake  # noqa: F821 - injected by Snakemake

with job_logging(smk) as log:
    objects, light_curves = concat_ogle_catalogs(
        [pd.read_parquet(p) for p in smk.input.objects],
        [pd.read_parquet(p) for p in smk.input.light_curves],
        names=list(smk.input.objects),
    )
    record = job_record(smk)
    write_parquet(objects, smk.output.objects, record)
    write_parquet(light_curves, smk.output.light_curves, record)
    log.info(
        "%d objects, %d epochs from %d catalogs", len(objects), len(light_curves), len(smk.input.objects)
    )
