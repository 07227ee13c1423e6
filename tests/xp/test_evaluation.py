"""The sVAE-versus-Cannon figures of merit (latentsky.xp.evaluation) on inputs whose answer is known."""

import numpy as np
import pytest

from latentsky.xp import evaluation as ev


def _correlation(rng: np.random.Generator, n: int = 55) -> np.ndarray:
    """A random positive-definite correlation matrix with DR3-like off-diagonal strength."""
    b = rng.normal(size=(n, 5)) * 0.4
    c = b @ b.T + np.eye(n)
    d = np.sqrt(np.diag(c))
    return c / d[:, None] / d[None, :]


def test_full_covariance_chi2_matches_a_hand_computation_and_the_diagonal_limit():
    rng = np.random.default_rng(3)
    n = 4
    rho = np.stack([np.stack([_correlation(rng), _correlation(rng)]) for _ in range(n)])
    sigma = rng.uniform(0.05, 0.2, size=(n, 110))
    scatter = rng.uniform(0.0, 0.1, size=(n, 110))
    residual = rng.normal(size=(n, 110)) * 0.2
    out = ev.full_covariance_chi2(residual, sigma, scatter, rho)
    for i in range(n):
        total = 0.0
        for b, start in enumerate((0, 55)):
            k = np.arange(start, start + 32)
            cov = np.outer(sigma[i, k], sigma[i, k]) * rho[i, b][:32, :32] + np.diag(scatter[i, k] ** 2)
            total += residual[i, k] @ np.linalg.inv(cov) @ residual[i, k]
        assert out["full"][i] == pytest.approx(total / 64, rel=1e-9)
        diag = np.r_[residual[i, :32], residual[i, 55:87]] ** 2 / (
            np.r_[sigma[i, :32], sigma[i, 55:87]] ** 2 + np.r_[scatter[i, :32], scatter[i, 55:87]] ** 2
        )
        assert out["diagonal"][i] == pytest.approx(diag.mean(), rel=1e-12)
    # Unit correlations' limit: identity ρ makes the two χ² equal.
    eye = np.broadcast_to(np.eye(55), (n, 2, 55, 55))
    same = ev.full_covariance_chi2(residual, sigma, scatter, eye)
    np.testing.assert_allclose(same["full"], same["diagonal"], rtol=1e-12)


def test_full_covariance_chi2_is_one_for_correlated_noise_and_the_diagonal_is_not():
    """Noise drawn with the stated covariance has E[χ²/dof] = 1 under the full covariance; the diagonal
    χ² of the same draws is off by the correlations (which is why the evaluation reports both)."""
    rng = np.random.default_rng(5)
    rho = _correlation(rng)
    n = 3000
    sigma = np.full((n, 110), 0.1)
    chol = np.linalg.cholesky(rho)
    noise = np.empty((n, 110))
    for start in (0, 55):
        noise[:, start : start + 55] = (rng.normal(size=(n, 55)) @ chol.T) * 0.1
    out = ev.full_covariance_chi2(noise, sigma, 0.0, np.broadcast_to(rho, (n, 2, 55, 55)))
    # Mean of χ²₆₄/64 over n stars: standard error √(2/64/n) = 0.0032.
    assert np.mean(out["full"]) == pytest.approx(1.0, abs=4 * np.sqrt(2 / 64 / n))
    assert np.std(out["diagonal"]) > 1.3 * np.std(out["full"])


def test_full_covariance_chi2_leaves_out_a_missing_band():
    rng = np.random.default_rng(7)
    rho = np.broadcast_to(np.eye(55), (3, 2, 55, 55)).copy()
    residual = rng.normal(size=(3, 110))
    residual[1, :55] = np.nan  # no BP
    residual[2, :] = np.nan  # nothing
    rho[0, 1] = np.nan  # RP correlations missing
    out = ev.full_covariance_chi2(residual, np.ones((3, 110)), 0.0, rho)
    assert out["full"][0] == pytest.approx(np.mean(residual[0, :32] ** 2))
    assert out["full"][1] == pytest.approx(np.mean(residual[1, 55:87] ** 2))
    assert np.isnan(out["full"][2])


def test_latent_label_information_reaches_the_noise_ceiling_and_zero_for_noise():
    """A label that is a smooth function of two latent dimensions plus noise of known variance: the probe's
    R² approaches 1 − var(noise)/var(label); a latent of pure noise carries none of it."""
    rng = np.random.default_rng(11)

    def sample(n):
        z = rng.normal(size=(n, 6))
        signal = np.sin(1.5 * z[:, 0]) + 0.5 * z[:, 1] ** 2
        return z, signal + rng.normal(scale=0.1, size=n), signal

    z_train, y_train, _ = sample(8000)
    z_test, y_test, signal_test = sample(2000)
    ceiling = 1 - 0.1**2 / np.var(y_test)
    info = ev.latent_label_information(z_train, {"y": y_train}, z_test, {"y": y_test}, seed=0)["y"]
    assert info["n_train"] == 8000 and info["n"] == 2000
    assert ceiling - 0.06 < info["r2"] <= ceiling + 0.01
    assert info["r2_regressor"] in ("knn", "boosted_trees")
    assert info["best_dimension"] in (0, 1)
    noise = ev.latent_label_information(
        rng.normal(size=(8000, 6)), {"y": y_train}, rng.normal(size=(2000, 6)), {"y": y_test}, 0, trees=False
    )["y"]
    assert abs(noise["r2_knn"]) < 0.05
    assert set(noise) >= {"r2_knn", "r2"} and "r2_boosted_trees" not in noise


