"""The toy "Kurucz" H-band synthesiser, its analytic Jacobian, label distribution and M2 instrument effects
(spec B2.1–B2.2; paper 002 §4).

Statistical tolerances are 5 standard errors of the statistic for the sample size used: SE(mean) = σ/√n,
SE(std) ≈ σ/√(2(n−1)), SE(fraction) = √(p(1−p)/n), SE(correlation) ≈ (1 − ρ²)/√n. Deterministic checks of the
formula use 1e-12 (float64 round-off of a few operations).
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from latentsky.simulate import apogee as ap

K_SE = 5.0
SEED = 1


@pytest.fixture(scope="module")
def grid():
    return ap.wavelength_grid()


@pytest.fixture(scope="module")
def line_list(grid):
    return ap.make_line_list(SEED, grid)


def _one_line(line_list: pd.DataFrame, kind: str, grid: np.ndarray, pixel: int, **updates) -> pd.DataFrame:
    """One line of ``kind`` moved onto the centre of ``pixel`` (so the pixel samples the line's peak)."""
    row = line_list[line_list["kind"] == kind].iloc[[0]].copy()
    row["wavelength"] = grid[pixel]
    for k, v in updates.items():
        row[k] = v
    return row.reset_index(drop=True)


def _sigma_kms(labels: np.ndarray, mass: float, resolution: float) -> float:
    """The spec's line width, written out independently: √(σ_LSF² + v_turb² + v_broad²/2 + kT/m) in km/s."""
    c = 299_792.458
    k_over_amu = 1.380649e-23 / 1.66053906660e-27 / 1e6
    sigma_lsf = c / resolution / (2.0 * np.sqrt(2.0 * np.log(2.0)))
    return np.sqrt(sigma_lsf**2 + labels[2] ** 2 + labels[3] ** 2 / 2 + k_over_amu * labels[0] / mass)


# --------------------------------------------------------------------------------------------------
# Grid and line list
# --------------------------------------------------------------------------------------------------
def test_grid_is_apogee_log_linear(grid):
    assert grid.shape == (2047,)
    assert np.log10(grid[0]) == pytest.approx(4.2005, abs=1e-12)
    np.testing.assert_allclose(np.diff(np.log10(grid)), 6e-6, rtol=1e-6)
    assert grid[0] < 15_880 and grid[-1] > 16_230  # contains the paper's Fig. 10 window
    full = ap.wavelength_grid(7167)
    step = np.diff(np.log10(full))
    assert full.shape == (7167,) and np.sum(step > 1.5 * 6e-6) == 2  # three chips
    # ASPCAP pixel 47 is apStar pixel 322 + 47 (Cycle_SN drops the blue end).
    assert np.log10(full[0]) == pytest.approx(4.179 + 6e-6 * 369, abs=1e-12)
    assert ap.wavelength_grid(7214).shape == (7214,)
    with pytest.raises(ValueError, match="n_pixels"):
        ap.wavelength_grid(6000)


def test_line_list_is_reproducible_and_has_the_specified_content(grid, line_list, tmp_path):
    pd.testing.assert_frame_equal(line_list, ap.make_line_list(SEED, grid))
    # the workflow keeps it as Parquet (spec B2.1): the round trip is lossless
    line_list.to_parquet(tmp_path / "linelist.parquet")
    pd.testing.assert_frame_equal(
        pd.read_parquet(tmp_path / "linelist.parquet"), line_list, check_dtype=False
    )
    assert not np.array_equal(line_list["wavelength"], ap.make_line_list(SEED + 1, grid)["wavelength"])
    assert list(line_list.columns) == list(ap.LINE_LIST_COLUMNS)
    strong = line_list[line_list["kind"] != "weak"]
    counts = strong["species"].str.split().str[0].value_counts().to_dict()
    assert counts == dict(ap.STRONG_LINE_COUNTS)
    assert (line_list["kind"] == "weak").sum() == ap.N_WEAK_LINES
    assert line_list["wavelength"].between(grid[0], grid[-1]).all()
    assert line_list["wavelength"].is_monotonic_increasing
    atomic = line_list[line_list["atomic"]]
    assert atomic["chi"].between(0, 6).all() and (line_list.loc[~line_list["atomic"], "chi"] == 0).all()
    assert set(atomic["gravity_power"]) == {-0.3, 0.4}
    assert ((atomic["ion"] == 1) == (atomic["gravity_power"] == 0.4)).all()
    # Molecules: CN on C and N, CO on C, OH on O and −½ C, with the θ powers 6, 5, 6.
    for sp, d, n in (("CN", {"C": 1, "N": 1}, 6), ("CO", {"C": 1}, 5), ("OH", {"O": 1, "C": -0.5}, 6)):
        rows = line_list[line_list["species"] == sp]
        for x in ap.ELEMENTS:
            assert (rows[f"dlogtau_{x}"] == d.get(x, 0.0)).all(), (sp, x)
        assert (rows["theta_power"] == n).all() and (rows["gravity_power"] == 0).all()
    depth = 1 - np.exp(-line_list["tau_ref"])
    assert depth[line_list["kind"] != "weak"].between(0.03, 0.5).all()
    assert depth[line_list["kind"] == "weak"].between(0.002, 0.02).all()
    # The full-size grid keeps the line density: 60 × 7167/2047 Fe lines.
    big = ap.make_line_list(SEED, ap.wavelength_grid(7167))
    assert (big["species"].str.startswith("Fe") & (big["kind"] == "atomic")).sum() == round(60 * 7167 / 2047)


# --------------------------------------------------------------------------------------------------
# The spectrum formula
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["atomic", "CN", "CO", "OH", "weak"])
def test_line_depth_at_the_reference_giant_is_tau_ref(grid, line_list, kind):
    one = _one_line(line_list, kind, grid, 1000)
    flux = ap.synthesise(ap.REFERENCE_LABELS, one, grid)[0]
    assert flux[1000] == pytest.approx(np.exp(-one["tau_ref"].iloc[0]), rel=1e-12)


