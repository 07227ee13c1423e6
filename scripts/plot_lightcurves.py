"""Rule plot_lightcurves: paper 000 Fig. 1 panels per class for the report."""

import pandas as pd

from latentsky.io.ogle import read_light_curves
from latentsky.jobs import job_logging, job_record
from latentsky.provenance.files import save_figure
from latentsky.variables.figures import fig1_objects, fig1_panels

smk = snakemake  # noqa: F821 - injected by Snakemake

with job_logging(smk):
    train = pd.read_parquet(smk.input.train)
    figure = fig1_panels(
        pd.read_parquet(smk.input.objects),
        # The raw curves of the one object per class the figure shows.
        read_light_curves(smk.input.light_curves, fig1_objects(train).values()),
        train,
    )
    save_figure(figure, smk.output[0], job_record(smk), dpi=90)
