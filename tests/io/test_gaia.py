"""Gaia archive readers on the real files of tests/data/gaia_*: DR2 cluster CSVs, DR3 ECSV/VOTable/TAP-JSON."""

from __future__ import annotations

import gzip
import json
import math
import shutil

import numpy as np
import pandas as pd
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from astropy.table import Table
from esa_u0 import table_u0_g, table_u0_g_col

from latentsky.io.gaia import gaia_table_format, read_gaia_table
from latentsky.io.gaia_columns import (
    CANONICAL_COLUMNS,
    DR2_COLUMNS,
    DR3_COLUMNS,
    U0_PERCENTILE,
    ZERO_POINT_ERROR_MAG,
    GaiaTableError,
    canonical_gaia,
    empirical_u0,
    magnitude_error,
    read_u0_table,
    ruwe_from_chi2,
    unit_weight_error,
)

HYADES_ROWS = 515
ECSV_SOURCE_IDS = [6636090334814214528, 6636090339112400000, 6636090339113063296]
VOT_SOURCE_IDS = [4583627001381815936, 5348723816842275584]
VOT_RUWE = [1.0828559398651123, 1.0376700162887573]
FLOAT_COLUMNS = [c for c in CANONICAL_COLUMNS if c not in ("source_id", "ruwe_empirical_u0")]


@pytest.fixture(scope="module")
def hyades_path(real_data):
    return real_data / "gaia_dr2_clusters" / "hyades.csv"


@pytest.fixture(scope="module")
def responses(real_data):
    return real_data / "gaia_archive_responses"


@pytest.fixture(scope="module")
def hyades(hyades_path):
    return read_gaia_table(hyades_path)


