"""Rule prepare_desi_spectra: one row per target, normalised spectrum on spender's DESI grid, cuts as flags."""

from latentsky.desi_io import read_desi_coadd
from latentsky.jobs import job_logging, job_record
from latentsky.outputs import write_parquet

smk = snakemake  # noqa: F821 - injected by Snakemake

with job_logging(smk) as log:
    spectra = read_desi_coadd(
        smk.input.coadd, smk.input.redrock, spectype=smk.params.spectype, z_range=smk.params.z_range
    )
    write_parquet(spectra.table(), smk.output[0], job_record(smk))
    log.info(
        "%d targets, %d in the sample; flags: %s",
        len(spectra),
        spectra.selected.sum(),
        {n: spectra.flag_names().count(n) for n in set(spectra.flag_names())},
    )
