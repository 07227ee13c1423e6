"""The outlier-search arithmetic of paper 003 (``latentsky.bgs.metrics``) on inputs whose answers are known:
ranks, recall, the PCA baseline, the redshift-invariance ratio and the latent space's dimensionality."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from latentsky.bgs.autoencoder import SpectraTensors, SpenderSettings
from latentsky.bgs.catalog import Scores, outlier_ranks
from latentsky.bgs.metrics import (
    FIDELITY_LOSS_PAPER,
    REDSHIFT_INVARIANCE_PAPER,
    augmented_latents,
    catalog_metrics,
    invariance_ratio,
    latent_dimensionality,
    likelihood_ratio_medians,
    outlier_counts,
    outlier_recall,
    outlier_search,
    pca_baseline,
    pca_chi2,
    redshift_invariance,
    split_fidelity,
)


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


# ---------------------------------------------------------------------------------------------------------
# The metrics document of the bgs_catalog rule
# ---------------------------------------------------------------------------------------------------------


def test_split_fidelity_is_the_mean_loss_and_median_chi2_per_split():
    loss = np.array([1.0, 2.0, 3.0, 10.0], dtype=np.float32)
    chi2 = np.array([1.0, 5.0, 2.0, 7.0])
    split = np.array(["train", "train", "test", "train"])
    f = split_fidelity(loss, chi2, split)
    assert list(f) == ["fidelity_loss", "fidelity_loss_paper", "reduced_chi2_median"]
    # No validation spectra: no "val" entry; the splits in train, val, test order.
    assert list(f["fidelity_loss"]) == ["train", "test"]
    assert f["fidelity_loss"]["train"] == pytest.approx(13 / 3) and f["fidelity_loss"]["test"] == 3.0
    assert f["reduced_chi2_median"] == {"train": 5.0, "test": 2.0}
    assert f["fidelity_loss_paper"] == {"train": 0.384, "val": 0.391, "test": 0.386} == FIDELITY_LOSS_PAPER
    assert all(type(v) is float for d in (f["fidelity_loss"], f["reduced_chi2_median"]) for v in d.values())


def test_redshift_invariance_beside_the_paper():
    # Two latents 1 apart, each copy displaced by 0.1: random pairs are 1 apart, own copies 0.1 → ratio 10.
    s = np.array([[0.0, 0.0], [1.0, 0.0]])
    r = redshift_invariance(s, s + np.array([0.0, 0.1]))
    assert list(r) == ["redshift_invariance_ratio", "redshift_invariance_ratio_paper"]
    assert r["redshift_invariance_ratio"] == pytest.approx(10.0)
    assert r["redshift_invariance_ratio_paper"] == REDSHIFT_INVARIANCE_PAPER == 21.0


def test_outlier_counts_and_likelihood_ratio_medians_by_hand():
    kinds = np.array(["galaxy", "star", "star", "blend", "galaxy", "galaxy"])
    llr = np.array([-1.0, 3.0, 5.0, 0.0, -3.0, 2.0])
    counts = outlier_counts(kinds != "galaxy", kinds)
    assert counts == {"star": 2, "blend": 1} and list(counts) == ["star", "blend"]  # most frequent first
    assert likelihood_ratio_medians(llr, kinds) == {"median_llr_stars": 4.0, "median_llr_galaxies": -1.0}
    no_stars = np.where(kinds == "star", "blend", kinds)
    assert likelihood_ratio_medians(llr, no_stars)["median_llr_stars"] is None


def test_pca_baseline_works_in_the_restframe():
    # Spectra linear in restframe wavelength, seen at different redshifts: in the span of two components
    # once moved to the restframe; one has a narrow restframe line no component has.
    wave_rest = np.linspace(4000.0, 5000.0, 101)
    wave_obs = np.linspace(3900.0, 8000.0, 2000)
    rng = np.random.default_rng(4)
    z = rng.uniform(0.0, 0.5, 40)
    a, b = rng.normal(size=40), rng.normal(size=40)
    lam = wave_obs[None, :] / (1 + z[:, None])
    flux = a[:, None] + b[:, None] * (lam - 4500.0) / 500.0
    flux[-1] += np.exp(-0.5 * ((lam[-1] - 4500.0) / 5.0) ** 2)
    ivar = np.ones_like(flux)
    train = np.arange(40) < 30
    chi2 = pca_baseline(flux, ivar, z, wave_obs, wave_rest, train, n_components=2)
    assert chi2.shape == (40,)
    assert chi2[:-1].max() < 1e-6
    assert chi2[-1] > 1e-3
    assert int(np.argmax(chi2)) == 39


def test_outlier_search_scores_flow_and_pca_rankings_against_the_truth():
    n = 100
    kinds = np.array(["galaxy"] * n, dtype=object)
    kinds[[0, 1]] = ["star", "blend"]
    kinds = kinds.astype(str)
    is_out = kinds != "galaxy"
    flow = np.zeros(n)
    flow[[0, 1]] = [10.0, 9.0]  # the flow ranks the star first, the blend second
    pca = np.arange(n, dtype=float)  # the PCA baseline ranks both last
    llr = np.where(kinds == "star", 4.0, -2.0)
    m = outlier_search(flow, pca, is_out, kinds, llr)
    assert list(m) == ["outlier_recall", "n_outliers", "stars_by_likelihood_ratio"]
    assert list(m["outlier_recall"]) == ["spender_flow", "pca_baseline"]
    # Top 1 %: one slot, the star; top 5 %: five slots, both.
    assert m["outlier_recall"]["spender_flow"] == {
        "top_1pct": {"all": 0.5, "blend": 0.0, "star": 1.0},
        "top_5pct": {"all": 1.0, "blend": 1.0, "star": 1.0},
    }
    assert m["outlier_recall"]["pca_baseline"]["top_5pct"]["all"] == 0.0
    assert m["n_outliers"] == {"star": 1, "blend": 1}
    assert m["stars_by_likelihood_ratio"] == {"median_llr_stars": 4.0, "median_llr_galaxies": -2.0}


class _MeanEncoder(torch.nn.Module):
    """A stand-in galaxy autoencoder whose latents (mean, 2 × mean) of a flat spectrum do not change when
    the spectrum is moved to another redshift."""

    def __init__(self, wave_rest: torch.Tensor):
        super().__init__()
        self.encoder = SimpleNamespace(n_latent=2)
        self.decoder = SimpleNamespace(wave_rest=wave_rest)

    def encode(self, spec: torch.Tensor) -> torch.Tensor:
        m = spec.mean(dim=1)
        return torch.stack([m, 2 * m], dim=1)


#: Metrics every catalog run reports, in order; the others need a test split or the truth.
ALWAYS_REPORTED = [
    "n_targets",
    "n_with_probability",
    "fidelity_loss",
    "fidelity_loss_paper",
    "reduced_chi2_median",
    "galaxy_latent_dimensionality",
]


def _fake_catalog(with_test: bool = True):
    """Eight targets (one flagged), flat spectra, a mean encoder and known scores."""
    wave_obs = torch.linspace(4000.0, 8000.0, 50)
    ae = _MeanEncoder(torch.linspace(3000.0, 8000.0, 60))
    models = SimpleNamespace(galaxy_ae=ae, instrument=SimpleNamespace(wave_obs=wave_obs))
    split = ["train", "train", "train", "val", "test", "test", "train", "test"]
    if not with_test:
        split[5] = "train"
    spectra = pd.DataFrame(
        {
            "target_id": np.arange(10, 18),
            "z": np.linspace(0.05, 0.4, 8),
            "flags": [0, 0, 0, 0, 0, 0, 0, 1],
            "split": split,
        }
    )
    usable = (spectra["flags"] == 0).to_numpy()
    level = torch.arange(1.0, 8.0)[:, None]  # seven usable flat spectra at levels 1…7
    data = SpectraTensors(
        level.expand(7, 50).clone(),
        torch.ones(7, 50),
        torch.tensor(spectra["z"][usable].to_numpy(np.float32)),
    )
    log_p = np.array([5.0, 4.0, -9.0, 3.0, 2.0, -8.0, 1.0, np.nan])  # rows 2 and 5 least probable
    llr = np.array([-1.0, -2.0, 6.0, -3.0, -4.0, 0.5, -5.0, np.nan])
    catalog = spectra[["target_id", "z", "flags"]].assign(log_p_galaxy=log_p, log_likelihood_ratio=llr)
    latents = ae.encode(data.spec).numpy()
    loss = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 7.0, 6.0], dtype=np.float32)
    chi2 = np.array([2.0, 1.0, 4.0, 8.0, 3.0, 5.0, 9.0])
    scores = Scores(catalog, usable, data, latents, loss, chi2)
    truth = pd.DataFrame(  # reversed (row 7 first): catalog_metrics aligns it on target_id
        {
            "target_id": np.arange(17, 9, -1),
            "is_outlier": [False, False, True, False, False, True, False, False],
            "kind": ["galaxy", "galaxy", "star", "galaxy", "galaxy", "blend", "galaxy", "galaxy"],
        }
    )
    return spectra, scores, models, truth


def test_augmented_latents_of_an_invariant_encoder_equal_the_originals():
    _, scores, models, _ = _fake_catalog()
    settings = SpenderSettings(n_latent=2, z_max=0.5, noise_scale=0.0)
    s_aug = augmented_latents(models.galaxy_ae, models.instrument, scores.data, settings, 3, "cpu")
    np.testing.assert_array_equal(s_aug, scores.latents)
    assert s_aug.shape == (7, 2)


def test_catalog_metrics_of_a_constructed_catalog():
    spectra, scores, models, truth = _fake_catalog()
    settings = SpenderSettings(n_latent=2, z_max=0.5, noise_scale=0.0)
    m = catalog_metrics(
        spectra, scores, models, settings, seed=1, device="cpu", pca_components=1, truth=truth
    )
    assert list(m) == [
        *ALWAYS_REPORTED,
        "redshift_invariance_ratio",
        "redshift_invariance_ratio_paper",
        "outlier_recall",
        "n_outliers",
        "stars_by_likelihood_ratio",
    ]
    assert m["n_targets"] == 8 and m["n_with_probability"] == 7
    # Usable rows: train 0, 1, 2, 6; val 3; test 4, 5 (row 7 is flagged).
    assert m["fidelity_loss"] == {"train": 3.0, "val": 4.0, "test": 6.0}
    assert m["reduced_chi2_median"] == {"train": 3.0, "val": 8.0, "test": 4.0}
    # Latents (m, 2m) lie on one line.
    assert m["galaxy_latent_dimensionality"]["participation_ratio"] == pytest.approx(1.0)
    # The augmented copies of flat spectra have the same latents: own-copy distance 0.
    assert m["redshift_invariance_ratio"] == float("inf") and m["redshift_invariance_ratio_paper"] == 21.0
    # Seven scored, outliers: row 2 (blend, least probable) and row 5 (star, second); top 1 % and 5 %: 1 slot.
    assert m["outlier_recall"]["spender_flow"] == {
        "top_1pct": {"all": 0.5, "blend": 1.0, "star": 0.0},
        "top_5pct": {"all": 0.5, "blend": 1.0, "star": 0.0},
    }
    assert set(m["outlier_recall"]["pca_baseline"]) == {"top_1pct", "top_5pct"}
    assert m["n_outliers"] == {"blend": 1, "star": 1}
    assert m["stars_by_likelihood_ratio"] == {"median_llr_stars": 0.5, "median_llr_galaxies": -3.0}


def test_catalog_metrics_leave_out_what_the_data_cannot_give():
    spectra, scores, models, _ = _fake_catalog(with_test=False)
    settings = SpenderSettings(n_latent=2, z_max=0.5, noise_scale=0.0)
    m = catalog_metrics(spectra, scores, models, settings, seed=1, device="cpu", pca_components=1)
    # One test spectrum: no invariance ratio; no truth: no outlier search.
    assert list(m) == ALWAYS_REPORTED
    assert m["fidelity_loss"] == pytest.approx({"train": 3.8, "val": 4.0, "test": 5.0})


def test_training_convergence_reads_the_last_tenth_of_the_validation_curve():
    from latentsky.bgs.metrics import training_convergence

    epochs = np.arange(40)
    still_falling = pd.DataFrame({"val_fidelity": 1.0 + 2.0 * np.exp(-epochs / 100)})
    flat = pd.DataFrame({"val_fidelity": 1.0 + 2.0 * np.exp(-epochs / 2)})
    a, b = training_convergence(still_falling), training_convergence(flat)
    # The last 4 epochs: slope −2/100 · e^(−0.375) ≈ −0.0137 per epoch, ×40 epochs over the final loss 2.36.
    assert a["last_10pct_slope_per_epoch"] == pytest.approx(-0.02 * np.exp(-0.375), rel=0.02)
    assert a["relative_change_per_run"] == pytest.approx(-0.0137 * 40 / 2.36, rel=0.03)
    assert abs(b["relative_change_per_run"]) < 1e-5 and b["epochs"] == 40
    assert (
        training_convergence(pd.DataFrame({"val_fidelity": [1.0, 0.9]}))["last_10pct_slope_per_epoch"] is None
    )
