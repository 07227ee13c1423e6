"""Gaia DR3 XP continuous spectra (BP/RP basis-function coefficients) from any archive format, one reader.

The scatter VAE of paper 001 (Laroche & Speagle 2023; spec ``xp-svae-and-cyclestarnet.md`` §A1.1) takes the
55 BP and 55 RP coefficients of Gaia DR3 ``xp_continuous_mean_spectrum``, their errors and the source's
``phot_g_mean_flux``. The archive hands the same rows out in several encodings (spec §A4.1, §D2):

=====================================  ===============================================================
format                                 array encoding
=====================================  ===============================================================
archive CSV (incl. datalink zips)      ``"(v1, v2, …)"`` strings; a missing band is an empty field
ECSV (jobs; bulk ``*.csv.gz`` files)   ``"[v1,v2,…]"`` strings after a ``# %ECSV`` YAML header
VOTable (binary, plain), FITS          native variable-length arrays, masked or empty for a missing band
Parquet (the project's own layout)     ``list<float64>`` / ``list<float32>`` columns, null for a missing band
=====================================  ===============================================================

:func:`read_xp_continuous` reads every one of them (and an astropy Table or pandas DataFrame already in
memory) into an :class:`XpTable`: fixed-shape float64 arrays, BP in columns 0–54 and RP in 55–109, with NaN
where a band is missing. Nothing is dropped (DESIGN.md, "Conventions"): every input row gives one output row,
and what is wrong with it is a bit in :attr:`XpTable.flags` (:data:`FLAGS`). A row that cannot be a Gaia XP
spectrum at all (an array of 54 values, a number that does not parse) is a format error instead: a one-line
:class:`XpFormatError` naming the file, the row, the column and what was expected.

Array strings are parsed in bulk: the cells of a column are joined into one string, split and cast to
float64 by Arrow in one call each, which is what makes the 1,485-value correlation strings affordable (spec §A4.1);
correlations are only parsed when asked for (``with_correlations=True``), since training ignores them
(spec §A1.1 point 3).

The packed correlations are unpacked exactly as GaiaXPy 2.1.5's ``array_to_symmetric_matrix`` does (the
reference implementation of the DR3 convention, spec §A1.1 point 4 and §D2): value ``k`` of the 1,485 goes to
``(i, j) = numpy.tril_indices(55, -1)[k]`` and to its mirror ``(j, i)``, the diagonal is 1. That is the lower
triangle taken row by row, which is the same sequence as the upper triangle taken column by column. A
1,540-value array (AVRO products, diagonal included) uses ``tril_indices(55, 0)``.
"""

from __future__ import annotations

import gzip
import io
import os
import warnings
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from astropy.io import votable
from astropy.table import Table
from astropy.utils.exceptions import AstropyWarning

__all__ = [
    "BANDS",
    "FLAGS",
    "G_ZERO_POINT",
    "N_COEFFICIENTS",
    "N_CORRELATIONS",
    "XpFormatError",
    "XpTable",
    "concat_xp_tables",
    "flag_names",
    "join_g_flux",
    "missing_xp_rows",
    "read_xp_continuous",
    "xp_table_to_arrow",
]

#: Basis functions per band in Gaia DR3 (De Angeli et al. 2023; Carrasco et al. 2021).
N_COEFFICIENTS = 55
#: Packed off-diagonal correlations per band: 55 · 54 / 2.
N_CORRELATIONS = N_COEFFICIENTS * (N_COEFFICIENTS - 1) // 2
#: The two photometers, in the order of the coefficient blocks (BP 0–54, RP 55–109).
BANDS = ("bp", "rp")
#: Gaia (E)DR3 G-band zero point in the Vega system, mag (Riello et al. 2021, Table 3): G = −2.5 log10 F + ZP
#: with F in e-/s, used to recover ``phot_g_mean_flux`` from ``phot_g_mean_mag`` (spec §D2).
G_ZERO_POINT = 25.6874

#: Quality bits of :attr:`XpTable.flags`. A row is always kept; these say what is wrong with it.
FLAGS: dict[str, int] = {
    "missing_bp": 1 << 0,  # no BP spectrum (empty/masked/null arrays): BP block NaN
    "missing_rp": 1 << 1,  # no RP spectrum: RP block NaN
    "missing_g_flux": 1 << 2,  # neither phot_g_mean_flux nor phot_g_mean_mag: g_flux NaN
    "nonpositive_error": 1 << 3,  # a coefficient error of a present band is ≤ 0 or not finite
    "nonfinite_coefficient": 1 << 4,  # a coefficient of a present band is NaN/inf (a null inside the array)
    "n_parameters_not_55": 1 << 5,  # *_n_parameters of a present band is not 55
    "g_flux_from_mag": 1 << 6,  # g_flux computed from phot_g_mean_mag with G_ZERO_POINT
    "missing_from_archive": 1 << 7,  # requested from the archive, no XP spectrum came back (fetch)
}

#: Bits that cannot be re-derived from the arrays, so the Parquet layout stores them (column ``flags``).
_STORED_FLAGS = FLAGS["missing_from_archive"]

