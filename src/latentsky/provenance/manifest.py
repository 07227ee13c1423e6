"""The release manifest: every released file with its sha256, size and row count.

``results/release/manifest.parquet`` is the list an auditor starts from (``latentsky audit``); beside it
``manifest.sha256`` holds the same hashes in ``sha256sum -c`` format for checking without Python.
Paths are relative to the workflow root, like every path inside a provenance record.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from latentsky.provenance.files import atomic_output, num_rows, write_parquet
from latentsky.provenance.record import relative_path, sha256_file

MANIFEST_RELPATH = Path("results/release/manifest.parquet")

MANIFEST_SCHEMA = pa.schema(
    [
        ("path", pa.string()),
        ("sha256", pa.string()),
        ("size", pa.int64()),
        ("n_rows", pa.int64()),
        ("kind", pa.string()),
    ]
)


def manifest_table(files: Iterable[str | os.PathLike], root: str | os.PathLike | None = None) -> pa.Table:
    """One manifest row per file, sorted by path so the table does not depend on input order."""
    rows = []
    for f in files:
        p = Path(f)
        if not p.is_file():
            raise FileNotFoundError(f"release: {p} is listed for release but does not exist")
        rows.append(
            {
                "path": relative_path(p, root),
                "sha256": sha256_file(p),
                "size": p.stat().st_size,
                "n_rows": num_rows(p),
                "kind": p.suffix.lstrip(".").lower() or "file",
            }
        )
    rows.sort(key=lambda r: r["path"])
    paths = [r["path"] for r in rows]
    if len(set(paths)) != len(paths):
        raise ValueError("release: a file is listed twice")
    return pa.Table.from_pylist(rows, schema=MANIFEST_SCHEMA)


def write_manifest(
    files: Iterable[str | os.PathLike],
    manifest_path: str | os.PathLike,
    checksum_path: str | os.PathLike,
    provenance: Mapping[str, Any],
    root: str | os.PathLike | None = None,
) -> pa.Table:
    """Write the manifest Parquet (with provenance) and its ``sha256sum``-format twin."""
    table = manifest_table(files, root)
    write_parquet(table, manifest_path, provenance)
    with atomic_output(checksum_path) as tmp:
        pairs = zip(table["sha256"].to_pylist(), table["path"].to_pylist(), strict=True)
        lines = [f"{digest}  {path}\n" for digest, path in pairs]
        tmp.write_text("".join(lines))
    return table


def read_manifest(path: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """Manifest rows keyed by relative path."""
    try:
        table = pq.read_table(path, columns=MANIFEST_SCHEMA.names)
    except (OSError, pa.ArrowInvalid, KeyError) as exc:
        raise ValueError(
            f"{path}: not a latentsky manifest (expected Parquet with columns {MANIFEST_SCHEMA.names})"
        ) from exc
    return {row["path"]: row for row in table.to_pylist()}
