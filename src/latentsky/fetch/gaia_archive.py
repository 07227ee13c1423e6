"""Fetch one HEALPix partition of Gaia ``gaia_source`` from the ESA Gaia archive, two ways.

A Gaia ``source_id`` encodes the level-12 nested HEALPix index of the source (:mod:`latentsky.io.healpix`), so
the sources of a partition of any order N ≤ 12 are exactly one contiguous source_id range ``[lo, hi]``. That
makes both of the archive's access routes cheap for a partition:

* **TAP** (:func:`fetch_partition_tap`): the ADQL query ``SELECT … WHERE source_id BETWEEN lo AND hi`` runs
  as an asynchronous job through astroquery's :class:`astroquery.gaia.GaiaClass`; the archive's result file
  is written byte for byte. Suited to partitions below the archive's row limit for asynchronous jobs.
* **Bulk files** (:func:`fetch_bulk_partition`): the archive's ``gaia_source`` CSV files are named after the
  source_id range they hold (DR2: ``GaiaSource_<first>_<last>.csv.gz``; DR3: ``GaiaSource_<hp8lo>-<hp8hi>
  .csv.gz``, a level-8 HEALPix range), so the directory index tells which files overlap a partition; only
  those are downloaded, and the partition's rows are written to one file. Suited to the full-sky rerun.

Both write atomically (:func:`latentsky.provenance.files.atomic_output`): a failed or interrupted fetch leaves no
file at the output path. Every network failure raises :class:`FetchError` naming the URL (HTTP plumbing:
:mod:`latentsky.fetch.http`).
"""

from __future__ import annotations

import csv
import gzip
import json
import logging
import os
import re
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

import pandas as pd
import requests
import urllib3
from tqdm.auto import tqdm

from latentsky.fetch.http import CHUNK_BYTES, FetchError, download, get_bytes, http_session, index_links
from latentsky.io.gaia import gaia_table_format, read_raw_table
from latentsky.io.gaia_columns import DR2_COLUMNS, DR3_COLUMNS, GaiaTableError
from latentsky.io.healpix import source_id_range
from latentsky.provenance.files import atomic_output, to_arrow, write_parquet

__all__ = [
    "DEFAULT_BULK_URL",
    "DEFAULT_TAP_URL",
    "BulkFile",
    "BulkPartition",
    "FetchError",
    "TapPartition",
    "fetch_bulk_partition",
    "fetch_partition_tap",
    "list_bulk_files",
    "partition_adql",
    "select_bulk_files",
]

log = logging.getLogger(__name__)

#: The Gaia archive's TAP server (astroquery's GaiaClass default).
DEFAULT_TAP_URL = "https://gea.esac.esa.int/"
#: Directory of the Gaia DR2 bulk gaia_source CSV files.
DEFAULT_BULK_URL = "https://cdn.gea.esac.esa.int/Gaia/gdr2/gaia_source/csv/"

#: astroquery output formats, and the reader format (latentsky.io.gaia) their files are read with.
TAP_OUTPUT_FORMATS: dict[str, str] = {
    "votable": "votable",
    "votable_plain": "votable",
    "votable_gzip": "votable",
    "ecsv": "ecsv",
    "csv": "csv",
    "fits": "fits",
    "json": "tap_json",
}
_FORMAT_FOR_READER = {"votable": "votable", "ecsv": "ecsv", "csv": "csv", "fits": "fits", "tap_json": "json"}

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")

_DR2_BULK_NAME = re.compile(r"^GaiaSource_(\d+)_(\d+)\.csv\.gz$")
_DR3_BULK_NAME = re.compile(r"^GaiaSource_(\d{6})-(\d{6})\.csv\.gz$")
#: File-name prefix of the bulk gaia_source files; other DR3 bulk tables (e.g. XpContinuousMeanSpectrum)
#: use the same "<prefix>_<hp8lo>-<hp8hi>.csv.gz" naming, so the helpers below take the prefix.
GAIA_SOURCE_PREFIX = "GaiaSource"
_MD5_NAME = re.compile(r"^_?MD5SUM\.txt$", re.IGNORECASE)
#: HEALPix level of the ranges in DR3 bulk file names (Gaia DR3 documentation, Sec. 20.1 "Bulk data").
DR3_BULK_HEALPIX_LEVEL = 8


