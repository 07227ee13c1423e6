"""The XP continuous-spectrum reader on the real archive files (GaiaXPy's test files, tests/data/gaia_xp_continuous,
and a datalink bundle), cross-checked against GaiaXPy 2.1.5's own parser of the same files."""

from __future__ import annotations

import csv
import gzip
import io
import re
import zipfile

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from astropy.table import Table

from latentsky.io.gaia_xp import (
    FLAGS,
    G_ZERO_POINT,
    N_CORRELATIONS,
    XpFormatError,
    flag_names,
    join_g_flux,
    missing_xp_rows,
    read_xp_continuous,
    xp_table_to_arrow,
)

# GaiaXPy 2.1.5 passes read_csv's float_precision, which pandas 3 deprecates; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:The 'float_precision' argument is deprecated:Warning")

DATALINK_ZIP = "gaia_dr3_source_id_5937083312263887616_dl_products_csv.zip"
MISSING_BP_ID = 5405570973190252288
XP_FILES = [
    "XP_CONTINUOUS_RAW.csv",
    "XP_CONTINUOUS_RAW.ecsv",
    "XP_CONTINUOUS_RAW.fits",
    "XP_CONTINUOUS_RAW.xml",
    "XP_CONTINUOUS_RAW_plain.xml",
    "XP_CONTINUOUS_RAW_with_missing_BP.csv",
    "XP_CONTINUOUS_RAW_with_missing_BP.ecsv",
    "XP_CONTINUOUS_RAW_with_missing_BP.fits",
    "XP_CONTINUOUS_RAW_with_missing_BP.xml",
]


@pytest.fixture(scope="module")
def xp_dir(real_data):
    return real_data / "gaia_xp_continuous"


def _gaiaxpy_frame(path):
    """GaiaXPy's parse of a file: the frame its calibrate/convert start from (arrays, matrices, covariances)."""
    from gaiaxpy.file_parser.parse_internal_continuous import InternalContinuousParser

    frame, _ = InternalContinuousParser().parse_file(str(path), disable_info=True)
    return frame


def _band(frame, row, column, size):
    value = frame[column].iloc[row]
    if not isinstance(value, np.ndarray) or value.size == 0:
        return np.full(size, np.nan)
    return np.asarray(value, dtype=np.float64)


def test_the_fixture_list_is_every_file(xp_dir):
    on_disk = sorted(p.name for p in xp_dir.iterdir() if p.name != "README.md")
    assert on_disk == sorted([*XP_FILES, "18Sco-XP-spectra.csv"])


@pytest.mark.parametrize("name", XP_FILES)
def test_every_archive_format_equals_gaiaxpy(xp_dir, name):
    path = xp_dir / name
    ours = read_xp_continuous(path, with_correlations=True)
    ref = _gaiaxpy_frame(path)
    assert ours.source_id.dtype == np.int64
    assert ours.source_id.tolist() == [int(s) for s in ref["source_id"]]
    assert ours.coefficients.shape == (len(ref), 110) and ours.errors.shape == (len(ref), 110)
    assert ours.correlations.shape == (len(ref), 2, 55, 55)
    assert ours.path == str(path)
    for i in range(len(ref)):
        for b, band in enumerate(("bp", "rp")):
            block = slice(55 * b, 55 * (b + 1))
            np.testing.assert_array_equal(
                ours.coefficients[i, block], _band(ref, i, f"{band}_coefficients", 55)
            )
            np.testing.assert_array_equal(
                ours.errors[i, block], _band(ref, i, f"{band}_coefficient_errors", 55)
            )
            corr = ref[f"{band}_coefficient_correlations"].iloc[i]
            if isinstance(corr, np.ndarray) and corr.size:
                np.testing.assert_array_equal(ours.correlations[i, b], corr)
                # GaiaXPy's covariance: C = diag(e/σ) ρ diag(e/σ) (spec §A1.1 point 3), from our arrays.
                scaled = ours.errors[i, block] / ours.standard_deviation[i, b]
                cov = scaled[:, None] * ours.correlations[i, b] * scaled[None, :]
                np.testing.assert_allclose(cov, ref[f"{band}_covariance_matrix"].iloc[i], rtol=1e-6)
            else:
                assert np.isnan(ours.correlations[i, b]).all()
    std = ref[["bp_standard_deviation", "rp_standard_deviation"]].astype(float).to_numpy()
    np.testing.assert_allclose(ours.standard_deviation, std, rtol=1e-6)
    # Archive XP tables carry no photometry: G must be joined (spec §A1.1).
    assert (ours.g_flux_source == "missing").all() and ours.has("missing_g_flux").all()