_REQUIRED = (
    "source_id",
    "bp_coefficients",
    "bp_coefficient_errors",
    "rp_coefficients",
    "rp_coefficient_errors",
)
_CORRELATION_COLUMNS = ("bp_coefficient_correlations", "rp_coefficient_correlations")
_ECSV_SIGNATURE = b"# %ECSV"
_GZIP_MAGIC = b"\x1f\x8b"
_BRACKETS = str.maketrans({"(": " ", ")": " ", "[": " ", "]": " "})


class XpFormatError(ValueError):
    """An XP table that is not what the Gaia archive writes; the message names file, row, column, expectation."""


@dataclass
class XpTable:
    """Gaia XP continuous spectra as fixed-shape arrays, one row per input row.

    Attributes
    ----------
    source_id
        (n,) int64 Gaia DR3 source_id.
    coefficients
        (n, 110) float64: BP coefficients in columns 0–54, RP in 55–109; NaN where a band is missing.
    errors
        (n, 110) float64 coefficient errors, same layout.
    g_flux
        (n,) float64 G-band mean flux in e-/s (``phot_g_mean_flux``, else from ``phot_g_mean_mag``), the
        normaliser of spec §A1.1 point 1; NaN when neither is known.
    g_flux_source
        (n,) str: ``"phot_g_mean_flux"``, ``"phot_g_mean_mag"`` or ``"missing"``.
    standard_deviation
        (n, 2) float64 ``bp_standard_deviation``, ``rp_standard_deviation`` (NaN if absent): GaiaXPy divides
        the errors by it when it builds covariances, the authors of paper 001 do not (spec §A1.1 point 3).
    flags
        (n,) int64 bitmask of :data:`FLAGS`; :func:`flag_names` spells it out.
    correlations
        (n, 2, 55, 55) float64 full symmetric correlation matrices (unit diagonal; NaN for a missing band),
        or None when not read.
    n_parameters
        (n, 2) float64 ``bp_n_parameters``, ``rp_n_parameters`` (NaN where missing or absent).
    g_mag
        (n,) float64 ``phot_g_mean_mag`` (NaN if absent).
    path
        The file read (None for an in-memory table).
    """

    source_id: np.ndarray
    coefficients: np.ndarray
    errors: np.ndarray
    g_flux: np.ndarray
    g_flux_source: np.ndarray
    standard_deviation: np.ndarray
    flags: np.ndarray
    correlations: np.ndarray | None = None
    n_parameters: np.ndarray = field(default_factory=lambda: np.empty((0, 2)))
    g_mag: np.ndarray = field(default_factory=lambda: np.empty(0))
    path: str | None = None

    def __post_init__(self) -> None:
        n = len(self.source_id)
        if self.n_parameters.shape != (n, 2):
            self.n_parameters = np.full((n, 2), np.nan)
        if self.g_mag.shape != (n,):
            self.g_mag = np.full(n, np.nan)

    def __len__(self) -> int:
        return len(self.source_id)

    def take(self, index: Sequence[int] | np.ndarray) -> XpTable:
        """The rows ``index`` (integer positions or a boolean mask), in that order."""
        index = np.asarray(index)
        return replace(
            self,
            source_id=self.source_id[index],
            coefficients=self.coefficients[index],
            errors=self.errors[index],
            g_flux=self.g_flux[index],
            g_flux_source=self.g_flux_source[index],
            standard_deviation=self.standard_deviation[index],
            flags=self.flags[index],
            correlations=None if self.correlations is None else self.correlations[index],
            n_parameters=self.n_parameters[index],
            g_mag=self.g_mag[index],
        )

    def has(self, name: str) -> np.ndarray:
        """(n,) bool: rows with flag ``name`` set."""
        return (self.flags & FLAGS[name]) != 0

    def to_frame(self) -> pd.DataFrame:
        """The table in the Parquet layout (:func:`xp_table_to_arrow`) as a DataFrame of array cells."""
        return xp_table_to_arrow(self).to_pandas()


def flag_names(flags: int | np.integer) -> list[str]:
    """Names of the :data:`FLAGS` bits set in one ``flags`` value, in bit order."""
    value = int(flags)
    unknown = value & ~sum(FLAGS.values())
    if unknown:
        raise ValueError(f"flags {value}: bits {unknown:#x} are not XP flags")
    return [name for name, bit in FLAGS.items() if value & bit]


# ------------------------------------------------------------------------------------------ inputs
class _Source:
    """Columns of one input table, looked up case-insensitively, with a label for messages."""

    def __init__(self, columns: Mapping[str, Any], n_rows: int, label: str) -> None:
        self.columns = {name.lower(): values for name, values in columns.items()}
        self.n_rows = n_rows
        self.label = label

    def __contains__(self, name: str) -> bool:
        return name in self.columns

    def get(self, name: str) -> Any:
        return self.columns[name]


def _from_astropy(table: Table, label: str) -> _Source:
    return _Source({name: table[name] for name in table.colnames}, len(table), label)


