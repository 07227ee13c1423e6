"""Reading Gaia archive tables in any of the archive's formats into the columns the distance model needs.

The Gaia archive hands out the same ``gaia_source`` rows as CSV (the bulk download, ``.csv.gz``), ECSV,
VOTable (TAP's default), FITS, Parquet (HATS-style catalogs) and TAP JSON (``{"metadata": [...], "data":
[...]}``). :func:`read_gaia_table` reads any of them, chosen by file suffix, and returns a
:class:`pandas.DataFrame` with the *canonical* columns of :data:`CANONICAL_COLUMNS` first, in the units of
the Gaia DR2/DR3 data model, followed by every other column of the file untouched:

===============================  ==========  ================================================================
column                           unit        from
===============================  ==========  ================================================================
source_id                        (int64)     ``source_id``
ra, dec                          deg         ``ra``, ``dec``
parallax, parallax_error         mas         ``parallax``, ``parallax_error``
phot_g/bp/rp_mean_mag            mag         ``phot_*_mean_mag`` (or G with ``bp_rp`` and ``bp_g``)
bp_rp, bp_g                      mag         the file's column, else BP − RP and BP − G
phot_g/bp/rp_mean_mag_error      mag         ``phot_*_mean_flux_over_error`` plus the zero-point uncertainty
ruwe                             (1)         ``ruwe`` (DR3), else from ``astrometric_chi2_al`` (DR2)
===============================  ==========  ================================================================

The columns the model needs have the same names in DR2 and DR3; what differs between releases and archive
products is the *case* (some DR2 products spell ``SOURCE_ID``) and whether ``ruwe`` exists (DR3 and the
separate ``gaiadr2.ruwe`` table have it, ``gaiadr2.gaia_source`` does not). Names are therefore matched
case-insensitively, and RUWE is computed for DR2 as Lindegren et al. (2018) define it.

Nothing is lost silently (DESIGN.md, "Conventions"): a missing value (empty CSV cell, masked VOTable/FITS
entry, JSON ``null``, NaN) becomes NaN in the float columns, never 0, and a row with missing parallax or
photometry is kept; the catalog flags it later. Bad input raises :class:`GaiaTableError` (a ``ValueError``)
naming the file, the column and what was expected.
"""

from __future__ import annotations

import gzip
import json
import logging
import math
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from astropy import units as u
from astropy.io import votable
from astropy.table import Table
from astropy.utils.exceptions import AstropyWarning

log = logging.getLogger(__name__)

#: Output columns, in this order, before the pass-through columns.
CANONICAL_COLUMNS: tuple[str, ...] = (
    "source_id",
    "ra",
    "dec",
    "parallax",
    "parallax_error",
    "phot_g_mean_mag",
    "phot_bp_mean_mag",
    "phot_rp_mean_mag",
    "bp_rp",
    "bp_g",
    "phot_g_mean_mag_error",
    "phot_bp_mean_mag_error",
    "phot_rp_mean_mag_error",
    "ruwe",
)

#: Unit of each canonical float column (Gaia DR2/DR3 data model). Files that carry units (ECSV, VOTable,
#: FITS, TAP JSON) are converted to these; CSV and Parquet carry none and are taken to be in them.
CANONICAL_UNITS: dict[str, u.UnitBase] = {
    "ra": u.deg,
    "dec": u.deg,
    "parallax": u.mas,
    "parallax_error": u.mas,
    **{f"phot_{b}_mean_mag": u.mag for b in ("g", "bp", "rp")},
    **{f"phot_{b}_mean_mag_error": u.mag for b in ("g", "bp", "rp")},
    "bp_rp": u.mag,
    "bp_g": u.mag,
}

BANDS: tuple[str, ...] = ("g", "bp", "rp")

#: Uncertainty of the Gaia DR2 photometric zero points (Vega), mag: Evans et al. (2018, A&A 616, A4),
#: Sec. 5.4 / Table 3. The catalog's flux errors are internal (photon noise and calibration scatter) and
#: leave out this systematic term, which every star shares; it sets the floor of the magnitude error of
#: bright stars (≈1–2 mmag) and is added in quadrature, as the DR2 documentation recommends.
ZERO_POINT_ERROR_MAG: dict[str, float] = {"g": 0.0018, "bp": 0.0014, "rp": 0.0019}

#: 2.5 / ln 10: first-order propagation of a fractional flux error to magnitudes, σ_m = 1.0857 σ_F / F.
MAG_PER_FRACTIONAL_FLUX = 2.5 / math.log(10.0)

#: Percentile of the unit-weight error that defines the DR2 RUWE normalisation u0 (Lindegren et al. 2018,
#: GAIA-C3-TN-LU-LL-124, Sec. 2): the percentile is chosen so that u0 tracks the mode of the UWE
#: distribution of well-behaved sources rather than the tail of binaries and crowded sources.
U0_PERCENTILE = 41.4
#: Minimum number of stars with a valid UWE in a bin of the empirical u0 normalisation. 100 stars fix the
#: 41.4th percentile to ≈ ±0.05 of the UWE distribution's width (binomial error √(p(1−p)/n) in rank).
U0_MIN_COUNT = 100
#: Caps on the empirical binning: 0.1-mag G bins over G ≈ 3–21 and 0.1–0.2-mag colour bins over the
#: populated BP−RP range, the resolution at which Lindegren et al. (2018) found u0 to vary.
U0_MAX_G_BINS = 180
U0_MAX_COLOUR_BINS = 30