@pytest.mark.parametrize("name", [n for n in XP_FILES if "missing_BP" in n])
def test_missing_bp_row_is_kept_flagged_and_nan(xp_dir, name):
    table = read_xp_continuous(xp_dir / name)
    assert len(table) == 3
    (row,) = np.flatnonzero(table.source_id == MISSING_BP_ID)
    assert row == 1
    assert flag_names(table.flags[row]) == ["missing_bp", "missing_g_flux"]
    assert np.isnan(table.coefficients[row, :55]).all() and np.isnan(table.errors[row, :55]).all()
    assert np.isfinite(table.coefficients[row, 55:]).all() and (table.errors[row, 55:] > 0).all()
    assert table.coefficients[row, 55] == pytest.approx(38.18018501664883)
    assert np.isnan(table.n_parameters[row, 0]) and table.n_parameters[row, 1] == 55
    assert np.isnan(table.standard_deviation[row, 0])
    others = np.delete(np.arange(3), row)
    assert (table.flags[others] == FLAGS["missing_g_flux"]).all()


def test_correlation_unpacking_equals_gaiaxpy_array_to_symmetric_matrix(xp_dir):
    from gaiaxpy.core.generic_functions import array_to_symmetric_matrix, str_to_array

    table = read_xp_continuous(xp_dir / "XP_CONTINUOUS_RAW.csv", with_correlations=True)
    raw = pd.read_csv(xp_dir / "XP_CONTINUOUS_RAW.csv")
    for i in range(len(raw)):
        for b, band in enumerate(("bp", "rp")):
            packed = str_to_array(raw[f"{band}_coefficient_correlations"].iloc[i])
            assert packed.size == N_CORRELATIONS
            expected = array_to_symmetric_matrix(packed, 55)
            np.testing.assert_array_equal(table.correlations[i, b], expected)
            matrix = table.correlations[i, b]
            assert np.array_equal(matrix, matrix.T) and (np.diag(matrix) == 1).all()
            # Packed values fill the lower triangle row by row: (1,0), (2,0), (2,1), (3,0), …
            assert matrix[1, 0] == packed[0] and matrix[2, 0] == packed[1] and matrix[2, 1] == packed[2]
            # Real correlation matrices are positive definite (spec §A1.1 point 4: smallest eigenvalue > 0).
            assert np.linalg.eigvalsh(matrix).min() > 0.01


def test_18sco_g_flux_comes_from_the_magnitude(xp_dir):
    from gaiaxpy.core.generic_functions import str_to_array

    table = read_xp_continuous(xp_dir / "18Sco-XP-spectra.csv", with_correlations=True)
    assert table.source_id.tolist() == [4345775217221821312]
    assert flag_names(table.flags[0]) == ["g_flux_from_mag"]
    assert table.g_flux_source.tolist() == ["phot_g_mean_mag"]
    assert table.g_mag[0] == pytest.approx(5.327651)
    assert table.g_flux[0] == pytest.approx(10 ** (-0.4 * (5.327651 - G_ZERO_POINT)), rel=1e-12)
    assert table.g_flux[0] == pytest.approx(1.39283e8, rel=1e-5)
    # G-normalised c_0 of a solar twin: BP and RP both ~0.06 of the G flux.
    assert 0.03 < table.coefficients[0, 0] / table.g_flux[0] < 0.1
    assert np.isnan(table.standard_deviation).all()  # the file has no *_standard_deviation
    raw = pd.read_csv(xp_dir / "18Sco-XP-spectra.csv")
    np.testing.assert_array_equal(table.coefficients[0, 55:], str_to_array(raw["rp_coefficients"].iloc[0]))


def test_datalink_zip_reads_its_xp_member(real_data, xp_dir):
    path = real_data / "gaia_archive_responses" / DATALINK_ZIP
    table = read_xp_continuous(path, with_correlations=True)
    assert table.source_id.tolist() == [5937083312263887616]
    assert table.flags.tolist() == [FLAGS["missing_g_flux"]]
    assert table.coefficients[0, 0] == pytest.approx(3325.743093963916)
    with zipfile.ZipFile(path) as bundle:
        member = bundle.read("XP_CONTINUOUS-Gaia DR3 5937083312263887616.csv")
    plain = read_xp_continuous(Table.read(member.decode(), format="ascii.csv"), with_correlations=True)
    np.testing.assert_array_equal(plain.coefficients, table.coefficients)
    np.testing.assert_array_equal(plain.correlations, table.correlations)


