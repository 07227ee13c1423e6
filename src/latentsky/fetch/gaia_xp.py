"""Fetch Gaia DR3 XP continuous spectra and their G fluxes, and read the APOGEE DR17 allStar labels.

Paper 001's training set is APOGEE DR17 stars with Gaia DR3 XP spectra, each normalised by its
``phot_g_mean_flux`` (spec ``xp-svae-and-cyclestarnet.md`` §A1.1, §A4.2). Three routes to the archive:

* :func:`fetch_xp_datalink` — astroquery's datalink ``load_data(ids, retrieval_type='XP_CONTINUOUS',
  data_structure='RAW')`` in chunks of at most :data:`DATALINK_MAX_IDS` ids (the server's limit; astroquery
  #2843, fornax-demo-notebooks #149). The archive may return fewer rows than ids (astroquery #2973), so
  every chunk is reconciled with its request: an id that came back without a spectrum becomes a row flagged
  ``missing_from_archive`` — nothing is dropped. ``format='csv'`` (default) or ``'votable'``; not ``'ecsv'``,
  which astroquery ≤ 0.4.11 does not parse (fixed only by astroquery PR #3500, spec §D2).
* :func:`fetch_g_flux` — ``phot_g_mean_flux`` is not in the XP tables (spec §A1.1): one asynchronous TAP
  job per chunk on ``gaiadr3.gaia_source``, through :func:`latentsky.fetch.gaia_archive.run_tap_job`.
* :func:`fetch_xp_bulk_partition` — the bulk ``XpContinuousMeanSpectrum_<hp8lo>-<hp8hi>.csv.gz`` files, named
  by level-8 HEALPix ranges like DR3 ``GaiaSource_*.csv.gz``; the index parsing, downloads and row
  filtering are :func:`latentsky.fetch.gaia_archive.fetch_bulk_partition`'s (spec §A4.2 point 5).

Everything is written in one Parquet layout (:func:`latentsky.io.gaia_xp.xp_table_to_arrow`), the one the
simulator writes, atomically and with a provenance record. Every network failure raises
:class:`~latentsky.fetch.http.FetchError` naming the URL.

:func:`fetch_apogee_allstar` downloads and :func:`read_apogee_allstar` reads the label side of the cross-match
(spec §A4.2 point 1); :func:`fetch_random_xp_source_ids` draws the unlabelled sample's ids by ``random_index``
(point 4), whose spectra then come through the datalink like the cross-match's.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import tempfile
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import requests
from astropy.io import fits

from latentsky.fetch.gaia_archive import (
    DEFAULT_TAP_URL,
    BulkFile,
    BulkPartition,
    fetch_bulk_partition,
    list_bulk_files,
    run_tap_job,
    tap_location,
)
from latentsky.fetch.http import FetchError, download, http_session
from latentsky.io.gaia_xp import (
    XpFormatError,
    XpTable,
    concat_xp_tables,
    join_g_flux,
    missing_xp_rows,
    read_xp_continuous,
    xp_table_to_arrow,
)
from latentsky.io.healpix import source_id_range
from latentsky.provenance.files import PARQUET_KEY, atomic_output, write_parquet

__all__ = [
    "ALLSTAR_DR17_URL",
    "APOGEE_ALLSTAR_COLUMNS",
    "DATALINK_MAX_IDS",
    "G_FLUX_COLUMNS",
    "XP_BULK_PREFIX",
    "XP_BULK_URL",
    "XpFetch",
    "fetch_apogee_allstar",
    "fetch_g_flux",
    "fetch_random_xp_source_ids",
    "fetch_xp_bulk_partition",
    "fetch_xp_datalink",
    "list_xp_bulk_files",
    "random_xp_ids_adql",
    "read_apogee_allstar",
    "select_xp_bulk_files",
    "xp_bulk_file_urls",
]

log = logging.getLogger(__name__)

#: Most source_ids the archive's datalink service accepts in one request.
DATALINK_MAX_IDS = 5000
#: Columns of gaia_source fetched for the G-flux normalisation (spec §A1.1 point 1, §D2).
G_FLUX_COLUMNS = ("source_id", "phot_g_mean_flux", "phot_g_mean_mag")
#: Directory of the Gaia DR3 bulk XP continuous files on the ESA CDN.
XP_BULK_URL = "https://cdn.gea.esac.esa.int/Gaia/gdr3/Spectroscopy/xp_continuous_mean_spectrum/"
#: File-name prefix of those files: ``XpContinuousMeanSpectrum_<hp8lo>-<hp8hi>.csv.gz``.
XP_BULK_PREFIX = "XpContinuousMeanSpectrum"
#: Level of the HEALPix ranges in DR3 bulk file names (Gaia DR3 documentation, Sec. 20.1).
_BULK_LEVEL = 8
_MAX_HP8 = 12 * 4**_BULK_LEVEL - 1
_DATALINK_FORMATS = ("csv", "votable", "votable_plain", "fits")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")


@dataclass(frozen=True)
class XpFetch:
    """What :func:`fetch_xp_datalink` wrote: the file, the counts, and the ids the archive had no XP for."""

    path: Path
    n_requested: int
    n_returned: int
    n_chunks: int
    missing_source_ids: tuple[int, ...]
    n_g_flux: int


# ---------------------------------------------------------------------------------------------- helpers
def _unique_ids(source_ids: Iterable[int] | np.ndarray) -> np.ndarray:
    ids = np.asarray(list(source_ids) if not isinstance(source_ids, np.ndarray) else source_ids)
    if ids.ndim != 1 or (ids.size and ids.dtype.kind not in "iu"):
        raise ValueError("source_ids must be a one-dimensional sequence of integer Gaia source_ids")
    ids = ids.astype(np.int64)
    if (ids <= 0).any():
        raise ValueError(f"source_ids must be positive; got {ids[ids <= 0][:3].tolist()}")
    _, first = np.unique(ids, return_index=True)
    if len(first) != len(ids):
        log.info("%d repeated source_ids requested; each is fetched once", len(ids) - len(first))
    return ids[np.sort(first)]


def _chunks(ids: np.ndarray, chunk_size: int) -> list[np.ndarray]:
    if not 1 <= chunk_size <= DATALINK_MAX_IDS:
        raise ValueError(
            f"chunk_size {chunk_size} must be between 1 and {DATALINK_MAX_IDS} (the archive's limit)"
        )
    return [ids[i : i + chunk_size] for i in range(0, len(ids), chunk_size)]


def _gaia(gaia: Any, url: str) -> Any:
    if gaia is not None:
        return gaia
    from astroquery.gaia import GaiaClass

    return GaiaClass(gaia_tap_server=url, gaia_data_server=url, show_server_messages=False)


def _data_location(gaia: Any, fallback: str) -> str:
    # astroquery keeps the data server in a second TapPlus, reachable only through name-mangled attributes;
    # this is for messages, so any failure falls back to the default URL.
    try:
        conn = gaia._GaiaClass__gaiadata._Tap__connHandler
        scheme = "https" if conn._TapConn__isHttps else "http"
        return f"{scheme}://{conn._TapConn__connHost}:{conn._TapConn__connPort}{conn._TapConn__dataContext}"
    except Exception:  # noqa: BLE001
        return fallback


@contextlib.contextmanager
def _working_directory(path: Path) -> Iterator[None]:
    # astroquery's load_data unpacks the datalink zip into a temporary folder of the *current* directory;
    # running it from a scratch folder next to the output keeps the caller's directory clean and works
    # where that directory is read-only (contextlib.chdir is Python ≥ 3.11 only).
    previous = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)


def _reconcile(got: XpTable | None, chunk: np.ndarray, where: str) -> tuple[XpTable, np.ndarray]:
    """The chunk's rows in request order; ids without a spectrum become ``missing_from_archive`` rows."""
    if got is None:
        return missing_xp_rows(chunk, with_correlations=True), chunk
    unique, counts = np.unique(got.source_id, return_counts=True)
    if (counts > 1).any():
        raise FetchError(f"{where}: the archive returned source_id {unique[counts > 1][0]} more than once")
    extra = np.setdiff1d(got.source_id, chunk)
    if extra.size:
        raise FetchError(
            f"{where}: the archive returned {extra.size} source_id(s) that were not requested, e.g. {extra[0]}"
        )
    missing = chunk[~np.isin(chunk, got.source_id)]
    rows = concat_xp_tables([got, missing_xp_rows(missing, with_correlations=True)]) if missing.size else got
    position = {int(s): i for i, s in enumerate(rows.source_id)}
    return rows.take([position[int(s)] for s in chunk]), missing


