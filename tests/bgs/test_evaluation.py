"""The held-out evaluation's figures against scikit-learn and against cases with known answers."""

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from latentsky.bgs.evaluation import (
    auroc,
    average_precision,
    components_to_noise_floor,
    detectability,
    evaluation_kinds,
    fidelity_by_snr,
    heldout_evaluation,
    latent_information,
    reference_percentile,
    score_evaluation,
    snr_corrected,
)


def test_auroc_and_average_precision_match_scikit_learn():
    rng = np.random.default_rng(0)
    pos = rng.normal(1.0, 1.0, 40)
    neg = rng.normal(0.0, 1.0, 400)
    y = np.r_[np.ones(40), np.zeros(400)]
    s = np.r_[pos, neg]
    assert auroc(pos, neg) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert average_precision(pos, neg) == pytest.approx(average_precision_score(y, s), abs=1e-12)
    # Ties count half in the AUROC (integer scores, many ties).
    pos_t, neg_t = np.round(pos), np.round(neg)
    assert auroc(pos_t, neg_t) == pytest.approx(roc_auc_score(y, np.r_[pos_t, neg_t]), abs=1e-12)
    # Rows are independent evaluations.
    two = auroc(np.stack([pos, -pos]), np.stack([neg, neg]))
    assert two[0] == pytest.approx(roc_auc_score(y, s)) and two[1] == pytest.approx(
        roc_auc_score(y, np.r_[-pos, neg])
    )


def test_a_constant_score_earns_the_base_rate_not_a_perfect_one():
    pos, neg = np.zeros(10), np.zeros(90)
    assert auroc(pos, neg) == pytest.approx(0.5)
    # Ties broken against the positives: precision at each positive's rank is that of the last slots.
    assert average_precision(pos, neg) < 0.2


def test_snr_correction_removes_the_brightness_trend_and_keeps_the_odd_spectrum():
    # Model mismatch ∝ S/N²: raw χ² ranks the brightest; after the correction the injected odd one leads.
    rng = np.random.default_rng(1)
    norm = 10 ** rng.uniform(-0.5, 1.0, 2000)
    chi2 = 1.0 + 0.5 * norm**2 * rng.lognormal(0.0, 0.2, 2000)
    odd_norm, odd_chi2 = np.array([0.5]), np.array([2.0 * (1.0 + 0.5 * 0.25)])  # twice its S/N's typical χ²
    corrected = snr_corrected(chi2, norm, chi2, norm)
    assert abs(np.corrcoef(np.log(norm), corrected)[0, 1]) < 0.05
    assert np.corrcoef(np.log(norm), np.log(chi2))[0, 1] > 0.9
    odd = snr_corrected(odd_chi2, odd_norm, chi2, norm)[0]
    assert odd > np.quantile(corrected, 0.99) and odd_chi2[0] < np.median(chi2)
    with pytest.raises(ValueError, match="reference rows"):
        snr_corrected(chi2, norm, chi2[:5], norm[:5])


def test_reference_percentile_is_the_fraction_of_the_reference_below():
    ref = np.array([1.0, 2.0, 3.0, 4.0, np.nan])
    np.testing.assert_allclose(reference_percentile(np.array([0.0, 2.5, 9.0]), ref), [0.0, 0.5, 1.0])


