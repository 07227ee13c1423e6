"""The Gaia XP basis wrapper (GaiaXPy's DR3 basis) and the simulated XP survey with known truth (spec A2).

Statistical tolerances are stated as multiples (5, unless said) of the standard error of the statistic for
the sample size used: SE(mean) = σ/√n, SE(std) ≈ σ/√(2(n−1)), SE(fraction) = √(p(1−p)/n), SE(correlation)
≈ (1 − ρ²)/√n.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from conftest import REAL_DATA

from latentsky.simulate import xp
from latentsky.xp import basis

XP_DIR = REAL_DATA / "gaia_xp_continuous"
RAW_CSV = XP_DIR / "XP_CONTINUOUS_RAW.csv"
N_X, N_U = 10_000, 10_000
K_SE = 5.0


def _parse(cell) -> np.ndarray:
    return np.array([float(v) for v in cell.strip("()[]").split(",")])


def _stack(col: pd.Series) -> np.ndarray:
    return np.stack(col.to_numpy())


@pytest.fixture(scope="module")
def survey():
    return xp.simulate_xp_survey(N_X, N_U, seed=7)


@pytest.fixture(scope="module")
def noise_parts(survey):
    """Per sample: measured, astrophysical (noiseless + jitter, BP scaled) and σ, all G-normalised."""
    out = {}
    for name in ("crossmatch", "unlabelled"):
        obs, tru = survey[name]["observed"], survey[name]["truth"]
        fg = obs["phot_g_mean_flux"].to_numpy()[:, None]
        meas = np.hstack([_stack(obs.bp_coefficients), _stack(obs.rp_coefficients)]) / fg
        sig = np.hstack([_stack(obs.bp_coefficient_errors), _stack(obs.rp_coefficient_errors)]) / fg
        scale = np.ones((len(obs), xp.N_COEF))
        scale[:, : xp.N_BAND] = tru["bp_scale"].to_numpy()[:, None]
        x_true = _stack(tru.coefficients)
        astro = scale * (x_true + _stack(tru.jitter))
        out[name] = {"meas": meas, "astro": astro, "sigma": sig, "x_true": x_true, "scale": scale}
    return out


# --------------------------------------------------------------------------------------------------
# Basis (spec A2.3)
# --------------------------------------------------------------------------------------------------
def test_grid_and_design_matrix_shapes():
    lam = basis.xp_wavelength_grid()
    assert lam.shape == (343,) and lam[0] == 336.0 and lam[-1] == 1020.0
    assert np.allclose(np.diff(lam), 2.0)
    assert basis.design_matrix().shape == (343, 110)
    assert basis.projection_operator().shape == (110, 343)
    assert basis.projection_operator() is basis.projection_operator()  # cached


def test_sampled_spectrum_equals_gaiaxpy_calibrate():
    gaiaxpy = pytest.importorskip("gaiaxpy")
    raw = pd.read_csv(RAW_CSV)
    coeffs = np.stack(
        [np.r_[_parse(b), _parse(r)] for b, r in zip(raw.bp_coefficients, raw.rp_coefficients, strict=True)]
    )
    calibrated, sampling = gaiaxpy.calibrate(str(RAW_CSV), save_file=False)
    assert np.array_equal(sampling, basis.xp_wavelength_grid())
    ours = basis.sampled_spectrum(coeffs)
    ref = np.stack(calibrated["flux"].to_numpy())
    # Same arithmetic up to summation order: agreement to float64 rounding of the largest term.
    assert np.max(np.abs(ours - ref)) <= 1e-12 * np.max(np.abs(ref))


def test_ridge_projection_reproduces_smooth_seds():
    """Blackbodies 3,000–15,000 K through F99 with A0 0–5 (spec A2.3), over 400–1000 nm: ≤ 2 % of the local
    flux wherever it is ≥ 2 % of the SED's peak, and ≤ 2 % of the peak everywhere (in the far blue tail of a
    cool reddened SED the ridge's error is an absolute one: 3,000 K, A0 = 5 has 5e-4 of its peak at 400 nm)."""
    lam = basis.xp_wavelength_grid()
    a, r = basis.design_matrix(), basis.projection_operator()
    band = (lam >= 400) & (lam <= 1000)
    teff = np.repeat(np.linspace(3000, 15000, 25), 6)
    a0 = np.tile(np.linspace(0, 5, 6), 25)
    bb = lam[None, :] ** -5 / np.expm1(1.4387769e7 / (lam[None, :] * teff[:, None]))
    sed = bb * 10 ** (-0.4 * a0[:, None] * xp.extinction_curve(np.full(teff.size, 3.1)))
    rec = sed @ r.T @ a.T
    err = np.abs(rec - sed)[:, band]
    peak = sed.max(axis=1, keepdims=True)
    bright = sed[:, band] >= 0.02 * peak
    assert np.all(err[bright] <= 0.02 * sed[:, band][bright])
    assert np.all(err <= 0.02 * peak)
    assert np.median(err / sed[:, band]) < 0.005