def _from_frame(frame: pd.DataFrame, label: str) -> _Source:
    return _Source({str(name): frame[name] for name in frame.columns}, len(frame), label)


def _from_arrow(table: pa.Table, label: str) -> _Source:
    return _Source({name: table.column(name) for name in table.column_names}, table.num_rows, label)


def _read_text(data: bytes, label: str) -> _Source:
    """Archive CSV or ECSV bytes: every column as read by pandas, array columns kept as strings."""
    if data.startswith(_GZIP_MAGIC):
        data = gzip.decompress(data)
    # ECSV: the YAML header is comment lines; the first line without '#' holds the column names.
    skip = 0
    if data.startswith(_ECSV_SIGNATURE):
        start = 0
        while data.startswith(b"#", start):
            start = data.index(b"\n", start) + 1
            skip += 1
    array_like = {
        f"{band}_{kind}": str
        for band in BANDS
        for kind in ("coefficients", "coefficient_errors", "coefficient_correlations")
    }
    try:
        # Array columns stay strings (an empty cell, a missing band, becomes NaN); the rest is inferred.
        frame = pd.read_csv(io.BytesIO(data), skiprows=skip, dtype=array_like)
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise XpFormatError(f"{label}: not a readable CSV/ECSV table ({' '.join(str(exc).split())})") from exc
    return _from_frame(frame, label)


def _read_votable(data: bytes | str, label: str) -> _Source:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AstropyWarning)
        source = io.BytesIO(data) if isinstance(data, bytes) else data
        tables = list(votable.parse(source).iter_tables())
    if not tables:
        raise XpFormatError(f"{label}: the VOTable holds no TABLE")
    return _from_astropy(tables[0].to_table(use_names_over_ids=True), label)


def _read_fits(data: bytes | str, label: str) -> _Source:
    source = io.BytesIO(data) if isinstance(data, bytes) else data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AstropyWarning)
        return _from_astropy(Table.read(source, format="fits"), label)


def _kind(name: str, head: bytes) -> str:
    lowered = name.lower()
    if lowered.endswith(".zip") or head.startswith(b"PK\x03\x04"):
        return "zip"
    if lowered.endswith((".parquet", ".pq")) or head.startswith(b"PAR1"):
        return "parquet"
    if lowered.endswith((".fits", ".fit", ".fits.gz", ".fit.gz")) or head.startswith(b"SIMPLE  ="):
        return "fits"
    if lowered.endswith((".xml", ".vot", ".votable", ".xml.gz", ".vot.gz")) or head.lstrip().startswith(
        b"<?xml"
    ):
        return "votable"
    if lowered.endswith((".csv", ".ecsv", ".csv.gz", ".ecsv.gz", ".txt")):
        return "text"
    raise XpFormatError(
        f"{name}: unknown XP table format; expected .csv, .ecsv (optionally .gz), .xml/.vot, .fits, .parquet "
        "or a datalink .zip"
    )


def _read_bytes(data: bytes, name: str, label: str) -> list[_Source]:
    head = gzip.decompress(data)[:16] if data.startswith(_GZIP_MAGIC) else data[:16]
    kind = _kind(name, head)
    if kind == "zip":
        return _read_zip(data, label)
    if kind == "parquet":
        return [_from_arrow(pq.read_table(io.BytesIO(data)), label)]
    if data.startswith(_GZIP_MAGIC) and kind in ("fits", "votable"):
        data = gzip.decompress(data)
    if kind == "fits":
        return [_read_fits(data, label)]
    if kind == "votable":
        return [_read_votable(data, label)]
    return [_read_text(data, label)]


def _read_zip(data: bytes, label: str) -> list[_Source]:
    # Datalink bundles hold one file per product (XP_CONTINUOUS-Gaia DR3 <id>.csv with INDIVIDUAL, one
    # XP_CONTINUOUS_RAW.csv with RAW, next to XP_SAMPLED, MCMC_* …): every XP_CONTINUOUS member is read.
    with zipfile.ZipFile(io.BytesIO(data)) as bundle:
        names = sorted(n for n in bundle.namelist() if Path(n).name.upper().startswith("XP_CONTINUOUS"))
        if not names:
            raise XpFormatError(
                f"{label}: the zip holds no XP_CONTINUOUS file; members: {', '.join(bundle.namelist()) or 'none'}"
            )
        sources: list[_Source] = []
        for member in names:
            sources += _read_bytes(bundle.read(member), member, f"{label}:{member}")
    return sources


# ------------------------------------------------------------------------------------------ parsing
def _row_context(src: _Source, source_ids: np.ndarray | None, row: int) -> str:
    sid = f" (source_id {source_ids[row]})" if source_ids is not None else ""
    return f"{src.label} row {row + 1}{sid}"


def _is_missing_cell(value: Any) -> bool:
    if value is None or value is np.ma.masked:
        return True
    if isinstance(value, (float, np.floating)):
        return bool(np.isnan(value))
    if isinstance(value, str):
        return value.strip() in ("", "null", "NULL", "--")
    return False


