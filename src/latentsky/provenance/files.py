"""Writing and reading every output with its provenance record: Parquet, JSON, FITS, HDF5, PNG and
model checkpoints, each written atomically (a temporary file, then a rename).

The record (:func:`latentsky.provenance.record.build_record`) sits where each format keeps metadata:
Parquet key-value metadata under ``latentsky.provenance``, a JSON document's ``provenance`` key, a PNG
text chunk, a FITS primary-header card, an HDF5 root attribute, and in a checkpoint (a ``torch.save``
dict) under ``"provenance"`` beside the model state under ``"state"``. A job killed while writing
(SLURM preemption, SIGTERM) leaves the previous file intact and no partial one.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

PARQUET_KEY = b"latentsky.provenance"
HDF5_ATTR = "latentsky_provenance"
JSON_KEY = "provenance"
PNG_KEY = "latentsky.provenance"

PARQUET_SUFFIXES = (".parquet", ".pq")
HDF5_SUFFIXES = (".h5", ".hdf5")
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt")
FITS_SUFFIXES = (".fits", ".fit", ".fits.gz")
FITS_KEY = "LSKYPROV"


class ProvenanceError(RuntimeError):
    """A file lacks a provenance record where one is required, or the record cannot be read."""


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success move it onto ``path``, on error delete it.

    The temporary name starts with a dot and ends in the destination's suffix, so format-sniffing
    libraries (h5py, matplotlib) still see the right extension.
    """
    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=f".tmp{dest.suffix}", dir=dest.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        # mkstemp creates 0600; a released file should have the permissions of any other new file.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, dest)
        _fsync_dir(dest.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _fsync_dir(directory: Path) -> None:
    # Make the rename itself durable; some filesystems (e.g. parallel ones) do not allow it, which is fine.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# --------------------------------------------------------------------------------------------- Parquet
def to_arrow(table: Any) -> pa.Table:
    """Accept a pyarrow Table, a pandas DataFrame or a polars DataFrame."""
    if isinstance(table, pa.Table):
        return table
    if hasattr(table, "to_arrow"):  # polars
        return table.to_arrow()
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover - pandas is a dependency
        pd = None
    if pd is not None and isinstance(table, pd.DataFrame):
        return pa.Table.from_pandas(table, preserve_index=False)
    raise TypeError(f"cannot write {type(table).__name__} as Parquet; pass a pyarrow/pandas/polars table")


def write_parquet(
    table: Any,
    path: str | os.PathLike,
    provenance: Mapping[str, Any],
    *,
    compression: str = "zstd",
    row_group_size: int | None = None,
) -> Path:
    """Write ``table`` to ``path`` atomically, with ``provenance`` in the key-value metadata.

    Existing schema metadata (e.g. pandas' or a HATS writer's) is kept. The same table and record give
    the same bytes: no timestamps are added beyond those inside the record.
    """
    arrow = to_arrow(table)
    metadata = dict(arrow.schema.metadata or {})
    metadata[PARQUET_KEY] = json.dumps(dict(provenance), sort_keys=True).encode()
    arrow = arrow.replace_schema_metadata(metadata)
    with atomic_output(path) as tmp:
        pq.write_table(arrow, tmp, compression=compression, row_group_size=row_group_size)
    return Path(path)


def write_parquet_stream(
    tables: Iterable[pa.Table],
    path: str | os.PathLike,
    provenance: Mapping[str, Any],
    schema: pa.Schema,
    *,
    compression: str = "zstd",
) -> int:
    """Write ``tables`` one after another into one Parquet file at ``path``, atomically, with ``provenance`` in
    the key-value metadata — one table in memory at a time, for outputs larger than a job's memory.

    Every table must have ``schema`` (cast where only the metadata differs); with no tables the file is an
    empty table of ``schema``. Returns the number of rows written.
    """
    metadata = dict(schema.metadata or {})
    metadata[PARQUET_KEY] = json.dumps(dict(provenance), sort_keys=True).encode()
    schema = schema.with_metadata(metadata)
    n_rows = 0
    with atomic_output(path) as tmp, pq.ParquetWriter(tmp, schema, compression=compression) as writer:
        for table in tables:
            if not table.schema.equals(schema, check_metadata=False):
                raise ValueError(f"{path}: a part has columns {table.schema.names}; expected {schema.names}")
            writer.write_table(table.replace_schema_metadata(metadata))
            n_rows += table.num_rows
    return n_rows


def read_parquet_provenance(path: str | os.PathLike) -> dict[str, Any]:
    """The provenance record of a Parquet file written by :func:`write_parquet`."""
    try:
        metadata = pq.read_schema(path).metadata or {}
    except (pa.ArrowInvalid, OSError) as exc:
        raise ProvenanceError(f"{path}: not a readable Parquet file ({exc})") from exc
    if PARQUET_KEY not in metadata:
        raise ProvenanceError(f"{path}: Parquet key-value metadata has no {PARQUET_KEY.decode()!r} record")
    return _parse_record(metadata[PARQUET_KEY], path)


def _parse_record(raw: bytes | str, path: str | os.PathLike) -> dict[str, Any]:
    try:
        record = json.loads(raw)
    except ValueError as exc:  # includes UnicodeDecodeError from a damaged file
        raise ProvenanceError(f"{path}: provenance record is not valid JSON ({exc})") from exc
    if not isinstance(record, dict):
        raise ProvenanceError(f"{path}: provenance record is not a JSON object")
    return record


def parquet_num_rows(path: str | os.PathLike) -> int:
    """Row count from the Parquet footer, without reading the data."""
    return pq.ParquetFile(path).metadata.num_rows


# ------------------------------------------------------------------------------------------------ HDF5
def set_hdf5_provenance(h5file: Any, provenance: Mapping[str, Any]) -> None:
    """Store the record on an open ``h5py.File``'s root group."""
    h5file.attrs[HDF5_ATTR] = json.dumps(dict(provenance), sort_keys=True)


def read_hdf5_provenance(path: str | os.PathLike) -> dict[str, Any]:
    import h5py

    try:
        with h5py.File(path, "r") as fh:
            raw = fh.attrs.get(HDF5_ATTR)
    except OSError as exc:
        raise ProvenanceError(f"{path}: not a readable HDF5 file ({exc})") from exc
    if raw is None:
        raise ProvenanceError(f"{path}: HDF5 root has no {HDF5_ATTR!r} attribute")
    return _parse_record(raw, path)


# ------------------------------------------------------------------------------------------------ JSON
def nan_to_null(obj: Any) -> Any:
    """A copy of nested dicts/lists with every non-finite float replaced by None (JSON ``null``).

    :func:`write_json` refuses NaN (it is not JSON); call this where a figure of merit can be undefined
    (a correlation of a constant, a ratio over an empty class) and ``null`` is the honest value.
    """
    if isinstance(obj, Mapping):
        return {k: nan_to_null(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [nan_to_null(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_json(document: Mapping[str, Any], path: str | os.PathLike, provenance: Mapping[str, Any]) -> Path:
    """Write a JSON document (e.g. metrics) atomically with the record under ``"provenance"``."""
    if JSON_KEY in document:
        raise ValueError(f"{path}: document already has a top-level {JSON_KEY!r} key")
    payload = {**document, JSON_KEY: dict(provenance)}
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, sort_keys=True, allow_nan=False) + "\n")
    return Path(path)


def read_json_provenance(path: str | os.PathLike) -> dict[str, Any]:
    try:
        document = json.loads(Path(path).read_bytes())
    except (OSError, ValueError) as exc:
        raise ProvenanceError(f"{path}: not a readable JSON document ({exc})") from exc
    if not isinstance(document, dict) or JSON_KEY not in document:
        raise ProvenanceError(f"{path}: JSON document has no top-level {JSON_KEY!r} key")
    return document[JSON_KEY]


# ------------------------------------------------------------------------------------------------- PNG
def save_figure(
    figure: Any, path: str | os.PathLike, provenance: Mapping[str, Any], **savefig_kw: Any
) -> Path:
    """Save a matplotlib figure as PNG atomically with the record in a text chunk."""
    metadata = {PNG_KEY: json.dumps(dict(provenance), sort_keys=True), "Software": None}
    with atomic_output(path) as tmp:
        figure.savefig(tmp, format="png", metadata=metadata, **savefig_kw)
    return Path(path)


def read_png_provenance(path: str | os.PathLike) -> dict[str, Any]:
    from PIL import Image

    try:
        with Image.open(path) as image:
            raw = image.text.get(PNG_KEY)  # type: ignore[attr-defined]
    except OSError as exc:
        raise ProvenanceError(f"{path}: not a readable PNG file ({exc})") from exc
    if raw is None:
        raise ProvenanceError(f"{path}: PNG has no {PNG_KEY!r} text chunk")
    return _parse_record(raw, path)


# ------------------------------------------------------------------------------------------------ FITS
def write_fits(hdul: Any, path: str | os.PathLike, provenance: Mapping[str, Any]) -> Path:
    """Write an astropy ``HDUList`` atomically with the record in the primary header (``LSKYPROV``)."""
    hdul[0].header[FITS_KEY] = json.dumps(dict(provenance), sort_keys=True)
    with atomic_output(path) as tmp:
        hdul.writeto(tmp, output_verify="exception")
    return Path(path)


def read_fits_provenance(path: str | os.PathLike) -> dict[str, Any]:
    from astropy.io import fits

    try:
        header = fits.getheader(path, 0)
    except (OSError, ValueError) as exc:
        raise ProvenanceError(f"{path}: not a readable FITS file ({exc})") from exc
    if FITS_KEY not in header:
        raise ProvenanceError(f"{path}: FITS primary header has no {FITS_KEY!r} keyword")
    return _parse_record(header[FITS_KEY], path)


# ----------------------------------------------------------------------------------------- dispatching
def read_provenance(path: str | os.PathLike) -> dict[str, Any]:
    """The provenance record of any file the workflow writes, chosen by suffix.

    Raises :class:`ProvenanceError` if the file carries none (e.g. a raw survey download).
    """
    suffix = Path(path).suffix.lower()
    if str(path).lower().endswith(FITS_SUFFIXES):
        return read_fits_provenance(path)
    if suffix in PARQUET_SUFFIXES or _is_parquet(path):
        return read_parquet_provenance(path)
    if suffix in HDF5_SUFFIXES:
        return read_hdf5_provenance(path)
    if suffix == ".json":
        return read_json_provenance(path)
    if suffix == ".png":
        return read_png_provenance(path)
    if suffix in CHECKPOINT_SUFFIXES:
        return read_checkpoint_provenance(path)
    raise ProvenanceError(f"{path}: no provenance reader for files ending in {suffix!r}")


def _is_parquet(path: str | os.PathLike) -> bool:
    # Parquet files without a .parquet suffix exist: HATS' dataset/_metadata and _common_metadata.
    try:
        with open(path, "rb") as fh:
            return fh.read(4) == b"PAR1"
    except OSError:
        return False


def num_rows(path: str | os.PathLike) -> int | None:
    """Rows of a tabular file (Parquet, by suffix or magic bytes), ``None`` for other kinds."""
    if Path(path).suffix.lower() in PARQUET_SUFFIXES or _is_parquet(path):
        return parquet_num_rows(path)
    return None


_FORMAT = "latentsky-checkpoint-v1"


def save_checkpoint(state: Mapping[str, Any], path: str | os.PathLike, provenance: Mapping[str, Any]) -> Path:
    """Atomically save ``state`` (tensors, numbers, strings, nested dicts) with its provenance."""
    import torch

    payload = {"format": _FORMAT, "state": dict(state), "provenance": dict(provenance)}
    with atomic_output(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def load_checkpoint(
    path: str | os.PathLike, map_location: str = "cpu"
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Load ``(state, provenance)``. Only plain containers and tensors are unpickled (``weights_only``)."""
    import torch

    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises several unrelated types for corrupt or foreign files
        raise ProvenanceError(f"{path}: not a readable latentsky checkpoint ({exc})") from exc
    if not isinstance(payload, dict) or payload.get("format") != _FORMAT:
        raise ProvenanceError(f"{path}: not a latentsky checkpoint (missing format {_FORMAT!r})")
    return payload["state"], payload["provenance"]


def read_checkpoint_provenance(path: str | os.PathLike) -> dict[str, Any]:
    return load_checkpoint(path)[1]
