"""A simulated Gaia DR3 XP survey with known truth, for the scatter-VAE stage (paper 001; spec Part A, A2).

Two samples like the paper's: ``crossmatch`` (an APOGEE-like labelled sample; the sVAE and the Cannon are
trained on it) and ``unlabelled`` (a Gaia-like mix with populations the labels never cover: M dwarfs, hot
stars, white dwarfs, reddened supergiants). Each comes as an observed table in the archive's
``xp_continuous_mean_spectrum`` layout (+ ``phot_g_mean_flux/mag`` from ``gaia_source`` and, for the
crossmatch, APOGEE DR17 allStar label columns) and a truth table.

Recipe (spec A2; every step vectorised, SEDs in chunks of :data:`CHUNK` stars to bound memory):

1. **Populations** (A2.1): Teff, log g, [M/H], A0, G per population; hidden parameters [α/M], R_V and, for
   10 % of dwarfs, an unresolved cooler main-sequence companion (G-band flux ratio ``binary_q``).
2. **SED** (A2.2) on GaiaXPy's 343-point grid: blackbody × metal-line blanketing × Balmer jump and lines ×
   TiO and CaH bands × Ca II triplet × Mg b × Fitzpatrick (1999) extinction (``extinction`` package).
3. **Projection** (A2.3): c = k_G · F_G · R f / F(f) with R GaiaXPy's DR3 basis' ridge operator
   (:func:`latentsky.xp.basis.projection_operator`), F(f) the photon-weighted flux through a smooth G
   passband and k_G fixed so that the solar model has c₀(BP)/F_G = 0.065 (18 Sco's value). ``c / F_G``
   are the noiseless **G-normalised coefficients** of the truth table.
4. **Intrinsic scatter** (A2.5): G-normalised jitter η(ℓ) · s_pop,k · N(0, 1), with s_pop,k the standard
   deviation of coefficient k over the crossmatch's normal stars (computed in the call) and
   η = 0.02 [1 + 4 sigmoid((4000 − Teff)/150)] [1 + 2·𝟙(log g < 1.5)]; ``s_true = η s_pop``.
5. **Anomalies** (A2.7), tagged in ``anomaly_kind``: CEMP bands, Hα emission, WD + M dwarf pairs, a BP/RP
   calibration mismatch (BP × U(0.8, 0.9)) and extreme extinction (A0 8–12).
6. **Noise** (A2.4): σ_k = c₀(band) r(G) p_k, reported exactly; ε = diag(σ) L n with L the Cholesky factor of
   the star's correlation matrix ρ. To keep the cost and memory linear with a small constant, ρ comes from
   a **bank** of :data:`N_CORRELATION_BANK` matrices per band (``correlations="parametric"``: normalised
   BBᵀ + I, B 55 × 5, tuned to the shared DR3 files' statistics) or the real matrices of archive files
   (``"shared"``); each star draws one per band. The table's ``*_coefficient_correlations`` cells of stars
   sharing a matrix are the *same* read-only float32 array (pyarrow writes them out row by row).
7. **Labels** (A2.6, crossmatch): truth + N(0, σ) with σ = (50 K, 0.06, 0.02), reported as such, and
   unreported failure regions (cool, low log g, 1 % catastrophic).

Randomness: one ``numpy.random.SeedSequence(seed)`` spawns independent streams for the correlation bank,
the crossmatch and the unlabelled sample (so the crossmatch does not change when ``n_unlabelled`` does);
the same seed gives identical output.

The numbers marked [proposal] in the spec (feature depths and widths, passband, population ranges) are
illustrative, chosen for the properties A2.2 lists: smooth nonlinear dependence on all four labels, a
Teff–A0 degeneracy broken only by spectral features, non-polynomial behaviour at the extremes and hidden
parameters a 3-label model cannot express.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import extinction
import numpy as np
import pandas as pd

from latentsky.io import healpix
from latentsky.xp import basis

N_BAND = basis.N_COEFFICIENTS_PER_BAND
N_COEF = basis.N_COEFFICIENTS
#: Packed correlation values per band: the strict lower triangle of a 55 × 55 matrix.
N_CORRELATIONS = N_BAND * (N_BAND - 1) // 2
#: GaiaXPy's packing of ``*_coefficient_correlations`` (``array_to_symmetric_matrix``): the values fill
#: ``np.tril_indices(55, -1)`` — row by row through the lower triangle, i.e. the upper triangle in
#: column-major order. Checked on the shared DR3 file: this order gives positive-definite matrices, the
#: column-by-column order of the lower triangle does not.
_TRIL = np.tril_indices(N_BAND, -1)

#: DR3 G-band zero point (Vega, e⁻/s): G = −2.5 log10(F_G) + ZP (Riello et al. 2021).
G_ZERO_POINT = 25.6874
#: c₀(BP)/F_G of the solar model, set to 18 Sco's DR3 value 9.23e6 / 1.41e8 (spec A2.3 [verified]).
SOLAR_C0_BP_OVER_FG = 0.065
#: Solar model used to fix k_G: Teff, log g, [M/H], [α/M].
SOLAR_LABELS = (5772.0, 4.44, 0.0, 0.0)
#: Correlation matrices per band in the bank each star draws from (step 6 of the recipe).
N_CORRELATION_BANK = 64
#: Stars per SED chunk: 4096 × 343 float64 temporaries are ~11 MB each.
CHUNK = 4096

# Noise model (A2.4): σ_k = c₀(band) · r(G) · p_k.
R_FLOOR, R_PHOT, R_BRIGHT_FLOOR, G_BRIGHT = 3e-4, 1e-3, 1e-3, 8.0
#: p_k = 1 below this index, then log-linear to P_LAST at index 54: DR3 errors drop ~10× from k ≈ 40 to 54.
P_KNEE, P_LAST = 40, 0.02

# Parametric correlations (A2.4): ρ = normalise(BBᵀ + I), B_ij = B_SCALE · a_i · N(0, 1) with
# a_i = exp(B_ROW_SIGMA · N(0, 1)) (lognormal row loadings give the heavy tail of |ρ| the real matrices
# have; equal loadings give p90/median ≈ 2.4 instead of ≈ 4). With rank 5, B_SCALE = 0.22 and
# B_ROW_SIGMA = 0.9: median |ρ| ≈ 0.04, p90 ≈ 0.17, max ≈ 0.65 per matrix, smallest eigenvalue ≈ 0.15 —
# the shared DR3 files have 0.02–0.06, 0.09–0.21, 0.42–0.83 and 0.016–0.18 (spec A1.1 point 4).
B_RANK, B_SCALE, B_ROW_SIGMA = 5, 0.22, 0.9

# Intrinsic scatter (A2.5).
ETA0 = 0.02

# Labels (A2.6): nominal errors, also the reported ones.
TEFF_ERR, LOGG_ERR, M_H_ERR = 50.0, 0.06, 0.02
CATASTROPHIC_FRACTION = 0.01
#: ASPCAPFLAG bit STAR_BAD (DR17 bitmask): set for half of the catastrophic stars (a real mismatch is often,
#: not always, caught). The cool and low-log g failure regions are *not* flagged (A2.6, like ASPCAP).
ASPCAPFLAG_STAR_BAD = 1 << 23

ANOMALY_KINDS = ("cemp", "emission", "wd_md_pair", "bp_rp_mismatch", "extreme_extinction")
CROSSMATCH_POPULATIONS = {"apogee_giant": 0.65, "apogee_dwarf": 0.35}
UNLABELLED_POPULATIONS = {
    "dwarf": 0.45,
    "giant": 0.20,
    "hot": 0.10,
    "white_dwarf": 0.05,
    "supergiant": 0.05,
    "apogee_giant": 0.15 * 0.65,
    "apogee_dwarf": 0.15 * 0.35,
}
#: G ranges (A2.1): APOGEE-like crossmatch vs the XP archive's G < 17.65 limit.
G_RANGE = {"crossmatch": (9.0, 16.5), "unlabelled": (9.0, 17.65)}

#: Columns of the observed tables, with dtypes of scalars ("list<…>" = a cell holding a numpy array).
OBSERVED_COLUMNS: dict[str, str] = {
    "source_id": "int64",
    "bp_n_parameters": "int16",
    "bp_standard_deviation": "float32",
    "bp_coefficients": "list<float64>[55]",
    "bp_coefficient_errors": "list<float64>[55]",
    "bp_coefficient_correlations": "list<float32>[1485]",
    "rp_n_parameters": "int16",
    "rp_standard_deviation": "float32",
    "rp_coefficients": "list<float64>[55]",
    "rp_coefficient_errors": "list<float64>[55]",
    "rp_coefficient_correlations": "list<float32>[1485]",
    "phot_g_mean_flux": "float64",
    "phot_g_mean_mag": "float32",
}
#: APOGEE DR17 allStar columns added to the crossmatch's observed table.
LABEL_COLUMNS: dict[str, str] = {
    "TEFF": "float32",
    "TEFF_ERR": "float32",
    "LOGG": "float32",
    "LOGG_ERR": "float32",
    "M_H": "float32",
    "M_H_ERR": "float32",
    "SFD_EBV": "float32",
    "STARFLAG": "int64",
    "ASPCAPFLAG": "int64",
}
#: Truth columns ("label_region" only in the crossmatch).
TRUTH_COLUMNS: dict[str, str] = {
    "source_id": "int64",
    "teff": "float64",
    "logg": "float64",
    "m_h": "float64",
    "a0": "float64",
    "alpha_m": "float64",
    "r_v": "float64",
    "binary_q": "float64",
    "population": "str",
    "anomaly_kind": "str",
    "label_region": "str",
    "bp_scale": "float64",
    "g_mag": "float64",
    "g_flux": "float64",
    "eta": "float64",
    "s_true": "list<float64>[110]",
    "coefficients": "list<float64>[110]",
    "jitter": "list<float64>[110]",
}


# --------------------------------------------------------------------------------------------------
# SED model (A2.2)
# --------------------------------------------------------------------------------------------------
#: hc/k in nm K, for the Planck function.
_HC_K_NM = 1.4387769e7
BALMER_LINES_NM = (656.28, 486.13, 434.05, 410.17, 397.01, 388.91, 383.54)
BALMER_LIMIT_NM = 364.6
#: TiO bandheads (nm) with relative depths and the e-folding length (nm) of their red-degraded tails. The
#: γ and γ' systems at 705 and 760 nm are the strongest in M dwarfs; depths are [proposal].
TIO_BANDHEADS_NM = (476.0, 545.0, 615.0, 665.0, 705.0, 760.0, 840.0)
TIO_RELATIVE_DEPTH = (0.35, 0.45, 0.55, 0.5, 0.7, 0.6, 0.4)
TIO_TAIL_NM = 25.0
#: CaH 630–700 nm in cool dwarfs: maximum depth [proposal] (a depth of D_CaH = 1 would remove the flux).
CAH_MAX_DEPTH = 0.4
CA_TRIPLET_NM = (849.8, 854.2, 866.2)
#: Feature depths are clipped here so every factor stays positive.
MAX_FEATURE_DEPTH = 0.9
#: R_V table for the extinction curve: A_λ = A0 k(λ; R_V), linear in A0, interpolated in R_V.
_RV_GRID = np.round(np.arange(2.0, 4.5001, 0.01), 2)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _gauss(lam: np.ndarray, centre: float, width: np.ndarray | float) -> np.ndarray:
    return np.exp(-0.5 * ((lam - centre) / width) ** 2)


@lru_cache(maxsize=1)
def _extinction_table() -> np.ndarray:
    """k(λ; R_V) = A_λ / A0 on (R_V grid × 343) from Fitzpatrick (1999).

    ``extinction.fitzpatrick99`` takes one R_V per call; A_λ is linear in A0 at fixed R_V, so a table on a
    0.01 grid in R_V with linear interpolation gives every star its own R_V at the cost of one lookup (the
    curve is smooth in R_V; the interpolation error is < 1e-4 mag per mag of A0). A0 is used as F99's A_V,
    as in the spec.
    """
    wave_aa = 10.0 * np.asarray(basis.xp_wavelength_grid())
    table = np.stack([extinction.fitzpatrick99(wave_aa, 1.0, float(rv)) for rv in _RV_GRID])
    table.setflags(write=False)
    return table


def extinction_curve(r_v: np.ndarray) -> np.ndarray:
    """A_λ / A0 (n, 343) on the XP grid for per-star R_V (Fitzpatrick 1999, interpolated in R_V)."""
    table = _extinction_table()
    x = (np.clip(np.asarray(r_v, dtype=float), _RV_GRID[0], _RV_GRID[-1]) - _RV_GRID[0]) / 0.01
    i = np.minimum(np.floor(x).astype(int), _RV_GRID.size - 2)
    w = (x - i)[:, None]
    return (1.0 - w) * table[i] + w * table[i + 1]


@lru_cache(maxsize=1)
def _profiles() -> dict[str, np.ndarray]:
    """Label-independent feature profiles on the XP grid, computed once (only depths depend on the star)."""
    lam = np.asarray(basis.xp_wavelength_grid())
    tio = np.stack(
        [
            _sigmoid((lam - head) / 1.0) * np.exp(-np.maximum(lam - head, 0.0) / TIO_TAIL_NM)
            for head in TIO_BANDHEADS_NM
        ]
    )
    out = {
        "lam_m5": lam**-5.0,
        "blanket": (lam / 400.0) ** -4.0,
        "balmer_jump": _sigmoid((BALMER_LIMIT_NM - lam) / 3.0),
        "tio": tio,
        "cah": _sigmoid((lam - 630.0) / 3.0) * _sigmoid((700.0 - lam) / 3.0),
        "cat": np.stack([_gauss(lam, c, 1.5) for c in CA_TRIPLET_NM]),
        "mgb": _gauss(lam, 517.0, 3.0),
    }
    for arr in out.values():
        arr.setflags(write=False)
    return out


def _window(centre: float, half_width: float) -> slice:
    """Grid indices within ``half_width`` nm of ``centre`` (lines are evaluated only there: beyond 6σ a
    Gaussian is < 2e-8)."""
    lam = np.asarray(basis.xp_wavelength_grid())
    return slice(
        int(np.searchsorted(lam, centre - half_width)), int(np.searchsorted(lam, centre + half_width))
    )


def tio_factor(teff: np.ndarray, m_h: np.ndarray) -> np.ndarray:
    """Π_b [1 − D_TiO s_b band_b(λ)] (n, 343): TiO bands of M and late-K stars (spec A2.2).

    D_TiO = clip((4100 − Teff)/900, 0, 1)^1.3 · 10^(0.5 [M/H]) is exactly 0 at and above 4,100 K, so the bands
    switch on non-polynomially (what a quadratic Cannon cannot follow). Each band: a 1-nm smooth bandhead and
    an exponential red tail (TiO bands degrade to the red); depths clipped at 0.9.
    """
    t = np.asarray(teff, dtype=float)
    m = np.asarray(m_h, dtype=float)
    out = np.ones((t.size, basis.N_WAVELENGTHS))
    rows = np.flatnonzero(t < 4100.0)
    if rows.size:
        d_tio = np.clip((4100.0 - t[rows]) / 900.0, 0.0, 1.0) ** 1.3 * 10.0 ** (0.5 * m[rows])
        sub = out[rows]
        for band, rel in zip(_profiles()["tio"], TIO_RELATIVE_DEPTH, strict=True):
            sub *= 1.0 - np.clip(rel * d_tio, 0.0, MAX_FEATURE_DEPTH)[:, None] * band[None, :]
        out[rows] = sub
    return out


def intrinsic_sed(teff: np.ndarray, logg: np.ndarray, m_h: np.ndarray, alpha_m: np.ndarray) -> np.ndarray:
    """Dust-free SED (n, 343), energy per unit wavelength in arbitrary units, on the XP grid (spec A2.2).

    Blackbody × metal-line blanketing × Balmer jump and lines × TiO bands × CaH × Ca II triplet × Mg b. All
    factors are smooth in the labels; each multiplies by (1 − depth × profile) with the depth ≤ 0.9.
    """
    prof = _profiles()
    lam = np.asarray(basis.xp_wavelength_grid())
    t = np.asarray(teff, dtype=float)
    g = np.asarray(logg, dtype=float)
    m = np.asarray(m_h, dtype=float)
    a = np.asarray(alpha_m, dtype=float)
    theta = 5040.0 / t

    # Planck B_λ(T) ∝ λ⁻⁵ / (exp(hc/λkT) − 1).
    f = prof["lam_m5"][None, :] / np.expm1(_HC_K_NM / (lam[None, :] * t[:, None]))
    # Metal-line blanketing: a blue-rising opacity ∝ metals (α elements count: Mg, Si, Ca are donors) and
    # stronger for cool stars (θ^2.5).
    f *= np.exp(-0.15 * (10.0 ** (m + 0.3 * a) * theta**2.5)[:, None] * prof["blanket"][None, :])
    # Balmer jump: bound–free H absorption below 364.6 nm, peaking in A stars and stronger at low gravity.
    jump = np.clip(
        0.45 * np.exp(-(((t - 9500.0) / 2500.0) ** 2)) * (1.0 + 0.1 * (4.0 - g)), 0.0, MAX_FEATURE_DEPTH
    )
    f *= 1.0 - jump[:, None] * prof["balmer_jump"][None, :]
    # Balmer lines: depth peaks in A stars; pressure broadening grows with log g (width ≥ 1 nm). Evaluated
    # within 6 widths of each line.
    d_h = (0.35 * np.exp(-(((t - 9500.0) / 3000.0) ** 2)))[:, None]
    w_h = np.maximum(2.0 + 1.5 * (g - 2.0), 1.0)[:, None]
    half = 6.0 * float(w_h.max()) if t.size else 0.0
    for centre in BALMER_LINES_NM:
        sl = _window(centre, half)
        f[:, sl] *= 1.0 - d_h * _gauss(lam[None, sl], centre, w_h)
    # TiO: switches on below 4,100 K (non-polynomial onset, A2.2 (iii)).
    f *= tio_factor(t, m)
    # CaH 630–700 nm: cool dwarfs only (a log g switch), a gravity indicator for M stars.
    d_cah = CAH_MAX_DEPTH * np.clip((4300.0 - t) / 1000.0, 0.0, 1.0) * _sigmoid(2.0 * (g - 4.0))
    f *= 1.0 - d_cah[:, None] * prof["cah"][None, :]
    # Ca II triplet: stronger at low gravity and high metallicity, peaking in K stars.
    d_ca = (
        0.25
        * np.maximum(1.0 + 0.3 * (3.0 - g), 0.0)
        * 10.0 ** (0.4 * m)
        * np.exp(-(((t - 5000.0) / 1500.0) ** 2))
    )
    d_ca = np.clip(d_ca, 0.0, MAX_FEATURE_DEPTH)[:, None]
    sl = _window(857.0, 20.0)
    for line in prof["cat"]:
        f[:, sl] *= 1.0 - d_ca * line[None, sl]
    # Mg b: stronger at high gravity (dwarf/giant discriminant) and with [α/M] (a hidden parameter).
    d_mg = 0.2 * (1.0 + 0.2 * (g - 3.0)) * 10.0 ** (0.5 * (m + a)) * np.exp(-(((t - 5200.0) / 1200.0) ** 2))
    sl = _window(517.0, 18.0)
    f[:, sl] *= 1.0 - np.clip(d_mg, 0.0, MAX_FEATURE_DEPTH)[:, None] * prof["mgb"][None, sl]
    return f


@lru_cache(maxsize=1)
def g_passband() -> np.ndarray:
    """A smooth stand-in for the G passband on the XP grid (spec A2.3 [proposal]): rising through 380 nm,
    falling from ~950 nm (the CCDs' red cut-off), peak-normalised. Read-only."""
    lam = np.asarray(basis.xp_wavelength_grid())
    t = _sigmoid((lam - 380.0) / 15.0) * _sigmoid((950.0 - lam) / 30.0)
    t = t / t.max()
    t.setflags(write=False)
    return t


def g_band_flux(sed: np.ndarray) -> np.ndarray:
    """Photon-weighted flux through :func:`g_passband` (∝ ∫ f λ T_G dλ; G counts photons, f is energy)."""
    lam = np.asarray(basis.xp_wavelength_grid())
    return sed @ (lam * g_passband()) * 2.0


@lru_cache(maxsize=1)
def k_g() -> float:
    """The constant k_G of c = k_G F_G R f / F(f): the solar model gets c₀(BP)/F_G = 0.065 (spec A2.3)."""
    sun = intrinsic_sed(*(np.array([v]) for v in SOLAR_LABELS))
    c0 = basis.project_sed(sun)[0, 0] / g_band_flux(sun)[0]
    return SOLAR_C0_BP_OVER_FG / float(c0)


def normalised_coefficients(sed: np.ndarray) -> np.ndarray:
    """Noiseless G-normalised coefficients c / F_G (n, 110) of observed-frame SEDs (n, 343) (spec A2.3)."""
    return k_g() * basis.project_sed(sed) / g_band_flux(sed)[:, None]


# --------------------------------------------------------------------------------------------------
# Populations (A2.1)
# --------------------------------------------------------------------------------------------------
def _exact_counts(fractions: dict[str, float], n: int) -> dict[str, int]:
    """Largest-remainder rounding: counts summing to n in the given proportions."""
    names = list(fractions)
    p = np.array([fractions[k] for k in names], dtype=float)
    p = p / p.sum()
    raw = p * n
    counts = np.floor(raw).astype(int)
    for i in np.argsort(-(raw - counts), kind="stable")[: n - counts.sum()]:
        counts[i] += 1
    return dict(zip(names, counts.tolist(), strict=True))


def _truncated_exponential(mean: float, upper: float, n: int, rng: np.random.Generator) -> np.ndarray:
    u = rng.random(n)
    return -mean * np.log1p(-u * (1.0 - np.exp(-upper / mean)))


def _metallicity(n: int, rng: np.random.Generator) -> np.ndarray:
    """[M/H] ~ N(−0.15, 0.25) with a 5 % metal-poor tail reaching −2.0 (A2.1)."""
    m = np.clip(rng.normal(-0.15, 0.25, n), -1.0, 0.5)
    tail = rng.random(n) < 0.05
    m[tail] = rng.uniform(-2.0, -0.75, tail.sum())
    return m


def _draw_population(name: str, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Teff, log g, [M/H], A0 of ``n`` stars of population ``name`` (A2.1)."""
    m_h = _metallicity(n, rng)
    a0 = _truncated_exponential(0.6, 5.0, n, rng)
    if name in ("apogee_giant", "giant"):
        # RGB/RC: log g follows Teff along the giant branch with ±0.3 dex scatter.
        teff = rng.uniform(3600.0, 5300.0, n)
        logg = np.clip(2.5 + (teff - 4750.0) / 800.0 + rng.normal(0.0, 0.3, n), 0.5, 3.6)
    elif name == "apogee_dwarf":
        teff = rng.uniform(4000.0, 6500.0, n)
        logg = rng.uniform(4.0, 4.7, n)
    elif name == "dwarf":
        # Gaia-like main sequence down to M dwarfs; M dwarfs are more compact (log g up to 5.1).
        teff = rng.uniform(3000.0, 7500.0, n)
        logg = rng.uniform(4.0, 4.7, n) + 0.4 * np.clip((4000.0 - teff) / 1000.0, 0.0, 1.0)
    elif name == "hot":
        teff = rng.uniform(7500.0, 15000.0, n)
        logg = rng.uniform(3.5, 4.4, n)
    elif name == "white_dwarf":
        teff = rng.uniform(6000.0, 30000.0, n)
        logg = np.full(n, 8.0)
        # Hydrogen atmospheres: no metal features ([M/H] = −3 makes every metal factor ~1e-3 of solar);
        # white dwarfs are nearby, so little dust [proposal].
        m_h = np.full(n, -3.0)
        a0 = _truncated_exponential(0.1, 5.0, n, rng)
    elif name == "supergiant":
        # High-extinction supergiants (the paper's example of what LAMOST/APOGEE labels miss).
        teff = rng.uniform(4000.0, 12000.0, n)
        logg = rng.uniform(0.0, 1.0, n)
        a0 = rng.uniform(3.0, 8.0, n)
    else:
        raise ValueError(f"unknown population {name!r}")
    return {"teff": teff, "logg": logg, "m_h": m_h, "a0": a0}


def _draw_sample(
    fractions: dict[str, float], n: int, g_range: tuple[float, float], rng: np.random.Generator
) -> dict[str, np.ndarray]:
    counts = _exact_counts(fractions, n)
    parts = [_draw_population(name, k, rng) for name, k in counts.items() if k > 0]
    stars = {
        key: np.concatenate([p[key] for p in parts]) if parts else np.zeros(0)
        for key in ("teff", "logg", "m_h", "a0")
    }
    stars["population"] = np.repeat(np.array(list(counts), dtype=object), list(counts.values()))
    perm = rng.permutation(n)
    stars = {k: v[perm] for k, v in stars.items()}
    # Hidden parameters (A2.1): α-enhancement of metal-poor stars, R_V, unresolved companions.
    stars["alpha_m"] = rng.normal(0.3 * np.maximum(0.0, -stars["m_h"]), 0.05)
    stars["alpha_m"][stars["population"] == "white_dwarf"] = 0.0
    stars["r_v"] = rng.normal(3.1, 0.15, n)
    is_dwarf = np.isin(stars["population"], ["dwarf", "apogee_dwarf"])
    binary = is_dwarf & (rng.random(n) < 0.10)
    stars["binary_q"] = np.where(binary, rng.uniform(0.05, 0.5, n), 0.0)
    stars["g_mag"] = rng.uniform(*g_range, n)
    return stars


# --------------------------------------------------------------------------------------------------
# Anomalies (A2.7)
# --------------------------------------------------------------------------------------------------
def _assign_anomalies(stars: dict[str, np.ndarray], fraction: float, rng: np.random.Generator) -> None:
    """Tag round(fraction · n) random stars with a kind drawn uniformly from :data:`ANOMALY_KINDS` and draw
    their parameters; labels of ``wd_md_pair`` and ``extreme_extinction`` stars are changed in place."""
    n = stars["teff"].size
    kind = np.full(n, "none", dtype=object)
    chosen = rng.choice(n, size=int(round(fraction * n)), replace=False)
    kind[chosen] = np.array(ANOMALY_KINDS, dtype=object)[rng.integers(len(ANOMALY_KINDS), size=chosen.size)]
    stars["anomaly_kind"] = kind
    # Per-star anomaly parameters (zero where unused).
    stars["cemp_depth"] = np.where(kind == "cemp", rng.uniform(0.3, 0.6, n), 0.0)
    stars["emission_ew"] = np.where(kind == "emission", rng.uniform(-3.0, -0.5, n), 0.0)
    stars["bp_scale"] = np.where(kind == "bp_rp_mismatch", rng.uniform(0.8, 0.9, n), 1.0)
    # Extreme extinction: outside the labelled support (crossmatch A0 ≤ 5).
    ext = kind == "extreme_extinction"
    stars["a0"] = np.where(ext, rng.uniform(8.0, 12.0, n), stars["a0"])
    # Companion slot: a cooler main-sequence star for binaries (Teff₂ = Teff q^0.15: on the lower main
    # sequence L ∝ Teff^6.7, so a G-flux ratio q means Teff₂/Teff ≈ q^(1/6.7); log g₂ = 4.6, A2.2), or the
    # hot white dwarf of a WD + M dwarf pair (the star itself becomes the M dwarf; truth labels are its).
    pair = kind == "wd_md_pair"
    stars["teff"] = np.where(pair, rng.uniform(3000.0, 3600.0, n), stars["teff"])
    stars["logg"] = np.where(pair, 4.9, stars["logg"])
    stars["binary_q"] = np.where(pair, 0.0, stars["binary_q"])
    stars["comp_teff"] = np.where(
        pair, rng.uniform(10000.0, 30000.0, n), np.maximum(stars["teff"] * stars["binary_q"] ** 0.15, 2800.0)
    )
    stars["comp_logg"] = np.where(pair, 8.0, 4.6)
    # A main-sequence companion shares the primary's composition; a white dwarf's hydrogen atmosphere has no
    # metal features (as for the white_dwarf population).
    stars["comp_m_h"] = np.where(pair, -3.0, stars["m_h"])
    stars["comp_alpha_m"] = np.where(pair, 0.0, stars["alpha_m"])
    stars["comp_ratio"] = np.where(pair, rng.uniform(0.3, 2.0, n), stars["binary_q"])


def _cemp_profile(lam: np.ndarray) -> np.ndarray:
    """Relative CEMP band profile: CH G band (430 nm) and C₂ Swan bandheads degraded to the violet."""
    prof = _gauss(lam, 430.0, 3.0)
    for head in (473.7, 516.5, 563.5):
        prof = prof + _sigmoid((head - lam) / 1.0) * np.exp(-np.maximum(head - lam, 0.0) / 15.0)
    return np.minimum(prof, 1.0)


def observed_sed(stars: dict[str, np.ndarray], idx: np.ndarray) -> np.ndarray:
    """Observed-frame SED (len(idx), 343) of stars ``idx``: primary (+ anomaly features) + companion,
    reddened (spec A2.2 and A2.7)."""
    lam = np.asarray(basis.xp_wavelength_grid())[None, :]
    keys = (
        "teff",
        "logg",
        "m_h",
        "alpha_m",
        "comp_teff",
        "comp_logg",
        "comp_m_h",
        "comp_alpha_m",
        "comp_ratio",
    )
    p = {k: stars[k][idx] for k in keys}
    f = intrinsic_sed(p["teff"], p["logg"], p["m_h"], p["alpha_m"])
    depth = stars["cemp_depth"][idx]
    if np.any(depth > 0):
        f *= 1.0 - depth[:, None] * _cemp_profile(lam)
    ew = stars["emission_ew"][idx]
    if np.any(ew != 0):
        # Hα emission of equivalent width EW < 0 (nm): a Gaussian (σ 1 nm) carrying −EW × continuum.
        line = _gauss(lam, 656.28, 1.0) / (1.0 * np.sqrt(2.0 * np.pi))
        cont = f[:, np.argmin(np.abs(lam[0] - 656.0))][:, None]
        f += -ew[:, None] * cont * line
    has_comp = p["comp_ratio"] > 0
    if np.any(has_comp):
        j = np.flatnonzero(has_comp)
        comp = intrinsic_sed(p["comp_teff"][j], p["comp_logg"][j], p["comp_m_h"][j], p["comp_alpha_m"][j])
        scale = p["comp_ratio"][j] * g_band_flux(f[j]) / g_band_flux(comp)
        f[j] += scale[:, None] * comp
    a_lam = stars["a0"][idx][:, None] * extinction_curve(stars["r_v"][idx])
    return f * 10.0 ** (-0.4 * a_lam)


def _noiseless_coefficients(stars: dict[str, np.ndarray]) -> np.ndarray:
    n = stars["teff"].size
    out = np.empty((n, N_COEF))
    for start in range(0, n, CHUNK):
        idx = np.arange(start, min(start + CHUNK, n))
        out[idx] = normalised_coefficients(observed_sed(stars, idx))
    return out


# --------------------------------------------------------------------------------------------------
# Noise (A2.4) and correlations
# --------------------------------------------------------------------------------------------------
def noise_profile() -> np.ndarray:
    """p_k (55): 1 for k < 40, log-linear to 0.02 at k = 54 (A2.4)."""
    k = np.arange(N_BAND)
    return np.where(k < P_KNEE, 1.0, P_LAST ** ((k - P_KNEE) / (N_BAND - 1 - P_KNEE)))


def relative_error(g_mag: np.ndarray) -> np.ndarray:
    """r(G) = √(r_floor² + (r_ph 10^(0.2 (G − 15)))²), at least 1e-3 for G < 8 (A2.4)."""
    g = np.asarray(g_mag, dtype=float)
    r = np.sqrt(R_FLOOR**2 + (R_PHOT * 10.0 ** (0.2 * (g - 15.0))) ** 2)
    return np.where(g < G_BRIGHT, np.maximum(r, R_BRIGHT_FLOOR), r)


def pack_correlation(rho: np.ndarray) -> np.ndarray:
    """1485 float32 values of a 55 × 55 correlation matrix in GaiaXPy's packing (see :data:`_TRIL`)."""
    return np.asarray(rho)[_TRIL].astype(np.float32)


def unpack_correlation(packed: np.ndarray) -> np.ndarray:
    """Inverse of :func:`pack_correlation` (float64, unit diagonal) — what GaiaXPy reconstructs."""
    rho = np.eye(N_BAND)
    rho[_TRIL] = np.asarray(packed, dtype=np.float64)
    return rho + np.tril(rho, -1).T


def _parametric_bank(rng: np.random.Generator, size: int) -> np.ndarray:
    out = np.empty((size, N_BAND, N_BAND))
    for i in range(size):
        loading = np.exp(B_ROW_SIGMA * rng.standard_normal(N_BAND))
        b = B_SCALE * loading[:, None] * rng.standard_normal((N_BAND, B_RANK))
        c = b @ b.T + np.eye(N_BAND)
        d = np.sqrt(np.diag(c))
        out[i] = c / np.outer(d, d)
    return out


def _parse_array_cell(cell: Any) -> np.ndarray | None:
    """An archive CSV array cell '(v, v, …)' (or '[…]') → float array; None for an empty/missing cell."""
    if not isinstance(cell, str):
        return None
    body = cell.strip().strip("()[]").strip()
    if not body:
        return None
    return np.array([float(v) for v in body.split(",")])


def _shared_bank(paths: Sequence[str | Path]) -> dict[str, np.ndarray]:
    """Real DR3 correlation matrices per band from archive XP_CONTINUOUS CSV files (A2.4 ``shared``)."""
    mats: dict[str, list[np.ndarray]] = {"bp": [], "rp": []}
    for path in paths:
        table = pd.read_csv(path)
        for band in ("bp", "rp"):
            col = f"{band}_coefficient_correlations"
            if col not in table:
                continue
            for cell in table[col]:
                v = _parse_array_cell(cell)
                if v is None or v.size != N_CORRELATIONS or not np.all(np.isfinite(v)):
                    continue
                rho = unpack_correlation(v.astype(np.float32))
                if np.linalg.eigvalsh(rho)[0] > 0:
                    mats[band].append(rho)
    for band, m in mats.items():
        if not m:
            raise ValueError(f"no usable {band.upper()} correlation matrix in {list(map(str, paths))}")
    return {band: np.stack(m) for band, m in mats.items()}


def _correlation_bank(
    correlations: str, correlation_files: Sequence[str | Path] | None, rng: np.random.Generator
) -> dict[str, tuple[list[np.ndarray], np.ndarray]]:
    """Per band: (packed read-only float32 arrays, Cholesky factors of the matrices they unpack to)."""
    if correlations == "parametric":
        mats = {band: _parametric_bank(rng, N_CORRELATION_BANK) for band in ("bp", "rp")}
    elif correlations == "shared":
        if not correlation_files:
            raise ValueError('correlations="shared" needs correlation_files (archive XP_CONTINUOUS CSVs)')
        mats = _shared_bank(correlation_files)
    else:
        raise ValueError(f'correlations must be "parametric" or "shared", got {correlations!r}')
    out = {}
    for band, m in mats.items():
        packed = [pack_correlation(rho) for rho in m]
        for arr in packed:
            arr.setflags(write=False)
        # The noise uses exactly the matrix the table reports (float32-rounded), so ρ is exact.
        chol = np.stack([np.linalg.cholesky(unpack_correlation(p)) for p in packed])
        out[band] = (packed, chol)
    return out


def _correlated_normals(chol: np.ndarray, which: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(n, 55) draws, row i ~ N(0, L_w L_wᵀ) with w = which[i]: one matmul per bank matrix."""
    z = rng.standard_normal((which.size, N_BAND))
    out = np.empty_like(z)
    for j in range(chol.shape[0]):
        rows = which == j
        out[rows] = z[rows] @ chol[j].T
    return out


# --------------------------------------------------------------------------------------------------
# Labels (A2.6)
# --------------------------------------------------------------------------------------------------
def _apogee_labels(stars: dict[str, np.ndarray], rng: np.random.Generator) -> tuple[dict, np.ndarray]:
    """APOGEE DR17-named catalog labels and the failure region of each star (A2.6)."""
    n = stars["teff"].size
    teff, logg, m_h = stars["teff"], stars["logg"], stars["m_h"]
    cool = teff < 4000.0
    low_g = logg < 1.5
    # Cool stars: Teff biased hot by 100 K per 500 K below 4,000 K, log g precision 0.25 dex.
    sig_logg = np.where(cool, 0.25, LOGG_ERR)
    # Low gravity: log g biased +0.25, [M/H] precision 0.10 dex. Both apply to cool low-gravity stars.
    sig_mh = np.where(low_g, 0.10, M_H_ERR)
    out_teff = teff + np.where(cool, 100.0 * (4000.0 - teff) / 500.0, 0.0) + rng.normal(0.0, TEFF_ERR, n)
    out_logg = logg + np.where(low_g, 0.25, 0.0) + sig_logg * rng.standard_normal(n)
    out_mh = m_h + sig_mh * rng.standard_normal(n)
    region = np.where(cool, "cool", np.where(low_g, "low_logg", "nominal")).astype(object)
    # Catastrophic failures: the labels of another random star (a mismatched spectrum).
    cat = rng.random(n) < CATASTROPHIC_FRACTION
    idx = np.flatnonzero(cat)
    if idx.size and n > 1:
        donor = (idx + rng.integers(1, n, idx.size)) % n  # never the star itself
        out_teff[idx], out_logg[idx], out_mh[idx] = out_teff[donor], out_logg[donor], out_mh[donor]
    region[cat] = "catastrophic"
    flag = np.where(cat & (rng.random(n) < 0.5), ASPCAPFLAG_STAR_BAD, 0).astype(np.int64)
    # SFD E(B−V): the full line-of-sight column, ≥ the star's own E(B−V) = A0/R_V (the star sits in front
    # of a random fraction of the dust), with 10 % lognormal map error [proposal].
    sfd = stars["a0"] / stars["r_v"] * rng.uniform(1.0, 1.5, n) * np.exp(rng.normal(0.0, 0.1, n))
    labels = {
        "TEFF": out_teff,
        "TEFF_ERR": np.full(n, TEFF_ERR),
        "LOGG": out_logg,
        "LOGG_ERR": np.full(n, LOGG_ERR),
        "M_H": out_mh,
        "M_H_ERR": np.full(n, M_H_ERR),
        "SFD_EBV": sfd,
        "STARFLAG": np.zeros(n, dtype=np.int64),
        "ASPCAPFLAG": flag,
    }
    return labels, region


# --------------------------------------------------------------------------------------------------
# The survey
# --------------------------------------------------------------------------------------------------
def eta_of_labels(teff: np.ndarray, logg: np.ndarray) -> np.ndarray:
    """η(ℓ) = 0.02 [1 + 4 sigmoid((4000 − Teff)/150)] [1 + 2·𝟙(log g < 1.5)] (A2.5)."""
    teff = np.asarray(teff, dtype=float)
    logg = np.asarray(logg, dtype=float)
    return ETA0 * (1.0 + 4.0 * _sigmoid((4000.0 - teff) / 150.0)) * (1.0 + 2.0 * (logg < 1.5))


def _rows(a: np.ndarray) -> list[np.ndarray]:
    """A 2-D array as a list of row views (a pyarrow-writable list column)."""
    return list(a)


def _sample_frames(
    name: str,
    stars: dict[str, np.ndarray],
    x_true: np.ndarray,
    s_pop: np.ndarray,
    source_id: np.ndarray,
    bank: dict[str, tuple[list[np.ndarray], np.ndarray]],
    rng: np.random.Generator,
) -> dict[str, pd.DataFrame]:
    n = x_true.shape[0]
    g_flux = 10.0 ** (-0.4 * (stars["g_mag"] - G_ZERO_POINT))
    eta = eta_of_labels(stars["teff"], stars["logg"])
    s_true = eta[:, None] * s_pop[None, :]
    jitter = s_true * rng.standard_normal((n, N_COEF))
    astro = x_true + jitter
    astro[:, :N_BAND] *= stars["bp_scale"][:, None]  # bp_rp_mismatch: a BP calibration fault

    # Noise (A2.4), absolute units (e⁻/s). c₀ of the noiseless spectrum sets the scale; a positive floor
    # (1e-4 F_G) guards a band that extinction has nearly emptied.
    rel = relative_error(stars["g_mag"])
    prof = noise_profile()
    observed: dict[str, Any] = {"source_id": source_id}
    for band, sl in (("bp", slice(0, N_BAND)), ("rp", slice(N_BAND, N_COEF))):
        c0 = np.maximum(x_true[:, sl][:, 0], 1e-4) * g_flux
        sigma = (c0 * rel)[:, None] * prof[None, :]
        packed, chol = bank[band]
        which = rng.integers(len(packed), size=n)
        noise = sigma * _correlated_normals(chol, which, rng)
        coeffs = g_flux[:, None] * astro[:, sl] + noise
        observed[f"{band}_n_parameters"] = np.full(n, N_BAND, dtype=np.int16)
        observed[f"{band}_standard_deviation"] = np.ones(n, dtype=np.float32)
        observed[f"{band}_coefficients"] = _rows(coeffs)
        observed[f"{band}_coefficient_errors"] = _rows(sigma)
        observed[f"{band}_coefficient_correlations"] = [packed[j] for j in which]
    observed["phot_g_mean_flux"] = g_flux
    observed["phot_g_mean_mag"] = stars["g_mag"].astype(np.float32)
    obs = pd.DataFrame({k: observed[k] for k in OBSERVED_COLUMNS})

    truth: dict[str, Any] = {
        "source_id": source_id,
        **{k: stars[k] for k in ("teff", "logg", "m_h", "a0", "alpha_m", "r_v", "binary_q")},
        "population": stars["population"].astype(str),
        "anomaly_kind": stars["anomaly_kind"].astype(str),
    }
    if name == "crossmatch":
        labels, region = _apogee_labels(stars, rng)
        for col, dtype in LABEL_COLUMNS.items():
            obs[col] = np.asarray(labels[col]).astype(dtype)
        truth["label_region"] = region.astype(str)
    truth.update(
        {
            "bp_scale": stars["bp_scale"],
            "g_mag": stars["g_mag"],
            "g_flux": g_flux,
            "eta": eta,
            "s_true": _rows(s_true),
            "coefficients": _rows(x_true),
            "jitter": _rows(jitter),
        }
    )
    truth_df = pd.DataFrame({k: truth[k] for k in TRUTH_COLUMNS if k in truth})
    # Archive order: sorted by source_id.
    order = np.argsort(source_id, kind="stable")
    return {
        "observed": obs.iloc[order].reset_index(drop=True),
        "truth": truth_df.iloc[order].reset_index(drop=True),
    }


def _source_ids(n: int, rng: np.random.Generator, taken: np.ndarray | None = None) -> np.ndarray:
    """Gaia-style ids (level-12 nested HEALPix × 2³⁵ + running number) of positions uniform on the sky
    (equal-area pixels: a uniform pixel index is a uniform position); running numbers continue after
    ``taken`` so ids are unique across samples."""
    hp12 = rng.integers(0, healpix.npix(healpix.GAIA_SOURCE_ID_LEVEL), size=n, dtype=np.int64)
    prior = np.zeros(0, dtype=np.int64) if taken is None else healpix.source_id_to_healpix(taken)
    run = healpix.running_numbers(np.concatenate([prior, hp12]))[prior.size :]
    return healpix.make_source_ids(hp12, run)


def simulate_xp_survey(
    n_crossmatch: int,
    n_unlabelled: int,
    *,
    seed: int,
    anomaly_fraction: float = 0.015,
    crossmatch_anomaly_fraction: float = 0.005,
    correlations: str = "parametric",
    correlation_files: Sequence[str | Path] | None = None,
) -> dict[str, Any]:
    """Simulate the crossmatch and unlabelled XP samples with known truth (spec A2).

    Returns ``{"crossmatch": {"observed": df, "truth": df}, "unlabelled": {...}, "meta": {...}}``. Observed
    tables have :data:`OBSERVED_COLUMNS` (archive names; coefficients and errors in e⁻/s as 55-float arrays,
    correlations as 1485 float32 in GaiaXPy's packing) and, for the crossmatch, :data:`LABEL_COLUMNS`
    (APOGEE DR17 names); truth tables have :data:`TRUTH_COLUMNS` (``label_region`` only for the
    crossmatch), with ``coefficients`` the noiseless G-normalised coefficients, ``jitter`` the injected
    intrinsic-scatter realisation and ``s_true`` = η s_pop its standard deviation (G-normalised units).
    Both sorted by ``source_id``. ``meta``: ``s_pop`` (110), ``k_g``, the ridge λ, the correlation source and
    bank size. ``correlation_files``: archive XP_CONTINUOUS CSVs for ``correlations="shared"``.
    """
    for label, v in (("n_crossmatch", n_crossmatch), ("n_unlabelled", n_unlabelled)):
        if int(v) < 0:
            raise ValueError(f"{label} must be ≥ 0, got {v}")
    if n_crossmatch < 2:
        raise ValueError("n_crossmatch must be ≥ 2: s_pop is the crossmatch's standard deviation")
    for label, v in (
        ("anomaly_fraction", anomaly_fraction),
        ("crossmatch_anomaly_fraction", crossmatch_anomaly_fraction),
    ):
        if not 0.0 <= v <= 1.0:
            raise ValueError(f"{label} must be in [0, 1], got {v}")
    ss_bank, ss_x, ss_u = np.random.SeedSequence(seed).spawn(3)
    bank = _correlation_bank(correlations, correlation_files, np.random.default_rng(ss_bank))
    rng_x, rng_u = np.random.default_rng(ss_x), np.random.default_rng(ss_u)

    stars_x = _draw_sample(CROSSMATCH_POPULATIONS, int(n_crossmatch), G_RANGE["crossmatch"], rng_x)
    _assign_anomalies(stars_x, crossmatch_anomaly_fraction, rng_x)
    stars_u = _draw_sample(UNLABELLED_POPULATIONS, int(n_unlabelled), G_RANGE["unlabelled"], rng_u)
    _assign_anomalies(stars_u, anomaly_fraction, rng_u)
    x_x = _noiseless_coefficients(stars_x)
    x_u = _noiseless_coefficients(stars_u)
    # s_pop,k (A2.5): population std of the crossmatch's noiseless G-normalised coefficients, over its
    # normal stars so the few injected anomalies do not set the scatter scale.
    normal = stars_x["anomaly_kind"] == "none"
    s_pop = x_x[normal if normal.sum() >= 2 else slice(None)].std(axis=0, ddof=1)

    sid_x = _source_ids(int(n_crossmatch), rng_x)
    sid_u = _source_ids(int(n_unlabelled), rng_u, taken=sid_x)
    out: dict[str, Any] = {
        "crossmatch": _sample_frames("crossmatch", stars_x, x_x, s_pop, sid_x, bank, rng_x),
        "unlabelled": _sample_frames("unlabelled", stars_u, x_u, s_pop, sid_u, bank, rng_u),
    }
    out["meta"] = {
        "seed": int(seed),
        "s_pop": s_pop,
        "k_g": k_g(),
        "ridge_lambda": basis.DEFAULT_RIDGE_LAMBDA,
        "correlations": correlations,
        "n_correlation_matrices": {band: len(bank[band][0]) for band in ("bp", "rp")},
        "anomaly_fraction": {"crossmatch": crossmatch_anomaly_fraction, "unlabelled": anomaly_fraction},
    }
    return out
