"""Rule plot_dust_map: the dust map as the distance model reads it, for the report."""

from latentsky.distances.figures import dust_map_figure
from latentsky.jobs import job_logging, job_record
from latentsky.provenance.files import save_figure

smk = snakemake  # noqa: F821 - injected by Snakemake

with job_logging(smk):
    save_figure(dust_map_figure(smk.input[0]), smk.output[0], job_record(smk), dpi=110)