def test_score_evaluation_on_a_perfect_and_a_useless_score():
    rng = np.random.default_rng(2)
    kinds = np.array(["galaxy"] * 900 + ["star"] * 50 + ["blend"] * 50)
    perfect = np.r_[rng.uniform(0, 1, 900), rng.uniform(2, 3, 100)]
    useless = rng.uniform(0, 1, 1000)
    out = score_evaluation(
        {"perfect": perfect, "useless": useless},
        kinds,
        rng,
        n_boot=300,
        paired={"diff": ("perfect", "useless")},
    )
    p, u = out["scores"]["perfect"], out["scores"]["useless"]
    for key in (
        "auroc_all",
        "auroc_star",
        "auroc_blend",
        "ap_all",
        "precision_at_n_outliers",
        "recall_at_n_outliers",
    ):
        assert p[key]["value"] == pytest.approx(1.0)
    assert p["precision_at_1pct"]["value"] == 1.0 and out["k_1pct"] == 10 and out["k_n_outliers"] == 100
    assert p["recall_at_1pct"]["value"] == pytest.approx(0.1)
    # A random score: AUROC near 0.5 inside its own interval, precision near the base rate (0.1).
    lo, hi = u["auroc_all"]["ci"]
    assert lo < u["auroc_all"]["value"] < hi and lo < 0.5 < hi and hi - lo < 0.15
    assert abs(u["precision_at_n_outliers"]["value"] - 0.1) < 0.08
    d = out["paired_differences"]["diff"]["auroc_all"]
    assert d["value"] == pytest.approx(1.0 - u["auroc_all"]["value"]) and d["ci"][0] > 0.3


def test_heldout_evaluation_names_its_scores_and_counts_and_rates_unscorable_rows_lowest():
    rng = np.random.default_rng(3)
    n_train, n = 500, 400
    kinds = np.array(["galaxy"] * 360 + ["star"] * 40)
    train_norm, norm = 10 ** rng.uniform(-0.5, 1, n_train), 10 ** rng.uniform(-0.5, 1, n)
    chi2 = 1 + norm**2 * rng.lognormal(0, 0.2, n) * np.where(kinds == "star", 3.0, 1.0)
    log_p = rng.normal(0, 1, n) - np.where(kinds == "star", 3.0, 0.0)
    log_p[0] = np.nan  # a galaxy the flow could not rate
    out = heldout_evaluation(
        kinds=kinds,
        log_p_galaxy=log_p,
        reduced_chi2=chi2,
        pca_chi2=chi2 * rng.lognormal(0, 0.1, n),
        norm=norm,
        train_log_p_galaxy=rng.normal(0, 1, n_train),
        train_reduced_chi2=1 + train_norm**2 * rng.lognormal(0, 0.2, n_train),
        train_pca_chi2=1 + train_norm**2 * rng.lognormal(0, 0.2, n_train),
        train_norm=train_norm,
        seed=0,
        n_boot=100,
    )
    assert out["n_spectra"] == 400 and out["n_per_kind"] == {"galaxy": 360, "star": 40}
    names = ["spender_flow", "spender_fidelity_snr", "spender_combined", "pca_baseline", "pca_baseline_snr"]
    assert list(out["scores"]) == names
    s = out["scores"]
    # Stars are 3× worse fitted at every S/N: the S/N-aware scores find them, the raw χ² less well.
    assert s["spender_fidelity_snr"]["auroc_star"]["value"] > 0.95
    assert s["pca_baseline_snr"]["auroc_star"]["value"] > s["pca_baseline"]["auroc_star"]["value"]
    assert s["spender_flow"]["auroc_star"]["value"] > 0.9
    assert s["spender_combined"]["auroc_star"]["value"] > 0.9


def test_detectability_compares_each_class_with_the_chi2_noise_of_its_binned_pixels():
    truth = pd.DataFrame(
        {
            "kind": ["galaxy"] * 3 + ["double_peaked"] * 3 + ["bal_qso"] * 3 + ["star"] * 2,
            "injected_delta_chi2_bin16": [np.nan] * 3 + [10.0, 20.0, 200.0] + [5000.0] * 3 + [np.nan] * 2,
        }
    )
    d = detectability(truth, 16, 486)
    threshold = 3 * np.sqrt(2 * 486)  # ≈ 93.5
    assert d["threshold_delta_chi2"] == pytest.approx(threshold)
    c = d["classes"]
    assert c["double_peaked"]["detectable"] is False and c["double_peaked"]["median_delta_chi2"] == 20.0
    assert c["double_peaked"]["fraction_above_threshold"] == pytest.approx(1 / 3)
    assert c["bal_qso"]["detectable"] is True
    assert c["star"]["detectable"] is None and "counterpart" in c["star"]["why"]
    assert "galaxy" not in c
    # A binning the simulation did not record is said, not guessed.
    assert "why_not" in detectability(truth, 3, 2593)


