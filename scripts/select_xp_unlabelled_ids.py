"""Rule select_xp_unlabelled_ids: the unlabelled sample's Gaia source_ids, the first n_unlabelled XP sources in
gaia_source's random_index order (spec §A4.2 point 4); the archive's answer is kept beside them."""

import pyarrow as pa

from latentsky.fetch.gaia_xp import fetch_random_xp_source_ids
from latentsky.jobs import job_logging, job_record
from latentsky.provenance.files import write_parquet

smk = snakemake  # noqa: F821 - injected by Snakemake

with job_logging(smk) as log:
    fetch = smk.params.fetch
    ids = fetch_random_xp_source_ids(
        fetch["n_unlabelled"], smk.output.answer, table=fetch["g_flux_table"], tap_url=fetch["gaia_url"]
    )
    write_parquet(pa.table({"source_id": pa.array(ids, pa.int64())}), smk.output.ids, job_record(smk))
    log.info("%d random XP source_ids from %s", len(ids), fetch["gaia_url"])
