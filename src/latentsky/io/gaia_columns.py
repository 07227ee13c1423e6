"""The canonical Gaia columns and their units, defined once for every reader, fetcher and method.

From whatever columns a Gaia archive product has (DR2 or DR3 names, any case), :func:`normalise_gaia_columns`
builds the columns the distance model needs: magnitude errors from the flux-over-error columns plus
the zero-point uncertainty (Evans et al. 2018), and RUWE for DR2 from the along-scan χ² and the
number of good observations with Lindegren et al.'s (2018) u0 normalisation (ESA's table, or an empirical
one that every row it normalised records in ``ruwe_empirical_u0``). The columns that the archive queries
ask for (:data:`DR2_COLUMNS`, :data:`DR3_COLUMNS`) and that the OGLE cross-match reads
(:data:`GAIA_COLUMNS`) are listed here too. Bad input raises :class:`GaiaTableError` (a ``ValueError``)
naming the file, the column and what was expected.
"""

from __future__ import annotations

import logging
import math
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from astropy import units as u

__all__ = [
    "DR2_COLUMNS",
    "DR3_COLUMNS",
    "ESA_U0_TABLE_FILES",
    "LINDEGREN2021_COLUMNS",
]

log = logging.getLogger(__name__)

#: Output columns, in this order, before the pass-through columns.
CANONICAL_COLUMNS: tuple[str, ...] = (
    "source_id",
    "ra",
    "dec",
    "parallax",
    "parallax_error",
    "phot_g_mean_mag",
    "phot_bp_mean_mag",
    "phot_rp_mean_mag",
    "bp_rp",
    "bp_g",
    "phot_g_mean_mag_error",
    "phot_bp_mean_mag_error",
    "phot_rp_mean_mag_error",
    "ruwe",
    "ruwe_empirical_u0",
)

#: Unit of each canonical float column (Gaia DR2/DR3 data model). Files that carry units (ECSV, VOTable,
#: FITS, TAP JSON) are converted to these; CSV and Parquet carry none and are taken to be in them.
CANONICAL_UNITS: dict[str, u.UnitBase] = {
    "ra": u.deg,
    "dec": u.deg,
    "parallax": u.mas,
    "parallax_error": u.mas,
    **{f"phot_{b}_mean_mag": u.mag for b in ("g", "bp", "rp")},
    **{f"phot_{b}_mean_mag_error": u.mag for b in ("g", "bp", "rp")},
    "bp_rp": u.mag,
    "bp_g": u.mag,
}

BANDS: tuple[str, ...] = ("g", "bp", "rp")

#: Uncertainty of the Gaia DR2 photometric zero points (Vega), mag: Evans et al. (2018, A&A 616, A4),
#: Sec. 5.4 / Table 3. The catalog's flux errors are internal (photon noise and calibration scatter) and
#: leave out this systematic term, which every star shares; it sets the floor of the magnitude error of
#: bright stars (≈1–2 mmag) and is added in quadrature, as the DR2 documentation recommends.
ZERO_POINT_ERROR_MAG: dict[str, float] = {"g": 0.0018, "bp": 0.0014, "rp": 0.0019}

#: 2.5 / ln 10: first-order propagation of a fractional flux error to magnitudes, σ_m = 1.0857 σ_F / F.
MAG_PER_FRACTIONAL_FLUX = 2.5 / math.log(10.0)

#: Percentile of the unit-weight error that defines the DR2 RUWE normalisation u0 (Lindegren et al. 2018,
#: GAIA-C3-TN-LU-LL-124, Sec. 2): the percentile is chosen so that u0 tracks the mode of the UWE
#: distribution of well-behaved sources rather than the tail of binaries and crowded sources.
U0_PERCENTILE = 41.4
#: Minimum number of stars with a valid UWE in a bin of the empirical u0 normalisation. 100 stars fix the
#: 41.4th percentile to ≈ ±0.05 of the UWE distribution's width (binomial error √(p(1−p)/n) in rank).
U0_MIN_COUNT = 100
#: Caps on the empirical binning: 0.1-mag G bins over G ≈ 3–21 and 0.1–0.2-mag colour bins over the
#: populated BP−RP range, the resolution at which Lindegren et al. (2018) found u0 to vary.
U0_MAX_G_BINS = 180
U0_MAX_COLOUR_BINS = 30