def _load_chunk(
    gaia: Any, where: str, chunk: np.ndarray, label: str, data_release: str, data_format: str
) -> XpTable | None:
    try:
        products = gaia.load_data(
            ids=[int(s) for s in chunk],
            retrieval_type="XP_CONTINUOUS",
            data_structure="RAW",
            format=data_format,
            data_release=data_release,
        )
    except Exception as exc:  # noqa: BLE001 - astroquery raises HTTPError, BadZipFile, OSError, bare Exception
        message = " ".join(str(exc).split())[:500]
        raise FetchError(
            f"{where}: XP_CONTINUOUS datalink request for {label} failed ({type(exc).__name__}: {message})"
        ) from exc
    tables = []
    for name in sorted(products):
        if not Path(name).name.upper().startswith("XP_CONTINUOUS"):
            continue
        for table in products[name]:
            if hasattr(table, "to_table"):  # a VOTable TableElement
                table = table.to_table(use_names_over_ids=True)
            try:
                parsed = read_xp_continuous(table, with_correlations=True)
            except XpFormatError as exc:
                raise FetchError(f"{where}: {label}: product {name} is not an XP table: {exc}") from exc
            tables.append(parsed)
    return concat_xp_tables(tables) if tables else None


# --------------------------------------------------------------------------------------------- datalink
def fetch_xp_datalink(
    source_ids: Iterable[int] | np.ndarray,
    out_path: str | os.PathLike,
    *,
    gaia: Any = None,
    chunk_size: int = DATALINK_MAX_IDS,
    data_release: str = "Gaia DR3",
    data_format: str = "csv",
    with_g_flux: bool = True,
    g_flux_table: str = "gaiadr3.gaia_source",
    tap_url: str = DEFAULT_TAP_URL,
    provenance: Mapping[str, Any] | None = None,
) -> XpFetch:
    """Fetch the XP continuous spectra of ``source_ids`` through the archive's datalink service.

    Parameters
    ----------
    source_ids
        Gaia DR3 source_ids (EDR3 ids are the same, spec §A4.2 point 1). Repeats are fetched once; the
        output has one row per distinct id, in first-seen order.
    out_path
        ``.parquet`` output in the layout of :func:`latentsky.io.gaia_xp.xp_table_to_arrow`, correlations
        included; written chunk by chunk to a temporary file that replaces ``out_path`` only on success.
    gaia
        An :class:`astroquery.gaia.GaiaClass` (tests pass one pointed at a loopback server). Default: one for
        ``tap_url`` with ``show_server_messages=False``.
    chunk_size
        Ids per datalink request (and per G-flux TAP job), at most :data:`DATALINK_MAX_IDS`.
    data_release, data_format
        astroquery's ``data_release`` and ``format`` (``csv``, ``votable``, ``votable_plain`` or ``fits``).
    with_g_flux
        Join ``phot_g_mean_flux`` and ``phot_g_mean_mag`` from ``g_flux_table`` (:func:`fetch_g_flux`, one
        TAP job per chunk); otherwise every row is flagged ``missing_g_flux``.
    g_flux_table, tap_url
        The gaia_source table for G, and the archive used when ``gaia`` is None.
    provenance
        Provenance record of the Parquet file (required, as for every Parquet file of the workflow).

    Returns
    -------
    XpFetch
        The path, the counts and the ids the archive returned no XP spectrum for.

    Raises
    ------
    FetchError
        Naming the data (or TAP) service URL, when a request fails, the answer is not a readable bundle, or
        the archive returns ids that were not asked for; nothing is then written to ``out_path``.
    """
    out = Path(out_path)
    if not out.name.lower().endswith(".parquet"):
        raise ValueError(f"{out}: fetch_xp_datalink writes the Parquet layout; use a .parquet path")
    if provenance is None:
        raise ValueError(f"{out}: a Parquet output needs a provenance record (DESIGN.md, Conventions)")
    if data_format not in _DATALINK_FORMATS:
        raise ValueError(f"data_format {data_format!r} not one of {_DATALINK_FORMATS} (see spec §D2 on ecsv)")
    ids = _unique_ids(source_ids)
    chunks = _chunks(ids, chunk_size)
    gaia = _gaia(gaia, tap_url)
    where = _data_location(gaia, tap_url.rstrip("/") + "/data-server/data")
    meta = {
        "service": where,
        "retrieval_type": "XP_CONTINUOUS",
        "data_structure": "RAW",
        "data_release": data_release,
        "format": data_format,
        "n_requested": int(len(ids)),
        "chunk_size": chunk_size,
        "g_flux_table": g_flux_table if with_g_flux else None,
    }
    missing_all: list[int] = []
    n_g = 0
    out.parent.mkdir(parents=True, exist_ok=True)
    with (
        tempfile.TemporaryDirectory(prefix=f".{out.name}.fetch-", dir=out.parent) as scratch,
        atomic_output(out) as tmp,
    ):
        writer: pq.ParquetWriter | None = None
        try:
            for k, chunk in enumerate(chunks):
                label = f"chunk {k + 1} of {len(chunks)} ({len(chunk)} ids from {chunk[0]})"
                with _working_directory(Path(scratch)):
                    got = _load_chunk(gaia, where, chunk, label, data_release, data_format)
                rows, missing = _reconcile(got, chunk, where)
                missing_all += missing.tolist()
                if with_g_flux:
                    g = fetch_g_flux(
                        chunk, gaia=gaia, chunk_size=len(chunk), table=g_flux_table, tap_url=tap_url
                    )
                    found = g["found"].to_numpy()
                    rows = join_g_flux(
                        rows,
                        g["source_id"].to_numpy()[found],
                        g["phot_g_mean_flux"].to_numpy()[found],
                        g["phot_g_mean_mag"].to_numpy()[found],
                    )
                    n_g += int(found.sum())
                log.info("%s: %d of %d ids without XP spectrum", label, len(missing), len(chunk))
                arrow = xp_table_to_arrow(rows)
                if writer is None:
                    metadata = {
                        PARQUET_KEY: json.dumps(dict(provenance), sort_keys=True).encode(),
                        b"latentsky.fetch": json.dumps(meta, sort_keys=True).encode(),
                    }
                    writer = pq.ParquetWriter(tmp, arrow.schema.with_metadata(metadata), compression="zstd")
                writer.write_table(arrow.replace_schema_metadata(writer.schema.metadata))
            if writer is None:  # no ids at all: an empty table, still in the layout
                empty = xp_table_to_arrow(missing_xp_rows([]))
                write_parquet(
                    empty.replace_schema_metadata({b"latentsky.fetch": json.dumps(meta).encode()}),
                    tmp,
                    provenance,
                )
        finally:
            if writer is not None:
                writer.close()
    n_missing = len(missing_all)
    log.info(
        "%d XP spectra of %d ids written to %s (%d missing)", len(ids) - n_missing, len(ids), out, n_missing
    )
    return XpFetch(
        path=out,
        n_requested=int(len(ids)),
        n_returned=int(len(ids) - n_missing),
        n_chunks=len(chunks),
        missing_source_ids=tuple(missing_all),
        n_g_flux=n_g,
    )