# ------------------------------------------------------------------------------------------------- TAP
def partition_adql(
    pixel: int,
    order: int,
    *,
    table: str = "gaiadr2.gaia_source",
    columns: Sequence[str] | None = None,
) -> str:
    """ADQL selecting the rows of one HEALPix partition by its source_id range.

    Parameters
    ----------
    pixel, order
        Nested HEALPix pixel and order (0–12) of the partition.
    table
        Fully qualified archive table, e.g. ``gaiadr2.gaia_source`` or ``gaiadr3.gaia_source``.
    columns
        Column names, or ``["*"]``; default :data:`DR2_COLUMNS` (:data:`DR3_COLUMNS` for a DR3/EDR3 table).

    Returns
    -------
    str
        ``SELECT <columns> FROM <table> WHERE source_id BETWEEN <lo> AND <hi>`` with the inclusive bounds of
        :func:`latentsky.io.healpix.source_id_range`.
    """
    if not _TABLE_NAME.match(table):
        raise ValueError(f"table {table!r} is not a valid ADQL table name (schema.table)")
    if columns is None:
        columns = DR3_COLUMNS if re.search(r"e?dr3", table, re.IGNORECASE) else DR2_COLUMNS
    columns = list(columns)
    if not columns:
        raise ValueError("columns must name at least one column (or '*')")
    if columns != ["*"]:
        bad = [c for c in columns if not _IDENTIFIER.match(c)]
        if bad:
            raise ValueError(f"not valid ADQL column names: {bad}")
    lo, hi = source_id_range(pixel, order)
    return f"SELECT {', '.join(columns)} FROM {table} WHERE source_id BETWEEN {lo} AND {hi}"


@dataclass(frozen=True)
class TapPartition:
    """What :func:`fetch_partition_tap` wrote: the file, the query, the archive's job id and row count."""

    path: Path
    query: str
    job_id: str | None
    output_format: str
    n_rows: int


def tap_location(gaia: Any, fallback: str) -> str:
    # astroquery keeps the server address in its connection handler, reachable only through the
    # name-mangled attribute; this is for error messages, so any failure falls back to the given URL.
    try:
        conn = gaia._Tap__connHandler
        scheme = "https" if conn._TapConn__isHttps else "http"
        return f"{scheme}://{conn.get_host_url()}"
    except Exception:  # noqa: BLE001
        return fallback


def _job_error(job: Any) -> str:
    try:
        # One line: astroquery prefixes the UWS error document with "Error <status>:" and a newline.
        return " ".join(str(job.get_error()).split()) or "(no message)"
    except Exception as exc:  # noqa: BLE001 - the error document itself may be unavailable
        return f"(error document unavailable: {exc})"


def _output_format_for(out_path: Path, output_format: str | None) -> tuple[str, str]:
    reader = gaia_table_format(out_path)
    if output_format is None:
        if reader not in _FORMAT_FOR_READER:
            raise ValueError(
                f"{out_path}: the TAP service cannot write {reader}; use .vot, .ecsv, .csv, .fits or .json"
            )
        output_format = _FORMAT_FOR_READER[reader]
        if output_format == "votable" and out_path.name.lower().endswith(".gz"):
            output_format = "votable_gzip"
    if output_format not in TAP_OUTPUT_FORMATS:
        raise ValueError(f"output_format {output_format!r} not one of {sorted(TAP_OUTPUT_FORMATS)}")
    if TAP_OUTPUT_FORMATS[output_format] != reader:
        raise ValueError(f"{out_path}: suffix selects {reader}, but output_format is {output_format!r}")
    return output_format, reader


