"""Gaia DR2-like measurement uncertainties, photometric zero points and astrometric quality indicators.

What the distance model of Cranmer et al. (paper 004, Sec. 2) reads from Gaia DR2 besides positions:
parallax and its error, G/BP/RP magnitudes with their errors (through fluxes), and RUWE computed from
``astrometric_chi2_al`` and ``astrometric_n_good_obs_al``. This module gives the simulated survey the same
columns with DR2-like sizes:

- **parallax_error(G)**: the Gaia science-performance formula (de Bruijne et al. 2014, "Gaia astrometric
  science performance – post-launch predictions", EAS Publ. Ser. 67, 23; ESA's "Gaia science performance"
  pages) with z = max(10^{0.4(13−15)}, 10^{0.4(G−15)}), scaled to DR2's 22 months and given a floor for the
  attitude/calibration errors that dominate bright stars, so that σ_ϖ ≈ 0.04 mas at G < 15, ≈ 0.1 mas at
  G = 17 and ≈ 0.7 mas at G = 20 (Lindgren et al. 2018, A&A 616, A2, Sec. 1).
- **magnitude errors**: a floor (calibration) plus photon- and background-noise terms; G from ≈0.3 mmag
  bright to ≈0.01 mag at G = 20, BP/RP from 2–3 mmag bright to 0.1–0.2 mag at 20 (Evans et al. 2018,
  A&A 616, A4, Fig. 9). Noise is drawn in flux, as the catalog's errors are flux errors.
- **zero points**: Gaia DR2 Vega system, G 25.6884, BP 25.3514, RP 24.7619 (Evans et al. 2018, Table 3).
- **RUWE**: well-behaved single stars scatter about 1; a "bad astrometry" tail (binaries with orbital
  photocentre motion, crowding) has RUWE > 1.4 and a parallax genuinely worse than its quoted error.
  ``astrometric_chi2_al = RUWE² (n_good − 5)``, i.e. RUWE = √(χ²/(n_good − 5)) / u0 with the normalisation
  u0 set to 1 in the simulation (DR2's u0(G, C) table, Lindegren et al. 2018 tech. note GAIA-C3-TN-LU-LL-124,
  only corrects the real catalog's colour/magnitude trends, which the simulation does not have).
"""

from __future__ import annotations

import numpy as np

#: Gaia DR2 photometric zero points (Vega mag), Evans et al. (2018), Table 3: m = ZP − 2.5 log10(flux [e⁻/s]).
GAIA_DR2_ZERO_POINTS: dict[str, float] = {"g": 25.6884, "bp": 25.3514, "rp": 24.7619}
#: 2.5 / ln 10: σ_m = MAG_PER_FRACTIONAL_FLUX × σ_F / F for small errors.
MAG_PER_FRACTIONAL_FLUX = 2.5 / np.log(10.0)

#: DR2 (22 months) over end-of-mission (60 months) parallax precision, fitted to the DR2 anchors above.
DR2_PARALLAX_SCALE = 1.15
#: Floor of the DR2 parallax error (attitude and calibration), mas, added in quadrature.
DR2_PARALLAX_FLOOR_MAS = 0.030
#: Brightest G at which the science-performance formula still improves (gating / saturation below).
PARALLAX_BRIGHT_G = 13.0
#: Typical DR2 number of good along-scan CCD observations (~26 field-of-view transits × ~9 CCDs); the
#: parallax error scales as √(N_REF / n_good) around it.
N_GOOD_OBS_REFERENCE = 230

#: Magnitude-error model per band, σ_m² = floor² + p² 10^{0.4 (m − 20)} + q² 10^{0.8 (m − 20)}, with m the
#: band's own magnitude: floor = calibration, p = source photon noise, q = background / read noise.
MAG_ERROR_MODEL: dict[str, tuple[float, float, float]] = {
    "g": (0.0003, 0.006, 0.008),
    "bp": (0.002, 0.040, 0.100),
    "rp": (0.003, 0.035, 0.090),
}

