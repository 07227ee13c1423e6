"""Rule fetch_xp_part: one part (source_id modulo n_parts) of a sample's Gaia DR3 XP spectra through the
archive's datalink, with G flux from gaia_source (spec §A4.2 points 2–3). The cross-match asks for every
APOGEE DR17 star's Gaia source; the unlabelled sample for the ids of rule select_xp_unlabelled_ids."""

import numpy as np
import pandas as pd

from latentsky.fetch.gaia_xp import fetch_xp_datalink, read_apogee_allstar
from latentsky.jobs import job_logging, job_record
from latentsky.xp.sources import crossmatch_source_ids, ids_of_part

smk = snakemake  # noqa: F821 - injected by Snakemake

with job_logging(smk) as log:
    fetch = smk.params.fetch
    if smk.wildcards.sample == "crossmatch":
        ids = crossmatch_source_ids(read_apogee_allstar(smk.input.ids))
    else:
        ids = pd.read_parquet(smk.input.ids, columns=["source_id"])["source_id"].to_numpy(dtype=np.int64)
    part = ids_of_part(ids, int(smk.wildcards.part), fetch["n_parts"])
    log.info("part %s: %d of %d %s ids", smk.wildcards.part, len(part), len(ids), smk.wildcards.sample)
    result = fetch_xp_datalink(
        part,
        smk.output[0],
        chunk_size=fetch["chunk_size"],
        data_release=fetch["data_release"],
        data_format=fetch["format"],
        g_flux_table=fetch["g_flux_table"],
        tap_url=fetch["gaia_url"],
        provenance=job_record(smk),
    )
    log.info(
        "%d spectra of %d ids (%d without, flagged missing_from_archive), %d G fluxes",
        result.n_returned,
        result.n_requested,
        len(result.missing_source_ids),
        result.n_g_flux,
    )
