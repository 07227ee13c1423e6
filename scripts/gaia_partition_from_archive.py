"""Rule gaia_partition_from_archive: canonical columns of the stars whose *position* lies in the pixel.

Fetches are by source_id range; a few stars near a pixel edge have positions in the neighbouring pixel
(see latentsky.io.healpix.neighbours_in), so this job reads its own range and its neighbours' and keeps the
stars positioned in its pixel — every star lands in exactly one partition, as HATS requires.
"""

import pandas as pd

from latentsky.io.gaia import read_gaia_table
from latentsky.io.healpix import radec_to_healpix
from latentsky.jobs import job_logging, job_record
from latentsky.provenance.files import write_parquet

smk = snakemake  # noqa: F821 - injected by Snakemake

with job_logging(smk) as log:
    pixel, order = int(smk.wildcards.pixel), smk.params.partition_order
    kept = []
    for path in smk.input:
        table = read_gaia_table(path)
        here = radec_to_healpix(table["ra"].to_numpy(), table["dec"].to_numpy(), order) == pixel
        kept.append(table[here])
        log.info("%s: %d rows, %d positioned in pixel %d", path, len(table), int(here.sum()), pixel)
    gaia = pd.concat(kept, ignore_index=True).sort_values("source_id", ignore_index=True)
    write_parquet(
        gaia, smk.output[0], job_record(smk, extra={"healpix_order": order, "healpix_pixel": pixel})
    )