def test_simulated_table_calibrates_back_through_gaiaxpy(survey):
    """The observed table is in a layout GaiaXPy reads; its spectra are A·c exactly (spec A2.3)."""
    gaiaxpy = pytest.importorskip("gaiaxpy")
    obs = survey["unlabelled"]["observed"].iloc[:4].copy()
    calibrated, _ = gaiaxpy.calibrate(obs, save_file=False)
    coeffs = np.hstack([_stack(obs.bp_coefficients), _stack(obs.rp_coefficients)])
    ref = np.stack(calibrated["flux"].to_numpy())
    assert np.max(np.abs(basis.sampled_spectrum(coeffs) - ref)) <= 1e-12 * np.max(np.abs(ref))


def test_correlation_packing_is_gaiaxpys():
    """Packed values unpack as GaiaXPy's array_to_symmetric_matrix does; the real file's matrices unpack
    positive definite with this order."""
    from gaiaxpy.core.generic_functions import array_to_symmetric_matrix

    raw = pd.read_csv(RAW_CSV)
    for cell in list(raw.bp_coefficient_correlations) + list(raw.rp_coefficient_correlations):
        v = _parse(cell).astype(np.float32)
        ours = xp.unpack_correlation(v)
        assert np.array_equal(ours, array_to_symmetric_matrix(v.astype(np.float64), 55))
        assert np.linalg.eigvalsh(ours)[0] > 0
        assert np.array_equal(xp.pack_correlation(ours), v)


# --------------------------------------------------------------------------------------------------
# SED model and scale (spec A2.2, A2.3)
# --------------------------------------------------------------------------------------------------
def test_solar_model_scale_and_shape():
    """c₀(BP)/F_G = 0.065 by construction (k_G); shape against the real solar twin 18 Sco (DR3). The toy SED
    is held to the blackbody's own accuracy (spec A2.3: a 5,800 K blackbody gives c₁/c₀ = 0.19/0.15 and
    c₀(RP)/c₀(BP) = 1.03 against 18 Sco's 0.18/0.16/0.95): |Δ(c₁/c₀)| ≤ 0.02, c₀(RP)/c₀(BP) within 15 %."""
    sun = xp.intrinsic_sed(*(np.array([v]) for v in xp.SOLAR_LABELS))
    c = xp.normalised_coefficients(sun)[0]
    assert c[0] == pytest.approx(0.065, rel=1e-12)
    sco = pd.read_csv(XP_DIR / "18Sco-XP-spectra.csv").iloc[0]
    bp, rp = _parse(sco.bp_coefficients), _parse(sco.rp_coefficients)
    assert abs(c[1] / c[0] - bp[1] / bp[0]) <= 0.02
    assert abs(c[56] / c[55] - rp[1] / rp[0]) <= 0.02
    assert c[55] / c[0] == pytest.approx(rp[0] / bp[0], rel=0.15)


def test_tio_absent_above_4100k():
    teff = np.array([4100.0, 4500.0, 6000.0, 4000.0, 3500.0])
    f = xp.tio_factor(teff, np.zeros(5))
    assert np.all(f[:3] == 1.0)
    lam = basis.xp_wavelength_grid()
    at = np.argmin(np.abs(lam - 712.0))  # inside the 705 nm γ band
    assert f[3, at] < 1.0 and f[4, at] < f[3, at] < 1.0
    # The onset is continuous: barely any absorption just below 4,100 K.
    assert xp.tio_factor(np.array([4099.0]), np.zeros(1)).min() > 0.999


