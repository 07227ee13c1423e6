"""Rule evaluate_cyclestarnet: the figures of merit of spec B3 on the paired test stars (paper 002 §4), each
beside its baseline from the same stars, the issue's acceptance block, and Figs. 4, 5, 7, 10, 11."""

import numpy as np
import pandas as pd
import torch

from latentsky.cyclestarnet import evaluation as ev
from latentsky.cyclestarnet import figures
from latentsky.cyclestarnet.domains import emulate, observed_arrays, reference_giant
from latentsky.cyclestarnet.lines import response_functions
from latentsky.cyclestarnet.mask import mask_from_features
from latentsky.cyclestarnet.training import load_cyclestarnet, paired_validation
from latentsky.jobs import job_logging, job_record, use_job_threads
from latentsky.payne import emulator_error, load_payne
from latentsky.provenance.files import nan_to_null, save_figure, write_json
from latentsky.simulate.apogee import ELEMENTS, LABEL_NAMES, synthesise, wavelength_grid

smk = snakemake  # noqa: F821 - injected by Snakemake

with job_logging(smk) as log:
    use_job_threads(smk)
    sim, seed = smk.params.simulated, smk.params.seed
    record = job_record(smk, seed=seed)
    grid = wavelength_grid(sim["n_pixels"])
    emulator = load_payne(smk.input.emulator)
    model, scale = load_cyclestarnet(smk.input.model)
    features = pd.read_parquet(smk.input.line_mask)
    lines = pd.read_parquet(smk.input.lines)
    mask = mask_from_features(features, emulator.n_pixels)
    stars = pd.read_parquet(smk.input.labels).set_index("star_id")
    test = observed_arrays(smk.input.observed)["test"]
    labels = stars.loc[test.star_id, list(LABEL_NAMES)].to_numpy()
    synth_full = emulate(emulator, labels)
    synth_masked = np.where(mask, 1.0, synth_full)
    out = ev.network_outputs(model, scale, synth_masked, test.flux)

    # Emulator error against the toy on the paired test stars (never trained on).
    line_list = pd.read_parquet(smk.input.line_list)
    toy = synthesise(labels, line_list, grid)
    metrics = {
        "experiment": sim["experiment"],
        "observed_source": sim["observed_source"],
        "n_test": len(labels),
        "n_pixels": sim["n_pixels"],
        "emulator_error": emulator_error(emulator, labels, toy),
        "synth_reconstruction": ev.synthetic_residuals(synth_masked, out["synth_rec"], out["synth_cycle"]),
        "obs_reconstruction": ev.observed_residuals(
            test.flux, test.error, test.weight, out["obs_rec"], out["obs_cycle"]
        ),
        "transfer_residual": ev.transfer_residuals(
            test.flux, test.error, test.weight, out["transfer"], synth_masked
        ),
    }
    t = lambda a: scale.to_x(torch.as_tensor(a, dtype=torch.float32))  # noqa: E731
    metrics["paired_test_weighted_mse"] = paired_validation(
        model,
        t(synth_masked),
        t(test.flux),
        torch.as_tensor(test.error / scale.scale, dtype=torch.float32),
        torch.as_tensor(test.weight),
        0.005 / scale.scale,
    )
    metrics["paired_test_weighted_mse"]["authors_m1_run"] = {
        "x_synthobs_val": 0.90,
        "x_obssynth_val": 0.19,
        "zsh": 0.023,
        "zsh_synth": 0.012,
        "zsh_obs": 0.019,
        "zsp": 0.062,
    }
    strong_test = lines["recovery_ratio_test_median"]
    metrics["missing_line_recovery"] = {
        "reference_giant": ev.recovery_summary(lines),
        "test_stars_median_of_feature_medians": float(strong_test[lines["masked"]].median()),
    }
    metrics["attribution"] = ev.attribution_summary(lines, len(ELEMENTS))
    if "z_split" in out:
        metrics["split_latent"] = ev.split_latent(out["z_split"], out["z_obs"], test.truth)
    metrics["domain_separability"] = ev.domain_separability(
        {
            "synthetic_vs_observed_reconstruction (before)": (synth_masked, out["obs_rec"]),
            "transferred_vs_observed_reconstruction (after)": (out["transfer"], out["obs_rec"]),
            "z_synthetic_vs_z_observed": (out["z_synth"], out["z_obs"]),
        },
        seed,
    )
    metrics["acceptance"] = ev.acceptance(metrics)
    write_json(nan_to_null(metrics), smk.output.metrics, record)
    for name, a in metrics["acceptance"].items():
        log.info(
            "acceptance %s: %.4g (target %s) %s",
            name,
            a["value"],
            a["target"],
            "met" if a["met"] else "NOT met",
        )

    # Figures.
    use = test.weight > 0
    figs = {
        "synthetic_residuals": figures.residual_histograms(
            {
                "X_s→s": {"(X_s→s − x_s)/x_s": (out["synth_rec"] - synth_masked) / synth_masked},
                "X_s→o→s": {"(X_s→o→s − x_s)/x_s": (out["synth_cycle"] - synth_masked) / synth_masked},
            },
            "fractional residual",
            span=0.03,
        ),
        "observed_residuals": figures.residual_histograms(
            {
                "X_o→o": {"(X_o→o − x_o)/σ": ((out["obs_rec"] - test.flux) / test.error)[use]},
                "X_o→s→o": {"(X_o→s→o − x_o)/σ": ((out["obs_cycle"] - test.flux) / test.error)[use]},
            },
            "normalised residual",
            gaussian=True,
        ),
        "transfer_residuals": figures.residual_histograms(
            {
                "at the true labels": {
                    "(x_o − T_s→o(Payne_masked))/σ": ((test.flux - out["transfer"]) / test.error)[use],
                    "(x_o − Payne_masked)/σ": ((test.flux - synth_masked) / test.error)[use],
                }
            },
            "normalised residual",
            gaussian=True,
            span=10.0,
        ),
    }
    ref, true_ref, z_sp = reference_giant(
        model,
        emulator,
        mask,
        scale,
        observed_arrays(smk.input.observed)["val"].flux,
        experiment=sim["experiment"],
        observed_source=sim["observed_source"],
        line_list=line_list,
        grid=grid,
    )
    response = response_functions(model, emulator, ref.labels, torch.as_tensor(mask), scale, z_sp)
    j = {e: response["J_diff"][list(LABEL_NAMES).index(f"[{e}/H]")] for e in ("Mg", "Si", "Fe", "C", "N")}
    figs["line_recovery"] = figures.line_recovery(
        grid,
        ref.synth_masked,
        ref.transferred,
        true_ref,
        features,
        {e: j[e] for e in ("Mg", "Si", "Fe", "C")},
    )
    figs["carbon_nitrogen"] = figures.carbon_nitrogen(grid, j, features)
    figs["training_curves"] = figures.training_curves(pd.read_parquet(smk.input.history))
    for path in smk.output.figures:
        name = path.rsplit("/", 1)[-1].removesuffix(".png")
        save_figure(figs[name], path, record, dpi=110)