def test_gzipped_ecsv_bulk_file_and_in_memory_inputs(xp_dir, tmp_path):
    reference = read_xp_continuous(xp_dir / "XP_CONTINUOUS_RAW_with_missing_BP.csv", with_correlations=True)
    bulk = tmp_path / "XpContinuousMeanSpectrum_000000-003111.csv.gz"
    bulk.write_bytes(gzip.compress((xp_dir / "XP_CONTINUOUS_RAW_with_missing_BP.ecsv").read_bytes()))
    # astroquery's load_data reads CSV members with Table.read(format="ascii.csv", fast_reader=False).
    astro = Table.read(
        xp_dir / "XP_CONTINUOUS_RAW_with_missing_BP.csv", format="ascii.csv", fast_reader=False
    )
    gaiaxpy_frame = _gaiaxpy_frame(xp_dir / "XP_CONTINUOUS_RAW_with_missing_BP.xml")
    for other in (bulk, astro, gaiaxpy_frame):
        got = read_xp_continuous(other, with_correlations=True)
        np.testing.assert_array_equal(got.source_id, reference.source_id)
        np.testing.assert_array_equal(got.coefficients, reference.coefficients)
        np.testing.assert_allclose(got.errors, reference.errors, rtol=1e-7)
        np.testing.assert_allclose(got.correlations, reference.correlations, rtol=1e-6)
        np.testing.assert_array_equal(got.flags, reference.flags)


def test_parquet_round_trip(xp_dir, tmp_path):
    table = read_xp_continuous(xp_dir / "XP_CONTINUOUS_RAW_with_missing_BP.ecsv", with_correlations=True)
    sco = read_xp_continuous(xp_dir / "18Sco-XP-spectra.csv", with_correlations=True)
    absent = missing_xp_rows([123456789], with_correlations=True)
    from latentsky.io.gaia_xp import concat_xp_tables

    both = concat_xp_tables([table, sco, absent])
    arrow = xp_table_to_arrow(both)
    assert arrow.schema.field("bp_coefficients").type.value_type == "double"
    assert str(arrow.schema.field("bp_coefficient_correlations").type.value_type) == "float"
    assert arrow.column("bp_coefficients").null_count == 2  # missing BP and the absent source
    path = tmp_path / "xp.parquet"
    pq.write_table(arrow, path)
    back = read_xp_continuous(path, with_correlations=True)
    np.testing.assert_array_equal(back.source_id, both.source_id)
    np.testing.assert_array_equal(back.coefficients, both.coefficients)
    np.testing.assert_array_equal(back.errors, both.errors)
    np.testing.assert_array_equal(back.flags, both.flags)
    assert flag_names(back.flags[-1]) == [
        "missing_bp",
        "missing_rp",
        "missing_g_flux",
        "missing_from_archive",
    ]
    np.testing.assert_allclose(back.correlations, both.correlations, atol=6e-8)  # float32 storage
    np.testing.assert_array_equal(back.g_flux, both.g_flux)
    assert back.g_flux_source.tolist() == both.g_flux_source.tolist()
    np.testing.assert_array_equal(back.n_parameters, both.n_parameters)
    np.testing.assert_array_equal(back.standard_deviation, both.standard_deviation)
    # to_frame is the same layout in pandas, and reads back too.
    again = read_xp_continuous(both.to_frame())
    np.testing.assert_array_equal(again.coefficients, both.coefficients)


def _rewrite_csv(src, dst, edit):
    csv.field_size_limit(1 << 30)
    with open(src, newline="") as fh:
        rows = list(csv.reader(fh))
    header = rows[0]
    edit(header, rows[1:])
    with open(dst, "w", newline="") as fh:
        csv.writer(fh).writerows(rows)


def test_a_short_array_is_a_one_line_error_naming_file_row_and_column(xp_dir, tmp_path):
    bad = tmp_path / "XP_CONTINUOUS_RAW_bad.csv"

    def drop_last_bp_value(header, rows):
        i = header.index("bp_coefficients")
        rows[2][i] = "(" + ", ".join(rows[2][i].strip("()").split(", ")[:-1]) + ")"

    _rewrite_csv(xp_dir / "XP_CONTINUOUS_RAW_with_missing_BP.csv", bad, drop_last_bp_value)
    with pytest.raises(XpFormatError) as err:
        read_xp_continuous(bad)
    message = str(err.value)
    assert message == (
        "XP_CONTINUOUS_RAW_bad.csv row 3 (source_id 5762406957886626816): bp_coefficients has 54 values, "
        "expected 55"
    )
    assert "\n" not in message and isinstance(err.value, ValueError)


def test_a_non_number_and_missing_errors_name_the_row(xp_dir, tmp_path):
    bad = tmp_path / "bad_token.csv"

    def garble(header, rows):
        i = header.index("rp_coefficient_errors")
        rows[0][i] = rows[0][i].replace(",", ", abc,", 1)

    _rewrite_csv(xp_dir / "XP_CONTINUOUS_RAW.csv", bad, garble)
    with pytest.raises(
        XpFormatError,
        match=r"^bad_token.csv row 1 \(source_id 5853498713190525696\): "
        r"rp_coefficient_errors holds 'abc', expected numbers$",
    ):
        read_xp_continuous(bad)

    no_errors = tmp_path / "no_errors.csv"

    def blank_errors(header, rows):
        rows[1][header.index("rp_coefficient_errors")] = ""

    _rewrite_csv(xp_dir / "XP_CONTINUOUS_RAW.csv", no_errors, blank_errors)
    with pytest.raises(
        XpFormatError,
        match=r"row 2 \(source_id 5762406957886626816\): rp_coefficient_errors is "
        r"empty but rp_coefficients has 55 values",
    ):
        read_xp_continuous(no_errors)