@pytest.mark.parametrize("kind,ion", [("atomic", 0), ("atomic", 1), ("CN", 0), ("CO", 0), ("OH", 0)])
def test_central_optical_depth_follows_the_spec_tau_laws(grid, line_list, kind, ion):
    """−ln f at the line's pixel = τ σ_ref/σ, with τ written out from the spec's formulas."""
    updates = {"ion": ion, "gravity_power": {0: -0.3, 1: 0.4}[ion]} if kind == "atomic" else {}
    one = _one_line(line_list, kind, grid, 700, **updates)
    # the line list's τ⁰ must reproduce τ_ref at the reference giant
    row = one.iloc[0]
    labels = ap.sample_labels(6, seed=11)
    resolution = np.array([19_000, 20_000, 21_000, 22_500, 24_000, 25_000.0])
    scale = np.array([1.0, 1.1, 1.0, 1.1, 1.0, 1.0])
    flux = ap.synthesise(labels, one, grid, resolution=resolution, atomic_tau_scale=scale)
    ab = dict(zip(ap.ELEMENTS, labels[:, 4:].T, strict=True))
    theta = 5040 / labels[:, 0]
    if kind == "atomic":
        x = row["species"].split()[0]
        tau = (
            row["tau0"]
            * 10 ** ab[x]
            * np.exp(-row["chi"] * (theta - 5040 / 5772) * np.log(10))
            * (10 ** (labels[:, 1] - 4.438)) ** row["gravity_power"]
            * scale
        )
    else:
        power = {"CN": ab["C"] + ab["N"], "CO": ab["C"], "OH": ab["O"] - 0.5 * ab["C"]}[kind]
        tau = row["tau0"] * 10**power * theta ** {"CN": 6, "CO": 5, "OH": 6}[kind]
    sig = np.array([_sigma_kms(y, row["mass"], r) for y, r in zip(labels, resolution, strict=True)])
    sig_ref = _sigma_kms(ap.REFERENCE_LABELS, row["mass"], 22_500.0)
    # 1e-10: the constants above are CODATA 2018, astropy's may be a later CODATA (u differs by ~1e-9)
    np.testing.assert_allclose(-np.log(flux[:, 700]), tau * sig_ref / sig, rtol=1e-10)


