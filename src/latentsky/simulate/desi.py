"""Simulated DESI spectra with known truth: BGS-like galaxies, MWS-like stars and injected BGS outliers
(paper 003), written as real DESI coadd + Redrock FITS files so that the workflow reads them with the same
reader as real data (:func:`latentsky.io.desi.read_desi_coadd`).

Recipe (every number is a physical anchor, not a fit):

* **Galaxies** come from one of two populations (``population``): ``templates``, the default of the
  workflow — real stellar-population continua with BPT-consistent lines and the DESI instrument's line
  spread, telluric residuals and calibration wiggles (:mod:`latentsky.simulate.desi_galaxies`) — or
  ``analytic``, this module's recipe, fast and kept for unit tests: a restframe spectrum is a mix of an
  old stellar population — a 4,500 K blackbody whose flux blueward of 4,000 Å drops by a break D
  (0.35–0.55; the D4000 of red galaxies) with Ca II H & K (3,934/3,969 Å), the G band (4,304 Å), Mg b
  (5,175 Å), Na D (5,893 Å) and weak Balmer absorption — and a young population (a 12,000 K blackbody
  with strong Balmer absorption), mixed by the young fraction f.
  Star-forming galaxies (f > 0.3) carry nebular emission: Hα with [N II] 6,584/Hα = 0.2–0.5 (6,548 at a
  third of 6,584, atomic physics), Hβ at Hα/2.86 (case B), [O III] 5,007 with 4,959 at 1/2.98 of it,
  [O II] 3,727, [S II] 6,716/6,731. Lines are Gaussians in velocity with the galaxy's dispersion σ
  (50–250 km/s; absorption lines broadened by the same σ). The old population's temperature, 4,000–5,200 K,
  spreads the red galaxies' colours as age and metallicity do. Dust attenuates both through the Calzetti
  et al. (2000) starburst curve (R_V = 4.05, ``extinction.calzetti00``): the nebular lines by
  E_gas(B−V) ∈ [0, 0.4] — so the observed Balmer decrement Hα/Hβ runs from 2.86 to ≈ 4.6, as in SDSS
  star-forming galaxies — and the stellar continuum by E_s(B−V) = 0.44 E_gas(B−V) (Calzetti 2000's
  stars-to-gas ratio). Redshifts follow the BGS n(z) (a Γ-like distribution peaking near 0.2), truncated
  at 0.8.
* **Stars.** Blackbodies of T_eff 3,000–10,000 K with Balmer lines strongest near 9,500 K (A stars),
  Ca II H & K, Mg b and Na D strengthening towards cool stars, and for M dwarfs (T_eff < 4,000 K) the TiO
  (bandheads 4,954, 5,167, 5,448, 6,158, 7,054 Å) and VO (7,334, 7,851 Å) bands as broad depressions that
  deepen as T_eff falls. Radial velocities ±300 km/s.
* **Outliers** (a fraction of the BGS sample, each with a truth label): ``star`` (a star in the BGS
  sample, Redrock class GALAXY at z ≈ 0), ``double_peaked`` (every emission line split into two components
  200–600 km/s apart), ``broad_line_qso`` (power-law continuum, broad Hα/Hβ/Mg II of FWHM 3,000–8,000 km/s
  plus the narrow lines), ``bal_qso`` (the same with a blueshifted broad Mg II absorption trough),
  ``blend`` (two galaxies at different redshifts in one fibre; Redrock gives the brighter one's z),
  ``calibration_fault`` (one arm scaled by 0.5–0.8 or 1.3–1.8, or missing: flux and weight 0, as a DESI
  coadd writes it). With the template population, double-peaked emitters have the strengths of real ones
  ([O III] EW 10–100 Å, components 300–800 km/s apart).
* **Observation.** Fluxes scaled to r-band-like magnitudes 16–19.5, on the DESI arms B 3,600–5,800 Å,
  R 5,760–7,620 Å, Z 7,520–9,824 Å (0.8 Å pixels, the real coadd's grid); noise from a sky spectrum
  (continuum plus the sky lines ``spender`` lists, scaled by their intensity) and the object's Poisson term,
  at the depth of bright-time BGS exposures: continuum S/N ≈ 2.5 per 0.8 Å pixel at r = 19 and a sample
  median ≈ 5 (the real BGS coadd in tests/data/desi_coadd: 5.1);
  sky-subtraction residuals at the sky lines (a few per cent of the line); a few masked pixels per arm.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.ndimage import gaussian_filter1d

from latentsky.simulate.desi_galaxies import (
    DESI_LSF_FWHM,
    TEMPLATE_LINES,
    calibration_wiggle,
    draw_template_galaxy,
    telluric_transmission,
    template_galaxy_restframe,
)

__all__ = [
    "ARM_RANGES",
    "OUTLIER_TYPES",
    "EMISSION_LINES",
    "DesiSimulation",
    "CALZETTI_RV",
    "STARS_TO_GAS_EBV",
    "galaxy_restframe",
    "calzetti_transmission",
    "star_spectrum",
    "simulate_desi",
    "write_desi_files",
    "injected_delta_chi2",
    "ORACLE_BIN_FACTORS",
    "POPULATIONS",
    "GALAXY_MAKERS",
    "restframe_galaxies",
    "to_observed_frame",
]

C_KMS = 299_792.458
#: DESI arm coverage (Å), as in the real coadd's B/R/Z_WAVELENGTH.
ARM_RANGES = {"b": (3600.0, 5800.0), "r": (5760.0, 7620.0), "z": (7520.0, 9824.0)}
PIXEL = 0.8
#: Per-pixel variance = SKY_VARIANCE · sky + OBJECT_VARIANCE · object flux (10⁻¹⁷ erg/s/cm²/Å units):
#: the depth of bright-time BGS coadds (module docstring).
SKY_VARIANCE = 0.8
OBJECT_VARIANCE = 0.3
#: Galaxy populations (:func:`simulate_desi`'s ``population``).
POPULATIONS = ("analytic", "templates")
#: Outlier kinds injected into the BGS sample.
OUTLIER_TYPES = ("star", "double_peaked", "broad_line_qso", "bal_qso", "blend", "calibration_fault")
#: Calzetti et al. (2000): total-to-selective attenuation of starbursts, and the stellar continuum's colour
#: excess as a fraction of the nebular lines' (E_s(B−V) = 0.44 E_gas(B−V)).
CALZETTI_RV = 4.05
STARS_TO_GAS_EBV = 0.44
#: Nebular lines (restframe vacuum Å).
EMISSION_LINES = {
    "OII_3727": 3728.5,
    "Hbeta": 4862.7,
    "OIII_4959": 4960.3,
    "OIII_5007": 5008.2,
    "NII_6548": 6549.9,
    "Halpha": 6564.6,
    "NII_6584": 6585.3,
    "SII_6716": 6718.3,
    "SII_6731": 6732.7,
}
#: Stellar absorption lines of the old population (Å) and their relative depths.
_OLD_ABSORPTION = {
    3934.8: 0.5,
    3969.6: 0.45,
    4305.0: 0.15,
    5176.7: 0.15,
    5895.6: 0.12,
    4862.7: 0.05,
    6564.6: 0.05,
}
_BALMER = (6564.6, 4862.7, 4341.7, 4102.9, 3971.2, 3890.2)
_TIO_BANDS = (4954.0, 5167.0, 5448.0, 6158.0, 7054.0)
_VO_BANDS = (7334.0, 7851.0)


def _blackbody(wave: np.ndarray, teff: float) -> np.ndarray:
    """B_λ(T) up to a constant, normalised to 1 at 5,500 Å."""
    x = 1.438777e8 / (wave * teff)
    x0 = 1.438777e8 / (5500.0 * teff)
    return (5500.0 / wave) ** 5 * np.expm1(x0) / np.expm1(x)


#: Gaussian lines are evaluated within this many σ of their centre (beyond it exp(−½ 8²) ≈ 1e−14): most of the
#: simulator's time went to evaluating every line over the whole 20,500-pixel restframe grid.
LINE_HALF_WIDTH_SIGMA = 8.0


def _gauss_lines(wave: np.ndarray, centres: np.ndarray, sigma_kms: float, amps: np.ndarray) -> np.ndarray:
    """Σ amps · exp(−½ ((λ − λ_c)/σ_λ)²) with σ_λ = λ_c σ/c, on an ascending ``wave`` grid."""
    out = np.zeros(len(wave))
    centres, amps = np.atleast_1d(centres), np.broadcast_to(amps, np.shape(np.atleast_1d(centres)))
    for c, a in zip(centres, amps, strict=True):
        sig = c * sigma_kms / C_KMS
        lo, hi = np.searchsorted(wave, (c - LINE_HALF_WIDTH_SIGMA * sig, c + LINE_HALF_WIDTH_SIGMA * sig))
        out[lo:hi] += a * np.exp(-0.5 * ((wave[lo:hi] - c) / sig) ** 2)
    return out


def galaxy_restframe(
    wave: np.ndarray,
    young_fraction: float,
    break_strength: float,
    sigma_kms: float,
    line_flux: Mapping[str, float],
    split_kms: float = 0.0,
    ebv_gas: float = 0.0,
    old_teff: float = 4500.0,
) -> np.ndarray:
    """Restframe galaxy spectrum (normalised to ~1 at 5,500 Å) on ``wave`` (Å); see the module docstring.

    ``line_flux`` maps :data:`EMISSION_LINES` names to intrinsic (dust-free) amplitudes relative to the
    continuum at 5,500 Å; ``split_kms`` > 0 splits every emission line into two equal components ± split/2
    (double-peaked); ``ebv_gas`` is the nebular E(B−V) of the Calzetti attenuation (the continuum gets
    0.44 of it); ``old_teff`` the old population's temperature (K).
    """
    # The 4,000 Å break: blueward flux lower by break_strength, smoothed over ~50 Å.
    blue = 0.5 * (1.0 - np.tanh((wave - 4000.0) / 25.0))
    old = _blackbody(wave, old_teff) * (1.0 - break_strength * blue)
    young = _blackbody(wave, 12000.0)
    cont = (1 - young_fraction) * old + young_fraction * young
    depths = {c: d * (1 - young_fraction) for c, d in _OLD_ABSORPTION.items()}
    for c in _BALMER:
        depths[c] = depths.get(c, 0.0) + 0.25 * young_fraction
    absorption = _gauss_lines(
        wave, np.array(list(depths)), max(sigma_kms, 60.0) * 2, np.array(list(depths.values()))
    )
    stars = cont * (1.0 - np.clip(absorption, 0.0, 0.9))
    nebular = np.zeros_like(wave)
    names = [n for n in line_flux if line_flux[n] > 0]
    if names:
        centres = np.array([EMISSION_LINES[n] for n in names])
        amps = np.array([line_flux[n] for n in names])
        if split_kms > 0:
            shift = 0.5 * split_kms / C_KMS
            nebular = _gauss_lines(wave, centres * (1 - shift), sigma_kms, amps / 2)
            nebular = nebular + _gauss_lines(wave, centres * (1 + shift), sigma_kms, amps / 2)
        else:
            nebular = _gauss_lines(wave, centres, sigma_kms, amps)
    # Attenuation relative to 5,500 Å, so that the dusty spectrum keeps ~1 there (the scale is set later).
    return stars * calzetti_transmission(wave, STARS_TO_GAS_EBV * ebv_gas) + nebular * calzetti_transmission(
        wave, ebv_gas
    )


def calzetti_transmission(wave: np.ndarray, ebv: float) -> np.ndarray:
    """10^(−0.4 (A_λ − A_5500)) for the Calzetti et al. (2000) curve (R_V = 4.05) at colour excess ``ebv``."""
    import extinction

    if ebv <= 0:
        return np.ones_like(wave, dtype=np.float64)
    grid = np.append(np.asarray(wave, dtype=np.float64), 5500.0)
    a = extinction.calzetti00(grid, CALZETTI_RV * ebv, CALZETTI_RV)
    return 10 ** (-0.4 * (a[:-1] - a[-1]))


def star_spectrum(wave: np.ndarray, teff: float) -> np.ndarray:
    """Stellar spectrum (restframe, ~1 at 5,500 Å) with Balmer, metal and — below 4,000 K — TiO/VO bands."""
    spec = _blackbody(wave, teff)
    balmer = 0.6 * np.exp(-0.5 * ((teff - 9500.0) / 2500.0) ** 2)
    metals = np.clip((7000.0 - teff) / 3000.0, 0.0, 1.0) * 0.6
    lines = {c: balmer for c in _BALMER}
    for c in (3934.8, 3969.6, 5176.7, 5895.6, 4305.0):
        lines[c] = lines.get(c, 0.0) + metals
    width = 150.0 if teff > 7500 else 60.0  # pressure-broadened Balmer lines of hot stars
    absorption = _gauss_lines(wave, np.array(list(lines)), width * 2, np.array(list(lines.values())))
    spec = spec * (1.0 - np.clip(absorption, 0.0, 0.9))
    if teff < 4000.0:
        depth = np.clip((4000.0 - teff) / 1000.0, 0.0, 1.0)
        band = np.zeros_like(wave)
        for head in _TIO_BANDS + _VO_BANDS:
            # A molecular band: sharp head, absorption decaying redward over ~150 Å.
            band = np.maximum(band, np.where(wave >= head, np.exp(-(wave - head) / 150.0), 0.0))
        spec = spec * (1.0 - 0.7 * depth * band)
    return spec


def _arm_grids() -> dict[str, np.ndarray]:
    return {arm: np.round(np.arange(lo, hi + PIXEL / 2, PIXEL), 1) for arm, (lo, hi) in ARM_RANGES.items()}


def _sky(wave: np.ndarray) -> np.ndarray:
    """Sky flux (10⁻¹⁷ erg/s/cm²/Å per fibre): continuum rising to the red plus spender's sky-line list."""
    from spender import instrument

    path = Path(instrument.__file__).parent / "data" / "sky-lines.txt"
    lines = np.genfromtxt(
        path, names=["wavelength", "intensity", "name", "status"], dtype=None, encoding=None
    )
    lam = lines["wavelength"] * 10.0
    keep = (lam > wave.min() - 10) & (lam < wave.max() + 10)
    sky = 0.5 + 0.6 * (wave / 9000.0) ** 2
    sky = sky + _gauss_lines(wave, lam[keep], 40.0, 0.02 * lines["intensity"][keep])
    return sky


