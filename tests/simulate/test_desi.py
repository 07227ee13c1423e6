"""Simulated DESI spectra (paper 003): physics by construction, injected outliers with truth, and the
round trip through real-format coadd + Redrock files and the real reader."""

from __future__ import annotations

import numpy as np
import pytest

from latentsky.io.desi import DesiFlag, read_desi_coadd
from latentsky.simulate.desi import (
    EMISSION_LINES,
    ORACLE_BIN_FACTORS,
    OUTLIER_TYPES,
    STARS_TO_GAS_EBV,
    galaxy_restframe,
    injected_delta_chi2,
    simulate_desi,
    star_spectrum,
    write_desi_files,
)

REST = np.arange(3000.0, 9000.0, 0.2)


def _d4000(wave, flux):
    """Bruzual's D4000: mean flux 4050–4250 Å over 3750–3950 Å (restframe)."""
    red = (wave > 4050) & (wave < 4250)
    blue = (wave > 3750) & (wave < 3950)
    return flux[red].mean() / flux[blue].mean()


def test_old_galaxies_have_a_strong_4000_break_young_ones_do_not():
    old = galaxy_restframe(REST, 0.0, 0.5, 150.0, {})
    young = galaxy_restframe(REST, 1.0, 0.5, 150.0, {})
    # Red ellipticals have D4000 ≈ 1.8–2.2; star-forming galaxies 1.0–1.3 (Kauffmann et al. 2003).
    assert _d4000(REST, old) > 1.7
    assert _d4000(REST, young) < 1.3


def test_emission_line_ratios_follow_atomic_physics():
    lines = {"OIII_5007": 2.98, "OIII_4959": 1.0, "Halpha": 2.86, "Hbeta": 1.0}
    with_lines = galaxy_restframe(REST, 0.6, 0.4, 100.0, lines)
    continuum = galaxy_restframe(REST, 0.6, 0.4, 100.0, {})
    excess = with_lines - continuum

    def flux(name):
        c = EMISSION_LINES[name]
        sel = np.abs(REST - c) < 15
        return excess[sel].sum()

    # Equal velocity widths: flux ∝ amplitude × λ, so ratios of amplitudes × λ-ratio.
    assert flux("OIII_5007") / flux("OIII_4959") == pytest.approx(2.98 * 5008.2 / 4960.3, rel=0.02)
    assert flux("Halpha") / flux("Hbeta") == pytest.approx(2.86 * 6564.6 / 4862.7, rel=0.02)


def test_dust_follows_the_calzetti_curve_with_the_stars_seeing_044_of_the_gas_reddening():
    import extinction

    lines = {"Halpha": 2.86, "Hbeta": 1.0}  # case B, intrinsic
    ebv = 0.3
    k = extinction.calzetti00(np.array([4862.7, 6564.6, 4000.0, 7000.0]), 4.05, 4.05)  # A_λ / E(B−V)
    dusty = galaxy_restframe(REST, 0.6, 0.4, 100.0, lines, ebv_gas=ebv)
    dusty_continuum = galaxy_restframe(REST, 0.6, 0.4, 100.0, {}, ebv_gas=ebv)
    clean_continuum = galaxy_restframe(REST, 0.6, 0.4, 100.0, {})
    excess = dusty - dusty_continuum

    def flux(centre):
        return excess[np.abs(REST - centre) < 15].sum()

    # The observed Balmer decrement: 2.86 · 10^(0.4 E_gas (k(Hβ) − k(Hα))) — 4.06 at E_gas = 0.3.
    decrement = flux(6564.6) / flux(4862.7) / (6564.6 / 4862.7)
    assert decrement == pytest.approx(2.86 * 10 ** (0.4 * ebv * (k[0] - k[1])), rel=0.02)
    assert decrement == pytest.approx(4.06, abs=0.05)

    # The continuum is reddened by E_s = 0.44 E_gas: its 4000/7000 Å colour changes by 10^(−0.4 E_s Δk).
    def colour(spec):
        return spec[np.abs(REST - 4000.0) < 2].mean() / spec[np.abs(REST - 7000.0) < 2].mean()

    expected = 10 ** (-0.4 * STARS_TO_GAS_EBV * ebv * (k[2] - k[3]))
    assert colour(dusty_continuum) / colour(clean_continuum) == pytest.approx(expected, rel=1e-3)
    # Attenuation is relative to 5,500 Å, where the spectrum stays at ~1.
    at_5500 = np.abs(REST - 5500.0) < 0.5
    assert dusty_continuum[at_5500].mean() == pytest.approx(clean_continuum[at_5500].mean(), rel=1e-3)


