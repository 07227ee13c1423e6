"""Rule cyclestarnet_domains: the line mask — the authors' make_mask on the emulator at the reference giant,
a third of each element's strong features (spec B2.2 point 2) — and the observed domain of the experiment
(M1: missing lines + noise; M2: plus the instrumental gap), with the noiseless truth of the paired stars."""

import numpy as np
import pandas as pd
import pyarrow as pa

from latentsky.cyclestarnet.domains import emulate, observed_domain
from latentsky.cyclestarnet.mask import build_line_mask, find_line_features
from latentsky.io.spectra import list_column
from latentsky.jobs import job_logging, job_record
from latentsky.payne import load_payne
from latentsky.provenance.files import write_parquet
from latentsky.simulate.apogee import ELEMENTS, LABEL_NAMES, REFERENCE_LABELS, wavelength_grid

smk = snakemake  # noqa: F821 - injected by Snakemake

with job_logging(smk) as log:
    sim, seed = smk.params.simulated, smk.params.seed
    record = job_record(smk, seed=seed)
    grid = wavelength_grid(sim["n_pixels"])
    line_list = pd.read_parquet(smk.input.line_list)
    emulator = load_payne(smk.input.emulator)
    features = find_line_features(
        lambda y: emulate(emulator, y), REFERENCE_LABELS, LABEL_NAMES, ELEMENTS, wavelength=grid
    )
    strong, mask = build_line_mask(features, sim["mask_fraction"], seed=int(seed % 2**31))
    write_parquet(strong.reset_index(drop=True), smk.output.line_mask, record)
    counts = strong.groupby("element")["masked"].agg(["size", "sum"])
    log.info(
        "line mask: %d of %d strong features, %d pixels (%.1f %%); per element (strong, masked): %s",
        int(strong["masked"].sum()),
        len(strong),
        int(mask.sum()),
        100 * mask.mean(),
        {e: (int(r["size"]), int(r["sum"])) for e, r in counts.iterrows()},
    )

    stars = pd.read_parquet(smk.input.labels)
    observed = stars[stars["split"] != "synth_train"].reset_index(drop=True)
    parts = []
    for k, split in enumerate(("obs_train", "val", "test")):
        rows = observed[observed["split"] == split]
        domain = observed_domain(
            rows[list(LABEL_NAMES)].to_numpy(),
            experiment=sim["experiment"],
            observed_source=sim["observed_source"],
            emulator=emulator,
            line_list=line_list,
            grid=grid,
            seed=int(np.random.default_rng([seed, k]).integers(2**31)),
            snr_range=sim["snr_range"],
            bad_pixel_fraction=sim["bad_pixel_fraction"],
        )
        table = pa.Table.from_pandas(
            pd.concat([rows[["star_id", "split"]].reset_index(drop=True), domain.truth], axis=1),
            preserve_index=False,
        )
        table = table.append_column("flux", list_column(domain.flux))
        table = table.append_column("error", list_column(domain.error))
        table = table.append_column("weight", list_column(domain.weight, np.uint8))
        # The noiseless spectrum of the paired stars (the truth every figure of merit is scored against).
        clean = (
            list_column(domain.clean)
            if split != "obs_train"
            else pa.nulls(len(rows), list_column(domain.clean[:1]).type)
        )
        table = table.append_column("clean", clean)
        parts.append(table)
        log.info(
            "%s: %d stars, median S/N %.0f, masked pixels %.2f %%",
            split,
            len(rows),
            float(np.median(domain.truth["snr"])),
            100 * (1 - domain.weight.mean()),
        )
    write_parquet(pa.concat_tables(parts), smk.output.observed, record)