def run_tap_job(
    gaia: Any, where: str, query: str, output_file: Path, *, output_format: str, reader: str, **launch: Any
) -> tuple[Any, pd.DataFrame]:
    """Run ``query`` as an asynchronous archive job, save its result to ``output_file`` and read it back.

    ``launch`` goes to astroquery's ``launch_job_async`` (e.g. ``upload_resource``/``upload_table_name``).
    Returns the job and the result table. Every failure — the service unreachable, the job not COMPLETED,
    the download, a result the server marked ERROR or OVERFLOW (truncated) — raises :class:`FetchError`
    naming ``where`` (the service) and the query.
    """
    try:
        # background=True returns as soon as the job exists, so the phase can be checked before the result
        # is requested: astroquery's save_results would otherwise dump an error document.
        job = gaia.launch_job_async(
            query,
            output_format=output_format,
            dump_to_file=True,
            output_file=str(output_file),
            background=True,
            **launch,
        )
        _, phase = job.wait_for_job_end()
    except Exception as exc:  # noqa: BLE001 - astroquery raises bare Exception, HTTPError and OSError
        raise FetchError(
            f"TAP service {where}: could not run the query ({type(exc).__name__}: {exc}); query: {query}"
        ) from exc
    if str(phase).upper() != "COMPLETED":
        raise FetchError(
            f"TAP service {where}: job {job.jobid} ended in phase {phase}: {_job_error(job)}; query: {query}"
        )
    try:
        job.save_results()
    except Exception as exc:  # noqa: BLE001
        raise FetchError(
            f"TAP service {where}: could not download the result of job {job.jobid} "
            f"({type(exc).__name__}: {exc})"
        ) from exc
    try:
        frame = read_raw_table(output_file, fmt=reader).frame
    except GaiaTableError as exc:
        raise FetchError(f"TAP service {where}: job {job.jobid} returned an unusable result: {exc}") from exc
    return job, frame


def fetch_partition_tap(
    pixel: int,
    order: int,
    out_path: str | os.PathLike,
    *,
    table: str = "gaiadr2.gaia_source",
    columns: Sequence[str] | None = None,
    gaia: Any = None,
    output_format: str | None = None,
    tap_url: str = DEFAULT_TAP_URL,
) -> TapPartition:
    """Run the partition's ADQL query as an asynchronous Gaia archive job and write the result file.

    Parameters
    ----------
    pixel, order
        Nested HEALPix pixel and order of the partition. Choose the order so that a partition stays below
        the archive's row limit for asynchronous jobs (DR2 holds 1.7e9 sources: ≈ 1.4e5 per order-5
        pixel on average, several times that in the Galactic plane).
    out_path
        Output file; its suffix picks the format (``.vot``/``.xml``, ``.vot.gz``, ``.ecsv``, ``.csv``,
        ``.fits``, ``.json``). VOTable is the default of the archive and the only format that flags a
        result truncated at the row limit (``QUERY_STATUS=OVERFLOW``), which is checked here.
    table, columns
        See :func:`partition_adql`.
    gaia
        An :class:`astroquery.gaia.GaiaClass` (tests pass one pointed at a loopback server). Default: one
        for ``tap_url`` made with ``show_server_messages=False``.
    output_format
        astroquery's ``output_format``; default from the suffix.
    tap_url
        Archive URL used when ``gaia`` is None.

    Returns
    -------
    TapPartition
        The path, the query, the job id, the format and the number of rows.

    Raises
    ------
    FetchError
        Naming the TAP service, when the service cannot be reached, the job fails, or the result is not a
        readable table (or was truncated by the server); nothing is then written to ``out_path``.
    """
    out = Path(out_path)
    output_format, reader = _output_format_for(out, output_format)
    query = partition_adql(pixel, order, table=table, columns=columns)
    if gaia is None:
        from astroquery.gaia import GaiaClass

        gaia = GaiaClass(gaia_tap_server=tap_url, gaia_data_server=tap_url, show_server_messages=False)
    where = tap_location(gaia, tap_url)
    log.info("TAP %s: %s", where, query)
    with atomic_output(out) as tmp:
        job, frame = run_tap_job(gaia, where, query, tmp, output_format=output_format, reader=reader)
        n_rows = len(frame)
    log.info("TAP job %s: %d rows written to %s", job.jobid, n_rows, out)
    return TapPartition(path=out, query=query, job_id=job.jobid, output_format=output_format, n_rows=n_rows)


# ------------------------------------------------------------------------------------------ bulk files
@dataclass(frozen=True)
class BulkFile:
    """One bulk gaia_source file: its name, URL and the inclusive source_id range it holds."""

    name: str
    url: str
    first_source_id: int
    last_source_id: int

    def overlaps(self, lo: int, hi: int) -> bool:
        """Whether the file's range meets the inclusive range ``[lo, hi]``."""
        return self.first_source_id <= hi and self.last_source_id >= lo


@dataclass(frozen=True)
class BulkPartition:
    """What :func:`fetch_bulk_partition` wrote."""

    path: Path
    pixel: int
    order: int
    source_id_range: tuple[int, int]
    files: tuple[str, ...]
    n_rows: int
    md5_verified: bool = False


