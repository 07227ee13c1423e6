"""Rule plot_gaia_survey: CMD and dust-map figures of the simulated survey for the report."""

from latentsky.gaia_summary import read_partitions
from latentsky.jobs import job_logging, job_record
from latentsky.outputs import save_figure
from latentsky.survey_figures import cmd_figure, dust_map_figure

smk = snakemake  # noqa: F821 - injected by Snakemake

with job_logging(smk):
    record = job_record(smk)
    observed = read_partitions(smk.input.observed)
    truth = read_partitions(smk.input.truth)
    save_figure(cmd_figure(observed, truth), smk.output.cmd, record, dpi=110)
    save_figure(dust_map_figure(smk.input.dust), smk.output.dust, record, dpi=110)