def test_cemp_and_emission_features():
    """Anomaly features at the SED level (A2.7): CEMP bands absorb at 430 nm and not in the red; Hα emission
    adds its equivalent width. A σ = 1 nm line sampled every 2 nm integrates to within
    2 exp(−2π²(σ/h)²) ≈ 1.4 % (Poisson summation), so the EW is checked to 2 %."""
    n = 3
    stars = {
        "teff": np.full(n, 5000.0),
        "logg": np.full(n, 2.5),
        "m_h": np.zeros(n),
        "alpha_m": np.zeros(n),
        "a0": np.zeros(n),
        "r_v": np.full(n, 3.1),
        "comp_teff": np.zeros(n),
        "comp_logg": np.zeros(n),
        "comp_m_h": np.zeros(n),
        "comp_alpha_m": np.zeros(n),
        "comp_ratio": np.zeros(n),
        "cemp_depth": np.array([0.0, 0.5, 0.0]),
        "emission_ew": np.array([0.0, 0.0, -2.0]),
    }
    f = xp.observed_sed(stars, np.arange(n))
    lam = basis.xp_wavelength_grid()
    i430, i800 = np.argmin(np.abs(lam - 430)), np.argmin(np.abs(lam - 800))
    assert f[1, i430] / f[0, i430] == pytest.approx(0.5, abs=0.05)
    assert f[1, i800] == pytest.approx(f[0, i800], rel=1e-6)
    cont = f[0, np.argmin(np.abs(lam - 656.0))]
    ew = np.sum(f[2] - f[0]) * 2.0 / cont
    assert ew == pytest.approx(2.0, rel=0.02)
    # A companion (here a 20,000 K white dwarf with the primary's G flux) adds its G-band flux ratio and
    # dominates the blue.
    pair = {k: v[:2].copy() for k, v in stars.items()}
    pair.update(
        teff=np.full(2, 3300.0), logg=np.full(2, 4.9), cemp_depth=np.zeros(2), emission_ew=np.zeros(2)
    )
    pair.update(comp_teff=np.full(2, 20000.0), comp_logg=np.full(2, 8.0), comp_m_h=np.full(2, -3.0))
    pair["comp_ratio"] = np.array([0.0, 1.0])
    f = xp.observed_sed(pair, np.arange(2))
    assert xp.g_band_flux(f[1:]) / xp.g_band_flux(f[:1]) == pytest.approx(2.0, rel=1e-12)
    assert f[1, np.argmin(np.abs(lam - 400))] > 10 * f[0, np.argmin(np.abs(lam - 400))]


# --------------------------------------------------------------------------------------------------
# Tables (spec A2.8)
# --------------------------------------------------------------------------------------------------
def test_columns_dtypes_ids_and_parquet(survey, tmp_path):
    ids = []
    for name, n in (("crossmatch", N_X), ("unlabelled", N_U)):
        obs, tru = survey[name]["observed"], survey[name]["truth"]
        assert len(obs) == len(tru) == n
        expected = list(xp.OBSERVED_COLUMNS) + (list(xp.LABEL_COLUMNS) if name == "crossmatch" else [])
        assert list(obs.columns) == expected
        assert list(tru.columns) == [
            c for c in xp.TRUTH_COLUMNS if c != "label_region" or name == "crossmatch"
        ]
        assert obs.source_id.dtype == np.int64 and obs.source_id.is_monotonic_increasing
        assert np.array_equal(obs.source_id.to_numpy(), tru.source_id.to_numpy())
        assert (obs.bp_n_parameters == 55).all() and (obs.rp_n_parameters == 55).all()
        assert (obs.bp_standard_deviation == 1.0).all() and (obs.rp_standard_deviation == 1.0).all()
        for band in ("bp", "rp"):
            assert {a.shape for a in obs[f"{band}_coefficients"]} == {(55,)}
            assert {a.shape for a in obs[f"{band}_coefficient_errors"]} == {(55,)}
            assert {(a.shape, a.dtype) for a in obs[f"{band}_coefficient_correlations"]} == {
                ((1485,), np.dtype(np.float32))
            }
        for col in ("s_true", "coefficients", "jitter"):
            assert {a.shape for a in tru[col]} == {(110,)}
        g = obs.phot_g_mean_flux.to_numpy()
        assert np.allclose(-2.5 * np.log10(g) + xp.G_ZERO_POINT, obs.phot_g_mean_mag, atol=1e-5)
        assert np.array_equal(g, tru.g_flux.to_numpy())
        ids.append(obs.source_id.to_numpy())
        # Level-12 HEALPix in the high bits, as in Gaia.
        assert np.all(ids[-1] >> 35 < 12 * 4**12) and ids[-1].min() > 0
    assert np.unique(np.concatenate(ids)).size == N_X + N_U
    # pyarrow-writable, arrays come back as lists of the right types.
    path = tmp_path / "x.parquet"
    survey["crossmatch"]["observed"].iloc[:50].to_parquet(path)
    schema = pq.read_schema(path)
    assert str(schema.field("bp_coefficients").type) == "list<element: double>"
    assert str(schema.field("rp_coefficient_correlations").type) == "list<element: float>"
    back = pd.read_parquet(path)
    assert np.array_equal(
        back.bp_coefficients.iloc[3], survey["crossmatch"]["observed"].bp_coefficients.iloc[3]
    )
    survey["unlabelled"]["truth"].iloc[:50].to_parquet(tmp_path / "t.parquet")


