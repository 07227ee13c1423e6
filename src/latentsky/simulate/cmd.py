"""Intrinsic (dust-free) Gaia colour–magnitude diagram of the simulated Milky Way.

Four populations in (M_G, (BP−RP)_0, (BP−G)_0), the space in which Cranmer et al. (paper 004, Sec. 3) model
the CMD with a normalizing flow:

- ``main_sequence``: the mean dwarf sequence of Pecaut & Mamajek (2013), drawn from a local luminosity
  function, widened by age/metallicity spread, main-sequence evolution and unresolved binaries;
- ``giant_branch``: subgiants and the red-giant branch of an old, solar-metallicity population up to
  M_G ≈ −2.6, BP−RP ≈ 2.5;
- ``red_clump``: M_G = 0.44 ± 0.20, (BP−RP)_0 ≈ 1.20 (Ruiz-Dern et al. 2018, A&A 609, A116);
- ``white_dwarf``: the DA cooling sequence seen in the Gaia DR2 HRD (Gaia Collaboration, Babusiaux et al.
  2018, A&A 616, A10, Fig. 13), M_G ≈ 10…15.

Fractions are per unit *volume*; a magnitude-limited survey then over-represents luminous stars, as Gaia
does. The numbers are good to the level a distance-method test needs (tenths of a magnitude), not a stellar
population synthesis.

BP−G. Gaia's three bands are not independent: for normal stars G−RP is a tight function of BP−RP, and
BP−G = (BP−RP) − (G−RP). The main-sequence relation is the G−Rp column of Mamajek's table; giants, the red
clump and white dwarfs use the same relation plus small ad-hoc offsets (≤ 0.02 mag, see
``BP_G_OFFSET_*``). These offsets are illustrative — they keep the sequences from being exactly degenerate in
BP−G, as in real Gaia where surface gravity and Balmer lines shift the SED slightly — and are not
measurements.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

#: Population labels, in the order of their integer codes.
POPULATIONS: tuple[str, ...] = ("main_sequence", "giant_branch", "red_clump", "white_dwarf")
_CODE = {name: i for i, name in enumerate(POPULATIONS)}

#: Default fractions per unit volume. Local densities (stars pc⁻³): main sequence ≈ 0.07 (the integral
#: of ``MS_LUMINOSITY_FUNCTION``), white dwarfs ≈ 0.0045 (Hollands et al. 2018, MNRAS 480, 3942), giants
#: (subgiants + RGB) ≈ 8e-4 and red clump ≈ 3e-4 (order of magnitude from Hipparcos-era local samples).
DEFAULT_POPULATION_FRACTIONS: dict[str, float] = {
    "main_sequence": 0.925,
    "giant_branch": 0.011,
    "red_clump": 0.004,
    "white_dwarf": 0.060,
}

#: Fractions for an old (~4 Gyr, solar-metallicity, M67-like) open cluster: main sequence below the
#: turn-off, a few giants and clump stars (M67 has ~30 giants and ~10 clump stars among ~1000 members).
CLUSTER_POPULATION_FRACTIONS: dict[str, float] = {
    "main_sequence": 0.95,
    "giant_branch": 0.035,
    "red_clump": 0.015,
    "white_dwarf": 0.0,
}

#: M_G of an old cluster's main-sequence turn-off, where ``GIANT_ANCHORS`` start their subgiant branch
#: (M67's turn-off sits at G ≈ 12.9–13.1, i.e. M_G ≈ 3.2–3.4 at DM 9.6 and A_G ≈ 0.1).
CLUSTER_TURNOFF_ABS_G = 3.5

# --------------------------------------------------------------------------------------------------
# Main sequence
# --------------------------------------------------------------------------------------------------
#: Mean dwarf sequence: (spectral type, M_G, BP−RP, G−RP) from E. Mamajek's "A Modern Mean Dwarf Stellar
#: Color and Effective Temperature Sequence" (version 2024.05.15; Pecaut & Mamajek 2013, ApJS 208, 9),
#: Gaia DR2 columns M_G, Bp-Rp, G-Rp. The table has no Bp-Rp for B3–B8; the B5V and B8V colours are
#: extrapolated linearly in B−V from B9V and A0V (marked "extrap."), and a few subtypes are skipped where
#: the table's G−Rp is not monotonic within its rounding.
MS_ANCHORS: tuple[tuple[str, float, float, float], ...] = (
    ("B5V", -0.84, -0.222, -0.090),  # extrap.
    ("B8V", -0.01, -0.166, -0.063),  # extrap.
    ("B9V", 0.515, -0.120, -0.036),
    ("B9.5V", 0.615, -0.087, -0.028),  # G−Rp −0.016 in the table, smoothed to keep it monotonic
    ("A0V", 1.00, -0.037, -0.020),
    ("A1V", 1.16, 0.005, 0.032),
    ("A2V", 1.345, 0.068, 0.050),
    ("A3V", 1.69, 0.110, 0.092),
    ("A4V", 1.92, 0.166, 0.113),
    ("A5V", 1.98, 0.194, 0.130),
    ("A7V", 2.19, 0.263, 0.173),
    ("A9V", 2.37, 0.327, 0.207),
    ("F0V", 2.51, 0.377, 0.230),
    ("F2V", 2.89, 0.490, 0.279),
    ("F5V", 3.26, 0.587, 0.329),
    ("F8V", 3.90, 0.694, 0.385),
    ("G0V", 4.325, 0.784, 0.439),
    ("G2V", 4.635, 0.823, 0.459),
    ("G5V", 4.801, 0.850, 0.473),
    ("G8V", 5.098, 0.900, 0.499),
    ("K0V", 5.553, 0.983, 0.560),
    ("K2V", 5.83, 1.10, 0.62),
    ("K3V", 6.22, 1.19, 0.64),
    ("K4V", 6.59, 1.34, 0.70),
    ("K5V", 6.85, 1.43, 0.74),
    ("K7V", 7.57, 1.70, 0.86),
    ("M0V", 8.10, 1.84, 0.92),
    ("M1V", 8.82, 2.09, 1.00),
    ("M2V", 9.29, 2.23, 1.06),
    ("M3V", 10.05, 2.50, 1.13),
    ("M3.5V", 10.82, 2.78, 1.19),
    ("M4V", 11.21, 2.94, 1.24),
    ("M4.5V", 12.04, 3.16, 1.28),
    ("M5V", 12.45, 3.35, 1.33),
    ("M5.5V", 13.35, 3.71, 1.38),
)
_MS_M = np.array([a[1] for a in MS_ANCHORS])
_MS_BPRP = np.array([a[2] for a in MS_ANCHORS])
_MS_GRP = np.array([a[3] for a in MS_ANCHORS])

#: Local main-sequence luminosity function: (M_G, Φ in 10⁻³ stars pc⁻³ mag⁻¹). Smoothed and approximate
#: (≈30%), after the solar-neighbourhood LF of Jahreiß & Wielen (1997, ESA SP-402, 675) and Reid, Gizis &
#: Hawley (2002, AJ 124, 2721), moved from M_V to M_G along the Mamajek sequence: few luminous stars,
#: rising to a broad peak among the M dwarfs. Linear interpolation between the points.
MS_LUMINOSITY_FUNCTION: tuple[tuple[float, float], ...] = (
    (-0.84, 0.02),
    (0.0, 0.08),
    (1.0, 0.4),
    (2.0, 1.0),
    (3.0, 2.0),
    (4.0, 3.0),
    (5.0, 3.5),
    (6.0, 3.5),
    (7.0, 4.0),
    (8.0, 5.0),
    (9.0, 7.0),
    (10.0, 9.0),
    (11.0, 10.0),
    (12.0, 10.0),
    (13.0, 9.0),
    (13.35, 8.5),
)

#: Intrinsic main-sequence width: Gaussian σ in M_G and in BP−RP at fixed mass (metallicity spread).
MS_SIGMA_ABS_G = 0.12
MS_SIGMA_BP_RP = 0.03
#: Main-sequence evolution: stars brighten by up to this much between ZAMS and turn-off (uniform in
#: [0, max]); the full effect for M_G < 3, none for M_G > 6 (low-mass stars barely evolve in a Hubble time).
MS_EVOLUTION_MAX_MAG = 0.7
#: Unresolved binaries (Raghavan et al. 2010: ~45% of FGK stars have companions; about half of those are
#: unresolved at Gaia's resolution at typical distances): q uniform in [0.1, 1], L₂/L₁ ≈ q⁴ on the main
#: sequence, so the pair is brighter by 2.5 log₁₀(1 + q⁴) ≤ 0.75 mag.
MS_BINARY_FRACTION = 0.25

# --------------------------------------------------------------------------------------------------
# Giants, red clump, white dwarfs
# --------------------------------------------------------------------------------------------------
#: Subgiant branch and RGB of a ~4 Gyr solar-metallicity isochrone, (M_G, BP−RP): turn-off → subgiants →
#: base of the RGB → tip. Approximate, read off the Gaia DR2 HRD of M67 and of nearby field giants
#: (Gaia Collaboration, Babusiaux et al. 2018, Figs. 2 and 9) and PARSEC 1.2S isochrones of that age.
GIANT_ANCHORS: tuple[tuple[float, float], ...] = (
    (3.7, 0.78),
    (3.45, 0.86),
    (3.2, 0.96),
    (3.0, 1.01),
    (2.5, 1.04),
    (1.5, 1.09),
    (0.5, 1.16),
    (-0.5, 1.30),
    (-1.5, 1.55),
    (-2.0, 1.80),
    (-2.3, 2.05),
    (-2.6, 2.50),
)
_GB_M = np.array([a[0] for a in GIANT_ANCHORS])[::-1]  # increasing, for np.interp
_GB_BPRP = np.array([a[1] for a in GIANT_ANCHORS])[::-1]
#: Number of giants per magnitude rises towards the base of the RGB, ∝ 10^(GIANT_LF_SLOPE · M_G): stars
#: climb the upper RGB ever faster (RGB luminosity-function slope ≈ 0.3 dex/mag in globular clusters).
GIANT_LF_SLOPE = 0.3
GIANT_SIGMA_ABS_G = 0.10
GIANT_SIGMA_BP_RP = 0.04

#: Red clump of the solar neighbourhood (Ruiz-Dern et al. 2018): M_G = 0.44, intrinsic σ = 0.20 mag;
#: (BP−RP)_0 = 1.20 with ~0.05 mag metallicity spread.
RED_CLUMP_ABS_G = 0.44
RED_CLUMP_SIGMA_ABS_G = 0.20
RED_CLUMP_BP_RP = 1.20
RED_CLUMP_SIGMA_BP_RP = 0.05

#: DA white-dwarf cooling sequence for ~0.6 M_sun, (M_G, BP−RP), approximate from the Gaia DR2 HRD
#: (Gaia Collaboration, Babusiaux et al. 2018, Fig. 13; Gentile Fusillo et al. 2019, MNRAS 482, 4570).
WD_ANCHORS: tuple[tuple[float, float], ...] = (
    (10.3, -0.33),
    (10.8, -0.20),
    (11.5, 0.00),
    (12.3, 0.20),
    (13.0, 0.40),
    (13.7, 0.60),
    (14.4, 0.85),
    (15.0, 1.05),
)
_WD_M = np.array([a[0] for a in WD_ANCHORS])
_WD_BPRP = np.array([a[1] for a in WD_ANCHORS])
#: White dwarfs pile up as they cool ever more slowly: number per magnitude ∝ 10^(0.3 M_G) over the range
#: (the WD luminosity function rises by ~30× from M_bol 10 to 15; Harris et al. 2006, AJ 131, 571).
WD_LF_SLOPE = 0.3
#: Mass spread moves the track by ~0.3 mag in M_G at fixed colour; a Gaussian truncated at ±3σ stands in
#: for it (truncated so the sequence stays within M_G 10.0…15.3).
WD_SIGMA_ABS_G = 0.10
WD_SIGMA_BP_RP = 0.04

#: BP−G offsets relative to the main-sequence relation (ad hoc; see module docstring), mag.
BP_G_OFFSET_GIANT_PER_MAG = 0.015  # × clip(BP−RP − 1, 0, 1.5): cool low-gravity atmospheres
BP_G_OFFSET_RED_CLUMP = 0.010
BP_G_OFFSET_WHITE_DWARF = -0.020  # Balmer lines depress BP in DA white dwarfs
#: Intrinsic scatter of BP−G about its relation, mag.
SIGMA_BP_G = 0.005


def bp_g_from_bp_rp(bp_rp: np.ndarray, population: np.ndarray | str = "main_sequence") -> np.ndarray:
    """Intrinsic BP−G as a smooth function of intrinsic BP−RP (no scatter).

    BP−G = (BP−RP) − (G−RP), with G−RP interpolated in Mamajek's dwarf table (linear, clamped outside
    −0.22 < BP−RP < 3.71) plus a per-population offset.

    Parameters
    ----------
    bp_rp : array
        (BP−RP)_0 in mag.
    population : str or array of str
        Population label(s) from :data:`POPULATIONS`, broadcast against ``bp_rp``.

    Returns
    -------
    ndarray
        (BP−G)_0 in mag, float64, broadcast shape.
    """
    bp_rp = np.asarray(bp_rp, dtype=np.float64)
    pop = np.asarray(population)
    codes = np.vectorize(_population_code, otypes=[np.int8])(pop) if pop.size else pop.astype(np.int8)
    return _bp_g(bp_rp, np.broadcast_to(codes, np.broadcast_shapes(bp_rp.shape, codes.shape)))


def _population_code(name: str) -> int:
    try:
        return _CODE[str(name)]
    except KeyError:
        raise ValueError(f"unknown population {name!r}; expected one of {POPULATIONS}") from None


def _bp_g(bp_rp: np.ndarray, codes: np.ndarray) -> np.ndarray:
    g_rp = np.interp(bp_rp, _MS_BPRP, _MS_GRP)
    bp_g = bp_rp - g_rp
    giant = codes == _CODE["giant_branch"]
    bp_g = bp_g + np.where(giant, BP_G_OFFSET_GIANT_PER_MAG * np.clip(bp_rp - 1.0, 0.0, 1.5), 0.0)
    bp_g = bp_g + np.where(codes == _CODE["red_clump"], BP_G_OFFSET_RED_CLUMP, 0.0)
    bp_g = bp_g + np.where(codes == _CODE["white_dwarf"], BP_G_OFFSET_WHITE_DWARF, 0.0)
    return bp_g


def main_sequence_bp_rp(abs_g: np.ndarray) -> np.ndarray:
    """Mean dwarf-sequence (BP−RP)_0 at absolute magnitude ``abs_g`` (mag), linear in Mamajek's table."""
    return np.interp(np.asarray(abs_g, dtype=np.float64), _MS_M, _MS_BPRP)