#: RUWE of well-behaved stars: normal(1.0, 0.05), truncated below at 0.8 (the DR2 RUWE distribution of
#: single stars peaks at 1 with a narrow core; Lindegren et al. 2018, GAIA-C3-TN-LU-LL-124).
RUWE_GOOD_MEAN = 1.0
RUWE_GOOD_SIGMA = 0.05
RUWE_GOOD_MIN = 0.8
#: RUWE of the bad-astrometry tail: RUWE_BAD_MIN + log-normal(median RUWE_BAD_MEDIAN_EXCESS, σ_ln
#: RUWE_BAD_SIGMA_LN), so every bad star is above the 1.4 cut that Cranmer et al. (Sec. 2) apply.
RUWE_BAD_MIN = 1.45
RUWE_BAD_MEDIAN_EXCESS = 1.0
RUWE_BAD_SIGMA_LN = 0.6
#: Extra parallax scatter of bad-astrometry stars, in units of σ_ϖ √(RUWE² − 1): the unit-weight error says
#: the fit residuals are RUWE× too large, and the parallax suffers more than the error the catalog reports.
BAD_PARALLAX_EXCESS_FACTOR = 2.0


def mag_to_flux(mag: np.ndarray, band: str) -> np.ndarray:
    """Flux in e⁻ s⁻¹ from a Gaia DR2 Vega magnitude in ``band`` ('g', 'bp' or 'rp')."""
    return 10.0 ** (0.4 * (_zero_point(band) - np.asarray(mag, dtype=np.float64)))


