"""2-D reddening maps in the OGLE form: sight lines with E(V−I) and, where the map gives it, A_I.

The OGLE-based maps — Nataf et al. (2013) for the Galactic bulge (VizieR J/ApJ/769/88: E(V−I) and A_I per
sight line), Skowron et al. (2021) for the Magellanic Clouds (E(V−I) per sight line) — are what an OGLE
variable's photometry is dereddened with. Export one from VizieR as CSV or Parquet with the columns
``ra``, ``dec`` (deg, J2000), ``e_v_i`` (mag) and optionally ``a_i`` (mag); :func:`read_reddening_map`
reads it and :func:`reddening_at` looks up the nearest sight line of each star.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
from astropy import units as u
from astropy.coordinates import SkyCoord

__all__ = ["REDDENING_MAP_COLUMNS", "read_reddening_map", "reddening_at"]

#: Required columns and their meaning.
REDDENING_MAP_COLUMNS: dict[str, str] = {
    "ra": "right ascension (deg, J2000)",
    "dec": "declination (deg, J2000)",
    "e_v_i": "reddening E(V−I) (mag)",
}


def read_reddening_map(path: str | os.PathLike, r_i: float) -> pd.DataFrame:
    """Read a reddening map (CSV or Parquet) into ``ra``, ``dec``, ``e_v_i``, ``a_i``.

    Parameters
    ----------
    path : the file; ``.parquet`` is read as Parquet, anything else as CSV.
    r_i : A_I / E(V−I) used where the map has no ``a_i`` column (or a row has no A_I): 1.5 for an R_V = 3.1
        law, ≈ 1.2 towards the bulge (Nataf et al. 2013, who give A_I themselves).

    Raises
    ------
    ValueError
        One line naming the file and the column: a missing required column, a non-numeric or non-finite
        coordinate, a negative or non-finite E(V−I), or an empty map.
    """
    path = Path(path)
    try:
        table = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    except (OSError, ValueError, pd.errors.ParserError) as err:
        raise ValueError(f"{path}: not a readable reddening map ({err})") from None
    missing = [c for c in REDDENING_MAP_COLUMNS if c not in table.columns]
    if missing:
        expected = ", ".join(f"{c} ({d})" for c, d in REDDENING_MAP_COLUMNS.items())
        raise ValueError(f"{path}: reddening map lacks column(s) {missing}; expected {expected}")
    if table.empty:
        raise ValueError(f"{path}: reddening map has no rows")
    out = pd.DataFrame()
    for col in (*REDDENING_MAP_COLUMNS, "a_i"):
        if col not in table.columns:
            continue
        values = pd.to_numeric(table[col], errors="coerce").to_numpy(np.float64)
        if col in ("ra", "dec"):
            bad, expected = ~np.isfinite(values), "a finite number (deg)"
        elif col == "e_v_i":
            bad, expected = ~np.isfinite(values) | (values < 0), "a finite value ≥ 0 mag"
        else:  # a_i: empty is allowed (r_i × E(V−I) is used)
            bad, expected = values < 0, "a value ≥ 0 mag or empty"
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"{path}: column {col} row {row} is {table[col].iloc[row]!r}; expected {expected}"
            )
        out[col] = values
    if not (np.abs(out["dec"]) <= 90).all():
        raise ValueError(f"{path}: column dec outside [−90, 90] deg")
    if not np.isfinite(r_i) or r_i <= 0:
        raise ValueError(f"reddening r_i must be a positive A_I/E(V−I), got {r_i}")
    fallback = r_i * out["e_v_i"].to_numpy()
    out["a_i"] = np.where(np.isfinite(out["a_i"]), out["a_i"], fallback) if "a_i" in out else fallback
    return out[["ra", "dec", "e_v_i", "a_i"]]


def reddening_at(
    ra: np.ndarray, dec: np.ndarray, reddening_map: pd.DataFrame, max_separation_arcmin: float
) -> pd.DataFrame:
    """E(V−I) and A_I of the nearest sight line of each position; NaN beyond ``max_separation_arcmin``
    (outside the map) or for a NaN position.

    Returns a frame aligned with the input: ``e_v_i``, ``a_i`` (mag) and ``separation_arcmin``.
    """
    ra = np.asarray(ra, dtype=np.float64)
    dec = np.asarray(dec, dtype=np.float64)
    e_v_i = np.full(ra.size, np.nan)
    a_i = np.full(ra.size, np.nan)
    sep = np.full(ra.size, np.nan)
    ok = np.isfinite(ra) & np.isfinite(dec)
    if ok.any():
        stars = SkyCoord(ra[ok] * u.deg, dec[ok] * u.deg)
        lines = SkyCoord(reddening_map["ra"].to_numpy() * u.deg, reddening_map["dec"].to_numpy() * u.deg)
        idx, d2d, _ = stars.match_to_catalog_sky(lines)
        sep[ok] = d2d.arcmin
        inside = d2d.arcmin <= max_separation_arcmin
        pos = np.flatnonzero(ok)[inside]
        e_v_i[pos] = reddening_map["e_v_i"].to_numpy()[idx[inside]]
        a_i[pos] = reddening_map["a_i"].to_numpy()[idx[inside]]
    return pd.DataFrame({"e_v_i": e_v_i, "a_i": a_i, "separation_arcmin": sep})