def _inverse_cdf_sampler(grid: np.ndarray, density: np.ndarray):
    """Return u ↦ x sampling the piecewise-linear ``density`` on ``grid`` (trapezoid CDF, linear inverse)."""
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (density[1:] + density[:-1]) * np.diff(grid))])
    cdf /= cdf[-1]
    return lambda uniform: np.interp(uniform, cdf, grid)


_LF_GRID = np.linspace(_MS_M[0], _MS_M[-1], 4001)
_LF_DENSITY = np.interp(_LF_GRID, *np.array(MS_LUMINOSITY_FUNCTION).T)


def _sample_main_sequence(
    n: int, rng: np.random.Generator, min_abs_g: float | None, evolve: bool
) -> tuple[np.ndarray, np.ndarray]:
    grid, dens = _LF_GRID, _LF_DENSITY
    if min_abs_g is not None:  # an old cluster: nothing above the turn-off
        keep = grid >= min_abs_g
        grid, dens = grid[keep], dens[keep]
    m0 = _inverse_cdf_sampler(grid, dens)(rng.random(n))
    bp_rp = main_sequence_bp_rp(m0) + rng.normal(0.0, MS_SIGMA_BP_RP, n)
    abs_g = m0 + rng.normal(0.0, MS_SIGMA_ABS_G, n)
    if evolve:
        weight = np.clip((6.0 - m0) / 3.0, 0.0, 1.0)
        abs_g -= MS_EVOLUTION_MAX_MAG * weight * rng.random(n)
    q = rng.uniform(0.1, 1.0, n)
    binary = rng.random(n) < MS_BINARY_FRACTION
    abs_g -= np.where(binary, 2.5 * np.log10(1.0 + q**4), 0.0)
    return abs_g, bp_rp


