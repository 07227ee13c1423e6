"""The parallax correction and the calibration flags of the distance inputs, on real DR2 and DR3 rows.

The Lindegren et al. (2021) zero point is checked three ways: against ``gaiadr3-zeropoint`` called here
directly, against values worked out by hand from the recipe's published coefficient tables (Z5 and Z6, in
µas, as dated 2020-07-20 and shipped with the library), and for the stars outside its calibration, which
must be flagged, not dropped.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
from zero_point import zpt

from latentsky.cli import main
from latentsky.config import load_config
from latentsky.distances.dust import NoDust
from latentsky.distances.flow import CMDFlow, FlowArchitecture
from latentsky.distances.inputs import calibration_flags, stars_from_gaia
from latentsky.distances.parallax import (
    DR3_PARALLAX_OFFSET_MAS,
    detect_gaia_release,
    lindegren2021_zero_point,
    parallax_correction,
)
from latentsky.distances.pipeline import partition_rows_catalog, posterior_catalog
from latentsky.distances.stars import DR2_PARALLAX_OFFSET_MAS, DistanceFlag
from latentsky.io.gaia import read_gaia_table

RUWE_EMPIRICAL = int(DistanceFlag.RUWE_EMPIRICAL_U0)
OUTSIDE = int(DistanceFlag.ZERO_POINT_OUTSIDE_CALIBRATION)


@pytest.fixture(scope="module")
def hyades(real_data):
    return read_gaia_table(real_data / "gaia_dr2_clusters" / "hyades.csv")


@pytest.fixture(scope="module")
def dr3(real_data):
    # 50 real Gaia DR3 rows (a TAP cone search): 5p, 6p and 2p solutions, G 15–21.3.
    return read_gaia_table(real_data / "gaia_archive_responses" / "cone_search.json")


def distances_block(**settings):
    # The flows built here are plain CMD flows (no photometric-noise model): the paper's likelihood.
    settings.setdefault("posterior", {"photometric_noise": "ignore"})
    return load_config(overrides={"seed": 0, "sources": {}, "distances": settings})["distances"]


def synthetic(rows):
    """An (E)DR3-like table of the given (G, ν_eff, pseudocolour, β, solution) rows, parallax 1 mas."""
    g, nu, pc, beta, solved = map(np.array, zip(*rows, strict=True))
    return pd.DataFrame(
        {
            "parallax": np.where(solved == 3, np.nan, 1.0),
            "phot_g_mean_mag": g,
            "nu_eff_used_in_astrometry": nu,
            "pseudocolour": pc,
            "ecl_lat": beta,
            "astrometric_params_solved": pd.array(solved, dtype="Int16"),
        }
    )


# ------------------------------------------------------------------------------------------ the release
def test_release_from_the_columns(hyades, dr3, real_data):
    assert detect_gaia_release(hyades)[0] == "dr2"  # DR2's astrometric_pseudo_colour
    assert detect_gaia_release(dr3)[0] == "dr3"  # (E)DR3's nu_eff_used_in_astrometry, pseudocolour
    trimmed = hyades.drop(columns=["astrometric_pseudo_colour", "astrometric_pseudo_colour_error"])
    assert detect_gaia_release(trimmed)[0] == "dr2"  # χ² columns, no (E)DR3 colours: DR2's gaia_source
    assert detect_gaia_release(dr3[["source_id", "parallax", "ruwe"]])[0] == "dr3"  # a ruwe column alone


def test_default_offset_depends_on_the_release_and_is_logged(hyades, dr3, caplog):
    with caplog.at_level(logging.INFO, logger="latentsky.distances.parallax"):
        dr2 = parallax_correction(hyades, distances_block())
    assert dr2.release == "dr2" and dr2.method == "none"
    np.testing.assert_array_equal(dr2.offset_mas, np.full(len(hyades), 0.029))
    assert DR2_PARALLAX_OFFSET_MAS == 0.029 and DR3_PARALLAX_OFFSET_MAS == 0.017
    assert "hyades.csv: Gaia DR2" in caplog.text and "+0.029 mas added to every parallax" in caplog.text
    assert "Lindegren et al. 2018" in caplog.text
    three = parallax_correction(dr3, distances_block())
    assert (
        three.release == "dr3" and np.all(three.offset_mas == 0.017) and not three.outside_calibration.any()
    )
    assert "+0.017 mas" in three.description and "Lindegren et al. 2021" in three.description
    # A given offset wins over the release's; gaia_release overrides the detection.
    assert np.all(parallax_correction(dr3, distances_block(parallax_offset_mas=0.05)).offset_mas == 0.05)
    forced = parallax_correction(hyades, distances_block(gaia_release="dr3"))
    assert forced.release == "dr3" and np.all(forced.offset_mas == 0.017)
    # The stars get the offset added: corrected parallax = catalogue parallax + offset.
    stars = stars_from_gaia(dr3, three.offset_mas)
    finite = np.isfinite(dr3["parallax"].to_numpy())
    np.testing.assert_allclose(stars.parallax[finite], dr3["parallax"].to_numpy()[finite] + 0.017)


# ------------------------------------------------------------------------------- Lindegren et al. 2021
def test_zero_point_of_real_dr3_stars_matches_the_library(dr3):
    corr = parallax_correction(dr3, distances_block(parallax_zero_point="lindegren2021"))
    solved = dr3["astrometric_params_solved"].to_numpy(dtype=float)
    good = np.isin(solved, (31, 95))
    zpt.load_tables()
    expected = np.full(len(dr3), np.nan)
    expected[good] = zpt.get_zpt(
        dr3["phot_g_mean_mag"].to_numpy()[good],
        dr3["nu_eff_used_in_astrometry"].to_numpy()[good],
        dr3["pseudocolour"].to_numpy()[good],
        dr3["ecl_lat"].to_numpy()[good],
        solved[good],
        _warnings=False,
    )
    has = np.isfinite(expected)
    # 44 5p and 6p stars (the other 6 are 2p), all 5p ones inside the calibration; 9 of the 18 6p ones have
    # a pseudocolour outside 1.24–1.72.
    assert good.sum() == 44 and has.sum() == 35
    np.testing.assert_allclose(corr.offset_mas[has], -expected[has], rtol=0, atol=1e-12)
    # Tens of µas, mostly negative (EDR3's quasars have a median parallax of −17 µas, Lindegren et al. 2021a).
    assert np.all(np.abs(expected[has]) < 0.1) and -0.04 < np.median(expected[has]) < -0.01
    # The 5p/6p stars the recipe does not cover keep the global offset and are flagged; 2p has no parallax.
    plx = np.isfinite(dr3["parallax"].to_numpy())
    np.testing.assert_array_equal(corr.outside_calibration, plx & ~has)
    assert corr.outside_calibration.sum() == 9 and np.all(solved[corr.outside_calibration] == 95)
    np.testing.assert_array_equal(corr.offset_mas[corr.outside_calibration], 0.017)
    pseudo = dr3["pseudocolour"].to_numpy()[corr.outside_calibration]
    assert np.all((pseudo <= 1.24) | (pseudo >= 1.72))  # the 6p pseudocolour limits
    assert "35 of 50 stars; 9 with a parallax outside" in corr.description


def test_zero_point_against_the_published_coefficients():
    # (G, ν_eff, pseudocolour, ecliptic latitude °, astrometric_params_solved). With the basis functions of
    # Lindegren et al. (2021b): c₁ = clamp(ν − 1.48, ±0.24), c₂ = min(0.24, max(0, 1.48 − ν))³,
    # c₃ = min(0, ν − 1.24), c₄ = max(0, ν − 1.72); b₀ = 1, b₁ = sin β, b₂ = sin²β − 1/3; at a node of G.
    table = synthetic(
        [
            (17.5, 1.48, np.nan, 0.0, 31),  # Z5 row 17.5: q00 + q02·(−1/3) = −29.18 − 2.41/3
            (17.5, 1.48, np.nan, 90.0, 31),  # q00 + q01 + q02·(2/3) = −29.18 − 0.09 + 2.41·2/3
            (17.5, np.nan, 1.48, 0.0, 95),  # Z6 row 17.5: −24.68 − 3.52/3
            # Z5 row 13.1, ν = 1.30, β = 30°: c₁ = −0.18, c₂ = 0.18³, b₁ = 0.5, b₂ = −1/12:
            # −37.99 + 2.63·0.5 − 16.14/12 − 5.7·(−0.18) + 14.0·(−0.18)·0.5 − 1257·0.18³
            (13.1, 1.30, np.nan, 30.0, 31),
            (5.5, 1.48, np.nan, 0.0, 31),  # G below 6
            (21.2, 1.48, np.nan, 0.0, 31),  # G above 21
            (17.5, 1.95, np.nan, 0.0, 31),  # ν_eff above 1.9
            (17.5, np.nan, 1.80, 0.0, 95),  # pseudocolour above 1.72
            (17.5, np.nan, np.nan, 0.0, 31),  # 5p without its colour
            (17.5, np.nan, np.nan, 0.0, 3),  # a 2p solution: no parallax at all
        ]
    )
    micro = np.array(
        [
            -29.18 - 2.41 / 3,
            -29.18 - 0.09 + 2.41 * 2 / 3,
            -24.68 - 3.52 / 3,
            -37.99 + 2.63 * 0.5 - 16.14 / 12 + 5.7 * 0.18 - 14.0 * 0.18 * 0.5 - 1257 * 0.18**3,
        ]
    )
    assert micro.round(3).tolist() == [-29.983, -27.663, -25.853, -45.585]
    got = lindegren2021_zero_point(table, "synthetic")
    np.testing.assert_allclose(got[:4], micro / 1000.0, rtol=0, atol=1e-6)  # the library rounds to 1e-6 mas
    assert np.isnan(got[4:]).all()
    corr = parallax_correction(table, distances_block(parallax_zero_point="lindegren2021"))
    np.testing.assert_allclose(corr.offset_mas[:4], -micro / 1000.0, atol=1e-6)
    assert corr.outside_calibration.tolist() == [False] * 4 + [True] * 5 + [False]
    np.testing.assert_array_equal(corr.offset_mas[4:9], DR3_PARALLAX_OFFSET_MAS)
    # With a given offset, that is what the stars outside the calibration get.
    given = parallax_correction(
        table, distances_block(parallax_zero_point="lindegren2021", parallax_offset_mas=0.02)
    )
    np.testing.assert_array_equal(given.offset_mas[4:9], 0.02)
    np.testing.assert_array_equal(given.offset_mas[:4], corr.offset_mas[:4])


# ---------------------------------------------------------------------------------------------- flags
def test_calibration_flags_reach_the_catalog(dr3, hyades):
    flow = CMDFlow(FlowArchitecture(1, 4), np.array([4.0, 1.0, 0.4]), np.array([3.0, 0.6, 0.3]))
    cfg = distances_block(parallax_zero_point="lindegren2021", dust={"kind": "none"})
    catalog = posterior_catalog(dr3, flow, NoDust(), cfg, 0, "cpu")
    corr = parallax_correction(dr3, cfg)
    flagged = (catalog["flags"].to_numpy() & OUTSIDE) != 0
    np.testing.assert_array_equal(flagged, corr.outside_calibration)
    # Flagged, not dropped: the stars outside the calibration still have posteriors (untrained flow, no
    # support box, no dust: every star with a parallax and colours gets one).
    assert catalog.loc[flagged, "has_posterior"].all()
    assert catalog.loc[flagged, "flag_names"].str.contains("zero_point_outside_calibration").all()
    np.testing.assert_array_equal(catalog["parallax_offset"], corr.offset_mas)
    np.testing.assert_array_equal(catalog["parallax"], dr3["parallax"])  # the catalogue value, uncorrected
    # DR3's own RUWE: no empirical normalisation anywhere.
    assert ((catalog["flags"].to_numpy() & RUWE_EMPIRICAL) == 0).all()
    # DR2 without a u0 table: every row normalised empirically carries the flag, which blocks nothing.
    cfg2 = distances_block(dust={"kind": "none"})
    hy = posterior_catalog(hyades.iloc[:60].reset_index(drop=True), flow, NoDust(), cfg2, 0, "cpu")
    assert ((hy["flags"].to_numpy() & RUWE_EMPIRICAL) != 0).all()
    assert hy["flag_names"].str.contains("ruwe_empirical_u0").all()
    # It blocks nothing: every star with a parallax and colours has a posterior.
    complete = np.isfinite(hy["parallax"]) & np.isfinite(hy["bp_rp"]) & np.isfinite(hy["bp_g"])
    np.testing.assert_array_equal(hy["has_posterior"], complete)
    assert complete.sum() >= 55
    np.testing.assert_array_equal(hy["parallax_offset"], 0.029)


def test_calibration_flags_follow_the_source_column(hyades):
    corr = parallax_correction(hyades, distances_block())
    flags = calibration_flags(hyades, corr)
    np.testing.assert_array_equal(flags, np.where(hyades["ruwe_empirical_u0"], RUWE_EMPIRICAL, 0))
    cleared = hyades.assign(ruwe_empirical_u0=False)
    assert (calibration_flags(cleared, corr) == 0).all()


# ------------------------------------------------------------------------------------------ bad input
def test_lindegren2021_on_a_dr2_table_names_the_file_and_the_columns(hyades):
    with pytest.raises(ValueError) as err:
        parallax_correction(hyades, distances_block(parallax_zero_point="lindegren2021"))
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(str(hyades.attrs["source"]))
    assert "needs column(s) nu_eff_used_in_astrometry, pseudocolour" in message


def test_unknown_options_and_dr2_forced_are_refused(dr3):
    with pytest.raises(ValueError, match="parallax_zero_point must be one of none, lindegren2021, got 'l21'"):
        parallax_correction(dr3, {"parallax_zero_point": "l21"})
    with pytest.raises(ValueError, match="gaia_release must be one of auto, dr2, dr3, got 'dr4'"):
        parallax_correction(dr3, {"gaia_release": "dr4"})
    with pytest.raises(ValueError, match=r"cone_search\.json: .*lindegren2021.* the table is Gaia DR2"):
        parallax_correction(dr3, {"parallax_zero_point": "lindegren2021", "gaia_release": "dr2"})


def test_cli_refuses_lindegren2021_on_dr2_in_one_line(real_data, tmp_path, capsys):
    table = real_data / "gaia_dr2_clusters" / "hyades.csv"
    code = main(
        ["distances", "train", str(table), "--dust", "none", "--device", "cpu"]
        + ["--parallax-zero-point", "lindegren2021", "--out", str(tmp_path / "flow.pt")]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "hyades.csv" in err[0] and "nu_eff_used_in_astrometry, pseudocolour" in err[0]
    assert not (tmp_path / "flow.pt").exists()


def test_outside_support_blame_separates_bad_astrometry():
    """A star flagged outside the CMD support with its true point inside blames the algorithm, unless its
    parallax is flagged as unreliable (RUWE): then the astrometry is at fault and it is counted apart."""
    import torch

    from latentsky.distances.metrics import outside_support_blame
    from latentsky.distances.stars import DistanceFlag

    class Box(torch.nn.Module):
        support_low = torch.tensor([-3.0, -1.0, -1.0])
        support_high = torch.tensor([12.0, 4.0, 3.0])

    out, ruwe = int(DistanceFlag.OUTSIDE_CMD_SUPPORT), int(DistanceFlag.RUWE_ABOVE_LIMIT)
    catalog = pd.DataFrame(
        {
            "flags": [out, out | ruwe, out, 0, ruwe],
            "true_abs_g": [4.0, 4.0, 13.0, 4.0, 4.0],  # the third lies below the box
            "true_bp_rp0": [0.8, 0.8, 3.0, 0.8, 0.8],
            "true_bp_g0": [0.3, 0.3, 2.0, 0.3, 0.3],
        }
    )
    blame = outside_support_blame(catalog, Box())
    assert blame == {
        "n_flagged": 3,
        "n_flagged_with_true_point_inside_support": 1,
        "n_flagged_with_ruwe_above_limit": 1,
        "n_flagged_with_ruwe_above_limit_and_true_point_inside": 1,
    }


def test_a_partition_computed_in_slices_equals_it_computed_whole(hyades, tmp_path):
    # What distance_catalog_partition relies on when it joins the slice jobs' rows: a star's grid
    # posterior depends on that star alone, so slices concatenated give the whole partition's rows.
    flow = CMDFlow(FlowArchitecture(1, 4), np.array([4.0, 1.0, 0.4]), np.array([3.0, 0.6, 0.3]))
    cfg = distances_block(dust={"kind": "none"})
    gaia = hyades.iloc[:90].reset_index(drop=True)
    whole = posterior_catalog(gaia, flow, NoDust(), cfg, 0, "cpu")
    parts = [
        posterior_catalog(gaia.iloc[a:b].reset_index(drop=True), flow, NoDust(), cfg, 1 + a, "cpu")
        for a, b in ((0, 30), (30, 61), (61, 90))
    ]
    pd.testing.assert_frame_equal(pd.concat(parts, ignore_index=True), whole)
    assert whole["has_posterior"].sum() >= 80


def test_a_slice_outside_the_partition_names_the_file(hyades, tmp_path):
    source = tmp_path / "Npix=3.parquet"
    hyades.iloc[:20].to_parquet(source)
    cfg = distances_block(dust={"kind": "none"})
    with pytest.raises(ValueError, match=r"Npix=3.parquet: rows 10–40 asked for, the partition holds 20"):
        partition_rows_catalog(source, (10, 40), tmp_path / "model.pt", cfg, 0, "cpu")
