"""Comparing two runs of the workflow: the same config must give the same data.

What is compared, and what is not (explicitly):

* **Parquet**: the tables' data — column names, types and every value, in row order — through pyarrow,
  *without* the file's key-value metadata. That metadata holds the provenance record (creation time, host,
  input hashes of files that themselves embed times), which differs between runs by nature; the data
  must not.
* **JSON** (metrics): the document less its top-level ``"provenance"`` key.
* **The release manifest** (``release/manifest.parquet``): every column but ``sha256`` and ``size`` — both
  describe the bytes of files that embed their provenance, so they differ whenever the provenance does: the
  hash always, the size when a record's text changes length (a config path, an input's name), while the
  data are the same (:data:`VOLATILE_COLUMNS`). ``n_rows`` and the file list are compared.

Everything else — figures (PNG text chunks carry provenance, and matplotlib's output may differ across
versions), HDF5, checkpoints — is left out: their numbers are checked through the Parquet and JSON files
derived from them.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.parquet as pq

from latentsky.provenance.files import JSON_KEY

__all__ = [
    "VOLATILE_COLUMNS",
    "TreeComparison",
    "compare_parquet_trees",
    "parquet_data_equal",
    "json_data_equal",
]

#: Columns left out of the comparison, by file name: values derived from provenance-bearing bytes.
VOLATILE_COLUMNS = {"manifest.parquet": ("sha256", "size")}


@dataclass
class TreeComparison:
    """Result of :func:`compare_parquet_trees`: files compared and what differed (path: reason)."""

    compared: int = 0
    mismatches: dict[str, str] = field(default_factory=dict)


def parquet_data_equal(a: str | os.PathLike, b: str | os.PathLike) -> str | None:
    """None when the two Parquet files hold the same data (metadata ignored), else what differs."""
    ta = pq.read_table(a).replace_schema_metadata(None)
    tb = pq.read_table(b).replace_schema_metadata(None)
    volatile = [c for c in VOLATILE_COLUMNS.get(Path(a).name, ()) if c in ta.column_names]
    ta, tb = ta.drop_columns(volatile), tb.drop_columns([c for c in volatile if c in tb.column_names])
    if ta.schema != tb.schema:
        return f"schema differs: {ta.schema} vs {tb.schema}"
    if ta.num_rows != tb.num_rows:
        return f"{ta.num_rows} vs {tb.num_rows} rows"
    for name in ta.column_names:
        if not ta[name].equals(tb[name]):
            return f"column {name!r} differs"
    return None


def json_data_equal(a: str | os.PathLike, b: str | os.PathLike) -> str | None:
    """None when the two JSON documents agree outside their ``provenance`` key, else the differing keys."""
    da, db = (json.loads(Path(p).read_text()) for p in (a, b))
    if isinstance(da, dict) and isinstance(db, dict):
        da.pop(JSON_KEY, None)
        db.pop(JSON_KEY, None)
        if da != db:
            keys = sorted(k for k in set(da) | set(db) if da.get(k) != db.get(k))
            return f"keys differ: {keys}"
        return None
    return None if da == db else "documents differ"


def compare_parquet_trees(a: str | os.PathLike, b: str | os.PathLike) -> TreeComparison:
    """Compare every ``*.parquet`` and ``*.json`` under ``a`` with the file at the same relative path
    under ``b`` (module docstring for what is compared). A file present in one tree only is a mismatch."""
    a, b = Path(a), Path(b)
    result = TreeComparison()
    for suffix, equal in ((".parquet", parquet_data_equal), (".json", json_data_equal)):
        names_a = {p.relative_to(a) for p in a.rglob(f"*{suffix}")}
        names_b = {p.relative_to(b) for p in b.rglob(f"*{suffix}")}
        for rel in sorted(names_a ^ names_b):
            result.mismatches[str(rel)] = f"only in {a if rel in names_a else b}"
        for rel in sorted(names_a & names_b):
            result.compared += 1
            why = equal(a / rel, b / rel)
            if why is not None:
                result.mismatches[str(rel)] = why
    return result
