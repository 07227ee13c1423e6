"""Rule cyclestarnet_products: the transferred spectra of the test stars (one row per observed star) and the
missing-lines table (one row per strong feature of the line mask: recovered at the reference giant with the mean
split latent, as the authors' Fig. 10, and over the test stars; attributed by the response functions, eq. 8)."""

import numpy as np
import pandas as pd
import pyarrow as pa
import torch

from latentsky.cyclestarnet.domains import emulate, observed_arrays, reference_giant
from latentsky.cyclestarnet.evaluation import network_outputs
from latentsky.cyclestarnet.lines import (
    attribute_features,
    feature_recovery,
    recovery_over_stars,
    response_functions,
)
from latentsky.cyclestarnet.mask import mask_from_features
from latentsky.cyclestarnet.training import load_cyclestarnet
from latentsky.io.spectra import list_column
from latentsky.jobs import job_logging, job_record, use_job_threads
from latentsky.payne import load_payne
from latentsky.provenance.files import write_parquet
from latentsky.simulate.apogee import ELEMENTS, LABEL_NAMES, wavelength_grid

smk = snakemake  # noqa: F821 - injected by Snakemake

with job_logging(smk) as log:
    use_job_threads(smk)
    sim = smk.params.simulated
    record = job_record(smk)
    emulator = load_payne(smk.input.emulator)
    model, scale = load_cyclestarnet(smk.input.model)
    features = pd.read_parquet(smk.input.line_mask)
    mask = mask_from_features(features, emulator.n_pixels)
    stars = pd.read_parquet(smk.input.labels).set_index("star_id")
    obs = observed_arrays(smk.input.observed)
    test = obs["test"]
    labels = stars.loc[test.star_id, list(LABEL_NAMES)].to_numpy()
    synth_masked = np.where(mask, 1.0, emulate(emulator, labels))
    out = network_outputs(model, scale, synth_masked, test.flux)

    table = pa.Table.from_pandas(
        stars.loc[test.star_id, list(LABEL_NAMES)].reset_index(), preserve_index=False
    )
    for name, values, dtype in (
        ("z_shared", out["z_obs"].reshape(len(labels), -1), np.float32),
        *((("z_split", out["z_split"].reshape(len(labels), -1), np.float32),) if "z_split" in out else ()),
        ("flux_synthetic", synth_masked, np.float32),
        ("flux_transferred", out["transfer"], np.float32),
        ("flux_observed", test.flux, np.float32),
        ("error", test.error, np.float32),
        ("weight", test.weight, np.uint8),
    ):
        table = table.append_column(name, list_column(values, dtype))
    write_parquet(table, smk.output.transferred, record)

    # The reference giant with the mean split latent of the paired validation stars (the authors' Fig. 10).
    ref, true_ref, z_sp = reference_giant(
        model,
        emulator,
        mask,
        scale,
        obs["val"].flux,
        experiment=sim["experiment"],
        observed_source=sim["observed_source"],
        line_list=pd.read_parquet(smk.input.line_list),
        grid=wavelength_grid(sim["n_pixels"]),
    )
    lines = features.copy()
    lines = lines.join(feature_recovery(features, ref.transferred, ref.synth_masked, true_ref))
    response = response_functions(
        model, emulator, ref.labels, torch.as_tensor(mask), scale, z_sp, method=smk.params.derivatives
    )
    lines = lines.join(attribute_features(features, response["J_diff"], list(LABEL_NAMES), list(ELEMENTS)))
    ratios = recovery_over_stars(features, out["transfer"], synth_masked, test.clean)
    lines["recovery_ratio_test_median"] = np.nanmedian(np.where(np.isfinite(ratios), ratios, np.nan), axis=0)
    write_parquet(lines, smk.output.lines, record)
    m = lines["masked"]
    log.info(
        "%d test stars transferred; reference giant: median recovery of %d masked features %.2f, |false fill| of "
        "%d unmasked %.2f; attribution top-1 %.2f",
        len(labels),
        int(m.sum()),
        float(lines.loc[m, "recovery_ratio"].median()),
        int((~m).sum()),
        float(lines.loc[~m, "false_fill"].abs().median()),
        float(lines.loc[m, "correct"].mean()),
    )