# ---------------------------------------------------------------------------------------------- G flux
def g_flux_adql(source_ids: Sequence[int] | np.ndarray, *, table: str, columns: Sequence[str]) -> str:
    """``SELECT <columns> FROM <table> WHERE source_id IN (…)`` for one chunk of ids."""
    if not _TABLE_NAME.match(table):
        raise ValueError(f"table {table!r} is not a valid ADQL table name (schema.table)")
    bad = [c for c in columns if not _IDENTIFIER.match(c)]
    if bad:
        raise ValueError(f"not valid ADQL column names: {bad}")
    return f"SELECT {', '.join(columns)} FROM {table} WHERE source_id IN ({', '.join(str(int(s)) for s in source_ids)})"


def fetch_g_flux(
    source_ids: Iterable[int] | np.ndarray,
    *,
    gaia: Any = None,
    chunk_size: int = DATALINK_MAX_IDS,
    table: str = "gaiadr3.gaia_source",
    columns: Sequence[str] = G_FLUX_COLUMNS,
    tap_url: str = DEFAULT_TAP_URL,
) -> pd.DataFrame:
    """G-band flux and magnitude of ``source_ids`` from ``gaia_source``, one asynchronous TAP job per chunk.

    The XP tables carry no photometry, and the sVAE normalises every coefficient by ``phot_g_mean_flux``
    (spec §A1.1 point 1, §A4.2 point 3). Jobs run through
    :func:`latentsky.fetch.gaia_archive.run_tap_job` (VOTable results, so a truncated answer is refused).

    Parameters
    ----------
    source_ids
        Gaia DR3 source_ids; repeats are queried once.
    gaia, tap_url
        An astroquery GaiaClass, or the archive to build one for.
    chunk_size
        Ids per query (``source_id IN (…)``), at most :data:`DATALINK_MAX_IDS`.
    table, columns
        The table and columns (``source_id`` must be among them).

    Returns
    -------
    pandas.DataFrame
        One row per distinct requested id, in request order: the ``columns`` (NaN where the archive had no
        row) and ``found`` (bool).

    Raises
    ------
    FetchError
        Naming the TAP service, when a job fails or returns ids that were not asked for.
    """
    columns = list(columns)
    if "source_id" not in columns:
        raise ValueError("columns must include source_id (the join key)")
    ids = _unique_ids(source_ids)
    gaia = _gaia(gaia, tap_url)
    where = tap_location(gaia, tap_url)
    frames = []
    with tempfile.TemporaryDirectory(prefix="latentsky-gflux-") as scratch:
        for k, chunk in enumerate(_chunks(ids, chunk_size)):
            query = g_flux_adql(chunk, table=table, columns=columns)
            result = Path(scratch) / f"g_flux_{k}.vot"
            _, frame = run_tap_job(gaia, where, query, result, output_format="votable", reader="votable")
            frame = frame.rename(columns={c: str(c).lower() for c in frame.columns})
            absent = [c for c in columns if c not in frame.columns]
            if absent:
                raise FetchError(f"TAP service {where}: the result has no column(s) {', '.join(absent)}")
            got = pd.to_numeric(frame["source_id"]).to_numpy(dtype=np.int64)
            extra = np.setdiff1d(got, chunk)
            if extra.size or len(np.unique(got)) != len(got):
                raise FetchError(
                    f"TAP service {where}: the G-flux result for chunk {k + 1} has unrequested or repeated "
                    f"source_ids (e.g. {extra[0] if extra.size else got[0]})"
                )
            frames.append(frame[columns])
    found_rows = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)
    found_rows["source_id"] = pd.to_numeric(found_rows["source_id"]).astype(np.int64)
    result = pd.DataFrame({"source_id": ids}).merge(found_rows, on="source_id", how="left", indicator=True)
    result["found"] = result.pop("_merge").eq("both").to_numpy()
    for c in columns[1:]:
        result[c] = pd.to_numeric(result[c], errors="coerce").astype(np.float64)
    return result


