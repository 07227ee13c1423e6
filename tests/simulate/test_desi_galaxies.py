"""The template galaxy population (issue 17): real stellar-population continua, BPT-consistent lines, DESI
instrument effects — checked against the physics each piece is built from."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from latentsky.bgs.evaluation import components_to_noise_floor
from latentsky.simulate.desi import (
    calzetti_transmission,
    restframe_galaxies,
    simulate_desi,
    to_observed_frame,
)
from latentsky.simulate.desi_galaxies import (
    DESI_LSF_FWHM,
    TEMPLATE_LINES,
    calibration_wiggle,
    draw_template_galaxy,
    load_kcorrect_templates,
    telluric_transmission,
    template_galaxy_restframe,
)

REST = np.arange(3000.0, 9500.0, 0.4)


@pytest.fixture(scope="module")
def population() -> pd.DataFrame:
    rng = np.random.default_rng(11)
    return pd.DataFrame([draw_template_galaxy(rng) for _ in range(1500)])


def test_templates_are_read_from_the_installed_package_with_their_lines_removed():
    tpl = load_kcorrect_templates()
    assert tpl.flux.shape[0] == 5 and np.all(tpl.flux >= 0)
    np.testing.assert_allclose([np.interp(5500.0, tpl.wave, f) for f in tpl.flux], 1.0, rtol=1e-9)
    # The starburst template (1) has EW(Hα) ≈ 90 Å in the file; without its lines Hα is continuum.
    near = np.abs(tpl.wave - 6564.6) < 8
    side = (np.abs(tpl.wave - 6564.6) > 40) & (np.abs(tpl.wave - 6564.6) < 80)
    assert tpl.flux[1, near].max() < 1.1 * tpl.flux[1, side].mean()
    # Old templates have the 4,000 Å break of red galaxies, the starburst does not (Kauffmann et al. 2003).
    assert tpl.young.tolist() == [False, True, False, False, True]


def test_quiescent_galaxies_are_old_and_dust_poor_star_forming_ones_young(population):
    q = population[population["galaxy_type"] == "quiescent"]
    sf = population[population["galaxy_type"] == "star_forming"]
    d4000 = {
        name: np.median(
            [template_galaxy_restframe(REST, row)[1] for row in frame.head(60).to_dict("records")]
        )
        for name, frame in (("q", q), ("sf", sf))
    }
    assert d4000["q"] > 1.7 and d4000["sf"] < 1.5
    assert q["young_fraction"].median() < 0.1 < sf["young_fraction"].median()
    assert q["ebv_gas"].median() < 0.5 * sf["ebv_gas"].median()
    # E_s / E_gas = 0.44 ± 0.1 (Calzetti 2000)
    ratio = population["ebv_stars"] / population["ebv_gas"]
    assert abs(ratio.median() - 0.44) < 0.03 and 0.05 < ratio.std() < 0.15


def test_line_emitters_lie_on_their_bpt_branches(population):
    x, y = population["log_nii_halpha"], population["log_oiii_hbeta"]
    sf = population["bpt_class"] == "star_forming"
    # Star-forming galaxies below Kauffmann et al. (2003)'s line, AGN above Kewley et al. (2001)'s.
    kauffmann = 0.61 / (x - 0.05) + 1.3
    assert ((y < kauffmann) & (x < 0.05))[sf].mean() > 0.95
    seyfert = population["bpt_class"] == "seyfert"
    assert seyfert.sum() > 10 and (y > 0.61 / (x - 0.47) + 1.19)[seyfert].all()
    # N2 follows the gas metallicity, tied to the stars' (Pettini & Pagel 2004).
    assert np.corrcoef(population.loc[sf, "metallicity"], x[sf])[0, 1] > 0.5
    # A third of quiescent galaxies carry weak LINER-like emission; post-starbursts none.
    q = population[population["galaxy_type"] == "quiescent"]
    assert 0.25 < (q["bpt_class"] == "liner").mean() < 0.42
    assert (q.loc[q["bpt_class"] == "liner", "line_Halpha"].between(0.5, 3.0)).all()
    assert (population.loc[population["galaxy_type"] == "post_starburst", "line_Halpha"] == 0).all()
    # Atomic physics and case B.
    emit = population[population["bpt_class"] != "none"]
    np.testing.assert_allclose(emit["line_Halpha"] / emit["line_Hbeta"], 2.86)
    np.testing.assert_allclose(emit["line_OIII_5007"] / emit["line_OIII_4959"], 2.98)
    np.testing.assert_allclose(emit["line_NII_6584"] / emit["line_NII_6548"], 3.05)
    assert emit.eval("line_SII_6716 / line_SII_6731").between(0.8, 1.4).all()


def test_line_fluxes_are_fluxes_whatever_the_gas_dispersion(population):
    row = population[population["bpt_class"] == "star_forming"].iloc[0].to_dict()
    lines = dict.fromkeys(TEMPLATE_LINES, 0.0) | {"OIII_5007": 30.0}
    continuum, _ = template_galaxy_restframe(REST, row, dict.fromkeys(TEMPLATE_LINES, 0.0))
    # Intrinsic flux × the Calzetti transmission of the gas at 5,007 Å (relative to 5,500 Å).
    expected = 30.0 * float(calzetti_transmission(np.array([5008.2]), row["ebv_gas"])[0])
    for sigma in (60.0, 250.0):
        spec, _ = template_galaxy_restframe(REST, row, lines, sigma_gas_kms=sigma)
        window = np.abs(REST - 5008.2) < 40
        assert np.sum((spec - continuum)[window]) * 0.4 == pytest.approx(expected, rel=0.01)


def test_instrument_effects():
    wave = np.arange(3600.0, 9824.0, 0.8)
    t = telluric_transmission(wave)
    assert t[np.argmin(np.abs(wave - 7610.0))] == pytest.approx(0.4, abs=0.01)  # the O₂ A band
    assert t[(wave > 4000) & (wave < 6500)].min() > 0.999
    rng = np.random.default_rng(0)
    arms = {"b": (3600.0, 5800.0), "r": (5760.0, 7620.0), "z": (7520.0, 9824.0)}
    rms = [np.std(calibration_wiggle(rng, wave, arms)) for _ in range(50)]
    assert 0.005 < np.median(rms) < 0.03  # 1–2 % calibration errors


def test_observed_lines_carry_the_desi_line_spread():
    rest = np.arange(3000.0, 6000.0, 0.05)
    narrow = 1.0 + 50.0 * np.exp(-0.5 * ((rest - 5008.2) / 0.1) ** 2)  # σ 6 km/s: unresolved
    obs_wave = np.arange(3600.0, 9824.0, 0.8)
    z = 0.1

    def fwhm(spec):
        line = spec - np.median(spec)
        above = obs_wave[line > 0.5 * line.max()]
        return above[-1] - above[0] + 0.8  # to the pixel

    without = fwhm(to_observed_frame(obs_wave, rest, narrow, z))
    with_lsf = fwhm(to_observed_frame(obs_wave, rest, narrow, z, DESI_LSF_FWHM))
    assert without <= 0.8 + 1e-9 and with_lsf == pytest.approx(DESI_LSF_FWHM, abs=0.8)
    # Flux is conserved by the line spread.
    a = to_observed_frame(obs_wave, rest, narrow, z) - 1 / (1 + z)
    b = to_observed_frame(obs_wave, rest, narrow, z, DESI_LSF_FWHM) - 1 / (1 + z)
    assert b.sum() == pytest.approx(a.sum(), rel=1e-3)


def test_the_template_population_in_the_simulation_records_its_truth():
    sim = simulate_desi({"n_bgs": 120, "n_mws": 0, "outlier_fraction": 0.05, "population": "templates"}, 4)
    t = sim.targets
    gal = t[t["kind"] == "galaxy"]
    assert {"metallicity", "d4000", "bpt_class", "log_nii_halpha", "young_fraction"} <= set(t.columns)
    assert gal["d4000"].between(0.9, 2.4).all() and gal["metallicity"].between(-1.0, 0.5).all()
    dp = t[t["kind"] == "double_peaked"]
    assert dp["split_kms"].between(300, 800).all() and (dp["injected_delta_chi2_bin1"] > 0).all()


def test_the_template_population_needs_more_components_than_the_analytic_one():
    wave = np.linspace(2000.0, 9800.0, 700)
    counts = {
        pop: components_to_noise_floor(restframe_galaxies(pop, 300, 2, wave))["components"]["snr_30"]["p90"]
        for pop in ("analytic", "templates")
    }
    assert counts["templates"] > counts["analytic"]


def test_an_unknown_population_is_refused_by_name():
    with pytest.raises(ValueError, match="population one of"):
        simulate_desi({"n_bgs": 10, "n_mws": 0, "outlier_fraction": 0.0, "population": "emiles"}, 1)
