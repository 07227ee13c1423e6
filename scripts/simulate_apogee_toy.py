"""Rule simulate_apogee_toy: the toy H-band synthesiser's line list, the Payne emulator's training spectra
(labels from a box 20 % wider than the stars', spec B2.2 point 1) and the label draws of both domains."""

import numpy as np
import pandas as pd
import pyarrow as pa

from latentsky.io.spectra import list_column
from latentsky.jobs import job_logging, job_record
from latentsky.provenance.files import write_parquet
from latentsky.simulate.apogee import LABEL_NAMES, make_line_list, sample_labels, synthesise, wavelength_grid

smk = snakemake  # noqa: F821 - injected by Snakemake

with job_logging(smk) as log:
    sim, seed = smk.params.simulated, smk.params.seed
    record = job_record(smk, seed=seed)
    grid = wavelength_grid(sim["n_pixels"])
    line_list = make_line_list(sim["line_list_seed"], grid)
    write_parquet(line_list, smk.output.line_list, record)

    # Emulator training and validation spectra, noiseless, from the widened label box.
    n_train, n_val = sim["n_emulator_train"], sim["n_emulator_val"]
    labels = sample_labels(n_train + n_val, int(np.random.default_rng([seed, 0]).integers(2**31)), widen=0.2)
    flux = synthesise(labels, line_list, grid)
    table = pa.Table.from_pandas(pd.DataFrame(labels, columns=list(LABEL_NAMES)), preserve_index=False)
    table = table.append_column("split", pa.array(["train"] * n_train + ["val"] * n_val))
    table = table.append_column("flux", list_column(flux))
    write_parquet(table, smk.output.emulator_set, record)

    # The domains' stars: unpaired training draws per domain, paired validation and test stars.
    sizes = {
        "synth_train": sim["n_train"],
        "obs_train": sim["n_train"],
        "val": sim["n_val"],
        "test": sim["n_test"],
    }
    frames = []
    for k, (split, n) in enumerate(sizes.items()):
        draws = sample_labels(n, int(np.random.default_rng([seed, k + 1]).integers(2**31)))
        frames.append(pd.DataFrame(draws, columns=list(LABEL_NAMES)).assign(split=split))
    stars = pd.concat(frames, ignore_index=True)
    stars.insert(0, "star_id", np.arange(len(stars), dtype=np.int64))
    write_parquet(stars, smk.output.labels, record)
    log.info(
        "%d lines on %d pixels (%.1f–%.1f Å); emulator set %d + %d; domain stars %s",
        len(line_list),
        len(grid),
        grid[0],
        grid[-1],
        n_train,
        n_val,
        sizes,
    )