def test_missing_columns_are_named(xp_dir, tmp_path):
    frame = pd.read_csv(xp_dir / "XP_CONTINUOUS_RAW.csv", dtype=str)
    path = tmp_path / "cut.csv"
    frame.drop(columns=["rp_coefficient_errors", "bp_coefficients"]).to_csv(path, index=False)
    with pytest.raises(
        XpFormatError, match=r"^cut.csv: missing column\(s\) bp_coefficients, rp_coefficient_errors;"
    ):
        read_xp_continuous(path)
    frame.drop(columns=["bp_coefficient_correlations"]).to_csv(path, index=False)
    assert len(read_xp_continuous(path)) == 2  # correlations are only required when asked for
    with pytest.raises(XpFormatError, match=r"missing column\(s\) bp_coefficient_correlations"):
        read_xp_continuous(path, with_correlations=True)
    # "if_present": a table without them reads without them, one with them unpacks them.
    assert read_xp_continuous(path, with_correlations="if_present").correlations is None
    full = read_xp_continuous(xp_dir / "XP_CONTINUOUS_RAW.csv", with_correlations="if_present")
    assert full.correlations is not None and full.correlations.shape == (2, 2, 55, 55)
    with pytest.raises(ValueError, match="with_correlations must be"):
        read_xp_continuous(path, with_correlations="yes")


def test_quality_flags(xp_dir):
    frame = read_xp_continuous(xp_dir / "XP_CONTINUOUS_RAW.csv").to_frame()
    errors = frame.at[0, "rp_coefficient_errors"].copy()
    errors[7] = 0.0
    frame.at[0, "rp_coefficient_errors"] = errors
    coefficients = frame.at[1, "bp_coefficients"].copy()
    coefficients[3] = np.nan
    frame.at[1, "bp_coefficients"] = coefficients
    frame["rp_n_parameters"] = pd.array([55, 54], dtype="Int16")
    frame["phot_g_mean_flux"] = [2.5e5, np.nan]
    frame["phot_g_mean_mag"] = [np.nan, np.nan]
    table = read_xp_continuous(frame)
    assert flag_names(table.flags[0]) == ["nonpositive_error"]
    assert flag_names(table.flags[1]) == ["missing_g_flux", "nonfinite_coefficient", "n_parameters_not_55"]
    assert table.g_flux[0] == 2.5e5 and table.g_flux_source.tolist() == ["phot_g_mean_flux", "missing"]
    assert table.path is None
    with pytest.raises(ValueError, match="not XP flags"):
        flag_names(1 << 20)


def test_join_g_flux(xp_dir):
    table = read_xp_continuous(xp_dir / "XP_CONTINUOUS_RAW_with_missing_BP.csv")
    joined = join_g_flux(
        table, [5762406957886626816, 5405570973190252288, 42], [1.0e4, np.nan, 3.0], [17.0, 19.5, 20.0]
    )
    assert joined.g_flux[2] == 1.0e4 and joined.g_flux_source[2] == "phot_g_mean_flux"
    assert flag_names(joined.flags[2]) == []
    assert joined.g_flux[1] == pytest.approx(10 ** (-0.4 * (19.5 - G_ZERO_POINT)))
    assert flag_names(joined.flags[1]) == ["missing_bp", "g_flux_from_mag"]
    assert flag_names(joined.flags[0]) == ["missing_g_flux"] and np.isnan(joined.g_flux[0])
    assert np.isnan(table.g_flux).all()  # the input is not modified
    with pytest.raises(ValueError, match="repeat"):
        join_g_flux(table, [1, 1], [1.0, 2.0])


def test_unknown_format_and_zip_without_xp(tmp_path):
    path = tmp_path / "spectra.h5"
    path.write_bytes(b"\x89HDF")
    with pytest.raises(XpFormatError, match=r"spectra.h5: unknown XP table format"):
        read_xp_continuous(path)
    bundle = tmp_path / "products.zip"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("MCMC_MSC-Gaia DR3 1.csv", "source_id\n1\n")
    bundle.write_bytes(buffer.getvalue())
    with pytest.raises(XpFormatError, match=re.escape("products.zip: the zip holds no XP_CONTINUOUS file")):
        read_xp_continuous(bundle)
