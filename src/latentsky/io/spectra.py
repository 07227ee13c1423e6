"""Small helpers for spectra stored one per row in Parquet list columns."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

__all__ = [
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
