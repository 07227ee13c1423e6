"""The hand-written Cannon (latentsky.xp.cannon): recovery of injected θ and s², design matrix, masking, I/O."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from latentsky.xp.cannon import CannonModel, fit_cannon

LABEL_NAMES = ("teff", "logg", "m_h")
N_STARS = 4001  # odd: the median_chi2 root is then exact (see _scatter_median_chi2)
#: Injected population scatter per coefficient (0 included: the boundary of the ML search).
S_TRUE = np.array([0.0, 0.02, 0.05, 0.08, 0.1, 0.15, 0.2, 0.3, 0.5, 0.03, 0.12, 0.07])


def _labels(rng: np.random.Generator, n: int = N_STARS) -> np.ndarray:
    return np.column_stack([rng.normal(4800, 500, n), rng.normal(2.8, 0.9, n), rng.normal(-0.2, 0.25, n)])


def _truth(labels: np.ndarray, rng: np.random.Generator, order: int = 2) -> CannonModel:
    """An injected model in the parametrisation fit_cannon will find (same fiducial and scale)."""
    fiducial = np.median(labels, axis=0)
    scale = (np.percentile(labels, 97.5, axis=0) - np.percentile(labels, 2.5, axis=0)) / 2
    n_terms = 10 if order == 2 else 4
    return CannonModel(
        label_names=LABEL_NAMES,
        fiducial=fiducial,
        scale=scale,
        theta=rng.normal(0.0, 1.0, (S_TRUE.size, n_terms)),
        s2=S_TRUE**2,
        order=order,
    )


def _draw(
    truth: CannonModel, labels: np.ndarray, rng: np.random.Generator, *, sigma: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    if sigma is None:
        sigma = rng.uniform(0.05, 0.15, (labels.shape[0], truth.n_pix))
    x = truth.predict(labels) + rng.normal(size=sigma.shape) * np.sqrt(sigma**2 + truth.s2)
    return x, sigma


def _theta_standard_errors(truth: CannonModel, labels: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """Standard errors of the WLS θ at the true s²: sqrt(diag((VᵀWV)⁻¹)), W = 1/(σ² + s²)."""
    design = truth.design_matrix(labels)
    w = 1.0 / (sigma**2 + truth.s2)
    normal = np.einsum("nk,ni,nj->kij", w, design, design)
    return np.sqrt(np.diagonal(np.linalg.inv(normal), axis1=1, axis2=2))


def test_design_matrix_by_hand_two_labels() -> None:
    model = CannonModel(
        label_names=("teff", "logg"),
        fiducial=np.array([5000.0, 3.0]),
        scale=np.array([500.0, 1.0]),
        theta=np.zeros((1, 6)),
        s2=np.zeros(1),
    )
    labels = np.array([[5500.0, 1.0], [4750.0, 3.5], [5000.0, 3.0]])
    # ℓ' = (1, −2), (−0.5, 0.5), (0, 0); terms [1, a, b, a², ab, b²]
    expected = np.array(
        [
            [1.0, 1.0, -2.0, 1.0, -2.0, 4.0],
            [1.0, -0.5, 0.5, 0.25, -0.25, 0.25],
            [1.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        ]
    )
    np.testing.assert_allclose(model.design_matrix(labels), expected, rtol=0, atol=1e-15)
    assert model.term_names == ("1", "teff", "logg", "teff*teff", "teff*logg", "logg*logg")

    linear = CannonModel(
        ("teff", "logg"), model.fiducial, model.scale, np.zeros((1, 3)), np.zeros(1), order=1
    )
    np.testing.assert_allclose(linear.design_matrix(labels), expected[:, :3], rtol=0, atol=1e-15)


def test_fiducial_and_scale_from_training_labels() -> None:
    rng = np.random.default_rng(0)
    labels = _labels(rng, 1001)
    x = rng.normal(size=(labels.shape[0], 2))
    model = fit_cannon(labels, x, np.ones_like(x), label_names=LABEL_NAMES)
    np.testing.assert_array_equal(model.fiducial, np.median(labels, axis=0))
    p_lo, p_hi = np.percentile(labels, [2.5, 97.5], axis=0)
    np.testing.assert_allclose(model.scale, (p_hi - p_lo) / 2, rtol=1e-14)
    assert model.theta.shape == (2, 10) and model.s2.shape == (2,)


def test_ml_recovers_injected_theta_and_scatter() -> None:
    rng = np.random.default_rng(1)
    labels = _labels(rng)
    truth = _truth(labels, rng)
    x, sigma = _draw(truth, labels, rng)
    model = fit_cannon(labels, x, sigma, label_names=LABEL_NAMES, scatter="ml")
    assert model.scatter_mode == "ml"

    se_theta = _theta_standard_errors(truth, labels, sigma)
    z_theta = (model.theta - truth.theta) / se_theta
    assert np.abs(z_theta).max() < 5.0, np.abs(z_theta).max()

    # Fisher information of s² for N(0, σ² + s²): ½ Σ_n 1/(σ²_n + s²)²
    se_s2 = np.sqrt(2.0 / (1.0 / (sigma**2 + truth.s2) ** 2).sum(axis=0))
    z_s2 = (model.s2 - truth.s2) / se_s2
    assert np.abs(z_s2).max() < 4.0, z_s2
    assert abs(z_s2.mean()) < 4.0 / np.sqrt(z_s2.size), z_s2.mean()  # unbiased across coefficients
    assert np.all(model.s2 >= 0)
    np.testing.assert_allclose(model.scatter, np.sqrt(model.s2))
    # the large scatters are recovered to a few per cent
    big = S_TRUE >= 0.1
    np.testing.assert_allclose(model.scatter[big], S_TRUE[big], rtol=0.05)


def test_ml_is_a_likelihood_optimum() -> None:
    """Perturbing s² or θ of any coefficient away from the fit does not lower the objective."""
    rng = np.random.default_rng(2)
    labels = _labels(rng, 1501)
    truth = _truth(labels, rng)
    x, sigma = _draw(truth, labels, rng)
    model = fit_cannon(labels, x, sigma, label_names=LABEL_NAMES)

    def objective(theta: np.ndarray, s2: np.ndarray) -> np.ndarray:
        var = sigma**2 + s2
        r = x - model.design_matrix(labels) @ theta.T
        return (r**2 / var + np.log(var)).sum(axis=0)

    best = objective(model.theta, model.s2)
    for factor in (0.9, 1.1):
        assert np.all(objective(model.theta, model.s2 * factor) >= best - 1e-9)
    for delta in (-1e-3, 1e-3):
        bumped = model.theta.copy()
        bumped[:, 4] += delta
        assert np.all(objective(bumped, model.s2) >= best - 1e-9)
    interior = model.s2 > 0
    # where s² > 0 the derivative in s² vanishes
    var = sigma**2 + model.s2
    r2 = (x - model.predict(labels)) ** 2
    grad = (1.0 / var - r2 / var**2).sum(axis=0)
    curvature_scale = (1.0 / var**2).sum(axis=0)
    assert np.all(np.abs(grad[interior]) < 1e-6 * curvature_scale[interior])


def test_median_chi2_matches_its_definition_and_expectation() -> None:
    """median r²/(σ² + s²) = 1 at the fit; for constant σ_k that is s² = max(0, m (σ² + s²_true) − σ²),
    m = median of χ²₁ ≈ 0.455 (the heuristic sits below the true s², unlike ML)."""
    rng = np.random.default_rng(3)
    labels = _labels(rng)
    truth = _truth(labels, rng)
    sigma_k = np.full(S_TRUE.size, 0.1)
    sigma = np.broadcast_to(sigma_k, (labels.shape[0], S_TRUE.size)).copy()
    x, _ = _draw(truth, labels, rng, sigma=sigma)
    model = fit_cannon(labels, x, sigma, label_names=LABEL_NAMES, scatter="median_chi2")
    assert model.scatter_mode == "median_chi2"

    ratio = (x - model.predict(labels)) ** 2 / (sigma**2 + model.s2)
    positive = model.s2 > 0
    np.testing.assert_allclose(np.median(ratio, axis=0)[positive], 1.0, atol=2e-3)
    assert np.all(np.median(ratio, axis=0)[~positive] <= 1.0 + 2e-3)

    m = stats.chi2.median(1)
    var = sigma_k**2 + truth.s2
    expected = np.maximum(m * var - sigma_k**2, 0.0)
    # standard error of a sample median of var·χ²₁: var · sqrt(¼/n) / pdf_χ²₁(m)
    se = var * 0.5 / np.sqrt(labels.shape[0]) / stats.chi2.pdf(m, 1)
    assert np.all(np.abs(model.s2 - expected) < 5 * se), (model.s2 - expected) / se
    assert np.all(model.s2[S_TRUE < 0.1] == 0.0)  # χ²-median already < 1 at s² = 0

    # ML on the same data recovers the injected s²
    ml = fit_cannon(labels, x, sigma, label_names=LABEL_NAMES, scatter="ml")
    se_ml = np.sqrt(2.0 / labels.shape[0]) * var
    assert np.all(np.abs(ml.s2 - truth.s2) < 4 * se_ml)


def test_order_one() -> None:
    rng = np.random.default_rng(4)
    labels = _labels(rng)
    truth = _truth(labels, rng, order=1)
    x, sigma = _draw(truth, labels, rng)
    model = fit_cannon(labels, x, sigma, label_names=LABEL_NAMES, order=1)
    assert model.order == 1 and model.theta.shape == (S_TRUE.size, 4)
    assert model.term_names == ("1", *LABEL_NAMES)
    z = (model.theta - truth.theta) / _theta_standard_errors(truth, labels, sigma)
    assert np.abs(z).max() < 5.0
    big = S_TRUE >= 0.1
    np.testing.assert_allclose(model.scatter[big], S_TRUE[big], rtol=0.05)


@pytest.mark.parametrize("scatter", ["ml", "median_chi2"])
def test_zero_weight_entries_are_ignored(scatter: str) -> None:
    rng = np.random.default_rng(5)
    labels = _labels(rng, 2001)
    truth = _truth(labels, rng)
    x, sigma = _draw(truth, labels, rng)
    bad = rng.random(x.shape) < 0.05
    bad[:, 0] = False  # one coefficient untouched

    keep = fit_cannon(labels, x, sigma, label_names=LABEL_NAMES, scatter=scatter, weights_mask=~bad)

    x_bad = np.where(bad, 1e6, x)
    for sigma_flag in (0.0, -1.0, np.nan, np.inf):
        flagged = fit_cannon(
            labels, x_bad, np.where(bad, sigma_flag, sigma), label_names=LABEL_NAMES, scatter=scatter
        )
        np.testing.assert_allclose(flagged.theta, keep.theta, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(flagged.s2, keep.s2, rtol=1e-10, atol=1e-15)
    nan_x = fit_cannon(labels, np.where(bad, np.nan, x), sigma, label_names=LABEL_NAMES, scatter=scatter)
    np.testing.assert_allclose(nan_x.theta, keep.theta, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(nan_x.s2, keep.s2, rtol=1e-10, atol=1e-15)

    # the corrupted entries, weighted, would have wrecked the fit; masked, it is still a good one
    unflagged = fit_cannon(labels, x_bad, sigma, label_names=LABEL_NAMES, scatter=scatter)
    assert np.abs(unflagged.theta[1:] - truth.theta[1:]).max() > 1e3
    z = (keep.theta - truth.theta) / _theta_standard_errors(truth, labels, sigma)
    assert np.abs(z).max() < 5.5  # ~5 % fewer points per coefficient than the SE assumes


def test_npz_round_trip(tmp_path) -> None:
    rng = np.random.default_rng(6)
    labels = _labels(rng, 1001)
    truth = _truth(labels, rng)
    x, sigma = _draw(truth, labels, rng)
    model = fit_cannon(labels, x, sigma, label_names=LABEL_NAMES, scatter="median_chi2")
    path = tmp_path / "cannon.npz"
    model.to_npz(path)
    with np.load(path, allow_pickle=False) as data:  # plain arrays only
        assert set(data.files) == {"label_names", "fiducial", "scale", "theta", "s2", "order", "scatter_mode"}
    loaded = CannonModel.from_npz(path)
    assert loaded.label_names == LABEL_NAMES
    assert loaded.order == 2 and loaded.scatter_mode == "median_chi2"
    fresh = _labels(rng, 50)
    np.testing.assert_array_equal(loaded.predict(fresh), model.predict(fresh))
    np.testing.assert_array_equal(loaded.s2, model.s2)


def test_normalised_residuals_are_standard_normal_on_fresh_data() -> None:
    rng = np.random.default_rng(7)
    labels = _labels(rng)
    truth = _truth(labels, rng)
    x, sigma = _draw(truth, labels, rng)
    model = fit_cannon(labels, x, sigma, label_names=LABEL_NAMES)

    fresh_labels = _labels(rng)
    fresh_x, fresh_sigma = _draw(truth, fresh_labels, rng)
    r = model.normalised_residuals(fresh_labels, fresh_x, fresh_sigma)
    assert r.shape == fresh_x.shape
    n = fresh_x.shape[0]
    assert np.abs(r.mean(axis=0)).max() < 5 / np.sqrt(n)  # 5 standard errors of a mean of N(0, 1)
    assert np.abs(r.std(axis=0) - 1.0).max() < 5 / np.sqrt(2 * n)  # … and of a standard deviation
    assert stats.kstest(r.ravel(), "norm").pvalue > 1e-3

    r_nan = model.normalised_residuals(fresh_labels[:3], np.full((3, model.n_pix), np.nan), fresh_sigma[:3])
    assert np.isnan(r_nan).all()


def test_non_finite_label_raises_naming_it() -> None:
    rng = np.random.default_rng(8)
    labels = _labels(rng, 101)
    labels[[3, 7], 1] = np.nan
    labels[5, 1] = np.inf
    x = rng.normal(size=(labels.shape[0], 2))
    with pytest.raises(ValueError, match=r"logg \(3 stars\)") as info:
        fit_cannon(labels, x, np.ones_like(x), label_names=LABEL_NAMES)
    assert "teff" not in str(info.value) and "m_h" not in str(info.value)


def test_bad_arguments() -> None:
    rng = np.random.default_rng(9)
    labels = _labels(rng, 101)
    x = rng.normal(size=(labels.shape[0], 3))
    sigma = np.ones_like(x)
    with pytest.raises(ValueError, match="scatter"):
        fit_cannon(labels, x, sigma, label_names=LABEL_NAMES, scatter="fmin")
    with pytest.raises(ValueError, match="label names"):
        fit_cannon(labels, x, sigma, label_names=LABEL_NAMES[:2])
    with pytest.raises(ValueError, match="weights_mask"):
        fit_cannon(labels, x, sigma, label_names=LABEL_NAMES, weights_mask=np.ones((3, 3), bool))
    sigma[:95, 2] = np.nan  # 6 usable entries < 10 terms + 1
    with pytest.raises(ValueError, match=r"coefficients \[2\]"):
        fit_cannon(labels, x, sigma, label_names=LABEL_NAMES)
    flat = labels.copy()
    flat[:, 2] = -0.2
    with pytest.raises(ValueError, match=r"without spread.*: m_h"):
        fit_cannon(flat, x, np.ones_like(x), label_names=LABEL_NAMES)
