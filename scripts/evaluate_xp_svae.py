"""Rule evaluate_xp_svae: every sVAE preset beside the Cannon on the held-out cross-match stars, the latent's
label information and coverage, outlier recall, and the paper's Figs. 1–3 (paper 001 Sec. 3; spec A3)."""

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from latentsky.io.gaia_xp import read_xp_continuous
from latentsky.jobs import job_logging, job_record, use_job_threads
from latentsky.provenance.files import nan_to_null, save_figure, write_json
from latentsky.xp import evaluation as ev
from latentsky.xp import figures
from latentsky.xp.cannon import load_cannon
from latentsky.xp.catalog import model_inputs, read_catalog_labels, split_crossmatch
from latentsky.xp.svae import XpNormalisation, encode_xp, load_svae

smk = snakemake  # noqa: F821 - injected by Snakemake

with job_logging(smk) as log:
    use_job_threads(smk)
    seed = smk.params.seed
    cross_path, unl_path = smk.input.tables
    cross, unl = read_xp_continuous(cross_path), read_xp_continuous(unl_path)
    split = split_crossmatch(cross, smk.params.split, smk.params.split_seed)
    cannon, cannon_norm = load_cannon(smk.input.cannon)
    cat_labels = read_catalog_labels(cross_path, ("teff", "logg", "m_h"))
    lab_cannon = read_catalog_labels(cross_path, cannon.label_names)
    truth = None
    if "truth" in smk.input.keys():
        truth = {
            s: pd.read_parquet(p) for s, p in zip(("crossmatch", "unlabelled"), smk.input.truth, strict=True)
        }

    # The held-out stars: in the test split, encodable, with finite catalog labels (so the Cannon scores them).
    inputs_c = model_inputs(cross, XpNormalisation.from_dict(cannon_norm), smk.params.missing_band)
    test = (split == "test") & inputs_c.usable & np.all(np.isfinite(lab_cannon), axis=1)
    not_trained = np.isin(split, ("val", "test")) & inputs_c.usable
    cannon_pred = cannon.predict(lab_cannon[test])
    # The archive correlations of the held-out stars only (48 kB a star: the demo's whole cross-match would
    # be 1.9 GB); a user's table without correlation columns gets no full-covariance χ².
    test_correlations = None
    if {"bp_coefficient_correlations", "rp_coefficient_correlations"} <= set(
        pq.read_schema(cross_path).names
    ):
        test_rows = read_xp_continuous(
            pq.read_table(cross_path).take(np.flatnonzero(test)), with_correlations=True
        )
        if not np.array_equal(test_rows.source_id, np.asarray(cross.source_id)[test]):
            raise ValueError(f"{cross_path}: rows re-read with correlations do not match the held-out stars")
        test_correlations = test_rows.correlations
    region = truth["crossmatch"]["label_region"].to_numpy()[test] if truth else None
    fig2_labels = {n: cat_labels[test, i] for i, n in enumerate(("teff", "logg", "m_h"))}
    metrics = {
        "n_crossmatch": len(cross.source_id),
        "n_unlabelled": len(unl.source_id),
        "n_test": int(test.sum()),
        "cannon": {"labels": list(cannon.label_names), "order": cannon.order, "scatter": cannon.scatter_mode},
        "catalog_preset": smk.params.catalog_preset,
        "presets": {},
        "paper": {
            "mean_abs_error_ratio": {"bp": 1.02, "rp": 1.09},
            "scatter_ratio": "up to 100x smaller",
            "delta_v_over_v_sup": 0.30,
        },
    }
    keep = {}
    for preset, model_path in zip(smk.params.presets, smk.input.models, strict=True):
        model, settings, norm = load_svae(model_path)
        if not (np.allclose(norm.mean, cannon_norm["mean"]) and np.allclose(norm.std, cannon_norm["std"])):
            raise ValueError(
                f"{model_path}: its normalisation differs from the Cannon's (other training stars)"
            )
        inp = model_inputs(cross, norm, smk.params.missing_band)
        out = encode_xp(model, inp.x[test])
        s_true = None
        if truth:
            s_true = np.stack(truth["crossmatch"]["s_true"].to_numpy())[test] / norm.std
        m, r_s, r_c = ev.evaluate_preset(
            inp.x[test],
            inp.sigma[test],
            inp.weight[test],
            out.x_hat,
            out.s_hat,
            cannon_pred,
            cannon.s2,
            region=region,
            labels=fig2_labels,
            s_true=s_true,
            correlations=test_correlations,
        )
        m["settings"] = {
            "architecture": settings.architecture,
            "loss_reduction": settings.loss_reduction,
            "optimizer": settings.optimizer,
            "epochs": settings.epochs,
        }
        trained = (split == "train") & inp.usable
        mu_nt = encode_xp(model, inp.x[not_trained]).mu
        mu_train = encode_xp(model, inp.x[trained]).mu
        inp_u = model_inputs(unl, norm, smk.params.missing_band)
        mu_u = encode_xp(model, inp_u.x[inp_u.usable]).mu
        if truth:
            tc = truth["crossmatch"].iloc[np.flatnonzero(not_trained)]
            labels = {n: tc[n].to_numpy(dtype=float) for n in ev.TRUTH_LABELS}
            t_train = truth["crossmatch"].iloc[np.flatnonzero(trained)]
            labels_train = {n: t_train[n].to_numpy(dtype=float) for n in ev.TRUTH_LABELS}
            # The probe regressors fit on the training stars' latents, score on the held-out ones; the trees
            # (slow) for the catalog's preset and the PCA baseline, k-NN for every preset.
            primary = preset == smk.params.catalog_preset
            m["latent_label_information"] = ev.latent_label_information(
                mu_train, labels_train, mu_nt, labels, seed, trees=primary
            )
            pca_train, pca_nt = (
                ev.pca_latents(inp.x[trained], inp.x[rows], settings.latent_dim)
                for rows in (trained, not_trained)
            )
            m["pca_baseline_label_information"] = ev.latent_label_information(
                pca_train, labels_train, pca_nt, labels, seed, trees=primary
            )
            if primary:
                true_labels = [
                    np.column_stack([t[n] for n in ("teff", "logg", "m_h")]) for t in (t_train, tc)
                ]
                with_a0 = [
                    np.column_stack([lab, t["a0"]]) for lab, t in zip(true_labels, (t_train, tc), strict=True)
                ]
                m["alpha_information"] = ev.alpha_information(
                    {
                        "latents": (mu_train, mu_nt),
                        "true_teff_logg_m_h": tuple(true_labels),
                        "true_teff_logg_m_h_a0": tuple(with_a0),
                        "pca": (pca_train, pca_nt),
                    },
                    t_train["alpha_m"].to_numpy(),
                    tc["alpha_m"].to_numpy(),
                    seed,
                )
            tu = truth["unlabelled"].iloc[np.flatnonzero(inp_u.usable)]
            kinds = tu["anomaly_kind"].to_numpy()
            rec = encode_xp(model, inp_u.x[inp_u.usable])
            r_u = ev.normalised_residuals(
                inp_u.x[inp_u.usable], rec.x_hat, inp_u.sigma[inp_u.usable], rec.s_hat
            )
            r0_u = (inp_u.x[inp_u.usable] - rec.x_hat) / inp_u.sigma[inp_u.usable]
            scores = {
                "reduced_chi2_with_scatter": ev.reduced_chi2(r_u),
                "reduced_chi2_no_scatter": ev.reduced_chi2(r0_u),
                "mean_scatter": rec.s_hat.mean(axis=1),
                "latent_density": ev.latent_density_score(mu_train, rec.mu, seed),
            }
            m["outlier_recall"] = {k: ev.outlier_recall(v, kinds != "none") for k, v in scores.items()}
            tr = np.column_stack([np.log10(tc["teff"]), tc["logg"], tc["m_h"], tc["a0"]])
            tu_l = np.column_stack([np.log10(tu["teff"]), tu["logg"], tu["m_h"], tu["a0"]])
            m["truth_label_coverage"] = ev.latent_coverage(tr, tu_l, seed)
        m["latent_coverage"] = ev.latent_coverage(encode_xp(model, inp.x[inp.usable]).mu, mu_u, seed)
        metrics["presets"][preset] = m
        keep[preset] = (inp, out, r_s, r_c, encode_xp(model, inp.x[inp.usable]).mu, mu_u, m)
        log.info("preset %s: %s", preset, {k: m[k] for k in ("mean_abs_error_ratio", "reduced_chi2_median")})
    primary = metrics["presets"][smk.params.catalog_preset]
    metrics["acceptance"] = ev.acceptance(primary)
    inp, out, r_s, r_c, mu_c, mu_u, m = keep[smk.params.catalog_preset]
    norm_std = XpNormalisation.from_dict(cannon_norm).std
    norm_mean = XpNormalisation.from_dict(cannon_norm).mean
    to_g = lambda v: v * norm_std + norm_mean  # noqa: E731 - back to G-normalised units
    # Fig. 2 in wavelength space, the catalog's preset against the Cannon, by the catalog labels' regions.
    metrics["wavelength_residuals"] = ev.wavelength_residuals(
        to_g(inp.x[test]),
        {"svae": to_g(out.x_hat), "cannon": to_g(cannon_pred)},
        ev.label_regions(fig2_labels["teff"], fig2_labels["logg"]),
    )
    for name, a in metrics["acceptance"].items():
        log.info("%s: %.4g (target %s) %s", name, a["value"], a["target"], "met" if a["met"] else "NOT met")
    record = job_record(smk, seed=seed)
    write_json(nan_to_null(metrics), smk.output.metrics, record)

    i = int(np.nanargmax(np.nanmean(r_c**2, axis=1)))  # the star the Cannon fits worst, as in Fig. 1
    fig_files = dict(
        zip(
            (
                "example_reconstruction",
                "normalised_errors",
                "wavelength_residuals",
                "latent_coverage",
                "training_curves",
            ),
            smk.output.figures,
            strict=True,
        )
    )
    save_figure(
        figures.example_reconstruction(
            to_g(inp.x[test][i]),
            inp.sigma[test][i] * norm_std,
            to_g(out.x_hat[i]),
            out.s_hat[i] * norm_std,
            to_g(cannon_pred[i]),
            np.sqrt(cannon.s2) * norm_std,
        ),
        fig_files["example_reconstruction"],
        record,
        dpi=110,
    )
    save_figure(
        figures.normalised_errors(fig2_labels, r_s, r_c, out.s_hat, np.sqrt(cannon.s2), ev.FIG2_COEFFICIENTS),
        fig_files["normalised_errors"],
        record,
        dpi=100,
    )
    save_figure(
        figures.wavelength_residuals_figure(metrics["wavelength_residuals"]),
        fig_files["wavelength_residuals"],
        record,
        dpi=100,
    )
    dims = (0, 1)
    if "latent_label_information" in m:
        dims = (
            m["latent_label_information"]["teff"]["best_dimension"],
            m["latent_label_information"]["logg"]["best_dimension"],
        )
        if dims[0] == dims[1]:
            dims = (dims[0], (dims[0] + 1) % mu_c.shape[1])
    save_figure(
        figures.latent_coverage_figure(mu_c, mu_u, dims), fig_files["latent_coverage"], record, dpi=110
    )
    histories = {p: pd.read_parquet(h) for p, h in zip(smk.params.presets, smk.input.histories, strict=True)}
    save_figure(figures.training_curves(histories), fig_files["training_curves"], record, dpi=100)