def random_xp_ids_adql(n: int, *, table: str = "gaiadr3.gaia_source") -> str:
    """``SELECT TOP n source_id … WHERE has_xp_continuous … ORDER BY random_index``: a reproducible random
    sample of the sources with an XP spectrum (``random_index`` is a random permutation of the table's rows,
    fixed by the release; spec §A4.2 point 4)."""
    if not _TABLE_NAME.match(table):
        raise ValueError(f"table {table!r} is not a valid ADQL table name (schema.table)")
    if int(n) < 1:
        raise ValueError(f"the number of random XP sources must be >= 1, got {n}")
    return (
        f"SELECT TOP {int(n)} source_id FROM {table} WHERE has_xp_continuous = 'True' ORDER BY random_index"
    )


def fetch_random_xp_source_ids(
    n: int,
    result_path: str | os.PathLike,
    *,
    gaia: Any = None,
    table: str = "gaiadr3.gaia_source",
    tap_url: str = DEFAULT_TAP_URL,
) -> np.ndarray:
    """The source_ids of :func:`random_xp_ids_adql`'s sample, in ``random_index`` order, from one asynchronous
    TAP job whose VOTable answer is kept at ``result_path`` (``.vot``) as the record of what the archive said.

    Raises
    ------
    FetchError
        Naming the TAP service, when the job fails, the answer has no ``source_id`` column or repeats an id.
    """
    gaia = _gaia(gaia, tap_url)
    where = tap_location(gaia, tap_url)
    query = random_xp_ids_adql(n, table=table)
    _, frame = run_tap_job(gaia, where, query, Path(result_path), output_format="votable", reader="votable")
    frame = frame.rename(columns={c: str(c).lower() for c in frame.columns})
    if "source_id" not in frame.columns:
        raise FetchError(f"TAP service {where}: the answer to {query!r} has no source_id column")
    ids = pd.to_numeric(frame["source_id"]).to_numpy(dtype=np.int64)
    if len(np.unique(ids)) != len(ids):
        raise FetchError(f"TAP service {where}: the answer to {query!r} repeats source_ids")
    if len(ids) < n:
        log.warning("TAP service %s: %d of the %d random XP sources asked for came back", where, len(ids), n)
    return ids


