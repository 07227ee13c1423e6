"""Rule fetch_desi_healpix: one EDR HEALPix directory's coadd and Redrock files (paper 003 Sec. 2)."""

from latentsky.fetch.desi_edr import EdrPixel, fetch_healpix
from latentsky.jobs import job_logging

smk = snakemake  # noqa: F821 - injected by Snakemake

with job_logging(smk) as log:
    w = smk.wildcards
    pixel = EdrPixel(w.edr_survey, w.program, int(w.healpix))
    paths = fetch_healpix(pixel, smk.output.coadd, smk.output.redrock, smk.params.base_url)
    log.info("%s: %s", pixel.name, {k: str(v) for k, v in paths.items()})
