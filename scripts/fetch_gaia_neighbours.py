"""Rule fetch_gaia_neighbours: every Gaia DR2 (or DR3) source within the cross-match cone of each OGLE object."""

import pandas as pd

from latentsky.fetch.gaia_neighbours import fetch_gaia_neighbours
from latentsky.jobs import job_logging, job_record

smk = snakemake  # noqa: F821 - injected by Snakemake

with job_logging(smk) as log:
    archive = smk.params.archive
    objects = pd.read_parquet(smk.input.objects, columns=["ogle_id", "ra", "dec"])
    result = fetch_gaia_neighbours(
        objects,
        smk.output[0],
        radius_arcsec=smk.params.radius_arcsec,
        chunk_size=archive["upload_chunk_size"],
        tap_url=archive["gaia_tap_url"],
        release=smk.params.release,
        record=job_record(smk),
    )
    log.info(
        "%d OGLE–Gaia pairs, %d Gaia sources (jobs %s)", result.n_pairs, result.n_sources, result.job_ids
    )