# ---------------------------------------------------------------------------------------------- bulk
def xp_bulk_file_urls(
    healpix8_ranges: Iterable[tuple[int, int]], *, base_url: str = XP_BULK_URL
) -> list[str]:
    """URLs of bulk XP files from their inclusive level-8 HEALPix ranges, e.g. ``(0, 3111)`` →
    ``…/XpContinuousMeanSpectrum_000000-003111.csv.gz`` (the naming of DR3 bulk tables, spec §A4.2 point 5).

    The ranges themselves are the archive's choice (one file per ~equal row count), so take them from the
    directory index (:func:`list_xp_bulk_files`); this only spells the names.
    """
    urls = []
    base = base_url if base_url.endswith("/") else base_url + "/"
    for lo, hi in healpix8_ranges:
        lo, hi = int(lo), int(hi)
        if not 0 <= lo <= hi <= _MAX_HP8:
            raise ValueError(f"HEALPix level-8 range ({lo}, {hi}) must satisfy 0 ≤ lo ≤ hi ≤ {_MAX_HP8}")
        urls.append(f"{base}{XP_BULK_PREFIX}_{lo:06d}-{hi:06d}.csv.gz")
    return urls


def list_xp_bulk_files(
    base_url: str = XP_BULK_URL,
    *,
    session: requests.Session | None = None,
    timeout: float = 60.0,
    retries: int = 3,
    backoff_s: float = 2.0,
) -> list[BulkFile]:
    """The bulk XP files linked from the CDN's directory index, sorted, with their source_id ranges."""
    return list_bulk_files(
        base_url,
        session=session,
        timeout=timeout,
        retries=retries,
        backoff_s=backoff_s,
        prefix=XP_BULK_PREFIX,
    )


