"""Small helpers for spectra stored one per row in Parquet list columns."""

from __future__ import annotations

import os
from collections.abc import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute  # noqa: F401 - makes pa.compute available
import pyarrow.parquet as pq

__all__ = [
    "list_column",
    "read_list_column",
    "stack_column",
]


def stack_column(values: Iterable, dtype: type = np.float32) -> np.ndarray:
    """(N, L) array from N equal-length list/array cells (e.g. the ``flux`` column of a spectra table);
    (0, 0) for none. Cells of different lengths raise ValueError naming the first odd row."""
    rows = [np.asarray(v, dtype=dtype) for v in values]
    if not rows:
        return np.zeros((0, 0), dtype=dtype)
    length = rows[0].shape[0]
    for i, r in enumerate(rows):
        if r.shape != (length,):
            raise ValueError(f"row {i} has {r.shape[0] if r.ndim else 0} values, expected {length}")
    return np.stack(rows)


def list_column(values: np.ndarray, dtype: type = np.float32) -> pa.FixedSizeListArray:
    """A Parquet list column (one fixed-length list per row) from an (N, L) array, without a Python loop."""
    values = np.ascontiguousarray(values, dtype=dtype)
    if values.ndim != 2:
        raise ValueError(f"list_column needs an (N, L) array, got shape {values.shape}")
    return pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1)), values.shape[1])


def read_list_column(path: str | os.PathLike, column: str, dtype: type = np.float32) -> np.ndarray:
    """The (N, L) array of a list column of a Parquet file (rows with a null cell are NaN), read without a
    Python loop; a ragged column raises ValueError naming the file and column."""
    table = pq.read_table(path, columns=[column])
    chunked = table.column(column)
    if table.num_rows == 0:
        return np.zeros((0, 0), dtype=dtype)
    lengths = pa.compute.list_value_length(chunked).to_numpy(zero_copy_only=False)
    valid = lengths[~np.isnan(lengths.astype(float))] if lengths.dtype.kind == "f" else lengths
    width = int(np.max(valid)) if len(valid) else 0
    out = np.full((table.num_rows, width), np.nan, dtype=dtype)
    filled = np.asarray(pa.compute.is_valid(chunked).to_numpy(zero_copy_only=False), dtype=bool)
    if np.any(np.asarray(lengths)[filled] != width):
        raise ValueError(f"{path}: column {column} has lists of different lengths, expected {width} each")
    flat = pa.compute.list_flatten(chunked).to_numpy(zero_copy_only=False)
    out[filled] = np.asarray(flat, dtype=dtype).reshape(-1, width)
    return out