def test_spectrum_is_one_far_from_lines_and_in_zero_one(grid, line_list):
    one = _one_line(line_list, "atomic", grid, 1000)
    flux = ap.synthesise(ap.REFERENCE_LABELS, one, grid)[0]
    # σ ≈ 1.8 pixels at the reference giant: beyond ±40 pixels the line has no effect at all.
    assert np.all(flux[:960] == 1.0) and np.all(flux[1041:] == 1.0)
    labels = ap.sample_labels(300, seed=5)
    full = ap.synthesise(labels, line_list, grid)
    assert np.all(full > 0) and np.all(full <= 1)
    assert np.all(full.max(axis=1) > 0.999)  # every spectrum reaches its continuum somewhere


def test_more_iron_deepens_iron_lines_only(grid, line_list):
    fe_only = line_list[line_list["species"].str.startswith("Fe ")].reset_index(drop=True)
    y = np.tile(ap.REFERENCE_LABELS, (2, 1))
    y[1, ap.LABEL_NAMES.index("[Fe/H]")] += 0.1
    f_fe = ap.synthesise(y, fe_only, grid)
    # τ of every Fe line × 10^0.1, so −ln f scales by exactly that wherever there is Fe absorption
    absorbing = f_fe[0] < 1
    # where −ln f > 1e-6, so that the round-off of f (1e-16) stays below 1e-10 of −ln f
    core = f_fe[0] < 1 - 1e-6
    np.testing.assert_allclose(np.log(f_fe[1, core]) / np.log(f_fe[0, core]), 10**0.1, rtol=1e-9)
    f_all = ap.synthesise(y, line_list, grid)
    assert np.all(f_all[1] <= f_all[0])
    np.testing.assert_array_equal(f_all[1][~absorbing], f_all[0][~absorbing])  # other lines untouched


def test_cn_depth_depends_on_c_and_n_only_through_their_sum(grid, line_list):
    cn = line_list[line_list["species"] == "CN"].reset_index(drop=True)
    ic, i_n = ap.LABEL_NAMES.index("[C/H]"), ap.LABEL_NAMES.index("[N/H]")
    y = np.tile(ap.REFERENCE_LABELS, (3, 1))
    y[1, [ic, i_n]] = [0.3, -0.3]  # same sum: the designed C/N ambiguity (paper Fig. 11)
    y[2, [ic, i_n]] = [0.3, 0.0]
    f = ap.synthesise(y, cn, grid)
    np.testing.assert_allclose(f[1], f[0], rtol=1e-12)
    assert np.min(f[2] - f[0]) < -0.01
    jac = ap.synthesise_jacobian(ap.REFERENCE_LABELS, cn, grid)[0]
    np.testing.assert_allclose(jac[ic], jac[i_n], rtol=1e-12)
    oh = line_list[line_list["species"] == "OH"].reset_index(drop=True)
    jac_oh = ap.synthesise_jacobian(ap.REFERENCE_LABELS, oh, grid)[0]
    np.testing.assert_allclose(jac_oh[ic], -0.5 * jac_oh[ap.LABEL_NAMES.index("[O/H]")], rtol=1e-12)


