"""OGLE-III × Gaia DR2 cross-match and its validation cascade (paper 000, Sec. 2.3, Appendix A, Table 4).

The paper cross-matches OGLE-III variables with Gaia DR2 in a 2″ cone and then validates every object by a
cascade of checks whose outcome counts are Table 4. Several steps of that cascade were done by eye (Aladin
images, light-curve comparison, CMD inspection); this module replaces each of them by an automatic,
documented criterion so that the cascade runs unattended and is testable:

``single_match``
    Exactly one Gaia source within the search radius: accept it.
``one_in_pm_radius``
    More than one source in the radius, but only the nearest lies within the *PM radius*: accept the nearest.
    The PM radius is ``|μ| × Δt`` of the nearest Gaia source (:func:`pm_radius_arcsec`), centred on the OGLE
    position: the distance the true counterpart can have moved between the OGLE and the Gaia (J2015.5)
    epochs. If the nearest source has no proper motion the PM radius is unknown and the whole search radius
    is used instead (every neighbour stays a competitor, so the object goes on to the stricter checks).
``outside_pm_radius_pass`` / ``outside_pm_radius_fail``
    The nearest source is farther from the OGLE position than its own PM radius. The paper inspected these
    six objects by eye; here the nearest is accepted when it is *isolated*: the second-nearest source is at
    least ``isolation_ratio`` (default 2) times farther away, so the identification is unambiguous.
    Otherwise the object is rejected.
``same_var_class`` / ``adjacent_var_class`` / ``fatal_var_class``
    ≥ 2 sources within the PM radius and the nearest has a Gaia DR2 variability class. The Gaia class is
    mapped to OGLE's (:data:`GAIA_TO_OGLE_CLASS`). Same family: accept. Adjacent: RR Lyrae versus a
    Cepheid type with OGLE period < 1 d, or an OGLE eclipsing binary with any Gaia label; accepted adopting
    OGLE's class (the paper accepted 98 such after comparing light curves). Anything else: reject.
``variable_no_class`` / ``variable_no_class_out_of_range``
    Nearest flagged ``VARIABLE`` by Gaia without a class: accept if its BP−RP (and Teff, where both the
    star's and the class's are known) lie within the per-class ranges learned from the ``single_match``
    objects (1st–99th percentiles, :func:`learn_class_ranges`), else reject (a row the paper does not
    have: all 461 of its objects passed).
``cmd_validated`` / ``cmd_main_sequence``
    No variability information, nearest has BP−RP and a Bailer-Jones distance: reject when its
    (BP−RP, M_G) is degenerate with the main sequence (:data:`MS_LOCUS`, :func:`main_sequence_degenerate`),
    else accept.
``second_same_var_class`` / ``three_or_more_in_pm_radius``
    Otherwise, with ≥ 3 sources in the PM radius: reject, unless the second-nearest source has a Gaia class
    of the same family as OGLE's, in which case the second-nearest is accepted.
``no_distance``
    Otherwise (exactly two sources in the PM radius, the nearest not placeable on the CMD): reject when no
    source in the search radius has a Bailer-Jones distance.
``second_cmd_validated`` / ``second_ms_or_too_blue``
    Otherwise place the second-nearest on the CMD: accept it when it has BP−RP and a distance, is not
    main-sequence degenerate and is not bluer than the class's learned BP−RP range; else reject.
``no_candidate``
    No Gaia source within the search radius (not in Table 4, whose 34,653 objects all had one). The object
    keeps its row with a null source_id, as everything in latentsky keeps one row per input object.

:func:`run_cascade` returns one row per OGLE object and the count table in Table 4's order
(:func:`cascade_counts`); :func:`precision_recall` scores the outcome against a known truth (simulated
surveys).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

import numpy as np
import pandas as pd
from astropy import units as u
from astropy.coordinates import SkyCoord

from latentsky.io.gaia_columns import GAIA_COLUMNS
from latentsky.photometry import gaia_g_from_vi

__all__ = [
    "CASCADE_RULES",
    "GAIA_TO_OGLE_CLASS",
    "MS_LOCUS",
    "OGLE_CLASSES",
    "PM_RADIUS_CONVENTIONS",
    "absolute_g",
    "cascade_counts",
    "cascade_metrics",
    "cascade_summary",
    "classes_adjacent",
    "classes_same",
    "compare_per_rule",
    "cone_match",
    "nearest_neighbour_matches",
    "learn_class_ranges",
    "main_sequence_degenerate",
    "pm_radius_arcsec",
    "precision_recall",
    "published_agreement",
    "published_agreement_summary",
    "rule_score",
    "run_cascade",
]

#: OGLE-III variability classes handled by the cascade (paper 000, Table 1).
OGLE_CLASSES: tuple[str, ...] = ("ACEP", "CEP", "DSCT", "ECL", "ELL", "LPV", "RRLYR", "T2CEP")

#: Gaia variability-classifier labels (``best_class_name``) → OGLE class. DR2 (Rimoldini et al. 2019): the
#: paper compares classes "without considering sub-types", so all RR Lyrae modes map to RRLYR; DR2 calls
#: classical Cepheids ``CEP`` (all 1,716 of them in var_conf_matches.csv) and has no eclipsing-binary or
#: ellipsoidal label. DR3's classifier (Rimoldini et al. 2023) uses group labels: ``RR``, ``CEP`` (all
#: Cepheid types), ``ECL``, ``ELL``, ``LPV`` and ``DSCT|GDOR|SXPHE``; with them ECL and ELL can match a
#: Gaia class (fetch with ``crossmatch.gaia_release: dr3``). ``DCEP`` is accepted for tables that name
#: the Cepheid type.
GAIA_TO_OGLE_CLASS: dict[str, str] = {
    "RRAB": "RRLYR",
    "RRC": "RRLYR",
    "RRD": "RRLYR",
    "ARRD": "RRLYR",
    "CEP": "CEP",
    "DCEP": "CEP",
    "T2CEP": "T2CEP",
    "ACEP": "ACEP",
    "MIRA_SR": "LPV",
    "DSCT_SXPHE": "DSCT",
    # DR3 group labels
    "RR": "RRLYR",
    "ECL": "ECL",
    "ELL": "ELL",
    "LPV": "LPV",
    "DSCT|GDOR|SXPHE": "DSCT",
}

# Classical, type-II and anomalous Cepheids are one family for the "same class" test. WHY: the paper
# counts matches "without considering sub-types", and the authors' accepted table (var_conf_matches.csv)
# contains 77 OGLE CEP ↔ Gaia T2CEP, 22 CEP ↔ ACEP and 10 T2CEP ↔ CEP pairs with periods > 1 d, which
# their 3,732 same-class + 98 adjacent-class accepted objects can only include as same-class matches.
_CEPHEID_FAMILY = frozenset({"CEP", "ACEP", "T2CEP"})

#: Rule key → (accepted, human description, Table-4 count in paper 000), in Table 4's order; the last two
#: rows are outcomes the paper's table does not list (count None).
CASCADE_RULES: dict[str, tuple[bool, str, int | None]] = {
    "single_match": (True, 'Objects that only have 1 match in 2" radius', 19545),
    "one_in_pm_radius": (
        True,
        'Objects that have > 1 match in 2" radius but only 1 match in PM radius of nearest neighbor',
        1113,
    ),
    "outside_pm_radius_pass": (
        True,
        "Objects with a cross-match angular distance outside of the nearest neighbor's PM radius that pass "
        "the isolation check (paper: visual inspection)",
        5,
    ),
    "outside_pm_radius_fail": (
        False,
        "Object with an angular distance outside of the PM radius that fails the isolation check "
        "(paper: visual inspection)",
        1,
    ),
    "same_var_class": (True, "Objects with the same variability class in OGLE and Gaia", 3732),
    "variable_no_class": (
        True,
        "Objects flagged as variable with no assigned class, Teff and colors within the ranges of the "
        "single-match objects of their class",
        461,
    ),
    "adjacent_var_class": (
        True,
        "Objects with adjacent variability classes (RR Lyrae/Cepheid with P < 1 d, or OGLE ECL); OGLE class adopted",
        98,
    ),
    "fatal_var_class": (False, "Objects with fatally different classes", 5),
    "cmd_validated": (
        True,
        "Objects that have G_BP and G_RP measurements in Gaia DR2, validated by CMD placement",
        7620,
    ),
    "second_cmd_validated": (
        True,
        "Objects whose nearest neighbor lacks G_BP and G_RP measurements, second-closest neighbor validated "
        "by CMD placement",
        539,
    ),
    "second_same_var_class": (
        True,
        "Objects whose second-closest neighbor has the same variability class in OGLE and Gaia",
        2,
    ),
    "cmd_main_sequence": (
        False,
        "Objects that have G_BP and G_RP measurements in Gaia DR2, degenerate with the main sequence",
        755,
    ),
    "three_or_more_in_pm_radius": (
        False,
        "Objects with three or more Gaia sources within the nearest-neighbor PM radius",
        465,
    ),
    "second_ms_or_too_blue": (
        False,
        "Objects whose second-closest neighbor is degenerate with the main sequence or Gaia colors too blue "
        "for the OGLE class",
        162,
    ),
    "no_distance": (
        False,
        "Objects that do not have inferred distances in the Bailer-Jones catalog for any stars in the "
        "cross-match radius",
        151,
    ),
    "variable_no_class_out_of_range": (
        False,
        "Objects flagged as variable with no assigned class, Teff or colors outside their class's ranges",
        None,
    ),
    "no_candidate": (False, 'Objects with no Gaia source within the 2" search radius', None),
    "photometry_inconsistent": (
        False,
        "Accepted by a rule above, but Gaia G differs from the G predicted from OGLE I and V−I (Evans et al. "
        "2018) by more than the tolerance (not in the paper; crossmatch.photometric_tolerance_mag)",
        None,
    ),
}


#: Main-sequence ridge in Gaia DR2 (BP−RP [mag], M_G [mag]) with a half-width [mag] in M_G, used to flag
#: CMD placements degenerate with the main sequence (paper 000 App. A rejects those). The ridge follows the
#: dwarf sequence of Pecaut & Mamajek (2013, Gaia colours from E. Mamajek's online table, B9V … M5V),
#: rounded to 0.1 mag; the half-width of 1 mag covers unresolved binaries (≤ 0.75 mag brighter),
#: metallicity spread and modest distance errors. No extinction correction is applied, as in the paper, so
#: a reddened dwarf moves redward *and* fainter, roughly along the ridge, and stays flagged. Pass your own
#: table (same columns) to :func:`run_cascade` as ``ms_locus`` for another definition.
MS_LOCUS: pd.DataFrame = pd.DataFrame(
    {
        "bp_rp": [-0.1, 0.0, 0.2, 0.4, 0.6, 0.75, 0.85, 1.0, 1.2, 1.45, 1.85, 2.2, 2.5, 3.0, 3.3],
        "abs_g": [0.6, 1.3, 2.0, 2.6, 3.4, 4.2, 4.8, 5.6, 6.3, 7.0, 8.3, 9.3, 10.3, 11.8, 12.7],
        "half_width": [1.0] * 15,
    }
)

_MATCH_COLUMNS = [
    "ogle_id",
    "var_class",
    "source_id",
    "accepted",
    "rule",
    "description",
    "neighbour_rank",
    "adopted_class",
    "gaia_var_class",
    "n_within_radius",
    "n_within_pm_radius",
    "separation_arcsec",
    "pm_radius_arcsec",
    "delta_g",
    "source_shared",
]
_OGLE_REQUIRED = ("ogle_id", "ra", "dec", "var_class", "period")


def _require(frame: pd.DataFrame, columns: Collection[str], name: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{name} table: missing column(s) {missing}; found {list(frame.columns)}")


#: How ``|μ|·Δt`` becomes a radius in arcsec. ``physical``: mas → arcsec (÷ 1000), the distance a source
#: really moves. ``as_published``: the number |μ|[mas/yr]·Δt[yr] read as arcsec, which is what paper 000's
#: Table 4 implies (see :func:`pm_radius_arcsec`).
PM_RADIUS_CONVENTIONS: dict[str, float] = {"physical": 1.0e-3, "as_published": 1.0}


def pm_radius_arcsec(
    pmra: float | np.ndarray | pd.Series,
    pmdec: float | np.ndarray | pd.Series,
    dt_yr: float = 15.5,
    convention: str = "physical",
) -> np.ndarray | float:
    """Proper-motion radius: how far a source moves between the two catalog epochs.

    Parameters
    ----------
    pmra, pmdec : float or array-like
        Proper motion in mas/yr (``pmra`` includes the cos δ factor, as in Gaia). NaN gives NaN.
    dt_yr : float
        Epoch difference in yr; 15.5 yr between OGLE-III and Gaia DR2 (J2015.5) in paper 000 App. A.
    convention : {"physical", "as_published"}
        ``physical`` (default): ``|μ| × Δt`` in arcsec, mas/yr × yr / 1000 — typically 0.03″ (Magellanic
        Clouds) to 0.1″ (bulge), below the 0.07″ OGLE−Gaia astrometric scatter. ``as_published``: the same
        number without the ÷ 1000 (36–170″ for typical stars), the reading under which Table 4 is possible:
        its 13,989 objects with "> 1 match in both 2″ radius and nearest neighbor PM radius" out of 15,108
        multi-match objects need radii ≳ 2″, and the authors' ``one_pmrad_match.csv`` (1,113 objects with
        "only 1 match in PM radius") holds almost only sources without a proper motion, i.e. no radius.

    Returns
    -------
    float or numpy.ndarray
        The radius in arcsec.
    """
    if convention not in PM_RADIUS_CONVENTIONS:
        raise ValueError(
            f"pm radius convention must be one of {sorted(PM_RADIUS_CONVENTIONS)}, got {convention!r}"
        )
    mu = np.hypot(np.asarray(pmra, dtype=np.float64), np.asarray(pmdec, dtype=np.float64))
    radius = mu * float(dt_yr) * PM_RADIUS_CONVENTIONS[convention]
    return float(radius) if radius.ndim == 0 else radius


def absolute_g(g_mag: float | np.ndarray, r_est_pc: float | np.ndarray) -> np.ndarray:
    """Absolute G magnitude M_G = G − 5 log10(r / 10 pc), without extinction (as in paper 000 App. A).

    Parameters
    ----------
    g_mag : float or array-like
        Apparent G in mag.
    r_est_pc : float or array-like
        Bailer-Jones et al. (2018) distance in pc; NaN or ≤ 0 gives NaN.

    Returns
    -------
    numpy.ndarray
        M_G in mag.
    """
    g = np.asarray(g_mag, dtype=np.float64)
    r = np.asarray(r_est_pc, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(r > 0, g - 5.0 * np.log10(r / 10.0), np.nan)


def main_sequence_degenerate(
    bp_rp: float | np.ndarray, abs_g: float | np.ndarray, ms_locus: pd.DataFrame | None = None
) -> np.ndarray:
    """Whether CMD positions fall inside the main-sequence band.

    Parameters
    ----------
    bp_rp : float or array-like
        Gaia BP−RP colour in mag.
    abs_g : float or array-like
        Absolute G magnitude in mag.
    ms_locus : pandas.DataFrame, optional
        Columns ``bp_rp``, ``abs_g`` (ridge, mag) and ``half_width`` (mag), sorted by ``bp_rp``;
        :data:`MS_LOCUS` by default. Ridge and half-width are interpolated linearly in colour.

    Returns
    -------
    numpy.ndarray of bool
        True where the colour lies within the locus's colour range and ``|M_G − ridge| ≤ half_width``.
        Colours outside the tabulated range, and NaN inputs, are not degenerate.
    """
    locus = MS_LOCUS if ms_locus is None else ms_locus
    _require(locus, ("bp_rp", "abs_g", "half_width"), "ms_locus")
    locus = locus.sort_values("bp_rp")
    c = np.atleast_1d(np.asarray(bp_rp, dtype=np.float64))
    m = np.atleast_1d(np.asarray(abs_g, dtype=np.float64))
    x = locus["bp_rp"].to_numpy(np.float64)
    ridge = np.interp(c, x, locus["abs_g"].to_numpy(np.float64))
    width = np.interp(c, x, locus["half_width"].to_numpy(np.float64))
    inside = (c >= x[0]) & (c <= x[-1]) & (np.abs(m - ridge) <= width)
    return inside & np.isfinite(c) & np.isfinite(m)


def classes_same(ogle_class: str, gaia_class: str | None) -> bool:
    """Whether a Gaia DR2 class label agrees with an OGLE class, ignoring sub-types (paper 000 App. A).

    Cepheid types (CEP, ACEP, T2CEP) count as one family; see the module notes.
    """
    if gaia_class is None or pd.isna(gaia_class):
        return False
    mapped = GAIA_TO_OGLE_CLASS.get(str(gaia_class))
    if mapped is None:
        return False
    return mapped == ogle_class or (mapped in _CEPHEID_FAMILY and ogle_class in _CEPHEID_FAMILY)


def classes_adjacent(ogle_class: str, gaia_class: str | None, period_d: float) -> bool:
    """Whether differing OGLE/Gaia classes are the confusions the paper accepted (App. A, 98 objects).

    Parameters
    ----------
    ogle_class : str
        OGLE class.
    gaia_class : str or None
        Gaia DR2 classifier label.
    period_d : float
        OGLE period in d.

    Returns
    -------
    bool
        True for RR Lyrae ↔ a Cepheid type (either direction) with period < 1 d — the sparse Gaia DR2
        light curves (~30 epochs) confuse short-period pulsators — and for any Gaia label on an OGLE ECL.
    """
    if gaia_class is None or pd.isna(gaia_class) or classes_same(ogle_class, gaia_class):
        return False
    mapped = GAIA_TO_OGLE_CLASS.get(str(gaia_class))
    if ogle_class == "ECL":
        return True
    pair = {ogle_class, mapped}
    rr_cep = "RRLYR" in pair and bool(pair & _CEPHEID_FAMILY)
    return bool(rr_cep and np.isfinite(period_d) and period_d < 1.0)


def cone_match(ogle: pd.DataFrame, gaia: pd.DataFrame, radius_arcsec: float = 2.0) -> pd.DataFrame:
    """All Gaia sources within a cone around each OGLE object, ranked by separation.

    Parameters
    ----------
    ogle : pandas.DataFrame
        Columns ``ogle_id``, ``ra``, ``dec`` (deg, OGLE epoch).
    gaia : pandas.DataFrame
        Columns ``source_id``, ``ra``, ``dec`` (deg, J2015.5).
    radius_arcsec : float
        Search radius in arcsec (2″ in paper 000: encloses |μ| ≤ 130 mas/yr over 15.5 yr).

    Returns
    -------
    pandas.DataFrame
        One row per (OGLE object, Gaia source) pair: ``ogle_row`` and ``gaia_row`` (positional indices),
        ``ogle_id``, ``source_id``, ``separation_arcsec`` and ``rank`` (1 = nearest), sorted by OGLE row then
        separation. Positions are compared as given, without epoch propagation (as in the paper's match).
    """
    _require(ogle, ("ogle_id", "ra", "dec"), "OGLE")
    _require(gaia, ("source_id", "ra", "dec"), "Gaia")
    columns = ["ogle_row", "gaia_row", "ogle_id", "source_id", "separation_arcsec", "rank"]
    if len(ogle) == 0 or len(gaia) == 0:
        return pd.DataFrame({c: pd.Series(dtype=np.int64) for c in columns}).astype(
            {"ogle_id": object, "separation_arcsec": np.float64}
        )
    oc = SkyCoord(ogle["ra"].to_numpy(np.float64) * u.deg, ogle["dec"].to_numpy(np.float64) * u.deg)
    gc = SkyCoord(gaia["ra"].to_numpy(np.float64) * u.deg, gaia["dec"].to_numpy(np.float64) * u.deg)
    # search_around_sky uses a KD-tree on unit vectors; it is astropy's well-kept cone search.
    # Returns indices into the argument (OGLE) first, then into the calling catalog (Gaia).
    i_ogle, i_gaia, sep, _ = gc.search_around_sky(oc, radius_arcsec * u.arcsec)
    pairs = pd.DataFrame(
        {
            "ogle_row": i_ogle.astype(np.int64),
            "gaia_row": i_gaia.astype(np.int64),
            "ogle_id": ogle["ogle_id"].to_numpy()[i_ogle],
            "source_id": gaia["source_id"].to_numpy(np.int64)[i_gaia],
            "separation_arcsec": sep.to_value(u.arcsec),
        }
    )
    # Ties in separation are broken by source_id so the ranking is deterministic.
    pairs = pairs.sort_values(["ogle_row", "separation_arcsec", "source_id"], kind="mergesort").reset_index(
        drop=True
    )
    pairs["rank"] = pairs.groupby("ogle_row").cumcount().astype(np.int64) + 1
    return pairs


def learn_class_ranges(
    table: pd.DataFrame, lo_pct: float = 1.0, hi_pct: float = 99.0, min_count: int = 10
) -> pd.DataFrame:
    """Per-class BP−RP and Teff ranges from confirmed matches (paper 000 App. A, "variable, no class").

    Parameters
    ----------
    table : pandas.DataFrame
        Confirmed objects with ``var_class``, ``bp_rp`` (mag) and ``teff_val`` (K); NaNs are ignored.
    lo_pct, hi_pct : float
        Percentiles bounding each range (1st–99th by default: robust to the few mismatches that slip
        through the single-match step, where the paper used the full ranges plus literature values).
    min_count : int
        Classes with fewer finite values than this get NaN bounds for that quantity (no range learned).

    Returns
    -------
    pandas.DataFrame
        Index ``var_class``; columns ``bp_rp_lo``, ``bp_rp_hi`` (mag), ``teff_lo``, ``teff_hi`` (K),
        ``n_bp_rp``, ``n_teff``.
    """
    _require(table, ("var_class", "bp_rp", "teff_val"), "class-range")
    rows = {}
    for cls, grp in table.groupby("var_class", sort=True):
        row: dict[str, float] = {}
        for col, key in (("bp_rp", "bp_rp"), ("teff_val", "teff")):
            vals = pd.to_numeric(grp[col], errors="coerce").to_numpy(np.float64)
            vals = vals[np.isfinite(vals)]
            ok = len(vals) >= min_count
            row[f"{key}_lo"] = float(np.percentile(vals, lo_pct)) if ok else np.nan
            row[f"{key}_hi"] = float(np.percentile(vals, hi_pct)) if ok else np.nan
            row[f"n_{key}"] = len(vals)
        rows[cls] = row
    cols = ["bp_rp_lo", "bp_rp_hi", "teff_lo", "teff_hi", "n_bp_rp", "n_teff"]
    out = pd.DataFrame.from_dict(rows, orient="index", columns=cols)
    out.index.name = "var_class"
    return out


def _in_class_range(cls: str, bp_rp: float, teff: float, ranges: pd.DataFrame) -> bool:
    """Colour (required) and Teff (when both known) inside the class's learned ranges."""
    if cls not in ranges.index or not np.isfinite(bp_rp):
        return False
    r = ranges.loc[cls]
    if not (np.isfinite(r["bp_rp_lo"]) and r["bp_rp_lo"] <= bp_rp <= r["bp_rp_hi"]):
        return False
    # Gaia DR2 Teff (Apsis-Priam) is missing for most faint, crowded-field stars; a missing value cannot
    # contradict the class, so only a known Teff outside a known range rejects.
    if np.isfinite(teff) and np.isfinite(r["teff_lo"]):
        return bool(r["teff_lo"] <= teff <= r["teff_hi"])
    return True


def _too_blue(cls: str, bp_rp: float, ranges: pd.DataFrame) -> bool:
    """BP−RP bluer than the class's learned lower bound (no bound learned: not too blue)."""
    if cls not in ranges.index or not np.isfinite(ranges.loc[cls, "bp_rp_lo"]):
        return False
    return bool(bp_rp < ranges.loc[cls, "bp_rp_lo"])


def _decide(
    obj: Mapping,
    cand: pd.DataFrame,
    *,
    radius_arcsec: float,
    dt_yr: float,
    ranges: pd.DataFrame | None,
    ms_locus: pd.DataFrame,
    isolation_ratio: float,
    pm_radius_convention: str,
) -> tuple[str, int | None, int, float]:
    """Apply the cascade to one object; returns (rule, rank of chosen source or None, n_pm, PM radius ″).

    ``cand`` holds the object's candidates sorted by separation with their Gaia columns. ``ranges`` is None
    only in the first pass (single matches), which never needs it.
    """
    n = len(cand)
    if n == 0:
        return "no_candidate", None, 0, np.nan
    sep = cand["separation_arcsec"].to_numpy(np.float64)
    near = cand.iloc[0]
    r_pm = pm_radius_arcsec(near["pmra"], near["pmdec"], dt_yr, pm_radius_convention)
    # Unknown PM: fall back to the search radius, so every neighbour competes (the conservative choice).
    r_eff = r_pm if np.isfinite(r_pm) else radius_arcsec
    n_pm = int(np.sum(sep <= r_eff))
    if n == 1:
        return "single_match", 1, n_pm, r_pm
    if pm_radius_convention == "as_published" and not np.isfinite(r_pm):
        # What the authors' one_pmrad_match.csv shows: a nearest source without PM was accepted as the one
        # match "in its PM radius".
        return "one_in_pm_radius", 1, 1, r_pm
    if sep[0] > r_eff:
        # The paper's six objects of this kind were checked on Pan-STARRS images; the automatic stand-in asks
        # that the nearest be unambiguous: no other source within isolation_ratio × its separation.
        rule = "outside_pm_radius_pass" if sep[1] >= isolation_ratio * sep[0] else "outside_pm_radius_fail"
        return rule, (1 if rule.endswith("pass") else None), n_pm, r_pm
    if n_pm == 1:
        return "one_in_pm_radius", 1, n_pm, r_pm

    cls = str(obj["var_class"])
    gcls = near["gaia_var_class"]
    if gcls is not None and not pd.isna(gcls):
        if classes_same(cls, gcls):
            return "same_var_class", 1, n_pm, r_pm
        if classes_adjacent(cls, gcls, float(obj["period"])):
            return "adjacent_var_class", 1, n_pm, r_pm
        return "fatal_var_class", None, n_pm, r_pm
    if near["phot_variable_flag"] == "VARIABLE":
        ok = _in_class_range(cls, float(near["bp_rp"]), float(near["teff_val"]), ranges)
        return (
            ("variable_no_class", 1, n_pm, r_pm)
            if ok
            else ("variable_no_class_out_of_range", None, n_pm, r_pm)
        )

    abs_g = absolute_g(cand["phot_g_mean_mag"], cand["r_est"])
    bp_rp = cand["bp_rp"].to_numpy(np.float64)
    if np.isfinite(bp_rp[0]) and np.isfinite(abs_g[0]):
        if main_sequence_degenerate(bp_rp[0], abs_g[0], ms_locus)[0]:
            return "cmd_main_sequence", None, n_pm, r_pm
        return "cmd_validated", 1, n_pm, r_pm
    second = cand.iloc[1]
    if n_pm >= 3:
        if classes_same(cls, second["gaia_var_class"]):
            return "second_same_var_class", 2, n_pm, r_pm
        return "three_or_more_in_pm_radius", None, n_pm, r_pm
    if not np.isfinite(abs_g).any():
        return "no_distance", None, n_pm, r_pm
    fits = (
        np.isfinite(bp_rp[1])
        and np.isfinite(abs_g[1])
        and not main_sequence_degenerate(bp_rp[1], abs_g[1], ms_locus)[0]
        and not _too_blue(cls, bp_rp[1], ranges)
    )
    return ("second_cmd_validated", 2, n_pm, r_pm) if fits else ("second_ms_or_too_blue", None, n_pm, r_pm)


def run_cascade(
    ogle: pd.DataFrame,
    gaia: pd.DataFrame,
    *,
    radius_arcsec: float = 2.0,
    dt_yr: float = 15.5,
    class_ranges: pd.DataFrame | None = None,
    ms_locus: pd.DataFrame | None = None,
    isolation_ratio: float = 2.0,
    pm_radius_convention: str = "physical",
    photometric_tolerance_mag: float | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Cross-match OGLE objects with Gaia sources and validate each match (paper 000 App. A, Table 4).

    Parameters
    ----------
    ogle : pandas.DataFrame
        ``ogle_id`` (unique str), ``ra``, ``dec`` (deg, OGLE epoch), ``var_class``, ``period`` (d);
        ``subtype`` is carried through when present.
    gaia : pandas.DataFrame
        ``source_id`` (int64), ``ra``, ``dec`` (deg, J2015.5), ``pmra``, ``pmdec`` (mas/yr, NaN allowed),
        ``phot_g_mean_mag`` (mag), ``bp_rp`` (mag), ``teff_val`` (K), ``r_est`` (pc),
        ``phot_variable_flag`` ("VARIABLE" / "NOT_AVAILABLE"), ``gaia_var_class`` (DR2 label or None).
    radius_arcsec : float
        Cone radius in arcsec.
    dt_yr : float
        Epoch difference in yr for the PM radius.
    class_ranges : pandas.DataFrame, optional
        Per-class BP−RP/Teff ranges in the form of :func:`learn_class_ranges`; by default learned from this
        run's ``single_match`` objects.
    ms_locus : pandas.DataFrame, optional
        Main-sequence band (see :func:`main_sequence_degenerate`); :data:`MS_LOCUS` by default.
    isolation_ratio : float
        For nearest sources outside their own PM radius: accept when the second-nearest is at least this
        many times farther than the nearest.
    pm_radius_convention : {"physical", "as_published"}
        See :func:`pm_radius_arcsec`. ``as_published`` also accepts a nearest source without proper motion
        as the one match in its PM radius, as the authors' tables show; use it to compare with Table 4.
    photometric_tolerance_mag : float, optional
        A check the paper leaves out: a match the rules accepted is rejected (``photometry_inconsistent``)
        when its Gaia G differs from :func:`gaia_g_from_vi` of the object's ``i_mag`` and ``v_i`` by more
        than this. None (the paper) only reports the difference, ``delta_g``.

    Returns
    -------
    matches : pandas.DataFrame
        One row per OGLE object in input order: ``ogle_id``, ``var_class``, ``source_id`` (Int64, null when
        rejected or no candidate), ``accepted``, ``rule``, ``description``, ``neighbour_rank`` (1 nearest,
        2 second-nearest, null), ``adopted_class`` (OGLE class when accepted), ``gaia_var_class`` of the
        chosen source, ``n_within_radius``, ``n_within_pm_radius``, ``separation_arcsec`` (of the chosen
        source, else of the nearest), ``pm_radius_arcsec`` (nearest source's; NaN without PM), ``delta_g``
        (chosen source's G − :func:`gaia_g_from_vi`; NaN without I, V − I or outside its range).
    counts : pandas.DataFrame
        :func:`cascade_counts` of ``matches``.
    """
    _require(ogle, _OGLE_REQUIRED, "OGLE")
    _require(gaia, GAIA_COLUMNS, "Gaia")
    if ogle["ogle_id"].duplicated().any():
        dup = ogle.loc[ogle["ogle_id"].duplicated(), "ogle_id"].iloc[0]
        raise ValueError(f"OGLE table: column ogle_id must be unique; {dup!r} repeats")
    locus = MS_LOCUS if ms_locus is None else ms_locus
    ogle = ogle.reset_index(drop=True)
    gaia = gaia.reset_index(drop=True)
    pairs = cone_match(ogle, gaia, radius_arcsec)
    # cone_match already carries source_id; ra/dec are not needed past the cone.
    gcols = [c for c in GAIA_COLUMNS if c not in ("source_id", "ra", "dec")]
    cand_all = pairs.join(gaia[gcols], on="gaia_row")
    groups = {k: g for k, g in cand_all.groupby("ogle_row", sort=False)}
    empty = cand_all.iloc[:0]
    records = ogle.to_dict("records")
    if pm_radius_convention not in PM_RADIUS_CONVENTIONS:
        raise ValueError(
            f"pm_radius_convention must be one of {sorted(PM_RADIUS_CONVENTIONS)}, got {pm_radius_convention!r}"
        )
    kw = dict(
        radius_arcsec=radius_arcsec,
        dt_yr=dt_yr,
        ms_locus=locus,
        isolation_ratio=isolation_ratio,
        pm_radius_convention=pm_radius_convention,
    )

    # Pass 1 decides every object with ranges=None; only single_match outcomes are kept from it, because the
    # per-class colour/Teff ranges are learned from those (paper: "the 19545 confirmed objects").
    if class_ranges is None:
        single = [(i, groups[i].iloc[0]) for i in groups if len(groups[i]) == 1]
        learn = pd.DataFrame(
            {
                "var_class": [records[i]["var_class"] for i, _ in single],
                "bp_rp": [row["bp_rp"] for _, row in single],
                "teff_val": [row["teff_val"] for _, row in single],
            }
        )
        class_ranges = learn_class_ranges(learn)

    predicted_g = (
        gaia_g_from_vi(ogle["i_mag"], ogle["v_i"])
        if {"i_mag", "v_i"} <= set(ogle.columns)
        else np.full(len(ogle), np.nan)
    )
    out = []
    for i, obj in enumerate(records):
        cand = groups.get(i, empty)
        rule, rank, n_pm, r_pm = _decide(obj, cand, ranges=class_ranges, **kw)
        chosen = cand.iloc[rank - 1] if rank is not None else None
        delta_g = float(chosen["phot_g_mean_mag"]) - predicted_g[i] if chosen is not None else np.nan
        if (
            photometric_tolerance_mag is not None
            and CASCADE_RULES[rule][0]
            and abs(delta_g) > photometric_tolerance_mag  # NaN (no check possible) compares False
        ):
            rule = "photometry_inconsistent"
        accepted = CASCADE_RULES[rule][0]
        out.append(
            {
                "ogle_id": obj["ogle_id"],
                "var_class": obj["var_class"],
                # Read from the int64 column, never via a row Series: a float64 upcast would corrupt the
                # 19-digit Gaia source_id (float64 holds integers exactly only up to 2**53).
                "source_id": int(cand["source_id"].to_numpy(np.int64)[rank - 1])
                if chosen is not None
                else pd.NA,
                "accepted": accepted,
                "rule": rule,
                "description": CASCADE_RULES[rule][1],
                "neighbour_rank": rank if rank is not None else pd.NA,
                "adopted_class": obj["var_class"] if accepted else None,
                "gaia_var_class": chosen["gaia_var_class"] if chosen is not None else None,
                "n_within_radius": len(cand),
                "n_within_pm_radius": n_pm,
                "separation_arcsec": float(chosen["separation_arcsec"])
                if chosen is not None
                else (float(cand["separation_arcsec"].iloc[0]) if len(cand) else np.nan),
                "pm_radius_arcsec": r_pm,
                "delta_g": delta_g,
            }
        )
    matches = pd.DataFrame(out, columns=[c for c in _MATCH_COLUMNS if c != "source_shared"])
    if len(matches):
        matches = matches.astype(
            {
                "source_id": "Int64",
                "neighbour_rank": "Int64",
                "accepted": bool,
                "n_within_radius": np.int64,
                "n_within_pm_radius": np.int64,
                "separation_arcsec": np.float64,
                "pm_radius_arcsec": np.float64,
                "delta_g": np.float64,
            }
        )
    # One Gaia source accepted for two OGLE objects is a blend or a duplicate OGLE entry: both rows are kept
    # and flagged, for the user to decide (the authors' tables contain one such pair).
    acc_ids = matches["source_id"].where(matches["accepted"].astype(bool))
    matches["source_shared"] = acc_ids.notna() & acc_ids.duplicated(keep=False)
    return matches, cascade_counts(matches)


def cascade_counts(matches: pd.DataFrame) -> pd.DataFrame:
    """Count table in the shape of paper 000 Table 4.

    Parameters
    ----------
    matches : pandas.DataFrame
        The first output of :func:`run_cascade` (needs a ``rule`` column).

    Returns
    -------
    pandas.DataFrame
        One row per rule key of :data:`CASCADE_RULES`, in Table 4's order (then the two rows the paper
        lacks): ``rule``, ``count``, ``accepted``, ``description``, ``paper_count`` (Int64, null for the
        extra rows).
    """
    counts = matches["rule"].value_counts() if len(matches) else pd.Series(dtype=np.int64)
    rows = [
        {
            "rule": key,
            "count": int(counts.get(key, 0)),
            "accepted": acc,
            "description": desc,
            "paper_count": paper,
        }
        for key, (acc, desc, paper) in CASCADE_RULES.items()
    ]
    return pd.DataFrame(rows).astype({"count": np.int64, "accepted": bool, "paper_count": "Int64"})


def precision_recall(
    matches: pd.DataFrame, truth: pd.Series, gaia_source_ids: Collection[int] | None = None
) -> pd.DataFrame:
    """Precision and recall of the cascade against known counterparts, overall and per rule.

    Parameters
    ----------
    matches : pandas.DataFrame
        Output of :func:`run_cascade`.
    truth : pandas.Series
        Index ``ogle_id`` → true Gaia ``source_id`` (null: no true counterpart exists).
    gaia_source_ids : collection of int, optional
        The Gaia table's source ids; a true counterpart not among them cannot be recovered. By default every
        non-null truth id counts as present.

    Returns
    -------
    pandas.DataFrame
        Index ``all`` then each rule present in ``matches`` (Table-4 order); columns ``n_objects``,
        ``n_accepted``, ``n_correct`` (accepted with the true source_id), ``n_recoverable`` (true counterpart
        present in the Gaia table), ``precision`` = n_correct / n_accepted and ``recall`` =
        n_correct / n_recoverable (NaN where the denominator is 0).
    """
    # Convert to nullable Int64 *before* reindexing: reindexing an int64 Series with missing keys upcasts to
    # float64, which silently corrupts 19-digit Gaia source_ids.
    true_id = pd.Series(truth).astype("Int64").reindex(matches["ogle_id"].to_numpy()).array
    present = ~pd.isna(true_id)
    if gaia_source_ids is not None:
        ids = set(int(s) for s in gaia_source_ids)
        present = present & np.array([(not pd.isna(t)) and int(t) in ids for t in true_id], dtype=bool)
    chosen = matches["source_id"].astype("Int64").array
    accepted = matches["accepted"].to_numpy(bool)
    correct = accepted & np.asarray((chosen == true_id).fillna(False), dtype=bool)
    frame = pd.DataFrame(
        {
            "rule": matches["rule"].to_numpy(),
            "acc": accepted,
            "ok": correct,
            "rec": np.asarray(present, dtype=bool),
        }
    )

    def _row(f: pd.DataFrame) -> dict[str, float]:
        n_acc, n_ok, n_rec = int(f["acc"].sum()), int(f["ok"].sum()), int(f["rec"].sum())
        return {
            "n_objects": len(f),
            "n_accepted": n_acc,
            "n_correct": n_ok,
            "n_recoverable": n_rec,
            "precision": n_ok / n_acc if n_acc else np.nan,
            "recall": n_ok / n_rec if n_rec else np.nan,
        }

    rows = {"all": _row(frame)}
    for key in CASCADE_RULES:
        sub = frame[frame["rule"] == key]
        if len(sub):
            rows[key] = _row(sub)
    return pd.DataFrame.from_dict(rows, orient="index")


def rule_score(row: pd.Series) -> dict[str, int | float | None]:
    """One row of :func:`precision_recall` as a JSON-ready document.

    Parameters
    ----------
    row : pandas.Series
        A row of the :func:`precision_recall` table (``n_objects``, ``n_accepted``, ``precision``,
        ``recall``).

    Returns
    -------
    dict
        ``n_objects`` and ``n_accepted`` (int), ``precision`` and ``recall`` (float, None where NaN).
    """

    def num(x):
        return None if pd.isna(x) else float(x)

    return {
        "n_objects": int(row["n_objects"]),
        "n_accepted": int(row["n_accepted"]),
        "precision": num(row["precision"]),
        "recall": num(row["recall"]),
    }


def cascade_summary(
    scores: pd.DataFrame | None, matches: pd.DataFrame, counts: pd.DataFrame
) -> dict[str, Any]:
    """Figures of merit of one cascade run (paper 000 App. A, Table 4) for the metrics document.

    Parameters
    ----------
    scores : pandas.DataFrame or None
        The :func:`precision_recall` table of the run; None for real data, which have no truth.
    matches, counts : pandas.DataFrame
        The two outputs of :func:`run_cascade`.

    Returns
    -------
    dict
        ``precision`` and ``recall`` over all objects (None without truth), ``per_rule`` (rule →
        :func:`rule_score`, in Table-4 order; without truth only ``n_objects`` and ``n_accepted``, rules
        sorted by name), ``n_objects`` and ``n_accepted`` (all rules) and ``table4_counts`` (rule → count,
        every rule of :data:`CASCADE_RULES` in Table-4 order), in that key order.
    """
    if scores is None:
        per_rule = matches.groupby("rule")["accepted"].agg(["size", "sum"])
        precision = recall = None
        per_rule_doc = {r: {"n_objects": int(n), "n_accepted": int(a)} for r, (n, a) in per_rule.iterrows()}
    else:
        overall = rule_score(scores.loc["all"])
        precision, recall = overall["precision"], overall["recall"]
        per_rule_doc = {rule: rule_score(row) for rule, row in scores.drop(index="all").iterrows()}
    return {
        "precision": precision,
        "recall": recall,
        "per_rule": per_rule_doc,
        "n_objects": int(len(matches)),
        "n_accepted": int(np.sum(matches["accepted"])),
        "table4_counts": dict(zip(counts["rule"], counts["count"].astype(int), strict=True)),
    }


def nearest_neighbour_matches(
    ogle: pd.DataFrame,
    gaia: pd.DataFrame,
    radius_arcsec: float = 2.0,
    photometric_tolerance_mag: float | None = None,
) -> pd.DataFrame:
    """The baseline the cascade has to beat: every object takes the nearest Gaia source within the cone
    (with ``photometric_tolerance_mag``, unless its G is further than that from :func:`gaia_g_from_vi`).

    Returns a frame shaped like :func:`run_cascade`'s matches for :func:`precision_recall`: ``ogle_id``,
    ``source_id`` (Int64, null without a candidate), ``accepted`` and ``rule`` (``nearest_neighbour``,
    ``photometry_inconsistent`` or ``no_candidate``)."""
    pairs = cone_match(ogle, gaia, radius_arcsec)
    first = pairs[pairs["rank"] == 1].set_index("ogle_id").reindex(ogle["ogle_id"].to_numpy())
    source = first["source_id"].astype("Int64")
    found = source.notna().to_numpy()
    rule = np.where(found, "nearest_neighbour", "no_candidate").astype(object)
    if photometric_tolerance_mag is not None and {"i_mag", "v_i"} <= set(ogle.columns):
        rows = first["gaia_row"].fillna(0).to_numpy(np.int64)
        g = np.where(found, gaia["phot_g_mean_mag"].to_numpy(np.float64)[rows], np.nan)
        delta = g - gaia_g_from_vi(ogle["i_mag"], ogle["v_i"])
        rule[np.abs(delta) > photometric_tolerance_mag] = "photometry_inconsistent"
    return pd.DataFrame(
        {
            "ogle_id": ogle["ogle_id"].to_numpy(),
            "source_id": source.array,
            "accepted": rule == "nearest_neighbour",
            "rule": rule,
        }
    )


def compare_per_rule(matches: pd.DataFrame, baseline: pd.DataFrame, truth: pd.Series) -> pd.DataFrame:
    """Where the cascade helps and where it hurts: for the objects each cascade rule decided, how many the
    cascade and the ``baseline`` (e.g. :func:`nearest_neighbour_matches`) matched to their true counterpart,
    and how many each accepted.

    Returns one row per rule present (Table-4 order): ``n_objects``, ``cascade_accepted``,
    ``cascade_correct``, ``baseline_accepted``, ``baseline_correct`` and ``gain`` = cascade_correct −
    baseline_correct − (wrong acceptances the cascade adds over the baseline's)."""
    true_id = pd.Series(truth).astype("Int64").reindex(matches["ogle_id"].to_numpy()).array
    base = baseline.set_index("ogle_id").reindex(matches["ogle_id"].to_numpy())

    def correct(frame: pd.DataFrame) -> np.ndarray:
        chosen = frame["source_id"].astype("Int64").array
        return frame["accepted"].fillna(False).to_numpy(bool) & np.asarray(
            (chosen == true_id).fillna(False), bool
        )

    table = pd.DataFrame(
        {
            "rule": matches["rule"].to_numpy(),
            "c_acc": matches["accepted"].to_numpy(bool),
            "c_ok": correct(matches),
            "b_acc": base["accepted"].fillna(False).to_numpy(bool),
            "b_ok": correct(base),
        }
    )
    rows = []
    for rule in [r for r in CASCADE_RULES if r in set(table["rule"])]:
        t = table[table["rule"] == rule]
        c_wrong, b_wrong = int(t["c_acc"].sum() - t["c_ok"].sum()), int(t["b_acc"].sum() - t["b_ok"].sum())
        rows.append(
            {
                "rule": rule,
                "n_objects": len(t),
                "cascade_accepted": int(t["c_acc"].sum()),
                "cascade_correct": int(t["c_ok"].sum()),
                "baseline_accepted": int(t["b_acc"].sum()),
                "baseline_correct": int(t["b_ok"].sum()),
                "gain": int(t["c_ok"].sum() - t["b_ok"].sum()) - (c_wrong - b_wrong),
            }
        )
    return pd.DataFrame(rows)


def cascade_metrics(
    pm_radius_convention: str, scores: pd.DataFrame | None, matches: pd.DataFrame, counts: pd.DataFrame
) -> dict[str, Any]:
    """:func:`cascade_summary` of a run under one PM-radius convention (:func:`pm_radius_arcsec`), led by the
    convention's name.

    Returns
    -------
    dict
        ``{"pm_radius_convention": pm_radius_convention, **cascade_summary(scores, matches, counts)}``.
    """
    return {"pm_radius_convention": pm_radius_convention, **cascade_summary(scores, matches, counts)}


def published_agreement_summary(comparison: pd.DataFrame) -> pd.DataFrame:
    """Objects and agreements with the authors per published table, class and deciding rule.

    Parameters
    ----------
    comparison : pandas.DataFrame
        :func:`latentsky.io.ogle.compare_with_published` of a cascade run on the authors' rows
        (``published_rows``, ``var_class``, ``rule``, ``ogle_id``, ``agrees``).

    Returns
    -------
    pandas.DataFrame
        One row per (``published_rows``, ``var_class``, ``rule``), sorted, with ``n_objects`` and
        ``n_agree``.
    """
    return (
        comparison.groupby(["published_rows", "var_class", "rule"], sort=True)
        .agg(n_objects=("ogle_id", "size"), n_agree=("agrees", "sum"))
        .reset_index()
    )


def published_agreement(comparison: pd.DataFrame) -> dict[str, Any]:
    """How often the cascade chose the Gaia source the authors published (the real-data check of App. A).

    Parameters
    ----------
    comparison : pandas.DataFrame
        :func:`latentsky.io.ogle.compare_with_published` of a cascade run (``published_rows``, ``rule``,
        ``agrees``, ``source_shared``).

    Returns
    -------
    dict
        ``n_objects``, ``agreement`` (fraction of objects whose choice agrees), ``rule_counts`` (rule → objects),
        ``per_published_row`` (table → ``n_objects``, ``agreement``) and ``n_source_shared`` (objects whose
        Gaia source another object also claims).
    """
    return {
        "n_objects": int(len(comparison)),
        "agreement": float(comparison["agrees"].mean()),
        "rule_counts": {k: int(v) for k, v in comparison["rule"].value_counts().items()},
        "per_published_row": {
            row: {"n_objects": int(len(g)), "agreement": float(g["agrees"].mean())}
            for row, g in comparison.groupby("published_rows")
        },
        "n_source_shared": int(comparison["source_shared"].sum()),
    }