def select_xp_bulk_files(files: Iterable[BulkFile], pixel: int, order: int) -> list[BulkFile]:
    """The bulk XP files whose source_id range overlaps the HEALPix partition ``(pixel, order)``."""
    lo, hi = source_id_range(pixel, order)
    return [f for f in files if f.overlaps(lo, hi)]


def fetch_xp_bulk_partition(
    pixel: int,
    order: int,
    out_path: str | os.PathLike,
    *,
    base_url: str = XP_BULK_URL,
    session: requests.Session | None = None,
    timeout: float = 60.0,
    retries: int = 3,
    backoff_s: float = 2.0,
    progress: bool = True,
    provenance: Mapping[str, Any] | None = None,
) -> BulkPartition:
    """The XP spectra of one HEALPix partition from the bulk ``XpContinuousMeanSpectrum_*.csv.gz`` files.

    Only the files overlapping the partition are downloaded (the full set is terabytes, spec §A4.2 point 5)
    and only its rows kept, by :func:`latentsky.fetch.gaia_archive.fetch_bulk_partition`.

    Parameters
    ----------
    pixel, order
        Nested HEALPix pixel and order (0–12) of the partition.
    out_path
        ``.csv.gz``: the archive's ECSV header and the partition's rows byte for byte. ``.parquet``: the
        rows read by :func:`latentsky.io.gaia_xp.read_xp_continuous` (correlations included) in the
        project's layout, with ``provenance`` (required then) and the source files under
        ``latentsky.fetch``. Every correlation matrix of the partition is unpacked in memory on the way
        (48 kB a source), so keep Parquet partitions to ~10⁵ sources.
    base_url, session, timeout, retries, backoff_s, progress
        As for :func:`latentsky.fetch.gaia_archive.fetch_bulk_partition`.
    provenance
        Provenance record of a Parquet output.

    Raises
    ------
    FetchError
        Naming the URL, for a failed download, an index without XP files, or a row whose source_id cannot
        be read (e.g. the malformed row of ``XpContinuousMeanSpectrum_614517-614573``, spec §A4.2).
    XpFormatError
        For a Parquet output, when a kept row is not a valid XP spectrum (the file and row are named).
    """
    out = Path(out_path)
    name = out.name.lower()
    kw = {"session": session, "timeout": timeout, "retries": retries, "backoff_s": backoff_s}
    if name.endswith(".csv.gz"):
        return fetch_bulk_partition(
            pixel, order, out, base_url=base_url, progress=progress, prefix=XP_BULK_PREFIX, **kw
        )
    if not name.endswith(".parquet"):
        raise ValueError(f"{out}: XP bulk partitions are written as .csv.gz or .parquet")
    if provenance is None:
        raise ValueError(f"{out}: a Parquet output needs a provenance record (DESIGN.md, Conventions)")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{out.name}.fetch-", dir=out.parent) as scratch:
        rows = Path(scratch) / f"order{order}_pixel{pixel}.csv.gz"
        result = fetch_bulk_partition(
            pixel, order, rows, base_url=base_url, progress=progress, prefix=XP_BULK_PREFIX, **kw
        )
        table = xp_table_to_arrow(read_xp_continuous(rows, with_correlations=True))
    fetch = {
        "base_url": base_url,
        "files": list(result.files),
        "pixel": pixel,
        "order": order,
        "source_id_range": list(result.source_id_range),
    }
    metadata = dict(table.schema.metadata or {})
    metadata[b"latentsky.fetch"] = json.dumps(fetch, sort_keys=True).encode()
    write_parquet(table.replace_schema_metadata(metadata), out, provenance)
    return BulkPartition(
        path=out,
        pixel=pixel,
        order=order,
        source_id_range=result.source_id_range,
        files=result.files,
        n_rows=result.n_rows,
        md5_verified=result.md5_verified,
    )