def test_populations_and_labels_ranges(survey):
    tx = survey["crossmatch"]["truth"]
    counts = tx.population.value_counts()
    assert counts["apogee_giant"] == round(0.65 * N_X) and counts["apogee_dwarf"] == round(0.35 * N_X)
    normal = tx[tx.anomaly_kind == "none"]
    assert normal.a0.between(0, 5).all() and tx.g_mag.between(9, 16.5).all()
    tu = survey["unlabelled"]["truth"]
    assert set(tu.population) == set(xp.UNLABELLED_POPULATIONS)
    assert tu.g_mag.between(9, 17.65).all()
    wd = tu[(tu.population == "white_dwarf") & (tu.anomaly_kind == "none")]
    assert (wd.logg == 8.0).all() and wd.teff.between(6000, 30000).all()
    dw = tu[tu.population == "dwarf"]
    frac = (dw.binary_q > 0).mean()
    assert abs(frac - 0.10) <= K_SE * np.sqrt(0.1 * 0.9 / len(dw))
    assert dw.binary_q[dw.binary_q > 0].between(0.05, 0.5).all()
    assert (tu.binary_q[~tu.population.isin(["dwarf", "apogee_dwarf"])] == 0).all()


# --------------------------------------------------------------------------------------------------
# Noise (spec A2.4)
# --------------------------------------------------------------------------------------------------
def test_reported_errors_follow_the_noise_model(survey, noise_parts):
    tru = survey["crossmatch"]["truth"]
    p = noise_parts["crossmatch"]
    r = xp.relative_error(tru.g_mag.to_numpy())
    prof = xp.noise_profile()
    assert prof[39] == 1.0 and prof[54] == pytest.approx(0.02)
    expect_bp = (p["x_true"][:, 0] * r)[:, None] * prof[None, :]
    assert np.allclose(p["sigma"][:, :55], expect_bp, rtol=1e-12)


def test_noise_is_standard_normal_with_the_reported_correlations(survey, noise_parts):
    for name in ("crossmatch", "unlabelled"):
        obs = survey[name]["observed"]
        p = noise_parts[name]
        z = (p["meas"] - p["astro"]) / p["sigma"]
        n = z.shape[0]
        # Per coefficient: unit variance, zero mean.
        sd = z.std(axis=0, ddof=1)
        assert np.all(np.abs(sd - 1) <= K_SE / np.sqrt(2 * (n - 1)))
        assert np.all(np.abs(z.mean(axis=0)) <= K_SE / np.sqrt(n))
        for band, sl in (("bp", slice(0, 55)), ("rp", slice(55, 110))):
            cells = obs[f"{band}_coefficient_correlations"].to_numpy()
            keys = np.array([id(c) for c in cells])
            white = np.empty((n, 55))
            devs = []
            for key in np.unique(keys):
                rows = keys == key
                rho = xp.unpack_correlation(cells[np.flatnonzero(rows)[0]])
                zb = z[rows][:, sl]
                # Sample correlation vs the reported ρ: Fisher's z, atanh(r̂) − atanh(ρ) ~ N(0, 1/(n − 3)).
                r_hat = np.corrcoef(zb, rowvar=False)
                tri = np.tril_indices(55, -1)
                devs.append((np.arctanh(r_hat[tri]) - np.arctanh(rho[tri])) * np.sqrt(rows.sum() - 3))
                white[rows] = np.linalg.solve(np.linalg.cholesky(rho), zb.T).T
            # ~95k entries of 64 matrices, treated as independent (entries of one sample correlation matrix
            # are only weakly dependent).
            devs = np.concatenate(devs)
            m = devs.size
            assert abs(devs.mean()) <= K_SE / np.sqrt(m)
            assert abs(devs.std() - 1) <= K_SE / np.sqrt(2 * m)
            # Whitened with each star's own ρ, the noise is i.i.d.: identity covariance (SE of a sample
            # variance √(2/n), of a covariance 1/√n).
            dev = np.cov(white, rowvar=False) - np.eye(55)
            assert np.max(np.abs(np.diag(dev))) <= K_SE * np.sqrt(2 / n)
            assert np.max(np.abs(dev[np.tril_indices(55, -1)])) <= K_SE / np.sqrt(n)