def test_latent_information_scores_held_out_galaxies_only():
    rng = np.random.default_rng(4)

    def sample(n):
        truth = pd.DataFrame(
            {
                "kind": np.where(rng.uniform(size=n) < 0.1, "star", "galaxy"),
                "young_fraction": rng.uniform(0, 1, n),
                "sigma_kms": rng.uniform(50, 250, n),
            }
        )
        # The features encode the young fraction (and noise), nothing of σ.
        feats = np.column_stack([truth["young_fraction"] + rng.normal(0, 0.05, n), rng.normal(0, 1, n)])
        return feats, truth

    (x_tr, t_tr), (x_te, t_te) = sample(600), sample(300)
    x_te[t_te["kind"].to_numpy() == "star"] = np.nan  # stars are left out, so their NaNs do not matter
    out = latent_information(
        {"latents": x_tr}, t_tr, {"latents": x_te}, t_te, ("young_fraction", "sigma_kms", "z")
    )
    r2 = out["r2_from_latents"]
    assert r2["young_fraction"] > 0.9 and r2["sigma_kms"] < 0.1
    assert "z" not in r2  # no such column: not reported
    assert out["n_test"] == int((t_te["kind"] == "galaxy").sum())


def test_components_to_noise_floor_counts_the_rank_of_the_population():
    rng = np.random.default_rng(3)
    n_pix, rank = 400, 5
    basis = np.linalg.qr(rng.normal(size=(n_pix, rank)))[0].T  # orthonormal rows
    # Amplitudes falling by 3× per component: residual rms after k components ≈ 0.3·3^−k / √n_pix·…
    amps = rng.normal(size=(600, rank)) * (3.0 ** -np.arange(rank)) * 2.0
    spectra = 10.0 + amps @ basis * np.sqrt(n_pix)  # median ≈ 10: relative amplitudes 0.2, 0.067, …
    out = components_to_noise_floor(spectra, snr=(3.0, 1e6))
    # Rank 5, plus the flat spectrum that dividing each spectrum by its median scales by a different factor:
    # at an unreachable S/N the count is 6 (the residual after 6 is round-off); at S/N 3 only the first
    # component is above the noise.
    assert out["components"]["snr_1e+06"]["median"] == rank + 1
    assert out["components"]["snr_3"]["median"] <= 2
    rms = out["residual_rms_median"]
    assert rms["1"] > rms["2"] > rms["4"] > 1e-4 > 1e-10 > rms["6"]


def test_fidelity_by_snr_bins_by_quantile_faint_first():
    snr = np.arange(1.0, 101.0)
    chi2 = 1.0 + (snr / 50.0) ** 2  # model mismatch grows as S/N²
    out = fidelity_by_snr({"model": chi2}, snr, n_bins=4)
    assert out["n_per_bin"] == [25, 25, 25, 25]
    assert out["snr_edges"][0] == 1.0 and out["snr_edges"][-1] == 100.0
    medians = out["model"]
    assert medians == sorted(medians) and medians[0] == pytest.approx(1.0 + (13.0 / 50.0) ** 2, rel=0.01)


def test_missing_arms_are_their_own_class_and_have_no_signal():
    truth = pd.DataFrame(
        {
            "kind": ["galaxy", "calibration_fault", "calibration_fault", "star"],
            "fault": [None, "b_missing", "r_x1.50", None],
            "injected_delta_chi2_bin16": [np.nan, np.nan, 5000.0, np.nan],
        }
    )
    assert evaluation_kinds(truth).tolist() == ["galaxy", "missing_arm", "calibration_fault", "star"]
    out = detectability(truth, 16, 480)
    assert out["classes"]["missing_arm"]["detectable"] is None
    assert out["classes"]["calibration_fault"]["detectable"] is True
