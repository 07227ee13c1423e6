"""Gaia source_id ↔ HEALPix arithmetic and sky partitioning.

Gaia encodes the level-12 nested HEALPix index (ICRS) of a source's position in its ``source_id``:
``source_id = healpix_level12 * 2**35 + running_number`` (Gaia DR2/DR3 data model, "source_id").
A partition of order ``N`` therefore holds a contiguous source_id range, which is why the archive's bulk
files, sorted by source_id, are also sorted by HEALPix, and why a TAP query for one partition is a
``source_id BETWEEN lo AND hi`` range.
"""

from __future__ import annotations

import numpy as np
from astropy import units as u
from astropy_healpix import HEALPix

#: HEALPix level encoded in Gaia source_ids.
GAIA_SOURCE_ID_LEVEL = 12
#: Number of bits below the level-12 index in a source_id.
GAIA_SOURCE_ID_SHIFT = 35
_MAX_RUNNING = 2**GAIA_SOURCE_ID_SHIFT


def npix(order: int) -> int:
    """Number of HEALPix pixels at ``order`` (nside = 2**order)."""
    _check_order(order)
    return 12 * 4**order


def _check_order(order: int) -> None:
    if not 0 <= int(order) <= GAIA_SOURCE_ID_LEVEL:
        raise ValueError(f"HEALPix order must be in 0..{GAIA_SOURCE_ID_LEVEL}, got {order}")


def radec_to_healpix(ra_deg: np.ndarray, dec_deg: np.ndarray, order: int) -> np.ndarray:
    """Nested HEALPix index (ICRS) at ``order`` of positions in degrees."""
    _check_order(order)
    hp = HEALPix(nside=2**order, order="nested")
    return np.asarray(
        hp.lonlat_to_healpix(np.asarray(ra_deg) * u.deg, np.asarray(dec_deg) * u.deg), dtype=np.int64
    )


def make_source_ids(healpix_level12: np.ndarray, running_number: np.ndarray) -> np.ndarray:
    """Build Gaia-style source_ids from level-12 nested indices and per-pixel running numbers."""
    hp12 = np.asarray(healpix_level12, dtype=np.int64)
    run = np.asarray(running_number, dtype=np.int64)
    if np.any(hp12 < 0) or np.any(hp12 >= npix(GAIA_SOURCE_ID_LEVEL)):
        raise ValueError("level-12 HEALPix index out of range")
    if np.any(run < 0) or np.any(run >= _MAX_RUNNING):
        raise ValueError(f"running number must be in [0, 2**{GAIA_SOURCE_ID_SHIFT})")
    return hp12 * _MAX_RUNNING + run


def running_numbers(healpix_level12: np.ndarray) -> np.ndarray:
    """0, 1, 2, … within each level-12 pixel, in input order: the low bits of simulated source_ids."""
    hp12 = np.asarray(healpix_level12, dtype=np.int64)
    order = np.argsort(hp12, kind="stable")
    sorted_hp = hp12[order]
    start = np.flatnonzero(np.r_[True, sorted_hp[1:] != sorted_hp[:-1]])
    group_start = np.repeat(start, np.diff(np.r_[start, sorted_hp.size]))
    run = np.empty_like(hp12)
    run[order] = np.arange(hp12.size) - group_start
    return run


def source_id_to_healpix(source_id: np.ndarray, order: int = GAIA_SOURCE_ID_LEVEL) -> np.ndarray:
    """Nested HEALPix index at ``order`` encoded in Gaia source_ids."""
    _check_order(order)
    sid = np.asarray(source_id, dtype=np.int64)
    return (sid // _MAX_RUNNING) >> (2 * (GAIA_SOURCE_ID_LEVEL - order))


def source_id_range(pixel: int, order: int) -> tuple[int, int]:
    """Inclusive source_id range ``(lo, hi)`` of the order-``order`` pixel ``pixel``."""
    _check_order(order)
    if not 0 <= pixel < npix(order):
        raise ValueError(f"pixel {pixel} outside 0..{npix(order) - 1} at order {order}")
    width = 4 ** (GAIA_SOURCE_ID_LEVEL - order) * _MAX_RUNNING
    return pixel * width, (pixel + 1) * width - 1


def neighbours_in(pixel: int, order: int, among: list[int] | None = None) -> list[int]:
    """``pixel`` and its (up to 8) nested neighbours at ``order``, sorted; restricted to ``among`` if given.

    A star's ``source_id`` fixes its level-12 pixel when the source is first created, but its catalogued
    position can move across a pixel edge in later processing (Gaia DR3 documentation, source_id). A
    partition *by position* therefore draws its stars from its own source_id range and its neighbours'.
    """
    import warnings

    from astropy_healpix import neighbours

    _check_order(order)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # missing neighbours come back as −1
        found = np.asarray(neighbours(int(pixel), 2**order, order="nested")).ravel()
    result = sorted({int(pixel), *(int(p) for p in found if p >= 0)})
    if among is not None:
        allowed = set(int(p) for p in among)
        result = [p for p in result if p in allowed]
    return result
