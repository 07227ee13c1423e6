"""A simulated, magnitude-limited Gaia DR2-like survey with known truth.

The first data product of the workflow: a catalog with Gaia DR2 column names that the CMD normalizing-flow
distance method (Cranmer et al., paper 004) reads as if it were real, and a truth table — distances, dust,
intrinsic photometry, population, flags — against which that method scores itself (Sec. 4.1 of the paper
does the same with a simpler simulation: known dust, known distances, Gaia-like parallax noise).

Recipe (all vectorised; the cost is linear in the number of stars drawn):

1. **Field stars.** Positions from a double-exponential disc, ρ ∝ exp(−R/h_R − |z|/h_z), drawn directly in
   Galactocentric coordinates (R ~ Gamma(2, h_R) for the surface density exp(−R/h_R) times R dR, φ uniform,
   z ~ Laplace(h_z)) and kept within ``max_distance_kpc`` of the Sun. This samples the density exactly and is
   the same as drawing a direction ∝ ∫ρ d² dd and then a distance ∝ ρ(d) d² along it — the d² volume factor
   is built in. Intrinsic photometry from :func:`latentsky.simulate.cmd.sample_cmd` (fractions per volume).
2. **The cluster.** An M67-like open cluster: members around the configured centre and distance
   (Gaussian across the line of sight with σ = ``radius_pc``, along it with σ = ``distance_spread_pc``),
   photometry from :func:`latentsky.simulate.cmd.sample_cluster_cmd`.
3. **Dust and the magnitude limit.** E from :meth:`SimulatedDustMap.reddening_truth` at the true position,
   extinction via :mod:`latentsky.extinction` (A_G = 2.442 E, E(BP−RP) = 0.766 E, E(BP−G) = 0.351 E per
    Bayestar unit); G noise
   drawn in flux; a star is in the catalog if its *observed* G is within [G_BRIGHT_LIMIT, g_limit]. Field
   stars are drawn in batches until ``n_stars`` minus the kept cluster members are in.
4. **Measurement.** Source ids from the level-12 ICRS HEALPix pixel (Gaia data model); DR2-like errors,
   RUWE, along-scan observation counts and χ² from :mod:`latentsky.simulate.gaia_errors`; parallax =
   1000/d [+ zero point] + noise (+ unreported excess noise for bad astrometry), negative values kept;
   BP/RP missing for a fraction of stars that rises towards the faint limit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from astropy import units as u
from astropy.coordinates import SkyCoord

from latentsky.extinction import CRANMER2020, redden
from latentsky.io import healpix
from latentsky.simulate import gaia_errors as ge
from latentsky.simulate.cmd import POPULATIONS, sample_cluster_cmd, sample_cmd
from latentsky.simulate.dust import SimulatedDustMap

#: Gaia DR2 is incomplete for the brightest stars (saturation; Evans et al. 2018): nothing brighter is kept.
G_BRIGHT_LIMIT = 3.0
#: A field star whose dust-free G is this much fainter than the limit cannot be observed below it (G noise
#: at the limit is ~0.02 mag, so 0.5 mag is > 20σ); such stars are dropped before the dust lookup.
PRECUT_MARGIN_MAG = 0.5

#: Probability that a star lacks BP/RP photometry, vs its observed G:
#: ``f + (1 − f) · MISSING_BP_RP_FAINT · logistic((G − MISSING_BP_RP_G_MID) / MISSING_BP_RP_G_WIDTH)``
#: with f the config's ``bp_rp_missing_fraction``: flat at f for bright stars, about f + 0.3 at G = 20.7.
#: DR2 lacks BP/RP for ~18% of its sources, nearly all faint (Evans et al. 2018, Sec. 7).
MISSING_BP_RP_FAINT = 0.35
MISSING_BP_RP_G_MID = 20.0
MISSING_BP_RP_G_WIDTH = 0.3

#: Field candidates drawn per batch at most (memory ~ 100 bytes × this).
MAX_BATCH = 2_000_000
#: Give up (ValueError) if this many field candidates yield no catalog star: the configuration cannot
#: produce a magnitude-limited catalog (e.g. a very bright g_limit).
MAX_CANDIDATES_WITHOUT_STAR = 20_000_000

#: Columns of the observed catalog, in order, with their Gaia DR2 dtypes.
OBSERVED_COLUMNS: dict[str, str] = {
    "source_id": "int64",
    "ra": "float64",
    "dec": "float64",
    "l": "float64",
    "b": "float64",
    "parallax": "float64",
    "parallax_error": "float64",
    "phot_g_mean_flux": "float64",
    "phot_g_mean_flux_error": "float64",
    "phot_g_mean_mag": "float32",
    "phot_bp_mean_flux": "float64",
    "phot_bp_mean_flux_error": "float64",
    "phot_bp_mean_mag": "float32",
    "phot_rp_mean_flux": "float64",
    "phot_rp_mean_flux_error": "float64",
    "phot_rp_mean_mag": "float32",
    "bp_rp": "float32",
    "bp_g": "float32",
    "astrometric_n_good_obs_al": "int32",
    "astrometric_chi2_al": "float32",
    "ruwe": "float32",
}
#: Columns of the truth table, in order.
TRUTH_COLUMNS: dict[str, str] = {
    "source_id": "int64",
    "true_distance_pc": "float64",
    "true_parallax_mas": "float64",
    "true_reddening": "float64",
    "true_abs_g": "float64",
    "true_bp_rp0": "float64",
    "true_bp_g0": "float64",
    "population": "str",
    "cluster_member": "bool",
    "bad_astrometry": "bool",
    "in_dust_footprint": "bool",
    "missing_bp_rp": "bool",
}


# --------------------------------------------------------------------------------------------------
# Config
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DiscConfig:
    """Stellar disc: scale length and height (kpc), Sun's Galactocentric radius and height (kpc), and the
    largest heliocentric distance simulated (kpc)."""

    scale_length_kpc: float
    scale_height_kpc: float
    sun_r_kpc: float
    sun_z_kpc: float
    max_distance_kpc: float


@dataclass(frozen=True)
class ClusterConfig:
    """Open cluster: ICRS centre (deg), distance (pc), members drawn before the magnitude limit, Gaussian σ
    of member positions across (``radius_pc``) and along (``distance_spread_pc``) the line of sight (pc)."""

    ra_deg: float
    dec_deg: float
    distance_pc: float
    n_members: int
    radius_pc: float
    distance_spread_pc: float


@dataclass(frozen=True)
class SurveyConfig:
    """The validated ``gaia`` config block (see :func:`validate_survey_config`)."""

    n_stars: int
    g_limit: float
    bp_rp_missing_fraction: float
    bad_astrometry_fraction: float
    disc: DiscConfig
    cluster: ClusterConfig
    parallax_zero_point_mas: float = 0.0


_TOP_KEYS = ("n_stars", "g_limit", "bp_rp_missing_fraction", "bad_astrometry_fraction", "disc", "cluster")
_OPTIONAL_TOP_KEYS = ("parallax_zero_point_mas",)
_DISC_KEYS = ("scale_length_kpc", "scale_height_kpc", "sun_r_kpc", "sun_z_kpc", "max_distance_kpc")
_CLUSTER_KEYS = ("ra_deg", "dec_deg", "distance_pc", "n_members", "radius_pc", "distance_spread_pc")


def _check_keys(block: Any, name: str, required: tuple[str, ...], optional: tuple[str, ...] = ()) -> None:
    where = f"gaia config block '{name}'" if name else "gaia config"
    if not isinstance(block, Mapping):
        raise ValueError(f"{where} must be a mapping, got {type(block).__name__}")
    prefix = f"{name}." if name else ""
    for key in required:
        if key not in block:
            raise ValueError(f"gaia config is missing key '{prefix}{key}' (expected: {', '.join(required)})")
    unknown = sorted(set(block) - set(required) - set(optional))
    if unknown:
        raise ValueError(
            f"gaia config has unknown key '{prefix}{unknown[0]}' (expected: {', '.join(required)})"
        )


def _num(
    block: Mapping[str, Any],
    key: str,
    path: str,
    lo: float,
    hi: float,
    *,
    integer: bool = False,
    lo_open: bool = False,
    hi_open: bool = False,
) -> Any:
    value = block[key]
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"gaia config key '{path}' must be a number, got {value!r}")
    if not np.isfinite(value):
        raise ValueError(f"gaia config key '{path}' must be finite, got {value!r}")
    if integer and float(value) != int(value):
        raise ValueError(f"gaia config key '{path}' must be an integer, got {value!r}")
    too_low = value <= lo if lo_open else value < lo
    too_high = value >= hi if hi_open else value > hi
    if too_low or too_high:
        lb, rb = ("(" if lo_open else "["), (")" if hi_open else "]")
        raise ValueError(f"gaia config key '{path}' must be in {lb}{lo}, {hi}{rb}, got {value!r}")
    return int(value) if integer else float(value)


def validate_survey_config(cfg: Mapping[str, Any]) -> SurveyConfig:
    """Check the ``gaia`` config block.

    Required keys: ``n_stars`` (≥ 1), ``g_limit`` (mag, in (3, 25]), ``bp_rp_missing_fraction`` ([0, 1]),
    ``bad_astrometry_fraction`` ([0, 1)), ``disc`` {``scale_length_kpc``, ``scale_height_kpc`` (> 0),
    ``sun_r_kpc`` (> 0), ``sun_z_kpc`` (|·| < 1), ``max_distance_kpc`` (> 0)}, ``cluster`` {``ra_deg``
    ([0, 360)), ``dec_deg`` ([−90, 90]), ``distance_pc`` (> 0), ``n_members`` (≥ 0), ``radius_pc``,
    ``distance_spread_pc`` (≥ 0)}. Optional: ``parallax_zero_point_mas`` (default 0; added to every observed
    parallax — DR2's global offset is −0.029 mas, Lindegren et al. 2018).

    Raises
    ------
    ValueError
        Naming the offending key (dotted for nested blocks, e.g. ``disc.scale_height_kpc``).
    """
    _check_keys(cfg, "", _TOP_KEYS, _OPTIONAL_TOP_KEYS)
    _check_keys(cfg["disc"], "disc", _DISC_KEYS)
    _check_keys(cfg["cluster"], "cluster", _CLUSTER_KEYS)
    d, c = cfg["disc"], cfg["cluster"]
    inf = np.inf
    disc = DiscConfig(
        scale_length_kpc=_num(d, "scale_length_kpc", "disc.scale_length_kpc", 0, inf, lo_open=True),
        scale_height_kpc=_num(d, "scale_height_kpc", "disc.scale_height_kpc", 0, inf, lo_open=True),
        sun_r_kpc=_num(d, "sun_r_kpc", "disc.sun_r_kpc", 0, inf, lo_open=True),
        sun_z_kpc=_num(d, "sun_z_kpc", "disc.sun_z_kpc", -1, 1, lo_open=True, hi_open=True),
        max_distance_kpc=_num(d, "max_distance_kpc", "disc.max_distance_kpc", 0, inf, lo_open=True),
    )
    cluster = ClusterConfig(
        ra_deg=_num(c, "ra_deg", "cluster.ra_deg", 0, 360, hi_open=True),
        dec_deg=_num(c, "dec_deg", "cluster.dec_deg", -90, 90),
        distance_pc=_num(c, "distance_pc", "cluster.distance_pc", 0, inf, lo_open=True),
        n_members=_num(c, "n_members", "cluster.n_members", 0, inf, integer=True),
        radius_pc=_num(c, "radius_pc", "cluster.radius_pc", 0, inf),
        distance_spread_pc=_num(c, "distance_spread_pc", "cluster.distance_spread_pc", 0, inf),
    )
    zp = 0.0
    if "parallax_zero_point_mas" in cfg:
        zp = _num(cfg, "parallax_zero_point_mas", "parallax_zero_point_mas", -1, 1)
    return SurveyConfig(
        n_stars=_num(cfg, "n_stars", "n_stars", 1, inf, integer=True),
        g_limit=_num(cfg, "g_limit", "g_limit", G_BRIGHT_LIMIT, 25, lo_open=True),
        bp_rp_missing_fraction=_num(cfg, "bp_rp_missing_fraction", "bp_rp_missing_fraction", 0, 1),
        bad_astrometry_fraction=_num(
            cfg, "bad_astrometry_fraction", "bad_astrometry_fraction", 0, 1, hi_open=True
        ),
        disc=disc,
        cluster=cluster,
        parallax_zero_point_mas=zp,
    )


# --------------------------------------------------------------------------------------------------
# Drawing stars
# --------------------------------------------------------------------------------------------------
def missing_bp_rp_probability(g_mag: np.ndarray, bright_fraction: float) -> np.ndarray:
    """Probability that BP/RP photometry is missing at observed G (see ``MISSING_BP_RP_*``)."""
    g = np.asarray(g_mag, dtype=np.float64)
    rise = MISSING_BP_RP_FAINT / (1.0 + np.exp(-(g - MISSING_BP_RP_G_MID) / MISSING_BP_RP_G_WIDTH))
    return bright_fraction + (1.0 - bright_fraction) * rise


def _heliocentric_to_lbd(
    x: np.ndarray, y: np.ndarray, z: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Galactic (l, b) in degrees and distance from heliocentric Cartesian x, y, z (x towards l = 0,
    y towards l = 90°, z towards b = 90°)."""
    d = np.sqrt(x * x + y * y + z * z)
    l_deg = np.mod(np.rad2deg(np.arctan2(y, x)), 360.0)
    b_deg = np.rad2deg(np.arcsin(np.clip(z / np.where(d > 0, d, 1.0), -1.0, 1.0)))
    return l_deg, b_deg, d


def draw_disc_positions(n: int, disc: DiscConfig, rng: np.random.Generator):
    """Up to ``n`` disc positions (l, b in deg, d in pc) within max_distance of the Sun."""
    r = rng.gamma(2.0, disc.scale_length_kpc, n)
    phi = rng.uniform(0.0, 2.0 * np.pi, n)
    z = rng.laplace(0.0, disc.scale_height_kpc, n)
    # The Sun sits at (R, φ, z) = (sun_r, 0, sun_z); l = 0 points at the Galactic centre.
    x_h = disc.sun_r_kpc - r * np.cos(phi)
    y_h = r * np.sin(phi)
    z_h = z - disc.sun_z_kpc
    l_deg, b_deg, d_kpc = _heliocentric_to_lbd(x_h, y_h, z_h)
    keep = (d_kpc <= disc.max_distance_kpc) & (d_kpc > 0)
    return l_deg[keep], b_deg[keep], 1000.0 * d_kpc[keep]


def _observe_g(g_true: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(observed flux, its quoted error, observed mag) of G, noise drawn in flux (e⁻ s⁻¹)."""
    flux = ge.mag_to_flux(g_true, "g")
    err = ge.flux_error(flux, "g")
    obs = flux + err * rng.standard_normal(flux.shape)
    return obs, err, ge.flux_to_mag(obs, "g")


def _finish_selection(
    stars: dict[str, np.ndarray], dust: SimulatedDustMap, g_limit: float, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Add dust, true and observed G to ``stars``; keep those with observed G in [G_BRIGHT_LIMIT, g_limit]."""
    e = dust.reddening_truth(stars["l"], stars["b"], stars["d_pc"])
    dm = 5.0 * np.log10(stars["d_pc"]) - 5.0
    g_true = stars["abs_g"] + dm + CRANMER2020.a_g * e
    g_flux, g_flux_err, g_obs = _observe_g(g_true, rng)
    keep = (g_obs <= g_limit) & (g_obs >= G_BRIGHT_LIMIT)  # NaN (negative flux) compares False
    out = {k: v[keep] for k, v in stars.items()}
    out.update(
        reddening=e[keep],
        g_true=g_true[keep],
        g_flux=g_flux[keep],
        g_flux_err=g_flux_err[keep],
        g_obs=g_obs[keep],
    )
    return out


def _field_batch(n: int, cfg: SurveyConfig, dust: SimulatedDustMap, rng: np.random.Generator):
    l_deg, b_deg, d_pc = draw_disc_positions(n, cfg.disc, rng)
    cmd = sample_cmd(l_deg.size, rng)
    # Dust only dims a star: skip the dust lookup for stars too faint even without it.
    bright = cmd["abs_g"] + 5.0 * np.log10(d_pc) - 5.0 <= cfg.g_limit + PRECUT_MARGIN_MAG
    stars = {
        "l": l_deg[bright],
        "b": b_deg[bright],
        "d_pc": d_pc[bright],
        "abs_g": cmd["abs_g"][bright],
        "bp_rp0": cmd["bp_rp0"][bright],
        "bp_g0": cmd["bp_g0"][bright],
        "population_code": cmd["population_code"][bright],
    }
    return _finish_selection(stars, dust, cfg.g_limit, rng)


def _draw_field(n_needed: int, cfg: SurveyConfig, dust: SimulatedDustMap, rng: np.random.Generator):
    """Draw field batches until ``n_needed`` stars pass the magnitude limit; keep the first ``n_needed``.

    Batch sizes depend only on earlier batches' yields, so the result is deterministic for a given rng.
    """
    if n_needed == 0:  # the cluster alone fills the catalog: an empty draw gives the right columns
        return _field_batch(0, cfg, dust, rng)
    batches, kept, drawn = [], 0, 0
    n_batch = min(MAX_BATCH, max(100_000, 30 * n_needed))
    while kept < n_needed:
        batch = _field_batch(n_batch, cfg, dust, rng)
        batches.append(batch)
        kept += batch["l"].size
        drawn += n_batch
        if kept == 0 and drawn >= MAX_CANDIDATES_WITHOUT_STAR:
            raise ValueError(
                f"no simulated field star is brighter than g_limit={cfg.g_limit} after {drawn} candidates; "
                "check gaia config keys 'g_limit' and 'disc'"
            )
        rate = max(kept, 1) / drawn
        n_batch = int(min(MAX_BATCH, max(10_000, 1.2 * (n_needed - kept) / rate)))
    return {k: np.concatenate([b[k] for b in batches])[:n_needed] for k in batches[0]}


def _draw_cluster(cfg: SurveyConfig, dust: SimulatedDustMap, rng: np.random.Generator):
    c = cfg.cluster
    n = c.n_members
    centre = SkyCoord(ra=c.ra_deg * u.deg, dec=c.dec_deg * u.deg, frame="icrs").galactic
    lc, bc = np.deg2rad(centre.l.deg), np.deg2rad(centre.b.deg)
    los = np.array([np.cos(bc) * np.cos(lc), np.cos(bc) * np.sin(lc), np.sin(bc)])
    e_l = np.array([-np.sin(lc), np.cos(lc), 0.0])  # towards increasing l
    e_b = np.cross(los, e_l)  # towards increasing b
    pos = (
        (c.distance_pc + rng.normal(0.0, c.distance_spread_pc, n))[:, None] * los
        + rng.normal(0.0, c.radius_pc, n)[:, None] * e_l
        + rng.normal(0.0, c.radius_pc, n)[:, None] * e_b
    )
    l_deg, b_deg, d_pc = _heliocentric_to_lbd(pos[:, 0], pos[:, 1], pos[:, 2])
    cmd = sample_cluster_cmd(n, rng)
    stars = {
        "l": l_deg,
        "b": b_deg,
        "d_pc": d_pc,
        "abs_g": cmd["abs_g"],
        "bp_rp0": cmd["bp_rp0"],
        "bp_g0": cmd["bp_g0"],
        "population_code": cmd["population_code"],
    }
    return _finish_selection(stars, dust, cfg.g_limit, rng)


# --------------------------------------------------------------------------------------------------
# The survey
# --------------------------------------------------------------------------------------------------
def simulate_gaia_survey(
    cfg: Mapping[str, Any], dust: SimulatedDustMap, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Simulate a magnitude-limited Gaia DR2-like catalog and its truth.

    Parameters
    ----------
    cfg : mapping
        The ``gaia`` config block (:func:`validate_survey_config`).
    dust : SimulatedDustMap
        The dust map; :meth:`SimulatedDustMap.reddening_truth` reddens the stars.
    seed : int
        Seed; the same (cfg, dust, seed) gives identical frames.

    Returns
    -------
    observed : pandas.DataFrame
        ``n_stars`` rows sorted by ``source_id``, columns :data:`OBSERVED_COLUMNS` with Gaia DR2 names and
        dtypes: positions (deg), parallax and parallax_error (mas), fluxes and flux errors (e⁻ s⁻¹), Vega
        magnitudes, colours, ``astrometric_n_good_obs_al``, ``astrometric_chi2_al``, ``ruwe``. Missing
        BP/RP photometry is **float NaN** (plain numpy float columns) in every ``phot_bp_*``,
        ``phot_rp_*``, ``bp_rp`` and ``bp_g`` column; ``pyarrow.Table.from_pandas`` writes NaN as null.
    truth : pandas.DataFrame
        Same rows and order, columns :data:`TRUTH_COLUMNS`: true distance (pc) and parallax (mas), true
        reddening E (Bayestar units), intrinsic M_G, (BP−RP)_0, (BP−G)_0, population label, and the flags
        ``cluster_member``, ``bad_astrometry``, ``in_dust_footprint`` (the observed dust map covers the star:
        its pixel is in the dec > −30° footprint and not a hole), ``missing_bp_rp``.

    Raises
    ------
    ValueError
        On a bad config (naming the key), or when the cluster alone has more stars than ``n_stars``.
    """
    c = validate_survey_config(cfg)
    ss_cluster, ss_field, ss_obs = np.random.SeedSequence(int(seed)).spawn(3)

    cluster = _draw_cluster(c, dust, np.random.default_rng(ss_cluster))
    n_cluster = cluster["l"].size
    if n_cluster > c.n_stars:
        raise ValueError(
            f"gaia config key 'cluster.n_members' ({c.cluster.n_members}) yields {n_cluster} cluster stars "
            f"above the magnitude limit, more than 'n_stars' ({c.n_stars})"
        )
    field = _draw_field(c.n_stars - n_cluster, c, dust, np.random.default_rng(ss_field))
    stars = {k: np.concatenate([cluster[k], field[k]]) for k in cluster}
    is_cluster = np.r_[np.ones(n_cluster, dtype=bool), np.zeros(c.n_stars - n_cluster, dtype=bool)]
    return _measure(stars, is_cluster, c, dust, np.random.default_rng(ss_obs))


def _measure(
    stars: dict[str, np.ndarray],
    is_cluster: np.ndarray,
    c: SurveyConfig,
    dust: SimulatedDustMap,
    rng: np.random.Generator,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    n = stars["l"].size
    gal = SkyCoord(l=stars["l"] * u.deg, b=stars["b"] * u.deg, frame="galactic")
    icrs = gal.icrs
    ra, dec = icrs.ra.deg, icrs.dec.deg
    hp12 = healpix.radec_to_healpix(ra, dec, healpix.GAIA_SOURCE_ID_LEVEL)
    source_id = healpix.make_source_ids(hp12, healpix.running_numbers(hp12))

    # Astrometric quality.
    beta = icrs.transform_to("barycentricmeanecliptic").lat.deg
    n_good = ge.sample_n_good_obs_al(beta, rng)
    bad = rng.random(n) < c.bad_astrometry_fraction
    ruwe = ge.sample_ruwe(bad, rng)
    chi2 = ge.chi2_al_from_ruwe(ruwe, n_good)

    # Parallax: truth + zero point + reported noise (+ unreported excess for bad astrometry).
    g_obs = stars["g_obs"]
    plx_true = 1000.0 / stars["d_pc"]
    plx_err = ge.parallax_error(g_obs, n_good)
    excess = np.where(bad, ge.bad_parallax_excess_sigma(plx_err, ruwe), 0.0)
    plx = (
        plx_true
        + c.parallax_zero_point_mas
        + plx_err * rng.standard_normal(n)
        + excess * rng.standard_normal(n)
    )

    # BP and RP: true magnitudes from the reddened colours, noise in flux.
    _, bp_rp_true, bp_g_true = redden(stars["abs_g"], stars["bp_rp0"], stars["bp_g0"], stars["reddening"])
    bp_true = stars["g_true"] + bp_g_true
    rp_true = bp_true - bp_rp_true
    phot = {}
    for band, mag in (("bp", bp_true), ("rp", rp_true)):
        flux = ge.mag_to_flux(mag, band)
        err = ge.flux_error(flux, band)
        obs = flux + err * rng.standard_normal(n)
        phot[band] = (obs, err, ge.flux_to_mag(obs, band))
    missing = rng.random(n) < missing_bp_rp_probability(g_obs, c.bp_rp_missing_fraction)
    missing |= ~np.isfinite(phot["bp"][2]) | ~np.isfinite(phot["rp"][2])  # non-positive flux: no magnitude
    for band in ("bp", "rp"):
        phot[band] = tuple(np.where(missing, np.nan, a) for a in phot[band])
    bp_mag, rp_mag = phot["bp"][2], phot["rp"][2]

    observed = pd.DataFrame(
        {
            "source_id": source_id,
            "ra": ra,
            "dec": dec,
            "l": stars["l"],
            "b": stars["b"],
            "parallax": plx,
            "parallax_error": plx_err,
            "phot_g_mean_flux": stars["g_flux"],
            "phot_g_mean_flux_error": stars["g_flux_err"],
            "phot_g_mean_mag": g_obs,
            "phot_bp_mean_flux": phot["bp"][0],
            "phot_bp_mean_flux_error": phot["bp"][1],
            "phot_bp_mean_mag": bp_mag,
            "phot_rp_mean_flux": phot["rp"][0],
            "phot_rp_mean_flux_error": phot["rp"][1],
            "phot_rp_mean_mag": rp_mag,
            "bp_rp": bp_mag - rp_mag,
            "bp_g": bp_mag - g_obs,
            "astrometric_n_good_obs_al": n_good,
            "astrometric_chi2_al": chi2,
            "ruwe": ruwe,
        }
    ).astype(OBSERVED_COLUMNS)
    truth = pd.DataFrame(
        {
            "source_id": source_id,
            "true_distance_pc": stars["d_pc"],
            "true_parallax_mas": plx_true,
            "true_reddening": stars["reddening"],
            "true_abs_g": stars["abs_g"],
            "true_bp_rp0": stars["bp_rp0"],
            "true_bp_g0": stars["bp_g0"],
            "population": np.asarray(POPULATIONS)[stars["population_code"]],
            "cluster_member": is_cluster,
            "bad_astrometry": bad,
            "in_dust_footprint": dust.has_data(ra, dec),
            "missing_bp_rp": missing,
        }
    ).astype(TRUTH_COLUMNS)
    order = np.argsort(source_id, kind="stable")
    observed = observed.iloc[order].reset_index(drop=True)
    truth = truth.iloc[order].reset_index(drop=True)
    return observed, truth
