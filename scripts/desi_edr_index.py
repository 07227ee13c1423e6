"""Checkpoint desi_edr_index: the EDR survey/programme/HEALPix directories to fetch (desi.edr in the config):
the configured pixels, or every pixel the archive's indexes list."""

from latentsky.fetch.desi_edr import EdrPixel, list_healpix
from latentsky.jobs import job_logging, job_record
from latentsky.provenance.files import write_json

smk = snakemake  # noqa: F821 - injected by Snakemake

with job_logging(smk) as log:
    edr = smk.params.edr
    pixels = []
    for survey in edr["surveys"]:
        if edr["healpix"]:
            pixels += [EdrPixel(survey, edr["program"], int(p)) for p in edr["healpix"]]
        else:
            pixels += list_healpix(survey, edr["program"], edr["base_url"])
        log.info("%s/%s: %d pixels so far", survey, edr["program"], len(pixels))
    rows = [{"survey": p.survey, "program": p.program, "healpix": p.healpix} for p in pixels]
    write_json({"base_url": edr["base_url"], "pixels": rows}, smk.output[0], job_record(smk))