def test_parametric_correlations_resemble_dr3(survey):
    """Spec A1.1 point 4: median |ρ| 0.02–0.06, p90 0.09–0.21, max 0.42–0.83 in the shared DR3 files."""
    cells = survey["crossmatch"]["observed"].bp_coefficient_correlations
    uniq = {id(c): c for c in cells}
    assert len(uniq) == xp.N_CORRELATION_BANK
    v = np.abs(np.stack(list(uniq.values())))
    assert 0.02 <= np.median(v) <= 0.06
    assert 0.09 <= np.percentile(v, 90) <= 0.21
    assert 0.42 <= np.median(v.max(axis=1)) <= 0.83


def test_shared_correlations_come_from_the_files():
    files = [RAW_CSV, XP_DIR / "XP_CONTINUOUS_RAW_with_missing_BP.csv"]
    res = xp.simulate_xp_survey(50, 50, seed=1, correlations="shared", correlation_files=files)
    real = set()
    for f in files:
        t = pd.read_csv(f)
        for col in ("bp_coefficient_correlations", "rp_coefficient_correlations"):
            real |= {
                _parse(c).astype(np.float32).tobytes() for c in t[col] if isinstance(c, str) and len(c) > 2
            }
    for band in ("bp", "rp"):
        cells = res["unlabelled"]["observed"][f"{band}_coefficient_correlations"]
        assert all(c.tobytes() in real for c in cells)
    with pytest.raises(ValueError, match="correlation_files"):
        xp.simulate_xp_survey(5, 5, seed=1, correlations="shared")


# --------------------------------------------------------------------------------------------------
# Intrinsic scatter (spec A2.5)
# --------------------------------------------------------------------------------------------------
def test_s_true_and_eta(survey):
    s_pop = survey["meta"]["s_pop"]
    normal_x = survey["crossmatch"]["truth"].query("anomaly_kind == 'none'")
    assert np.allclose(s_pop, _stack(normal_x.coefficients).std(axis=0, ddof=1), rtol=1e-12)
    for name in ("crossmatch", "unlabelled"):
        t = survey[name]["truth"]
        eta = xp.eta_of_labels(t.teff.to_numpy(), t.logg.to_numpy())
        assert np.array_equal(t.eta.to_numpy(), eta)
        assert np.allclose(_stack(t.s_true), eta[:, None] * s_pop[None, :], rtol=1e-15)
    t = survey["unlabelled"]["truth"]
    # η = η₀ far above 4,000 K (the sigmoid's width is 150 K), × (1 + 4) far below, × 3 at log g < 1.5.
    warm_high = t.eta[(t.teff > 5500) & (t.logg >= 1.5)]
    assert np.allclose(warm_high, 0.02, rtol=1e-3)
    assert t.eta[(t.teff < 3700) & (t.logg >= 1.5)].min() > 4 * 0.02
    assert np.allclose(t.eta[(t.teff > 5500) & (t.logg < 1.5)], 3 * 0.02, rtol=1e-3)


