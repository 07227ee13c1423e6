"""Simulated OGLE-III variable-star fields with a Gaia DR2-like catalog around them, with known truth.

The embedded-default input of the OGLE × Gaia cross-match and light-curve stages of Martínez-Palomera et al.
(paper 000, Sec. 2 and Appendix A). It produces what those stages read from the real surveys — the OGLE-III
variable-star catalog (identifier, position, class, subtype, period, mean I, V−I), OGLE I-band light curves,
and the Gaia DR2 sources within a few arcsec of each OGLE object — plus the truth they are scored against
(the true Gaia counterpart and the true physical parameters).

Recipe (vectorised; ~1,000 objects take well under a few seconds):

1. **Classes.** Counts per class are allocated deterministically (largest remainder) from the "Clean" column
   of paper 000 Table 1, with a 1% floor so the rare ACEP / DSCT classes exist at demo size. Subtypes use
   the OGLE-III vocabulary, including the multi-mode / semi-regular ones the cleaning stage later drops
   (Sec. 2.1: CEP F/1O and 1O/2O, written as OGLE-III writes them, RRLYR RRd, DSCT MULTIMODE, LPV SRV/OSARG).
2. **Physics.** Per class: period (d), Teff (K) and M_G (mag) drawn so they sit where paper 000 Fig. 2 puts
   them (period–luminosity laws for the pulsators, a main-sequence-like M_G(Teff) for eclipsing binaries);
   R and L follow from M_G and Teff (bolometric correction neglected, documented below).
3. **Light-curve shape is a function of the physics, by construction** (:func:`light_curve_model`):
   RR Lyrae go from a steep-rise, spiky-maximum sawtooth (cool, RRab) to a near-sinusoid (hot, RRc) as Teff
   rises, with amplitude falling; Cepheid amplitude and rise time follow log P (with a Hertzsprung bump near
   10 d); eclipsing binaries have two eclipses whose depth ratio is (T2/T1)^4; ellipsoidals are sinusoids at
   P/2 with slightly unequal minima; LPVs are large-amplitude quasi-sinusoids (phase-wandering for SRV/OSARG).
4. **Cadence.** OGLE-III-like: ~8 observing seasons (HJD 2452000–2455000) with the Galactic-bulge or
   Magellanic-Cloud visibility gaps, irregular nightly sampling, a few hundred to ~1,000 epochs; I-band
   errors from ≈0.005 mag at I = 14 to ≈0.1 mag at I = 19.5.
5. **Gaia.** The true counterpart (G, BP−RP, Teff for a fraction, Bailer-Jones-like r_est, bulge/LMC/SMC
   proper motions, DR2 variability flag/class for a fraction) at J2015.5, i.e. displaced from the OGLE
   (J2000) position by μ·Δt plus astrometric noise, and Poisson-distributed unrelated field stars within
   3″ (``crowding`` = their mean number within 2″) so that a realistic fraction of OGLE objects have 2–3+
   Gaia sources in the 2″ cone (Appendix A: 15,108 of 34,653).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from latentsky.extinction import a0_from_ogle, gaia_reddening
from latentsky.io import healpix
from latentsky.photometry import bp_rp0_from_teff, class_bp_rp0, class_teff, g_minus_v, teff_from_bp_rp0
from latentsky.simulate import gaia_errors as ge
from latentsky.simulate.gaia import missing_bp_rp_probability

# --------------------------------------------------------------------------------------------------
# Tables from paper 000 and the literature
# --------------------------------------------------------------------------------------------------
#: Variability classes of paper 000 (Sec. 2.1), in Table 1 order.
CLASSES: tuple[str, ...] = ("ACEP", "CEP", "DSCT", "ECL", "ELL", "LPV", "RRLYR", "T2CEP")
#: Paper 000 Table 1 column (3) ("Clean"): the class mix after cleaning, used as the class proportions.
TABLE1_CLEAN_COUNTS: dict[str, int] = {
    "ACEP": 72,
    "CEP": 7265,
    "DSCT": 44,
    "ECL": 10002,
    "ELL": 2328,
    "LPV": 4460,
    "RRLYR": 10028,
    "T2CEP": 450,
}
#: Minimum class fraction, so ACEP (0.2%) and DSCT (0.1%) are present in a ~1,000-object demo.
MIN_CLASS_FRACTION = 0.01
#: Table 1 column (6): percentage of validated objects with a Gaia Teff, per class (overall 67.4%). The
#: config's ``fraction_teff`` is the overall fraction; per-class rates keep these ratios.
TABLE1_TEFF_PERCENT: dict[str, float] = {
    "ACEP": 1.4,
    "CEP": 69.3,
    "DSCT": 76.2,
    "ECL": 90.3,
    "ELL": 84.1,
    "LPV": 85.8,
    "RRLYR": 30.2,
    "T2CEP": 73.8,
}
TABLE1_TEFF_OVERALL_PERCENT = 67.4
#: Table 1 column (8): percentage with Gaia R and L. Given as a rate conditional on having Teff (Gaia's
#: FLAME gives R, L only for a subset of the Priam Teff sources; Andrae et al. 2018).
TABLE1_RL_PERCENT: dict[str, float] = {
    "ACEP": 0.0,
    "CEP": 0.1,
    "DSCT": 23.8,
    "ECL": 15.7,
    "ELL": 5.9,
    "LPV": 0.1,
    "RRLYR": 0.3,
    "T2CEP": 0.7,
}

#: OGLE-III subtypes per class with their probabilities, and period ranges (d, log-uniform). Multi-mode and
#: semi-regular subtypes are included on purpose: the light-curve stage must drop them (paper 000 Sec. 2.1).
SUBTYPES: dict[str, tuple[tuple[str, float, float, float], ...]] = {
    # (subtype, probability, P_min, P_max)
    "ACEP": (("F", 0.6, 0.6, 2.0), ("1O", 0.4, 0.4, 1.2)),
    "CEP": (
        ("F", 0.55, 1.5, 30.0),
        ("1O", 0.35, 1.0, 6.0),
        ("F/1O", 0.04, 1.0, 4.0),
        ("1O/2O", 0.06, 1.0, 1.5),
    ),
    "DSCT": (("SINGLEMODE", 0.6, 0.02, 0.2), ("MULTIMODE", 0.4, 0.03, 0.15)),
    "ECL": (("EC", 0.3, 0.3, 1.0), ("ESD", 0.25, 0.5, 3.0), ("ED", 0.45, 1.0, 10.0)),
    "ELL": (("ELL", 1.0, 0.5, 5.0),),
    "LPV": (("Mira", 0.15, 150.0, 700.0), ("SRV", 0.25, 50.0, 400.0), ("OSARG", 0.6, 50.0, 150.0)),
    "RRLYR": (("RRab", 0.7, 0.45, 0.8), ("RRc", 0.25, 0.25, 0.45), ("RRd", 0.05, 0.35, 0.45)),
    "T2CEP": (("BLHer", 0.35, 1.0, 4.0), ("WVir", 0.45, 4.0, 15.0), ("RVTau", 0.2, 15.0, 20.0)),
}

#: Gaia DR2 variability labels (Holl et al. 2018; Rimoldini et al. 2019) per OGLE class/subtype. ECL and ELL
#: have no DR2 class: a "classified" object of those classes is only flagged VARIABLE, like the 461 objects of
#: Appendix A "flagged as variable with no assigned class".
GAIA_CLASS: dict[str, str] = {
    "ACEP": "ACEP",
    "CEP": "CEP",
    "DSCT": "DSCT_SXPHE",
    "LPV": "MIRA_SR",
    "T2CEP": "T2CEP",
}
GAIA_RRLYR_CLASS: dict[str, str] = {"RRab": "RRAB", "RRc": "RRC", "RRd": "RRD"}
#: Adjacent-class confusions (Appendix A: 98 of 103 mismatches were RR Lyrae ↔ Cepheid-like labels of
#: short-period stars); applied to GAIA_CLASS_CONFUSION of the classified objects.
GAIA_ADJACENT: dict[str, str] = {
    "RRAB": "ACEP",
    "RRC": "DSCT_SXPHE",
    "RRD": "RRC",
    "ACEP": "RRAB",
    "CEP": "T2CEP",
    "T2CEP": "CEP",
    "DSCT_SXPHE": "RRC",
    "MIRA_SR": "MIRA_SR",
}
GAIA_CLASS_CONFUSION = 0.03

#: Default OGLE-III fields: a Galactic-bulge patch near Baade's window, the LMC bar and the SMC body. Each has
#: a square size (deg), a distance (kpc) and its spread, I-band extinction A_I (mag),
#: bulk proper motion and internal dispersion (mas/yr), and a relative density of unrelated Gaia sources.
#: Distances: bulge 8.2 kpc, LMC 49.6 kpc (Pietrzyński et al. 2019), SMC 62 kpc. PMs: bulge (−2.7, −5.5)
#: with σ ≈ 3 mas/yr; LMC (1.85, 0.23), SMC (0.80, −1.23) (Gaia Collaboration, Helmi et al. 2018).
DEFAULT_FIELDS: tuple[dict[str, Any], ...] = (
    {
        "name": "BLG",
        "ra": 270.9,
        "dec": -30.0,
        "size_deg": 1.5,
        "distance_kpc": 8.2,
        "distance_sigma_kpc": 1.0,
        "a_i": 1.2,
        "pmra": -2.7,
        "pmdec": -5.5,
        "pm_sigma": 3.0,
        "density": 1.5,
    },
    {
        "name": "LMC",
        "ra": 80.9,
        "dec": -69.75,
        "size_deg": 2.0,
        "distance_kpc": 49.6,
        "distance_sigma_kpc": 1.5,
        "a_i": 0.15,
        "pmra": 1.85,
        "pmdec": 0.23,
        "pm_sigma": 0.15,
        "density": 1.0,
    },
    {
        "name": "SMC",
        "ra": 13.2,
        "dec": -72.8,
        "size_deg": 1.5,
        "distance_kpc": 62.0,
        "distance_sigma_kpc": 3.0,
        "a_i": 0.08,
        "pmra": 0.80,
        "pmdec": -1.23,
        "pm_sigma": 0.15,
        "density": 0.5,
    },
)
_FIELD_KEYS = tuple(DEFAULT_FIELDS[0])

#: Classes that belong to the Galactic disc: towards the bulge they are placed at log-uniform distances in
#: DISC_DISTANCE_KPC (kpc) rather than at the bulge.
DISC_CLASSES: tuple[str, ...] = ("DSCT", "ECL")
DISC_DISTANCE_KPC = (0.8, 8.0)

#: Where each class's validated objects lie: counts per OGLE-III target in the PELS-VAE authors' five
#: OGLE-III × Gaia DR2 tables (resources/ogle3_gaiadr2_xmatch, 13,574 objects; the Galactic-disc (GD)
#: objects are counted with the bulge, whose sight lines they share). A class's objects are spread over the
#: fields in these proportions: RR Lyrae, eclipsing binaries and LPVs that survive the cross-match are mostly
#: bulge stars (I ≈ 16), classical Cepheids Magellanic (I ≈ 15.8), δ Scuti nearby disc stars. One field mix
#: for all classes would put most RR Lyrae at the LMC's I ≈ 18.9, where they fail the SNR ≥ 5 cut.
#: tests/test_simulate_ogle.py recomputes this table from the shared files.
CLASS_FIELD_COUNTS: dict[str, dict[str, int]] = {
    "ACEP": {"BLG": 0, "LMC": 19, "SMC": 0},
    "CEP": {"BLG": 14, "LMC": 1207, "SMC": 1308},
    "DSCT": {"BLG": 14, "LMC": 0, "SMC": 0},
    "ECL": {"BLG": 3063, "LMC": 582, "SMC": 193},
    "ELL": {"BLG": 1029, "LMC": 0, "SMC": 0},
    "LPV": {"BLG": 1678, "LMC": 0, "SMC": 0},
    "RRLYR": {"BLG": 4070, "LMC": 207, "SMC": 5},
    "T2CEP": {"BLG": 114, "LMC": 64, "SMC": 7},
}

#: Survey epochs: OGLE-III positions are J2000 (Udalski et al. 2008), OGLE-III ran 2001–2009
#: (HJD − 2450000 ≈ 2000–5000) in 8 seasons. Season centres and lengths (d): the bulge is observable
#: ~Feb–Oct, the Magellanic Clouds (circumpolar from Las Campanas) all year but for ~3 months around June.
OGLE3_T0 = 2000.0
N_SEASONS = 8
SEASON_CENTRE_DOY: dict[str, float] = {"BLG": 165.0, "LMC": 345.0, "SMC": 335.0}
SEASON_LENGTH_D: dict[str, float] = {"BLG": 230.0, "LMC": 270.0, "SMC": 250.0}
#: Epochs per light curve (uniform): the bulge was observed more often than the Clouds in OGLE-III.
N_EPOCHS_RANGE: dict[str, tuple[int, int]] = {"BLG": (500, 1000), "LMC": (300, 700), "SMC": (300, 600)}

#: OGLE I-band error model, σ² = a² + p² 10^{0.4(I−19.5)} + q² 10^{0.8(I−19.5)} (floor, photon, sky):
#: 0.0056 mag at I = 14 and 0.10 mag at I = 19.5 (Udalski et al. 2008, Fig. 5).
OGLE_ERR_FLOOR, OGLE_ERR_PHOTON, OGLE_ERR_SKY = 0.003, 0.06, 0.08
#: Per-epoch seeing / transparency scatter of the error (log-normal σ).
OGLE_ERR_SEEING_SIGMA = 0.2
#: OGLE-III detects variables with mean I in this range (saturation ~12–13, detection ~20.5); objects drawn
#: outside are redrawn.
I_MAG_RANGE = (11.5, 20.0)
#: 1σ astrometric noise per coordinate of the OGLE minus Gaia position difference (arcsec), dominated by
#: OGLE-III's ~0.1″ astrometry in crowded fields (Szymański et al. 2011). Measured: in the authors' tables the
#: OGLE position and the Gaia position propagated to J2000 (``angDist``) differ by a median 0.080″; for a
#: 2-D Gaussian offset the median is σ √(2 ln 2) = 1.177 σ, so σ = 0.068″ (tested against the shared files).
#: This exceeds |μ|·Δt of Magellanic stars (≈ 0.03″), so for them the nearest source usually lies outside
#: its own PM radius, as in the real tables (90 % of LMC/SMC objects).
ASTROMETRIC_NOISE_ARCSEC = 0.07
#: Bailer-Jones r_est: fractional scatter and the fraction of sources without one (Appendix A: 151 of 853).
R_EST_FRACTIONAL_SIGMA = 0.12
R_EST_MISSING_FRACTION = 0.05
#: Gaia DR2 Priam Teff: typical error (K) and the range it is published in (Andrae et al. 2018). Priam fits
#: the observed colours assuming no extinction, so the simulation's ``teff_val`` is the T_eff its colour
#: model (:func:`latentsky.photometry.class_teff`) gives for the *reddened* BP−RP, plus this error.
TEFF_VAL_SIGMA = 250.0
TEFF_VAL_RANGE = (3300.0, 10000.0)
#: Unrelated sources are placed within this radius (arcsec); Poisson mean scaled by (R/2″)² so ``crowding``
#: is the mean number within the 2″ cross-match cone.
NEIGHBOUR_RADIUS_ARCSEC = 3.0
CONE_ARCSEC = 2.0
#: Field stars: fraction that are Milky-Way foreground (disc kinematics) rather than field-population members.
FOREGROUND_FRACTION = 0.3
FOREGROUND_PM_SIGMA = 5.0
#: Solar luminosity scale: L/L_sun = 10^{−0.4 (M_G − M_G,sun)}, M_G,sun = 4.67 (Casagrande & VandenBerg 2018);
#: bolometric corrections are neglected (|BC_G| < 0.3 mag for 4,500–8,000 K), R from L = 4πR²σT⁴.
M_G_SUN = 4.67
T_SUN = 5772.0
#: Colours: the simulation's T_eff → (BP−RP)₀ is the Mucciarelli et al. (2021) relation the pipeline inverts
#: (:func:`latentsky.photometry.class_bp_rp0`), OGLE's (V−I)₀ = (BP−RP)₀ / BP_RP_PER_V_I
#: (:func:`intrinsic_v_i`), and the extinction A_I of each field is spread as E(V−I) = A_I / R_I_SIM (a
#: bulge-like A_I/E(V−I)), A_0 = A_I + E(V−I), and Babusiaux et al. (2018) in the Gaia bands.
BP_RP_PER_V_I = 1.2
R_I_SIM = 1.4
#: Spacing (deg) of the simulated reddening map's sight lines (:func:`reddening_map`), ~ the 6′–10′ cells of
#: the OGLE maps (Nataf et al. 2013: 6′ in the bulge).
REDDENING_MAP_STEP_DEG = 0.1


@dataclass
class OgleSimulation:
    """Output of :func:`simulate_ogle_fields`.

    Attributes
    ----------
    objects : DataFrame
        One row per OGLE variable: ``ogle_id``, ``field``, ``ra``/``dec`` (deg, J2000), ``var_class``,
        ``subtype``, ``period`` (d), ``i_mag`` (mean I, mag), ``v_i`` (observed V−I, mag), ``n_epochs``:
        what the OGLE-III catalog gives (:data:`OBJECT_COLUMNS`, the columns the archive fetcher writes).
        Physical parameters are not here: as in the paper they come from the Gaia match.
    light_curves : DataFrame
        Long table ``ogle_id``, ``time`` (HJD − 2450000), ``mag`` (I), ``err`` (mag), sorted by object
        then time.
    gaia : DataFrame
        Gaia DR2-like sources around the OGLE objects, with the columns the cross-match reads
        (:data:`latentsky.io.gaia_columns.GAIA_COLUMNS`; ra/dec at J2015.5, deg; pm in mas/yr; G mag; r_est pc)
        plus Gaia DR2's FLAME ``radius_val`` (R_sun) and ``lum_val`` (L_sun), sorted by source_id.
    truth : DataFrame
        Per OGLE object: ``ogle_id``, ``source_id`` (its true counterpart), ``teff``, ``abs_g``, ``radius``,
        ``luminosity`` (all true, no NaN), ``distance_pc``, ``a_i``, ``rise_fraction`` and ``amplitude``
        (light-curve shape: rise fraction of the cycle; amplitude in mag, fractional flux depth for ECL),
        ``temperature_ratio`` (ECL; NaN otherwise), ``pmra``,
        ``pmdec`` (mas/yr), ``astrometric_noise_ra``/``_dec`` (arcsec, the noise added on top of μ·Δt).
    reddening_map : DataFrame
        The fields' 2-D reddening map in the OGLE maps' form (:func:`reddening_map`): ``ra``, ``dec`` (deg),
        ``e_v_i``, ``a_i`` (mag).
    """

    objects: pd.DataFrame
    light_curves: pd.DataFrame
    gaia: pd.DataFrame
    truth: pd.DataFrame
    reddening_map: pd.DataFrame


def reddening_map(fields: tuple[Mapping[str, Any], ...] | list[Mapping[str, Any]]) -> pd.DataFrame:
    """A 2-D reddening map of the fields in the form of the OGLE maps (Nataf et al. 2013; Skowron et al. 2021).

    Sight lines every :data:`REDDENING_MAP_STEP_DEG` over each field's square, each with the field's median
    A_I and E(V−I) = A_I / R_I_SIM. Like a real 2-D map it gives the whole column: the star-to-star scatter
    of the simulated A_I (10 %) is not in it, and foreground disc stars towards the bulge are over-corrected.
    """
    rows = []
    for f in fields:
        half = 0.5 * float(f["size_deg"])
        steps = np.arange(-half, half + 1e-9, REDDENING_MAP_STEP_DEG)
        dd, rr = np.meshgrid(steps, steps, indexing="ij")
        dec = float(f["dec"]) + dd.ravel()
        ra = np.mod(float(f["ra"]) + rr.ravel() / np.cos(np.deg2rad(dec)), 360.0)
        a_i = np.full(dec.size, float(f["a_i"]))
        rows.append(pd.DataFrame({"ra": ra, "dec": dec, "e_v_i": a_i / R_I_SIM, "a_i": a_i}))
    return pd.concat(rows, ignore_index=True)


# --------------------------------------------------------------------------------------------------
# Config
# --------------------------------------------------------------------------------------------------
_REQUIRED = (
    "n_objects",
    "dt_yr",
    "crowding",
    "fraction_gaia_class",
    "fraction_teff",
    "fraction_missing_bp_rp",
)


def _number(cfg: Mapping[str, Any], key: str, lo: float, hi: float, *, integer: bool = False) -> Any:
    value = cfg[key]
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"ogle config key '{key}' must be a number, got {value!r}")
    if not np.isfinite(value) or not lo <= value <= hi:
        raise ValueError(f"ogle config key '{key}' must be in [{lo}, {hi}], got {value!r}")
    if integer and float(value) != int(value):
        raise ValueError(f"ogle config key '{key}' must be an integer, got {value!r}")
    return int(value) if integer else float(value)


def validate_ogle_config(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """Check the ``ogle`` config block and return it with defaults filled in.

    Required: ``n_objects`` (int ≥ 1), ``dt_yr`` (yr between OGLE and Gaia epochs, [0, 100]; paper 000
    App. A uses 15.5), ``crowding`` (mean number of unrelated Gaia sources within 2″, [0, 20]),
    ``fraction_gaia_class``, ``fraction_teff``, ``fraction_missing_bp_rp`` (each in [0, 1]). Optional:
    ``fields``, a non-empty list of mappings with the keys of :data:`DEFAULT_FIELDS`.

    Raises
    ------
    ValueError
        Naming the offending key.
    """
    if not isinstance(cfg, Mapping):
        raise ValueError(f"ogle config must be a mapping, got {type(cfg).__name__}")
    for key in _REQUIRED:
        if key not in cfg:
            raise ValueError(f"ogle config is missing key '{key}' (expected: {', '.join(_REQUIRED)})")
    unknown = sorted(set(cfg) - set(_REQUIRED) - {"fields"})
    if unknown:
        raise ValueError(f"ogle config has unknown key '{unknown[0]}'")
    out: dict[str, Any] = {
        "n_objects": _number(cfg, "n_objects", 1, 10_000_000, integer=True),
        "dt_yr": _number(cfg, "dt_yr", 0.0, 100.0),
        "crowding": _number(cfg, "crowding", 0.0, 20.0),
    }
    for key in ("fraction_gaia_class", "fraction_teff", "fraction_missing_bp_rp"):
        out[key] = _number(cfg, key, 0.0, 1.0)
    fields = cfg.get("fields", DEFAULT_FIELDS)
    if not isinstance(fields, (list, tuple)) or not fields:
        raise ValueError("ogle config key 'fields' must be a non-empty list of field mappings")
    checked = []
    for i, f in enumerate(fields):
        if not isinstance(f, Mapping) or set(f) != set(_FIELD_KEYS):
            raise ValueError(
                f"ogle config key 'fields[{i}]' must be a mapping with keys {', '.join(_FIELD_KEYS)}"
            )
        if f["name"] not in SEASON_CENTRE_DOY:
            raise ValueError(f"ogle config key 'fields[{i}].name' must be one of {sorted(SEASON_CENTRE_DOY)}")
        for k in _FIELD_KEYS[1:]:
            _number(f, k, -360.0, 1e6)
        if f["size_deg"] <= 0 or f["distance_kpc"] <= 0 or f["density"] < 0:
            raise ValueError(f"ogle config key 'fields[{i}]' needs size_deg, distance_kpc > 0, density ≥ 0")
        checked.append(dict(f))
    names = [f["name"] for f in checked]
    empty = [k for k in CLASSES if sum(CLASS_FIELD_COUNTS[k].get(name, 0) for name in names) == 0]
    if empty:
        raise ValueError(
            f"ogle config key 'fields': no field can hold class(es) {empty} (CLASS_FIELD_COUNTS); "
            f"configured fields are {names}"
        )
    out["fields"] = checked
    return out


# --------------------------------------------------------------------------------------------------
# Photometric relations
# --------------------------------------------------------------------------------------------------
def intrinsic_v_i(bp_rp0: np.ndarray) -> np.ndarray:
    """Intrinsic (V−I)₀ (mag) from the intrinsic Gaia (BP−RP)₀: (V−I) = (BP−RP)/1.2, the slope of the two
    colours over the FGK range (solar 0.70 and 0.82; Evans et al. 2018, Fig. A.1), enough for a simulation
    whose OGLE colours only need to rank with the Gaia ones."""
    return np.asarray(bp_rp0, dtype=np.float64) / BP_RP_PER_V_I


def ogle_i_error(i_mag: np.ndarray) -> np.ndarray:
    """OGLE-III I-band 1σ error (mag) at magnitude ``i_mag`` (see ``OGLE_ERR_*``)."""
    x = np.asarray(i_mag, dtype=np.float64) - 19.5
    return np.sqrt(
        OGLE_ERR_FLOOR**2 + OGLE_ERR_PHOTON**2 * 10.0 ** (0.4 * x) + OGLE_ERR_SKY**2 * 10.0 ** (0.8 * x)
    )


# --------------------------------------------------------------------------------------------------
# Light-curve shapes
# --------------------------------------------------------------------------------------------------
def flame_radius_luminosity(
    g_mag: np.ndarray, r_est_pc: np.ndarray, teff_val: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Gaia DR2 FLAME-like ``radius_val`` (R_sun) and ``lum_val`` (L_sun) from G, distance and Priam Teff.

    As in DR2 (Andrae et al. 2018, Sec. 3): no extinction (A_G = 0) and no bolometric correction, so
    L = 10^{−0.4 (G − 5 log10(r/10 pc) − M_G,sun)} and R from L = 4πR²σT⁴. NaN wherever an input is NaN —
    which is how a caller marks the sources Gaia gave no R and L.
    """
    g = np.asarray(g_mag, dtype=np.float64)
    r = np.asarray(r_est_pc, dtype=np.float64)
    t = np.asarray(teff_val, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        lum = 10.0 ** (-0.4 * (g - 5.0 * np.log10(r / 10.0) - M_G_SUN))
        lum = np.where(np.isfinite(t) & (r > 0), lum, np.nan)
        radius = np.sqrt(lum) * (T_SUN / t) ** 2
    return radius, lum


def pulsation_profile(phase: np.ndarray, rise_fraction: np.ndarray, peak_power: np.ndarray) -> np.ndarray:
    """Normalised pulsation light curve in magnitudes, 0 at maximum light (phase 0) and 1 at minimum.

    Brightness falls from maximum over a fraction 1 − r of the cycle and rises back over r (half-cosines,
    so r = 0.5 is a pure sinusoid and small r the steep rise of RRab stars and long-period Cepheids); the
    brightness is raised to ``peak_power`` ≥ 1, which narrows the maximum (the spiky maxima of RRab).

    Parameters
    ----------
    phase : array
        Phase in [0, 1), maximum light at 0.
    rise_fraction, peak_power : array
        r in (0, 1) and γ ≥ 1, broadcast with ``phase``.
    """
    ph = np.mod(phase, 1.0)
    r = np.asarray(rise_fraction, dtype=np.float64)
    fall = ph < 1.0 - r
    u = np.where(fall, ph / (1.0 - r), (ph - (1.0 - r)) / r)
    brightness = np.where(fall, 0.5 * (1.0 + np.cos(np.pi * u)), 0.5 * (1.0 - np.cos(np.pi * u)))
    return 1.0 - brightness**peak_power


def eclipse_profile(
    phase: np.ndarray, depth: np.ndarray, depth_ratio: np.ndarray, width: np.ndarray, ellipsoidal: np.ndarray
) -> np.ndarray:
    """Eclipsing-binary light curve in magnitudes (0 out of eclipse): Gaussian primary eclipse at phase 0
    of fractional flux depth ``depth``, secondary at 0.5 of depth ``depth × depth_ratio``, phase width σ
    ``width``, plus an ellipsoidal term of fractional amplitude ``ellipsoidal`` at twice the orbital
    frequency."""
    ph = np.mod(phase + 0.25, 1.0) - 0.25  # primary at 0, secondary at 0.5, both away from the wrap
    flux = (
        1.0
        - depth * np.exp(-0.5 * (ph / width) ** 2)
        - depth * depth_ratio * np.exp(-0.5 * ((ph - 0.5) / width) ** 2)
        - ellipsoidal * 0.5 * (1.0 + np.cos(4.0 * np.pi * ph))
    )
    return -2.5 * np.log10(np.clip(flux, 1e-3, None))


# --------------------------------------------------------------------------------------------------
# Drawing objects
# --------------------------------------------------------------------------------------------------
def class_counts(n_objects: int) -> dict[str, int]:
    """Objects per class for ``n_objects``: Table 1 "Clean" proportions with a 1% floor, largest remainder."""
    w = np.array([TABLE1_CLEAN_COUNTS[c] for c in CLASSES], dtype=np.float64)
    w = np.maximum(w / w.sum(), MIN_CLASS_FRACTION)
    exact = n_objects * w / w.sum()
    n = np.floor(exact).astype(int)
    short = n_objects - n.sum()
    n[np.argsort(-(exact - n), kind="stable")[:short]] += 1
    return dict(zip(CLASSES, n.tolist(), strict=True))


def _loguniform(rng: np.random.Generator, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    return np.exp(rng.uniform(np.log(lo), np.log(hi)))


def _draw_physics(
    var_class: np.ndarray, subtype: np.ndarray, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Period (d), Teff (K), M_G (mag) and shape parameters per object, consistent with its class.

    WHY these relations: paper 000 Fig. 2 shows each class occupying its own region of (P, Teff, M_G); the
    period–luminosity laws below put the pulsators there (G-band slopes from Ripepi et al. 2019 for
    Cepheids, −2.9 for δ Scuti, flat M_G ≈ 0.6 for RR Lyrae), eclipsing binaries follow a main-sequence-like
    M_G(Teff) brightened by 0.75 mag for the companion, LPVs are cool luminous giants.
    """
    n = var_class.size
    period = np.empty(n)
    for cls, subs in SUBTYPES.items():
        for name, _, pmin, pmax in subs:
            m = (var_class == cls) & (subtype == name)
            period[m] = _loguniform(rng, np.full(m.sum(), pmin), np.full(m.sum(), pmax))
    logp = np.log10(period)
    teff = np.empty(n)
    abs_g = np.empty(n)
    rise = np.full(n, np.nan)
    power = np.ones(n)
    amp = np.empty(n)
    t_ratio = np.full(n, np.nan)
    z = rng.normal(size=n)

    # RR Lyrae: Teff first, then the shape from Teff (the by-construction dependence the tests check).
    # s = 0 (6,000 K, cool RRab) → sawtooth: rise 12% of the cycle, spiky maximum (γ = 2.5), A_I ≈ 0.75;
    # s = 1 (7,500 K, hot RRc) → near-sinusoid: rise 45%, γ = 1, A_I ≈ 0.25 (Catelan & Smith 2015, Ch. 4).
    m = var_class == "RRLYR"
    lo = np.where(subtype == "RRab", 5900.0, np.where(subtype == "RRc", 6900.0, 6700.0))
    hi = np.where(subtype == "RRab", 6950.0, np.where(subtype == "RRc", 7600.0, 7200.0))
    teff[m] = rng.uniform(lo[m], hi[m])
    s = np.clip((teff[m] - 6000.0) / 1500.0, 0.0, 1.0)
    rise[m] = 0.12 + 0.33 * s
    power[m] = 2.5 - 1.5 * s
    amp[m] = (0.75 - 0.5 * s) * np.exp(0.1 * z[m])
    abs_g[m] = 0.6 + 0.15 * rng.normal(size=m.sum())

    # Classical Cepheids: fundamentalised period (P_F = P_1O / 0.71) in the G-band Leavitt law
    # M_G = −2.7 (log P_F − 1) − 4.1; cooler at longer period (instability-strip slope); amplitude grows with
    # log P and the rise is most symmetric near 10 d (Hertzsprung progression bump); overtones are
    # low-amplitude near-sinusoids.
    m = var_class == "CEP"
    overtone = m & (subtype != "F")
    logpf = np.where(overtone, np.log10(period / 0.71), logp)
    abs_g[m] = -2.7 * (logpf[m] - 1.0) - 4.1 + 0.2 * rng.normal(size=m.sum())
    teff[m] = 6300.0 - 900.0 * logpf[m] + 150.0 * rng.normal(size=m.sum())
    rise[m] = np.where(overtone[m], 0.42, 0.2 + 0.2 * np.exp(-0.5 * ((logp[m] - 1.0) / 0.1) ** 2))
    amp[m] = np.where(overtone[m], 0.15, 0.25 + 0.35 * np.clip(logp[m], 0, 1.5)) * np.exp(0.1 * z[m])

    m = var_class == "T2CEP"  # M_G ≈ −2.0 log P − 0.3 (Ripepi et al. 2019); BL Her/W Vir sawtooth-like
    abs_g[m] = -2.0 * logp[m] - 0.3 + 0.2 * rng.normal(size=m.sum())
    teff[m] = 6300.0 - 700.0 * logp[m] + 200.0 * rng.normal(size=m.sum())
    rise[m] = 0.3
    amp[m] = 0.35 + 0.3 * rng.uniform(size=m.sum())

    m = var_class == "ACEP"  # 1–2 mag above RR Lyrae at the same period, hot (Soszyński et al. 2015)
    abs_g[m] = -2.1 * logp[m] - 0.9 + 0.2 * rng.normal(size=m.sum())
    teff[m] = rng.uniform(6000.0, 7000.0, m.sum())
    rise[m] = np.where(subtype[m] == "F", 0.2, 0.4)
    amp[m] = np.where(subtype[m] == "F", 0.6, 0.35)

    m = var_class == "DSCT"  # δ Sct PL relation M_V ≈ −2.9 log P − 1.3 (McNamara 2011); HADS-like amplitudes
    abs_g[m] = -2.9 * logp[m] - 1.3 + 0.2 * rng.normal(size=m.sum())
    teff[m] = rng.uniform(6900.0, 8500.0, m.sum())
    rise[m] = 0.35
    amp[m] = rng.uniform(0.05, 0.3, m.sum())

    # Eclipsing binaries: primary Teff log-uniform 4,500–20,000 K; T2/T1 sets the secondary eclipse: the two
    # eclipses hide about the same area, so their flux-depth ratio is the surface-brightness ratio ≈ (T2/T1)^4.
    m = var_class == "ECL"
    teff[m] = _loguniform(rng, np.full(m.sum(), 4500.0), np.full(m.sum(), 20000.0))
    abs_g[m] = 4.7 - 14.0 * np.log10(teff[m] / 5800.0) - 0.75 + 0.3 * rng.normal(size=m.sum())
    t_ratio[m] = rng.uniform(0.4, 1.0, m.sum())
    amp[m] = rng.uniform(0.15, 0.6, m.sum())  # fractional flux depth of the primary eclipse

    m = var_class == "ELL"  # red-giant ellipsoidals (Soszyński et al. 2004): small amplitudes, cool, luminous
    teff[m] = rng.uniform(4000.0, 5500.0, m.sum())
    abs_g[m] = rng.uniform(-1.5, 1.5, m.sum())
    amp[m] = rng.uniform(0.06, 0.25, m.sum())  # peak-to-peak I; the SNR ≥ 5 survivors have median SNR 6.7

    m = var_class == "LPV"  # Miras: A_I 1–2.5 mag; SRV 0.2–0.8; OSARG 0.02–0.15 (Soszyński et al. 2009)
    teff[m] = rng.uniform(2900.0, 3900.0, m.sum())
    abs_g[m] = -1.0 - 1.0 * (logp[m] - 2.0) + 0.5 * rng.normal(size=m.sum())
    amp[m] = np.select(
        [subtype[m] == "Mira", subtype[m] == "SRV"],
        [rng.uniform(1.0, 2.5, m.sum()), rng.uniform(0.2, 0.8, m.sum())],
        rng.uniform(0.02, 0.15, m.sum()),
    )
    return {
        "period": period,
        "teff": teff,
        "abs_g": abs_g,
        "rise_fraction": rise,
        "peak_power": power,
        "amplitude": amp,
        "temperature_ratio": t_ratio,
    }


def light_curve_model(
    time: np.ndarray,
    obj: np.ndarray,
    physics: Mapping[str, np.ndarray],
    var_class: np.ndarray,
    subtype: np.ndarray,
    t0: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """Noise-free magnitude offsets from the mean (mag) at HJD − 2450000 ``time`` for object index ``obj``.

    The shape is a function of the object's physical parameters, by construction (see :func:`_draw_physics`):
    pulsators use :func:`pulsation_profile` with the per-object rise fraction, peak power and amplitude;
    ECL use :func:`eclipse_profile` with depth ratio (T2/T1)^4; ELL a P/2 sinusoid with 10%-unequal minima;
    LPV a quasi-sinusoid whose phase wanders (±0.1 cycle over ~5 periods) for SRV/OSARG.
    """
    P = physics["period"][obj]
    phase = (time - t0[obj]) / P
    cls = var_class[obj]
    sub = subtype[obj]
    amp = physics["amplitude"][obj]
    out = np.zeros_like(time)

    puls = np.isin(cls, ("RRLYR", "CEP", "T2CEP", "ACEP", "DSCT"))
    out[puls] = amp[puls] * (
        pulsation_profile(phase[puls], physics["rise_fraction"][obj][puls], physics["peak_power"][obj][puls])
        - 0.5
    )

    m = cls == "ECL"
    width = np.select([sub[m] == "EC", sub[m] == "ESD"], [0.12, 0.07], 0.035)
    ell = np.select([sub[m] == "EC", sub[m] == "ESD"], [0.1, 0.04], 0.0)
    out[m] = eclipse_profile(phase[m], amp[m], physics["temperature_ratio"][obj][m] ** 4, width, ell)

    m = cls == "ELL"
    out[m] = 0.5 * amp[m] * np.cos(4.0 * np.pi * phase[m]) + 0.05 * amp[m] * np.cos(2.0 * np.pi * phase[m])

    m = cls == "LPV"
    n_obj = var_class.size
    wander_amp = np.where(subtype == "Mira", 0.0, 0.1)
    wander_ph = rng.uniform(0, 2 * np.pi, n_obj)
    ph = phase[m] + wander_amp[obj[m]] * np.sin(2 * np.pi * phase[m] / 5.0 + wander_ph[obj[m]])
    out[m] = 0.5 * amp[m] * (np.sin(2 * np.pi * ph) + 0.15 * np.sin(4 * np.pi * ph + 1.0))
    return out


def _cadence(field: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """OGLE-III-like epochs: (object index, HJD − 2450000), sorted by object then time.

    Each epoch falls on a random night of a random season (visibility window centred on the field's
    SEASON_CENTRE_DOY) plus a random time within the ~8 h night, so sampling is irregular and nightly at most.
    """
    n_obj = field.size
    n_ep = np.empty(n_obj, dtype=np.int64)
    centre = np.empty(n_obj)
    length = np.empty(n_obj)
    for name, (lo, hi) in N_EPOCHS_RANGE.items():
        m = field == name
        n_ep[m] = rng.integers(lo, hi + 1, m.sum())
        centre[m] = SEASON_CENTRE_DOY[name]
        length[m] = SEASON_LENGTH_D[name]
    obj = np.repeat(np.arange(n_obj), n_ep)
    season = rng.integers(0, N_SEASONS, obj.size)
    night = np.floor(rng.uniform(-0.5, 0.5, obj.size) * length[obj])
    t = OGLE3_T0 + 365.25 * season + centre[obj] + night + rng.uniform(0.0, 0.33, obj.size)
    order = np.lexsort((t, obj))
    return obj[order], t[order]


# --------------------------------------------------------------------------------------------------
# The simulation
# --------------------------------------------------------------------------------------------------
def _offset_positions(
    ra: np.ndarray, dec: np.ndarray, dx_arcsec: np.ndarray, dy_arcsec: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Shift positions by a tangent-plane offset (east, north) in arcsec (small-offset approximation,
    exact to < 1 µas for the ≤ 3″ shifts used here)."""
    dec_new = dec + dy_arcsec / 3600.0
    ra_new = np.mod(ra + dx_arcsec / 3600.0 / np.cos(np.deg2rad(dec)), 360.0)
    return ra_new, dec_new


def simulate_ogle_fields(cfg: dict, seed: int) -> OgleSimulation:
    """Simulate OGLE-III variable stars, their light curves and the Gaia DR2 sources around them.

    Parameters
    ----------
    cfg : dict
        The ``ogle`` config block (see :func:`validate_ogle_config`).
    seed : int
        Random seed; the same (cfg, seed) gives identical tables.

    Returns
    -------
    OgleSimulation
        Objects, light curves, Gaia catalog and truth (see :class:`OgleSimulation`).
    """
    c = validate_ogle_config(cfg)
    rng = np.random.default_rng(seed)
    n = c["n_objects"]

    # Classes and subtypes (shuffled so classes are mixed across fields).
    counts = class_counts(n)
    var_class = rng.permutation(np.repeat(np.array(CLASSES), [counts[k] for k in CLASSES]))
    subtype = np.empty(n, dtype=object)
    for cls, subs in SUBTYPES.items():
        m = var_class == cls
        p = np.array([s[1] for s in subs])
        subtype[m] = np.array([s[0] for s in subs], dtype=object)[
            rng.choice(len(subs), m.sum(), p=p / p.sum())
        ]
    subtype = subtype.astype(str)

    # Fields and positions.
    fields = c["fields"]
    fidx = np.empty(n, dtype=np.int64)
    for cls in CLASSES:
        m = var_class == cls
        fw = np.array([CLASS_FIELD_COUNTS[cls].get(f["name"], 0) for f in fields], dtype=np.float64)
        fidx[m] = rng.choice(len(fields), m.sum(), p=fw / fw.sum())
    fget = {k: np.array([f[k] for f in fields]) for k in _FIELD_KEYS}
    field = fget["name"][fidx].astype(str)
    half = 0.5 * fget["size_deg"][fidx]
    dec = fget["dec"][fidx] + rng.uniform(-half, half)
    ra = np.mod(fget["ra"][fidx] + rng.uniform(-half, half) / np.cos(np.deg2rad(dec)), 360.0)

    # Physics and apparent magnitudes; redraw objects OGLE could not have measured (outside I_MAG_RANGE).
    phys = _draw_physics(var_class, subtype, rng)
    dist_kpc = fget["distance_kpc"][fidx] + fget["distance_sigma_kpc"][fidx] * rng.normal(size=n)
    dist_kpc = np.maximum(dist_kpc, 0.5)
    a_i = fget["a_i"][fidx] * np.exp(0.1 * rng.normal(size=n))
    # Disc populations seen towards the bulge lie anywhere along the sight line, not at the bulge: the
    # validated δ Scuti and eclipsing binaries there have median I ≈ 15.2 and 15.5 (authors' tables), which
    # bulge distances cannot give a main-sequence star. Their extinction grows with distance through the disc.
    disc = np.isin(var_class, DISC_CLASSES) & (field == "BLG")
    disc_kpc = _loguniform(rng, np.full(n, DISC_DISTANCE_KPC[0]), np.full(n, DISC_DISTANCE_KPC[1]))
    a_i = np.where(disc, a_i * np.minimum(disc_kpc / dist_kpc, 1.0), a_i)
    dist_kpc = np.where(disc, disc_kpc, dist_kpc)
    for _ in range(50):
        vi0 = intrinsic_v_i(class_bp_rp0(phys["teff"], var_class))
        abs_i = phys["abs_g"] - (g_minus_v(vi0) + vi0)
        i_mag = abs_i + 5.0 * np.log10(dist_kpc * 100.0) + a_i
        bad = (i_mag < I_MAG_RANGE[0]) | (i_mag > I_MAG_RANGE[1])
        if not bad.any():
            break
        new = _draw_physics(var_class[bad], subtype[bad], rng)
        for k in phys:
            phys[k][bad] = new[k]
    i_mag = np.clip(i_mag, *I_MAG_RANGE)
    # Extinction: E(V−I) = A_I / R_I_SIM, A_0 = A_I + E(V−I), the Gaia bands' from A_0 and the colour.
    ebv_i = a_i / R_I_SIM
    v_i = vi0 + ebv_i
    bp_rp0 = class_bp_rp0(phys["teff"], var_class)
    a_g, e_bp_rp = gaia_reddening(bp_rp0, a0_from_ogle(ebv_i, a_i))
    abs_g = phys["abs_g"]
    teff = phys["teff"]
    lum = 10.0 ** (-0.4 * (abs_g - M_G_SUN))
    radius = np.sqrt(lum) * (T_SUN / teff) ** 2

    # Which physics Gaia provides (Table 1 columns 6 and 8).
    p_teff = np.clip(
        c["fraction_teff"]
        * np.array([TABLE1_TEFF_PERCENT[k] for k in var_class])
        / TABLE1_TEFF_OVERALL_PERCENT,
        0,
        1,
    )
    has_teff = rng.uniform(size=n) < p_teff
    p_rl = np.array([TABLE1_RL_PERCENT[k] / TABLE1_TEFF_PERCENT[k] for k in var_class])
    has_rl = has_teff & (rng.uniform(size=n) < p_rl)

    prefix = "OGLE-SIM-"
    ogle_id = np.array([f"{prefix}{k}-{i:05d}" for k, i in zip(var_class, range(1, n + 1), strict=True)])
    objects = pd.DataFrame(
        {
            "ogle_id": ogle_id,
            "field": field,
            "ra": ra,
            "dec": dec,
            "var_class": var_class,
            "subtype": subtype,
            "period": phys["period"],
            "i_mag": i_mag,
            "v_i": v_i,
        }
    )

    # Light curves.
    obj, t = _cadence(field, rng)
    objects["n_epochs"] = np.bincount(obj, minlength=n).astype(np.int64)
    t0 = rng.uniform(OGLE3_T0, OGLE3_T0 + 1000.0, n)
    model = i_mag[obj] + light_curve_model(t, obj, phys, var_class, subtype, t0, rng)
    err = ogle_i_error(model) * np.exp(OGLE_ERR_SEEING_SIGMA * rng.normal(size=t.size))
    mag = model + err * rng.normal(size=t.size)
    light_curves = pd.DataFrame({"ogle_id": ogle_id[obj], "time": t, "mag": mag, "err": err})

    # Gaia counterparts: J2015.5 position = OGLE J2000 position + μ Δt + astrometric noise.
    pmra = fget["pmra"][fidx] + fget["pm_sigma"][fidx] * rng.normal(size=n)
    pmdec = fget["pmdec"][fidx] + fget["pm_sigma"][fidx] * rng.normal(size=n)
    noise = ASTROMETRIC_NOISE_ARCSEC * rng.normal(size=(2, n))
    dx = pmra * c["dt_yr"] / 1000.0 + noise[0]
    dy = pmdec * c["dt_yr"] / 1000.0 + noise[1]
    g_ra, g_dec = _offset_positions(ra, dec, dx, dy)
    # Gaia G is a mean over ~26 epochs: the mean light level, M_G + μ + A_G (the mean I level is the same
    # star through Evans et al.'s G − V and OGLE's extinction).
    g_mag = abs_g + 5.0 * np.log10(dist_kpc * 100.0) + a_g
    g_mag = g_mag + ge.mag_error(g_mag, "g") * rng.normal(size=n)
    bp_rp = bp_rp0 + e_bp_rp + ge.mag_error(g_mag, "bp") * rng.normal(size=n)
    bp_rp = np.where(rng.uniform(size=n) < c["fraction_missing_bp_rp"], np.nan, bp_rp)
    # Priam-like: the colour relation applied to the reddened colour (no extinction), clipped to its range.
    teff_priam = class_teff(bp_rp0 + e_bp_rp, var_class)[0]
    teff_val = np.where(
        has_teff & np.isfinite(bp_rp),
        np.clip(teff_priam + TEFF_VAL_SIGMA * rng.normal(size=n), *TEFF_VAL_RANGE),
        np.nan,
    )
    r_est = dist_kpc * 1000.0 * np.exp(R_EST_FRACTIONAL_SIGMA * rng.normal(size=n))
    r_est = np.where(rng.uniform(size=n) < R_EST_MISSING_FRACTION, np.nan, r_est)
    classified = rng.uniform(size=n) < c["fraction_gaia_class"]
    gclass = np.array(
        [
            GAIA_RRLYR_CLASS.get(s, "") if k == "RRLYR" else GAIA_CLASS.get(k, "")
            for k, s in zip(var_class, subtype, strict=True)
        ],
        dtype=object,
    )
    confuse = rng.uniform(size=n) < GAIA_CLASS_CONFUSION
    gclass = np.where(confuse & (gclass != ""), [GAIA_ADJACENT.get(g, g) for g in gclass], gclass)
    gclass = np.where(classified & (gclass != ""), gclass, None)
    flag = np.where(classified, "VARIABLE", "NOT_AVAILABLE")

    # Unrelated field stars, Poisson around each OGLE object; ``crowding`` is the object-averaged mean in 2″.
    dens = fget["density"][fidx]
    lam = c["crowding"] * dens / max(dens.mean(), 1e-12) * (NEIGHBOUR_RADIUS_ARCSEC / CONE_ARCSEC) ** 2
    n_nb = rng.poisson(lam)
    host = np.repeat(np.arange(n), n_nb)
    m_nb = host.size
    rad = NEIGHBOUR_RADIUS_ARCSEC * np.sqrt(rng.uniform(size=m_nb))
    ang = rng.uniform(0, 2 * np.pi, m_nb)
    f_ra, f_dec = _offset_positions(ra[host], dec[host], rad * np.cos(ang), rad * np.sin(ang))
    fore = rng.uniform(size=m_nb) < FOREGROUND_FRACTION
    f_pmra = np.where(fore, FOREGROUND_PM_SIGMA * rng.normal(size=m_nb), fget["pmra"][fidx][host])
    f_pmdec = np.where(fore, FOREGROUND_PM_SIGMA * rng.normal(size=m_nb), fget["pmdec"][fidx][host])
    f_pmra = f_pmra + np.where(fore, 0.0, fget["pm_sigma"][fidx][host] * rng.normal(size=m_nb))
    f_pmdec = f_pmdec + np.where(fore, 0.0, fget["pm_sigma"][fidx][host] * rng.normal(size=m_nb))
    # Mostly main-sequence-like (85%) with red-clump giants; faint-heavy G distribution (counts rise towards
    # the DR2 limit), so BP/RP is often missing (gaia.missing_bp_rp_probability, rising beyond G ≈ 20).
    giant = rng.uniform(size=m_nb) < 0.15
    f_teff = np.where(giant, rng.uniform(4200, 5000, m_nb), rng.uniform(4500, 6800, m_nb))
    f_g = np.where(giant, 21.0 - rng.exponential(2.5, m_nb), 21.0 - rng.exponential(1.5, m_nb))
    f_g = np.clip(f_g, 12.0, 21.0)
    f_bprp0 = bp_rp0_from_teff(f_teff, 0.0, ~giant)
    f_ebprp = gaia_reddening(f_bprp0, a0_from_ogle(ebv_i[host], a_i[host]))[1]
    f_bprp = f_bprp0 + f_ebprp + ge.mag_error(f_g, "bp") * rng.normal(size=m_nb)
    f_bprp = np.where(
        rng.uniform(size=m_nb) < missing_bp_rp_probability(f_g, c["fraction_missing_bp_rp"]), np.nan, f_bprp
    )
    f_dist = np.where(fore, rng.uniform(0.5, 6.0, m_nb), dist_kpc[host]) * 1000.0
    f_rest = f_dist * np.exp(R_EST_FRACTIONAL_SIGMA * rng.normal(size=m_nb))
    f_rest = np.where(rng.uniform(size=m_nb) < 2 * R_EST_MISSING_FRACTION, np.nan, f_rest)
    f_teffval = np.where(
        (rng.uniform(size=m_nb) < 0.5 * c["fraction_teff"]) & (f_g < 17.0) & ~np.isnan(f_bprp),
        np.clip(
            teff_from_bp_rp0(f_bprp0 + f_ebprp, 0.0, ~giant)[0] + TEFF_VAL_SIGMA * rng.normal(size=m_nb),
            *TEFF_VAL_RANGE,
        ),
        np.nan,
    )

    # FLAME R and L for the counterparts Gaia gave them to, and for ~40 % of the field stars with a Teff.
    radius_val, lum_val = flame_radius_luminosity(g_mag, r_est, np.where(has_rl, teff_val, np.nan))
    f_has_rl = rng.uniform(size=m_nb) < 0.4
    f_radius_val, f_lum_val = flame_radius_luminosity(f_g, f_rest, np.where(f_has_rl, f_teffval, np.nan))

    all_ra = np.concatenate([g_ra, f_ra])
    all_dec = np.concatenate([g_dec, f_dec])
    hp12 = healpix.radec_to_healpix(all_ra, all_dec, healpix.GAIA_SOURCE_ID_LEVEL)
    # Running numbers in a random order, so a counterpart's source_id does not reveal that it is one.
    perm = rng.permutation(hp12.size)
    run = np.empty_like(hp12)
    run[perm] = healpix.running_numbers(hp12[perm])
    source_id = healpix.make_source_ids(hp12, run)
    gaia = pd.DataFrame(
        {
            "source_id": source_id,
            "ra": all_ra,
            "dec": all_dec,
            "pmra": np.concatenate([pmra, f_pmra]),
            "pmdec": np.concatenate([pmdec, f_pmdec]),
            "phot_g_mean_mag": np.concatenate([g_mag, f_g]),
            "bp_rp": np.concatenate([bp_rp, f_bprp]),
            "teff_val": np.concatenate([teff_val, f_teffval]),
            "r_est": np.concatenate([r_est, f_rest]),
            "phot_variable_flag": np.concatenate([flag, np.full(m_nb, "NOT_AVAILABLE")]),
            "gaia_var_class": pd.array(np.concatenate([gclass, np.full(m_nb, None)]), dtype="string"),
            "radius_val": np.concatenate([radius_val, f_radius_val]),
            "lum_val": np.concatenate([lum_val, f_lum_val]),
        }
    )
    gaia = gaia.sort_values("source_id", kind="stable").reset_index(drop=True)

    truth = pd.DataFrame(
        {
            "ogle_id": ogle_id,
            "source_id": source_id[:n],
            "teff": teff,
            "abs_g": abs_g,
            "radius": radius,
            "luminosity": lum,
            "distance_pc": dist_kpc * 1000.0,
            "a_i": a_i,
            "rise_fraction": phys["rise_fraction"],
            "amplitude": phys["amplitude"],
            "temperature_ratio": phys["temperature_ratio"],
            "pmra": pmra,
            "pmdec": pmdec,
            "astrometric_noise_ra": noise[0],
            "astrometric_noise_dec": noise[1],
        }
    )
    return OgleSimulation(
        objects=objects,
        light_curves=light_curves,
        gaia=gaia,
        truth=truth,
        reddening_map=reddening_map(fields),
    )