def test_analytic_jacobian_matches_central_differences(grid, line_list):
    """Relative error of a central difference ≈ (h/L)²/6 for a label varying on a scale L; the steps keep
    h/L ≲ 1e-3 (1e-4 dex × ln 10 × τ ≲ 5; 0.5 K against T/(χθ ln 10) ≳ 300 K; 1e-3 km/s against σ ≈ 7 km/s),
    so ≤ 2e-7 of the largest derivative; rounding adds 1e-16/h ≤ 1e-12. Tolerance: 2e-6 of max |∂f/∂y|."""
    y = ap.sample_labels(4, seed=3)
    y = np.vstack([y, ap.REFERENCE_LABELS])
    kw = {
        "resolution": np.array([19_000, 22_500, 25_000, 21_000, 22_500.0]),
        "rv_kms": np.array([0.0, 3.0, -5.0, 10.0, 0.0]),
        "atomic_tau_scale": np.array([1.0, 1.1, 1.0, 1.0, 1.1]),
    }
    flux, jac = ap.synthesise_jacobian(y, line_list, grid, return_flux=True, **kw)
    np.testing.assert_array_equal(flux, ap.synthesise(y, line_list, grid, **kw))
    steps = [0.5, 1e-3, 1e-3, 1e-3] + [1e-4] * len(ap.ELEMENTS)
    for j, h in enumerate(steps):
        yp, ym = y.copy(), y.copy()
        yp[:, j] += h
        ym[:, j] -= h
        fd = (ap.synthesise(yp, line_list, grid, **kw) - ap.synthesise(ym, line_list, grid, **kw)) / (2 * h)
        scale = np.abs(jac[:, j]).max()
        assert scale > 0, ap.LABEL_NAMES[j]
        np.testing.assert_allclose(jac[:, j], fd, rtol=0, atol=2e-6 * scale, err_msg=ap.LABEL_NAMES[j])


def test_throughput_report(grid, line_list):
    """Prints spectra per second (no assertion on time: the machine is shared)."""
    labels = ap.sample_labels(2000, seed=2)
    t0 = time.perf_counter()
    flux = ap.synthesise(labels, line_list, grid)
    dt = time.perf_counter() - t0
    print(f"\nsynthesise: {len(labels) / dt:,.0f} spectra/s at {grid.size} pixels, {len(line_list)} lines")
    assert flux.shape == (2000, grid.size) and np.all(np.isfinite(flux))


# --------------------------------------------------------------------------------------------------
# Labels
# --------------------------------------------------------------------------------------------------
def test_label_distribution_moments():
    n = 40_000
    y = ap.sample_labels(n, seed=4)
    col = {name: y[:, i] for i, name in enumerate(ap.LABEL_NAMES)}
    np.testing.assert_array_equal(y, ap.sample_labels(n, seed=4))
    teff = col["Teff"]
    assert teff.min() >= 3900 and teff.max() <= 5400
    sd_u = 1500 / np.sqrt(12)
    assert abs(teff.mean() - 4650) < K_SE * sd_u / np.sqrt(n)
    dlogg = col["logg"] - (2.5 + (teff - 4750) / 800)
    assert np.abs(dlogg).max() <= 0.25 and abs(dlogg.std() - 0.5 / np.sqrt(12)) < K_SE * 0.144 / np.sqrt(
        2 * n
    )
    fe = col["[Fe/H]"]
    assert fe.min() >= -1.2 and fe.max() <= 0.4
    # mean of N(−0.2, 0.3) clipped to [−1.2, 0.4]: E = ∫ clip(x) dN, by quadrature
    expected = stats.norm(-0.2, 0.3).expect(lambda x: np.clip(x, -1.2, 0.4), lb=-4, ub=4)
    assert abs(fe.mean() - expected) < K_SE * 0.3 / np.sqrt(n)
    assert abs(np.mean(fe == 0.4) - stats.norm(-0.2, 0.3).sf(0.4)) < K_SE * np.sqrt(0.023 / n)
    for x in ("O", "Mg", "Si", "Ca", "Ti"):
        r = col[f"[{x}/H]"] - fe - 0.3 * np.maximum(0, -fe)
        assert abs(r.mean()) < K_SE * 0.05 / np.sqrt(n) and abs(r.std() - 0.05) < K_SE * 0.05 / np.sqrt(2 * n)
    c_fe, n_fe = col["[C/H]"] - fe, col["[N/H]"] - fe
    assert abs(c_fe.mean() + 0.1) < K_SE * 0.1 / np.sqrt(n) and abs(
        n_fe.mean() - 0.3
    ) < K_SE * 0.15 / np.sqrt(n)
    assert abs(np.corrcoef(c_fe, n_fe)[0, 1] + 0.6) < K_SE * (1 - 0.36) / np.sqrt(n)
    for x in ("Al", "Ni"):
        assert abs((col[f"[{x}/H]"] - fe).std() - 0.05) < K_SE * 0.05 / np.sqrt(2 * n)
    assert col["v_turb"].min() >= 1 and col["v_turb"].max() <= 2
    assert col["v_broad"].min() >= 4 and col["v_broad"].max() <= 10
    # widen = 0.2: every range and scatter 20 % wider about its centre (the emulator's training box)
    w = ap.sample_labels(n, seed=4, widen=0.2)
    assert 3750 <= w[:, 0].min() < 3760 and 5540 < w[:, 0].max() <= 5550
    assert abs(w[:, 0].std() / teff.std() - 1.2) < 0.02
    assert w[:, 3].min() >= 3.4 and w[:, 3].max() <= 10.6
    c_fe_w = w[:, ap.LABEL_NAMES.index("[C/H]")] - w[:, ap.LABEL_NAMES.index("[Fe/H]")]
    assert abs(c_fe_w.std() - 0.12) < K_SE * 0.12 / np.sqrt(2 * n)
    with pytest.raises(ValueError, match="widen"):
        ap.sample_labels(10, seed=0, widen=-0.1)