def _bulk_file(name: str, url: str, prefix: str = GAIA_SOURCE_PREFIX) -> BulkFile | None:
    dr3_name = _DR3_BULK_NAME if prefix == GAIA_SOURCE_PREFIX else _hp8_range_name(prefix)
    if prefix == GAIA_SOURCE_PREFIX and (m := _DR2_BULK_NAME.match(name)):
        first, last = int(m.group(1)), int(m.group(2))
    elif m := dr3_name.match(name):
        # DR3 names carry a level-8 HEALPix range; its source_id range follows from the encoding.
        first = source_id_range(int(m.group(1)), DR3_BULK_HEALPIX_LEVEL)[0]
        last = source_id_range(int(m.group(2)), DR3_BULK_HEALPIX_LEVEL)[1]
    else:
        return None
    if last < first:
        raise FetchError(f"{url}: file name gives an empty source_id range ({first} > {last})")
    return BulkFile(name=name, url=url, first_source_id=first, last_source_id=last)


def _hp8_range_name(prefix: str) -> re.Pattern[str]:
    return re.compile(rf"^{re.escape(prefix)}_(\d{{6}})-(\d{{6}})\.csv\.gz$")


def _bulk_files_from_links(
    base_url: str, links: Iterable[str], prefix: str = GAIA_SOURCE_PREFIX
) -> list[BulkFile]:
    files: dict[str, BulkFile] = {}
    for url in links:
        name = urlsplit(url).path.rsplit("/", 1)[-1]
        bulk = _bulk_file(name, url, prefix)
        if bulk is not None:
            files[name] = bulk
    if not files:
        raise FetchError(f"{base_url}: the directory index lists no {prefix}_*.csv.gz files")
    return sorted(files.values(), key=lambda f: f.first_source_id)


def list_bulk_files(
    base_url: str = DEFAULT_BULK_URL,
    *,
    session: requests.Session | None = None,
    timeout: float = 60.0,
    retries: int = 3,
    backoff_s: float = 2.0,
    prefix: str = GAIA_SOURCE_PREFIX,
) -> list[BulkFile]:
    """The bulk gaia_source files linked from the archive's directory index, sorted by source_id.

    Parameters
    ----------
    base_url
        The directory (its HTML index page lists the files).
    session, timeout, retries, backoff_s
        HTTP session (default: a new one), timeout per request in s, retries of transient failures and
        the first backoff delay in s (doubling).
    prefix
        File-name prefix: ``GaiaSource`` (DR2 and DR3 names), or another DR3 bulk table's
        (``XpContinuousMeanSpectrum``), whose names are ``<prefix>_<hp8lo>-<hp8hi>.csv.gz``.

    Raises
    ------
    FetchError
        Naming ``base_url`` if the index cannot be fetched or lists no ``<prefix>_*`` file.
    """
    links = index_links(
        http_session(session), base_url, timeout=timeout, retries=retries, backoff_s=backoff_s
    )
    return _bulk_files_from_links(base_url, links, prefix)


def select_bulk_files(files: Iterable[BulkFile], pixel: int, order: int) -> list[BulkFile]:
    """The files whose source_id range overlaps the partition ``(pixel, order)``."""
    lo, hi = source_id_range(pixel, order)
    return [f for f in files if f.overlaps(lo, hi)]


def _parse_md5sums(text: str) -> dict[str, str]:
    # md5sum's output format: "<32 hex digits>  <name>" (GNU coreutils), one file a line.
    sums: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.strip().split()
        if len(parts) >= 2 and re.fullmatch(r"[0-9a-fA-F]{32}", parts[0]):
            sums[parts[-1].lstrip("*").rsplit("/", 1)[-1]] = parts[0].lower()
    return sums


def _read_header(stream: IO[bytes], url: str) -> tuple[list[bytes], int]:
    """The header lines of a bulk CSV (ECSV comment lines, then the column names) and source_id's index."""
    lines: list[bytes] = []
    for line in stream:
        lines.append(line)
        if not line.startswith(b"#"):
            break
    if not lines or lines[-1].startswith(b"#") or not lines[-1].strip():
        raise FetchError(f"{url}: no CSV header line")
    names = next(csv.reader([lines[-1].decode("utf-8").strip("\r\n")]))
    lowered = [n.strip().lower() for n in names]
    if "source_id" not in lowered:
        raise FetchError(f"{url}: CSV header has no 'source_id' column; found: {', '.join(names)}")
    return lines, lowered.index("source_id")