# ---------------------------------------------------------------------------------------------- APOGEE
#: allStar(Lite) DR17 columns of the cross-match (spec §A4.2 point 1; the names the xp_vae authors use).
APOGEE_ALLSTAR_COLUMNS = (
    "APOGEE_ID",
    "TELESCOPE",
    "FIELD",
    "GAIAEDR3_SOURCE_ID",
    "TEFF",
    "TEFF_ERR",
    "LOGG",
    "LOGG_ERR",
    "M_H",
    "M_H_ERR",
    "ALPHA_M",
    "SFD_EBV",
    "STARFLAG",
    "ASPCAPFLAG",
    "SNR",
)
_APOGEE_OPTIONAL = ("GAIAEDR3_PHOT_G_MEAN_MAG", "GAIAEDR3_PHOT_BP_MEAN_MAG", "GAIAEDR3_PHOT_RP_MEAN_MAG")
_APOGEE_STRINGS = ("APOGEE_ID", "TELESCOPE", "FIELD")


#: APOGEE DR17's allStarLite (labels without the per-element arrays; ~1 GB) on the SDSS Science Archive Server.
ALLSTAR_DR17_URL = "https://data.sdss.org/sas/dr17/apogee/spectro/aspcap/dr17/synspec_rev1/allStarLite-dr17-synspec_rev1.fits"