def _string_cells(cells: list[Any]) -> tuple[np.ndarray, np.ndarray] | None:
    """Lengths (−1 for a missing cell) and all values of a column of array strings, or None if not strings."""
    lengths = np.full(len(cells), -1, dtype=np.int64)
    present: list[str] = []
    for i, cell in enumerate(cells):
        if _is_missing_cell(cell):
            continue
        if not isinstance(cell, str):
            return None
        inner = cell.translate(_BRACKETS).strip()
        if not inner:
            continue  # "()" or "[]": an empty array, i.e. a missing band
        lengths[i] = inner.count(",") + 1
        present.append(inner)
    if not present:
        return lengths, np.empty(0)
    joined = ",".join(present).replace("null", "nan")
    # One split and one string→float64 cast for the whole column (Arrow's parser rounds correctly, as
    # float() does, and is ~3× faster than numpy.fromstring); a token that is not a number fails the cast,
    # and the caller then finds the row.
    try:
        tokens = pc.split_pattern(pa.array([joined], type=pa.large_string()), ",").flatten()
        values = pc.cast(pc.utf8_trim_whitespace(tokens), pa.float64()).to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        values = np.empty(0)
    return lengths, values


def _object_cells(cells: list[Any]) -> tuple[np.ndarray, np.ndarray]:
    lengths = np.full(len(cells), -1, dtype=np.int64)
    parts: list[np.ndarray] = []
    for i, cell in enumerate(cells):
        if _is_missing_cell(cell):
            continue
        arr = np.ma.filled(np.ma.asarray(cell, dtype=np.float64), np.nan)
        if arr.ndim == 2 and arr.shape[0] == arr.shape[1]:
            # A correlation matrix already unpacked (GaiaXPy's parsed frames): repack its lower triangle.
            arr = arr[np.tril_indices(arr.shape[0], -1)]
        arr = arr.ravel()
        if arr.size == 0:
            continue
        lengths[i] = arr.size
        parts.append(arr)
    return lengths, (np.concatenate(parts) if parts else np.empty(0))


def _bad_token(cell: str) -> str | None:
    """The first token of an array string that is not a number (``None`` if all are)."""
    for token in cell.translate(_BRACKETS).split(","):
        token = token.strip()
        if token.lower() == "null":
            continue
        try:
            float(token)
        except ValueError:
            return token
    return None


