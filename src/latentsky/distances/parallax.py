"""The parallax correction the distance model applies: the release's global offset or a per-star zero point.

Gaia parallaxes are biased by a zero point ϖ₀ that the distance model removes (paper 004 Sec. 2 adds
+0.029 mas to every DR2 parallax). What is right depends on the release:

* **DR2** — the global offset the quasars show, ϖ₀ = −0.029 mas (Lindegren et al. 2018, A&A 616, A2), as
  the paper uses;
* **(E)DR3** — the quasars' median is ϖ₀ = −0.017 mas (Lindegren et al. 2021a, A&A 649, A2), and the zero
  point varies with magnitude, colour and ecliptic latitude by a few tens of µas. The recipe of
  Lindegren et al. (2021b, A&A 649, A4: the functions Z5 for five- and Z6 for six-parameter solutions,
  with their published coefficient tables) is evaluated with the field's own implementation,
  ``gaiadr3-zeropoint`` (``zero_point.zpt.get_zpt``; its tables ``z5_200720.txt``/``z6_200720.txt``).

``distances.parallax_zero_point`` chooses ``none`` (the release's global offset, or
``distances.parallax_offset_mas`` when given) or ``lindegren2021`` (ϖ − Z5/Z6 per star). The recipe is
calibrated for 6 < G < 21, 1.1 < ν_eff < 1.9 µm⁻¹ (5p) and 1.24 < pseudocolour < 1.72 µm⁻¹ (6p); outside
that the library returns NaN, and such a star keeps its row and its posterior, corrected by the global
offset instead and flagged :attr:`DistanceFlag.ZERO_POINT_OUTSIDE_CALIBRATION` — beyond those limits the
difference between the per-star and the global value (≲ 0.03 mas) is small against the parallax errors of
G > 21 stars (≳ 1 mas) and the parallaxes of G < 6 stars, so a posterior is still worth having.

The release comes from ``distances.gaia_release`` (``dr2``/``dr3``) or, with ``auto``, from the table
(:func:`detect_gaia_release`), and the choice is logged.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from latentsky.distances.stars import DR2_PARALLAX_OFFSET_MAS
from latentsky.io.gaia_columns import LINDEGREN2021_COLUMNS

log = logging.getLogger(__name__)

#: Lindegren et al. (2021a, the EDR3 astrometric solution): the median parallax of EDR3's quasars is −17 µas,
#: so +0.017 mas is the global correction of (E)DR3 parallaxes (DR3's astrometry is EDR3's).
DR3_PARALLAX_OFFSET_MAS = 0.017
#: The global offset per release, added to every parallax when no per-star zero point is used.
RELEASE_PARALLAX_OFFSETS_MAS: dict[str, float] = {
    "dr2": DR2_PARALLAX_OFFSET_MAS,
    "dr3": DR3_PARALLAX_OFFSET_MAS,
}
GAIA_RELEASES = ("auto", "dr2", "dr3")
ZERO_POINT_METHODS = ("none", "lindegren2021")
#: Columns only (E)DR3's gaia_source has (DR2 calls its fitted colour ``astrometric_pseudo_colour`` and has
#: no ν_eff): their presence marks an (E)DR3 table.
EDR3_ONLY_COLUMNS = ("nu_eff_used_in_astrometry", "pseudocolour")
#: ``astrometric_params_solved`` of the solutions the recipe covers: 31 (5p) and 95 (6p); 3 (2p) has no
#: parallax.
FIVE_PARAMETER, SIX_PARAMETER = 31, 95


@dataclass(frozen=True)
class ParallaxCorrection:
    """What is added to each star's parallax before the posterior, and why.

    ``offset_mas`` (per star, mas) is added to the catalogue parallax: the global offset, or −ϖ₀ of
    Lindegren et al. (2021) for each star with one; ``outside_calibration`` marks the stars with a parallax
    that the recipe was asked for but could not give (they got ``global_offset_mas``).
    """

    release: str
    method: str
    global_offset_mas: float
    offset_mas: np.ndarray
    outside_calibration: np.ndarray
    description: str


def detect_gaia_release(gaia: pd.DataFrame) -> tuple[str, str]:
    """The release of a Gaia table from its columns: ``(release, reason)``.

    * (E)DR3's astrometric colour columns (:data:`EDR3_ONLY_COLUMNS`) → ``dr3``;
    * DR2's ``astrometric_pseudo_colour``, or DR2's along-scan fit (``astrometric_chi2_al``,
      ``astrometric_n_good_obs_al``) without them → ``dr2`` (DR2's gaia_source has no ``ruwe``; its RUWE
      is computed from these);
    * otherwise (a ``ruwe`` column and neither) → ``dr3``.

    A DR3 table cut down to DR2's columns reads as DR2; ``distances.gaia_release`` overrides.
    """
    names = {str(c).lower() for c in gaia.columns}
    present = [c for c in EDR3_ONLY_COLUMNS if c in names]
    if present:
        return "dr3", f"the table has (E)DR3's {', '.join(present)}"
    if "astrometric_pseudo_colour" in names:
        return "dr2", "the table has DR2's astrometric_pseudo_colour"
    if {"astrometric_chi2_al", "astrometric_n_good_obs_al"} <= names:
        return "dr2", (
            "the table has astrometric_chi2_al and astrometric_n_good_obs_al and none of (E)DR3's "
            + ", ".join(EDR3_ONLY_COLUMNS)
        )
    return "dr3", "the table has ruwe and neither DR2's chi-square columns nor its pseudo colour"


def lindegren2021_zero_point(gaia: pd.DataFrame, source: str = "<table>") -> np.ndarray:
    """ϖ₀ of Lindegren et al. (2021) per star, mas (``gaiadr3-zeropoint``'s ``get_zpt``); NaN outside its
    calibration (6 < G < 21, ν_eff 1.1–1.9 for 5p, pseudocolour 1.24–1.72 for 6p), for 2p solutions and
    where an input is missing. The corrected parallax is ϖ − ϖ₀.

    Raises
    ------
    ValueError
        Naming ``source`` and the columns, if the table lacks one of :data:`LINDEGREN2021_COLUMNS`.
    """
    from zero_point import zpt

    _require_lindegren2021_columns(gaia, source)
    index = {str(c).lower(): c for c in gaia.columns}

    def col(name: str) -> np.ndarray:
        values = pd.to_numeric(gaia[index[name]], errors="coerce")
        return values.to_numpy(dtype=np.float64, na_value=np.nan)

    g, nu_eff, pseudo = col("phot_g_mean_mag"), col("nu_eff_used_in_astrometry"), col("pseudocolour")
    ecl_lat, solved = col("ecl_lat"), col("astrometric_params_solved")
    colour = np.where(solved == FIVE_PARAMETER, nu_eff, pseudo)
    # get_zpt refuses any solution type but 31 and 95, so only those go in, and only with finite inputs.
    usable = np.isin(solved, (FIVE_PARAMETER, SIX_PARAMETER)) & np.isfinite(g + colour + ecl_lat)
    out = np.full(len(gaia), np.nan)
    if usable.any():
        zpt.load_tables()
        with warnings.catch_warnings():
            # With _warnings=False the library returns NaN outside its calibration instead of clamping
            # and warning; nothing else it might say concerns the result.
            warnings.simplefilter("ignore")
            out[usable] = zpt.get_zpt(
                g[usable], nu_eff[usable], pseudo[usable], ecl_lat[usable], solved[usable], _warnings=False
            )
    return out


def _require_lindegren2021_columns(gaia: pd.DataFrame, source: str) -> None:
    names = {str(c).lower() for c in gaia.columns}
    missing = [c for c in ("phot_g_mean_mag", *LINDEGREN2021_COLUMNS) if c not in names]
    if missing:
        raise ValueError(
            f"{source}: distances.parallax_zero_point 'lindegren2021' needs column(s) {', '.join(missing)} "
            "(Gaia (E)DR3 gaia_source: the zero point depends on G, the astrometric colour, the ecliptic "
            "latitude and the solution type)"
        )


def parallax_correction(
    gaia: pd.DataFrame, distances: Mapping[str, Any], source: str | None = None
) -> ParallaxCorrection:
    """The correction the ``distances`` settings ask for on this table (see the module docstring).

    Settings read: ``parallax_zero_point`` (``none`` | ``lindegren2021``, default ``none``),
    ``gaia_release`` (``auto`` | ``dr2`` | ``dr3``, default ``auto``) and ``parallax_offset_mas`` (mas; the
    release's global offset when absent or null). ``source`` names the table in messages (default: the
    frame's ``attrs["source"]``).

    Raises
    ------
    ValueError
        One line naming the setting or the table: an unknown option, ``lindegren2021`` on a table without
        the columns it needs, or on a DR2 table.
    """
    source = source or str(gaia.attrs.get("source", "<Gaia table>"))
    method = distances.get("parallax_zero_point", "none") or "none"
    if method not in ZERO_POINT_METHODS:
        raise ValueError(
            f"distances.parallax_zero_point must be one of {', '.join(ZERO_POINT_METHODS)}, got {method!r}"
        )
    release_setting = distances.get("gaia_release", "auto") or "auto"
    if release_setting not in GAIA_RELEASES:
        raise ValueError(
            f"distances.gaia_release must be one of {', '.join(GAIA_RELEASES)}, got {release_setting!r}"
        )
    if release_setting == "auto":
        release, reason = detect_gaia_release(gaia)
    else:
        release, reason = release_setting, "distances.gaia_release"
    given = distances.get("parallax_offset_mas")
    global_offset = float(given) if given is not None else RELEASE_PARALLAX_OFFSETS_MAS[release]
    offset_source = "distances.parallax_offset_mas" if given is not None else _offset_reference(release)
    n = len(gaia)
    plx = pd.to_numeric(gaia["parallax"], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    if method == "none":
        offset = np.full(n, global_offset)
        outside = np.zeros(n, dtype=bool)
        text = (
            f"Gaia {release.upper()} ({reason}): {global_offset:+.3f} mas added to every parallax "
            f"({offset_source})"
        )
    else:
        _require_lindegren2021_columns(gaia, source)
        if release == "dr2":
            raise ValueError(
                f"{source}: distances.parallax_zero_point 'lindegren2021' is the (E)DR3 recipe, but the table "
                f"is Gaia DR2 ({reason})"
            )
        zero_point = lindegren2021_zero_point(gaia, source)
        outside = np.isfinite(plx) & ~np.isfinite(zero_point)
        offset = np.where(np.isfinite(zero_point), -zero_point, global_offset)
        text = (
            f"Gaia {release.upper()} ({reason}): parallax − zero point of Lindegren et al. (2021) for "
            f"{int(np.isfinite(zero_point).sum())} of {n} stars; {int(outside.sum())} with a parallax outside "
            f"its calibration get {global_offset:+.3f} mas ({offset_source}) and the flag "
            "zero_point_outside_calibration"
        )
    log.info("%s: %s", source, text)
    return ParallaxCorrection(release, method, global_offset, offset, outside, text)


def _offset_reference(release: str) -> str:
    if release == "dr2":
        return "the DR2 global offset, Lindegren et al. 2018"
    return "the (E)DR3 quasar median, Lindegren et al. 2021a"
