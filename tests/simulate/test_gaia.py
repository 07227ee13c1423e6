"""The simulated Gaia survey, its intrinsic CMD and its DR2-like error model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import default_sources_config

from latentsky.extinction import CRANMER2020
from latentsky.io import healpix
from latentsky.simulate import gaia_errors as ge
from latentsky.simulate.cmd import (
    DEFAULT_POPULATION_FRACTIONS,
    MS_ANCHORS,
    POPULATIONS,
    bp_g_from_bp_rp,
    sample_cluster_cmd,
    sample_cmd,
)
from latentsky.simulate.dust import SimulatedDustMap
from latentsky.simulate.gaia import G_BRIGHT_LIMIT, OBSERVED_COLUMNS, TRUTH_COLUMNS, simulate_gaia_survey

# The schema's defaults: the map the embedded default config builds.
DUST_CFG = default_sources_config()["dust"]["simulated"]
SURVEY_CFG = {
    "n_stars": 20000,
    "g_limit": 20.7,
    "bp_rp_missing_fraction": 0.05,
    "bad_astrometry_fraction": 0.06,
    "disc": {
        "scale_length_kpc": 2.6,
        "scale_height_kpc": 0.3,
        "sun_r_kpc": 8.2,
        "sun_z_kpc": 0.02,
        "max_distance_kpc": 10.0,
    },
    "cluster": {
        "ra_deg": 132.85,
        "dec_deg": 11.81,
        "distance_pc": 840.0,
        "n_members": 400,
        "radius_pc": 3.0,
        "distance_spread_pc": 3.0,
    },
}


@pytest.fixture(scope="module")
def dust() -> SimulatedDustMap:
    return SimulatedDustMap.from_config(DUST_CFG, seed=3)


@pytest.fixture(scope="module")
def survey(dust):
    return simulate_gaia_survey(SURVEY_CFG, dust, seed=11)


def _binomial_tol(p: float, n: int, k: float = 4.0) -> float:
    """k-sigma binomial tolerance on a fraction p measured from n trials."""
    return k * np.sqrt(p * (1 - p) / n)


# --------------------------------------------------------------------------------------------------
# Survey structure
# --------------------------------------------------------------------------------------------------
def test_rows_ids_columns_and_dtypes(survey):
    obs, truth = survey
    assert len(obs) == len(truth) == SURVEY_CFG["n_stars"]
    assert np.array_equal(obs["source_id"].to_numpy(), truth["source_id"].to_numpy())
    assert obs["source_id"].is_unique and obs["source_id"].is_monotonic_increasing
    assert list(obs.columns) == list(OBSERVED_COLUMNS)
    assert list(truth.columns) == list(TRUTH_COLUMNS)
    for name, dtype in OBSERVED_COLUMNS.items():
        assert obs[name].dtype == np.dtype(dtype), name
    assert set(truth["population"]) <= set(POPULATIONS)


def test_source_id_encodes_level12_icrs_pixel(survey):
    obs, _ = survey
    sid = obs["source_id"].to_numpy()
    assert np.array_equal(
        healpix.source_id_to_healpix(sid, 12),
        healpix.radec_to_healpix(obs["ra"].to_numpy(), obs["dec"].to_numpy(), 12),
    )


def test_truth_is_self_consistent(survey, dust):
    obs, truth = survey
    d = truth["true_distance_pc"].to_numpy()
    np.testing.assert_allclose(truth["true_parallax_mas"], 1000.0 / d, rtol=1e-12)
    np.testing.assert_allclose(
        truth["true_reddening"], dust.reddening_truth(obs["l"].to_numpy(), obs["b"].to_numpy(), d), rtol=1e-12
    )
    assert d.max() <= 1000.0 * SURVEY_CFG["disc"]["max_distance_kpc"] * (1 + 1e-12)


def test_magnitude_limit(survey):
    obs, _ = survey
    g = obs["phot_g_mean_mag"].to_numpy()
    # float32 storage rounds 20.7 by up to 1e-6 mag.
    assert g.max() <= SURVEY_CFG["g_limit"] + 2e-6
    assert g.min() >= G_BRIGHT_LIMIT - 2e-6
    # It is a magnitude-limited sample: the counts pile up towards the limit.
    assert np.mean(g > 19.0) > 0.4


def test_magnitudes_follow_fluxes_and_dr2_zero_points(survey):
    obs, _ = survey
    for band, zp in (("g", 25.6884), ("bp", 25.3514), ("rp", 24.7619)):
        flux = obs[f"phot_{band}_mean_flux"].to_numpy()
        mag = obs[f"phot_{band}_mean_mag"].to_numpy().astype(np.float64)
        ok = np.isfinite(flux)
        # float32 magnitudes near 20–30 carry a rounding of ≤ 2e-6 mag; 1e-5 is a few ulp.
        np.testing.assert_allclose(mag[ok], zp - 2.5 * np.log10(flux[ok]), atol=1e-5, rtol=0)
    bp, rp, g = (
        obs[c].to_numpy().astype(np.float64)
        for c in ("phot_bp_mean_mag", "phot_rp_mean_mag", "phot_g_mean_mag")
    )
    ok = np.isfinite(bp)
    np.testing.assert_allclose(obs["bp_rp"].to_numpy()[ok], (bp - rp)[ok], atol=1e-5)
    np.testing.assert_allclose(obs["bp_g"].to_numpy()[ok], (bp - g)[ok], atol=1e-5)


def test_observed_g_is_true_photometry_plus_distance_and_dust(survey):
    obs, truth = survey
    g = obs["phot_g_mean_mag"].to_numpy().astype(np.float64)
    dm = 5.0 * np.log10(truth["true_distance_pc"].to_numpy()) - 5.0
    expected = truth["true_abs_g"].to_numpy() + dm + CRANMER2020.a_g * truth["true_reddening"].to_numpy()
    sigma_g = ge.MAG_PER_FRACTIONAL_FLUX * obs["phot_g_mean_flux_error"] / obs["phot_g_mean_flux"]
    pull = (g - expected) / sigma_g.to_numpy()
    # Noise is drawn in flux; at G ≤ 20.7 the flux S/N is > 50 so the magnitude pull is Gaussian to
    # < 1%. With 20000 stars the std of a unit normal is 1 ± 0.005; float32 rounding of bright G
    # (≤ 1e-6 mag vs σ ≥ 3e-4) adds nothing visible. Mean within 0.05 and std within 0.05 are ~10σ wide.
    assert abs(pull.mean()) < 0.05
    assert abs(pull.std() - 1.0) < 0.05
    assert np.abs(pull).max() < 6.0


def test_observed_colours_are_reddened_intrinsic_colours(survey):
    obs, truth = survey
    e = truth["true_reddening"].to_numpy()
    ok = ~truth["missing_bp_rp"].to_numpy() & (obs["phot_g_mean_mag"].to_numpy() < 17)
    resid_bprp = obs["bp_rp"].to_numpy()[ok] - (truth["true_bp_rp0"].to_numpy() + CRANMER2020.e_bp_rp * e)[ok]
    resid_bpg = obs["bp_g"].to_numpy()[ok] - (truth["true_bp_g0"].to_numpy() + CRANMER2020.e_bp_g * e)[ok]
    # At G < 17 the BP and RP errors are ≤ ~0.02 mag: residuals are noise only (no offsets, no mix-ups).
    assert abs(np.median(resid_bprp)) < 0.005 and np.quantile(np.abs(resid_bprp), 0.99) < 0.1
    assert abs(np.median(resid_bpg)) < 0.005 and np.quantile(np.abs(resid_bpg), 0.99) < 0.1


# --------------------------------------------------------------------------------------------------
# Astrometry
# --------------------------------------------------------------------------------------------------
def test_parallax_pulls(survey):
    obs, truth = survey
    pull = ((obs["parallax"] - truth["true_parallax_mas"]) / obs["parallax_error"]).to_numpy()
    bad = truth["bad_astrometry"].to_numpy()
    good_pull = pull[~bad]
    # ~18800 good stars: the sample std of N(0, 1) is 1 ± 0.005 and the mean 0 ± 0.007; 0.05 is the
    # stated tolerance and still > 7σ.
    assert abs(good_pull.std() - 1.0) < 0.05
    assert abs(good_pull.mean()) < 0.05
    # Bad astrometry: the parallax is worse than its quoted error, by a factor ≈ √(1 + 4 (RUWE² − 1)) ≳ 2.
    assert pull[bad].std() > 1.8


def test_negative_parallaxes_are_kept(survey):
    obs, _ = survey
    # Most catalog stars are faint and kpc away (σ_ϖ ≳ ϖ): about a quarter come out negative, as in DR2.
    frac = np.mean(obs["parallax"].to_numpy() < 0)
    assert 0.1 < frac < 0.4


def test_ruwe_tail_matches_bad_astrometry_fraction(survey):
    obs, truth = survey
    ruwe = obs["ruwe"].to_numpy()
    bad = truth["bad_astrometry"].to_numpy()
    p, n = SURVEY_CFG["bad_astrometry_fraction"], len(obs)
    assert abs(np.mean(ruwe > 1.4) - p) < _binomial_tol(p, n)
    assert np.array_equal(ruwe > 1.4, bad)
    assert np.all(ruwe > 0.8)
    # RUWE = sqrt(chi2 / (n_good - 5)) with u0 = 1, to float32 precision.
    recomputed = ge.ruwe_from_chi2_al(obs["astrometric_chi2_al"], obs["astrometric_n_good_obs_al"])
    np.testing.assert_allclose(recomputed, ruwe, rtol=1e-6)
    n_good = obs["astrometric_n_good_obs_al"].to_numpy()
    assert n_good.min() >= 60 and 150 < np.median(n_good) < 320


# --------------------------------------------------------------------------------------------------
# Photometric completeness, footprint, cluster
# --------------------------------------------------------------------------------------------------
def test_missing_bp_rp_rises_towards_faint_limit(survey):
    obs, truth = survey
    missing = truth["missing_bp_rp"].to_numpy()
    g = obs["phot_g_mean_mag"].to_numpy()
    bright, faint = g < 18.5, g > 20.3
    p = SURVEY_CFG["bp_rp_missing_fraction"]
    # Bright stars: the configured fraction (the logistic rise adds < 0.002 at G < 18.5).
    assert abs(missing[bright].mean() - p) < _binomial_tol(p, bright.sum()) + 0.002
    # Faint: the rise (≈ 0.3 at G ≈ 20.5) dominates.
    assert missing[faint].mean() > missing[bright].mean() + 0.15
    for col in (
        "phot_bp_mean_flux",
        "phot_bp_mean_flux_error",
        "phot_bp_mean_mag",
        "phot_rp_mean_flux",
        "phot_rp_mean_flux_error",
        "phot_rp_mean_mag",
        "bp_rp",
        "bp_g",
    ):
        assert np.array_equal(np.isnan(obs[col].to_numpy()), missing), col
    assert not obs[["phot_g_mean_mag", "parallax", "ra", "dec"]].isna().any().any()


def test_in_dust_footprint_flag(survey, dust):
    obs, truth = survey
    flag = truth["in_dust_footprint"].to_numpy()
    ra, dec = obs["ra"].to_numpy(), obs["dec"].to_numpy()
    assert np.array_equal(flag, dust.in_footprint(ra, dec) & ~dust.in_hole(ra, dec))
    # Footprint pixels are ~3.7° across: well south of −30° nothing is covered, well north everything
    # except the holes.
    assert not flag[dec < -33].any()
    north = dec > -27
    assert np.array_equal(flag[north], ~dust.in_hole(ra[north], dec[north]))
    assert 0.3 < flag.mean() < 0.9


def test_cluster_members(survey):
    obs, truth = survey
    member = truth["cluster_member"].to_numpy()
    n = member.sum()
    # 400 drawn at 840 pc (DM 9.6): everything brighter than M_G ≈ 11 passes G ≤ 20.7, i.e. most of them.
    assert 150 < n <= 400
    d = truth["true_distance_pc"].to_numpy()[member]
    # Line-of-sight σ = 3 pc: the median of n ≈ 250 is 840 ± 0.25 pc; 1.5 pc is 6σ.
    assert abs(np.median(d) - 840.0) < 1.5
    assert 2.0 < d.std() < 4.5
    # Across the sky: σ = 3 pc / 840 pc = 0.2° per axis; all members lie within 1.5°.
    sep = np.hypot(
        (obs["ra"].to_numpy()[member] - 132.85) * np.cos(np.deg2rad(11.81)),
        obs["dec"].to_numpy()[member] - 11.81,
    )
    assert sep.max() < 1.5
    pops = truth["population"].to_numpy()[member]
    assert set(pops) <= {"main_sequence", "giant_branch", "red_clump"}
    assert np.mean(pops == "main_sequence") > 0.8


def test_same_seed_same_frames_other_seed_differs(dust, survey):
    small = dict(SURVEY_CFG, n_stars=3000)
    a_obs, a_truth = simulate_gaia_survey(small, dust, seed=5)
    b_obs, b_truth = simulate_gaia_survey(small, dust, seed=5)
    pd.testing.assert_frame_equal(a_obs, b_obs)
    pd.testing.assert_frame_equal(a_truth, b_truth)
    c_obs, _ = simulate_gaia_survey(small, dust, seed=6)
    assert not np.array_equal(a_obs["source_id"].to_numpy(), c_obs["source_id"].to_numpy())
    assert not np.allclose(a_obs["parallax"].to_numpy(), c_obs["parallax"].to_numpy())


def test_parallax_zero_point_option(dust):
    cfg = dict(SURVEY_CFG, n_stars=2000, parallax_zero_point_mas=-0.029)
    obs, truth = simulate_gaia_survey(cfg, dust, seed=1)
    ok = ~truth["bad_astrometry"].to_numpy()
    shift = (obs["parallax"] - truth["true_parallax_mas"]).to_numpy()[ok]
    err = obs["parallax_error"].to_numpy()[ok]
    # Inverse-variance mean of the residuals: σ ≈ 1/√Σ(1/σ²) ≈ 0.002 mas for 2000 stars; 0.01 is 5σ.
    mean = np.sum(shift / err**2) / np.sum(1 / err**2)
    assert abs(mean + 0.029) < 0.01


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("n_stars", 0),
        ("g_limit", "20.7"),
        ("bp_rp_missing_fraction", 1.5),
        ("bad_astrometry_fraction", -0.1),
        ("disc.scale_height_kpc", 0.0),
        ("disc.max_distance_kpc", float("inf")),
        ("cluster.dec_deg", 95.0),
        ("cluster.n_members", 10.5),
    ],
)
def test_bad_config_value_names_the_key(dust, path, value):
    cfg = {k: (dict(v) if isinstance(v, dict) else v) for k, v in SURVEY_CFG.items()}
    *parents, key = path.split(".")
    block = cfg[parents[0]] if parents else cfg
    block[key] = value
    with pytest.raises(ValueError, match=path.replace(".", r"\.")):
        simulate_gaia_survey(cfg, dust, seed=0)


def test_missing_or_unknown_config_keys_are_named(dust):
    cfg = {k: (dict(v) if isinstance(v, dict) else v) for k, v in SURVEY_CFG.items()}
    del cfg["disc"]["sun_r_kpc"]
    with pytest.raises(ValueError, match=r"disc\.sun_r_kpc"):
        simulate_gaia_survey(cfg, dust, seed=0)
    with pytest.raises(ValueError, match="unknown key 'n_star'"):
        simulate_gaia_survey(dict(SURVEY_CFG, n_star=5), dust, seed=0)


def test_cluster_larger_than_catalog_is_an_error(dust):
    with pytest.raises(ValueError, match="cluster.n_members"):
        simulate_gaia_survey(dict(SURVEY_CFG, n_stars=10), dust, seed=0)


# --------------------------------------------------------------------------------------------------
# Intrinsic CMD
# --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cmd_sample():
    return sample_cmd(300_000, np.random.default_rng(0))


def test_cmd_population_fractions(cmd_sample):
    n = cmd_sample["population"].size
    for name, p in DEFAULT_POPULATION_FRACTIONS.items():
        assert abs(np.mean(cmd_sample["population"] == name) - p) < _binomial_tol(p, n), name
    codes = cmd_sample["population_code"]
    assert np.array_equal(np.asarray(POPULATIONS)[codes], cmd_sample["population"])


def test_cmd_regions(cmd_sample):
    pop, m, c = cmd_sample["population"], cmd_sample["abs_g"], cmd_sample["bp_rp0"]
    rc, wd, ms, gb = (pop == p for p in ("red_clump", "white_dwarf", "main_sequence", "giant_branch"))
    # Red clump: M_G = 0.44, σ 0.2 → median within 0.01 for ~1200 stars; the tolerance asked is 0.1.
    assert abs(np.median(m[rc]) - 0.44) < 0.1
    assert abs(np.median(c[rc]) - 1.20) < 0.03
    assert np.all((m[wd] > 10.0) & (m[wd] < 15.5))
    assert np.all((c[wd] > -0.6) & (c[wd] < 1.3))
    # Main sequence spans B-type to mid-M dwarfs, mostly faint (per volume).
    assert np.quantile(m[ms], 0.001) < 0.5 and np.quantile(m[ms], 0.999) > 12.5
    assert np.median(m[ms]) > 8.0
    # Sun-like dwarfs (M_G 4.6–4.7): unevolved mean BP−RP 0.82 (Mamajek G2V); evolution and binaries move
    # redder stars up into the bin, so allow +0.1.
    sun = ms & (np.abs(m - 4.65) < 0.05)
    assert 0.75 < np.median(c[sun]) < 0.95
    # Giants: subgiants to the RGB tip, always redder than the turn-off.
    assert m[gb].min() < -2.3 and m[gb].max() > 3.5
    assert c[gb].max() > 2.2 and np.quantile(c[gb], 0.001) > 0.6
    # Colour rises monotonically down the main sequence (median per 1-mag bin).
    med = [np.median(c[ms & (np.abs(m - x) < 0.5)]) for x in np.arange(1.0, 13.0)]
    assert np.all(np.diff(med) > 0)


def test_bp_g_follows_mamajek_relation():
    bprp = np.array([a[2] for a in MS_ANCHORS])
    grp = np.array([a[3] for a in MS_ANCHORS])
    np.testing.assert_allclose(bp_g_from_bp_rp(bprp), bprp - grp, atol=1e-12)
    # Sun (G2V): BP−RP 0.823, G−RP 0.459 → BP−G 0.364.
    assert bp_g_from_bp_rp(0.823) == pytest.approx(0.364, abs=1e-9)
    # Sequences differ a little (≤ 0.02 mag), not a lot.
    for pop in ("giant_branch", "red_clump", "white_dwarf"):
        diff = bp_g_from_bp_rp(np.array([0.5, 1.2, 2.0]), pop) - bp_g_from_bp_rp(np.array([0.5, 1.2, 2.0]))
        assert np.all(np.abs(diff) <= 0.021) and np.any(diff != 0)
    with pytest.raises(ValueError, match="unknown population"):
        bp_g_from_bp_rp(1.0, "halo")


def test_cluster_cmd_has_no_main_sequence_above_turnoff():
    s = sample_cluster_cmd(20000, np.random.default_rng(1), turnoff_abs_g=3.5)
    ms = s["population"] == "main_sequence"
    # Brighter than the turn-off only through the 0.12-mag scatter and unresolved binaries (≤ 0.75 mag).
    assert np.quantile(s["abs_g"][ms], 0.001) > 3.5 - 0.75 - 4 * 0.12
    assert np.mean(s["abs_g"][ms] < 3.5) < 0.1
    assert not np.any(s["population"] == "white_dwarf")


def test_population_fraction_validation():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="halo"):
        sample_cmd(10, rng, {"halo": 1.0})
    with pytest.raises(ValueError, match="not all zero"):
        sample_cmd(10, rng, {"main_sequence": 0.0})
    only_rc = sample_cmd(100, rng, {"red_clump": 1.0})
    assert np.all(only_rc["population"] == "red_clump")


# --------------------------------------------------------------------------------------------------
# Error model
# --------------------------------------------------------------------------------------------------
def test_parallax_error_dr2_anchors():
    # Lindegren et al. (2018): ≈0.04 mas at G < 15, ≈0.1 mas at G = 17, ≈0.7 mas at G = 20.
    s = ge.parallax_error(np.array([12.0, 15.0, 17.0, 20.0]))
    assert 0.02 < s[0] < 0.045
    assert s[1] == pytest.approx(0.04, abs=0.01)
    assert s[2] == pytest.approx(0.1, abs=0.02)
    assert s[3] == pytest.approx(0.7, abs=0.1)
    assert np.all(np.diff(ge.parallax_error(np.linspace(13, 21, 50))) > 0)
    # More along-scan observations, smaller error (∝ 1/√n).
    assert ge.parallax_error(17.0, 4 * ge.N_GOOD_OBS_REFERENCE) == pytest.approx(
        0.5 * ge.parallax_error(17.0)
    )


def test_photometric_errors_dr2_like():
    assert 0.0002 < ge.mag_error(12.0, "g") < 0.0005
    assert ge.mag_error(20.0, "g") == pytest.approx(0.01, rel=0.2)
    for band in ("bp", "rp"):
        assert 0.002 <= ge.mag_error(12.0, band) < 0.006
        assert 0.05 < ge.mag_error(20.0, band) < 0.25
    flux = ge.mag_to_flux(np.array([10.0, 15.0, 20.0]), "g")
    np.testing.assert_allclose(ge.flux_to_mag(flux, "g"), [10.0, 15.0, 20.0], atol=1e-12)
    np.testing.assert_allclose(
        ge.flux_error(flux, "g") / flux * ge.MAG_PER_FRACTIONAL_FLUX,
        ge.mag_error(np.array([10.0, 15.0, 20.0]), "g"),
        rtol=1e-12,
    )
    assert np.isnan(ge.flux_to_mag(-1.0, "bp"))
    with pytest.raises(ValueError, match="band"):
        ge.mag_error(15.0, "v")