def flux_to_mag(flux: np.ndarray, band: str) -> np.ndarray:
    """Gaia DR2 Vega magnitude from a flux in e⁻ s⁻¹; NaN where the flux is not positive."""
    f = np.asarray(flux, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(f > 0, _zero_point(band) - 2.5 * np.log10(np.where(f > 0, f, 1.0)), np.nan)


def _zero_point(band: str) -> float:
    try:
        return GAIA_DR2_ZERO_POINTS[band]
    except KeyError:
        raise ValueError(f"band must be one of {sorted(GAIA_DR2_ZERO_POINTS)}, got {band!r}") from None


def parallax_error(g_mag: np.ndarray, n_good_obs_al: np.ndarray | None = None) -> np.ndarray:
    """DR2-like parallax uncertainty in mas.

    ``σ_ϖ = √[(k σ_EoM(G))² + floor²] × √(N_REF / n_good)`` with the end-of-mission science-performance
    ``σ_EoM [µas] = √(−1.631 + 680.766 z + 32.732 z²)``, ``z = max(10^{0.4(13−15)}, 10^{0.4(G−15)})``
    (the colour term, ≤ 1.4%, is dropped), k = :data:`DR2_PARALLAX_SCALE` and
    floor = :data:`DR2_PARALLAX_FLOOR_MAS`.

    Parameters
    ----------
    g_mag : array
        G magnitude.
    n_good_obs_al : array, optional
        Good along-scan observations; scales the error as √(N_REF / n). Omit for the typical sky.

    Returns
    -------
    ndarray
        σ_ϖ in mas, float64, shape of ``g_mag`` (broadcast with ``n_good_obs_al``).
    """
    g = np.asarray(g_mag, dtype=np.float64)
    z = np.maximum(10.0 ** (0.4 * (PARALLAX_BRIGHT_G - 15.0)), 10.0 ** (0.4 * (g - 15.0)))
    eom_mas = np.sqrt(-1.631 + 680.766 * z + 32.732 * z**2) / 1000.0
    sigma = np.hypot(DR2_PARALLAX_SCALE * eom_mas, DR2_PARALLAX_FLOOR_MAS)
    if n_good_obs_al is not None:
        sigma = sigma * np.sqrt(N_GOOD_OBS_REFERENCE / np.asarray(n_good_obs_al, dtype=np.float64))
    return sigma


def mag_error(mag: np.ndarray, band: str) -> np.ndarray:
    """DR2-like 1σ magnitude uncertainty (mag) at magnitude ``mag`` in ``band`` ('g', 'bp', 'rp')."""
    try:
        floor, p, q = MAG_ERROR_MODEL[band]
    except KeyError:
        raise ValueError(f"band must be one of {sorted(MAG_ERROR_MODEL)}, got {band!r}") from None
    x = np.asarray(mag, dtype=np.float64) - 20.0
    return np.sqrt(floor**2 + p**2 * 10.0 ** (0.4 * x) + q**2 * 10.0 ** (0.8 * x))


def flux_error(flux: np.ndarray, band: str) -> np.ndarray:
    """DR2-like 1σ flux uncertainty (e⁻ s⁻¹) of a source of true ``flux`` (e⁻ s⁻¹) in ``band``.

    σ_F = σ_m(m) F / 1.0857, so that small flux errors map back onto :func:`mag_error`.
    """
    f = np.asarray(flux, dtype=np.float64)
    return mag_error(flux_to_mag(f, band), band) * f / MAG_PER_FRACTIONAL_FLUX


def n_good_obs_mean(ecliptic_lat_deg: np.ndarray) -> np.ndarray:
    """Mean number of good along-scan observations vs ecliptic latitude β (degrees).

    Gaia's scanning law (spin axis precessing on a 45° cone about the Sun direction) piles transits up at
    |β| ≈ 45° and gives the fewest near the ecliptic; 190 at β = 0 rising to 320 at |β| = 45°.
    """
    beta = np.abs(np.asarray(ecliptic_lat_deg, dtype=np.float64))
    return 190.0 + 130.0 * np.exp(-(((beta - 45.0) / 20.0) ** 2))


def sample_n_good_obs_al(ecliptic_lat_deg: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Draw ``astrometric_n_good_obs_al`` (int32): the scan-law mean times a 15% log-normal star-to-star
    scatter (gaps, rejected CCD observations), clipped to [60, 600]."""
    mean = n_good_obs_mean(ecliptic_lat_deg)
    n = mean * np.exp(rng.normal(0.0, 0.15, mean.shape))
    return np.clip(np.rint(n), 60, 600).astype(np.int32)


def sample_ruwe(bad_astrometry: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Draw RUWE (float64) for stars flagged ``bad_astrometry`` (bool array) or not.

    Good: normal(1.0, 0.05) truncated at > 0.8. Bad: 1.45 + log-normal(median 1, σ_ln 0.6), median ≈ 2.45,
    always above 1.4.
    """
    bad = np.asarray(bad_astrometry, dtype=bool)
    ruwe = rng.normal(RUWE_GOOD_MEAN, RUWE_GOOD_SIGMA, bad.shape)
    low = np.flatnonzero(ruwe <= RUWE_GOOD_MIN)
    while low.size:  # truncation by resampling; at 4σ it hardly ever loops
        ruwe.flat[low] = rng.normal(RUWE_GOOD_MEAN, RUWE_GOOD_SIGMA, low.size)
        low = low[ruwe.flat[low] <= RUWE_GOOD_MIN]
    excess = RUWE_BAD_MEDIAN_EXCESS * np.exp(rng.normal(0.0, RUWE_BAD_SIGMA_LN, bad.shape))
    return np.where(bad, RUWE_BAD_MIN + excess, ruwe)


def chi2_al_from_ruwe(ruwe: np.ndarray, n_good_obs_al: np.ndarray) -> np.ndarray:
    """``astrometric_chi2_al`` consistent with ``ruwe``: RUWE² (n_good − 5) (5-parameter solution, u0 = 1)."""
    return np.asarray(ruwe, dtype=np.float64) ** 2 * (np.asarray(n_good_obs_al, dtype=np.float64) - 5.0)


def ruwe_from_chi2_al(chi2_al: np.ndarray, n_good_obs_al: np.ndarray, u0: float = 1.0) -> np.ndarray:
    """RUWE = √(χ²_al / (n_good − 5)) / u0 — how a DR2 user recovers RUWE (u0 = 1 for the simulation)."""
    dof = np.asarray(n_good_obs_al, dtype=np.float64) - 5.0
    return np.sqrt(np.asarray(chi2_al, dtype=np.float64) / dof) / u0


def bad_parallax_excess_sigma(parallax_error_mas: np.ndarray, ruwe: np.ndarray) -> np.ndarray:
    """Std (mas) of the parallax scatter that the catalog error does not report, for bad-astrometry stars:
    ``BAD_PARALLAX_EXCESS_FACTOR σ_ϖ √(max(RUWE² − 1, 0))``; zero at RUWE ≤ 1."""
    r = np.asarray(ruwe, dtype=np.float64)
    return BAD_PARALLAX_EXCESS_FACTOR * np.asarray(parallax_error_mas) * np.sqrt(np.maximum(r**2 - 1.0, 0.0))