class GaiaTableError(ValueError):
    """A Gaia table cannot be read or lacks what the distance model needs; the message names the file."""


# ------------------------------------------------------------------------------------ normalisation
def _column_index(frame: pd.DataFrame, source: str) -> dict[str, str]:
    """Lower-cased name → actual name, refusing names that differ only in case."""
    index: dict[str, str] = {}
    for name in frame.columns:
        key = str(name).lower()
        if key in index:
            raise GaiaTableError(
                f"{source}: columns {index[key]!r} and {name!r} differ only in case; cannot tell which is "
                "meant"
            )
        index[key] = str(name)
    return index


def _to_float(series: pd.Series, column: str, source: str, unit: str) -> np.ndarray:
    """A column as float64 with every missing value NaN; non-numeric entries are an error."""
    if pd.api.types.is_bool_dtype(series.dtype):
        raise GaiaTableError(f"{source}: column {column!r} is boolean; expected numbers ({unit})")
    if pd.api.types.is_numeric_dtype(series.dtype):
        return series.to_numpy(dtype=np.float64, na_value=np.nan)
    converted = pd.to_numeric(series, errors="coerce")
    text = series.astype("string").str.strip()
    missing = (
        series.isna() | (text == "") | text.str.lower().isin(["nan", "null", "none", "--"]).fillna(False)
    )
    bad = converted.isna() & ~missing
    if bad.any():
        rows = np.flatnonzero(bad.to_numpy())
        examples = ", ".join(f"row {r}: {series.iloc[r]!r}" for r in rows[:3])
        raise GaiaTableError(
            f"{source}: column {column!r} must be numeric ({unit}); {len(rows)} non-numeric value(s), "
            f"e.g. {examples}"
        )
    return converted.to_numpy(dtype=np.float64, na_value=np.nan)


_TRUE_TEXT = frozenset({"true", "t", "1"})
_FALSE_TEXT = frozenset({"false", "f", "0"})


def _to_bool(series: pd.Series, column: str, source: str) -> np.ndarray:
    """A boolean column (bool, 0/1, or the text true/false) as a NumPy bool array; missing is False."""
    if pd.api.types.is_bool_dtype(series.dtype):
        return series.to_numpy(dtype=bool, na_value=False)
    if pd.api.types.is_integer_dtype(series.dtype):
        values = series.to_numpy(dtype=np.int64, na_value=0)
        if np.isin(values, (0, 1)).all():
            return values == 1
    else:
        text = series.astype("string").str.strip().str.lower().fillna("false")
        if text.isin(_TRUE_TEXT | _FALSE_TEXT).all():
            return text.isin(_TRUE_TEXT).to_numpy(dtype=bool)
    raise GaiaTableError(f"{source}: column {column!r} must be boolean (true/false)")


def _to_source_id(series: pd.Series, column: str, source: str) -> np.ndarray:
    if series.isna().any():
        rows = np.flatnonzero(series.isna().to_numpy())
        raise GaiaTableError(
            f"{source}: column {column!r} has {len(rows)} missing value(s) (first at row {rows[0]})"
        )
    if pd.api.types.is_integer_dtype(series.dtype):
        return series.to_numpy(dtype=np.int64)
    if pd.api.types.is_float_dtype(series.dtype):
        # Gaia source_ids reach 6.9e18; a float64 holds integers exactly only up to 2**53 ≈ 9e15, so a
        # float column has already lost the low bits of the id.
        raise GaiaTableError(
            f"{source}: column {column!r} was stored as floating point, which cannot hold Gaia source_ids "
            "(up to 6.9e18) exactly; expected 64-bit integers"
        )
    try:
        return np.array([int(str(v).strip()) for v in series], dtype=np.int64)
    except (ValueError, OverflowError) as exc:
        raise GaiaTableError(f"{source}: column {column!r} must hold 64-bit integers: {exc}") from exc