def fetch_apogee_allstar(
    out_path: str | os.PathLike,
    url: str = ALLSTAR_DR17_URL,
    *,
    session: requests.Session | None = None,
    timeout: float = 120.0,
    retries: int = 3,
    backoff_s: float = 5.0,
) -> Path:
    """Download the allStar(Lite) FITS file to ``out_path`` (atomically) and check it reads as one
    (:func:`read_apogee_allstar`'s columns), so a truncated file or an HTML error page never lands.

    Raises
    ------
    FetchError
        Naming the URL, when the download fails or the bytes are not an allStar table.
    """
    out = Path(out_path)
    with atomic_output(out) as tmp:
        with open(tmp, "wb") as sink:
            n = download(
                http_session(session), url, sink, timeout=timeout, retries=retries, backoff_s=backoff_s
            )
        try:
            frame = read_apogee_allstar(tmp)
        except (OSError, ValueError, TypeError) as exc:
            raise FetchError(f"{url}: {n} bytes that are not an APOGEE allStar table ({exc})") from exc
    log.info("%s: %d bytes, %d allStar rows → %s", url, n, len(frame), out)
    return out


def read_apogee_allstar(path: str | os.PathLike) -> pd.DataFrame:
    """The cross-match columns of an APOGEE DR17 ``allStar``/``allStarLite`` FITS file, every row kept.

    A star observed from both hemispheres (or in several fields) has several rows with one APOGEE_ID; the
    one with the highest ``SNR`` is the star's (ties: the first), the others get ``duplicate=True``. Rows
    with ``GAIAEDR3_SOURCE_ID ≤ 0`` (no Gaia counterpart) get ``no_gaia_id=True`` (spec §A4.2 point 1).
    Gaia EDR3 and DR3 share source_ids, so ``GAIAEDR3_SOURCE_ID`` joins the XP tables directly.

    Only the listed columns are read, through a memory map (the full allStar file is several GB).

    Parameters
    ----------
    path
        The FITS file; the table is the first extension (HDU 1).

    Returns
    -------
    pandas.DataFrame
        :data:`APOGEE_ALLSTAR_COLUMNS` (strings stripped; numbers in native byte order), the
        ``GAIAEDR3_PHOT_{G,BP,RP}_MEAN_MAG`` columns when present, and the bool columns ``duplicate`` and
        ``no_gaia_id``.

    Raises
    ------
    ValueError
        Naming the file and the missing columns, or when HDU 1 is not a table.
    """
    path = Path(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fits.verify.VerifyWarning)
        with fits.open(path, memmap=True) as hdul:
            if len(hdul) < 2 or not isinstance(hdul[1], fits.BinTableHDU):
                raise ValueError(f"{path.name}: HDU 1 is not a binary table, expected the allStar table")
            data = hdul[1].data
            names = {n.upper(): n for n in data.columns.names}
            missing = [c for c in APOGEE_ALLSTAR_COLUMNS if c not in names]
            if missing:
                raise ValueError(f"{path.name}: missing column(s) {', '.join(missing)} in the allStar table")
            out: dict[str, Any] = {}
            for column in APOGEE_ALLSTAR_COLUMNS + tuple(c for c in _APOGEE_OPTIONAL if c in names):
                values = np.asarray(data[names[column]])
                if column in _APOGEE_STRINGS:
                    out[column] = pd.Series(values.astype(str)).str.strip().to_numpy(dtype=object)
                else:
                    out[column] = values.astype(values.dtype.newbyteorder("="))
    frame = pd.DataFrame(out)
    snr = pd.to_numeric(frame["SNR"], errors="coerce").fillna(-np.inf).to_numpy()
    order = np.lexsort((np.arange(len(frame)), -snr, frame["APOGEE_ID"].to_numpy(dtype=str)))
    ids = frame["APOGEE_ID"].to_numpy(dtype=str)[order]
    first_of_id = np.ones(len(frame), bool)
    first_of_id[1:] = ids[1:] != ids[:-1]
    duplicate = np.ones(len(frame), bool)
    duplicate[order[first_of_id]] = False
    frame["duplicate"] = duplicate
    frame["no_gaia_id"] = frame["GAIAEDR3_SOURCE_ID"].to_numpy() <= 0
    log.info(
        "%s: %d rows, %d duplicates, %d without Gaia id",
        path.name,
        len(frame),
        int(duplicate.sum()),
        int(frame["no_gaia_id"].sum()),
    )
    return frame
