"""From a Gaia table to the distance model's inputs, training selection and catalog rows (paper 004).

The pieces every entry point shares — the Snakemake rules, ``latentsky distances`` for a user's own table,
and the benchmark — so that they cannot drift apart:

* :func:`stars_from_gaia` — canonical Gaia columns (:mod:`latentsky.io.gaia_columns`) → :class:`Stars`, with the
  parallax correction applied (:mod:`latentsky.distances.parallax`: the release's global offset or
  Lindegren et al. 2021's zero point), and :func:`calibration_flags` for the stars it could not serve;
* :func:`training_mask` — the paper's training cuts (RUWE < 1.4, dec > −30°, in the dust map, complete
  photometry and astrometry), with the count each cut removes;
* :func:`catalog_frame` — one row per input star with the posterior summaries and flags;
* :func:`dust_source`, :func:`posterior_settings` — config blocks → dust source and posterior settings
  (the torch device comes from :mod:`latentsky.training`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from latentsky.distances.dust import BayestarDust, ConstantDust, DustSource, NoDust
from latentsky.distances.grid import GridSettings
from latentsky.distances.importance import PaperSettings
from latentsky.distances.noise import photometric_errors
from latentsky.distances.parallax import ParallaxCorrection
from latentsky.distances.posterior import POSTERIOR_COLUMNS, PosteriorSettings
from latentsky.distances.prior import DistancePrior
from latentsky.distances.stars import DistanceFlag, Stars


def stars_from_gaia(gaia: pd.DataFrame, parallax_offset_mas: float | np.ndarray) -> Stars:
    """Model inputs from canonical Gaia columns; ``parallax_offset_mas`` is *added* to every parallax: one
    global offset, or one per star (:attr:`~latentsky.distances.parallax.ParallaxCorrection.offset_mas`).

    The photometric variance that enters σ_P² (see :mod:`latentsky.distances.training`) is
    σ_G² + σ²_{BP−RP} + σ²_{BP−G} with σ²_{BP−RP} = σ_BP² + σ_RP² and σ²_{BP−G} = σ_BP² + σ_G².
    """

    def col(name: str) -> np.ndarray:
        return gaia[name].to_numpy(dtype=float, na_value=np.nan)

    s_g, s_bp, s_rp = (col(f"phot_{b}_mean_mag_error") for b in ("g", "bp", "rp"))
    phot_var = s_g**2 + (s_bp**2 + s_rp**2) + (s_bp**2 + s_g**2)
    return Stars(
        ra=col("ra"),
        dec=col("dec"),
        parallax=col("parallax") + parallax_offset_mas,
        parallax_error=col("parallax_error"),
        g_mag=col("phot_g_mean_mag"),
        bp_rp=col("bp_rp"),
        bp_g=col("bp_g"),
        phot_var=np.where(np.isfinite(phot_var), phot_var, 0.0),
        phot_err=photometric_errors(s_g, s_bp, s_rp),
    )


def training_mask(
    gaia: pd.DataFrame, stars: Stars, dust: DustSource, ruwe_limit: float, min_dec_deg: float
) -> tuple[np.ndarray, dict[str, int]]:
    """The paper's training cuts (paper 004 Sec. 2) and how many stars each removes (in this order)."""
    n = len(stars)
    keep = np.ones(n, dtype=bool)
    removed: dict[str, int] = {}

    def cut(name: str, ok: np.ndarray) -> None:
        nonlocal keep
        removed[name] = int(np.sum(keep & ~ok))
        keep &= ok

    finite = np.isfinite
    plx_ok = finite(stars.parallax) & finite(stars.parallax_error) & (stars.parallax_error > 0)
    cut("missing_astrometry", plx_ok)
    cut("missing_photometry", finite(stars.g_mag) & finite(stars.bp_rp) & finite(stars.bp_g))
    ruwe = gaia["ruwe"].to_numpy(dtype=float, na_value=np.nan)
    cut("ruwe_not_below_limit", ruwe < ruwe_limit)
    cut("dec_below_limit", stars.dec > min_dec_deg)
    cut("outside_dust_map", dust.coverage(stars.ra, stars.dec).in_map)
    return keep, removed