def _unit_factor(declared: str | None, column: str, source: str) -> float:
    """Factor converting a column in its declared unit to the canonical unit (1 if none declared)."""
    target = CANONICAL_UNITS.get(column)
    if declared is None or target is None or declared.strip() in ("", "None"):
        return 1.0
    unit = u.Unit(declared, parse_strict="silent")
    if isinstance(unit, u.UnrecognizedUnit):
        log.warning("%s: unit %r of column %r not understood; assuming %s", source, declared, column, target)
        return 1.0
    # "mag" is a function unit in astropy that converts to nothing (unit.to() is not meaningful for it), so
    # magnitudes are compared by identity in both directions.
    if (target == u.mag) != (unit == u.mag):
        raise GaiaTableError(f"{source}: column {column!r} has unit {declared!r}; expected {target}")
    if target == u.mag:
        return 1.0
    try:
        return float(unit.to(target))
    except (u.UnitsError, TypeError, ValueError) as exc:
        raise GaiaTableError(f"{source}: column {column!r} has unit {declared!r}; expected {target}") from exc


def magnitude_error(flux_over_error: np.ndarray, zero_point_error: float) -> np.ndarray:
    """Magnitude uncertainty from a flux signal-to-noise, with the zero-point uncertainty in quadrature.

    Parameters
    ----------
    flux_over_error
        ``phot_*_mean_flux_over_error`` (dimensionless). Values ≤ 0 or NaN give NaN.
    zero_point_error
        Zero-point uncertainty of the band, mag (:data:`ZERO_POINT_ERROR_MAG`).

    Returns
    -------
    numpy.ndarray
        σ_m = √((2.5/ln 10 / (F/σ_F))² + σ_ZP²), mag (Evans et al. 2018, Sec. 5.4 and eq. 3 of the Gaia DR2
        photometric documentation).
    """
    snr = np.asarray(flux_over_error, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        internal = np.where(snr > 0, MAG_PER_FRACTIONAL_FLUX / np.where(snr > 0, snr, 1.0), np.nan)
    return np.hypot(internal, zero_point_error)


def unit_weight_error(chi2_al: np.ndarray, n_good_obs_al: np.ndarray) -> np.ndarray:
    """Astrometric unit-weight error UWE = √(χ²_AL / (N_good − 5)) (Lindegren et al. 2018, TN LU-LL-124).

    Parameters
    ----------
    chi2_al
        ``astrometric_chi2_al`` (dimensionless).
    n_good_obs_al
        ``astrometric_n_good_obs_al``; five parameters are fitted, so N_good ≤ 5 gives NaN.
    """
    chi2 = np.asarray(chi2_al, dtype=np.float64)
    dof = np.asarray(n_good_obs_al, dtype=np.float64) - 5.0
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where((dof > 0) & (chi2 >= 0), np.sqrt(np.where(dof > 0, chi2 / dof, np.nan)), np.nan)


def _split_equal(order: np.ndarray, n_bins: int) -> list[np.ndarray]:
    return [chunk for chunk in np.array_split(order, n_bins) if chunk.size]


def empirical_u0(
    uwe: np.ndarray,
    g_mag: np.ndarray,
    bp_rp: np.ndarray,
    *,
    percentile: float = U0_PERCENTILE,
    min_count: int = U0_MIN_COUNT,
    max_g_bins: int = U0_MAX_G_BINS,
    max_colour_bins: int = U0_MAX_COLOUR_BINS,
) -> np.ndarray:
    """Empirical DR2 RUWE normalisation u0(G, BP−RP): the 41.4th UWE percentile in bins of G and colour.

    This is Lindegren et al.'s (2018, GAIA-C3-TN-LU-LL-124) definition applied to the table at hand. It is
    only meaningful for large, *unselected* tables (they used all of DR2): a cluster member list or a
    quality-cut sample has a different UWE distribution than the sky, and a small table gives noisy
    percentiles, so for such tables the result is an approximation. Use the official ESA table
    (``u0_table`` of :func:`read_gaia_table`) wherever the result matters.

    Binning: stars are sorted by G and split into ``n_g = min(N // min_count, max_g_bins)`` bins of equal
    count, so every bin holds at least ``min_count`` stars. Within a G bin, stars with a colour are split
    the same way by BP−RP when there are at least ``2 min_count`` of them (at most ``max_colour_bins``
    bins); stars without a colour, and all stars of bins too small to split, get the G bin's percentile.
    With fewer than ``min_count`` valid stars in the whole table, every star gets the table's percentile.

    Parameters
    ----------
    uwe
        Unit-weight errors (:func:`unit_weight_error`); NaN entries take no part and get u0 all the same.
    g_mag, bp_rp
        G magnitude and BP−RP colour, mag; NaN colour is allowed.
    percentile, min_count, max_g_bins, max_colour_bins
        See above.

    Returns
    -------
    numpy.ndarray
        u0 for every star (NaN only if no star has a valid UWE).
    """
    uwe = np.asarray(uwe, dtype=np.float64)
    g = np.asarray(g_mag, dtype=np.float64)
    colour = np.asarray(bp_rp, dtype=np.float64)
    u0 = np.full(uwe.shape, np.nan)
    valid = np.isfinite(uwe)
    if not valid.any():
        return u0
    u0[:] = np.percentile(uwe[valid], percentile)
    usable = np.flatnonzero(valid & np.isfinite(g))
    n_g = min(usable.size // max(min_count, 1), max_g_bins)
    if n_g < 1:
        return u0
    # Sorting by (G, index) makes the bins deterministic even with tied magnitudes.
    by_g = usable[np.lexsort((usable, g[usable]))]
    g_chunks = _split_equal(by_g, n_g)
    edges = [-np.inf] + [0.5 * (g[c[-1]] + g[n[0]]) for c, n in zip(g_chunks[:-1], g_chunks[1:], strict=True)]
    edges.append(np.inf)
    # Every star (valid UWE or not, with a G) gets the percentile of the G bin it falls in.
    has_g = np.flatnonzero(np.isfinite(g))
    which = np.clip(np.searchsorted(edges, g[has_g], side="right") - 1, 0, len(g_chunks) - 1)
    for k, members in enumerate(g_chunks):
        level = np.percentile(uwe[members], percentile)
        in_bin = has_g[which == k]
        u0[in_bin] = level
        coloured = members[np.isfinite(colour[members])]
        n_c = min(coloured.size // max(min_count, 1), max_colour_bins)
        if n_c < 2:
            continue
        by_c = coloured[np.lexsort((coloured, colour[coloured]))]
        c_chunks = _split_equal(by_c, n_c)
        c_edges = [-np.inf]
        c_edges += [
            0.5 * (colour[c[-1]] + colour[n[0]]) for c, n in zip(c_chunks[:-1], c_chunks[1:], strict=True)
        ]
        c_edges.append(np.inf)
        targets = in_bin[np.isfinite(colour[in_bin])]
        c_which = np.clip(np.searchsorted(c_edges, colour[targets], side="right") - 1, 0, len(c_chunks) - 1)
        for j, c_members in enumerate(c_chunks):
            u0[targets[c_which == j]] = np.percentile(uwe[c_members], percentile)
    return u0


#: The two tables of ESA's DR2_RUWE_V1 release (readme of 2018 Aug 10, L. Lindegren): u0(G, C) on the grid
#: G = 3.60(0.01)21.00, C = BP−RP = −1.0(0.1)10.0 (193,251 rows), and u0(G) for sources without a colour
#: (1,741 rows). Both are CSV with one header line (``g_mag,bp_rp,u0`` and ``g_mag,u0``); the third file of
#: the release, ``table_u0_2D.txt``, holds the same numbers in another layout and is not needed.
ESA_U0_TABLE_FILES: tuple[str, str] = ("table_u0_g_col.txt", "table_u0_g.txt")


@dataclass(frozen=True)
class U0Table:
    """The official DR2 RUWE normalisation u0(G, BP−RP) and/or u0(G), interpolated linearly.

    ESA distributes it as DR2_RUWE_V1 (Lindegren et al. 2018, GAIA-C3-TN-LU-LL-124): a table of u0 on a
    regular grid of ``g_mag`` and ``bp_rp`` for sources with a colour, and a table of u0 against ``g_mag``
    alone for sources without one. The grid values are bin centres (the release's readme), so linear
    interpolation between them reproduces each tabulated value at its centre. Outside the grid the edge
    value is used (the grid spans G 3.6–21 and BP−RP −1 to 10, beyond which DR2 holds almost no sources).
    ``sources`` names the files the table was read from.
    """

    g_grid: np.ndarray | None = None
    colour_grid: np.ndarray | None = None
    u0_grid: np.ndarray | None = None
    g_only: np.ndarray | None = None
    u0_g_only: np.ndarray | None = None
    sources: tuple[str, ...] = ()

    def __call__(self, g_mag: np.ndarray, bp_rp: np.ndarray) -> np.ndarray:
        """u0 for stars of G magnitude ``g_mag`` and colour ``bp_rp`` (mag; NaN colour allowed)."""
        from scipy.interpolate import RegularGridInterpolator

        g = np.asarray(g_mag, dtype=np.float64)
        colour = np.asarray(bp_rp, dtype=np.float64)
        out = np.full(g.shape, np.nan)
        has_colour = np.isfinite(colour) & np.isfinite(g)
        if self.u0_grid is not None and has_colour.any():
            interp = RegularGridInterpolator((self.g_grid, self.colour_grid), self.u0_grid, method="linear")
            points = np.column_stack(
                [
                    np.clip(g[has_colour], self.g_grid[0], self.g_grid[-1]),
                    np.clip(colour[has_colour], self.colour_grid[0], self.colour_grid[-1]),
                ]
            )
            out[has_colour] = interp(points)
        rest = np.isfinite(g) & (np.isnan(out))
        if self.u0_g_only is not None and rest.any():
            out[rest] = np.interp(g[rest], self.g_only, self.u0_g_only)
        return out


def _u0_paths(paths: str | os.PathLike | Sequence[str | os.PathLike]) -> list[Path]:
    """The table files: each path as given, a directory standing for ESA's two files inside it."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    out: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found = [path / name for name in ESA_U0_TABLE_FILES if (path / name).is_file()]
            if not found:
                raise GaiaTableError(
                    f"{path}: directory holds neither of ESA's RUWE u0 tables {', '.join(ESA_U0_TABLE_FILES)}"
                )
            out += found
        else:
            out.append(path)
    return out


def read_u0_table(paths: str | os.PathLike | Sequence[str | os.PathLike]) -> U0Table:
    """Read ESA's DR2 RUWE normalisation table(s) (DR2_RUWE_V1).

    Parameters
    ----------
    paths
        One path or several: a CSV with columns ``g_mag, bp_rp, u0`` (the 2-D table ``table_u0_g_col.txt``,
        a complete regular grid) and/or one with ``g_mag, u0`` (the G-only table ``table_u0_g.txt`` for
        sources without colour), or a directory holding ESA's files under those names. This is the format
        of ESA's files: comma separated, one header line. Column names are matched case-insensitively;
        ``#`` starts a comment.

    Raises
    ------
    GaiaTableError
        Naming the file, if a column is missing or non-numeric, a u0 is not a positive number, a (G, colour)
        node appears twice, or the 2-D table is not a complete grid.
    """
    fields: dict[str, Any] = {}
    sources: list[str] = []
    for path in _u0_paths(paths):
        try:
            frame = pd.read_csv(path, comment="#", skipinitialspace=True)
        except (OSError, ValueError, pd.errors.ParserError) as exc:
            raise GaiaTableError(f"{path}: cannot read the RUWE u0 table: {exc}") from exc
        frame.columns = [str(c).strip().lower() for c in frame.columns]
        found = ", ".join(frame.columns)
        if "g_mag" not in frame or "u0" not in frame:
            raise GaiaTableError(
                f"{path}: RUWE u0 table needs columns 'g_mag' and 'u0' (and 'bp_rp'); found {found}"
            )
        for column in [c for c in ("g_mag", "bp_rp", "u0") if c in frame]:
            unit = "mag" if column != "u0" else "dimensionless"
            frame[column] = _to_float(frame[column], column, str(path), unit)
        bad = ~(np.isfinite(frame["u0"].to_numpy()) & (frame["u0"].to_numpy() > 0))
        if bad.any() or len(frame) == 0:
            where = f"first at row {int(np.flatnonzero(bad)[0])}" if bad.any() else "the table is empty"
            raise GaiaTableError(f"{path}: column 'u0' must hold positive numbers (RUWE = UWE / u0); {where}")
        keys = ["g_mag", "bp_rp"] if "bp_rp" in frame else ["g_mag"]
        if frame.duplicated(keys).any():
            raise GaiaTableError(f"{path}: RUWE u0 table lists a ({', '.join(keys)}) node more than once")
        if "bp_rp" in frame:
            g_grid = np.unique(frame["g_mag"].to_numpy(np.float64))
            c_grid = np.unique(frame["bp_rp"].to_numpy(np.float64))
            if len(frame) != g_grid.size * c_grid.size:
                raise GaiaTableError(
                    f"{path}: RUWE u0 table with 'bp_rp' must be a complete grid: {len(frame)} rows for "
                    f"{g_grid.size} G values × {c_grid.size} colours"
                )
            grid = frame.pivot(index="g_mag", columns="bp_rp", values="u0").sort_index().sort_index(axis=1)
            fields.update(g_grid=g_grid, colour_grid=c_grid, u0_grid=grid.to_numpy(np.float64))
        else:
            ordered = frame.sort_values("g_mag")
            fields.update(
                g_only=ordered["g_mag"].to_numpy(np.float64), u0_g_only=ordered["u0"].to_numpy(np.float64)
            )
        sources.append(str(path))
    return U0Table(**fields, sources=tuple(sources))


def ruwe_from_chi2(
    chi2_al: np.ndarray,
    n_good_obs_al: np.ndarray,
    g_mag: np.ndarray,
    bp_rp: np.ndarray,
    *,
    u0_table: U0Table | str | os.PathLike | Sequence[str | os.PathLike] | None = None,
    min_count: int = U0_MIN_COUNT,
) -> tuple[np.ndarray, str]:
    """DR2 renormalised unit-weight error RUWE = UWE / u0(G, BP−RP) (Lindegren et al. 2018, TN LU-LL-124).

    Parameters
    ----------
    chi2_al, n_good_obs_al
        ``astrometric_chi2_al`` and ``astrometric_n_good_obs_al``.
    g_mag, bp_rp
        mag.
    u0_table
        The official normalisation (:func:`read_u0_table` or its path(s)); ``None`` renormalises
        empirically with :func:`empirical_u0` (an approximation for small or selected tables).
    min_count
        Minimum stars per bin of the empirical normalisation.

    Returns
    -------
    ruwe, method
        RUWE per star (NaN where UWE or u0 is undefined) and ``"u0_table"`` or ``"empirical"``.
    """
    uwe = unit_weight_error(chi2_al, n_good_obs_al)
    if u0_table is None:
        return uwe / empirical_u0(uwe, g_mag, bp_rp, min_count=min_count), "empirical"
    table = u0_table if isinstance(u0_table, U0Table) else read_u0_table(u0_table)
    u0 = table(g_mag, bp_rp)
    lacking = np.isfinite(uwe) & ~np.isfinite(u0)
    if lacking.any():
        warnings.warn(
            f"{int(lacking.sum())} star(s) have no u0 in the given table (no BP−RP colour and no G-only "
            "table given); their RUWE is NaN",
            stacklevel=2,
        )
    return uwe / u0, "u0_table"


def normalise_gaia_columns(
    raw: pd.DataFrame,
    *,
    source: str = "<table>",
    units: Mapping[str, str] | None = None,
    u0_table: U0Table | str | os.PathLike | Sequence[str | os.PathLike] | None = None,
    u0_min_count: int = U0_MIN_COUNT,
) -> pd.DataFrame:
    """Map a parsed Gaia table onto :data:`CANONICAL_COLUMNS` (see the module docstring).

    Parameters
    ----------
    raw
        Columns as read from the file.
    source
        Name of the file, used in every error message.
    units
        Declared unit per column name of ``raw`` (from ECSV/VOTable/FITS/TAP JSON); canonical columns in
        other convertible units are converted, in incompatible units rejected.
    u0_table, u0_min_count
        DR2 RUWE normalisation, see :func:`ruwe_from_chi2`.

    Returns
    -------
    pandas.DataFrame
        Canonical columns (``source_id`` int64, ``ruwe_empirical_u0`` bool — true for every row whose RUWE
        was normalised with :func:`empirical_u0` for want of ESA's table —, the rest float64 with NaN for
        missing values), then every column of ``raw`` not used for a canonical one, under its original name
        and unchanged. ``attrs`` records ``source``, and ``ruwe_method`` (``column``, ``u0_table`` or
        ``empirical``).

    Raises
    ------
    GaiaTableError
        A required column is missing (the message lists the columns found), a numeric column holds text,
        ``source_id`` is missing, not an integer or duplicated, or a column has an incompatible unit.
    """
    units = dict(units or {})
    index = _column_index(raw, source)
    missing: list[str] = []

    def has(name: str) -> bool:
        return name in index

    def column(name: str) -> np.ndarray:
        actual = index[name]
        unit = str(CANONICAL_UNITS.get(name, "dimensionless"))
        values = _to_float(raw[actual], actual, source, unit)
        return values * _unit_factor(units.get(actual), name, source)

    for name in ("source_id", "ra", "dec", "parallax", "parallax_error", "phot_g_mean_mag"):
        if not has(name):
            missing.append(name)
    if not (has("phot_bp_mean_mag") and has("phot_rp_mean_mag")) and not (has("bp_rp") and has("bp_g")):
        missing.append("phot_bp_mean_mag and phot_rp_mean_mag (or bp_rp and bp_g)")
    for band in BANDS:
        if not (
            has(f"phot_{band}_mean_mag_error")
            or has(f"phot_{band}_mean_flux_over_error")
            or (has(f"phot_{band}_mean_flux") and has(f"phot_{band}_mean_flux_error"))
        ):
            missing.append(f"phot_{band}_mean_flux_over_error (or phot_{band}_mean_flux and _flux_error)")
    if not has("ruwe") and not (has("astrometric_chi2_al") and has("astrometric_n_good_obs_al")):
        missing.append("ruwe (DR3) or astrometric_chi2_al and astrometric_n_good_obs_al (DR2)")
    if missing:
        raise GaiaTableError(
            f"{source}: missing required column(s): {'; '.join(repr(m) for m in missing)} "
            f"(Gaia DR2/DR3 names, any case); found columns: {', '.join(map(str, raw.columns))}"
        )

    out: dict[str, np.ndarray] = {}
    sid = _to_source_id(raw[index["source_id"]], index["source_id"], source)
    dup = pd.Series(sid).duplicated(keep=False).to_numpy()
    if dup.any():
        values = sorted(set(sid[dup].tolist()))
        raise GaiaTableError(
            f"{source}: column {index['source_id']!r} must be unique; {len(values)} source_id(s) occur more "
            f"than once, e.g. {', '.join(map(str, values[:5]))}"
        )
    out["source_id"] = sid
    for name in ("ra", "dec", "parallax", "parallax_error", "phot_g_mean_mag"):
        out[name] = column(name)
    g = out["phot_g_mean_mag"]
    if has("phot_bp_mean_mag") and has("phot_rp_mean_mag"):
        bp, rp = column("phot_bp_mean_mag"), column("phot_rp_mean_mag")
    else:
        # G and the two colours fix BP and RP: BP = G + (BP − G), RP = BP − (BP − RP).
        bp = g + column("bp_g")
        rp = bp - column("bp_rp")
    out["phot_bp_mean_mag"], out["phot_rp_mean_mag"] = bp, rp
    for name, derived in (("bp_rp", bp - rp), ("bp_g", bp - g)):
        # The archive's own colour where it has one; the magnitude difference fills the gaps (and is the
        # whole column when the file has none).
        given = column(name) if has(name) else np.full(len(raw), np.nan)
        out[name] = np.where(np.isfinite(given), given, derived)
    for band in BANDS:
        name = f"phot_{band}_mean_mag_error"
        if has(name):
            out[name] = column(name)
            continue
        if has(f"phot_{band}_mean_flux_over_error"):
            snr = column(f"phot_{band}_mean_flux_over_error")
        else:
            with np.errstate(divide="ignore", invalid="ignore"):
                snr = column(f"phot_{band}_mean_flux") / column(f"phot_{band}_mean_flux_error")
        out[name] = magnitude_error(snr, ZERO_POINT_ERROR_MAG[band])
    if has("ruwe"):
        out["ruwe"], method = column("ruwe"), "column"
        # A table canonicalised before (a source partition) keeps the indicator it was written with; a
        # file's own RUWE (DR3, gaiadr2.ruwe) is the archive's, normalised with ESA's u0.
        out["ruwe_empirical_u0"] = (
            _to_bool(raw[index["ruwe_empirical_u0"]], index["ruwe_empirical_u0"], source)
            if has("ruwe_empirical_u0")
            else np.zeros(len(raw), dtype=bool)
        )
    else:
        out["ruwe"], method = ruwe_from_chi2(
            column("astrometric_chi2_al"),
            column("astrometric_n_good_obs_al"),
            g,
            out["bp_rp"],
            u0_table=u0_table,
            min_count=u0_min_count,
        )
        # Per row, so that the fallback survives concatenation, partitioning and the distance catalog
        # (DistanceFlag.RUWE_EMPIRICAL_U0): the empirical u0 of a selected or crowded table is biased
        # (GAIA-C3-TN-LU-LL-124 derives u0 from all of DR2), and with it the RUWE < 1.4 cut of paper 004.
        out["ruwe_empirical_u0"] = np.isfinite(out["ruwe"]) & (method == "empirical")
        if method == "empirical":
            log.warning(
                "%s: RUWE normalised with an empirical u0 (no ESA DR2 u0 table given); %d row(s) flagged "
                "ruwe_empirical_u0",
                source,
                int(out["ruwe_empirical_u0"].sum()),
            )

    frame = pd.DataFrame({name: out[name] for name in CANONICAL_COLUMNS})
    frame["source_id"] = frame["source_id"].astype(np.int64)
    used = {index[name] for name in CANONICAL_COLUMNS if name in index}
    extras = [c for c in raw.columns if c not in used]
    if extras:
        frame = pd.concat([frame, raw[extras].reset_index(drop=True)], axis=1)
    frame.attrs.update({"source": source, "ruwe_method": method})
    return frame


def canonical_gaia(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    """Canonical Gaia columns for a table already in memory (e.g. a source partition)."""
    return normalise_gaia_columns(frame, source=source)


#: Columns the archive queries ask for: those :func:`normalise_gaia_columns` builds :data:`CANONICAL_COLUMNS`
#: from — astrometry, G/BP/RP, the fluxes' signal-to-noise (magnitude errors) and the DR2 along-scan fit
#: (RUWE) — so a fetched partition holds what the distance model reads and nothing it would drop.
DR2_COLUMNS: tuple[str, ...] = (
    "source_id",
    "ra",
    "dec",
    "parallax",
    "parallax_error",
    "phot_g_mean_mag",
    "phot_bp_mean_mag",
    "phot_rp_mean_mag",
    "bp_rp",
    "bp_g",
    "phot_g_mean_flux_over_error",
    "phot_bp_mean_flux_over_error",
    "phot_rp_mean_flux_over_error",
    "astrometric_chi2_al",
    "astrometric_n_good_obs_al",
)
#: Columns the Lindegren et al. (2021, A&A 649, A4) parallax zero point of (E)DR3
#: depends on, beside G: the solution type (31 five-, 95 six-parameter), the colour the astrometric solution
#: used (ν_eff for 5p, the fitted pseudocolour for 6p) and the ecliptic latitude.
LINDEGREN2021_COLUMNS: tuple[str, ...] = (
    "astrometric_params_solved",
    "nu_eff_used_in_astrometry",
    "pseudocolour",
    "ecl_lat",
)
#: DR3 (and EDR3) publish RUWE itself; the query also asks for what the parallax zero point needs
#: (``distances.parallax_zero_point: lindegren2021``).
DR3_COLUMNS: tuple[str, ...] = (*DR2_COLUMNS, "ruwe", *LINDEGREN2021_COLUMNS)
#: Columns of the Gaia table the cascade reads (the simulated fields produce exactly these).
GAIA_COLUMNS = (
    "source_id",
    "ra",
    "dec",
    "pmra",
    "pmdec",
    "phot_g_mean_mag",
    "bp_rp",
    "teff_val",
    "r_est",
    "phot_variable_flag",
    "gaia_var_class",
)
