"""The outlier-search arithmetic of paper 003 (``latentsky.bgs_catalog``) on inputs whose answers are known:
ranks, recall, the PCA baseline, the redshift-invariance ratio and the latent space's dimensionality."""

from __future__ import annotations

import numpy as np
import pytest

from latentsky.bgs.catalog import outlier_ranks
from latentsky.bgs.metrics import invariance_ratio, latent_dimensionality, outlier_recall, pca_chi2


def test_outlier_ranks_start_at_the_least_probable_and_skip_flagged_rows():
    log_p = np.array([3.0, -1.0, np.nan, 0.5, -4.0])
    usable = np.array([True, True, True, False, True])
    assert outlier_ranks(log_p, usable).tolist() == [3, 2, 0, 0, 1]


def test_outlier_recall_counts_true_outliers_in_the_top_fraction_per_kind():
    n = 200
    score = np.arange(n, dtype=float)[::-1]  # object 0 is the most anomalous
    kinds = np.array(["galaxy"] * n, dtype=object)
    kinds[[0, 1, 150]] = "star"  # two of three stars in the top 1 % (2 slots)
    kinds[[5, 9, 199]] = "blend"  # two of three blends in the top 5 % (10 slots)
    is_out = kinds != "galaxy"
    r = outlier_recall(score, is_out, kinds.astype(str))
    assert r["top_1pct"] == {"all": pytest.approx(2 / 6), "star": pytest.approx(2 / 3), "blend": 0.0}
    assert r["top_5pct"]["all"] == pytest.approx(4 / 6)
    assert r["top_5pct"]["blend"] == pytest.approx(2 / 3)


def test_pca_baseline_fits_spectra_in_the_span_and_flags_the_rest():
    rng = np.random.default_rng(1)
    n_pix = 120
    x = np.linspace(0.0, 1.0, n_pix)
    basis = np.stack([np.ones(n_pix), x, np.sin(6 * x)])
    train = rng.normal(size=(300, 3)) @ basis
    w = np.full((300, n_pix), 1e4)
    inside = rng.normal(size=(5, 3)) @ basis
    bump = np.exp(-0.5 * ((x - 0.5) / 0.02) ** 2)  # a narrow line no component has
    data = np.vstack([inside, inside[0] + bump])
    chi2 = pca_chi2(train, w, data, np.full((6, n_pix), 1e4), n_components=3)
    assert chi2[:5].max() < 1e-12
    # The bump's part orthogonal to the 3 components stays in the residual: χ² ≈ w ∫ bump² / pixels.
    assert chi2[5] == pytest.approx(1e4 * (bump**2).sum() / n_pix, rel=0.1)


def test_invariance_ratio_is_random_pair_distance_over_own_copy_distance():
    rng = np.random.default_rng(2)
    s = rng.normal(size=(400, 6))
    # Copies displaced by 1/20 of the typical pair distance (√12 for unit Gaussians in 6-D, in mean: ≈3.3).
    shift = rng.normal(size=(400, 6))
    shift *= 0.05 * 3.3 / np.linalg.norm(shift, axis=1, keepdims=True)
    assert invariance_ratio(s, s + shift) == pytest.approx(20.0, rel=0.05)


def test_latent_dimensionality_counts_the_directions_in_use():
    rng = np.random.default_rng(3)
    iso = latent_dimensionality(rng.normal(size=(20000, 6)))
    assert iso["participation_ratio"] == pytest.approx(6.0, rel=0.02)
    assert iso["variance_fractions"] == sorted(iso["variance_fractions"], reverse=True)
    # Variances 4 : 1 : 1 : 0 : 0 : 0 in a rotated frame: (Σλ)²/Σλ² = 36/18 = 2.
    q, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    z = rng.normal(size=(20000, 6)) * np.sqrt([4.0, 1.0, 1.0, 0.0, 0.0, 0.0])
    d = latent_dimensionality(z @ q.T)
    assert d["participation_ratio"] == pytest.approx(2.0, rel=0.03)
    np.testing.assert_allclose(d["variance_fractions"][:3], [4 / 6, 1 / 6, 1 / 6], atol=0.01)
    # A collapsed latent space — every spectrum on one line — has one direction.
    t = rng.normal(size=(500, 1))
    line = latent_dimensionality(t * np.array([[1.0, -2.0, 0.5, 0.0, 3.0, 1.0]]))
    assert line["participation_ratio"] == pytest.approx(1.0, abs=1e-9)
    with pytest.raises(ValueError, match="latents"):
        latent_dimensionality(np.zeros(6))