def calibration_flags(gaia: pd.DataFrame, correction: ParallaxCorrection) -> np.ndarray:
    """The flags of the calibrations the pipeline fell back from, per star (they blame no star):
    :attr:`DistanceFlag.RUWE_EMPIRICAL_U0` where the source table says its RUWE used the empirical u0
    (``ruwe_empirical_u0``), :attr:`DistanceFlag.ZERO_POINT_OUTSIDE_CALIBRATION` where the Lindegren et al.
    (2021) zero point was asked for but the star lies outside its calibration."""
    flags = np.zeros(len(gaia), dtype=np.int64)
    if "ruwe_empirical_u0" in gaia:
        empirical = gaia["ruwe_empirical_u0"].to_numpy(dtype=bool, na_value=False)
        flags[empirical] |= DistanceFlag.RUWE_EMPIRICAL_U0
    flags[correction.outside_calibration] |= DistanceFlag.ZERO_POINT_OUTSIDE_CALIBRATION
    return flags


#: Catalog columns copied from the input so a row can be read without the source table.
INPUT_COLUMNS = ("source_id", "ra", "dec", "parallax", "parallax_error", "phot_g_mean_mag", "bp_rp", "bp_g")


def catalog_frame(
    gaia: pd.DataFrame, posterior: Mapping[str, np.ndarray], parallax_offset_mas: np.ndarray | None = None
) -> pd.DataFrame:
    """One row per input star: input astrometry/photometry, posterior summaries (pc, mag), flags.

    ``parallax`` is the catalogue's value; with ``parallax_offset_mas`` the row also records what was added
    to it before the posterior (``parallax_offset``, mas: the global offset, or −ϖ₀ of Lindegren et al.
    2021), so the corrected parallax is ``parallax + parallax_offset`` for every star.
    """
    out = pd.DataFrame({name: gaia[name].to_numpy() for name in INPUT_COLUMNS})
    if parallax_offset_mas is not None:
        out["parallax_offset"] = np.array(
            np.broadcast_to(np.asarray(parallax_offset_mas, np.float64), len(out))
        )
    for name in POSTERIOR_COLUMNS:
        out[name] = posterior[name]
    if "dist_quantiles" in posterior:
        # The 100-quantile product (posterior.n_quantiles): one list per star, empty without a posterior.
        q = np.asarray(posterior["dist_quantiles"], dtype=np.float32)
        out["dist_quantiles"] = [row if np.all(np.isfinite(row)) else row[:0] for row in q]
    out["has_posterior"] = np.asarray(posterior["has_posterior"], dtype=bool)
    out["flags"] = np.asarray(posterior["flags"], dtype=np.int32)
    out["flag_names"] = [flag_names(int(f)) for f in out["flags"]]
    return out


def flag_names(flags: int) -> str:
    """Human-readable flag names, comma separated ("" when none is set)."""
    return ",".join(f.name.lower() for f in DistanceFlag if flags & f)


def dust_source(settings: Mapping[str, Any], map_path: str | os.PathLike | None) -> DustSource:
    """The ``distances.dust`` config block → a dust source (``map`` reads ``map_path``)."""
    kind = settings.get("kind", "map")
    if kind == "none":
        return NoDust()
    if kind == "constant":
        return ConstantDust(float(settings.get("reddening", 0.0)))
    if kind == "map":
        if map_path is None:
            raise ValueError("distances.dust.kind 'map' needs a dust map file")
        return BayestarDust(map_path)
    raise ValueError(f"distances.dust.kind must be 'map', 'none' or 'constant', got {kind!r}")


def posterior_settings(settings: Mapping[str, Any], prior_table: str | None = None) -> PosteriorSettings:
    """The ``distances.posterior`` config block (defaults filled by the schema) → :class:`PosteriorSettings`.

    ``prior_table`` replaces the block's ``prior_table`` (the workflow passes the table it resolved).
    """
    grid = dict(settings.get("grid", {}))
    return PosteriorSettings(
        method=settings.get("method", "grid"),
        prior=DistancePrior(
            settings.get("prior", "edsd"),
            float(settings.get("prior_length_kpc", 1.35)),
            prior_table or settings.get("prior_table"),
        ),
        batch_size=int(settings.get("batch_size", 4096)),
        chunk_points=int(settings.get("chunk_points", 65536)),
        n_quantiles=int(settings.get("n_quantiles", 0)),
        photometric_noise=settings.get("photometric_noise", "convolve"),
        grid=GridSettings(**grid),
        paper=PaperSettings(**dict(settings.get("paper", {}))),
    )