def test_latent_label_information_skips_stars_without_a_label():
    rng = np.random.default_rng(13)
    z = rng.normal(size=(600, 3))
    y = z[:, 0].copy()
    y[:50] = np.nan
    info = ev.latent_label_information(z[:400], {"y": y[:400]}, z[400:], {"y": y[400:]}, 0, trees=False)
    assert info["y"]["n_train"] == 350 and info["y"]["n"] == 200
    assert info["y"]["r2_knn"] > 0.8  # k = 25 of 350 reference stars in 3-D smooths a little


def test_tail_fractions_of_gaussian_residuals():
    r = np.random.default_rng(17).normal(size=(20000, 110))
    tails = ev.tail_fractions(r)
    # P(|N(0,1)| > 3) = 0.0027; 2.2M draws: standard error 3.5e-5.
    assert tails["all"]["gt3"] == pytest.approx(0.0027, abs=2e-4)
    assert tails["all"]["gt10"] == 0.0


def test_mean_abs_error_ratio_of_scaled_residuals():
    r = np.random.default_rng(19).normal(size=(5000, 110))
    ratio = ev.mean_abs_error_ratio(1.1 * r, r)
    assert ratio["bp"] == pytest.approx(1.1) and ratio["rp"] == pytest.approx(1.1)


def test_scatter_recovery_ranks_a_scatter_that_follows_the_truth():
    rng = np.random.default_rng(23)
    s_true = np.exp(rng.normal(size=(3000, 1))) * np.ones((1, 110)) * 0.1
    sigma = np.full((3000, 110), 0.05)
    good = ev.scatter_recovery(s_true * np.exp(rng.normal(scale=0.2, size=s_true.shape)), s_true, sigma)
    unrelated = ev.scatter_recovery(rng.permutation(s_true), s_true, sigma)
    assert good["spearman_median"] > 0.9 and abs(unrelated["spearman_median"]) < 0.1
    assert good["median_abs_log10_ratio"] < 0.1


def test_scatter_recovery_scores_the_resolvable_stars_and_keeps_the_all_star_reading():
    # 3,000 stars whose injected scatter is constant to 0.1 % and a tenth of σ (unresolvable: ŝ there is the
    # model's error, random) and 1,000 whose scatter is 0.1–10 σ and recovered within 0.1 dex.
    rng = np.random.default_rng(29)
    sigma = np.full((4000, 110), 0.1)
    flat = 0.01 * (1 + 1e-3 * rng.random((3000, 1))) * np.ones((1, 110))
    high = np.exp(rng.uniform(np.log(0.01), np.log(1.0), size=(1000, 1))) * np.ones((1, 110))
    s_true = np.r_[flat, high]
    s_hat = np.r_[rng.uniform(0.02, 0.05, size=flat.shape), high * 10 ** rng.normal(0, 0.1, size=high.shape)]
    rec = ev.scatter_recovery(s_hat, s_true, sigma)
    assert rec["n_coefficients"] == 110
    # s_true/σ > 0.5 holds for the stars with s_true > 0.05: log-uniform over 0.01–1, a fraction
    # log10(20)/2 of them (binomial standard error over 1,000 stars: 0.004 of the total).
    assert rec["fraction_of_elements"] == pytest.approx(np.log10(20) / 2 * 1000 / 4000, abs=0.012)
    assert rec["spearman_median"] > 0.85 and rec["median_abs_log10_ratio"] < 0.1
    assert "all_stars" not in rec  # the median star is unresolvable
    # Every star ranked (all of them pass a 0.05 cut): the plateau's random ŝ dilutes the rank correlation.
    diluted = ev.scatter_recovery(s_hat, s_true, sigma, min_ratio=0.05)["all_stars"]["spearman_median"]
    assert diluted < 0.5 < rec["spearman_median"]
    acc = ev.acceptance(
        {
            "tail_fraction": {"svae": {"all": {"gt5": 0.0}}},
            "mean_abs_error_ratio": {},
            "scatter_recovery": rec,
        }
    )
    assert acc["scatter_spearman"]["met"] and acc["scatter_log_ratio"]["met"]
    assert acc["scatter_spearman"]["value"] == rec["spearman_median"]


def test_scatter_recovery_without_resolvable_stars():
    rec = ev.scatter_recovery(np.full((100, 110), 0.1), np.full((100, 110), 0.01), np.ones((100, 110)))
    assert rec["n_coefficients"] == 0 and "spearman_median" not in rec and "all_stars" not in rec