#: File suffixes (lower case, longest first) and the reader format they select.
SUFFIX_FORMATS: tuple[tuple[str, str], ...] = (
    (".csv.gz", "csv"),
    (".ecsv.gz", "ecsv"),
    (".vot.gz", "votable"),
    (".xml.gz", "votable"),
    (".fits.gz", "fits"),
    (".fit.gz", "fits"),
    (".json.gz", "tap_json"),
    (".csv", "csv"),
    (".ecsv", "ecsv"),
    (".vot", "votable"),
    (".votable", "votable"),
    (".xml", "votable"),
    (".fits", "fits"),
    (".fit", "fits"),
    (".parquet", "parquet"),
    (".pq", "parquet"),
    (".json", "tap_json"),
)

_GZIP_MAGIC = b"\x1f\x8b"
_MAX_DETAIL = 300
_ECSV_SIGNATURE = "# %ECSV"


class GaiaTableError(ValueError):
    """A Gaia table cannot be read or lacks what the distance model needs; the message names the file."""


# ------------------------------------------------------------------------------------------- formats
def gaia_table_format(path: str | os.PathLike) -> str:
    """Reader format of ``path`` from its suffix: ``csv``, ``ecsv``, ``votable``, ``fits``, ``parquet``
    or ``tap_json``.

    Raises
    ------
    GaiaTableError
        For a suffix that is none of the archive's formats.
    """
    name = Path(path).name.lower()
    for suffix, fmt in SUFFIX_FORMATS:
        if name.endswith(suffix):
            return fmt
    known = ", ".join(s for s, _ in SUFFIX_FORMATS)
    raise GaiaTableError(
        f"{path}: unknown Gaia table format (suffix {Path(path).suffix!r}); expected one of {known}"
    )


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(2) == _GZIP_MAGIC


def _open_binary(path: Path) -> IO[bytes]:
    # The archive gzips some results whatever the name says (astroquery's ``votable_gzip``, ECSV and FITS
    # TAP results), so compression is sniffed from the magic bytes, not trusted from the suffix.
    return gzip.open(path, "rb") if _is_gzip(path) else open(path, "rb")


@dataclass
class RawTable:
    """A parsed table before normalisation: the columns as read, and the unit strings the file declares."""

    frame: pd.DataFrame
    units: dict[str, str]
    format: str


def read_raw_table(path: str | os.PathLike, *, fmt: str | None = None) -> RawTable:
    """Parse a Gaia archive file without renaming or converting anything.

    Parameters
    ----------
    path
        The file. Its format comes from the suffix (see :func:`gaia_table_format`) unless ``fmt`` is given.
    fmt
        One of ``csv``, ``ecsv``, ``votable``, ``fits``, ``parquet``, ``tap_json``.

    Returns
    -------
    RawTable
        Columns as in the file (integer and boolean columns with missing values as pandas' nullable
        dtypes, float columns with NaN) and the units the file declares, by column name.

    Raises
    ------
    GaiaTableError
        If the file is missing, truncated or unparseable (the parser's message is kept), or if a VOTable
        result says the query failed or was truncated by the server (``QUERY_STATUS`` ERROR / OVERFLOW).
    """
    p = Path(path)
    fmt = fmt or gaia_table_format(p)
    if not p.is_file():
        raise GaiaTableError(f"{p}: no such file")
    readers = {
        "csv": _read_csv,
        "ecsv": _read_astropy_ascii,
        "votable": _read_votable,
        "fits": _read_fits,
        "parquet": _read_parquet,
        "tap_json": _read_tap_json,
    }
    if fmt not in readers:
        raise GaiaTableError(f"{p}: unknown reader format {fmt!r}; expected one of {sorted(readers)}")
    try:
        frame, units = readers[fmt](p)
    except GaiaTableError:
        raise
    except Exception as exc:  # noqa: BLE001 - every parser failure becomes one clear, file-naming error
        detail = str(exc)
        if len(detail) > _MAX_DETAIL:  # parsers quote whole rows or headers; the start says enough
            detail = detail[:_MAX_DETAIL] + " …"
        raise GaiaTableError(
            f"{p}: cannot be read as {fmt} (truncated or corrupt file?): {type(exc).__name__}: {detail}"
        ) from exc
    return RawTable(frame=frame, units=units, format=fmt)


def _nullable_dtype(dtype: pa.DataType) -> Any:
    if pa.types.is_boolean(dtype):
        return pd.BooleanDtype()
    if pa.types.is_integer(dtype):
        prefix = "UInt" if pa.types.is_unsigned_integer(dtype) else "Int"
        return pd.api.types.pandas_dtype(f"{prefix}{dtype.bit_width}")
    return None


def _arrow_to_pandas(table: pa.Table) -> pd.DataFrame:
    # Integer and boolean columns with nulls become pandas' nullable dtypes, as astropy's to_pandas does
    # for masked columns, rather than pandas' default of floats (integers) or objects (booleans).
    frame = table.to_pandas()
    for field, column in zip(table.schema, table.columns, strict=True):
        if column.null_count and _nullable_dtype(field.type) is not None:
            frame[field.name] = column.to_pandas(types_mapper=_nullable_dtype)
    return frame