# --------------------------------------------------------------------------------------------------
# Instrument effects and noise (M2)
# --------------------------------------------------------------------------------------------------
def test_pure_tilt_changes_the_continuum_as_specified(grid, line_list):
    x = ap.pixel_coordinate(grid.size)
    assert x[0] == -1 and x[-1] == 1
    np.testing.assert_allclose(ap.continuum_tilt(grid.size, 0.01, -0.02)[0], 1 + 0.01 * x - 0.02 * x**2)
    one = _one_line(line_list, "atomic", grid, 1000)
    no_tellurics = pd.DataFrame({"wavelength": [], "depth": []})
    labels = ap.sample_labels(2000, seed=6)
    obs = ap.simulate_observed(labels, one, grid, seed=8, noise=False, tellurics=no_tellurics)
    t = obs.truth
    far = np.r_[0:900, 1100 : grid.size]
    expected = 1 + t["a1"].to_numpy()[:, None] * x + t["a2"].to_numpy()[:, None] * x**2
    np.testing.assert_allclose(obs.clean[:, far], expected[:, far], rtol=1e-12)
    stellar = ap.synthesise(
        labels,
        one,
        grid,
        resolution=t["resolution"].to_numpy(),
        atomic_tau_scale=t["atomic_tau_scale"].to_numpy(),
    )
    np.testing.assert_allclose(obs.clean, stellar * expected, rtol=1e-12)
    for a in ("a1", "a2"):
        assert abs(t[a].std() - 0.004) < K_SE * 0.004 / np.sqrt(2 * len(t))
    assert t["resolution"].between(19_000, 25_000).all()
    np.testing.assert_array_equal(t["atomic_tau_scale"], np.where(labels[:, 0] < 4300, 1.10, 1.0))