def test_simulated_galaxies_carry_their_dust_and_old_population_temperature(sim):
    gal = sim.targets[sim.targets["kind"] == "galaxy"]
    assert gal["ebv_gas"].between(0.0, 0.4).all() and gal["ebv_gas"].std() > 0.05
    np.testing.assert_allclose(gal["ebv_stars"], STARS_TO_GAS_EBV * gal["ebv_gas"])
    assert gal["old_teff"].between(4000.0, 5200.0).all()
    # Intrinsic lines are case B; the dust is in ebv_gas, not in the recorded amplitudes.
    emitting = gal[gal["line_Halpha"] > 0]
    np.testing.assert_allclose(emitting["line_Halpha"] / emitting["line_Hbeta"], 2.86)


def test_m_dwarfs_show_tio_bands_hotter_stars_do_not():
    def band_drop(spec, head=7054.0):
        before = spec[(REST > head - 40) & (REST < head - 5)].mean()
        after = spec[(REST > head + 2) & (REST < head + 30)].mean()
        return 1 - after / before

    assert band_drop(star_spectrum(REST, 3200.0)) > 0.3
    assert abs(band_drop(star_spectrum(REST, 6000.0))) < 0.05
    # A stars: the Balmer lines are deepest near 9,500 K.
    hb = (REST > 4855) & (REST < 4870)
    depth = {
        t: 1
        - star_spectrum(REST, t)[hb].min() / np.median(star_spectrum(REST, t)[(REST > 4700) & (REST < 4800)])
        for t in (5500.0, 9500.0)
    }
    assert depth[9500.0] > 2 * depth[5500.0]


@pytest.fixture(scope="module")
def sim():
    return simulate_desi({"n_bgs": 240, "n_mws": 60, "outlier_fraction": 0.1}, 3)


def test_outliers_are_injected_with_truth(sim):
    t = sim.targets
    assert len(t) == 300 and (t["survey"] == "bgs").sum() == 240
    bgs = t[t["survey"] == "bgs"]
    assert bgs["is_outlier"].sum() == 24 and set(bgs.loc[bgs["is_outlier"], "kind"]) == set(OUTLIER_TYPES)
    assert not t.loc[t["survey"] == "mws", "is_outlier"].any()
    # Stars in the BGS sample masquerade as z ≈ 0 galaxies, as the paper's misclassified stars do.
    bgs_stars = bgs[bgs["kind"] == "star"]
    assert (bgs_stars["spectype"] == "GALAXY").all() and (bgs_stars["z"].abs() < 0.01).all()
    assert (bgs.loc[bgs["kind"] == "galaxy", "z"].between(0, 0.8)).all()
    # Simulated line ratios: [O III] 5007/4959 = 2.98, Hα/Hβ ≥ 2.86 (case B plus dust).
    sf = bgs[bgs["line_Halpha"] > 0]
    np.testing.assert_allclose(sf["line_OIII_5007"] / sf["line_OIII_4959"], 2.98)
    assert (sf["line_Halpha"] / sf["line_Hbeta"] >= 2.86 - 1e-9).all()