def _read_csv(path: Path) -> tuple[pd.DataFrame, dict[str, str]]:
    with _open_binary(path) as fh:
        head = fh.read(len(_ECSV_SIGNATURE))
    if head.decode("ascii", errors="replace") == _ECSV_SIGNATURE:
        # Gaia DR3's bulk gaia_source files are ``.csv.gz`` with an ECSV header: read them as ECSV so
        # their declared types and units are used.
        return _read_astropy_ascii(path)
    # pyarrow's CSV reader: multi-threaded and fast on bulk files. Types are inferred from the data; the
    # 16 MiB blocks (≈ 15,000 gaia_source rows) let sparse columns (radial_velocity, teff_val) show values
    # before a block's type is fixed, and pyarrow (checked with 26) widens types across later blocks.
    # Empty cells and the archive's "null" are nulls in every column (strings too), never "" or 0.
    stream = pa.CompressedInputStream(pa.OSFile(str(path)), "gzip") if _is_gzip(path) else str(path)
    table = pacsv.read_csv(
        stream,
        read_options=pacsv.ReadOptions(block_size=1 << 24),
        convert_options=pacsv.ConvertOptions(strings_can_be_null=True),
    )
    return _arrow_to_pandas(table), {}


def _astropy_to_pandas(table: Table) -> tuple[pd.DataFrame, dict[str, str]]:
    units = {
        name: str(col.unit) for name, col in table.columns.items() if getattr(col, "unit", None) is not None
    }
    flat = [name for name in table.colnames if table[name].ndim <= 1]
    frame = table[flat].to_pandas(index=False) if flat else pd.DataFrame(index=range(len(table)))
    for name in table.colnames:
        if table[name].ndim > 1:
            # Array-valued cells (e.g. XP coefficients) cannot be a pandas column of scalars: keep each
            # cell as a NumPy array in an object column rather than dropping it.
            frame[name] = pd.Series(list(np.asarray(table[name])), dtype=object)
    return frame[list(table.colnames)], units


def _read_astropy_ascii(path: Path) -> tuple[pd.DataFrame, dict[str, str]]:
    with _open_binary(path) as fh:
        text = fh.read().decode("utf-8")
    table = Table.read(text, format="ascii.ecsv")
    return _astropy_to_pandas(table)


def check_votable_status(vot: Any, path: str | os.PathLike) -> None:
    """Raise if a TAP VOTable result reports an error or a truncated (overflowed) result.

    TAP services mark a failed query with ``<INFO name="QUERY_STATUS" value="ERROR">`` and a result cut at
    the row limit with ``value="OVERFLOW"`` (IVOA TAP 1.1, Sec. 2.9 and DALI 1.1, Sec. 4.4); an overflowed
    partition would otherwise be silently incomplete.

    Parameters
    ----------
    vot
        A parsed ``astropy.io.votable.tree.VOTableFile``.
    path
        The file, for the message.
    """
    for resource in vot.resources:
        for info in resource.infos:
            if info.name != "QUERY_STATUS":
                continue
            value = str(info.value).upper()
            text = (info.content or "").strip()
            if value == "ERROR":
                raise GaiaTableError(
                    f"{path}: the TAP service reports QUERY_STATUS=ERROR: {text or '(no message)'}"
                )
            if value == "OVERFLOW":
                raise GaiaTableError(
                    f"{path}: the TAP service truncated the result at its row limit (QUERY_STATUS=OVERFLOW); "
                    "query a smaller partition (higher HEALPix order)"
                )


def _read_votable(path: Path) -> tuple[pd.DataFrame, dict[str, str]]:
    with warnings.catch_warnings():
        # The archive's VOTables use a few non-standard unit strings; astropy's warnings about them are
        # not errors in the data.
        warnings.simplefilter("ignore", AstropyWarning)
        vot = votable.parse(str(path))
    check_votable_status(vot, path)
    tables = list(vot.iter_tables())
    if not tables:
        raise GaiaTableError(f"{path}: the VOTable holds no TABLE")
    # Column *names*, not IDs: the archive gives IDs like "SOURCE_ID" to some fields and astroquery
    # (GaiaClass.USE_NAMES_OVER_IDS) uses names for the same reason.
    return _astropy_to_pandas(tables[0].to_table(use_names_over_ids=True))