def _sample_exponential_lf(
    n: int, rng: np.random.Generator, lo: float, hi: float, slope_dex_per_mag: float
) -> np.ndarray:
    """M in [lo, hi] with density ∝ 10^(slope · M), by inverting its CDF."""
    k = slope_dex_per_mag * np.log(10.0)
    uniform = rng.random(n)
    return np.log(np.exp(k * lo) + uniform * (np.exp(k * hi) - np.exp(k * lo))) / k


def _sample_giants(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    m0 = _sample_exponential_lf(n, rng, _GB_M[0], _GB_M[-1], GIANT_LF_SLOPE)
    bp_rp = np.interp(m0, _GB_M, _GB_BPRP) + rng.normal(0.0, GIANT_SIGMA_BP_RP, n)
    return m0 + rng.normal(0.0, GIANT_SIGMA_ABS_G, n), bp_rp


def _sample_red_clump(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    return (
        rng.normal(RED_CLUMP_ABS_G, RED_CLUMP_SIGMA_ABS_G, n),
        rng.normal(RED_CLUMP_BP_RP, RED_CLUMP_SIGMA_BP_RP, n),
    )


def _sample_white_dwarfs(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    m0 = _sample_exponential_lf(n, rng, _WD_M[0], _WD_M[-1], WD_LF_SLOPE)
    bp_rp = np.interp(m0, _WD_M, _WD_BPRP) + rng.normal(0.0, WD_SIGMA_BP_RP, n)
    return m0 + WD_SIGMA_ABS_G * _truncated_standard_normal(n, 3.0, rng), bp_rp


def _truncated_standard_normal(n: int, limit: float, rng: np.random.Generator) -> np.ndarray:
    """Standard normal deviates restricted to |x| <= limit, by resampling the few outside."""
    x = rng.standard_normal(n)
    out = np.flatnonzero(np.abs(x) > limit)
    while out.size:
        x[out] = rng.standard_normal(out.size)
        out = out[np.abs(x[out]) > limit]
    return x


def _fractions(population_fractions: Mapping[str, float] | None, default: Mapping[str, float]) -> np.ndarray:
    fr = default if population_fractions is None else population_fractions
    unknown = sorted(set(fr) - set(POPULATIONS))
    if unknown:
        raise ValueError(
            f"population_fractions has unknown population '{unknown[0]}'; expected {POPULATIONS}"
        )
    p = np.array([float(fr.get(name, 0.0)) for name in POPULATIONS])
    if np.any(~np.isfinite(p)) or np.any(p < 0) or p.sum() <= 0:
        raise ValueError(f"population_fractions must be finite, >= 0 and not all zero, got {dict(fr)}")
    return p / p.sum()


def _sample(
    n: int,
    rng: np.random.Generator,
    fractions: np.ndarray,
    ms_min_abs_g: float | None,
    ms_evolve: bool,
) -> dict[str, np.ndarray]:
    if int(n) != n or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n}")
    n = int(n)
    codes = rng.choice(len(POPULATIONS), size=n, p=fractions).astype(np.int8)
    abs_g = np.empty(n)
    bp_rp = np.empty(n)
    samplers = {
        "main_sequence": lambda k: _sample_main_sequence(k, rng, ms_min_abs_g, ms_evolve),
        "giant_branch": lambda k: _sample_giants(k, rng),
        "red_clump": lambda k: _sample_red_clump(k, rng),
        "white_dwarf": lambda k: _sample_white_dwarfs(k, rng),
    }
    for name in POPULATIONS:
        idx = np.flatnonzero(codes == _CODE[name])
        if idx.size:
            abs_g[idx], bp_rp[idx] = samplers[name](idx.size)
    bp_g = _bp_g(bp_rp, codes) + rng.normal(0.0, SIGMA_BP_G, n)
    return {
        "abs_g": abs_g,
        "bp_rp0": bp_rp,
        "bp_g0": bp_g,
        "population": np.asarray(POPULATIONS)[codes],
        "population_code": codes,
    }


def sample_cmd(
    n: int, rng: np.random.Generator, population_fractions: Mapping[str, float] | None = None
) -> dict[str, np.ndarray]:
    """Draw ``n`` field stars from the intrinsic CMD.

    Parameters
    ----------
    n : int
        Number of stars.
    rng : numpy.random.Generator
    population_fractions : mapping, optional
        Fraction per unit volume of each population in :data:`POPULATIONS` (missing ones count as 0;
        normalised to sum 1). Default :data:`DEFAULT_POPULATION_FRACTIONS`.

    Returns
    -------
    dict of ndarray, each of shape ``(n,)``
        ``abs_g`` (M_G, mag), ``bp_rp0`` and ``bp_g0`` (intrinsic colours, mag), ``population`` (str labels)
        and ``population_code`` (int8 index into :data:`POPULATIONS`).
    """
    return _sample(n, rng, _fractions(population_fractions, DEFAULT_POPULATION_FRACTIONS), None, True)


def sample_cluster_cmd(
    n: int,
    rng: np.random.Generator,
    turnoff_abs_g: float = CLUSTER_TURNOFF_ABS_G,
    population_fractions: Mapping[str, float] | None = None,
) -> dict[str, np.ndarray]:
    """Draw ``n`` members of an old (M67-like) open cluster: main sequence fainter than the turn-off (no
    main-sequence evolution spread — the stars are coeval), plus giants and red-clump stars.

    Parameters and returns as :func:`sample_cmd`; default fractions :data:`CLUSTER_POPULATION_FRACTIONS`.
    ``turnoff_abs_g`` is the brightest M_G of the unevolved main sequence, mag.
    """
    fractions = _fractions(population_fractions, CLUSTER_POPULATION_FRACTIONS)
    return _sample(n, rng, fractions, float(turnoff_abs_g), False)