def test_injected_scatter_matches_s_true(survey, noise_parts):
    """End to end, without the stored jitter: measured/F_G − noiseless has variance s_true² + σ̃², and the
    variance in excess of σ̃² is s_true² — in cool (η ≈ 0.1), low-gravity (0.06) and nominal (0.02) stars."""
    t = pd.concat([survey[n]["truth"] for n in ("crossmatch", "unlabelled")], ignore_index=True)
    p = {
        k: np.vstack([noise_parts[n][k] for n in ("crossmatch", "unlabelled")])
        for k in noise_parts["crossmatch"]
    }
    ok = (t.anomaly_kind == "none").to_numpy()
    v = p["meas"] - p["x_true"]
    s_true = _stack(t.s_true)
    u = v / np.sqrt(s_true**2 + p["sigma"] ** 2)
    n = ok.sum()
    assert np.all(np.abs(u[ok].std(axis=0, ddof=1) - 1) <= K_SE / np.sqrt(2 * (n - 1)))
    # Coefficients where the scatter dominates the noise: the excess variance is s_true².
    for sel in (t.teff < 3800, (t.teff >= 4200) & (t.logg < 1.5), (t.teff > 4600) & (t.logg >= 1.5)):
        rows = ok & sel.to_numpy()
        ratio = s_true[rows] / p["sigma"][rows]
        ks = np.flatnonzero(np.median(ratio, axis=0) > 2)
        assert ks.size >= 3
        for k in ks:
            excess = v[rows, k] ** 2 - p["sigma"][rows, k] ** 2
            target = s_true[rows, k] ** 2
            # SE of the mean of v² − σ̃² for Gaussian v: √(2 ⟨(s² + σ̃²)²⟩ / n).
            se = np.sqrt(2 * np.mean((target + p["sigma"][rows, k] ** 2) ** 2) / rows.sum())
            assert abs(excess.mean() - target.mean()) <= K_SE * se


# --------------------------------------------------------------------------------------------------
# Labels (spec A2.6)
# --------------------------------------------------------------------------------------------------
def _se_std(sigma: float, n: int) -> float:
    return sigma / np.sqrt(2 * (n - 1))


def test_label_errors_and_failure_regions(survey):
    obs, t = survey["crossmatch"]["observed"], survey["crossmatch"]["truth"]
    assert (obs.TEFF_ERR == 50).all() and np.allclose(obs.LOGG_ERR, 0.06) and np.allclose(obs.M_H_ERR, 0.02)
    d_teff = obs.TEFF.to_numpy(float) - t.teff.to_numpy()
    d_logg = obs.LOGG.to_numpy(float) - t.logg.to_numpy()
    d_mh = obs.M_H.to_numpy(float) - t.m_h.to_numpy()
    region = t.label_region.to_numpy()
    cool = t.teff.to_numpy() < 4000
    low = t.logg.to_numpy() < 1.5
    assert set(region) == {"nominal", "cool", "low_logg", "catastrophic"}
    nc = region != "catastrophic"
    assert np.array_equal(region[nc] == "cool", cool[nc])
    assert np.array_equal(region[nc] == "low_logg", (low & ~cool)[nc])

    nom = region == "nominal"
    for d, s in ((d_teff, 50.0), (d_logg, 0.06), (d_mh, 0.02)):
        assert abs(d[nom].mean()) <= K_SE * s / np.sqrt(nom.sum())
        assert abs(d[nom].std(ddof=1) - s) <= K_SE * _se_std(s, nom.sum())
    c = region == "cool"
    bias = 100 * (4000 - t.teff.to_numpy()[c]) / 500
    assert abs((d_teff[c] - bias).mean()) <= K_SE * 50 / np.sqrt(c.sum())
    assert bias.mean() > 10  # a real bias, not within the noise of the test
    r = d_logg[c] - 0.25 * low[c]
    assert abs(r.std(ddof=1) - 0.25) <= K_SE * _se_std(0.25, c.sum())
    lo = region == "low_logg"
    assert lo.sum() > 50
    assert abs(d_logg[lo].mean() - 0.25) <= K_SE * 0.06 / np.sqrt(lo.sum())
    assert abs(d_mh[lo].std(ddof=1) - 0.10) <= K_SE * _se_std(0.10, lo.sum())
    cat = region == "catastrophic"
    assert abs(cat.mean() - 0.01) <= K_SE * np.sqrt(0.01 * 0.99 / N_X)
    # Catastrophic labels are another star's catalog labels.
    others = set(zip(obs.TEFF[~cat], obs.LOGG[~cat], strict=True))
    assert (
        sum((a, b) in others for a, b in zip(obs.TEFF[cat], obs.LOGG[cat], strict=True)) >= 0.95 * cat.sum()
    )
    # Failure regions are not flagged; only catastrophic stars can carry STAR_BAD.
    assert (obs.ASPCAPFLAG[~cat] == 0).all() and (obs.STARFLAG == 0).all()
    assert (obs.SFD_EBV >= t.a0 / t.r_v * np.exp(-5 * 0.1)).all()