def _read_fits(path: Path) -> tuple[pd.DataFrame, dict[str, str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        table = Table.read(str(path), format="fits")
    for w in caught:
        # astropy reads a truncated FITS file with only a warning (and sometimes garbage); refuse it.
        if "truncated" in str(w.message).lower():
            raise GaiaTableError(f"{path}: FITS file is truncated: {w.message}")
    return _astropy_to_pandas(table)


def _read_parquet(path: Path) -> tuple[pd.DataFrame, dict[str, str]]:
    return _arrow_to_pandas(pq.read_table(path)), {}


#: TAP JSON datatypes (VOTable datatypes, IVOA VOTable 1.4 Sec. 2.1) and the pandas dtype they become.
_TAP_INT_TYPES = {"short": "Int16", "int": "Int32", "long": "Int64", "unsignedByte": "UInt8"}
_TAP_FLOAT_TYPES = {"float", "double"}


def _read_tap_json(path: Path) -> tuple[pd.DataFrame, dict[str, str]]:
    # The only hand-written parser here: TAP's JSON output is a plain {"metadata": [field...], "data":
    # [[row...]...]} document that no astropy reader handles; json does the parsing, this maps columns.
    with _open_binary(path) as fh:
        doc = json.load(fh)
    if not isinstance(doc, dict) or "metadata" not in doc or "data" not in doc:
        raise GaiaTableError(f"{path}: not a TAP JSON result: expected an object with 'metadata' and 'data'")
    fields = doc["metadata"]
    names = [f.get("name") for f in fields]
    if any(not isinstance(n, str) for n in names):
        raise GaiaTableError(f"{path}: TAP JSON metadata has a field without a 'name'")
    rows = doc["data"]
    for i, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != len(names):
            raise GaiaTableError(
                f"{path}: TAP JSON data row {i} has {len(row)} values, expected {len(names)}"
            )
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in names]
    data: dict[str, Any] = {}
    units: dict[str, str] = {}
    for field, name, values in zip(fields, names, columns, strict=True):
        datatype = field.get("datatype")
        if field.get("unit"):
            units[name] = field["unit"]
        if datatype in _TAP_INT_TYPES:
            data[name] = pd.array(list(values), dtype=_TAP_INT_TYPES[datatype])
        elif datatype in _TAP_FLOAT_TYPES:
            data[name] = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
        elif datatype == "boolean":
            data[name] = pd.array(list(values), dtype="boolean")
        else:
            data[name] = pd.Series(list(values), dtype=object)
    return pd.DataFrame(data, index=range(len(rows))), units


# ------------------------------------------------------------------------------------ normalisation
def _column_index(frame: pd.DataFrame, source: str) -> dict[str, str]:
    """Lower-cased name → actual name, refusing names that differ only in case."""
    index: dict[str, str] = {}
    for name in frame.columns:
        key = str(name).lower()
        if key in index:
            raise GaiaTableError(
                f"{source}: columns {index[key]!r} and {name!r} differ only in case; cannot tell which is "
                "meant"
            )
        index[key] = str(name)
    return index


def _to_float(series: pd.Series, column: str, source: str, unit: str) -> np.ndarray:
    """A column as float64 with every missing value NaN; non-numeric entries are an error."""
    if pd.api.types.is_bool_dtype(series.dtype):
        raise GaiaTableError(f"{source}: column {column!r} is boolean; expected numbers ({unit})")
    if pd.api.types.is_numeric_dtype(series.dtype):
        return series.to_numpy(dtype=np.float64, na_value=np.nan)
    converted = pd.to_numeric(series, errors="coerce")
    text = series.astype("string").str.strip()
    missing = (
        series.isna() | (text == "") | text.str.lower().isin(["nan", "null", "none", "--"]).fillna(False)
    )
    bad = converted.isna() & ~missing
    if bad.any():
        rows = np.flatnonzero(bad.to_numpy())
        examples = ", ".join(f"row {r}: {series.iloc[r]!r}" for r in rows[:3])
        raise GaiaTableError(
            f"{source}: column {column!r} must be numeric ({unit}); {len(rows)} non-numeric value(s), "
            f"e.g. {examples}"
        )
    return converted.to_numpy(dtype=np.float64, na_value=np.nan)


def _to_source_id(series: pd.Series, column: str, source: str) -> np.ndarray:
    if series.isna().any():
        rows = np.flatnonzero(series.isna().to_numpy())
        raise GaiaTableError(
            f"{source}: column {column!r} has {len(rows)} missing value(s) (first at row {rows[0]})"
        )
    if pd.api.types.is_integer_dtype(series.dtype):
        return series.to_numpy(dtype=np.int64)
    if pd.api.types.is_float_dtype(series.dtype):
        # Gaia source_ids reach 6.9e18; a float64 holds integers exactly only up to 2**53 ≈ 9e15, so a
        # float column has already lost the low bits of the id.
        raise GaiaTableError(
            f"{source}: column {column!r} was stored as floating point, which cannot hold Gaia source_ids "
            "(up to 6.9e18) exactly; expected 64-bit integers"
        )
    try:
        return np.array([int(str(v).strip()) for v in series], dtype=np.int64)
    except (ValueError, OverflowError) as exc:
        raise GaiaTableError(f"{source}: column {column!r} must hold 64-bit integers: {exc}") from exc


def _unit_factor(declared: str | None, column: str, source: str) -> float:
    """Factor converting a column in its declared unit to the canonical unit (1 if none declared)."""
    target = CANONICAL_UNITS.get(column)
    if declared is None or target is None or declared.strip() in ("", "None"):
        return 1.0
    unit = u.Unit(declared, parse_strict="silent")
    if isinstance(unit, u.UnrecognizedUnit):
        log.warning("%s: unit %r of column %r not understood; assuming %s", source, declared, column, target)
        return 1.0
    # "mag" is a function unit in astropy that converts to nothing (unit.to() is not meaningful for it), so
    # magnitudes are compared by identity in both directions.
    if (target == u.mag) != (unit == u.mag):
        raise GaiaTableError(f"{source}: column {column!r} has unit {declared!r}; expected {target}")
    if target == u.mag:
        return 1.0
    try:
        return float(unit.to(target))
    except (u.UnitsError, TypeError, ValueError) as exc:
        raise GaiaTableError(f"{source}: column {column!r} has unit {declared!r}; expected {target}") from exc


def magnitude_error(flux_over_error: np.ndarray, zero_point_error: float) -> np.ndarray:
    """Magnitude uncertainty from a flux signal-to-noise, with the zero-point uncertainty in quadrature.

    Parameters
    ----------
    flux_over_error
        ``phot_*_mean_flux_over_error`` (dimensionless). Values ≤ 0 or NaN give NaN.
    zero_point_error
        Zero-point uncertainty of the band, mag (:data:`ZERO_POINT_ERROR_MAG`).

    Returns
    -------
    numpy.ndarray
        σ_m = √((2.5/ln 10 / (F/σ_F))² + σ_ZP²), mag (Evans et al. 2018, Sec. 5.4 and eq. 3 of the Gaia DR2
        photometric documentation).
    """
    snr = np.asarray(flux_over_error, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        internal = np.where(snr > 0, MAG_PER_FRACTIONAL_FLUX / np.where(snr > 0, snr, 1.0), np.nan)
    return np.hypot(internal, zero_point_error)


def unit_weight_error(chi2_al: np.ndarray, n_good_obs_al: np.ndarray) -> np.ndarray:
    """Astrometric unit-weight error UWE = √(χ²_AL / (N_good − 5)) (Lindegren et al. 2018, TN LU-LL-124).

    Parameters
    ----------
    chi2_al
        ``astrometric_chi2_al`` (dimensionless).
    n_good_obs_al
        ``astrometric_n_good_obs_al``; five parameters are fitted, so N_good ≤ 5 gives NaN.
    """
    chi2 = np.asarray(chi2_al, dtype=np.float64)
    dof = np.asarray(n_good_obs_al, dtype=np.float64) - 5.0
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where((dof > 0) & (chi2 >= 0), np.sqrt(np.where(dof > 0, chi2 / dof, np.nan)), np.nan)


def _split_equal(order: np.ndarray, n_bins: int) -> list[np.ndarray]:
    return [chunk for chunk in np.array_split(order, n_bins) if chunk.size]


def empirical_u0(
    uwe: np.ndarray,
    g_mag: np.ndarray,
    bp_rp: np.ndarray,
    *,
    percentile: float = U0_PERCENTILE,
    min_count: int = U0_MIN_COUNT,
    max_g_bins: int = U0_MAX_G_BINS,
    max_colour_bins: int = U0_MAX_COLOUR_BINS,
) -> np.ndarray:
    """Empirical DR2 RUWE normalisation u0(G, BP−RP): the 41.4th UWE percentile in bins of G and colour.

    This is Lindegren et al.'s (2018, GAIA-C3-TN-LU-LL-124) definition applied to the table at hand. It is
    only meaningful for large, *unselected* tables (they used all of DR2): a cluster member list or a
    quality-cut sample has a different UWE distribution than the sky, and a small table gives noisy
    percentiles, so for such tables the result is an approximation. Use the official ESA table
    (``u0_table`` of :func:`read_gaia_table`) wherever the result matters.

    Binning: stars are sorted by G and split into ``n_g = min(N // min_count, max_g_bins)`` bins of equal
    count, so every bin holds at least ``min_count`` stars. Within a G bin, stars with a colour are split
    the same way by BP−RP when there are at least ``2 min_count`` of them (at most ``max_colour_bins``
    bins); stars without a colour, and all stars of bins too small to split, get the G bin's percentile.
    With fewer than ``min_count`` valid stars in the whole table, every star gets the table's percentile.

    Parameters
    ----------
    uwe
        Unit-weight errors (:func:`unit_weight_error`); NaN entries take no part and get u0 all the same.
    g_mag, bp_rp
        G magnitude and BP−RP colour, mag; NaN colour is allowed.
    percentile, min_count, max_g_bins, max_colour_bins
        See above.

    Returns
    -------
    numpy.ndarray
        u0 for every star (NaN only if no star has a valid UWE).
    """
    uwe = np.asarray(uwe, dtype=np.float64)
    g = np.asarray(g_mag, dtype=np.float64)
    colour = np.asarray(bp_rp, dtype=np.float64)
    u0 = np.full(uwe.shape, np.nan)
    valid = np.isfinite(uwe)
    if not valid.any():
        return u0
    u0[:] = np.percentile(uwe[valid], percentile)
    usable = np.flatnonzero(valid & np.isfinite(g))
    n_g = min(usable.size // max(min_count, 1), max_g_bins)
    if n_g < 1:
        return u0
    # Sorting by (G, index) makes the bins deterministic even with tied magnitudes.
    by_g = usable[np.lexsort((usable, g[usable]))]
    g_chunks = _split_equal(by_g, n_g)
    edges = [-np.inf] + [0.5 * (g[c[-1]] + g[n[0]]) for c, n in zip(g_chunks[:-1], g_chunks[1:], strict=True)]
    edges.append(np.inf)
    # Every star (valid UWE or not, with a G) gets the percentile of the G bin it falls in.
    has_g = np.flatnonzero(np.isfinite(g))
    which = np.clip(np.searchsorted(edges, g[has_g], side="right") - 1, 0, len(g_chunks) - 1)
    for k, members in enumerate(g_chunks):
        level = np.percentile(uwe[members], percentile)
        in_bin = has_g[which == k]
        u0[in_bin] = level
        coloured = members[np.isfinite(colour[members])]
        n_c = min(coloured.size // max(min_count, 1), max_colour_bins)
        if n_c < 2:
            continue
        by_c = coloured[np.lexsort((coloured, colour[coloured]))]
        c_chunks = _split_equal(by_c, n_c)
        c_edges = [-np.inf]
        c_edges += [
            0.5 * (colour[c[-1]] + colour[n[0]]) for c, n in zip(c_chunks[:-1], c_chunks[1:], strict=True)
        ]
        c_edges.append(np.inf)
        targets = in_bin[np.isfinite(colour[in_bin])]
        c_which = np.clip(np.searchsorted(c_edges, colour[targets], side="right") - 1, 0, len(c_chunks) - 1)
        for j, c_members in enumerate(c_chunks):
            u0[targets[c_which == j]] = np.percentile(uwe[c_members], percentile)
    return u0


@dataclass(frozen=True)
class U0Table:
    """The official DR2 RUWE normalisation u0(G, BP−RP) and/or u0(G), interpolated linearly.

    ESA distributes it as DR2_RUWE_V1 (Lindegren et al. 2018, GAIA-C3-TN-LU-LL-124): a table of u0 on a
    regular grid of ``g_mag`` and ``bp_rp`` for sources with a colour, and a table of u0 against ``g_mag``
    alone for sources without one. Outside the grid the edge value is used (the grid spans G 3.6–21 and
    BP−RP −1 to 10, beyond which DR2 holds almost no sources).
    """

    g_grid: np.ndarray | None = None
    colour_grid: np.ndarray | None = None
    u0_grid: np.ndarray | None = None
    g_only: np.ndarray | None = None
    u0_g_only: np.ndarray | None = None

    def __call__(self, g_mag: np.ndarray, bp_rp: np.ndarray) -> np.ndarray:
        """u0 for stars of G magnitude ``g_mag`` and colour ``bp_rp`` (mag; NaN colour allowed)."""
        from scipy.interpolate import RegularGridInterpolator

        g = np.asarray(g_mag, dtype=np.float64)
        colour = np.asarray(bp_rp, dtype=np.float64)
        out = np.full(g.shape, np.nan)
        has_colour = np.isfinite(colour) & np.isfinite(g)
        if self.u0_grid is not None and has_colour.any():
            interp = RegularGridInterpolator((self.g_grid, self.colour_grid), self.u0_grid, method="linear")
            points = np.column_stack(
                [
                    np.clip(g[has_colour], self.g_grid[0], self.g_grid[-1]),
                    np.clip(colour[has_colour], self.colour_grid[0], self.colour_grid[-1]),
                ]
            )
            out[has_colour] = interp(points)
        rest = np.isfinite(g) & (np.isnan(out))
        if self.u0_g_only is not None and rest.any():
            out[rest] = np.interp(g[rest], self.g_only, self.u0_g_only)
        return out


def read_u0_table(paths: str | os.PathLike | Sequence[str | os.PathLike]) -> U0Table:
    """Read ESA's DR2 RUWE normalisation table(s) (DR2_RUWE_V1).

    Parameters
    ----------
    paths
        One path or several: a CSV with columns ``g_mag, bp_rp, u0`` (the 2-D table, a complete regular
        grid) and/or one with ``g_mag, u0`` (the G-only table for sources without colour). Column names
        are matched case-insensitively; ``#`` starts a comment.

    Raises
    ------
    GaiaTableError
        Naming the file, if a column is missing or the 2-D table is not a complete grid.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    fields: dict[str, Any] = {}
    for path in paths:
        try:
            frame = pd.read_csv(path, comment="#", skipinitialspace=True)
        except (OSError, ValueError, pd.errors.ParserError) as exc:
            raise GaiaTableError(f"{path}: cannot read the RUWE u0 table: {exc}") from exc
        frame.columns = [str(c).strip().lower() for c in frame.columns]
        found = ", ".join(frame.columns)
        if "g_mag" not in frame or "u0" not in frame:
            raise GaiaTableError(
                f"{path}: RUWE u0 table needs columns 'g_mag' and 'u0' (and 'bp_rp'); found {found}"
            )
        for column in [c for c in ("g_mag", "bp_rp", "u0") if c in frame]:
            _to_float(frame[column], column, str(path), "mag" if column != "u0" else "dimensionless")
        if "bp_rp" in frame:
            g_grid = np.unique(frame["g_mag"].to_numpy(np.float64))
            c_grid = np.unique(frame["bp_rp"].to_numpy(np.float64))
            if len(frame) != g_grid.size * c_grid.size:
                raise GaiaTableError(
                    f"{path}: RUWE u0 table with 'bp_rp' must be a complete grid: {len(frame)} rows for "
                    f"{g_grid.size} G values × {c_grid.size} colours"
                )
            grid = frame.pivot_table(index="g_mag", columns="bp_rp", values="u0", aggfunc="first")
            fields.update(g_grid=g_grid, colour_grid=c_grid, u0_grid=grid.to_numpy(np.float64))
        else:
            ordered = frame.sort_values("g_mag")
            fields.update(
                g_only=ordered["g_mag"].to_numpy(np.float64), u0_g_only=ordered["u0"].to_numpy(np.float64)
            )
    return U0Table(**fields)


def ruwe_from_chi2(
    chi2_al: np.ndarray,
    n_good_obs_al: np.ndarray,
    g_mag: np.ndarray,
    bp_rp: np.ndarray,
    *,
    u0_table: U0Table | str | os.PathLike | Sequence[str | os.PathLike] | None = None,
    min_count: int = U0_MIN_COUNT,
) -> tuple[np.ndarray, str]:
    """DR2 renormalised unit-weight error RUWE = UWE / u0(G, BP−RP) (Lindegren et al. 2018, TN LU-LL-124).

    Parameters
    ----------
    chi2_al, n_good_obs_al
        ``astrometric_chi2_al`` and ``astrometric_n_good_obs_al``.
    g_mag, bp_rp
        mag.
    u0_table
        The official normalisation (:func:`read_u0_table` or its path(s)); ``None`` renormalises
        empirically with :func:`empirical_u0` (an approximation for small or selected tables).
    min_count
        Minimum stars per bin of the empirical normalisation.

    Returns
    -------
    ruwe, method
        RUWE per star (NaN where UWE or u0 is undefined) and ``"u0_table"`` or ``"empirical"``.
    """
    uwe = unit_weight_error(chi2_al, n_good_obs_al)
    if u0_table is None:
        return uwe / empirical_u0(uwe, g_mag, bp_rp, min_count=min_count), "empirical"
    table = u0_table if isinstance(u0_table, U0Table) else read_u0_table(u0_table)
    u0 = table(g_mag, bp_rp)
    lacking = np.isfinite(uwe) & ~np.isfinite(u0)
    if lacking.any():
        warnings.warn(
            f"{int(lacking.sum())} star(s) have no u0 in the given table (no BP−RP colour and no G-only "
            "table given); their RUWE is NaN",
            stacklevel=2,
        )
    return uwe / u0, "u0_table"


def normalise_gaia_columns(
    raw: pd.DataFrame,
    *,
    source: str = "<table>",
    units: Mapping[str, str] | None = None,
    u0_table: U0Table | str | os.PathLike | Sequence[str | os.PathLike] | None = None,
    u0_min_count: int = U0_MIN_COUNT,
) -> pd.DataFrame:
    """Map a parsed Gaia table onto :data:`CANONICAL_COLUMNS` (see the module docstring).

    Parameters
    ----------
    raw
        Columns as read from the file.
    source
        Name of the file, used in every error message.
    units
        Declared unit per column name of ``raw`` (from ECSV/VOTable/FITS/TAP JSON); canonical columns in
        other convertible units are converted, in incompatible units rejected.
    u0_table, u0_min_count
        DR2 RUWE normalisation, see :func:`ruwe_from_chi2`.

    Returns
    -------
    pandas.DataFrame
        Canonical columns (``source_id`` int64, the rest float64 with NaN for missing values), then every
        column of ``raw`` not used for a canonical one, under its original name and unchanged. ``attrs``
        records ``source``, and ``ruwe_method`` (``column``, ``u0_table`` or ``empirical``).

    Raises
    ------
    GaiaTableError
        A required column is missing (the message lists the columns found), a numeric column holds text,
        ``source_id`` is missing, not an integer or duplicated, or a column has an incompatible unit.
    """
    units = dict(units or {})
    index = _column_index(raw, source)
    missing: list[str] = []

    def has(name: str) -> bool:
        return name in index

    def column(name: str) -> np.ndarray:
        actual = index[name]
        unit = str(CANONICAL_UNITS.get(name, "dimensionless"))
        values = _to_float(raw[actual], actual, source, unit)
        return values * _unit_factor(units.get(actual), name, source)

    for name in ("source_id", "ra", "dec", "parallax", "parallax_error", "phot_g_mean_mag"):
        if not has(name):
            missing.append(name)
    if not (has("phot_bp_mean_mag") and has("phot_rp_mean_mag")) and not (has("bp_rp") and has("bp_g")):
        missing.append("phot_bp_mean_mag and phot_rp_mean_mag (or bp_rp and bp_g)")
    for band in BANDS:
        if not (
            has(f"phot_{band}_mean_mag_error")
            or has(f"phot_{band}_mean_flux_over_error")
            or (has(f"phot_{band}_mean_flux") and has(f"phot_{band}_mean_flux_error"))
        ):
            missing.append(f"phot_{band}_mean_flux_over_error (or phot_{band}_mean_flux and _flux_error)")
    if not has("ruwe") and not (has("astrometric_chi2_al") and has("astrometric_n_good_obs_al")):
        missing.append("ruwe (DR3) or astrometric_chi2_al and astrometric_n_good_obs_al (DR2)")
    if missing:
        raise GaiaTableError(
            f"{source}: missing required column(s): {'; '.join(repr(m) for m in missing)} "
            f"(Gaia DR2/DR3 names, any case); found columns: {', '.join(map(str, raw.columns))}"
        )

    out: dict[str, np.ndarray] = {}
    sid = _to_source_id(raw[index["source_id"]], index["source_id"], source)
    dup = pd.Series(sid).duplicated(keep=False).to_numpy()
    if dup.any():
        values = sorted(set(sid[dup].tolist()))
        raise GaiaTableError(
            f"{source}: column {index['source_id']!r} must be unique; {len(values)} source_id(s) occur more "
            f"than once, e.g. {', '.join(map(str, values[:5]))}"
        )
    out["source_id"] = sid
    for name in ("ra", "dec", "parallax", "parallax_error", "phot_g_mean_mag"):
        out[name] = column(name)
    g = out["phot_g_mean_mag"]
    if has("phot_bp_mean_mag") and has("phot_rp_mean_mag"):
        bp, rp = column("phot_bp_mean_mag"), column("phot_rp_mean_mag")
    else:
        # G and the two colours fix BP and RP: BP = G + (BP − G), RP = BP − (BP − RP).
        bp = g + column("bp_g")
        rp = bp - column("bp_rp")
    out["phot_bp_mean_mag"], out["phot_rp_mean_mag"] = bp, rp
    for name, derived in (("bp_rp", bp - rp), ("bp_g", bp - g)):
        # The archive's own colour where it has one; the magnitude difference fills the gaps (and is the
        # whole column when the file has none).
        given = column(name) if has(name) else np.full(len(raw), np.nan)
        out[name] = np.where(np.isfinite(given), given, derived)
    for band in BANDS:
        name = f"phot_{band}_mean_mag_error"
        if has(name):
            out[name] = column(name)
            continue
        if has(f"phot_{band}_mean_flux_over_error"):
            snr = column(f"phot_{band}_mean_flux_over_error")
        else:
            with np.errstate(divide="ignore", invalid="ignore"):
                snr = column(f"phot_{band}_mean_flux") / column(f"phot_{band}_mean_flux_error")
        out[name] = magnitude_error(snr, ZERO_POINT_ERROR_MAG[band])
    if has("ruwe"):
        out["ruwe"], method = column("ruwe"), "column"
    else:
        out["ruwe"], method = ruwe_from_chi2(
            column("astrometric_chi2_al"),
            column("astrometric_n_good_obs_al"),
            g,
            out["bp_rp"],
            u0_table=u0_table,
            min_count=u0_min_count,
        )

    frame = pd.DataFrame({name: out[name] for name in CANONICAL_COLUMNS})
    frame["source_id"] = frame["source_id"].astype(np.int64)
    used = {index[name] for name in CANONICAL_COLUMNS if name in index}
    extras = [c for c in raw.columns if c not in used]
    if extras:
        frame = pd.concat([frame, raw[extras].reset_index(drop=True)], axis=1)
    frame.attrs.update({"source": source, "ruwe_method": method})
    return frame


def read_gaia_table(
    path: str | os.PathLike,
    *,
    u0_table: U0Table | str | os.PathLike | Sequence[str | os.PathLike] | None = None,
    u0_min_count: int = U0_MIN_COUNT,
) -> pd.DataFrame:
    """Read a Gaia archive table (CSV, ECSV, VOTable, FITS, Parquet or TAP JSON) into canonical columns.

    Parameters
    ----------
    path
        The file; the format comes from the suffix: ``.csv``/``.csv.gz``, ``.ecsv``, ``.vot``/``.xml``/
        ``.vot.gz``, ``.fits``/``.fit``, ``.parquet``, ``.json`` (TAP JSON). Gzip compression is detected
        from the content.
    u0_table
        For DR2 tables without a ``ruwe`` column: path(s) to ESA's official RUWE normalisation
        (DR2_RUWE_V1; CSV with ``g_mag, bp_rp, u0``, optionally the G-only ``g_mag, u0`` table too), see
        :func:`read_u0_table`. Without it RUWE is renormalised empirically on this table
        (:func:`empirical_u0`): Lindegren et al.'s definition, only meaningful for large, unselected
        tables and an approximation for small or selected ones.
    u0_min_count
        Minimum number of stars per bin of the empirical normalisation.

    Returns
    -------
    pandas.DataFrame
        One row per row of the file, in file order: ``source_id`` (int64); ``ra``, ``dec`` (deg);
        ``parallax``, ``parallax_error`` (mas); G/BP/RP magnitudes, ``bp_rp``, ``bp_g`` and the magnitude
        errors (mag; σ_m = 2.5/ln10 / (F/σ_F) ⊕ zero-point error of Evans et al. 2018: G 0.0018, BP 0.0014,
        RP 0.0019 mag); ``ruwe``; then the file's other columns unchanged. Missing values are NaN.

    Raises
    ------
    GaiaTableError
        (a ``ValueError``) naming the file, the column and what was expected: unknown suffix, unreadable
        or truncated file, missing required column (with the list of columns found), non-numeric values
        in a numeric column, missing or duplicated ``source_id``.

    Notes
    -----
    A text file (CSV, ECSV) cut exactly at a line boundary looks like a shorter complete file: no text
    format records its row count. The fetchers guard against that by writing atomically and checking
    lengths and checksums; files from elsewhere are trusted to be whole.
    """
    raw = read_raw_table(path)
    frame = normalise_gaia_columns(
        raw.frame, source=str(path), units=raw.units, u0_table=u0_table, u0_min_count=u0_min_count
    )
    frame.attrs["format"] = raw.format
    return frame


def concat_gaia_tables(tables: Sequence[pd.DataFrame], sources: Sequence[str]) -> pd.DataFrame:
    """Stack canonical tables from several files into one, keeping the columns they all share.

    Raises :class:`GaiaTableError` naming the files if a ``source_id`` appears twice (the same star in
    two tables would get two catalog rows) or a row has no position (it cannot be given a partition).
    """
    if not tables:
        raise GaiaTableError("no Gaia tables given")
    shared = [c for c in tables[0].columns if all(c in t.columns for t in tables[1:])]
    frame = pd.concat([t[shared] for t in tables], ignore_index=True)
    origin = np.concatenate([np.full(len(t), i) for i, t in enumerate(tables)])
    dup = frame["source_id"].duplicated(keep=False).to_numpy()
    if dup.any():
        files = sorted({str(sources[i]) for i in origin[dup]})
        example = int(frame.loc[dup, "source_id"].iloc[0])
        raise GaiaTableError(
            f"source_id {example} and {int(dup.sum()) - 1} other row(s) appear more than once across "
            f"{', '.join(files)}: each star must be listed once"
        )
    no_pos = ~(
        np.isfinite(frame["ra"].to_numpy(dtype=float)) & np.isfinite(frame["dec"].to_numpy(dtype=float))
    )
    if no_pos.any():
        files = sorted({str(sources[i]) for i in origin[no_pos]})
        raise GaiaTableError(
            f"{int(no_pos.sum())} row(s) in {', '.join(files)} have no ra/dec (column 'ra'/'dec' must be "
            "finite degrees to place a star in a HEALPix partition)"
        )
    return frame