def test_lower_resolution_makes_lines_shallower_and_wider_at_fixed_equivalent_width(grid, line_list):
    """EW = Σ(1 − e^{−τφ}) Δλ: the first-order term Στφ is conserved exactly (σ_ref/σ normalisation), the
    second-order −½Στ²φ² is τ/(2√2) ≈ 1.8 % of it for τ = 0.05 and changes by that × (1 − σ₂₅/σ₁₉) ≈ 0.2 %;
    tolerance 0.5 %."""
    one = _one_line(line_list, "atomic", grid, 1000, tau0=1.0)
    y = np.tile(ap.REFERENCE_LABELS, (2, 1))
    one["tau0"] = 0.05 / (-np.log(ap.synthesise(y[0], one, grid)[0, 1000]))  # τ = 0.05 at R = 22,500
    f = ap.synthesise(y, one, grid, resolution=np.array([19_000.0, 25_000.0]))
    absorption = 1 - f
    dlam = np.gradient(grid)
    ew = absorption @ dlam
    width = np.sqrt((absorption * (grid - grid[1000]) ** 2) @ dlam / ew)
    assert absorption[0].max() < absorption[1].max()  # shallower at R = 19,000
    assert width[0] > 1.05 * width[1]  # wider
    assert ew[0] == pytest.approx(ew[1], rel=5e-3)


def test_radial_velocity_shifts_line_centres_by_v_over_c(grid, line_list):
    one = _one_line(line_list, "atomic", grid, 1000)
    v = np.array([0.0, 30.0, -45.0])
    f = ap.synthesise(np.tile(ap.REFERENCE_LABELS, (3, 1)), one, grid, rv_kms=v)
    ln = np.log(grid)
    centroid = ((1 - f) @ ln) / (1 - f).sum(axis=1)
    # a symmetric profile sampled at σ ≈ 1.8 pixels: the centroid is its centre to ≪ 1e-3 pixel
    np.testing.assert_allclose(
        centroid - centroid[0], np.log1p(v / 299_792.458), atol=1e-3 * 6e-6 * np.log(10)
    )


def test_tellurics_sit_at_fixed_observed_wavelengths(grid):
    tell = pd.DataFrame({"wavelength": [grid[1000]], "depth": [0.03]})
    rv = np.array([0.0, 40.0])
    tr = ap.telluric_transmission(grid, tell, rv, np.ones(2), np.full(2, 22_500.0))
    assert tr[0, 1000] == pytest.approx(np.exp(-0.03), rel=1e-12)
    # in the star's rest frame the dip sits at λ_t / (1 + v/c): 40 km/s ≈ 9.7 pixels bluewards
    shift_pix = np.log1p(40 / 299_792.458) / (6e-6 * np.log(10))
    ln = np.log(grid)
    centroid = ((1 - tr[1]) @ ln) / (1 - tr[1]).sum()
    assert (np.log(grid[1000]) - centroid) / (6e-6 * np.log(10)) == pytest.approx(shift_pix, abs=1e-3)
    obs = ap.telluric_transmission(grid, tell, rv, np.ones(2), np.full(2, 22_500.0), frame="observed")
    np.testing.assert_allclose(obs[1], obs[0], rtol=1e-14)
    default = ap.make_telluric_list(ap.TELLURIC_SEED, grid)
    assert len(default) == ap.N_TELLURIC and default["depth"].between(0.01, 0.04).all()


def test_observed_frames_agree_on_the_relative_shift(grid, line_list):
    labels = ap.sample_labels(5, seed=9)
    rest = ap.simulate_observed(labels, line_list, grid, seed=3, noise=False)
    observed = ap.simulate_observed(labels, line_list, grid, seed=3, noise=False, frame="observed")
    pd.testing.assert_frame_equal(rest.truth, observed.truth)
    # Observed frame: the stellar spectrum moves by +v, the dips stay; rest frame: the reverse.
    t = rest.truth
    stellar_rest = ap.synthesise(
        labels, line_list, grid, resolution=t["resolution"].to_numpy(), atomic_tau_scale=t["atomic_tau_scale"]
    )
    stellar_obs = ap.synthesise(
        labels,
        line_list,
        grid,
        resolution=t["resolution"].to_numpy(),
        atomic_tau_scale=t["atomic_tau_scale"],
        rv_kms=t["rv_kms"].to_numpy(),
    )
    tilt = ap.continuum_tilt(grid.size, t["a1"], t["a2"])
    assert np.max(np.abs(rest.clean / (stellar_rest * tilt) - 1)) > 1e-3  # tellurics are there
    assert np.max(np.abs(observed.clean / (stellar_obs * tilt) - 1)) > 1e-3
    assert not np.allclose(rest.clean, observed.clean)