def _array_column(
    src: _Source, name: str, expected: tuple[int, ...], source_ids: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """A column of per-row arrays as (n, width) float64 (NaN rows where missing) and the (n,) presence mask.

    ``expected`` lists the allowed lengths (the first is the output width); any other length is a format
    error naming the row.
    """
    values = src.get(name)
    n = src.n_rows
    width = expected[0]
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    parsed: tuple[np.ndarray, np.ndarray] | None
    if isinstance(values, pa.Array) and (
        pa.types.is_list(values.type) or pa.types.is_large_list(values.type)
    ):
        # Parquet list columns: lengths from the offsets, values flat (null list or [] = missing band).
        lengths = values.value_lengths().fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
        lengths[lengths == 0] = -1
        flat = values.flatten().to_numpy(zero_copy_only=False).astype(np.float64)
        parsed = (lengths, flat)
    else:
        data = np.ma.asarray(values) if not isinstance(values, pd.Series) else values.to_numpy(dtype=object)
        if data.ndim == 2 and data.dtype.kind in "fiu":
            # A fixed-width numeric array column (e.g. an astropy Table built in memory).
            filled = np.ma.filled(data.astype(np.float64), np.nan)
            row_mask = np.ma.getmaskarray(data).all(axis=1)
            lengths = np.where(row_mask, -1, data.shape[1]).astype(np.int64)
            parsed = (lengths, filled[~row_mask].ravel())
        else:
            mask = np.ma.getmaskarray(data) if data.ndim == 1 else np.zeros(n, bool)
            cells = [None if m else v for v, m in zip(np.ma.getdata(data).tolist(), mask, strict=True)]
            parsed = _string_cells(cells)
            if parsed is None:
                parsed = _object_cells(cells)
            elif parsed[1].size != parsed[0][parsed[0] > 0].sum():
                # Some token is not a number: find the row and say what it was.
                for i, cell in enumerate(cells):
                    if isinstance(cell, str) and (token := _bad_token(cell)) is not None:
                        raise XpFormatError(
                            f"{_row_context(src, source_ids, i)}: {name} holds {token[:40]!r}, expected numbers"
                        )
                raise XpFormatError(f"{src.label}: {name}: array strings could not be parsed as numbers")
    lengths, flat = parsed
    present = lengths > 0
    bad = np.flatnonzero(present & ~np.isin(lengths, expected))
    if bad.size:
        i = int(bad[0])
        wanted = " or ".join(str(e) for e in sorted(expected))
        raise XpFormatError(
            f"{_row_context(src, source_ids, i)}: {name} has {lengths[i]} values, expected {wanted}"
        )
    out = np.full((n, width), np.nan)
    if present.any():
        if np.all(lengths[present] == width):
            out[present] = flat.reshape(-1, width)
        else:  # mixed lengths (correlations with and without diagonal): row by row
            offsets = np.concatenate([[0], np.cumsum(np.where(present, lengths, 0))])
            for i in np.flatnonzero(present):
                out[i, : lengths[i]] = flat[offsets[i] : offsets[i + 1]]
    return out, present


def _scalar_column(src: _Source, name: str) -> np.ndarray:
    """A numeric column as float64 with NaN for missing values (empty cells, masks, nulls); NaN if absent."""
    if name not in src:
        return np.full(src.n_rows, np.nan)
    values = src.get(name)
    if isinstance(values, (pa.ChunkedArray, pa.Array)):
        return np.asarray(values.to_pandas(), dtype=np.float64)  # nulls become NaN
    if isinstance(values, pd.Series):
        return pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    data = np.ma.asarray(values)
    try:
        return np.ma.filled(data.astype(np.float64), np.nan)
    except (TypeError, ValueError):
        return pd.to_numeric(pd.Series(np.ma.filled(data.astype(object), np.nan)), errors="coerce").to_numpy(
            dtype=np.float64, na_value=np.nan
        )


def _source_ids(src: _Source) -> np.ndarray:
    values = src.get("source_id")
    if isinstance(values, (pa.ChunkedArray, pa.Array)):
        values = values.to_pandas()
    if isinstance(values, pd.Series):
        numeric = pd.to_numeric(values, errors="coerce")
        missing = numeric.isna().to_numpy()
        data = numeric.fillna(0).to_numpy()
    else:
        masked = np.ma.asarray(values)
        missing = np.ma.getmaskarray(masked)
        data = np.ma.getdata(masked)
    if missing.any():
        i = int(np.flatnonzero(missing)[0])
        raise XpFormatError(f"{src.label} row {i + 1}: source_id is empty, expected a Gaia source_id")
    try:
        ids = np.asarray(data).astype(np.int64)
    except (TypeError, ValueError) as exc:
        raise XpFormatError(f"{src.label}: source_id is not an integer column ({exc})") from exc
    if np.asarray(data).dtype.kind == "f" and not np.array_equal(ids, data):
        raise XpFormatError(f"{src.label}: source_id holds non-integer values, expected Gaia source_ids")
    return ids


def _unpack_correlations(packed: np.ndarray, present: np.ndarray) -> np.ndarray:
    """(n, 1485 or 1540) packed values → (n, 55, 55) symmetric matrices, GaiaXPy's index order.

    Value k of a 1,485-value row goes to ``numpy.tril_indices(55, -1)[k]`` and its mirror, the diagonal is 1
    (GaiaXPy 2.1.5 ``array_to_symmetric_matrix``); a 1,540-value row (diagonal included, AVRO) uses
    ``tril_indices(55, 0)``. Rows not ``present`` are NaN.
    """
    n = len(packed)
    out = np.full((n, N_COEFFICIENTS, N_COEFFICIENTS), np.nan)
    if packed.shape[1] > N_CORRELATIONS:
        with_diagonal = ~np.isnan(packed[:, N_CORRELATIONS:]).all(axis=1)
    else:
        with_diagonal = np.zeros(n, bool)
    for diagonal_included in (False, True):
        index = np.flatnonzero(present & (with_diagonal == diagonal_included))
        if not index.size:
            continue
        rows, cols = np.tril_indices(N_COEFFICIENTS, 0 if diagonal_included else -1)
        values = packed[index, : len(rows)]
        block = np.broadcast_to(np.eye(N_COEFFICIENTS), (index.size, N_COEFFICIENTS, N_COEFFICIENTS)).copy()
        block[:, rows, cols] = values
        block[:, cols, rows] = values
        out[index] = block
    return out


def _table_from_source(src: _Source, *, with_correlations: bool | str, path: str | None) -> XpTable:
    if with_correlations == "if_present":
        with_correlations = all(c in src for c in _CORRELATION_COLUMNS)
    required = list(_REQUIRED) + (list(_CORRELATION_COLUMNS) if with_correlations else [])
    missing = [c for c in required if c not in src]
    if missing:
        found = ", ".join(src.columns) or "none"
        raise XpFormatError(f"{src.label}: missing column(s) {', '.join(missing)}; found: {found}")
    n = src.n_rows
    source_ids = _source_ids(src)
    coefficients = np.full((n, 2 * N_COEFFICIENTS), np.nan)
    errors = np.full((n, 2 * N_COEFFICIENTS), np.nan)
    flags = np.zeros(n, dtype=np.int64)
    if "flags" in src:
        stored = np.nan_to_num(_scalar_column(src, "flags")).astype(np.int64)
        flags |= stored & _STORED_FLAGS
    correlations = np.full((n, 2, N_COEFFICIENTS, N_COEFFICIENTS), np.nan) if with_correlations else None
    n_parameters = np.column_stack([_scalar_column(src, f"{band}_n_parameters") for band in BANDS])
    standard_deviation = np.column_stack(
        [_scalar_column(src, f"{band}_standard_deviation") for band in BANDS]
    )
    for b, band in enumerate(BANDS):
        block = slice(b * N_COEFFICIENTS, (b + 1) * N_COEFFICIENTS)
        coef, has_coef = _array_column(src, f"{band}_coefficients", (N_COEFFICIENTS,), source_ids)
        err, has_err = _array_column(src, f"{band}_coefficient_errors", (N_COEFFICIENTS,), source_ids)
        mismatch = np.flatnonzero(has_coef != has_err)
        if mismatch.size:
            i = int(mismatch[0])
            have, lack = (
                (f"{band}_coefficients", f"{band}_coefficient_errors")
                if has_coef[i]
                else (f"{band}_coefficient_errors", f"{band}_coefficients")
            )
            raise XpFormatError(
                f"{_row_context(src, source_ids, i)}: {lack} is empty but {have} has {N_COEFFICIENTS} values, "
                "expected both or neither"
            )
        coefficients[:, block] = coef
        errors[:, block] = err
        flags[~has_coef] |= FLAGS[f"missing_{band}"]
        with np.errstate(invalid="ignore"):
            flags[has_coef & ~np.isfinite(coef).all(axis=1)] |= FLAGS["nonfinite_coefficient"]
            flags[has_coef & ~(np.isfinite(err) & (err > 0)).all(axis=1)] |= FLAGS["nonpositive_error"]
        nparam = n_parameters[:, b]
        flags[has_coef & np.isfinite(nparam) & (nparam != N_COEFFICIENTS)] |= FLAGS["n_parameters_not_55"]
        n_parameters[~has_coef, b] = np.nan
        if correlations is not None:
            packed, has_corr = _array_column(
                src,
                f"{band}_coefficient_correlations",
                (N_CORRELATIONS + N_COEFFICIENTS, N_CORRELATIONS),
                source_ids,
            )
            lacking = np.flatnonzero(has_coef & ~has_corr)
            if lacking.size:
                i = int(lacking[0])
                raise XpFormatError(
                    f"{_row_context(src, source_ids, i)}: {band}_coefficient_correlations is empty but "
                    f"{band}_coefficients is not, expected {N_CORRELATIONS} values"
                )
            correlations[:, b] = _unpack_correlations(packed, has_corr & has_coef)
    g_flux_column = _scalar_column(src, "phot_g_mean_flux")
    g_mag = _scalar_column(src, "phot_g_mean_mag")
    g_flux, g_source, g_flags = _g_flux(g_flux_column, g_mag)
    return XpTable(
        source_id=source_ids,
        coefficients=coefficients,
        errors=errors,
        g_flux=g_flux,
        g_flux_source=g_source,
        standard_deviation=standard_deviation,
        flags=flags | g_flags,
        correlations=correlations,
        n_parameters=n_parameters,
        g_mag=g_mag,
        path=path,
    )


def _g_flux(flux: np.ndarray, mag: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """G flux (e-/s) from ``phot_g_mean_flux`` where usable, else from ``phot_g_mean_mag`` (spec §D2)."""
    with np.errstate(invalid="ignore"):
        use_flux = np.isfinite(flux) & (flux > 0)
    use_mag = ~use_flux & np.isfinite(mag)
    g = np.where(use_flux, flux, np.nan)
    g[use_mag] = 10.0 ** (-0.4 * (mag[use_mag] - G_ZERO_POINT))
    source = np.where(use_flux, "phot_g_mean_flux", np.where(use_mag, "phot_g_mean_mag", "missing")).astype(
        object
    )
    flags = np.where(use_mag, FLAGS["g_flux_from_mag"], 0) | np.where(
        use_flux | use_mag, 0, FLAGS["missing_g_flux"]
    )
    return g, source, flags.astype(np.int64)


# ------------------------------------------------------------------------------------------ public API
def read_xp_continuous(
    path_or_table: str | os.PathLike | Table | pd.DataFrame | pa.Table,
    *,
    with_correlations: bool | str = False,
) -> XpTable:
    """Read Gaia DR3 XP continuous spectra from any archive format into an :class:`XpTable`.

    Parameters
    ----------
    path_or_table
        A file — archive CSV or ECSV (``.csv``, ``.ecsv``; gzip'd bulk ``XpContinuousMeanSpectrum_*.csv.gz``
        files with a ``# %ECSV`` header), VOTable (``.xml``/``.vot``, binary or plain), FITS, Parquet in the
        project's layout (:func:`xp_table_to_arrow`), or a datalink ``.zip`` (every ``XP_CONTINUOUS*`` member
        is read, in name order) — or an astropy Table, pandas DataFrame or pyarrow Table in memory (e.g.
        what ``astroquery``'s ``load_data`` returns, or GaiaXPy's parsed frames). Column names are matched
        case-insensitively; extra columns are ignored.
    with_correlations
        Also parse and unpack the 1,485-value correlation arrays into (n, 2, 55, 55) matrices. Off by
        default: training discards off-diagonal terms (spec §A1.1 point 3) and they dominate parse time.
        ``"if_present"``: unpack them when the input has both correlation columns, without them otherwise.

    Returns
    -------
    XpTable
        One row per input row, in input order. ``phot_g_mean_flux`` is used when the input has it,
        otherwise ``phot_g_mean_mag`` is converted with :data:`G_ZERO_POINT` (flag ``g_flux_from_mag``);
        archive XP tables have neither (flag ``missing_g_flux``): join them with :func:`join_g_flux`.

    Raises
    ------
    XpFormatError
        One line naming the file, the row (1-based, header not counted; with its source_id) and the column:
        required columns absent (``source_id``, ``{bp,rp}_coefficients``, ``{bp,rp}_coefficient_errors``,
        and the correlations when asked for), an array of the wrong length (not 55, or not 1,485 for
        correlations), a value that is not a number, or errors missing where coefficients are present.
    FileNotFoundError
        If the path does not exist.
    """
    if isinstance(path_or_table, Table):
        sources = [_from_astropy(path_or_table, "astropy table")]
        path = None
    elif isinstance(path_or_table, pd.DataFrame):
        sources = [_from_frame(path_or_table, "data frame")]
        path = None
    elif isinstance(path_or_table, pa.Table):
        sources = [_from_arrow(path_or_table, "arrow table")]
        path = None
    else:
        p = Path(path_or_table)
        path = str(p)
        if p.suffix.lower() in (".parquet", ".pq") and not with_correlations:
            # The correlation columns are most of a Parquet file's bytes: columnar reading skips them.
            names = [n for n in pq.read_schema(p).names if n.lower() not in _CORRELATION_COLUMNS]
            sources = [_from_arrow(pq.read_table(p, columns=names), p.name)]
        else:
            sources = _read_bytes(p.read_bytes(), p.name, p.name)
    if with_correlations not in (True, False, "if_present"):
        raise ValueError(f"with_correlations must be True, False or 'if_present', not {with_correlations!r}")
    tables = [_table_from_source(src, with_correlations=with_correlations, path=path) for src in sources]
    return concat_xp_tables(tables) if len(tables) > 1 else tables[0]


def concat_xp_tables(tables: Sequence[XpTable]) -> XpTable:
    """Rows of several tables, in order; correlations are kept only if every table has them."""
    if not tables:
        raise ValueError("concat_xp_tables needs at least one table")
    with_corr = all(t.correlations is not None for t in tables)
    paths = {t.path for t in tables}
    return XpTable(
        source_id=np.concatenate([t.source_id for t in tables]),
        coefficients=np.concatenate([t.coefficients for t in tables]),
        errors=np.concatenate([t.errors for t in tables]),
        g_flux=np.concatenate([t.g_flux for t in tables]),
        g_flux_source=np.concatenate([t.g_flux_source for t in tables]),
        standard_deviation=np.concatenate([t.standard_deviation for t in tables]),
        flags=np.concatenate([t.flags for t in tables]),
        correlations=np.concatenate([t.correlations for t in tables]) if with_corr else None,  # type: ignore[misc]
        n_parameters=np.concatenate([t.n_parameters for t in tables]),
        g_mag=np.concatenate([t.g_mag for t in tables]),
        path=paths.pop() if len(paths) == 1 else None,
    )


def missing_xp_rows(source_ids: Sequence[int] | np.ndarray, *, with_correlations: bool = False) -> XpTable:
    """Rows for sources with no XP spectrum from the archive: all NaN, flags missing_bp, missing_rp,
    missing_g_flux and missing_from_archive (spec §A4.2 point 2: fewer rows than ids can come back)."""
    ids = np.asarray(source_ids, dtype=np.int64)
    n = len(ids)
    bits = FLAGS["missing_bp"] | FLAGS["missing_rp"] | FLAGS["missing_g_flux"] | FLAGS["missing_from_archive"]
    return XpTable(
        source_id=ids,
        coefficients=np.full((n, 2 * N_COEFFICIENTS), np.nan),
        errors=np.full((n, 2 * N_COEFFICIENTS), np.nan),
        g_flux=np.full(n, np.nan),
        g_flux_source=np.full(n, "missing", dtype=object),
        standard_deviation=np.full((n, 2), np.nan),
        flags=np.full(n, bits, dtype=np.int64),
        correlations=np.full((n, 2, N_COEFFICIENTS, N_COEFFICIENTS), np.nan) if with_correlations else None,
    )


def join_g_flux(
    table: XpTable,
    source_id: Sequence[int] | np.ndarray,
    phot_g_mean_flux: Sequence[float] | np.ndarray,
    phot_g_mean_mag: Sequence[float] | np.ndarray | None = None,
) -> XpTable:
    """A copy of ``table`` with G flux from ``gaia_source`` rows joined by source_id (spec §A1.1, §A4.2).

    Rows whose source_id appears get ``g_flux`` from ``phot_g_mean_flux`` (or, if that is not finite and
    positive, from ``phot_g_mean_mag``) and their G flags recomputed; other rows keep what they had.
    """
    ids = np.asarray(source_id, dtype=np.int64)
    flux = np.asarray(phot_g_mean_flux, dtype=np.float64)
    mag = (
        np.full(len(ids), np.nan)
        if phot_g_mean_mag is None
        else np.asarray(phot_g_mean_mag, dtype=np.float64)
    )
    if not (len(ids) == len(flux) == len(mag)):
        raise ValueError("source_id, phot_g_mean_flux and phot_g_mean_mag must have the same length")
    unique, first = np.unique(ids, return_index=True)
    if len(unique) != len(ids):
        raise ValueError("join_g_flux: source_id values repeat in the G-flux table")
    pos = np.searchsorted(unique, table.source_id)
    pos = np.clip(pos, 0, max(len(unique) - 1, 0))
    hit = (len(unique) > 0) & (unique[pos] == table.source_id) if len(unique) else np.zeros(len(table), bool)
    rows = first[pos[hit]]
    g, source, g_flags = _g_flux(flux[rows], mag[rows])
    out = replace(
        table,
        g_flux=table.g_flux.copy(),
        g_flux_source=table.g_flux_source.copy(),
        flags=table.flags.copy(),
        g_mag=table.g_mag.copy(),
    )
    g_bits = FLAGS["missing_g_flux"] | FLAGS["g_flux_from_mag"]
    out.g_flux[hit] = g
    out.g_flux_source[hit] = source
    out.g_mag[hit] = mag[rows]
    out.flags[hit] = (out.flags[hit] & ~g_bits) | g_flags
    return out


def xp_table_to_arrow(table: XpTable) -> pa.Table:
    """The project's Parquet layout of XP spectra, written by both the simulator and the fetchers.

    Columns: ``source_id`` int64; ``bp_coefficients``, ``rp_coefficients``, ``bp_coefficient_errors``,
    ``rp_coefficient_errors`` list<float64> of 55 (null for a missing band); ``bp_coefficient_correlations``,
    ``rp_coefficient_correlations`` list<float32> of 1,485 packed in GaiaXPy's order (null for a missing
    band or when the table has no correlations); ``bp_n_parameters``, ``rp_n_parameters`` int16 (null when
    missing); ``bp_standard_deviation``, ``rp_standard_deviation``, ``phot_g_mean_flux``,
    ``phot_g_mean_mag`` float64 (NaN when unknown; ``phot_g_mean_flux`` is written only where it was the
    source, so a flux derived from the magnitude is derived again on reading); ``flags`` int64 (the
    :data:`FLAGS` bits). :func:`read_xp_continuous` reads it back to an equal table.
    """
    n = len(table)
    present = np.column_stack([~table.has("missing_bp"), ~table.has("missing_rp")])
    columns: dict[str, pa.Array] = {"source_id": pa.array(table.source_id, type=pa.int64())}

    def lists(values: np.ndarray, keep: np.ndarray, width: int, dtype: pa.DataType) -> pa.Array:
        flat = pa.array(values[keep].ravel(), type=dtype)
        offsets = np.zeros(n + 1, dtype=np.int32)
        offsets[1:] = np.cumsum(np.where(keep, width, 0))
        mask = pa.array(~keep)
        return pa.ListArray.from_arrays(pa.array(offsets, type=pa.int32()), flat, mask=mask)

    for b, band in enumerate(BANDS):
        block = slice(b * N_COEFFICIENTS, (b + 1) * N_COEFFICIENTS)
        columns[f"{band}_coefficients"] = lists(
            table.coefficients[:, block], present[:, b], N_COEFFICIENTS, pa.float64()
        )
        columns[f"{band}_coefficient_errors"] = lists(
            table.errors[:, block], present[:, b], N_COEFFICIENTS, pa.float64()
        )
    rows, cols = np.tril_indices(N_COEFFICIENTS, -1)
    for b, band in enumerate(BANDS):
        if table.correlations is None:
            packed, keep = np.empty((n, N_CORRELATIONS)), np.zeros(n, bool)
        else:
            packed, keep = table.correlations[:, b, rows, cols], present[:, b]
        columns[f"{band}_coefficient_correlations"] = lists(packed, keep, N_CORRELATIONS, pa.float32())
    for b, band in enumerate(BANDS):
        nparam = table.n_parameters[:, b]
        columns[f"{band}_n_parameters"] = pa.array(
            np.nan_to_num(nparam).astype(np.int16), type=pa.int16(), mask=~np.isfinite(nparam)
        )
    for b, band in enumerate(BANDS):
        columns[f"{band}_standard_deviation"] = pa.array(table.standard_deviation[:, b], type=pa.float64())
    from_flux = table.g_flux_source == "phot_g_mean_flux"
    columns["phot_g_mean_flux"] = pa.array(np.where(from_flux, table.g_flux, np.nan), type=pa.float64())
    columns["phot_g_mean_mag"] = pa.array(table.g_mag, type=pa.float64())
    columns["flags"] = pa.array(table.flags, type=pa.int64())
    return pa.table(columns)