def test_scatter_by_region_reports_medians_and_their_ratio():
    s_true = np.r_[np.full(50, 0.02), np.full(30, 0.2)][:, None] * np.ones((1, 110))
    s_hat = np.r_[np.full(50, 0.08), np.full(30, 0.22)][:, None] * np.ones((1, 110))
    region = np.array(["nominal"] * 50 + ["cool"] * 30)
    out = ev.scatter_by_region(s_hat, s_true, region, [0, 1, 2])
    assert out["nominal"]["n_stars"] == 50 and out["nominal"]["ratio"] == pytest.approx(4.0)
    assert out["cool"]["s_hat_median"] == pytest.approx(0.22) and out["cool"]["ratio"] == pytest.approx(1.1)


def test_wavelength_residuals_are_zero_for_a_perfect_model_and_scale_with_a_flux_error():
    """Sampled through GaiaXPy's basis: the observation against itself gives zero residuals; a model 2 %
    too bright everywhere gives +2 % at every wavelength (the sampling is linear in the coefficients)."""
    from latentsky.simulate.xp import simulate_xp_survey

    truth = simulate_xp_survey(30, 0, seed=2)["crossmatch"]["truth"]
    c = np.stack(truth["coefficients"].to_numpy())
    region = ev.label_regions(truth["teff"], truth["logg"])
    out = ev.wavelength_residuals(c, {"same": c, "bright": 1.02 * c}, region)
    wl = np.asarray(out["wavelength_nm"])
    assert wl.min() >= 400 and wl.max() <= 1000
    for row in out["regions"].values():
        assert row["same"]["median_abs"] == 0.0
        np.testing.assert_allclose(row["bright"]["p50"], 0.02, rtol=1e-9)
    assert sum(row["n_stars"] for row in out["regions"].values()) == 30


def test_label_regions_follow_the_papers_shading():
    regions = ev.label_regions(np.array([3900, 4500, 4500, 3800]), np.array([3.0, 1.2, 2.5, 1.0]))
    assert regions.tolist() == ["cool", "low_logg", "other", "cool"]


def test_alpha_information_is_chance_without_the_parameter_and_high_with_it():
    rng = np.random.default_rng(29)
    alpha = rng.uniform(0, 0.3, size=4000)
    informative = np.column_stack([alpha + rng.normal(scale=0.02, size=4000), rng.normal(size=4000)])
    blind = rng.normal(size=(4000, 2))
    out = ev.alpha_information(
        {"informative": (informative[:3000], informative[3000:]), "blind": (blind[:3000], blind[3000:])},
        alpha[:3000],
        alpha[3000:],
        seed=0,
    )
    assert out["balanced_accuracy"]["informative"] > 0.85
    assert abs(out["balanced_accuracy"]["blind"] - 0.5) < 0.06


def test_errors_by_region_counts_the_stars_behind_a_tail_and_acceptance_reports_them():
    """A 10σ tail that is one star's 22 coefficients: the ratio of fractions says 22×, the star count says
    one star — both reach the metrics, so a reader can tell."""
    rng = np.random.default_rng(31)
    n = 100
    region = np.array(["nominal"] * 60 + ["cool"] * 30 + ["low_logg"] * 10)
    r_svae = rng.normal(size=(n, 110)) * 0.5
    r_cannon = rng.normal(size=(n, 110))
    r_cannon[95, :22] = 15.0  # one low-gravity star
    r_cannon[70:75, 0] = -12.0  # five cool stars, one coefficient each
    out = ev.errors_by_region({"svae": r_svae, "cannon": r_cannon}, region)
    low = out["low_logg"]
    assert low["cannon"]["n_stars_gt10"] == 1 and low["svae"]["n_stars_gt10"] == 0
    assert low["cannon"]["gt10"] == pytest.approx(22 / 1100)
    assert low["cannon_over_svae_gt10"] is None  # no sVAE residual beyond 10σ
    assert low["cannon_over_svae_gt10_floor"] == pytest.approx(22.0)
    assert out["cool"]["cannon"]["n_stars_gt10"] == 5
    primary = {
        "tail_fraction": {"svae": ev.tail_fractions(r_svae), "cannon": ev.tail_fractions(r_cannon)},
        "errors_by_region": out,
        "mean_abs_error_ratio": ev.mean_abs_error_ratio(r_svae, r_cannon),
    }
    acc = ev.acceptance(primary)
    assert acc["cannon_over_svae_gt10_low_logg"]["met"]
    assert acc["cannon_over_svae_gt10_low_logg"]["stars_beyond_10_sigma"] == {"cannon": 1, "svae": 0}
    assert acc["svae_tail_gt5"]["met"] and not acc["mean_abs_error_ratio_bp"]["met"]  # ratio ≈ 0.5


def test_latent_density_score_ranks_stars_off_the_training_manifold_first():
    rng = np.random.default_rng(37)
    train = rng.normal(size=(3000, 6))
    inliers, outliers = rng.normal(size=(500, 6)), rng.normal(size=(10, 6)) + 6.0
    score = ev.latent_density_score(train, np.r_[inliers, outliers], seed=0, n_components=3)
    recall = ev.outlier_recall(score, np.r_[np.zeros(500, bool), np.ones(10, bool)])
    assert recall["recall_top5pc"] == 1.0 and recall["n_anomalies"] == 10