def test_m1_observed_without_instrument_is_the_synthesiser(grid, line_list):
    labels = ap.sample_labels(20, seed=10)
    obs = ap.simulate_observed(labels, line_list, grid, seed=2, instrument=False, noise=False)
    np.testing.assert_array_equal(obs.clean, ap.synthesise(labels, line_list, grid))
    assert (obs.truth["resolution"] == 22_500).all() and (obs.truth[["a1", "a2", "rv_kms"]] == 0).all().all()


def test_noise_model(grid, line_list):
    labels = ap.sample_labels(1500, seed=12)
    obs = ap.simulate_observed(labels, line_list, grid, seed=5)
    again = ap.simulate_observed(labels, line_list, grid, seed=5)
    np.testing.assert_array_equal(obs.flux, again.flux)
    snr, bad = obs.truth["snr"].to_numpy(), obs.bad_pixels
    assert snr.min() >= 50 and snr.max() <= 300
    ln_mean = 0.5 * (np.log(50) + np.log(300))
    ln_sd = (np.log(300) - np.log(50)) / np.sqrt(12)
    assert abs(np.log(snr).mean() - ln_mean) < K_SE * ln_sd / np.sqrt(len(snr))
    assert abs(bad.mean() - 0.01) < K_SE * np.sqrt(0.01 * 0.99 / bad.size)
    assert np.all(obs.sigma[bad] == 1.0)
    pattern = ap.noise_pattern(grid)
    np.testing.assert_allclose(obs.sigma[~bad], (pattern[None, :] / snr[:, None])[~bad], rtol=1e-12)
    pull = ((obs.flux - obs.clean) / obs.sigma)[~bad]
    assert abs(pull.std() - 1) < K_SE / np.sqrt(2 * pull.size)
    # the pattern: median 1, rising towards both edges to ≈ 3× the centre
    assert np.median(pattern) == pytest.approx(1.0)
    mid = grid.size // 2
    assert pattern[0] / pattern[mid] == pytest.approx(3.0) and pattern[-1] / pattern[mid] == pytest.approx(
        3.0
    )
    assert np.all(np.diff(pattern[mid:]) >= 0) and np.all(np.diff(pattern[: mid + 1]) <= 0)
    chips = ap.noise_pattern(ap.wavelength_grid(7167))
    assert np.sum(chips / np.median(chips) > 2.5) >= 6  # both edges of each of the three chips


def test_bad_input_gets_one_line_errors(grid, line_list):
    with pytest.raises(ValueError, match=r"labels: expected shape \(n_stars, 14\)"):
        ap.synthesise(np.zeros((2, 13)), line_list, grid)
    y = ap.REFERENCE_LABELS.copy()
    y[12] = np.nan
    with pytest.raises(ValueError, match=r"'\[Fe/H\]'"):
        ap.synthesise(y, line_list, grid)
    with pytest.raises(ValueError, match="missing column.*tau0"):
        ap.synthesise(ap.REFERENCE_LABELS, line_list.drop(columns="tau0"), grid)
    with pytest.raises(ValueError, match="resolution"):
        ap.synthesise(np.tile(ap.REFERENCE_LABELS, (3, 1)), line_list, grid, resolution=np.ones(2))
    with pytest.raises(ValueError, match="grid"):
        ap.synthesise(ap.REFERENCE_LABELS, line_list, grid[::-1])
    with pytest.raises(ValueError, match="frame"):
        ap.simulate_observed(ap.REFERENCE_LABELS, line_list, grid, seed=0, frame="topocentric")
