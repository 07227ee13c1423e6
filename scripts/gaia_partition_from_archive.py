"""Rule gaia_partition_from_archive: canonical columns of the stars whose *position* lies in the pixel.

Fetches are by source_id range; a few stars near a pixel edge have positions in the neighbouring pixel
(see latentsky.io.healpix.neighbours_in), so this job reads its own range and its neighbours' and keeps the
stars positioned in its pixel — every star lands in exactly one partition, as HATS requires.

DR2's RUWE is computed from the along-scan chi-square with ESA's u0 tables when the rule is given them
(sources.gaia.archive.u0_table); without them each fetched range is normalised by its own empirical u0
and every such row carries ruwe_empirical_u0 (flagged in the distance catalog).
"""

import pandas as pd

from latentsky.io.gaia import read_gaia_table
from latentsky.io.gaia_columns import read_u0_table
from latentsky.io.healpix import radec_to_healpix
from latentsky.jobs import job_logging, job_record
from latentsky.provenance.files import write_parquet

smk = snakemake  # noqa: F821 - injected by Snakemake

with job_logging(smk) as log:
    pixel, order = int(smk.wildcards.pixel), smk.params.partition_order
    u0_table = read_u0_table(list(smk.input.u0)) if smk.input.u0 else None
    if u0_table is not None:
        log.info(
            "RUWE of %s rows: ESA's u0 tables %s", smk.params.release.upper(), ", ".join(u0_table.sources)
        )
    elif smk.params.release == "dr2":
        log.warning(
            "RUWE of DR2 rows: no u0 table (sources.gaia.archive.u0_table is null); an empirical u0 per "
            "fetched range, rows flagged ruwe_empirical_u0"
        )
    kept = []
    for path in smk.input.raw:
        table = read_gaia_table(path, u0_table=u0_table)
        here = radec_to_healpix(table["ra"].to_numpy(), table["dec"].to_numpy(), order) == pixel
        kept.append(table[here])
        log.info(
            "%s: %d rows, %d positioned in pixel %d (RUWE %s)",
            path,
            len(table),
            int(here.sum()),
            pixel,
            table.attrs["ruwe_method"],
        )
    gaia = pd.concat(kept, ignore_index=True).sort_values("source_id", ignore_index=True)
    write_parquet(
        gaia, smk.output[0], job_record(smk, extra={"healpix_order": order, "healpix_pixel": pixel})
    )