def _canonical(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[list(CANONICAL_COLUMNS)]


def _csv_lines(path) -> list[str]:
    return path.read_text().splitlines(keepends=True)


# ------------------------------------------------------------------------------------- DR2 CSV (real)
def test_hyades_dr2_csv_canonical_columns_and_values(hyades, hyades_path):
    assert len(hyades) == HYADES_ROWS
    assert list(hyades.columns[: len(CANONICAL_COLUMNS)]) == list(CANONICAL_COLUMNS)
    assert hyades["source_id"].dtype == np.int64
    assert hyades["ruwe_empirical_u0"].dtype == bool
    for name in FLOAT_COLUMNS:
        assert hyades[name].dtype == np.float64, name
    # The Hyades is at ≈ 47 pc: parallaxes ≈ 21 mas.
    assert 20.0 < hyades["parallax"].median() < 25.0
    raw = pd.read_csv(hyades_path)
    assert hyades["source_id"].tolist() == raw["source_id"].tolist()  # file order, nothing dropped
    np.testing.assert_array_equal(hyades["parallax"], raw["parallax"])
    np.testing.assert_array_equal(hyades["ra"], raw["ra"])


def test_hyades_ruwe_from_chi2_is_finite_and_centred_on_one(hyades, hyades_path):
    assert hyades.attrs["ruwe_method"] == "empirical"
    assert np.isfinite(hyades["ruwe"]).all()
    assert 0.9 < hyades["ruwe"].median() < 1.2
    # RUWE = UWE / u0 with one u0 per G bin: 515 stars, at least 100 per bin → 5 bins (too few stars to
    # split by colour as well). DR2's bright-star UWEs are well above 1, hence u0 ≈ 1.4–2.
    raw = pd.read_csv(hyades_path)
    uwe = np.sqrt(raw["astrometric_chi2_al"] / (raw["astrometric_n_good_obs_al"] - 5))
    u0 = uwe.to_numpy() / hyades["ruwe"].to_numpy()
    assert len(np.unique(np.round(u0, 9))) == HYADES_ROWS // 100
    assert np.all((u0 > 1.0) & (u0 < 3.0))
    # A binary-rich cluster has a tail above the 1.4 cut of paper 004 (Sec. 2).
    assert (hyades["ruwe"] > 1.4).sum() > 10


def test_hyades_missing_photometry_kept_as_nan_not_zero(hyades, hyades_path):
    raw = pd.read_csv(hyades_path)
    no_bp = raw["phot_bp_mean_mag"].isna().to_numpy()
    assert no_bp.sum() == 6  # real DR2 sources without BP/RP photometry
    got = hyades.loc[no_bp]
    assert got["phot_bp_mean_mag"].isna().all() and got["phot_rp_mean_mag"].isna().all()
    assert got["bp_rp"].isna().all() and got["bp_g"].isna().all()
    assert got["phot_bp_mean_mag_error"].isna().all()
    assert np.isfinite(got["phot_g_mean_mag"]).all() and np.isfinite(got["parallax"]).all()
    assert not (hyades[FLOAT_COLUMNS] == 0).any().any()


def test_hyades_magnitude_errors_from_flux_over_error(hyades, hyades_path):
    raw = pd.read_csv(hyades_path)
    for band in ("g", "bp", "rp"):
        snr = raw[f"phot_{band}_mean_flux_over_error"].to_numpy()
        expected = np.sqrt((2.5 / math.log(10) / snr) ** 2 + ZERO_POINT_ERROR_MAG[band] ** 2)
        np.testing.assert_allclose(hyades[f"phot_{band}_mean_mag_error"], expected, rtol=1e-12)
    # First Hyades row by hand: G flux/error 822.1893 → 1.0857/822.19 = 1.3205 mmag ⊕ 1.8 mmag.
    assert hyades["phot_g_mean_mag_error"].iloc[0] == pytest.approx(
        math.hypot(1.085736 / 822.1893, 0.0018), rel=1e-5
    )
    assert hyades["phot_g_mean_mag_error"].min() >= ZERO_POINT_ERROR_MAG["g"]


def test_hyades_colours_match_magnitudes_and_extras_pass_through(hyades, hyades_path):
    ok = hyades["phot_bp_mean_mag"].notna()
    # The archive's float32 colours agree with the magnitude differences to float32 precision.
    np.testing.assert_allclose(
        hyades.loc[ok, "bp_rp"],
        hyades.loc[ok, "phot_bp_mean_mag"] - hyades.loc[ok, "phot_rp_mean_mag"],
        atol=2e-6,
    )
    np.testing.assert_allclose(
        hyades.loc[ok, "bp_g"],
        hyades.loc[ok, "phot_bp_mean_mag"] - hyades.loc[ok, "phot_g_mean_mag"],
        atol=2e-6,
    )
    raw = pd.read_csv(hyades_path)
    for name in ("designation", "astrometric_chi2_al", "astrometric_n_good_obs_al", "input_position", "pmra"):
        assert name in hyades.columns
    assert hyades["designation"].tolist() == raw["designation"].tolist()
    assert hyades["astrometric_n_good_obs_al"].tolist() == raw["astrometric_n_good_obs_al"].tolist()
    # Canonical columns are not duplicated among the extras.
    assert hyades.columns.is_unique


def test_uwe_of_first_hyades_row():
    # astrometric_chi2_al = 1103.7795, astrometric_n_good_obs_al = 273 → √(1103.7795 / 268).
    assert unit_weight_error(np.array([1103.7795]), np.array([273]))[0] == pytest.approx(2.0294285, rel=1e-7)
    assert np.isnan(unit_weight_error(np.array([10.0]), np.array([5]))[0])


# --------------------------------------------------------------------------------- RUWE normalisation
def test_empirical_u0_tracks_a_magnitude_trend():
    rng = np.random.default_rng(1)
    n = 40_000
    g = rng.uniform(8, 20, n)
    colour = rng.uniform(0, 3, n)
    scale = 1.0 + 0.05 * (g - 14) + 0.1 * colour
    dof = 200
    uwe = scale * np.sqrt(rng.chisquare(dof, n) / dof)
    ruwe = uwe / empirical_u0(uwe, g, colour)
    # After normalisation every part of the CMD has its 41.4th RUWE percentile at 1.
    for lo in (8, 11, 14, 17):
        for clo in (0.0, 1.5):
            sel = (g >= lo) & (g < lo + 3) & (colour >= clo) & (colour < clo + 1.5)
            assert np.percentile(ruwe[sel], U0_PERCENTILE) == pytest.approx(1.0, abs=0.02)


def test_empirical_u0_small_table_falls_back_to_global_percentile():
    uwe = np.array([0.9, 1.0, 1.1, 1.3, np.nan, 2.0])
    g = np.array([10.0, 12.0, 14.0, 16.0, 18.0, 19.0])
    u0 = empirical_u0(uwe, g, np.full(6, np.nan), min_count=100)
    assert np.all(u0 == np.percentile(uwe[np.isfinite(uwe)], U0_PERCENTILE))


def test_official_u0_table_is_interpolated(tmp_path, hyades_path):
    # A grid in the layout of ESA's DR2_RUWE_V1 table_u0_g_col (g_mag, bp_rp, u0), here u0 = 1.2 + 0.01 G.
    g_grid = np.round(np.arange(3.6, 21.01, 0.1), 2)
    c_grid = np.round(np.arange(-1.0, 10.01, 0.5), 2)
    gg, cc = np.meshgrid(g_grid, c_grid, indexing="ij")
    table_2d = tmp_path / "table_u0_g_col.txt"
    pd.DataFrame({"g_mag": gg.ravel(), "bp_rp": cc.ravel(), "u0": 1.2 + 0.01 * gg.ravel()}).to_csv(
        table_2d, index=False
    )
    table_1d = tmp_path / "table_u0_g.txt"
    pd.DataFrame({"g_mag": g_grid, "u0": 1.3 + 0 * g_grid}).to_csv(table_1d, index=False)

    raw = pd.read_csv(hyades_path)
    uwe = np.sqrt(raw["astrometric_chi2_al"] / (raw["astrometric_n_good_obs_al"] - 5)).to_numpy()
    g = raw["phot_g_mean_mag"].to_numpy()
    assert g.min() < 3.6  # one Hyades giant is brighter than the grid: the edge value is used
    g_clipped = np.clip(g, 3.6, 21.0)
    frame = read_gaia_table(hyades_path, u0_table=[table_2d, table_1d])
    assert frame.attrs["ruwe_method"] == "u0_table"
    has_colour = raw["bp_rp"].notna().to_numpy()
    np.testing.assert_allclose(
        frame["ruwe"][has_colour], uwe[has_colour] / (1.2 + 0.01 * g_clipped[has_colour]), rtol=1e-9
    )
    # Sources without colour use the G-only table.
    np.testing.assert_allclose(frame["ruwe"][~has_colour], uwe[~has_colour] / 1.3, rtol=1e-9)

    with pytest.warns(UserWarning, match="no u0"):
        ruwe, method = ruwe_from_chi2(
            raw["astrometric_chi2_al"], raw["astrometric_n_good_obs_al"], g, raw["bp_rp"], u0_table=table_2d
        )
    assert method == "u0_table" and np.isnan(ruwe[~has_colour]).all()


def test_incomplete_u0_grid_is_rejected(tmp_path):
    bad = tmp_path / "u0.csv"
    bad.write_text("g_mag,bp_rp,u0\n10,0.5,1.1\n10,1.0,1.2\n11,0.5,1.1\n")
    with pytest.raises(GaiaTableError, match=r"u0\.csv.*complete grid"):
        read_u0_table(bad)
    worse = tmp_path / "u0b.csv"
    worse.write_text("mag,u0\n10,1\n")
    with pytest.raises(GaiaTableError, match=r"u0b\.csv.*'g_mag'.*found mag, u0"):
        read_u0_table(worse)


def _dr2_rows(path):
    """Four DR2-like rows: χ²_AL = 1103.7795 with N_good = 273 (the first Hyades star's: UWE = 2.0294285)
    at (G, BP−RP) = (15.00, 1.00), (15.005, 1.05) and (15.00, no colour), and one with N_good = 5 (no UWE)."""
    bp_rp = np.array([1.0, 1.05, np.nan, 1.0])
    g = np.array([15.0, 15.005, 15.0, 15.0])
    frame = pd.DataFrame(
        {
            "source_id": [1, 2, 3, 4],
            "ra": [10.0] * 4,
            "dec": [20.0] * 4,
            "parallax": [1.0] * 4,
            "parallax_error": [0.1] * 4,
            "phot_g_mean_mag": g,
            "phot_bp_mean_mag": g + 0.5,
            "phot_rp_mean_mag": g + 0.5 - bp_rp,
            "bp_rp": bp_rp,
            "bp_g": [0.5] * 4,
            "phot_g_mean_flux_over_error": [500.0] * 4,
            "phot_bp_mean_flux_over_error": [200.0] * 4,
            "phot_rp_mean_flux_over_error": [200.0] * 4,
            "astrometric_chi2_al": [1103.7795] * 4,
            "astrometric_n_good_obs_al": [273, 273, 273, 5],
        }
    )
    frame.to_csv(path, index=False)
    return path


def test_esa_format_u0_tables_give_the_hand_computed_ruwe(tmp_path):
    # ESA's layout and full grid (tests/esa_u0.py): u0(G, C) = 1.1 + 0.002 (G − 3.6)² + 0.03 C, u0(G) =
    # 1.2 + 0.01 (G − 3.6). Quadratic in G, so the interpolation between the 0.01-mag nodes shows.
    (tmp_path / "table_u0_g_col.txt").write_bytes(
        table_u0_g_col(lambda g, c: 1.1 + 0.002 * (g - 3.6) ** 2 + 0.03 * c)
    )
    (tmp_path / "table_u0_g.txt").write_bytes(table_u0_g(lambda g: 1.2 + 0.01 * (g - 3.6)))
    assert (tmp_path / "table_u0_g_col.txt").read_text().splitlines()[:2] == [
        "g_mag,bp_rp,u0",
        "3.60,-1.0,1.07",
    ]
    table = read_u0_table(tmp_path)  # the directory: both of ESA's files
    assert table.u0_grid.shape == (1741, 111) and table.g_only.size == 1741
    assert set(table.sources) == {str(tmp_path / "table_u0_g_col.txt"), str(tmp_path / "table_u0_g.txt")}
    frame = read_gaia_table(_dr2_rows(tmp_path / "dr2.csv"), u0_table=tmp_path)
    # By hand: UWE = √(1103.7795 / 268) = 2.0294285.
    #   (15.00, 1.00), a node: u0 = 1.1 + 0.002 · 11.4² + 0.03 = 1.38992 → RUWE = 1.4601045;
    #   (15.005, 1.05), halfway: u0 = 1.1 + 0.002 · (11.40² + 11.41²)/2 + 0.0315 = 1.3916481 → 1.4582914;
    #   (15.00, no colour): u0(G) = 1.2 + 0.114 = 1.314 → 1.5444661; N_good = 5: no UWE, no RUWE.
    np.testing.assert_allclose(frame["ruwe"][:3], [1.4601045, 1.4582914, 1.5444661], rtol=2e-7)
    assert np.isnan(frame["ruwe"][3])
    assert frame.attrs["ruwe_method"] == "u0_table" and not frame["ruwe_empirical_u0"].any()


def test_empirical_fallback_is_flagged_exactly_when_no_table_is_given(tmp_path, hyades_path, responses):
    path = _dr2_rows(tmp_path / "dr2.csv")
    empirical = read_gaia_table(path)
    assert empirical.attrs["ruwe_method"] == "empirical"
    # Every row whose RUWE the empirical u0 normalised, and only those (row 4 has no RUWE at all).
    assert empirical["ruwe_empirical_u0"].tolist() == [True, True, True, False]
    hyades = read_gaia_table(hyades_path)
    assert hyades["ruwe_empirical_u0"].all() and np.isfinite(hyades["ruwe"]).all()
    (tmp_path / "table_u0_g_col.txt").write_bytes(table_u0_g_col(lambda g, c: 1.0 + 0 * g))
    (tmp_path / "table_u0_g.txt").write_bytes(table_u0_g(lambda g: 1.0 + 0 * g))
    assert not read_gaia_table(hyades_path, u0_table=tmp_path)["ruwe_empirical_u0"].any()
    # A DR3 table's own ruwe needs no normalisation.
    assert not read_gaia_table(responses / "cone_search.json")["ruwe_empirical_u0"].any()
    # A source partition keeps the indicator it was written with when read back and canonicalised again.
    hyades.to_parquet(tmp_path / "partition.parquet")
    again = canonical_gaia(pd.read_parquet(tmp_path / "partition.parquet"), "partition")
    assert again.attrs["ruwe_method"] == "column"
    np.testing.assert_array_equal(again["ruwe_empirical_u0"], hyades["ruwe_empirical_u0"])
    np.testing.assert_array_equal(again["ruwe"], hyades["ruwe"])
    as_text = hyades.assign(ruwe_empirical_u0=np.where(hyades["ruwe_empirical_u0"], "true", "false"))
    assert canonical_gaia(as_text, "text")["ruwe_empirical_u0"].all()
    with pytest.raises(GaiaTableError, match=r"bad: column 'ruwe_empirical_u0' must be boolean"):
        canonical_gaia(hyades.assign(ruwe_empirical_u0="maybe"), "bad")


def test_u0_table_with_a_bad_u0_or_a_repeated_node_is_rejected(tmp_path):
    zero = tmp_path / "zero.csv"
    zero.write_text("g_mag,u0\n10,1.1\n11,0\n")
    with pytest.raises(GaiaTableError, match=r"zero\.csv: column 'u0' must hold positive numbers.*row 1"):
        read_u0_table(zero)
    twice = tmp_path / "twice.csv"
    twice.write_text("g_mag,bp_rp,u0\n10,0.5,1.1\n10,0.5,1.2\n11,0.5,1.1\n11,1.0,1.1\n")
    with pytest.raises(GaiaTableError, match=r"twice\.csv: .*node more than once"):
        read_u0_table(twice)
    with pytest.raises(GaiaTableError, match=r"neither of ESA's RUWE u0 tables"):
        read_u0_table(tmp_path / ".")


def test_dr3_query_columns_include_what_the_zero_point_needs():
    for name in ("ruwe", "astrometric_params_solved", "nu_eff_used_in_astrometry", "pseudocolour", "ecl_lat"):
        assert name in DR3_COLUMNS
    assert "nu_eff_used_in_astrometry" not in DR2_COLUMNS  # DR2's gaia_source has no such column


def test_magnitude_error_of_non_positive_snr_is_nan():
    out = magnitude_error(np.array([0.0, -1.0, np.nan, 100.0]), 0.002)
    assert np.isnan(out[:3]).all() and out[3] == pytest.approx(math.hypot(0.010857362, 0.002))


# ---------------------------------------------------------------------------- DR3 archive responses
def test_dr3_ecsv_job_result(responses):
    frame = read_gaia_table(responses / "1712337806100O-result.ecsv")
    assert len(frame) == 5
    assert frame["source_id"].tolist()[:3] == ECSV_SOURCE_IDS
    assert frame.attrs["ruwe_method"] == "column"
    table = Table.read(responses / "1712337806100O-result.ecsv")
    np.testing.assert_array_equal(frame["ruwe"], np.ma.filled(table["ruwe"].astype(float), np.nan))
    # Two-parameter solutions: no parallax and no RUWE, rows kept.
    assert frame["parallax"].isna().sum() == 2
    assert frame["ruwe"].isna().sum() == 2
    assert frame["phot_g_mean_mag"].notna().all()


def test_dr3_votable_job_result(responses, tmp_path):
    path = responses / "1710099405832VAL-result.vot"
    frame = read_gaia_table(path)
    assert frame["source_id"].tolist() == VOT_SOURCE_IDS
    np.testing.assert_allclose(frame["ruwe"], VOT_RUWE, rtol=1e-7)
    # The archive gives some FIELDs IDs like "DESIGNATION"; column names, not IDs, are used.
    assert "designation" in frame.columns and "DESIGNATION" not in frame.columns
    assert frame["parallax"].tolist() == pytest.approx([2.3034086430210925, 1.0704678100897584])
    zipped = tmp_path / "result.vot.gz"
    with gzip.open(zipped, "wb") as fh:
        fh.write(path.read_bytes())
    pd.testing.assert_frame_equal(read_gaia_table(zipped), frame)


def test_tap_json_cone_search(responses):
    path = responses / "cone_search.json"
    doc = json.loads(path.read_text())
    names = [m["name"] for m in doc["metadata"]]
    frame = read_gaia_table(path)
    assert len(frame) == len(doc["data"]) == 50
    assert frame["source_id"].tolist() == [row[names.index("source_id")] for row in doc["data"]]
    json_ruwe = [row[names.index("ruwe")] for row in doc["data"]]
    np.testing.assert_array_equal(frame["ruwe"], [np.nan if v is None else v for v in json_ruwe])
    json_plx = [row[names.index("parallax")] for row in doc["data"]]
    assert frame["parallax"].isna().sum() == sum(v is None for v in json_plx) == 6
    # JSON nulls in integer columns stay missing (nullable integers), not 0.
    assert frame["rv_nb_transits"].dtype == "Int16" and frame["rv_nb_transits"].isna().any()


# --------------------------------------------------------------------------------------- round trips
def test_same_hyades_table_through_fits_parquet_gzip_and_ecsv(hyades, hyades_path, tmp_path):
    table = Table.read(hyades_path, format="ascii.csv")
    table.write(tmp_path / "hyades.fits")
    pq.write_table(pacsv.read_csv(hyades_path), tmp_path / "hyades.parquet")
    with open(hyades_path, "rb") as src, gzip.open(tmp_path / "hyades.csv.gz", "wb") as dst:
        shutil.copyfileobj(src, dst)
    table.write(tmp_path / "hyades.ecsv")
    for name in ("hyades.fits", "hyades.parquet", "hyades.csv.gz", "hyades.ecsv"):
        got = read_gaia_table(tmp_path / name)
        pd.testing.assert_frame_equal(_canonical(got), _canonical(hyades), check_exact=True, obj=name)


def test_declared_units_are_converted(hyades_path, tmp_path):
    table = Table.read(hyades_path, format="ascii.csv")
    table["parallax"] = table["parallax"] / 1000.0
    table["parallax"].unit = "arcsec"
    table["ra"].unit = "deg"
    table.write(tmp_path / "arcsec.ecsv")
    got = read_gaia_table(tmp_path / "arcsec.ecsv")
    np.testing.assert_allclose(got["parallax"], pd.read_csv(hyades_path)["parallax"], rtol=1e-12)
    table["phot_g_mean_mag"].unit = "mas"
    table.write(tmp_path / "badunit.ecsv")
    with pytest.raises(GaiaTableError, match=r"badunit\.ecsv.*'phot_g_mean_mag'.*'mas'.*mag"):
        read_gaia_table(tmp_path / "badunit.ecsv")
    table["phot_g_mean_mag"].unit = "mag"
    table["ra"].unit = "mag"
    table.write(tmp_path / "badra.ecsv")
    with pytest.raises(GaiaTableError, match=r"badra\.ecsv.*'ra' has unit 'mag'; expected deg"):
        read_gaia_table(tmp_path / "badra.ecsv")


def test_column_names_match_case_insensitively(hyades, hyades_path, tmp_path):
    lines = _csv_lines(hyades_path)
    header = lines[0].replace("source_id", "SOURCE_ID").replace(",parallax,", ",PARALLAX,")
    (tmp_path / "upper.csv").write_text(header + "".join(lines[1:]))
    got = read_gaia_table(tmp_path / "upper.csv")
    pd.testing.assert_frame_equal(_canonical(got), _canonical(hyades))


def test_colours_alone_give_bp_and_rp(hyades, hyades_path, tmp_path):
    raw = pd.read_csv(hyades_path).drop(columns=["phot_bp_mean_mag", "phot_rp_mean_mag"])
    raw.to_parquet(tmp_path / "colours.parquet")
    got = read_gaia_table(tmp_path / "colours.parquet")
    np.testing.assert_allclose(got["phot_bp_mean_mag"], hyades["phot_bp_mean_mag"], atol=1e-5)
    np.testing.assert_allclose(got["phot_rp_mean_mag"], hyades["phot_rp_mean_mag"], atol=1e-5)


def test_empty_cells_become_nan_and_rows_are_kept(hyades_path, tmp_path):
    lines = _csv_lines(hyades_path)
    names = lines[0].rstrip("\n").split(",")
    fields = lines[1].rstrip("\n").split(",")
    for name in ("parallax", "phot_g_mean_mag", "phot_g_mean_flux_over_error"):
        fields[names.index(name)] = ""
    (tmp_path / "gaps.csv").write_text(lines[0] + ",".join(fields) + "\n" + "".join(lines[2:4]))
    got = read_gaia_table(tmp_path / "gaps.csv")
    assert len(got) == 3
    assert np.isnan(got.loc[0, "parallax"]) and np.isnan(got.loc[0, "phot_g_mean_mag"])
    assert np.isnan(got.loc[0, "phot_g_mean_mag_error"]) and np.isfinite(got.loc[0, "bp_g"])
    assert got.loc[1:, "parallax"].notna().all()


# ------------------------------------------------------------------------------------------ bad input
def test_missing_parallax_column_names_file_column_and_found(hyades_path, tmp_path):
    raw = pacsv.read_csv(hyades_path)
    path = tmp_path / "no_parallax.csv"
    pacsv.write_csv(raw.drop_columns(["parallax"]), path)
    with pytest.raises(ValueError) as info:
        read_gaia_table(path)
    message = str(info.value)
    assert str(path) in message
    assert "missing required column(s): 'parallax'" in message
    assert "found columns:" in message and "parallax_error" in message.split("found columns:")[1]


def test_non_gaia_source_table_lists_what_is_missing(real_data):
    # The 10 pc sample is a compilation (PARALLAX, G, GBP, ...), not gaia_source: no source_id column.
    path = real_data / "gaia_dr2_clusters" / "The10pcSample.csv"
    with pytest.raises(GaiaTableError) as info:
        read_gaia_table(path)
    message = str(info.value)
    assert str(path) in message and "'source_id'" in message and "PARALLAX" in message
    # PARALLAX matched case-insensitively, so it is not reported missing.
    assert "'parallax'" not in message.split("found columns:")[0]


def test_non_numeric_parallax(hyades_path, tmp_path):
    lines = _csv_lines(hyades_path)
    names = lines[0].rstrip("\n").split(",")
    fields = lines[3].rstrip("\n").split(",")
    fields[names.index("parallax")] = "abc"
    path = tmp_path / "text.csv"
    path.write_text("".join(lines[:3]) + ",".join(fields) + "\n" + "".join(lines[4:]))
    with pytest.raises(
        GaiaTableError, match=r"text\.csv: column 'parallax' must be numeric \(mas\).*row 2: 'abc'"
    ):
        read_gaia_table(path)


def test_duplicated_source_id(hyades_path, tmp_path):
    lines = _csv_lines(hyades_path)
    path = tmp_path / "dup.csv"
    path.write_text("".join(lines) + lines[5])
    dup_id = lines[5].split(",")[2]
    with pytest.raises(GaiaTableError, match=rf"dup\.csv: column 'source_id' must be unique.*{dup_id}"):
        read_gaia_table(path)


def test_source_id_as_float_is_rejected(hyades_path, tmp_path):
    raw = pd.read_csv(hyades_path)
    raw["source_id"] = raw["source_id"].astype(float)
    raw.to_parquet(tmp_path / "float_id.parquet")
    with pytest.raises(GaiaTableError, match=r"float_id\.parquet: column 'source_id'.*floating point"):
        read_gaia_table(tmp_path / "float_id.parquet")


def test_names_differing_only_in_case_are_ambiguous(hyades_path, tmp_path):
    lines = _csv_lines(hyades_path)
    path = tmp_path / "twice.csv"
    path.write_text(
        lines[0].rstrip("\n") + ",PARALLAX\n" + "".join(line.rstrip("\n") + ",1.0\n" for line in lines[1:])
    )
    with pytest.raises(
        GaiaTableError, match=r"twice\.csv: columns 'parallax' and 'PARALLAX' differ only in case"
    ):
        read_gaia_table(path)


def _truncate(src, dst, fraction=0.5, *, compress=False):
    data = src.read_bytes()
    if compress:
        data = gzip.compress(data)
    dst.write_bytes(data[: int(len(data) * fraction)])
    return dst


@pytest.mark.parametrize(
    ("source", "name", "compress"),
    [
        ("hyades", "cut.csv", False),
        ("hyades", "cut.csv.gz", True),
        ("vot", "cut.vot", False),
        ("ecsv", "cut.ecsv", False),
        ("json", "cut.json", False),
        ("fits", "cut.fits", False),
        ("parquet", "cut.parquet", False),
    ],
)
def test_truncated_files_raise_naming_the_file(source, name, compress, hyades_path, responses, tmp_path):
    if source == "fits":
        Table.read(hyades_path, format="ascii.csv").write(tmp_path / "full.fits")
        src = tmp_path / "full.fits"
    elif source == "parquet":
        pq.write_table(pacsv.read_csv(hyades_path), tmp_path / "full.parquet")
        src = tmp_path / "full.parquet"
    else:
        src = {
            "hyades": hyades_path,
            "vot": responses / "1710099405832VAL-result.vot",
            "ecsv": responses / "1712337806100O-result.ecsv",
            "json": responses / "cone_search.json",
        }[source]
    path = _truncate(src, tmp_path / name, compress=compress)
    with pytest.raises(GaiaTableError, match="cut"):
        read_gaia_table(path)


def test_unknown_suffix_and_missing_file(tmp_path):
    with pytest.raises(GaiaTableError, match=r"table\.txt: unknown Gaia table format"):
        gaia_table_format(tmp_path / "table.txt")
    with pytest.raises(GaiaTableError, match=r"absent\.csv: no such file"):
        read_gaia_table(tmp_path / "absent.csv")


def test_votable_error_and_overflow_status(responses, tmp_path):
    text = (responses / "1710099405832VAL-result.vot").read_text()
    overflow = tmp_path / "overflow.vot"
    overflow.write_text(
        text.replace('<INFO name="QUERY_STATUS" value="OK"/>', '<INFO name="QUERY_STATUS" value="OVERFLOW"/>')
    )
    with pytest.raises(GaiaTableError, match=r"overflow\.vot: .*OVERFLOW"):
        read_gaia_table(overflow)
    error = tmp_path / "error.vot"
    error.write_text(
        '<?xml version="1.0"?><VOTABLE version="1.4" xmlns="http://www.ivoa.net/xml/VOTable/v1.3">'
        '<RESOURCE type="results"><INFO name="QUERY_STATUS" value="ERROR">Cannot parse query</INFO>'
        "</RESOURCE></VOTABLE>"
    )
    with pytest.raises(GaiaTableError, match=r"error\.vot: .*ERROR: Cannot parse query"):
        read_gaia_table(error)