def _source_id_of(line: bytes, index: int) -> int:
    if b'"' in line:
        value = next(csv.reader([line.decode("utf-8")]))[index]
    else:
        value = line.split(b",", index + 1)[index].decode("ascii")
    return int(value)


def _filter_file(
    path: Path, url: str, lo: int, hi: int, sink: IO[bytes], header: list[bytes] | None
) -> tuple[int, list[bytes]]:
    """Copy the rows of ``path`` with ``lo ≤ source_id ≤ hi`` to ``sink``, byte for byte.

    Rows are copied as the archive wrote them rather than parsed and re-formatted, so no value changes
    (float digits, empty cells, "null"s). Only the source_id field is parsed.
    """
    n = 0
    try:
        with gzip.open(path, "rb") as fh:
            lines, index = _read_header(fh, url)
            if header is None:
                sink.writelines(lines)
                header = lines
            elif lines != header:
                raise FetchError(
                    f"{url}: CSV header differs from that of the other bulk files of this partition"
                )
            for number, line in enumerate(fh, start=len(lines) + 1):
                if not line.strip():
                    continue
                try:
                    sid = _source_id_of(line, index)
                except (ValueError, IndexError) as exc:
                    raise FetchError(f"{url}: line {number}: cannot read source_id ({exc})") from exc
                if lo <= sid <= hi:
                    sink.write(line if line.endswith(b"\n") else line + b"\n")
                    n += 1
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise FetchError(f"{url}: not a readable gzip CSV file ({type(exc).__name__}: {exc})") from exc
    return n, header


def _stream_header(session: requests.Session, url: str, timeout: float) -> list[bytes]:
    # Only the header is needed (for an empty partition): read it from the start of the gzip stream and
    # close the connection, instead of downloading the whole file.
    try:
        with session.get(url, stream=True, timeout=timeout) as response:
            if response.status_code != 200:
                raise FetchError(f"{url}: HTTP {response.status_code} {response.reason}")
            response.raw.decode_content = False
            with gzip.GzipFile(fileobj=response.raw) as fh:
                return _read_header(fh, url)[0]
    except FetchError:
        raise
    except (requests.RequestException, urllib3.exceptions.HTTPError, OSError, EOFError) as exc:
        raise FetchError(f"{url}: could not read the CSV header ({type(exc).__name__}: {exc})") from exc