def test_files_round_trip_through_the_real_reader(tmp_path, sim):
    coadd, redrock = tmp_path / "coadd-sim.fits", tmp_path / "redrock-sim.fits"
    write_desi_files(sim, np.arange(len(sim.targets)), coadd, redrock)
    spectra = read_desi_coadd(coadd)
    t = sim.targets
    assert spectra.target_id.tolist() == t["target_id"].tolist()  # one row per target, in order
    mws = (t["survey"] == "mws").to_numpy()
    assert np.all(spectra.flags[mws] & DesiFlag.SPECTYPE)  # STAR when GALAXY is asked for: flagged
    galaxies = (t["kind"] == "galaxy").to_numpy()
    assert np.all(spectra.flags[galaxies] == 0)
    stars = read_desi_coadd(coadd, spectype="STAR", z_range=None)  # MWS: no redshift cut
    assert np.all(stars.flags[mws] == 0)
    assert np.all(
        read_desi_coadd(coadd, spectype="STAR").flags[mws & (t["z"] < 0).to_numpy()] & DesiFlag.Z_RANGE
    )
    # A missing arm (calibration fault) has zero weight there.
    faults = t["fault"].dropna()
    assert len(faults) == (t["kind"] == "calibration_fault").sum()
    missing = t.index[t["fault"].astype(str).str.endswith("_missing")]
    assert 0 < len(missing) < len(faults)  # both kinds of fault drawn: missing arms and scaled ones
    for i in missing:
        arm = t.loc[i, "fault"][0]
        lo, hi = {"b": (3600, 5750), "r": (5810, 7510), "z": (7630, 9824)}[arm]
        sel = (spectra.wave > lo) & (spectra.wave < hi)
        assert np.all(spectra.ivar[i, sel] == 0)


def test_noise_has_the_depth_of_bright_time_bgs_coadds(sim):
    # Continuum S/N per 0.8 Å pixel, 6000–7000 Å observed (R arm, away from the strongest sky lines):
    # ≈ 2.5 at r = 19; the sample's median near the real BGS coadd's 5.1 (tests/data/desi_coadd).
    t = sim.targets
    sel = (sim.wave["r"] > 6000) & (sim.wave["r"] < 7000)
    flux, ivar = sim.flux["r"][:, sel], sim.ivar["r"][:, sel]
    snr = np.median(np.where(ivar > 0, flux * np.sqrt(ivar), np.nan), axis=1)
    galaxies = (t["kind"] == "galaxy").to_numpy()
    assert 3.5 < np.nanmedian(snr[galaxies]) < 7.0
    faint = galaxies & t["r_mag"].between(18.8, 19.2).to_numpy()
    assert faint.sum() >= 5 and 1.5 < np.nanmedian(snr[faint]) < 3.5
    # Brighter targets have higher S/N (sky plus object Poisson noise).
    assert np.corrcoef(t.loc[galaxies, "r_mag"], np.log(snr[galaxies]))[0, 1] < -0.8


def test_injected_delta_chi2_averages_the_signal_and_its_variance_per_bin():
    v = np.full(64, 4.0)
    flat = np.full(64, 1.0)
    # A smooth signal keeps its Δχ² under binning (64 · 1² / 4 = 16 at every b) …
    for b in (1, 2, 4, 16):
        assert injected_delta_chi2(flat, v, b) == pytest.approx(16.0)
    # … one that alternates pixel to pixel, as an unresolved line pair does, averages away.
    wiggle = np.tile([1.0, -1.0], 32)
    assert injected_delta_chi2(wiggle, v, 1) == pytest.approx(16.0)
    assert injected_delta_chi2(wiggle, v, 2) == pytest.approx(0.0)


def test_the_simulation_records_each_outliers_injected_signal(sim):
    t = sim.targets
    cols = [f"injected_delta_chi2_bin{b}" for b in ORACLE_BIN_FACTORS]
    # Galaxies have no injected signal; stars and missing arms have no counterpart; the rest do.
    assert t.loc[t["kind"] == "galaxy", cols].isna().all().all()
    assert t.loc[t["kind"] == "star", cols].isna().all().all()
    missing = t["fault"].astype(str).str.endswith("_missing")
    assert t.loc[missing, cols].isna().all().all()
    with_signal = t["is_outlier"] & (t["kind"] != "star") & ~missing
    assert (t.loc[with_signal, cols] > 0).all().all()
    # A double-peaked line pair 200–600 km/s apart is unresolved 16 pixels (≈ 585 km/s at Hα) at a time:
    # its Δχ² falls with binning (review: median ≈ 130 at full resolution, ≈ 15 at 16×), while a broad
    # line's (FWHM 3,000–8,000 km/s) hardly changes.
    dp = t[t["kind"] == "double_peaked"]
    assert (dp["injected_delta_chi2_bin16"] < 0.6 * dp["injected_delta_chi2_bin1"]).all()
    qso = t[t["kind"] == "broad_line_qso"]
    np.testing.assert_allclose(qso["injected_delta_chi2_bin16"], qso["injected_delta_chi2_bin1"], rtol=0.05)
