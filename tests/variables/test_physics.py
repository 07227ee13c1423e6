"""The physics an OGLE object takes from Gaia (latentsky.variables.physics): Magellanic Cloud members at the
Clouds' distance moduli, and the period–luminosity relation of the PELS-VAE authors' real Cepheids."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import PUBLISHED_XMATCH_DIR

from latentsky.io.ogle import read_published_crossmatch
from latentsky.variables.crossmatch import run_cascade
from latentsky.variables.physics import (
    MAGELLANIC_DISTANCE_MODULI,
    adopted_physics,
    ogle_system,
    period_luminosity,
)


def _one_source_each(ids, g, r_est):
    matches = pd.DataFrame({"ogle_id": ids, "accepted": True, "source_id": np.arange(1, len(ids) + 1)})
    gaia = pd.DataFrame(
        {
            "source_id": np.arange(1, len(ids) + 1),
            "phot_g_mean_mag": g,
            "bp_rp": 0.8,
            "r_est": r_est,
            "teff_val": 6000.0,
        }
    )
    return matches, gaia


def test_magellanic_members_take_the_distance_modulus():
    ids = ["OGLE-LMC-CEP-0002", "OGLE-SMC-CEP-0010", "OGLE-BLG-RRLYR-02924", "OGLE-SIM-CEP-00003"]
    matches, gaia = _one_source_each(ids, [15.0, 15.5, 16.0, 14.0], [6800.0, 5000.0, 8000.0, 7000.0])
    phys = adopted_physics(matches, gaia).set_index("ogle_id")
    assert phys.loc["OGLE-LMC-CEP-0002", "abs_g"] == pytest.approx(15.0 - 18.48)
    assert phys.loc["OGLE-SMC-CEP-0010", "abs_g"] == pytest.approx(15.5 - 18.96)
    assert phys.loc["OGLE-BLG-RRLYR-02924", "abs_g"] == pytest.approx(16.0 - 5 * np.log10(800.0))
    # OGLE-SIM-… ids name no system: Bailer-Jones unless the objects' field says otherwise.
    assert phys["distance_source"].tolist() == ["distance_modulus"] * 2 + ["bailer_jones"] * 2
    # The simulation's ids say nothing; its objects' field does.
    system = ogle_system(matches["ogle_id"], pd.Series([None, None, None, "lmc"]))
    assert system.tolist() == ["LMC", "SMC", "BLG", "LMC"]
    sim = adopted_physics(matches, gaia, system=system).set_index("ogle_id")
    assert sim.loc["OGLE-SIM-CEP-00003", "abs_g"] == pytest.approx(14.0 - 18.48)
    # The paper's choice, Bailer-Jones everywhere, is an empty mapping; a configured modulus is used as given.
    paper = adopted_physics(matches, gaia, distance_moduli={}).set_index("ogle_id")
    assert paper.loc["OGLE-LMC-CEP-0002", "abs_g"] == pytest.approx(15.0 - 5 * np.log10(680.0))
    other = adopted_physics(matches, gaia, distance_moduli={"LMC": 18.5}).set_index("ogle_id")
    assert other.loc["OGLE-LMC-CEP-0002", "abs_g"] == pytest.approx(-3.5)
    assert other.loc["OGLE-SMC-CEP-0010", "distance_source"] == "bailer_jones"
    assert MAGELLANIC_DISTANCE_MODULI == {"LMC": 18.48, "SMC": 18.96}
    # Which T_eff: DR2's Priam assumes no extinction, DR3's GSP-Phot fits it; the column says which.
    assert set(phys["teff_source"]) == {"gaia_dr2_priam_no_extinction"}
    dr3 = adopted_physics(matches, gaia, gaia_release="dr3")
    assert set(dr3["teff_source"]) == {"gaia_dr3_gspphot_extinction_fitted"}
    with pytest.raises(ValueError, match="gaia_release 'dr4'"):
        adopted_physics(matches, gaia, gaia_release="dr4")


@pytest.fixture(scope="module")
def authors_cepheids():
    published = read_published_crossmatch(PUBLISHED_XMATCH_DIR)
    matches, _ = run_cascade(published.ogle, published.gaia, pm_radius_convention="as_published")
    objects = published.ogle[["ogle_id", "var_class", "subtype", "period"]]
    return {
        label: objects.merge(adopted_physics(matches, published.gaia, distance_moduli=moduli), on="ogle_id")
        for label, moduli in (("moduli", None), ("bailer_jones", {}))
    }


def test_the_authors_magellanic_cepheids_have_physical_absolute_magnitudes(authors_cepheids):
    # Issue 20: on the authors' real rows, the LMC/SMC Cepheids' M_G lie between −6 and −1.5 (their
    # population: measured medians −2.58 LMC, −1.98 SMC; 93 % / 77 % of the stars inside, the rest the
    # faintest overtone pulsators and stars without extinction correction). The paper's Bailer-Jones M_G:
    # medians +1.8 and +3.5.
    frame = authors_cepheids["moduli"]
    system = ogle_system(frame["ogle_id"])
    for name in ("LMC", "SMC"):
        mg = frame.loc[(frame["var_class"] == "CEP") & (system == name), "abs_g"].dropna()
        assert len(mg) > 1000
        assert -6.0 < mg.median() < -1.5
        assert mg.between(-6.0, -1.5).mean() > 0.7
    paper = authors_cepheids["bailer_jones"]
    lmc = paper.loc[(paper["var_class"] == "CEP") & (system == "LMC"), "abs_g"]
    assert lmc.median() > 1.0


def test_the_period_luminosity_relation_of_the_lmc_cepheids(authors_cepheids):
    # With the LMC's modulus the fundamental-mode slope is the Gaia DR2 G-band P–L's (≈ −2.8, Ripepi et al.
    # 2019) and the scatter ~0.2 mag (measured −2.85, 0.17); from Bailer-Jones distances the relation is
    # lost (−4.6, 0.61).
    fits = {
        label: period_luminosity(frame).set_index(["system", "subtype"])
        for label, frame in authors_cepheids.items()
    }
    lmc_f = fits["moduli"].loc[("LMC", "F")]
    assert -3.1 < lmc_f["slope"] < -2.6 and lmc_f["scatter"] < 0.25 and lmc_f["n"] > 600
    assert -3.5 < fits["moduli"].loc[("LMC", "1O"), "slope"] < -2.8  # overtones: steeper, brighter
    assert fits["moduli"].loc[("LMC", "1O"), "zero_point"] < lmc_f["zero_point"]
    bj = fits["bailer_jones"].loc[("LMC", "F")]
    assert bj["scatter"] > 2 * lmc_f["scatter"] and bj["slope"] < -4.0
    with pytest.raises(ValueError, match="period–luminosity table: missing column"):
        period_luminosity(authors_cepheids["moduli"].drop(columns="abs_g"))


def test_reddening_map_corrects_m_g_and_dr2_teff():
    """A reddened RR Lyrae, Cepheid and Mira behind known A_0: M_G by A_G for all three, T_eff back to truth
    where the colour lies in the relation's range (the Mira keeps Gaia's value and its flag), nothing
    outside the map, and DR3's T_eff (extinction fitted) left alone."""
    from latentsky.extinction import a0_from_ogle, gaia_reddening
    from latentsky.photometry import class_bp_rp0
    from latentsky.variables.physics import TEFF_DEREDDENED

    ids = ["OGLE-BLG-RRLYR-00001", "OGLE-LMC-CEP-0002", "OGLE-BLG-LPV-000003", "OGLE-BLG-RRLYR-00004"]
    classes = pd.Series(["RRLYR", "CEP", "LPV", "RRLYR"])
    true_teff = np.array([6500.0, 5600.0, 3200.0, 6500.0])
    e_v_i, a_i = np.array([1.0, 0.1, 1.0, np.nan]), np.array([1.2, 0.15, 1.2, np.nan])
    a0 = a0_from_ogle(e_v_i, a_i)
    bp_rp0 = class_bp_rp0(true_teff, classes.to_numpy())
    a_g, e_bp_rp = gaia_reddening(bp_rp0, np.nan_to_num(a0, nan=2.2))  # the 4th is reddened, off the map
    matches, gaia = _one_source_each(ids, [16.0, 15.0, 12.0, 16.0], [8000.0, 6800.0, 8000.0, 8000.0])
    gaia["bp_rp"] = bp_rp0 + e_bp_rp
    gaia["teff_val"] = [4300.0, 5300.0, 3300.0, 4300.0]  # Priam-like: cool, as if unreddened
    reddening = pd.DataFrame({"e_v_i": e_v_i, "a_i": a_i})
    plain = adopted_physics(matches, gaia).set_index("ogle_id")
    phys = adopted_physics(matches, gaia, reddening=reddening, var_class=classes).set_index("ogle_id")

    np.testing.assert_allclose(phys["teff"].to_numpy()[:2], true_teff[:2], rtol=1e-6)
    assert phys["teff_source"].tolist() == [TEFF_DEREDDENED] * 2 + ["gaia_dr2_priam_no_extinction"] * 2
    np.testing.assert_allclose(phys["teff"].to_numpy()[2:], [3300.0, 4300.0])  # out of range / off the map
    np.testing.assert_allclose(phys["teff_gaia"], gaia["teff_val"])
    np.testing.assert_allclose(phys["a_g"].to_numpy()[:3], a_g[:3], rtol=1e-6)
    np.testing.assert_allclose(phys["abs_g"].to_numpy()[:3], plain["abs_g"].to_numpy()[:3] - a_g[:3])
    assert phys["abs_g"].iloc[3] == plain["abs_g"].iloc[3] and np.isnan(phys["a_g"].iloc[3])
    # DR3: M_G corrected the same way, T_eff is GSP-Phot's own.
    dr3 = adopted_physics(matches, gaia, gaia_release="dr3", reddening=reddening, var_class=classes)
    np.testing.assert_allclose(dr3["teff"], gaia["teff_val"])
    np.testing.assert_allclose(dr3["abs_g"], phys["abs_g"])
    with pytest.raises(ValueError, match="var_class is required"):
        adopted_physics(matches, gaia, reddening=reddening)
