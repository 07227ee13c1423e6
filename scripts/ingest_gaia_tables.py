"""Rule ingest_gaia_tables: user-supplied Gaia tables → canonical columns, one Parquet per HEALPix partition."""

from latentsky.io.gaia import concat_gaia_tables, read_gaia_table
from latentsky.io.healpix import radec_to_healpix
from latentsky.jobs import job_logging, job_record
from latentsky.provenance.files import write_parquet

smk = snakemake  # noqa: F821 - injected by Snakemake

with job_logging(smk) as log:
    tables = [read_gaia_table(path, u0_table=smk.params.u0_table) for path in smk.input.tables]
    for path, table in zip(smk.input.tables, tables, strict=True):
        log.info(
            "%s: %d rows (%s, RUWE %s)", path, len(table), table.attrs["format"], table.attrs["ruwe_method"]
        )
    gaia = concat_gaia_tables(tables, list(smk.input.tables))
    # Partition by position, as HATS requires of the catalogs built from these partitions.
    pixel_of_star = radec_to_healpix(
        gaia["ra"].to_numpy(), gaia["dec"].to_numpy(), smk.params.partition_order
    )
    record = job_record(smk)
    for pixel, path in enumerate(smk.output.observed):
        rows = pixel_of_star == pixel
        extra = {"healpix_order": smk.params.partition_order, "healpix_pixel": pixel}
        write_parquet(gaia[rows], path, {**record, "extra": extra})
    log.info("%d stars in %d non-empty partitions", len(gaia), len(set(pixel_of_star.tolist())))
