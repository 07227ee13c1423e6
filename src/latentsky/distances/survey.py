"""Figures of merit of a Gaia-like source table (simulated or real), for results/metrics/sources.json."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

#: RUWE above which Gaia DR2 astrometry is considered unreliable (Lindegren et al. 2018; paper 004 Sec. 2).
RUWE_LIMIT = 1.4
#: Southern limit of the Bayestar / Pan-STARRS 1 footprint (paper 004 Sec. 2).
BAYESTAR_DEC_LIMIT = -30.0


def _fraction(mask: np.ndarray) -> float:
    return float(np.mean(mask)) if len(mask) else float("nan")


def survey_summary(observed: pd.DataFrame) -> dict[str, Any]:
    """Counts and fractions describing a Gaia table with DR2 column names."""
    parallax = observed["parallax"].to_numpy(dtype=float)
    snr = parallax / observed["parallax_error"].to_numpy(dtype=float)
    bp_rp = observed["bp_rp"].to_numpy(dtype=float, na_value=np.nan)
    g = observed["phot_g_mean_mag"].to_numpy(dtype=float)
    summary: dict[str, Any] = {
        "n_stars": int(len(observed)),
        "fraction_negative_parallax": _fraction(parallax < 0),
        "fraction_missing_bp_rp": _fraction(~np.isfinite(bp_rp)),
        "fraction_dec_below_minus30": _fraction(observed["dec"].to_numpy() < BAYESTAR_DEC_LIMIT),
        "median_parallax_snr": float(np.median(snr)),
        "fraction_parallax_snr_above_10": _fraction(snr > 10),
        "phot_g_mean_mag_min": float(np.min(g)),
        "phot_g_mean_mag_max": float(np.max(g)),
    }
    if "ruwe" in observed:
        summary["fraction_ruwe_above_1p4"] = _fraction(observed["ruwe"].to_numpy(dtype=float) > RUWE_LIMIT)
    return summary


def truth_summary(observed: pd.DataFrame, truth: pd.DataFrame) -> dict[str, Any]:
    """What the simulation knows and a survey would not: populations, footprint, parallax pulls."""
    merged = observed[["source_id", "parallax", "parallax_error"]].merge(
        truth, on="source_id", validate="1:1"
    )
    if len(merged) != len(observed):
        raise ValueError(
            f"truth table covers {len(merged)} of {len(observed)} observed stars; they must match one to one"
        )
    pull = (merged["parallax"] - merged["true_parallax_mas"]) / merged["parallax_error"]
    bad = merged["bad_astrometry"].to_numpy(dtype=bool)
    return {
        "population_counts": {k: int(v) for k, v in merged["population"].value_counts().sort_index().items()},
        "n_cluster_members": int(merged["cluster_member"].sum()),
        "fraction_in_dust_footprint": _fraction(merged["in_dust_footprint"].to_numpy(dtype=bool)),
        "median_true_distance_pc": float(merged["true_distance_pc"].median()),
        "parallax_pull_std_good_astrometry": float(np.std(pull[~bad])),
        "parallax_pull_std_bad_astrometry": float(np.std(pull[bad])) if bad.any() else None,
        "median_true_reddening": float(merged["true_reddening"].median()),
    }
