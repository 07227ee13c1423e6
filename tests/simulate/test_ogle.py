"""Tests of the simulated OGLE-III fields with their Gaia DR2-like surroundings (paper 000, Sec. 2, App. A)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import PUBLISHED_XMATCH_DIR
from scipy import stats

from latentsky.io.ogle import OBJECT_COLUMNS, published_table_paths, read_ogle_gaia_xmatch
from latentsky.simulate.ogle import (
    ASTROMETRIC_NOISE_ARCSEC,
    CLASS_FIELD_COUNTS,
    CLASSES,
    M_G_SUN,
    SUBTYPES,
    T_SUN,
    TABLE1_CLEAN_COUNTS,
    TEFF_VAL_SIGMA,
    class_counts,
    flame_radius_luminosity,
    ogle_i_error,
    simulate_ogle_fields,
)
from latentsky.variables.lightcurves import fold, keep_subtype, rise_fraction

XMATCH_DIR = PUBLISHED_XMATCH_DIR
XMATCH_TABLES = published_table_paths(XMATCH_DIR)

CFG = {
    "n_objects": 1000,
    "dt_yr": 15.5,
    "crowding": 0.6,
    "fraction_gaia_class": 0.3,
    "fraction_teff": 0.67,
    "fraction_missing_bp_rp": 0.05,
}


@pytest.fixture(scope="module")
def sim():
    return simulate_ogle_fields(CFG, seed=7)


def _sep_arcsec(ra1, dec1, ra2, dec2):
    dra = (np.asarray(ra2) - np.asarray(ra1) + 180.0) % 360.0 - 180.0
    return 3600.0 * np.hypot(dra * np.cos(np.deg2rad(dec1)), np.asarray(dec2) - np.asarray(dec1))


def test_class_proportions_follow_table1(sim):
    counts = sim.objects["var_class"].value_counts()
    assert set(counts.index) == set(CLASSES)
    assert counts.sum() == CFG["n_objects"]
    total = sum(TABLE1_CLEAN_COUNTS.values())
    for cls in ("CEP", "ECL", "LPV", "RRLYR", "ELL"):  # the large classes keep their Table 1 share
        assert counts[cls] / 1000 == pytest.approx(TABLE1_CLEAN_COUNTS[cls] / total, abs=0.02)
    assert counts["ACEP"] >= 5 and counts["DSCT"] >= 5  # the 1% floor
    assert class_counts(10) == class_counts(10) and sum(class_counts(37).values()) == 37


def test_periods_in_class_ranges_and_subtypes(sim):
    ranges = {"RRLYR": (0.25, 0.8), "CEP": (1, 30), "T2CEP": (1, 20), "ACEP": (0.4, 2), "DSCT": (0.02, 0.2),
              "ECL": (0.3, 10), "ELL": (0.5, 5), "LPV": (50, 700)}  # fmt: skip
    for cls, (lo, hi) in ranges.items():
        p = sim.objects.loc[sim.objects["var_class"] == cls, "period"]
        assert p.between(lo, hi).all(), cls
    rr = sim.objects[sim.objects["var_class"] == "RRLYR"]
    assert rr.loc[rr["subtype"] == "RRab", "period"].min() >= 0.45
    assert rr.loc[rr["subtype"] == "RRc", "period"].max() <= 0.45
    for cls, subs in SUBTYPES.items():
        got = set(sim.objects.loc[sim.objects["var_class"] == cls, "subtype"])
        assert got <= {s[0] for s in subs}
    assert {"SRV", "OSARG", "1O/2O"} & set(sim.objects["subtype"])  # dropped-later subtypes are present


def test_the_simulations_multimode_subtypes_are_the_ones_the_stage_drops():
    # The simulation writes OGLE-III's vocabulary, so the light-curve stage's filter sees what it would see on
    # real tables (it once wrote F1O / 1O2O, which slipped past the filter into the demo's training set).
    dropped = {"F/1O", "1O/2O", "MULTIMODE", "RRd", "SRV", "OSARG"}
    for cls, subs in SUBTYPES.items():
        for name, *_ in subs:
            assert keep_subtype(cls, name) == (name not in dropped), (cls, name)


def test_rr_lyrae_shape_depends_on_teff(sim):
    obj = sim.objects.merge(sim.truth[["ogle_id", "teff"]], on="ogle_id")
    obj = obj[(obj["var_class"] == "RRLYR") & (obj["i_mag"] < 18.5)]
    lc = sim.light_curves.groupby("ogle_id")
    rise, skew = [], []
    for row in obj.itertuples():
        g = lc.get_group(row.ogle_id)
        rise.append(rise_fraction(fold(g["time"].to_numpy(), row.period), g["mag"].to_numpy()))
        skew.append(stats.skew(g["mag"]))
    rho_rise = stats.spearmanr(obj["teff"], rise).statistic
    rho_skew = stats.spearmanr(obj["teff"], skew).statistic
    assert rho_rise > 0.5  # hot → slower rise (near-sinusoid), cool → steep sawtooth rise
    assert rho_skew > 0.3  # cool RRab: brief spiky maximum → negative magnitude skewness
    amp = lc["mag"].quantile(0.95) - lc["mag"].quantile(0.05)
    assert stats.spearmanr(obj["teff"], amp[obj["ogle_id"]]).statistic < -0.5


def test_cadence_has_seasons_and_hundreds_of_epochs(sim):
    n = sim.light_curves.groupby("ogle_id").size()
    assert n.min() >= 300 and n.max() <= 1000
    for fld in ("BLG", "LMC"):
        oid = sim.objects.loc[sim.objects["field"] == fld, "ogle_id"].iloc[0]
        t = sim.light_curves.loc[sim.light_curves["ogle_id"] == oid, "time"].to_numpy()
        assert np.all(np.diff(t) >= 0)
        gaps = np.diff(t)
        assert (gaps > 60).sum() >= 6  # seasonal gaps between ~8 seasons
        assert 2500 < t.max() - t.min() < 3100  # ~8 years
        assert np.median(gaps) < 5  # dense within a season


def test_errors_grow_with_magnitude(sim):
    assert ogle_i_error(14.0) == pytest.approx(0.005, abs=0.002)
    assert ogle_i_error(19.5) == pytest.approx(0.1, rel=0.1)
    med = sim.light_curves.groupby("ogle_id")["err"].median()
    imag = sim.objects.set_index("ogle_id")["i_mag"][med.index]
    assert stats.spearmanr(imag, med).statistic > 0.9


def test_counterpart_offset_is_pm_times_dt(sim):
    gaia = sim.gaia.set_index("source_id")
    cp = gaia.loc[sim.truth["source_id"]]
    o = sim.objects
    sep = _sep_arcsec(o["ra"], o["dec"], cp["ra"].to_numpy(), cp["dec"].to_numpy())
    assert np.mean(sep < 2.0) > 0.99
    dra = ((cp["ra"].to_numpy() - o["ra"] + 180) % 360 - 180) * np.cos(np.deg2rad(o["dec"])) * 3600
    ddec = (cp["dec"].to_numpy() - o["dec"]) * 3600
    t = sim.truth
    res_ra = dra - t["pmra"] * CFG["dt_yr"] / 1000 - t["astrometric_noise_ra"]
    res_dec = ddec - t["pmdec"] * CFG["dt_yr"] / 1000 - t["astrometric_noise_dec"]
    assert np.abs(res_ra).max() < 1e-4 and np.abs(res_dec).max() < 1e-4
    assert (cp["pmra"].to_numpy() == t["pmra"].to_numpy()).all()
    # a zero epoch difference leaves only the noise
    s0 = simulate_ogle_fields({**CFG, "dt_yr": 0.0, "n_objects": 200}, seed=1)
    cp0 = s0.gaia.set_index("source_id").loc[s0.truth["source_id"]]
    sep0 = _sep_arcsec(s0.objects["ra"], s0.objects["dec"], cp0["ra"].to_numpy(), cp0["dec"].to_numpy())
    assert np.median(sep0) < 0.15


def test_crowding_gives_multiple_sources_in_cone(sim):
    o = sim.objects
    g = sim.gaia
    n_in = np.array(
        [
            (_sep_arcsec(r, d, g["ra"].to_numpy(), g["dec"].to_numpy()) < 2.0).sum()
            for r, d in zip(o["ra"], o["dec"], strict=True)
        ]
    )
    frac_multi = np.mean(n_in >= 2)
    assert 0.25 < frac_multi < 0.65  # paper 000 App. A: 15,108 / 34,653 = 44%
    assert np.mean(n_in >= 3) > 0.03
    none = simulate_ogle_fields({**CFG, "crowding": 0.0, "n_objects": 100}, seed=2)
    assert len(none.gaia) == 100


def test_gaia_columns_and_physics(sim):
    g = sim.gaia
    assert g["source_id"].dtype == np.int64 and g["source_id"].is_unique
    assert list(g.columns) == ["source_id", "ra", "dec", "pmra", "pmdec", "phot_g_mean_mag", "bp_rp", "teff_val",
                               "r_est", "phot_variable_flag", "gaia_var_class", "radius_val", "lum_val"]  # fmt: skip
    labels = set(g["gaia_var_class"].dropna())
    assert labels <= {"RRAB", "RRC", "RRD", "CEP", "T2CEP", "ACEP", "MIRA_SR", "DSCT_SXPHE"} and labels
    assert 0.2 < g["teff_val"].notna().mean() < 0.8
    assert 0 < g["bp_rp"].isna().mean() < 0.5
    # FLAME R and L only where Priam gave a Teff (Andrae et al. 2018), for fewer than half of those.
    assert (g["radius_val"].notna() <= g["teff_val"].notna()).all()
    assert (g["radius_val"].notna() == g["lum_val"].notna()).all()
    assert 0 < g["radius_val"].notna().sum() < 0.5 * g["teff_val"].notna().sum()
    # Physics lives in the truth (and, observed, in the Gaia table), not in the OGLE catalog.
    assert list(sim.objects.columns) == list(OBJECT_COLUMNS)
    n_epochs = sim.light_curves.groupby("ogle_id").size().reindex(sim.objects["ogle_id"]).to_numpy()
    np.testing.assert_array_equal(sim.objects["n_epochs"].to_numpy(), n_epochs)
    t = sim.objects[["ogle_id", "var_class"]].merge(sim.truth, on="ogle_id").set_index("var_class")
    assert t.loc["LPV", "teff"].max() < t.loc["RRLYR", "teff"].min()
    assert t.loc["CEP", "abs_g"].median() < t.loc["RRLYR", "abs_g"].median() - 2
    # The counterparts' Gaia Teff: Table-1 rates scaled to fraction_teff; Priam-like, it assumes no extinction:
    # TEFF_VAL_SIGMA about the truth in the nearly unreddened Clouds, far too cool behind the bulge's A_I 1.2
    # (the authors' bulge RRab: median 4,831 K).
    cp = sim.truth.merge(g, on="source_id").merge(sim.objects[["ogle_id", "field"]], on="ogle_id")
    assert cp["teff_val"].notna().mean() == pytest.approx(CFG["fraction_teff"], abs=0.1)
    resid = (cp["teff_val"] - cp["teff"])[cp["teff"].between(3600, 7000)]
    clouds = resid[cp["field"] != "BLG"].dropna()
    assert clouds.std() == pytest.approx(TEFF_VAL_SIGMA, rel=0.3) and -400 < clouds.median() < 0
    assert resid[cp["field"] == "BLG"].median() < -800


def test_reddening_map_covers_the_fields_and_dereddens_to_the_truth(sim):
    """Every object lies within half a map step of a sight line; the map's A_0 with the Gaia colour gives back
    the RR Lyrae's true T_eff to a few per cent and M_G to ~0.1 mag. The map lacks the 10 % star-to-star
    scatter of A_I: σ(A_0) ≈ 0.2 mag → σ(E(BP−RP)) ≈ 0.1 mag → ≈ 250 K (4 %) at 6,500 K, plus BP/RP noise at
    G ≈ 17; without the correction the error is > 1,000 K."""
    from latentsky.extinction import a0_from_ogle, gaia_deredden
    from latentsky.io.reddening import reddening_at
    from latentsky.photometry import class_teff
    from latentsky.simulate.ogle import REDDENING_MAP_STEP_DEG

    red = reddening_at(sim.objects["ra"], sim.objects["dec"], sim.reddening_map, 60 * REDDENING_MAP_STEP_DEG)
    assert red["separation_arcmin"].max() < 60 * REDDENING_MAP_STEP_DEG
    obj = sim.objects.assign(e_v_i=red["e_v_i"].to_numpy(), a_i=red["a_i"].to_numpy())
    cp = obj.merge(sim.truth[["ogle_id", "source_id", "teff", "abs_g", "distance_pc"]], on="ogle_id")
    cp = cp.merge(sim.gaia[["source_id", "bp_rp", "phot_g_mean_mag"]], on="source_id")
    rr = cp[(cp["var_class"] == "RRLYR") & (cp["field"] == "BLG") & cp["bp_rp"].notna()]
    bp_rp0, a_g = gaia_deredden(rr["bp_rp"], a0_from_ogle(rr["e_v_i"], rr["a_i"]))
    teff = class_teff(bp_rp0, rr["var_class"].to_numpy())[0]
    assert np.median(np.abs(teff / rr["teff"] - 1)) < 0.06
    assert np.median(np.abs(rr["teff"] - class_teff(rr["bp_rp"], rr["var_class"].to_numpy())[0])) > 1000
    mg = rr["phot_g_mean_mag"] - a_g - 5 * np.log10(rr["distance_pc"] / 10)
    assert np.median(np.abs(mg - rr["abs_g"])) < 0.15


def test_flame_radius_luminosity_is_the_sun_for_the_sun():
    r, lum = flame_radius_luminosity(np.array([M_G_SUN, M_G_SUN + 5.0, 10.0]), np.array([10.0, 100.0, np.nan]),
                                     np.array([T_SUN, T_SUN / 2.0, 5000.0]))  # fmt: skip
    np.testing.assert_allclose(lum[:2], [1.0, 1.0])
    np.testing.assert_allclose(r[:2], [1.0, 4.0])  # L fixed, T halved → R × 4
    assert np.isnan(r[2]) and np.isnan(lum[2])


def test_class_field_mix_follows_the_authors_tables(sim):
    # CLASS_FIELD_COUNTS is the authors' validated objects per class and target (GD counted with BLG).
    counts: dict[str, dict[str, int]] = {k: {"BLG": 0, "LMC": 0, "SMC": 0} for k in CLASSES}
    for name in ("cmd_confirmed.csv", "var_conf_matches.csv", "one_pmrad_match.csv",
                 "gaiaVar_noClass_confirmed.csv", "cmd_secondaries_confirmed.csv"):  # fmt: skip
        xm = read_ogle_gaia_xmatch(XMATCH_TABLES[name])
        target = xm["ogle_id"].str.split("-").str[1].replace({"GD": "BLG"})
        for (cls, tgt), n in pd.crosstab(xm["var_class"], target).stack().items():
            counts[cls][tgt] += int(n)
    assert counts == CLASS_FIELD_COUNTS
    for cls in ("CEP", "ECL", "RRLYR"):
        got = sim.objects.loc[sim.objects["var_class"] == cls, "field"].value_counts(normalize=True)
        want = pd.Series(CLASS_FIELD_COUNTS[cls], dtype=float)
        want = want / want.sum()
        for fld in ("BLG", "LMC", "SMC"):
            assert got.get(fld, 0.0) == pytest.approx(want[fld], abs=0.08), (cls, fld)


def test_astrometric_noise_matches_the_real_ogle_gaia_offsets():
    # angDist = OGLE position vs Gaia propagated to J2000: pure astrometric scatter. For a 2-D Gaussian with σ
    # per coordinate the median offset is σ √(2 ln 2).
    ang = pd.concat(
        read_ogle_gaia_xmatch(XMATCH_TABLES[n])["ang_dist_arcsec"]
        for n in ("cmd_confirmed.csv", "var_conf_matches.csv", "gaiaVar_noClass_confirmed.csv")
    )
    sigma = ang.median() / np.sqrt(2 * np.log(2))
    assert sigma == pytest.approx(ASTROMETRIC_NOISE_ARCSEC, rel=0.1)


def test_deterministic_and_validation():
    a = simulate_ogle_fields({**CFG, "n_objects": 150}, seed=3)
    b = simulate_ogle_fields({**CFG, "n_objects": 150}, seed=3)
    c = simulate_ogle_fields({**CFG, "n_objects": 150}, seed=4)
    for name in ("objects", "light_curves", "gaia", "truth"):
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name))
    assert not a.light_curves["mag"].equals(c.light_curves["mag"])
    with pytest.raises(ValueError, match="crowding"):
        simulate_ogle_fields({k: v for k, v in CFG.items() if k != "crowding"}, seed=0)
    with pytest.raises(ValueError, match="fraction_teff"):
        simulate_ogle_fields({**CFG, "fraction_teff": 1.5}, seed=0)
    with pytest.raises(ValueError, match="n_objects"):
        simulate_ogle_fields({**CFG, "n_objects": 2.5}, seed=0)
    with pytest.raises(ValueError, match="fields"):
        simulate_ogle_fields({**CFG, "fields": []}, seed=0)