@dataclass
class DesiSimulation:
    """Simulated targets: ``targets`` (one row per spectrum with the truth) and arm arrays per target."""

    targets: pd.DataFrame
    wave: dict[str, np.ndarray]
    flux: dict[str, np.ndarray]
    ivar: dict[str, np.ndarray]
    mask: dict[str, np.ndarray]


def _bgs_redshifts(rng: np.random.Generator, n: int) -> np.ndarray:
    z = rng.gamma(4.0, 0.055, size=4 * n)
    z = z[(z > 0.01) & (z < 0.8)]
    return z[:n]


def _analytic_galaxy(rng: np.random.Generator, rest: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
    """One galaxy of the analytic recipe (module docstring): restframe spectrum on ``rest`` and its truth."""
    f = float(rng.beta(1.2, 1.8))
    sigma = float(rng.uniform(50, 250))
    ha = 0.0 if f < 0.3 else float(rng.uniform(1.0, 6.0)) * f
    lines = {  # intrinsic amplitudes; dust is applied by galaxy_restframe
        "Halpha": ha,
        "NII_6584": ha * float(rng.uniform(0.2, 0.5)),
        "Hbeta": ha / 2.86,
        "OIII_5007": ha * float(rng.uniform(0.1, 1.0)),
        "OII_3727": ha * float(rng.uniform(0.3, 1.0)),
        "SII_6716": ha * 0.12,
        "SII_6731": ha * 0.09,
    }
    lines["NII_6548"] = lines["NII_6584"] / 3.05
    lines["OIII_4959"] = lines["OIII_5007"] / 2.98
    info = {
        "young_fraction": f,
        "sigma_kms": sigma,
        "break_strength": float(rng.uniform(0.35, 0.55)),
        "old_teff": float(rng.uniform(4000.0, 5200.0)),
        "ebv_gas": float(rng.uniform(0.0, 0.4)),
    }
    info["ebv_stars"] = STARS_TO_GAS_EBV * info["ebv_gas"]
    spec = galaxy_restframe(
        rest, f, info["break_strength"], sigma, lines, ebv_gas=info["ebv_gas"], old_teff=info["old_teff"]
    )
    return spec, {**info, **{f"line_{k}": v for k, v in lines.items()}}


def _template_galaxy(rng: np.random.Generator, rest: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
    """One galaxy of the template population (:mod:`latentsky.simulate.desi_galaxies`)."""
    params = draw_template_galaxy(rng)
    spec, d4000 = template_galaxy_restframe(rest, params)
    return spec, {**params, "d4000": d4000}


#: Per population: (rng, restframe grid) → (noiseless restframe spectrum ≈ 1 at 5,500 Å, truth).
GALAXY_MAKERS = {"analytic": _analytic_galaxy, "templates": _template_galaxy}


def restframe_galaxies(population: str, n: int, seed: int, wave: np.ndarray) -> np.ndarray:
    """(n, len(wave)) noiseless restframe spectra of ``population``'s inlier galaxies, each averaged over
    the pixels of the ascending grid ``wave`` (bin edges halfway between its points), as a model with that
    restframe grid sees them."""
    rng = np.random.default_rng(seed)
    fine = np.arange(max(wave[0] - 20.0, 1000.0), wave[-1] + 20.0, 0.4)
    mid = 0.5 * (wave[1:] + wave[:-1])
    edges = np.concatenate([[2 * wave[0] - mid[0]], mid, [2 * wave[-1] - mid[-1]]])
    idx = np.searchsorted(fine, edges)
    counts = np.maximum(np.diff(idx), 1)
    out = np.empty((n, len(wave)))
    for i in range(n):
        spec, _ = GALAXY_MAKERS[population](rng, fine)
        cumulative = np.concatenate([[0.0], np.cumsum(spec)])
        out[i] = (cumulative[idx[1:]] - cumulative[idx[:-1]]) / counts
    return out


def to_observed_frame(
    wave_obs: np.ndarray, wave_rest: np.ndarray, restflux: np.ndarray, z: float, lsf_fwhm: float = 0.0
) -> np.ndarray:
    """A restframe spectrum at redshift ``z`` on the observed grid ``wave_obs`` (uniform, :data:`PIXEL`
    spacing): flux density divided by 1 + z, then convolved with a Gaussian line spread of ``lsf_fwhm`` Å
    (0: none)."""
    obs = np.interp(wave_obs, wave_rest * (1 + z), restflux) / (1 + z)
    if lsf_fwhm > 0:
        obs = gaussian_filter1d(obs, lsf_fwhm / (2 * np.sqrt(2 * np.log(2))) / PIXEL, mode="nearest")
    return obs


#: TARGETID of the first simulated spectrum (a held-out set starts elsewhere: :data:`HELDOUT_TARGET_OFFSET`).
FIRST_TARGET_ID = 39_600_000_000_000_000
HELDOUT_TARGET_OFFSET = 100_000_000


def simulate_desi(
    cfg: Mapping[str, Any], seed: int, first_target_id: int = FIRST_TARGET_ID
) -> DesiSimulation:
    """BGS galaxies (with injected outliers) and MWS stars; ``cfg``: ``n_bgs``, ``n_mws``,
    ``outlier_fraction`` (of the BGS sample, split equally between :data:`OUTLIER_TYPES`) and optionally
    ``population``: ``analytic`` (this module's recipe, the default: fast, for unit tests) or ``templates``
    (:mod:`latentsky.simulate.desi_galaxies`: kcorrect continua, BPT lines, the DESI line spread, telluric
    residuals and calibration wiggles). TARGETIDs run from ``first_target_id``."""
    rng = np.random.default_rng(seed)
    n_bgs, n_mws = int(cfg["n_bgs"]), int(cfg["n_mws"])
    frac = float(cfg["outlier_fraction"])
    population = str(cfg.get("population", "analytic"))
    if n_bgs < 1 or n_mws < 0 or not 0 <= frac < 1 or population not in POPULATIONS:
        raise ValueError(
            f"desi simulation needs n_bgs ≥ 1, n_mws ≥ 0, 0 ≤ outlier_fraction < 1 and population one of "
            f"{POPULATIONS}, got {dict(cfg)}"
        )
    templates = population == "templates"
    grids = _arm_grids()
    full = np.concatenate(
        [grids["b"], grids["r"][grids["r"] > grids["b"][-1]], grids["z"][grids["z"] > grids["r"][-1]]]
    )
    rest = np.arange(1800.0, 10000.0, 0.4)
    n_out = int(round(frac * n_bgs))
    kinds = np.array(
        ["galaxy"] * (n_bgs - n_out) + [OUTLIER_TYPES[i % len(OUTLIER_TYPES)] for i in range(n_out)]
    )
    rng.shuffle(kinds)
    rows, spectra = [], []

    def galaxy(z: float) -> tuple[np.ndarray, dict[str, Any]]:
        return GALAXY_MAKERS[population](rng, rest)

    def observe(restflux: np.ndarray, z: float) -> np.ndarray:
        return to_observed_frame(full, rest, restflux, z, DESI_LSF_FWHM if templates else 0.0)

    # The injected signal of each outlier (detectability oracle, issue 17): the noiseless spectrum minus
    # its inlier counterpart — what the object would be without the anomaly — in the observed frame.
    signals: dict[int, np.ndarray] = {}
    for i in range(n_bgs + n_mws):
        is_bgs = i < n_bgs
        kind = kinds[i] if is_bgs else "star"
        info: dict[str, Any] = {}
        counterpart: np.ndarray | None = None
        if kind == "star" or not is_bgs:
            teff = float(rng.choice([rng.uniform(3000, 4000), rng.uniform(4000, 10000)], p=[0.4, 0.6]))
            z = float(rng.normal(0, 100.0) / C_KMS)
            obs = observe(star_spectrum(rest, teff), z)
            info["teff"] = teff
            rr_type, rr_z = ("GALAXY", max(z, 1e-4)) if is_bgs else ("STAR", z)
        else:
            if kind == "blend":
                z = float(rng.uniform(0.05, 0.35))
            elif kind == "bal_qso":  # Mg II 2,799 Å (the only BAL line below z 0.8) is observed above z 0.29
                z = float(rng.uniform(0.35, 0.8))
            else:
                z = float(_bgs_redshifts(rng, 1)[0])
            restflux, info = galaxy(z)
            rr_type, rr_z = "GALAXY", z
            if kind == "double_peaked" and templates:
                # The strengths of real double-peaked emitters (review Sec. 1.5): [O III] EW 10–100 Å,
                # components 300–800 km/s apart, each 80 km/s wide.
                split = float(rng.uniform(300, 800))
                lines = {k: info[f"line_{k}"] for k in TEMPLATE_LINES}
                lines["OIII_5007"] = float(rng.uniform(10.0, 100.0))
                lines["OIII_4959"] = lines["OIII_5007"] / 2.98
                lines["Hbeta"] = max(lines["Hbeta"], lines["OIII_5007"] / 3.0)
                lines["Halpha"] = max(lines["Halpha"], 2.86 * lines["Hbeta"])
                lines["NII_6584"] = max(lines["NII_6584"], 0.5 * lines["Halpha"])
                lines["NII_6548"] = lines["NII_6584"] / 3.05
                restflux, _ = template_galaxy_restframe(rest, info, lines, split, 80.0)
                # Counterpart: single-peaked lines of the pair's second moment, the same fluxes.
                counterpart, _ = template_galaxy_restframe(
                    rest, info, lines, 0.0, float(np.hypot(80.0, split / 2))
                )
                info["split_kms"] = split
            elif kind == "double_peaked":
                split = float(rng.uniform(200, 600))
                lines = {k[5:]: v for k, v in info.items() if k.startswith("line_")}
                lines = {
                    k: max(v, 0.8)
                    for k, v in lines.items()
                    if k in ("Halpha", "OIII_5007", "Hbeta", "NII_6584")
                }
                lines["OIII_4959"] = lines["OIII_5007"] / 2.98
                restflux = galaxy_restframe(
                    rest, max(info["young_fraction"], 0.4), info["break_strength"], 80.0, lines, split,
                    ebv_gas=info["ebv_gas"], old_teff=info["old_teff"],
                )  # fmt: skip
                # Counterpart: single-peaked lines of the pair's second moment and the same flux (the best
                # single Gaussian a galaxy model could put there).
                sigma_single = float(np.hypot(80.0, split / 2))
                single = {k: v * 80.0 / sigma_single for k, v in lines.items()}
                counterpart = galaxy_restframe(
                    rest, max(info["young_fraction"], 0.4), info["break_strength"], sigma_single, single,
                    ebv_gas=info["ebv_gas"], old_teff=info["old_teff"],
                )  # fmt: skip
                info["split_kms"] = split
            elif kind in ("broad_line_qso", "bal_qso"):
                fwhm = float(rng.uniform(3000, 8000))
                sig = fwhm / 2.355
                power = (rest / 5500.0) ** float(rng.uniform(-1.8, -1.2))
                broad = _gauss_lines(rest, np.array([6564.6, 4862.7, 2799.1]), sig, np.array([3.0, 1.0, 1.5]))
                # Counterpart: the host and a blue continuum without the broad lines (a young population
                # can mimic a power law; the broad lines and troughs nothing in the galaxy sample has).
                counterpart = 0.4 * restflux + power
                restflux = 0.4 * restflux + power * (1 + broad)
                if kind == "bal_qso":
                    v = float(rng.uniform(3000, 12000))
                    trough = _gauss_lines(rest, np.array([2799.1 * (1 - v / C_KMS)]), 1500.0, np.array([0.8]))
                    restflux = restflux * (1 - np.clip(trough, 0, 0.95))
                    info["bal_velocity_kms"] = v
                info["fwhm_kms"] = fwhm
            obs = observe(restflux, z)
            if counterpart is not None:
                counterpart = observe(counterpart, z)
            if kind == "blend":
                z2 = float(z + rng.uniform(0.1, 0.4))
                other, _ = galaxy(z2)
                counterpart = obs.copy()  # the brighter galaxy alone, at the blend's flux
                obs = obs + float(rng.uniform(0.4, 0.9)) * observe(other, z2)
                info["z_second"] = z2
        mag = float(rng.uniform(16.0, 19.5)) if is_bgs else float(rng.uniform(16.0, 19.2))
        scale = 10 ** (-0.4 * (mag - 19.0)) * 3.0  # ~3e-17 erg/s/cm²/Å at 5500 Å for r = 19
        norm_factor = scale / np.interp(6200.0, full, obs)
        obs = obs * norm_factor
        if counterpart is not None:
            # The counterpart at the flux that best matches the outlier's (a model fits the amplitude).
            c = counterpart * norm_factor
            c = c * float(np.dot(c, obs) / max(np.dot(c, c), 1e-300))
            signals[i] = obs - c
        rows.append(
            {
                "target_id": first_target_id + i,
                "survey": "bgs" if is_bgs else "mws",
                "kind": kind,
                "is_outlier": bool(is_bgs and kind != "galaxy"),
                "z_true": z,
                "z": rr_z,
                "spectype": rr_type,
                "r_mag": mag,
                **info,
            }
        )
        spectra.append(obs)
    targets = pd.DataFrame(rows)
    truth_flux = np.stack(spectra)
    if templates:
        # Instrument systematics every spectrum carries (not part of any outlier's signal): telluric
        # residuals of ~10 % of the bands' depth, and per-arm flux-calibration wiggles.
        absorbed = 1.0 - telluric_transmission(full)
        for i in range(len(truth_flux)):
            truth_flux[i] *= (1.0 + rng.normal(0.0, 0.1) * absorbed) * calibration_wiggle(
                rng, full, ARM_RANGES
            )
    sky = _sky(full)
    flux, ivar, mask = {}, {}, {}
    for arm, grid in grids.items():
        idx = np.searchsorted(full, grid - 1e-6)
        true = truth_flux[:, idx]
        var = SKY_VARIANCE * sky[idx] + OBJECT_VARIANCE * np.abs(true) + 1e-4
        noise = rng.normal(size=true.shape) * np.sqrt(var)
        # Sky-subtraction residuals: a few per cent of the line flux at the sky lines.
        residual = 0.03 * (sky[idx] - sky[idx].min()) * rng.normal(size=(len(targets), 1))
        flux[arm] = (true + noise + residual).astype(np.float32)
        ivar[arm] = (1.0 / var).astype(np.float32)
        m = np.zeros(true.shape, dtype=np.int32)
        bad = rng.uniform(size=true.shape) < 0.002
        m[bad] = 1 << 18  # a DESI mask bit (e.g. BADFIBER-like pixel issues)
        mask[arm] = m
    # Calibration faults: one arm scaled, or missing.
    for i in np.flatnonzero(targets["kind"].to_numpy() == "calibration_fault"):
        arm = str(rng.choice(list(ARM_RANGES)))
        if rng.uniform() < 0.5:
            ivar[arm][i] = 0.0
            flux[arm][i] = 0.0  # as a DESI coadd writes a missing arm
            targets.loc[i, "fault"] = f"{arm}_missing"  # no signal in the data: no Δχ² (NaN below)
        else:
            factor = float(rng.choice([rng.uniform(0.5, 0.8), rng.uniform(1.3, 1.8)]))
            flux[arm][i] *= factor
            targets.loc[i, "fault"] = f"{arm}_x{factor:.2f}"
            lo, hi = ARM_RANGES[arm]
            signals[i] = np.where((full >= lo) & (full <= hi), (factor - 1.0) * truth_flux[i], 0.0)
    # Δχ² of each injected signal at the binnings a model may use (stars: NaN — a star has no galaxy
    # counterpart; its difference from the galaxy sample is the whole spectrum).
    oracle = np.full((len(targets), len(ORACLE_BIN_FACTORS)), np.nan)
    for i, signal in signals.items():
        variance = SKY_VARIANCE * sky + OBJECT_VARIANCE * np.abs(truth_flux[i]) + 1e-4  # as the noise above
        oracle[i] = [injected_delta_chi2(signal, variance, b) for b in ORACLE_BIN_FACTORS]
    for k, b in enumerate(ORACLE_BIN_FACTORS):
        targets[f"injected_delta_chi2_bin{b}"] = oracle[:, k]
    return DesiSimulation(targets, grids, flux, ivar, mask)


#: Binnings at which the simulation records each outlier's injected Δχ² (``injected_delta_chi2_bin<b>``).
ORACLE_BIN_FACTORS = (1, 2, 4, 8, 16)


def injected_delta_chi2(signal: np.ndarray, variance: np.ndarray, bin_factor: int) -> float:
    """Σ over bins of b pixels of (mean signal)² / (variance of the mean): how far, in χ², the injected
    signal moves the spectrum from its inlier counterpart when the data are averaged b pixels at a time."""
    n = (len(signal) // bin_factor) * bin_factor
    s = signal[:n].reshape(-1, bin_factor).mean(axis=1)
    v = variance[:n].reshape(-1, bin_factor).sum(axis=1) / bin_factor**2
    return float(np.sum(s**2 / v))


def write_desi_files(
    sim: DesiSimulation,
    rows: np.ndarray,
    coadd_path: str | os.PathLike,
    redrock_path: str | os.PathLike,
    provenance: Mapping[str, Any] | None = None,
) -> None:
    """Write ``rows`` of the simulation as a DESI coadd (FIBERMAP, B/R/Z arrays) and a Redrock file,
    atomically, with ``provenance`` in each primary header."""
    from astropy.io import fits

    from latentsky.provenance.files import write_fits

    t = sim.targets.iloc[rows]
    fibermap = fits.BinTableHDU.from_columns(
        [
            fits.Column("TARGETID", "K", array=t["target_id"].to_numpy()),
            fits.Column("COADD_FIBERSTATUS", "J", array=np.zeros(len(t), dtype=np.int32)),
        ],
        name="FIBERMAP",
    )
    hdus = [fits.PrimaryHDU(), fibermap]
    for arm in ("b", "r", "z"):
        a = arm.upper()
        hdus.append(fits.ImageHDU(sim.wave[arm], name=f"{a}_WAVELENGTH"))
        hdus.append(fits.ImageHDU(sim.flux[arm][rows], name=f"{a}_FLUX"))
        hdus.append(fits.ImageHDU(sim.ivar[arm][rows], name=f"{a}_IVAR"))
        hdus.append(fits.ImageHDU(sim.mask[arm][rows], name=f"{a}_MASK"))
    write_fits(fits.HDUList(hdus), coadd_path, provenance or {})
    redshifts = fits.BinTableHDU.from_columns(
        [
            fits.Column("TARGETID", "K", array=t["target_id"].to_numpy()),
            fits.Column("Z", "D", array=t["z"].to_numpy(np.float64)),
            fits.Column("ZERR", "D", array=np.full(len(t), 1e-5)),
            fits.Column("ZWARN", "K", array=np.zeros(len(t), dtype=np.int64)),
            fits.Column("SPECTYPE", "6A", array=t["spectype"].to_numpy(str)),
        ],
        name="REDSHIFTS",
    )
    write_fits(fits.HDUList([fits.PrimaryHDU(), redshifts]), redrock_path, provenance or {})
