"""The XP source tables of the real-data routes: which Gaia stars the APOGEE DR17 cross-match asks for, the
APOGEE labels joined to XP rows by source_id, and the fetched parts merged into one table (spec §A4.2).

``xp.kind: file`` (a user's tables, rule prepare_xp_sources) and ``xp.kind: apogee_crossmatch`` (the archive's,
rules fetch_xp_part and xp_sources_from_parts) both end in ``results/sources/xp/{crossmatch,unlabelled}.parquet``
in the layout of :func:`latentsky.io.gaia_xp.xp_table_to_arrow`, with the allStar label columns (DR17 names)
beside the cross-match rows.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from latentsky.provenance.files import PARQUET_KEY, atomic_output
from latentsky.xp.catalog import LABEL_COLUMNS

__all__ = [
    "ALLSTAR_JOINED_COLUMNS",
    "allstar_label_columns",
    "append_allstar_labels",
    "crossmatch_source_ids",
    "ids_of_part",
    "merge_xp_parts",
]

#: allStar columns carried into the cross-match table (the Cannon's labels, their errors and the star's id).
ALLSTAR_JOINED_COLUMNS = (*LABEL_COLUMNS.values(), "TEFF_ERR", "LOGG_ERR", "M_H_ERR", "APOGEE_ID")


def crossmatch_source_ids(allstar: pd.DataFrame) -> np.ndarray:
    """The distinct Gaia DR3 source_ids of the APOGEE stars (:func:`latentsky.fetch.gaia_xp.read_apogee_allstar`
    rows), sorted: one per star, its highest-S/N row (``duplicate`` rows left out), stars without a Gaia
    counterpart (``no_gaia_id``) left out — they have no XP spectrum to ask for. Two APOGEE stars with one Gaia
    source (a blend in Gaia) ask for it once."""
    stars = allstar[~allstar["duplicate"] & ~allstar["no_gaia_id"]]
    return np.unique(stars["GAIAEDR3_SOURCE_ID"].to_numpy(dtype=np.int64))


def allstar_label_columns(allstar: pd.DataFrame, source_ids: np.ndarray) -> dict[str, np.ndarray]:
    """:data:`ALLSTAR_JOINED_COLUMNS` for each of ``source_ids`` (NaN, or None for APOGEE_ID, where no APOGEE
    star has that Gaia source): the star's highest-S/N row; of two APOGEE stars on one Gaia source the first."""
    stars = allstar[~allstar["duplicate"] & ~allstar["no_gaia_id"]].drop_duplicates("GAIAEDR3_SOURCE_ID")
    stars = stars.set_index("GAIAEDR3_SOURCE_ID").reindex(np.asarray(source_ids, dtype=np.int64))
    return {c: stars[c].to_numpy() for c in ALLSTAR_JOINED_COLUMNS if c in stars.columns}


def append_allstar_labels(table: pa.Table, allstar: pd.DataFrame) -> pa.Table:
    """``table`` (XP rows with ``source_id``) with :func:`allstar_label_columns` appended; a star without an
    APOGEE row gets nulls."""
    ids = table.column("source_id").to_numpy()
    for name, values in allstar_label_columns(allstar, ids).items():
        kind = pa.string() if values.dtype == object else None
        table = table.append_column(name, pa.array(values, type=kind, from_pandas=True))
    return table


def ids_of_part(source_ids: np.ndarray, part: int, n_parts: int) -> np.ndarray:
    """The ids of fetch job ``part`` of ``n_parts``: source_id modulo ``n_parts`` (known before any id list is
    fetched, so the jobs need no checkpoint; Gaia source_ids' low bits are a running number, so the parts are
    of near-equal size)."""
    if not 0 <= part < n_parts:
        raise ValueError(f"part {part} is not in 0…{n_parts - 1}")
    ids = np.asarray(source_ids, dtype=np.int64)
    return ids[ids % n_parts == part]


def merge_xp_parts(
    parts: Sequence[str | os.PathLike],
    out_path: str | os.PathLike,
    provenance: Mapping[str, Any],
    *,
    allstar: pd.DataFrame | None = None,
    batch_rows: int = 20_000,
) -> int:
    """Concatenate fetched XP part files (same layout) into ``out_path``, a batch of rows at a time (the
    packed correlations are 12 kB a star: 500,000 stars do not fit in a job's memory at once), with the
    allStar label columns appended when ``allstar`` is given. Each part's fetch record
    (``latentsky.fetch``) is kept in the output's metadata under ``latentsky.fetch_parts``. Returns the rows.
    """
    if not parts:
        raise ValueError(f"{out_path}: no XP part files to merge")
    schema = pq.read_schema(parts[0])
    fetches = []
    for path in parts:
        other = pq.read_schema(path)
        if other.remove_metadata() != schema.remove_metadata():
            raise ValueError(f"{path}: its columns differ from {parts[0]}'s; expected the same XP layout")
        record = (other.metadata or {}).get(b"latentsky.fetch")
        fetches.append(json.loads(record) if record else None)
    n_rows = 0
    with atomic_output(out_path) as tmp:
        writer: pq.ParquetWriter | None = None
        try:
            for path in parts:
                for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_rows):
                    table = pa.Table.from_batches([batch])
                    if allstar is not None:
                        table = append_allstar_labels(table, allstar)
                    if writer is None:
                        metadata = {
                            PARQUET_KEY: json.dumps(dict(provenance), sort_keys=True).encode(),
                            b"latentsky.fetch_parts": json.dumps(fetches, sort_keys=True).encode(),
                        }
                        writer = pq.ParquetWriter(
                            tmp, table.schema.with_metadata(metadata), compression="zstd"
                        )
                    writer.write_table(table.replace_schema_metadata(writer.schema.metadata))
                    n_rows += table.num_rows
            if writer is None:  # every part empty: an empty table in the same layout
                empty = schema.empty_table()
                if allstar is not None:
                    empty = append_allstar_labels(empty, allstar)
                metadata = {PARQUET_KEY: json.dumps(dict(provenance), sort_keys=True).encode()}
                pq.write_table(empty.replace_schema_metadata(metadata), tmp, compression="zstd")
        finally:
            if writer is not None:
                writer.close()
    return n_rows
