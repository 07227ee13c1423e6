"""Rule prepare_xp_sources (xp.kind file): a user's XP tables in the project's Parquet layout, the cross-match
with its APOGEE DR17 labels joined by Gaia source_id (spec A4.2). One row per input star: a star without an
allStar row keeps NaN labels (the Cannon skips it; the sVAE does not need labels)."""

import pyarrow as pa

from latentsky.fetch.gaia_xp import read_apogee_allstar
from latentsky.io.gaia_xp import read_xp_continuous, xp_table_to_arrow
from latentsky.jobs import job_logging, job_record
from latentsky.provenance.files import write_parquet
from latentsky.xp.sources import append_allstar_labels

smk = snakemake  # noqa: F821 - injected by Snakemake

with job_logging(smk) as log:
    # The archive's correlations are kept (the evaluation and the catalog's full-covariance χ² use them); they
    # are unpacked one input table at a time (48 kB a star) and stored packed again (12 kB).
    parts = []
    for path in smk.input.tables:
        table = read_xp_continuous(path, with_correlations="if_present")
        parts.append(xp_table_to_arrow(table))
        log.info("%s: %d stars, correlations %s", path, len(table.source_id), table.correlations is not None)
        del table
    arrow = pa.concat_tables(parts)
    if smk.input.allstar:
        arrow = append_allstar_labels(arrow, read_apogee_allstar(smk.input.allstar[0]))
        n_labelled = arrow.num_rows - arrow.column("APOGEE_ID").null_count
        log.info("%d of %d stars have an allStar row", n_labelled, arrow.num_rows)
    log.info("%d stars from %d table(s)", arrow.num_rows, len(smk.input.tables))
    write_parquet(arrow, smk.output[0], job_record(smk))
