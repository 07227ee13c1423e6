"""Tests of the OGLE × Gaia validation cascade (paper 000, Appendix A / Table 4)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord
from conftest import PUBLISHED_XMATCH_DIR

from latentsky.io.ogle import (
    OgleFormatError,
    compare_with_published,
    published_table_paths,
    read_ogle_gaia_xmatch,
    read_published_crossmatch,
)
from latentsky.photometry import g_minus_v, gaia_g_from_vi
from latentsky.variables.crossmatch import (
    CASCADE_RULES,
    GAIA_TO_OGLE_CLASS,
    cascade_counts,
    cascade_metrics,
    cascade_summary,
    classes_same,
    compare_per_rule,
    cone_match,
    learn_class_ranges,
    main_sequence_degenerate,
    nearest_neighbour_matches,
    pm_radius_arcsec,
    precision_recall,
    published_agreement,
    published_agreement_summary,
    rule_score,
    run_cascade,
)
from latentsky.variables.physics import adopted_physics

# Real files are required (resources/ogle3_gaiadr2_xmatch, in the repository): a missing one fails, not skips.
XMATCH_DIR = PUBLISHED_XMATCH_DIR
XMATCH_TABLES = published_table_paths(XMATCH_DIR)

# Fixed per-class ranges so each branch test does not depend on learning (learning is tested separately).
RANGES = pd.DataFrame(
    {
        "bp_rp_lo": [0.3, 0.4, 0.2, 1.5],
        "bp_rp_hi": [2.5, 2.0, 3.0, 6.0],
        "teff_lo": [5500.0, 4500.0, np.nan, 2500.0],
        "teff_hi": [8000.0, 7000.0, np.nan, 4000.0],
        "n_bp_rp": [100, 100, 100, 100],
        "n_teff": [100, 100, 0, 100],
    },
    index=pd.Index(["RRLYR", "CEP", "ECL", "LPV"], name="var_class"),
)


def _ogle(ogle_id: str, ra: float, var_class: str = "RRLYR", period: float = 0.5) -> dict:
    return {"ogle_id": ogle_id, "ra": ra, "dec": 0.0, "var_class": var_class, "subtype": "", "period": period}


def _gaia(sid: int, ra0: float, sep: float, pm=(0.0, 0.0), **kw) -> dict:
    """A Gaia source `sep` arcsec north of (ra0, 0)."""
    row = {
        "source_id": sid,
        "ra": ra0,
        "dec": sep / 3600.0,
        "pmra": pm[0],
        "pmdec": pm[1],
        "phot_g_mean_mag": 15.0,
        "bp_rp": np.nan,
        "teff_val": np.nan,
        "r_est": np.nan,
        "phot_variable_flag": "NOT_AVAILABLE",
        "gaia_var_class": None,
    }
    row.update(kw)
    return row


FAST = (30.0, 40.0)  # |μ| = 50 mas/yr → PM radius 0.775″ over 15.5 yr
SLOW = (3.0, 4.0)  # 0.0775″


def _gaia_frame(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows).astype({"source_id": np.int64})


# Each case: OGLE class, period, Gaia sources (source_id, sep, extra columns) → expected rule, chosen id.
CASES = {
    "single": ("RRLYR", 0.5, [(1, 0.5, {})], "single_match", 1),
    "one_in_pm": ("RRLYR", 0.5, [(1, 0.3, {"pm": FAST}), (2, 1.5, {})], "one_in_pm_radius", 1),
    "outside_pass": ("RRLYR", 0.5, [(1, 0.5, {"pm": SLOW}), (2, 1.5, {})], "outside_pm_radius_pass", 1),
    "outside_fail": ("RRLYR", 0.5, [(1, 0.5, {"pm": SLOW}), (2, 0.8, {})], "outside_pm_radius_fail", None),
    "same_rr": (
        "RRLYR",
        0.5,
        [(1, 0.3, {"pm": FAST, "gaia_var_class": "RRAB"}), (2, 0.6, {})],
        "same_var_class",
        1,
    ),
    "same_cep_family": (
        "CEP",
        3.0,
        [(1, 0.3, {"pm": FAST, "gaia_var_class": "T2CEP"}), (2, 0.6, {})],
        "same_var_class",
        1,
    ),
    "adjacent_rr_cep": (
        "RRLYR",
        0.5,
        [(1, 0.3, {"pm": FAST, "gaia_var_class": "CEP"}), (2, 0.6, {})],
        "adjacent_var_class",
        1,
    ),
    "adjacent_ecl": (
        "ECL",
        2.0,
        [(1, 0.3, {"pm": FAST, "gaia_var_class": "RRAB"}), (2, 0.6, {})],
        "adjacent_var_class",
        1,
    ),
    "fatal_long_period": (
        "RRLYR",
        1.5,
        [(1, 0.3, {"pm": FAST, "gaia_var_class": "CEP"}), (2, 0.6, {})],
        "fatal_var_class",
        None,
    ),
    "fatal_lpv": (
        "LPV",
        300.0,
        [(1, 0.3, {"pm": FAST, "gaia_var_class": "RRAB"}), (2, 0.6, {})],
        "fatal_var_class",
        None,
    ),
    "variable_in_range": (
        "RRLYR",
        0.5,
        [
            (1, 0.3, {"pm": FAST, "phot_variable_flag": "VARIABLE", "bp_rp": 1.0, "teff_val": 6500.0}),
            (2, 0.6, {}),
        ],
        "variable_no_class",
        1,
    ),
    "variable_teff_out": (
        "RRLYR",
        0.5,
        [
            (1, 0.3, {"pm": FAST, "phot_variable_flag": "VARIABLE", "bp_rp": 1.0, "teff_val": 4000.0}),
            (2, 0.6, {}),
        ],
        "variable_no_class_out_of_range",
        None,
    ),
    "variable_colour_out": (
        "RRLYR",
        0.5,
        [(1, 0.3, {"pm": FAST, "phot_variable_flag": "VARIABLE", "bp_rp": 3.0}), (2, 0.6, {})],
        "variable_no_class_out_of_range",
        None,
    ),
    # M_G = 10 − 5 log10(100) = 0 at BP−RP 1.0: far above the dwarf ridge (5.6).
    "cmd_ok": (
        "RRLYR",
        0.5,
        [(1, 0.3, {"pm": FAST, "bp_rp": 1.0, "phot_g_mean_mag": 10.0, "r_est": 1000.0}), (2, 0.6, {})],
        "cmd_validated",
        1,
    ),
    # M_G = 15 − 10 = 5.0 at BP−RP 1.0: within 1 mag of the ridge → main-sequence degenerate.
    "cmd_ms": (
        "RRLYR",
        0.5,
        [(1, 0.3, {"pm": FAST, "bp_rp": 1.0, "r_est": 1000.0}), (2, 0.6, {})],
        "cmd_main_sequence",
        None,
    ),
    "three_or_more": (
        "RRLYR",
        0.5,
        [(1, 0.2, {"pm": FAST}), (2, 0.4, {"r_est": 800.0, "bp_rp": 1.0}), (3, 0.6, {})],
        "three_or_more_in_pm_radius",
        None,
    ),
    "second_same_class": (
        "RRLYR",
        0.5,
        [(1, 0.2, {"pm": FAST}), (2, 0.4, {"gaia_var_class": "RRC"}), (3, 0.6, {})],
        "second_same_var_class",
        2,
    ),
    "no_distance": (
        "RRLYR",
        0.5,
        [(1, 0.2, {"pm": FAST}), (2, 0.4, {"bp_rp": 1.0})],
        "no_distance",
        None,
    ),
    # Second: M_G = 12 − 5 log10(500) = −1.49 at BP−RP 1.5, inside RRLYR colours.
    "second_cmd_ok": (
        "RRLYR",
        0.5,
        [(1, 0.2, {"pm": FAST}), (2, 0.4, {"bp_rp": 1.5, "phot_g_mean_mag": 12.0, "r_est": 5000.0})],
        "second_cmd_validated",
        2,
    ),
    "second_too_blue": (
        "RRLYR",
        0.5,
        [(1, 0.2, {"pm": FAST}), (2, 0.4, {"bp_rp": 0.1, "phot_g_mean_mag": 12.0, "r_est": 5000.0})],
        "second_ms_or_too_blue",
        None,
    ),
    "second_ms": (
        "RRLYR",
        0.5,
        [(1, 0.2, {"pm": FAST}), (2, 0.4, {"bp_rp": 1.0, "phot_g_mean_mag": 15.0, "r_est": 1000.0})],
        "second_ms_or_too_blue",
        None,
    ),
    # No PM for the nearest: the PM radius falls back to the 2″ cone, so both sources compete and the
    # object goes on to the class check instead of one_in_pm_radius.
    "pm_unknown": (
        "RRLYR",
        0.5,
        [(1, 0.3, {"pm": (np.nan, np.nan), "gaia_var_class": "RRAB"}), (2, 1.5, {})],
        "same_var_class",
        1,
    ),
    "no_candidate": ("RRLYR", 0.5, [(1, 3.0, {})], "no_candidate", None),
}


def _build(cases: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    ogle, gaia = [], []
    for k, (name, (cls, period, sources, _, _)) in enumerate(cases.items()):
        ra0 = 10.0 + k  # 1° apart: no case sees another's sources
        ogle.append(_ogle(name, ra0, cls, period))
        for sid, sep, extra in sources:
            extra = dict(extra)
            pm = extra.pop("pm", (0.0, 0.0))
            gaia.append(_gaia(1000 * (k + 1) + sid, ra0, sep, pm, **extra))
    return pd.DataFrame(ogle), _gaia_frame(gaia)


def test_pm_radius_arithmetic():
    assert pm_radius_arcsec(30.0, 40.0) == pytest.approx(0.775)
    assert pm_radius_arcsec(30.0, 40.0, dt_yr=10.0) == pytest.approx(0.5)
    arr = pm_radius_arcsec(np.array([0.0, 130.0, np.nan]), np.array([0.0, 0.0, 1.0]))
    np.testing.assert_allclose(arr[:2], [0.0, 2.015])
    assert np.isnan(arr[2])


def test_pm_radius_as_published_convention():
    # Table 4's counts need radii ≳ 2″: |μ|·Δt in mas/yr·yr read as arcsec (crossmatch.pm_radius_arcsec).
    assert pm_radius_arcsec(3.0, 4.0, convention="as_published") == pytest.approx(77.5)
    with pytest.raises(ValueError, match="convention"):
        pm_radius_arcsec(3.0, 4.0, convention="mas")
    # A slow nearest source 0.5″ away: outside its physical 0.0775″ radius but inside the published one, so the
    # object goes on to the class/CMD checks, and the second source is a competitor.
    ogle, gaia = _build(
        {"x": ("RRLYR", 0.5, [(1, 0.5, {"pm": SLOW, "gaia_var_class": "RRAB"}), (2, 1.5, {})], "", 1)}
    )
    phys = run_cascade(ogle, gaia, class_ranges=RANGES)[0].iloc[0]
    publ = run_cascade(ogle, gaia, class_ranges=RANGES, pm_radius_convention="as_published")[0].iloc[0]
    assert phys["rule"] == "outside_pm_radius_pass" and phys["pm_radius_arcsec"] == pytest.approx(0.0775)
    assert publ["rule"] == "same_var_class" and publ["n_within_pm_radius"] == 2
    assert publ["pm_radius_arcsec"] == pytest.approx(77.5)
    # Without PM the authors accepted the nearest as the one match in its PM radius (one_pmrad_match.csv).
    ogle, gaia = _build({"y": ("RRLYR", 0.5, [(1, 0.5, {"pm": (np.nan, np.nan)}), (2, 0.7, {})], "", 1)})
    # Physical: an unknown PM makes every source in the cone a competitor (here: two, neither placeable).
    assert run_cascade(ogle, gaia, class_ranges=RANGES)[0]["rule"].iloc[0] == "no_distance"
    publ = run_cascade(ogle, gaia, class_ranges=RANGES, pm_radius_convention="as_published")[0].iloc[0]
    assert publ["rule"] == "one_in_pm_radius" and publ["source_id"] == 1001


def test_authors_one_pm_radius_rows_are_sources_without_proper_motion():
    # The evidence for the as_published reading: the 1,119 rows the authors accepted as "only 1 match in PM
    # radius" are, but for two, Gaia sources with a 2-parameter solution (no PM, so no physical radius).
    xm = read_ogle_gaia_xmatch(XMATCH_TABLES["one_pmrad_match.csv"])
    assert len(xm) == 1119
    assert xm["pmra"].isna().sum() >= 1115


def test_adopted_physics_from_the_accepted_source():
    ogle, gaia = _build(
        {
            "ok": ("RRLYR", 0.5, [(1, 0.5, {"teff_val": 6500.0, "r_est": 1000.0, "bp_rp": 0.7})], "", 1),
            "no_teff": ("RRLYR", 0.5, [(1, 0.5, {"r_est": 100.0})], "", 1),
            "rejected": ("RRLYR", 0.5, [(1, 0.5, {"pm": SLOW, "teff_val": 6000.0}), (2, 0.8, {})], "", None),
        }
    )
    gaia["radius_val"] = np.where(gaia["source_id"] == 1001, 4.5, np.nan)
    gaia["lum_val"] = np.where(gaia["source_id"] == 1001, 40.0, np.nan)
    matches, _ = run_cascade(ogle, gaia, class_ranges=RANGES)
    phys = adopted_physics(matches, gaia).set_index("ogle_id")
    assert phys.loc["ok", "teff"] == 6500.0 and phys.loc["ok", "abs_g"] == pytest.approx(15.0 - 10.0)
    assert (
        phys.loc["ok", "radius"] == 4.5
        and phys.loc["ok", "luminosity"] == 40.0
        and phys.loc["ok", "has_physics"]
    )
    assert phys.loc["no_teff", "abs_g"] == pytest.approx(10.0) and not phys.loc["no_teff", "has_physics"]
    assert pd.isna(phys.loc["rejected", "source_id"]) and np.isnan(phys.loc["rejected", "teff"])
    assert not phys.loc["rejected", "has_physics"]
    assert list(phys.index) == list(matches["ogle_id"])


def test_cone_match_ranks_by_separation():
    ogle = pd.DataFrame([_ogle("A", 10.0), _ogle("B", 20.0)])
    gaia = _gaia_frame([_gaia(3, 10.0, 1.2), _gaia(1, 10.0, 0.4), _gaia(2, 10.0, 2.5), _gaia(4, 20.0, 0.1)])
    pairs = cone_match(ogle, gaia, radius_arcsec=2.0)
    assert list(pairs["ogle_id"]) == ["A", "A", "B"]
    assert list(pairs["source_id"]) == [1, 3, 4]
    assert list(pairs["rank"]) == [1, 2, 1]
    expect = SkyCoord(10 * u.deg, 0 * u.deg).separation(SkyCoord(10 * u.deg, (1.2 / 3600) * u.deg)).arcsec
    assert pairs["separation_arcsec"].iloc[1] == pytest.approx(expect, rel=1e-9)


@pytest.mark.parametrize("name", list(CASES))
def test_cascade_branch(name):
    ogle, gaia = _build({name: CASES[name]})
    matches, _ = run_cascade(ogle, gaia, class_ranges=RANGES)
    _, _, sources, rule, chosen = CASES[name]
    row = matches.iloc[0]
    assert row["rule"] == rule
    assert row["accepted"] == CASCADE_RULES[rule][0]
    if chosen is None:
        assert pd.isna(row["source_id"])
    else:
        assert row["source_id"] == 1000 + chosen
        assert row["neighbour_rank"] == chosen
    n_cone = sum(sep <= 2.0 for _, sep, _ in sources)
    assert row["n_within_radius"] == n_cone


def test_cascade_keeps_every_object_and_counts_in_table4_order():
    ogle, gaia = _build(CASES)
    matches, counts = run_cascade(ogle, gaia, class_ranges=RANGES)
    assert len(matches) == len(ogle)
    assert list(matches["ogle_id"]) == list(ogle["ogle_id"])
    assert list(matches["rule"]) == [c[3] for c in CASES.values()]
    # Table 4's rows, in the paper's order, then the two outcomes the paper does not list.
    assert list(counts["rule"]) == [
        "single_match",
        "one_in_pm_radius",
        "outside_pm_radius_pass",
        "outside_pm_radius_fail",
        "same_var_class",
        "variable_no_class",
        "adjacent_var_class",
        "fatal_var_class",
        "cmd_validated",
        "second_cmd_validated",
        "second_same_var_class",
        "cmd_main_sequence",
        "three_or_more_in_pm_radius",
        "second_ms_or_too_blue",
        "no_distance",
        "variable_no_class_out_of_range",
        "no_candidate",
        "photometry_inconsistent",
    ]
    assert counts["count"].sum() == len(ogle)
    assert counts.set_index("rule").loc["adjacent_var_class", "count"] == 2
    assert counts.set_index("rule").loc["second_ms_or_too_blue", "count"] == 2
    assert counts.set_index("rule").loc["single_match", "paper_count"] == 19545
    assert counts["paper_count"].iloc[:15].sum() == 34653 + 1  # Table 4 itself over-counts by one
    np.testing.assert_array_equal(counts["accepted"], [CASCADE_RULES[k][0] for k in counts["rule"]])


def test_class_ranges_learned_from_single_matches():
    rng = np.random.default_rng(1)
    ogle, gaia = [], []
    colours = rng.uniform(0.5, 1.5, 40)
    for k, colour in enumerate(colours):
        ogle.append(_ogle(f"S{k}", 10.0 + k))
        gaia.append(_gaia(k + 1, 10.0 + k, 0.2, bp_rp=colour))
    for k, colour in enumerate([1.0, 2.0]):
        ra0 = 100.0 + k
        ogle.append(_ogle(f"V{k}", ra0))
        gaia.append(_gaia(900 + 2 * k, ra0, 0.3, FAST, phot_variable_flag="VARIABLE", bp_rp=colour))
        gaia.append(_gaia(901 + 2 * k, ra0, 0.6))
    matches, _ = run_cascade(pd.DataFrame(ogle), _gaia_frame(gaia))
    assert list(matches["rule"].iloc[-2:]) == ["variable_no_class", "variable_no_class_out_of_range"]
    learned = learn_class_ranges(pd.DataFrame({"var_class": "RRLYR", "bp_rp": colours, "teff_val": np.nan}))
    assert learned.loc["RRLYR", "bp_rp_lo"] == pytest.approx(np.percentile(colours, 1))
    assert learned.loc["RRLYR", "bp_rp_hi"] == pytest.approx(np.percentile(colours, 99))
    assert np.isnan(learned.loc["RRLYR", "teff_lo"])


def test_main_sequence_band():
    assert main_sequence_degenerate(1.0, 5.6)[0]
    assert not main_sequence_degenerate(1.0, 0.0)[0]
    assert not main_sequence_degenerate(5.0, 14.0)[0]  # redder than the tabulated locus
    assert not main_sequence_degenerate(np.nan, 5.6)[0]


BIG = 4050419593507074176


def _scored_matches():
    """Four objects: A correct, B wrong, C rejected, D no candidate. Real-size Gaia ids differing in the last
    digit: a float64 round trip would make B look correct."""
    matches = pd.DataFrame(
        {
            "ogle_id": ["A", "B", "C", "D"],
            "source_id": pd.array([BIG + 1, BIG + 2, pd.NA, pd.NA], dtype="Int64"),
            "accepted": [True, True, False, False],
            "rule": ["single_match", "cmd_validated", "cmd_main_sequence", "no_candidate"],
        }
    )
    truth = pd.Series(pd.array([BIG + 1, BIG + 3, BIG + 4, pd.NA], dtype="Int64"), index=["A", "B", "C", "D"])
    return matches, truth


def test_precision_recall_arithmetic():
    matches, truth = _scored_matches()
    pr = precision_recall(matches, truth)
    assert pr.loc["all", "precision"] == pytest.approx(0.5)
    assert pr.loc["all", "recall"] == pytest.approx(1 / 3)
    assert pr.loc["single_match", "precision"] == 1.0
    assert pr.loc["cmd_validated", "precision"] == 0.0
    assert pr.loc["cmd_main_sequence", "recall"] == 0.0
    assert np.isnan(pr.loc["no_candidate", "recall"])
    # C's true counterpart is not in the Gaia table → not recoverable; recall 1/2.
    pr2 = precision_recall(matches, truth, gaia_source_ids=[BIG + 1, BIG + 2, BIG + 3])
    assert pr2.loc["all", "recall"] == pytest.approx(0.5)


def test_bad_input_names_the_column():
    ogle, gaia = _build({"single": CASES["single"]})
    with pytest.raises(ValueError, match="r_est"):
        run_cascade(ogle, gaia.drop(columns="r_est"))
    with pytest.raises(ValueError, match="ogle_id must be unique"):
        run_cascade(pd.concat([ogle, ogle]), gaia)


@pytest.mark.parametrize(
    "fname, class_counts, n_crowded",
    [
        ("one_pmrad_match.csv", {"RRLYR": 610, "ECL": 233, "LPV": 200, "ELL": 48, "CEP": 24}, 2),
        ("gaiaVar_noClass_confirmed.csv", {"CEP": 412, "RRLYR": 23, "T2CEP": 18, "ECL": 10}, 0),
        ("cmd_secondaries_confirmed.csv", {"RRLYR": 413, "ECL": 58, "ELL": 32, "LPV": 17}, 0),
        ("var_conf_matches.csv", {"CEP": 1893, "RRLYR": 1781, "LPV": 102, "T2CEP": 31}, 4),
        # Two OGLE objects appear twice in this file (a second Gaia source at ~1.9″); keeping the nearest.
        ("cmd_confirmed.csv", {"ECL": 3527, "RRLYR": 1454, "LPV": 1359, "ELL": 948}, 0),
    ],
)
def test_real_crossmatch_rows_are_single_matches(fname, class_counts, n_crowded):
    # Real columns (via ogle_io): OGLE position RA/Dec (deg), Gaia J2015.5 position ra_x/dec_x (deg), angDist in
    # arcsec (OGLE vs Gaia propagated to J2000; max 1.97″ < 2″), so it is not degrees.
    xm = read_ogle_gaia_xmatch(XMATCH_TABLES[fname])
    xm = xm.sort_values("ang_dist_arcsec", kind="mergesort").drop_duplicates("ogle_id").sort_index()
    assert xm["ang_dist_arcsec"].max() < 2.0 or xm["ang_dist_arcsec"].isna().all()
    ogle = pd.DataFrame(
        {
            "ogle_id": xm["ogle_id"],
            "ra": xm["ogle_ra"],
            "dec": xm["ogle_dec"],
            "var_class": xm["var_class"],
            "subtype": xm["subtype"],
            "period": xm["period"],
        }
    )
    gaia = pd.DataFrame(
        {
            "source_id": xm["source_id"].astype(np.int64),
            "ra": xm["gaia_ra"],
            "dec": xm["gaia_dec"],
            "pmra": xm["pmra"],
            "pmdec": xm["pmdec"],
            "phot_g_mean_mag": xm["phot_g_mean_mag"],
            "bp_rp": xm["bp_rp"],
            "teff_val": xm["teff_val"],
            "r_est": xm["r_est"],
            "phot_variable_flag": "NOT_AVAILABLE",
            "gaia_var_class": None,
        }
    ).drop_duplicates("source_id")
    matches, counts = run_cascade(ogle, gaia)
    assert len(matches) == len(ogle)
    # Some OGLE objects in these files are close pairs (e.g. OGLE-LMC-CEP-2385/2386, 0.03″ from their own Gaia
    # sources but < 2″ from each other): with both rows' Gaia sources in one table, each sees two candidates.
    # Every other object must come out as a single match with the file's own counterpart.
    # "Crowded": another row's Gaia source lies within 2″ of this OGLE position (rows align: one per object).
    oc = SkyCoord(ogle["ra"].to_numpy() * u.deg, ogle["dec"].to_numpy() * u.deg)
    gc = SkyCoord(xm["gaia_ra"].to_numpy() * u.deg, xm["gaia_dec"].to_numpy() * u.deg)
    i, j, _, _ = gc.search_around_sky(oc, 2.0 * u.arcsec)
    crowded = np.zeros(len(ogle), dtype=bool)
    crowded[i[i != j]] = True
    assert crowded.sum() == n_crowded
    single = (matches["rule"] == "single_match").to_numpy()
    np.testing.assert_array_equal(single, ~crowded)
    assert matches["accepted"].to_numpy()[~crowded].all()
    np.testing.assert_array_equal(
        matches["source_id"][~crowded].astype("int64").to_numpy(),
        xm["source_id"].to_numpy(np.int64)[~crowded],
    )
    assert (matches.loc[crowded, "n_within_radius"] == 2).all()
    assert counts.set_index("rule").loc["single_match", "count"] == len(ogle) - n_crowded
    by_class = matches["var_class"].value_counts()
    for cls, n in class_counts.items():
        assert by_class[cls] == n
    assert by_class.sum() == len(ogle)


def test_published_tables_through_the_cascade():
    pub = read_published_crossmatch(XMATCH_DIR)
    assert len(pub.ogle) == 13568 and pub.ogle["ogle_id"].is_unique  # 13,574 rows, 6 objects listed twice
    assert len(pub.gaia) == 13571 and pub.gaia["source_id"].is_unique
    # Every DR2 classifier label in the authors' tables is one the cascade knows (DR2 says CEP, not DCEP).
    assert set(pub.gaia["gaia_var_class"].dropna()) <= set(GAIA_TO_OGLE_CLASS)
    assert (pub.gaia["phot_variable_flag"] == "VARIABLE").sum() == 3833 + 463 - 2  # two sources in both files
    matches, counts = run_cascade(pub.ogle, pub.gaia)
    assert len(matches) == len(pub.ogle) and counts["count"].sum() == len(pub.ogle)
    agrees = compare_with_published(matches, pub)["agrees"]
    # The tables hold only the authors' accepted sources, so the cascade must nearly always pick the same one.
    assert np.mean(agrees) > 0.999
    # One Gaia source the authors accepted for two OGLE RR Lyrae is flagged on both rows.
    shared = set(matches.loc[matches["source_shared"], "ogle_id"])
    assert {"OGLE-BLG-RRLYR-10236", "OGLE-BLG-RRLYR-10239"} <= shared


def test_published_tables_missing_file_is_named(tmp_path):
    with pytest.raises(OgleFormatError, match="cmd_confirmed.csv"):
        read_published_crossmatch(tmp_path)


# ---------------------------------------------------------------------------------------------------------
# The metrics document of the crossmatch_ogle_gaia rule
# ---------------------------------------------------------------------------------------------------------


def test_rule_score_is_json_ready_with_none_for_nan():
    row = pd.Series({"n_objects": 3.0, "n_accepted": np.int64(2), "precision": np.nan, "recall": 0.5})
    score = rule_score(row)
    assert score == {"n_objects": 3, "n_accepted": 2, "precision": None, "recall": 0.5}
    assert list(score) == ["n_objects", "n_accepted", "precision", "recall"]
    assert type(score["n_objects"]) is int and type(score["n_accepted"]) is int
    assert type(score["recall"]) is float


def test_cascade_summary_against_truth_by_hand():
    matches, truth = _scored_matches()
    counts = cascade_counts(matches)
    summary = cascade_summary(precision_recall(matches, truth), matches, counts)
    assert list(summary) == ["precision", "recall", "per_rule", "n_objects", "n_accepted", "table4_counts"]
    # 1 of 2 accepted is right; 1 of 3 true counterparts (A, B, C) is found.
    assert summary["precision"] == pytest.approx(0.5)
    assert summary["recall"] == pytest.approx(1 / 3)
    assert summary["n_objects"] == 4 and summary["n_accepted"] == 2
    # Per rule in Table-4 order (cmd_validated before cmd_main_sequence), "all" left out.
    assert summary["per_rule"] == {
        "single_match": {"n_objects": 1, "n_accepted": 1, "precision": 1.0, "recall": 1.0},
        "cmd_validated": {"n_objects": 1, "n_accepted": 1, "precision": 0.0, "recall": 0.0},
        "cmd_main_sequence": {"n_objects": 1, "n_accepted": 0, "precision": None, "recall": 0.0},
        "no_candidate": {"n_objects": 1, "n_accepted": 0, "precision": None, "recall": None},
    }
    assert list(summary["per_rule"]) == ["single_match", "cmd_validated", "cmd_main_sequence", "no_candidate"]
    # Every rule of Table 4 (and the two extra rows) in order, zero where no object took it.
    table4 = summary["table4_counts"]
    assert list(table4) == list(CASCADE_RULES)
    assert {k: v for k, v in table4.items() if v} == {
        "single_match": 1,
        "cmd_validated": 1,
        "cmd_main_sequence": 1,
        "no_candidate": 1,
    }
    assert all(type(v) is int for v in table4.values())


def test_cascade_summary_without_truth_counts_only():
    matches, _ = _scored_matches()
    matches = pd.concat([matches, matches.iloc[[0]].assign(ogle_id="E")], ignore_index=True)
    summary = cascade_summary(None, matches, cascade_counts(matches))
    assert summary["precision"] is None and summary["recall"] is None
    # Without truth the per-rule counts come from a groupby: rules sorted by name.
    assert summary["per_rule"] == {
        "cmd_main_sequence": {"n_objects": 1, "n_accepted": 0},
        "cmd_validated": {"n_objects": 1, "n_accepted": 1},
        "no_candidate": {"n_objects": 1, "n_accepted": 0},
        "single_match": {"n_objects": 2, "n_accepted": 2},
    }
    assert list(summary["per_rule"]) == sorted(summary["per_rule"])
    assert summary["n_objects"] == 5 and summary["n_accepted"] == 3
    assert summary["table4_counts"]["single_match"] == 2 and summary["table4_counts"]["same_var_class"] == 0


def test_cascade_metrics_lead_with_the_convention():
    matches, truth = _scored_matches()
    counts = cascade_counts(matches)
    scores = precision_recall(matches, truth)
    metrics = cascade_metrics("as_published", scores, matches, counts)
    assert list(metrics)[0] == "pm_radius_convention" and metrics["pm_radius_convention"] == "as_published"
    assert {k: v for k, v in metrics.items() if k != "pm_radius_convention"} == cascade_summary(
        scores, matches, counts
    )
    assert list(metrics)[1:] == list(cascade_summary(scores, matches, counts))


def _comparison() -> pd.DataFrame:
    # Five objects against the authors' rows: three agree, one picked another source, one has no candidate.
    return pd.DataFrame(
        {
            "ogle_id": ["A", "B", "C", "D", "E"],
            "published_rows": ["cmd_confirmed", "cmd_confirmed", "cmd_confirmed", "rrlyr", "rrlyr"],
            "var_class": ["CEP", "CEP", "RRLYR", "RRLYR", "RRLYR"],
            "rule": ["single_match", "single_match", "cmd_validated", "single_match", "no_candidate"],
            "agrees": [True, True, False, True, False],
            "source_shared": [False, False, False, True, False],
        }
    )


def test_published_agreement_by_hand():
    doc = published_agreement(_comparison())
    assert list(doc) == ["n_objects", "agreement", "rule_counts", "per_published_row", "n_source_shared"]
    assert doc["n_objects"] == 5 and doc["agreement"] == pytest.approx(3 / 5)
    assert doc["rule_counts"] == {"single_match": 3, "cmd_validated": 1, "no_candidate": 1}
    assert doc["per_published_row"] == {
        "cmd_confirmed": {"n_objects": 3, "agreement": pytest.approx(2 / 3)},
        "rrlyr": {"n_objects": 2, "agreement": pytest.approx(1 / 2)},
    }
    assert doc["n_source_shared"] == 1
    assert all(type(v) is int for v in doc["rule_counts"].values())


def test_published_agreement_summary_by_hand():
    summary = published_agreement_summary(_comparison())
    assert list(summary.columns) == ["published_rows", "var_class", "rule", "n_objects", "n_agree"]
    rows = {tuple(r[:3]): tuple(r[3:]) for r in summary.itertuples(index=False)}
    assert rows == {
        ("cmd_confirmed", "CEP", "single_match"): (2, 2),
        ("cmd_confirmed", "RRLYR", "cmd_validated"): (1, 0),
        ("rrlyr", "RRLYR", "no_candidate"): (1, 0),
        ("rrlyr", "RRLYR", "single_match"): (1, 1),
    }
    assert list(rows) == sorted(rows)


def test_published_agreement_on_the_authors_tables():
    pub = read_published_crossmatch(XMATCH_DIR)
    comparison = compare_with_published(run_cascade(pub.ogle, pub.gaia)[0], pub)
    doc = published_agreement(comparison)
    assert doc["n_objects"] == len(pub.ogle) == sum(r["n_objects"] for r in doc["per_published_row"].values())
    assert doc["agreement"] > 0.999  # the tables hold only the authors' accepted sources
    summary = published_agreement_summary(comparison)
    assert summary["n_objects"].sum() == len(pub.ogle)
    assert summary["n_agree"].sum() == int(comparison["agrees"].sum())


def test_photometric_check_rejects_a_source_of_the_wrong_brightness():
    # Two single matches: one whose G is the G that I and V−I predict (Evans et al. 2018), one 2 mag off
    # (a field star in the cone while the variable itself is missing from Gaia). The check is off by default
    # (the paper) and then only reports ΔG; with a tolerance the second is rejected with its own rule.
    ogle, gaia = _build(
        {
            "right": ("CEP", 3.0, [(1, 0.2, {})], "single_match", 1),
            "wrong": ("CEP", 3.0, [(1, 0.2, {})], "single_match", 1),
            "red": ("LPV", 300.0, [(1, 0.2, {})], "single_match", 1),
        }
    )
    ogle["i_mag"], ogle["v_i"] = [15.0, 15.0, 12.0], [1.0, 1.0, 3.5]
    g_right = 15.0 + 1.0 + g_minus_v(1.0)
    gaia["phot_g_mean_mag"] = [g_right, g_right + 2.0, 20.0]
    plain, _ = run_cascade(ogle, gaia, class_ranges=RANGES)
    assert plain["accepted"].all()
    np.testing.assert_allclose(plain["delta_g"].to_numpy()[:2], [0.0, 2.0], atol=1e-12)
    assert np.isnan(plain["delta_g"].iloc[2])  # V−I = 3.5 is outside the relation's range: no check
    checked, counts = run_cascade(ogle, gaia, class_ranges=RANGES, photometric_tolerance_mag=1.0)
    assert checked["rule"].tolist() == ["single_match", "photometry_inconsistent", "single_match"]
    assert checked["accepted"].tolist() == [True, False, True]
    assert counts.set_index("rule").loc["photometry_inconsistent", "count"] == 1
    np.testing.assert_allclose(gaia_g_from_vi([15.0, 15.0], [-0.5, 1.0]), [np.nan, g_right])
    nearest = nearest_neighbour_matches(ogle, gaia, photometric_tolerance_mag=1.0)
    assert nearest["rule"].tolist() == ["nearest_neighbour", "photometry_inconsistent", "nearest_neighbour"]


def test_nearest_neighbour_baseline_and_where_the_cascade_differs():
    ogle, gaia = _build(CASES)
    matches, _ = run_cascade(ogle, gaia, class_ranges=RANGES)
    nearest = nearest_neighbour_matches(ogle, gaia)
    pairs = cone_match(ogle, gaia)
    first = pairs[pairs["rank"] == 1].set_index("ogle_id")["source_id"]
    for row in nearest.itertuples():
        if row.ogle_id in first.index:
            assert row.accepted and row.source_id == first[row.ogle_id] and row.rule == "nearest_neighbour"
        else:
            assert not row.accepted and pd.isna(row.source_id) and row.rule == "no_candidate"
    # Truth: the nearest source everywhere except where the cascade chose the second one.
    truth = matches.set_index("ogle_id")["source_id"].where(
        matches.set_index("ogle_id")["neighbour_rank"] == 2
    )
    truth = truth.fillna(first.astype("Int64").reindex(truth.index))
    table = compare_per_rule(matches, nearest, truth).set_index("rule")
    assert table["n_objects"].sum() == len(ogle)
    second = table.loc["second_cmd_validated"]
    assert second["cascade_correct"] == second["cascade_accepted"] and second["baseline_correct"] == 0
    assert second["gain"] == 2 * second["cascade_correct"]  # right where the baseline was wrong
    rejected = table.loc["cmd_main_sequence"]
    assert rejected["cascade_accepted"] == 0 and rejected["gain"] == -rejected["baseline_correct"]


def test_dr3_classifier_labels_map_to_ogle_classes():
    # Gaia DR3's group labels (Rimoldini et al. 2023): with them an OGLE eclipsing binary can be confirmed by
    # its Gaia class, which DR2 could not do.
    assert classes_same("RRLYR", "RR") and classes_same("ECL", "ECL") and classes_same("ELL", "ELL")
    assert classes_same("LPV", "LPV") and classes_same("DSCT", "DSCT|GDOR|SXPHE")
    assert classes_same("T2CEP", "CEP")  # one Cepheid family
    assert not classes_same("RRLYR", "ECL") and not classes_same("ECL", "SOLAR_LIKE")
