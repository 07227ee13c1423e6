"""Rule plot_gaia_survey: CMD figure of the simulated survey (truth and observed) for the report."""

from latentsky.distances.figures import cmd_figure
from latentsky.io.gaia import read_partitions
from latentsky.jobs import job_logging, job_record
from latentsky.provenance.files import save_figure

smk = snakemake  # noqa: F821 - injected by Snakemake

with job_logging(smk):
    observed = read_partitions(smk.input.observed)
    truth = read_partitions(smk.input.truth)
    save_figure(cmd_figure(observed, truth), smk.output[0], job_record(smk), dpi=110)
