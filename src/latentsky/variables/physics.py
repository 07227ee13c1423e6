"""The physical parameters an OGLE object takes from its Gaia counterpart (paper 000 Sec. 2.3), and the check
that they are physical: the Cepheid period–luminosity relation.

cVAE-P is conditioned on T_eff, M_G and the period (Sec. 4.2). The paper takes M_G from G and the
Bailer-Jones (2018) distance; for Magellanic Cloud members that distance is its Galactic prior (a DR2 parallax
of 0.02 mas measured to ±0.03–0.3 mas says nothing), so this module uses the Clouds' distance moduli there
(:data:`MAGELLANIC_DISTANCE_MODULI`), says per object which distance it used, and fits the P–L relation of
the Cepheids so that anyone can see whether the M_G are real (:func:`period_luminosity`).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from latentsky.extinction import a0_from_ogle, gaia_deredden
from latentsky.photometry import class_teff
from latentsky.variables.crossmatch import _require, absolute_g

__all__ = [
    "MAGELLANIC_DISTANCE_MODULI",
    "PHYSICS_FROM_GAIA",
    "TEFF_DEREDDENED",
    "TEFF_SOURCES",
    "adopted_physics",
    "ogle_system",
    "period_luminosity",
]


#: Physical-parameter columns :func:`adopted_physics` adds, with the Gaia DR2 column each comes from.
PHYSICS_FROM_GAIA: dict[str, str] = {"teff": "teff_val", "radius": "radius_val", "luminosity": "lum_val"}

#: Distance moduli (mag) of the Magellanic Clouds: LMC 18.48 (Pietrzyński et al. 2019, 18.477 ± 0.026 from
#: eclipsing binaries), SMC 18.96 (Graczyk et al. 2020, 18.977 ± 0.032; 18.96 as issue 20 and the
#: simulation's 62 kpc). At 50–62 kpc a Gaia DR2 parallax (σ ≈ 0.03–0.3 mas against a true 0.02 mas) carries
#: no distance information, and Bailer-Jones (2018) distances are their Galactic prior's: the authors' LMC
#: Cepheids have median r_est 6.8 kpc, which makes their M_G ≈ +1.8 instead of ≈ −3.5.
MAGELLANIC_DISTANCE_MODULI: dict[str, float] = {"LMC": 18.48, "SMC": 18.96}


#: Where each release's T_eff comes from, as the ``teff_source`` column says. DR2's Priam fits G, BP, RP
#: assuming no extinction, so a reddened star reads cool (the authors' bulge RRab: median 4,831 K against a
#: true 6,000–7,500 K); DR3's GSP-Phot fits T_eff with the extinction A0 (Andrae et al. 2023).
TEFF_SOURCES: dict[str, str] = {
    "dr2": "gaia_dr2_priam_no_extinction",
    "dr3": "gaia_dr3_gspphot_extinction_fitted",
}
#: ``teff_source`` of a DR2 T_eff replaced by the dereddened one: the Mucciarelli et al. (2021) relation at the
#: (BP−RP)_0 that a reddening map gives (:func:`adopted_physics`).
TEFF_DEREDDENED = "bp_rp0_mucciarelli2021"


def ogle_system(ogle_id: pd.Series, field: pd.Series | None = None) -> pd.Series:
    """The stellar system of each object — ``LMC``, ``SMC``, ``BLG`` (bulge), ``GD`` (disk), … — from the
    ``field`` column where given (the simulation's, whose ids are ``OGLE-SIM-…``), else the id's second
    token (``OGLE-LMC-CEP-0002`` → ``LMC``)."""
    from_id = ogle_id.astype(str).str.extract(r"^OGLE-([A-Za-z]+)-", expand=False).str.upper()
    if field is None:
        return from_id
    return field.astype("string").str.upper().fillna(from_id)


def adopted_physics(
    matches: pd.DataFrame,
    gaia: pd.DataFrame,
    system: pd.Series | None = None,
    distance_moduli: Mapping[str, float] | None = None,
    gaia_release: str = "dr2",
    reddening: pd.DataFrame | None = None,
    var_class: pd.Series | None = None,
) -> pd.DataFrame:
    """Physical parameters of each OGLE object from its accepted Gaia DR2 counterpart (paper 000 Sec. 2.3).

    Parameters
    ----------
    matches : pandas.DataFrame
        Output of :func:`run_cascade` (``ogle_id``, ``accepted``, ``source_id``).
    gaia : pandas.DataFrame
        The Gaia table the cascade ran on: ``source_id``, ``phot_g_mean_mag``, ``bp_rp``, ``r_est``,
        ``teff_val``; ``radius_val`` and ``lum_val`` are optional (NaN when absent).
    system : pandas.Series, optional
        Each row's stellar system (:func:`ogle_system`), aligned with ``matches``; default from the ids.
    distance_moduli : mapping, optional
        System → distance modulus (mag) used instead of ``r_est`` for its members (default
        :data:`MAGELLANIC_DISTANCE_MODULI`; an empty mapping gives the paper's Bailer-Jones distances for all).
    gaia_release : the release of ``gaia`` (``dr2`` or ``dr3``), which names the ``teff_source``.
    reddening : pandas.DataFrame, optional
        ``e_v_i`` and ``a_i`` (mag) per row of ``matches`` from a 2-D reddening map
        (:func:`latentsky.io.reddening.reddening_at`; NaN outside it). Where known, A_0 = A_I + E(V−I) gives
        (BP−RP)_0 and A_G (Babusiaux et al. 2018, :func:`latentsky.extinction.gaia_deredden`): M_G is
        corrected by A_G, and a DR2 T_eff (Priam assumes no extinction) is replaced by the Mucciarelli et al.
        (2021) T_eff of (BP−RP)_0 where that colour lies in the relation's range (``teff_source``
        :data:`TEFF_DEREDDENED`). Only stars Gaia gave a T_eff get one, so the sample is the paper's.
        Default: none — the paper's uncorrected values.
    var_class : pandas.Series, optional
        Each row's OGLE class, aligned with ``matches``, which picks the colour–T_eff relation
        (:data:`latentsky.photometry.CLASS_TEFF_RELATION`); required with ``reddening``.

    Returns
    -------
    pandas.DataFrame
        One row per row of ``matches`` (same order): ``ogle_id``, ``source_id`` (Int64, null unless
        accepted), ``teff`` (K: dereddened where a map gives the reddening, else Gaia's ``teff_val``),
        ``teff_gaia`` (Gaia's, as published), ``abs_g`` (M_G from G − A_G and the system's distance
        modulus, or the Bailer-Jones ``r_est`` elsewhere: :func:`absolute_g`; A_G = 0 without a map),
        ``e_v_i`` and ``a_g`` (mag; NaN without a map),
        ``distance_source`` (``distance_modulus`` or ``bailer_jones``; null without M_G), ``bp_rp`` (mag),
        ``teff_source`` (:data:`TEFF_SOURCES`; null without T_eff), ``radius`` (R_sun) and ``luminosity``
        (L_sun) from FLAME, and ``has_physics``: Teff and M_G both
        known — the three parameters (Teff, M_G, period) cVAE-P is conditioned on (paper 000 Sec. 4.2).
        All NaN / False where the match was rejected.
    """
    _require(gaia, ("source_id", "phot_g_mean_mag", "bp_rp", "r_est", "teff_val"), "Gaia")
    accepted = matches["accepted"].to_numpy(bool)
    source_id = matches["source_id"].astype("Int64").where(accepted)
    g = gaia.set_index("source_id")
    # int64 keys throughout: a float round trip would corrupt 19-digit source_ids.
    keys = source_id.fillna(-1).to_numpy(np.int64)
    rows = g.reindex(keys)
    out = pd.DataFrame({"ogle_id": matches["ogle_id"].to_numpy(), "source_id": source_id.array})
    for name, col in PHYSICS_FROM_GAIA.items():
        out[name] = rows[col].to_numpy(np.float64) if col in rows else np.nan
    g_mag = rows["phot_g_mean_mag"].to_numpy(np.float64)
    out["abs_g"] = absolute_g(g_mag, rows["r_est"].to_numpy(np.float64))
    moduli = MAGELLANIC_DISTANCE_MODULI if distance_moduli is None else distance_moduli
    systems = ogle_system(matches["ogle_id"]) if system is None else pd.Series(list(system), dtype="string")
    by_name = {k.upper(): float(v) for k, v in moduli.items()}
    modulus = np.array([by_name.get(str(name).upper(), np.nan) for name in systems], dtype=np.float64)
    by_modulus = np.isfinite(modulus) & accepted
    out.loc[by_modulus, "abs_g"] = g_mag[by_modulus] - modulus[by_modulus]
    out["distance_source"] = np.where(
        by_modulus, "distance_modulus", np.where(np.isfinite(out["abs_g"]), "bailer_jones", None)
    )
    if gaia_release not in TEFF_SOURCES:
        raise ValueError(f"gaia_release {gaia_release!r} not one of {sorted(TEFF_SOURCES)}")
    out["teff_gaia"] = out["teff"]
    out["teff_source"] = np.where(np.isfinite(out["teff"].to_numpy()), TEFF_SOURCES[gaia_release], None)
    out["bp_rp"] = rows["bp_rp"].to_numpy(np.float64)
    out["e_v_i"] = np.nan
    out["a_g"] = np.nan
    if reddening is not None:
        if var_class is None:
            raise ValueError("adopted_physics: var_class is required with reddening (it picks the relation)")
        _require(reddening, ("e_v_i", "a_i"), "reddening")
        _deredden(out, reddening, np.asarray(var_class), accepted, gaia_release)
    out["has_physics"] = np.isfinite(out["teff"].to_numpy()) & np.isfinite(out["abs_g"].to_numpy())
    columns = ["ogle_id", "source_id", "teff", "teff_source", "teff_gaia", "abs_g", "distance_source"]
    columns += ["bp_rp", "e_v_i", "a_g", "radius", "luminosity"]
    return out[[*columns, "has_physics"]]


def _deredden(
    out: pd.DataFrame, reddening: pd.DataFrame, var_class: np.ndarray, accepted: np.ndarray, release: str
) -> None:
    """Correct ``out``'s M_G by A_G and, for DR2, replace T_eff by the dereddened colour's (in place)."""
    e_v_i = reddening["e_v_i"].to_numpy(np.float64)
    a0 = a0_from_ogle(e_v_i, reddening["a_i"].to_numpy(np.float64))
    bp_rp = out["bp_rp"].to_numpy(np.float64)
    known = accepted & np.isfinite(a0) & np.isfinite(bp_rp)
    bp_rp0, a_g = gaia_deredden(np.where(known, bp_rp, 0.0), np.where(known, a0, 0.0))
    out["e_v_i"] = np.where(accepted, e_v_i, np.nan)
    out["a_g"] = np.where(known, a_g, np.nan)
    out["abs_g"] = out["abs_g"].to_numpy(np.float64) - np.where(known, a_g, 0.0)
    if release != "dr2":  # DR3's GSP-Phot T_eff already fits the extinction
        return
    teff0, in_range = class_teff(bp_rp0, var_class)
    replace = known & in_range & np.isfinite(out["teff"].to_numpy(np.float64))
    out["teff"] = np.where(replace, teff0, out["teff"].to_numpy(np.float64))
    out["teff_source"] = np.where(replace, TEFF_DEREDDENED, out["teff_source"].to_numpy(object))


def period_luminosity(
    frame: pd.DataFrame,
    var_class: str = "CEP",
    systems: tuple[str, ...] = ("LMC", "SMC"),
    system: pd.Series | None = None,
) -> pd.DataFrame:
    """The period–luminosity relation M_G = slope · log10 P + zero_point of one class, per system and mode.

    Least squares with one 3σ clip (σ from the median absolute deviation) so that a few blends or wrong
    periods do not tilt the line. A Cepheid sample with real M_G gives a slope near −2.8 (the Gaia DR2 G-band
    P–L of LMC fundamental-mode Cepheids, Ripepi et al. 2019) and a scatter of ~0.2 mag (depth, instability
    strip, no extinction correction); M_G from prior-dominated distances gives neither.

    Parameters
    ----------
    frame : one row per object: ``ogle_id``, ``var_class``, ``subtype``, ``period`` (d), ``abs_g`` (mag).
    var_class : the class to fit.
    systems : the systems to fit (:func:`ogle_system`).
    system : each row's system, aligned with ``frame`` (default from the ids).

    Returns
    -------
    pandas.DataFrame
        One row per (system, subtype) with ≥ 10 objects: ``n``, ``slope``, ``zero_point`` (M_G at P = 1 d),
        ``scatter`` (1.4826 × MAD of the residuals, mag), ``n_clipped`` and the M_G ``median``, ``p05``,
        ``p95``.
    """
    _require(frame, ("ogle_id", "var_class", "subtype", "period", "abs_g"), "period–luminosity")
    sys_of = (ogle_system(frame["ogle_id"]) if system is None else pd.Series(list(system))).astype(str)
    rows = []
    sel_class = (frame["var_class"].astype(str) == var_class).to_numpy()
    for name in systems:
        in_system = sel_class & (sys_of.to_numpy() == name)
        for mode, group in frame[in_system].groupby("subtype", sort=True):
            good = np.isfinite(group["abs_g"].to_numpy(np.float64)) & (
                group["period"].to_numpy(np.float64) > 0
            )
            if good.sum() < 10:
                continue
            logp = np.log10(group["period"].to_numpy(np.float64)[good])
            mg = group["abs_g"].to_numpy(np.float64)[good]
            keep = np.ones(len(mg), dtype=bool)
            for _ in range(2):  # fit, clip at 3σ, refit
                slope, zero = np.polyfit(logp[keep], mg[keep], 1)
                resid = mg - (slope * logp + zero)
                sigma = 1.4826 * np.median(np.abs(resid[keep] - np.median(resid[keep])))
                keep = np.abs(resid - np.median(resid[keep])) <= 3.0 * sigma
            rows.append(
                {
                    "system": name,
                    "subtype": mode,
                    "n": int(good.sum()),
                    "slope": float(slope),
                    "zero_point": float(zero),
                    "scatter": float(sigma),
                    "n_clipped": int((~keep).sum()),
                    "median": float(np.median(mg)),
                    "p05": float(np.percentile(mg, 5)),
                    "p95": float(np.percentile(mg, 95)),
                }
            )
    return pd.DataFrame(rows)