def fetch_bulk_partition(
    pixel: int,
    order: int,
    out_path: str | os.PathLike,
    *,
    base_url: str = DEFAULT_BULK_URL,
    session: requests.Session | None = None,
    timeout: float = 60.0,
    retries: int = 3,
    backoff_s: float = 2.0,
    progress: bool = True,
    provenance: Mapping[str, Any] | None = None,
    prefix: str = GAIA_SOURCE_PREFIX,
) -> BulkPartition:
    """Download the archive's bulk gaia_source files that overlap a partition and keep its rows.

    Parameters
    ----------
    pixel, order
        Nested HEALPix pixel and order (0–12) of the partition; its rows are those with
        ``lo ≤ source_id ≤ hi`` (:func:`latentsky.io.healpix.source_id_range`).
    out_path
        ``.csv.gz``: the archive's header and the selected rows, byte for byte as in the bulk files.
        ``.parquet``: the same rows as a table (types inferred by :func:`latentsky.io.gaia.read_raw_table`),
        written by :func:`latentsky.provenance.files.write_parquet` with ``provenance`` (required then, as for every
        Parquet file of the workflow) and the list of source files under the key ``latentsky.fetch``.
    base_url
        Directory of the bulk files (its HTML index is listed). DR2 names
        ``GaiaSource_<first>_<last>.csv.gz`` and DR3 names ``GaiaSource_<hp8lo>-<hp8hi>.csv.gz`` are
        understood. If the index links an ``MD5SUM.txt`` (or ``_MD5SUM.txt``), downloads are verified
        against it.
    session
        A :class:`requests.Session` (default: a new one).
    timeout, retries, backoff_s
        Timeout per request (s), retries of transient failures and first backoff (s, doubling).
    progress
        Show tqdm progress bars (files, and bytes of the current file).
    provenance
        Provenance record for a Parquet output (:mod:`latentsky.provenance`).
    prefix
        Bulk file-name prefix (see :func:`list_bulk_files`).

    Returns
    -------
    BulkPartition
        Output path, partition, source_id range, URLs of the files used and number of rows written.

    Raises
    ------
    FetchError
        Naming the URL, when the index or a file cannot be fetched (after retries), a checksum does not
        match, or a file is not a readable gzip CSV with a ``source_id`` column.
    """
    out = Path(out_path)
    kind = gaia_table_format(out)
    if kind not in ("csv", "parquet") or (kind == "csv" and not out.name.lower().endswith(".csv.gz")):
        raise ValueError(f"{out}: bulk partitions are written as .csv.gz or .parquet")
    if kind == "parquet" and provenance is None:
        raise ValueError(f"{out}: a Parquet output needs a provenance record (DESIGN.md, Conventions)")
    lo, hi = source_id_range(pixel, order)
    http = http_session(session)
    kw = {"timeout": timeout, "retries": retries, "backoff_s": backoff_s}
    links = index_links(http, base_url, **kw)
    files = _bulk_files_from_links(base_url, links, prefix)
    selected = [f for f in files if f.overlaps(lo, hi)]
    log.info(
        "partition %d at order %d (source_id %d–%d): %d of %d bulk files overlap",
        pixel,
        order,
        lo,
        hi,
        len(selected),
        len(files),
    )
    md5_links = [u for u in links if _MD5_NAME.match(urlsplit(u).path.rsplit("/", 1)[-1])]
    md5sums: dict[str, str] = {}
    if selected and md5_links:
        md5sums = _parse_md5sums(get_bytes(http, md5_links[0], **kw).decode("utf-8", errors="replace"))
        unlisted = [f.name for f in selected if f.name not in md5sums]
        if unlisted:
            raise FetchError(f"{md5_links[0]}: no checksum for {', '.join(unlisted[:3])}")

    n_rows = 0
    header: list[bytes] | None = None
    out.parent.mkdir(parents=True, exist_ok=True)
    # Downloads go next to the output (same filesystem, usually the cluster's scratch), not to /tmp.
    with tempfile.TemporaryDirectory(prefix=f".{out.name}.fetch-", dir=out.parent) as tmpdir:
        rows_path = Path(tmpdir) / "rows.csv"
        with open(rows_path, "wb") as rows:
            for bulk in tqdm(
                selected, desc=f"order {order} pixel {pixel}", unit="file", disable=not progress
            ):
                local = Path(tmpdir) / bulk.name
                with open(local, "wb") as sink:
                    download(
                        http, bulk.url, sink, progress=progress, expected_md5=md5sums.get(bulk.name), **kw
                    )
                count, header = _filter_file(local, bulk.url, lo, hi, rows, header)
                n_rows += count
                local.unlink()
            if header is None:
                # No file overlaps (a gap between files): the partition is empty but keeps the
                # archive's header, taken from the nearest file, so it still reads as a table.
                nearest = min(
                    files, key=lambda f: min(abs(f.first_source_id - lo), abs(f.last_source_id - hi))
                )
                rows.writelines(_stream_header(http, nearest.url, timeout))
        if kind == "csv":
            with atomic_output(out) as tmp, open(tmp, "wb") as raw, open(rows_path, "rb") as src:
                # mtime=0 and no file name in the gzip header: the same rows give the same bytes.
                with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
                    while chunk := src.read(CHUNK_BYTES):
                        gz.write(chunk)
        else:
            table = to_arrow(read_raw_table(rows_path, fmt="csv").frame)
            fetch = {
                "base_url": base_url,
                "files": [f.url for f in selected],
                "pixel": pixel,
                "order": order,
                "source_id_range": [lo, hi],
            }
            metadata = dict(table.schema.metadata or {})
            metadata[b"latentsky.fetch"] = json.dumps(fetch, sort_keys=True).encode()
            write_parquet(table.replace_schema_metadata(metadata), out, provenance)
    log.info("%d rows of partition %d (order %d) written to %s", n_rows, pixel, order, out)
    return BulkPartition(
        path=out,
        pixel=pixel,
        order=order,
        source_id_range=(lo, hi),
        files=tuple(f.url for f in selected),
        n_rows=n_rows,
        md5_verified=bool(md5sums),
    )