# --------------------------------------------------------------------------------------------------
# Anomalies (spec A2.7)
# --------------------------------------------------------------------------------------------------
def test_anomalies_tagged_at_requested_fractions(survey, noise_parts):
    for name, frac, n in (("crossmatch", 0.005, N_X), ("unlabelled", 0.015, N_U)):
        t = survey[name]["truth"]
        kinds = t.anomaly_kind.to_numpy()
        assert (kinds != "none").sum() == round(frac * n)
        assert set(kinds) - {"none"} <= set(xp.ANOMALY_KINDS)
        assert np.all(t.a0[kinds == "extreme_extinction"].between(8, 12))
        pair = kinds == "wd_md_pair"
        assert np.all(t.teff[pair].between(3000, 3600)) and np.all(t.binary_q[pair] == 0)
        mis = kinds == "bp_rp_mismatch"
        assert np.all(t.bp_scale[mis].between(0.8, 0.9)) and np.all(t.bp_scale[~mis] == 1.0)
    # The unlabelled sample has every kind; BP (not RP) of bp_rp_mismatch stars is scaled.
    t, p = survey["unlabelled"]["truth"], noise_parts["unlabelled"]
    assert set(t.anomaly_kind) == {"none", *xp.ANOMALY_KINDS}
    mis = (t.anomaly_kind == "bp_rp_mismatch").to_numpy()
    clean = p["x_true"][mis] + _stack(t.jitter[mis])
    ratio_bp = p["meas"][mis, 0] / clean[:, 0]
    ratio_rp = p["meas"][mis, 55] / clean[:, 55]
    tol = K_SE * p["sigma"][mis, 0] / clean[:, 0]
    assert np.all(np.abs(ratio_bp - t.bp_scale[mis].to_numpy()) <= tol)
    assert np.all(np.abs(ratio_rp - 1) <= K_SE * p["sigma"][mis, 55] / clean[:, 55])


def test_anomaly_fractions_are_configurable():
    res = xp.simulate_xp_survey(400, 400, seed=2, anomaly_fraction=0.1, crossmatch_anomaly_fraction=0.0)
    assert (res["crossmatch"]["truth"].anomaly_kind == "none").all()
    assert (res["unlabelled"]["truth"].anomaly_kind != "none").sum() == 40


# --------------------------------------------------------------------------------------------------
# Determinism
# --------------------------------------------------------------------------------------------------
def test_same_seed_same_output_and_independent_streams():
    a = xp.simulate_xp_survey(300, 200, seed=5)
    b = xp.simulate_xp_survey(300, 200, seed=5)
    c = xp.simulate_xp_survey(300, 500, seed=5)
    d = xp.simulate_xp_survey(300, 200, seed=6)
    for name in ("crossmatch", "unlabelled"):
        for part in ("observed", "truth"):
            pd.testing.assert_frame_equal(a[name][part], b[name][part])
    # The crossmatch does not depend on the size of the unlabelled sample.
    for part in ("observed", "truth"):
        pd.testing.assert_frame_equal(a["crossmatch"][part], c["crossmatch"][part])
    assert not np.array_equal(a["crossmatch"]["truth"].teff, d["crossmatch"]["truth"].teff)
    assert np.array_equal(a["meta"]["s_pop"], b["meta"]["s_pop"])


def test_importing_gaiaxpy_through_latentsky_leaves_matplotlib_settings_alone():
    """GaiaXPy's plotter sets text.usetex globally on import; latentsky's guard restores it (fresh process)."""
    import subprocess
    import sys

    code = (
        "import matplotlib; from latentsky.xp.basis import import_gaiaxpy; import_gaiaxpy(); "
        "import gaiaxpy.plotter.plotter; print(matplotlib.rcParams['text.usetex'])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
