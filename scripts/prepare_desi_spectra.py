"""Rule prepare_desi_spectra: one row per target, normalised spectrum on spender's DESI grid, cuts as flags."""

from latentsky.io.desi import read_desi_coadds
from latentsky.jobs import job_logging, job_record
from latentsky.provenance.files import write_parquet

smk = snakemake  # noqa: F821 - injected by Snakemake

with job_logging(smk) as log:
    spectra = read_desi_coadds(
        list(zip(smk.input.coadd, smk.input.redrock, strict=True)),
        spectype=smk.params.spectype,
        z_range=smk.params.z_range,
        target_class=smk.params.target_class,
    )
    write_parquet(spectra.table(), smk.output[0], job_record(smk))
    log.info(
        "%d targets from %d files, %d in the sample; flags: %s",
        len(spectra),
        len(smk.input.coadd),
        spectra.selected.sum(),
        {n: spectra.flag_names().count(n) for n in set(spectra.flag_names())},
    )
