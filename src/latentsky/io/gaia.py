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
ruwe_empirical_u0                (bool)      true where a DR2 RUWE used the empirical u0 (no ESA table)
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
import os
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from astropy.io import votable
from astropy.table import Table
from astropy.utils.exceptions import AstropyWarning

from latentsky.io.gaia_columns import U0_MIN_COUNT, GaiaTableError, U0Table, normalise_gaia_columns

log = logging.getLogger(__name__)

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
        (DR2_RUWE_V1; CSV with ``g_mag, bp_rp, u0``, optionally the G-only ``g_mag, u0`` table too, or the
        directory holding both; :func:`latentsky.fetch.gaia_u0.fetch_dr2_u0_tables` downloads them), see
        :func:`read_u0_table`. Without it RUWE is renormalised empirically on this table
        (:func:`empirical_u0`): Lindegren et al.'s definition, only meaningful for large, unselected
        tables and an approximation for small or selected ones; those rows get ``ruwe_empirical_u0``.
    u0_min_count
        Minimum number of stars per bin of the empirical normalisation.

    Returns
    -------
    pandas.DataFrame
        One row per row of the file, in file order: ``source_id`` (int64); ``ra``, ``dec`` (deg);
        ``parallax``, ``parallax_error`` (mas); G/BP/RP magnitudes, ``bp_rp``, ``bp_g`` and the magnitude
        errors (mag; σ_m = 2.5/ln10 / (F/σ_F) ⊕ zero-point error of Evans et al. 2018: G 0.0018, BP 0.0014,
        RP 0.0019 mag); ``ruwe``; ``ruwe_empirical_u0`` (bool); then the file's other columns unchanged.
        Missing values are NaN.

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


def read_partitions(
    paths: Iterable[str | os.PathLike],
    columns: list[str] | None = None,
    sample_fraction: float | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """Concatenate Parquet partitions into one DataFrame (row order: partition, then file order).

    ``sample_fraction`` keeps a seeded random subset of each partition as it is read, so a job that needs
    only a sample of a large catalog (training) never holds all of it in memory.
    """
    paths = list(paths)
    if not paths:
        raise ValueError("no partitions given")
    frames = []
    for i, p in enumerate(paths):
        table = pq.read_table(p, columns=columns)
        if sample_fraction is not None and sample_fraction < 1.0:
            keep = np.random.default_rng([seed, i]).random(table.num_rows) < sample_fraction
            table = table.filter(keep)
        frames.append(table.to_pandas())
    return pd.concat(frames, ignore_index=True)
