"""A differentiable toy "Kurucz" for APOGEE H-band spectra with known truth (Cycle-StarNet demo, paper 002).

O'Briain et al. (2021, §4.2) test Cycle-StarNet on a mock: a synthetic domain of Kurucz spectra with ~30 % of
the absorption features removed and an "observed" domain of the complete spectra plus noise; the network has
to fill the missing features in and attribute them to the right element through its derivatives (eq. 8,
Figs. 10–11). Kurucz ATLAS12/SYNTHE cannot run here, so this module is a cheap analytic stand-in with the
properties the experiment needs (spec Part B, B2.1–B2.2): per-element atomic lines, CN/CO/OH molecular lines
that couple C, N and O (the C/N ambiguity of Fig. 11 on purpose), temperature, gravity and broadening
responses, and an analytic Jacobian — the **true** response functions that Cycle-StarNet's are scored
against.

* **Grid** (:func:`wavelength_grid`). APOGEE's log-linear apStar grid (Δlog10 λ = 6e-6, vacuum Å): by
  default 2,047 pixels from log10 λ = 4.2005 (the green chip, 15,867–16,322 Å, containing the paper's Fig. 10
  window); 7,167 gives the ASPCAP pixels of the three chips minus the first 47 (what Cycle_SN feeds its
  network), 7,214 all ASPCAP pixels.
* **Labels** (:data:`LABEL_NAMES`, 14): Teff (K), log g (cgs dex), v_turb and v_broad (km/s) and ten [X/H]
  (dex). :func:`sample_labels` draws the red-giant distribution of B2.1 shared by both domains.
* **Line list** (:func:`make_line_list`, one row per line): atomic Fe 60, Mg 14, Si 14, Ni 10, Ca 8, Ti 8,
  Al 6; CN 40, CO 25, OH 12; 200 weak lines of all these species (per 2,047 pixels; scaled with the
  pixel count). Strong lines have central depths log-uniform in 3–50 % at the reference giant, weak ones
  0.2–2 %.
* **Spectrum** (:func:`synthesise`), the formula of B2.1 with Gaussian profiles in ln λ::

      f(λ) = exp(−Σ_k A_k · exp(−(ln λ − ln λ_k − ln(1 + v_r/c))² / (2σ_k²)))
      σ_k² c² = σ_LSF² + v_turb² + v_broad²/2 + kT/m_k ,   σ_LSF = c/(2√(2 ln 2) R)
      log10 τ_k = log10 τ⁰_k + Σ_X d_kX [X/H] − χ_k (θ − θ⊙) + n_k log10 θ + p_k (log g − log g⊙),  θ = 5040/Teff
      A_k = τ_k · σ_k,ref / σ_k

  Atomic lines have d = 1 for their element, n = 0 and p = −0.3 (neutral) or +0.4 (ionised); molecules have
  χ = p = 0 and CN: d_C = d_N = 1, n = 6; CO: d_C = 1, n = 5; OH: d_O = 1, d_C = −0.5, n = 6 — exactly the
  spec's τ laws. One deviation: the spec writes the profile with unit peak, so a lower resolution (or more
  broadening) would keep the central depth and *increase* the equivalent width. Real broadening — the LSF,
  macroturbulence, rotation, and the Doppler width of a weak line — conserves the equivalent width, so the
  amplitude carries the factor σ_k,ref/σ_k (σ_k,ref: the line's width at the reference giant and R = 22,500).
  At the reference giant A_k = τ_k and the spec's formula is recovered exactly; elsewhere the M2 "LSF gap"
  (per-star R) makes lines shallower and wider, not stronger. The thermal term kT/m_k is the line-of-sight
  velocity variance of the absorber (m_k its atomic or molecular mass).
* **Jacobian** (:func:`synthesise_jacobian`): ∂f/∂y_j for all 14 labels, analytic. With w_k(λ) the line's
  term inside the exponent, ∂f/∂y_j = −f Σ_k w_k [∂ln τ_k/∂y_j + (u²/σ_k² − 1) ∂ln σ_k/∂y_j]; for an
  abundance this is −f Σ_k ln 10 · d_kj τ_k φ_k (CN counts for C and N, OH for O and −½ C).
* **Cost.** Each line touches a window of ±5σ_max pixels (σ_max the widest line in the call), evaluated for
  all lines and stars at once and summed into the pixels with one ``numpy.bincount``; ~10⁴ spectra per second
  on one core at 2,047 pixels.
* **Instrument effects** for experiment M2 (B2.2 point 4; :func:`simulate_observed`): per-star LSF
  R ~ U(19,000, 25,000) (the synthetic domain stays at 22,500), a continuum tilt × (1 + a₁x + a₂x²) with
  a ~ N(0, 0.004) and x the pixel position on [−1, 1], atomic τ × 1.10 for Teff < 4,300 K (the "M-giant"
  line-strength miscalibration of the paper's Fig. 6), and telluric-residual dips at fixed observed
  wavelengths with a per-star radial velocity. The noise model (:func:`add_noise`): σ = pattern / (S/N) with
  S/N log-uniform in [50, 300] and a smooth pattern rising towards each chip's edges, and 1 % bad pixels with
  σ = 1 (Cycle-StarNet's σ > 0.05 rule masks them).

Numbers the spec leaves open ([proposal] there; chosen here): depth ranges, the 15 % share of ionised
atomic lines, the C–N anticorrelation ρ = −0.6, the radial-velocity spread (40 km/s), the telluric list
(12 dips of 1–4 % scaled per star by U(0, 1)) and the noise pattern (× 3 at chip edges).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from astropy import constants, units

__all__ = [
    "LABEL_NAMES",
    "ELEMENTS",
    "ABUNDANCE_LABELS",
    "REFERENCE_LABELS",
    "STRONG_LINE_COUNTS",
    "N_WEAK_LINES",
    "LINE_LIST_COLUMNS",
    "wavelength_grid",
    "pixel_coordinate",
    "make_line_list",
    "synthesise",
    "synthesise_jacobian",
    "sample_labels",
    "make_telluric_list",
    "continuum_tilt",
    "telluric_transmission",
    "noise_pattern",
    "add_noise",
    "ObservedSpectra",
    "simulate_observed",
]

# --------------------------------------------------------------------------------------------------
# Constants
# --------------------------------------------------------------------------------------------------
#: Speed of light (km/s).
C_KMS = constants.c.to_value(units.km / units.s)
#: k_B / (1 atomic mass unit) in km² s⁻² K⁻¹: kT/m in (km/s)² for m in amu.
K_OVER_AMU = (constants.k_B / constants.u).to_value(units.km**2 / units.s**2 / units.K)
#: FWHM = 2√(2 ln 2) σ for a Gaussian; R = λ/FWHM.
FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))
LN10 = np.log(10.0)

#: The 14 labels, in the order of every label array of this module.
LABEL_NAMES = (
    "Teff",
    "logg",
    "v_turb",
    "v_broad",
    "[C/H]",
    "[N/H]",
    "[O/H]",
    "[Mg/H]",
    "[Al/H]",
    "[Si/H]",
    "[Ca/H]",
    "[Ti/H]",
    "[Fe/H]",
    "[Ni/H]",
)
#: Elements with an abundance label, in label order.
ELEMENTS = ("C", "N", "O", "Mg", "Al", "Si", "Ca", "Ti", "Fe", "Ni")
ABUNDANCE_LABELS = tuple(f"[{x}/H]" for x in ELEMENTS)
_I_TEFF, _I_LOGG, _I_VTURB, _I_VBROAD = 0, 1, 2, 3
_I_ABUND = 4
N_LABELS = len(LABEL_NAMES)
#: The reference K giant of the paper's §4.2 and the authors' ``Create_Line_Mask`` notebook: Teff 4750 K,
#: log g 2.5, v_turb 1.5 km/s, v_broad (their v_macro) 6 km/s, solar abundances. Line strengths are drawn
#: as central depths at this star.
REFERENCE_LABELS = np.array([4750.0, 2.5, 1.5, 6.0] + [0.0] * len(ELEMENTS))
#: The Sun, the zero point of the atomic τ law (θ⊙ = 5040/5772, log g⊙ = 4.438).
TEFF_SUN, LOGG_SUN = 5772.0, 4.438
THETA_SUN = 5040.0 / TEFF_SUN
#: The synthetic domain's (and the reference) resolving power.
RESOLUTION = 22_500.0

# Grid (spec B2.1; Cycle_SN ``analysis_fns.apstarwavegrid``).
APSTAR_LOG10_START, APSTAR_LOG10_STEP, APSTAR_N_PIXELS = 4.179, 6e-6, 8575
#: The three chips' ASPCAP pixel ranges [start, stop) on the apStar grid (blue, green, red): 7,214 pixels.
ASPCAP_CHIPS = ((322, 3242), (3648, 6048), (6412, 8306))
#: Cycle_SN drops the first 47 ASPCAP pixels (the blue end, ``x[:, 47:]``): 7,167 pixels.
N_CROPPED_BLUE = 47
WINDOW_LOG10_START = 4.2005
N_PIXELS_DEFAULT = 2047
#: The contiguous window may run to the apStar grid's red end.
_MAX_WINDOW_PIXELS = int(
    np.floor((APSTAR_LOG10_START + (APSTAR_N_PIXELS - 1) * APSTAR_LOG10_STEP - WINDOW_LOG10_START) / 6e-6) + 1
)

# Line list (spec B2.1). Counts are per 2,047 pixels.
STRONG_LINE_COUNTS: Mapping[str, int] = {
    "Fe": 60,
    "Mg": 14,
    "Si": 14,
    "Ni": 10,
    "Ca": 8,
    "Ti": 8,
    "Al": 6,
    "CN": 40,
    "CO": 25,
    "OH": 12,
}
N_WEAK_LINES = 200
#: Central depth ranges 1 − e^{−τ_ref} at the reference giant (log-uniform).
STRONG_DEPTH_RANGE = (0.03, 0.5)
WEAK_DEPTH_RANGE = (0.002, 0.02)
#: Share of ionised atomic lines (p = +0.4 instead of −0.3); excitation potentials U(0, 6) eV.
IONISED_FRACTION = 0.15
CHI_RANGE_EV = (0.0, 6.0)
GRAVITY_POWER = {0: -0.3, 1: 0.4}
#: Atomic masses (amu, IUPAC standard weights) for the thermal widths.
MASS_AMU = {
    "C": 12.011,
    "N": 14.007,
    "O": 15.999,
    "Mg": 24.305,
    "Al": 26.982,
    "Si": 28.085,
    "Ca": 40.078,
    "Ti": 47.867,
    "Fe": 55.845,
    "Ni": 58.693,
}
#: Molecules: the [X/H] coefficients of log10 τ and the power of θ (spec B2.1).
MOLECULES: Mapping[str, tuple[Mapping[str, float], int]] = {
    "CN": ({"C": 1.0, "N": 1.0}, 6),
    "CO": ({"C": 1.0}, 5),
    "OH": ({"O": 1.0, "C": -0.5}, 6),
}
_MOLECULE_MASS = {"CN": MASS_AMU["C"] + MASS_AMU["N"], "CO": MASS_AMU["C"] + MASS_AMU["O"], "OH": 17.007}

#: Columns of :func:`make_line_list`'s table; ``dlogtau_<X>`` is the coefficient of [X/H] in log10 τ.
LINE_LIST_COLUMNS = (
    "wavelength",
    "species",
    "kind",
    "elements",
    "atomic",
    "ion",
    "chi",
    "gravity_power",
    "theta_power",
    "mass",
    "tau_ref",
    "tau0",
    *(f"dlogtau_{x}" for x in ELEMENTS),
)

#: Profiles are evaluated to ±N_SIGMA σ of the widest line in the call (the Gaussian is e^{−12.5} ≈ 4e-6
#: of its peak there).
N_SIGMA = 5.0
#: Stars per vectorised block: block × lines × window floats stay at a few tens of MB.
_CHUNK_ELEMENTS = 2_500_000

# Instrument and noise (spec B2.2 point 4).
RESOLUTION_RANGE = (19_000.0, 25_000.0)
TILT_SIGMA = 0.004
COOL_TEFF, COOL_ATOMIC_TAU_SCALE = 4300.0, 1.10
RV_SIGMA_KMS = 40.0
SNR_RANGE = (50.0, 300.0)
BAD_PIXEL_FRACTION = 0.01
N_TELLURIC = 12
TELLURIC_DEPTH_RANGE = (0.01, 0.04)
TELLURIC_SEED = 2021
#: Noise pattern 1 + EDGE_RISE · x^EDGE_POWER per chip (x ∈ [−1, 1] across the chip), over its median.
EDGE_RISE, EDGE_POWER = 2.0, 6


# --------------------------------------------------------------------------------------------------
# Grid
# --------------------------------------------------------------------------------------------------
def wavelength_grid(n_pixels: int = N_PIXELS_DEFAULT) -> np.ndarray:
    """Vacuum wavelengths (Å) of the toy's pixels on APOGEE's apStar log-linear grid.

    Parameters
    ----------
    n_pixels
        7,167: the ASPCAP pixels of the three chips minus the 47 bluest (Cycle_SN's input); 7,214: all
        ASPCAP pixels; any other count up to the apStar grid's red end (4,991): a contiguous window starting at
        log10 λ = 4.2005 with Δlog10 λ = 6e-6 (default 2,047, the green chip).

    Returns
    -------
    numpy.ndarray
        (n_pixels,) float64, increasing.
    """
    n_pixels = int(n_pixels)
    if n_pixels in (7214, 7214 - N_CROPPED_BLUE):
        index = np.concatenate([np.arange(a, b) for a, b in ASPCAP_CHIPS])[7214 - n_pixels :]
        return 10.0 ** (APSTAR_LOG10_START + APSTAR_LOG10_STEP * index)
    if not 1 <= n_pixels <= _MAX_WINDOW_PIXELS:
        raise ValueError(
            f"n_pixels = {n_pixels}: expected 7167 or 7214 (ASPCAP chips) or 1..{_MAX_WINDOW_PIXELS} "
            "(a contiguous window from log10 λ = 4.2005 inside the apStar grid)"
        )
    return 10.0 ** (WINDOW_LOG10_START + APSTAR_LOG10_STEP * np.arange(n_pixels))


def _ln_grid(grid: np.ndarray) -> np.ndarray:
    grid = np.asarray(grid, dtype=np.float64)
    if grid.ndim != 1 or grid.size < 2 or not np.all(np.isfinite(grid)) or np.any(grid <= 0):
        raise ValueError(
            f"grid: expected a 1-D array of ≥ 2 positive finite wavelengths (Å), got {grid.shape}"
        )
    ln = np.log(grid)
    if np.any(np.diff(ln) <= 0):
        raise ValueError("grid: wavelengths must be strictly increasing")
    return ln


def _segments(ln_grid: np.ndarray) -> list[tuple[int, int]]:
    """Contiguous runs [start, stop) of the grid (chips): a gap is a step > 1.5 × the smallest step."""
    step = np.diff(ln_grid)
    breaks = np.flatnonzero(step > 1.5 * step.min()) + 1
    edges = np.concatenate([[0], breaks, [ln_grid.size]])
    return list(zip(edges[:-1].tolist(), edges[1:].tolist(), strict=True))


def pixel_coordinate(n_pixels: int) -> np.ndarray:
    """Pixel position rescaled to [−1, 1] (the x of the continuum tilt 1 + a₁x + a₂x²)."""
    if n_pixels < 2:
        raise ValueError(f"n_pixels = {n_pixels}: need at least 2 pixels")
    return np.linspace(-1.0, 1.0, int(n_pixels))


# --------------------------------------------------------------------------------------------------
# Line list
# --------------------------------------------------------------------------------------------------
def make_line_list(
    seed: int,
    grid: np.ndarray,
    *,
    counts: Mapping[str, int] | None = None,
    n_weak: int | None = None,
) -> pd.DataFrame:
    """Draw the toy line list over ``grid`` (spec B2.1), reproducibly from ``seed``.

    Parameters
    ----------
    seed
        Seed of ``numpy.random.default_rng``; the same seed and grid give the same table.
    grid
        Pixel wavelengths (Å), e.g. :func:`wavelength_grid`. Line centres are uniform in pixel position, so
        chip gaps get none.
    counts
        Strong lines per species (element symbols of :data:`ELEMENTS` and ``CN``, ``CO``, ``OH``); default
        :data:`STRONG_LINE_COUNTS` scaled by ``len(grid) / 2047`` (the same line density on any grid).
    n_weak
        Weak lines (depths 0.2–2 %), species drawn in proportion to the strong counts; default
        :data:`N_WEAK_LINES` scaled the same way.

    Returns
    -------
    pandas.DataFrame
        One row per line, sorted by wavelength, columns :data:`LINE_LIST_COLUMNS`: ``wavelength`` (Å,
        vacuum, rest frame), ``species`` (``"Fe I"``, ``"Ti II"``, ``"CN"``, …), ``kind`` (atomic, CN, CO, OH
        or weak), ``elements`` (the elements τ depends on, comma-separated), ``atomic`` (bool), ``ion``
        (0 neutral, 1 ionised), ``chi`` (excitation potential, eV; 0 for molecules, whose temperature law is
        θ^n), ``gravity_power`` p, ``theta_power`` n, ``mass`` (amu), ``tau_ref`` (central optical depth at
        :data:`REFERENCE_LABELS` and R = 22,500), ``tau0`` (τ⁰ of the τ law: at the Sun's θ and log g for
        atoms, at θ = 1 for molecules, solar abundances) and ``dlogtau_<X>`` (d log10 τ / d[X/H]).
    """
    ln_grid = _ln_grid(grid)
    scale = ln_grid.size / N_PIXELS_DEFAULT
    if counts is None:
        counts = {k: int(round(v * scale)) for k, v in STRONG_LINE_COUNTS.items()}
    if n_weak is None:
        n_weak = int(round(N_WEAK_LINES * scale))
    unknown = set(counts) - set(ELEMENTS) - set(MOLECULES)
    if unknown:
        raise ValueError(f"counts: unknown species {sorted(unknown)}; expected {ELEMENTS + tuple(MOLECULES)}")
    if any(int(v) < 0 for v in counts.values()) or n_weak < 0:
        raise ValueError("counts and n_weak must be ≥ 0")
    rng = np.random.default_rng(seed)

    species_of_line: list[str] = []
    kind: list[str] = []
    depth: list[np.ndarray] = []
    for sp, n in counts.items():
        species_of_line += [sp] * int(n)
        kind += [sp if sp in MOLECULES else "atomic"] * int(n)
        depth.append(_log_uniform(rng, *STRONG_DEPTH_RANGE, int(n)))
    total_strong = sum(int(v) for v in counts.values())
    if n_weak > 0 and total_strong > 0:
        names = list(counts)
        p = np.array([counts[s] for s in names], dtype=float) / total_strong
        species_of_line += list(rng.choice(names, size=n_weak, p=p))
        kind += ["weak"] * n_weak
        depth.append(_log_uniform(rng, *WEAK_DEPTH_RANGE, n_weak))
    n_lines = len(species_of_line)
    depth_ref = np.concatenate(depth) if depth else np.zeros(0)
    tau_ref = -np.log1p(-depth_ref)

    # Centres uniform in (continuous) pixel position, mapped through the grid: ln λ is linear in pixels
    # inside a chip, so this is uniform in ln λ per chip and never falls into a gap.
    position = rng.uniform(0.0, ln_grid.size - 1, n_lines)
    ln_wl = np.interp(position, np.arange(ln_grid.size), ln_grid)
    is_molecule = np.array([s in MOLECULES for s in species_of_line], dtype=bool)
    ion = np.where(is_molecule, 0, (rng.uniform(size=n_lines) < IONISED_FRACTION).astype(int))
    chi = np.where(is_molecule, 0.0, rng.uniform(*CHI_RANGE_EV, n_lines))

    table = pd.DataFrame(
        {
            "wavelength": np.exp(ln_wl),
            "species": [
                s if m else f"{s} {'II' if i else 'I'}"
                for s, m, i in zip(species_of_line, is_molecule, ion, strict=True)
            ],
            "kind": kind,
            "elements": [",".join(MOLECULES[s][0]) if s in MOLECULES else s for s in species_of_line],
            "atomic": ~is_molecule,
            "ion": ion.astype(np.int8),
            "chi": chi,
            "gravity_power": np.where(
                is_molecule, 0.0, np.where(ion == 1, GRAVITY_POWER[1], GRAVITY_POWER[0])
            ),
            "theta_power": np.array(
                [MOLECULES[s][1] if s in MOLECULES else 0 for s in species_of_line], float
            ),
            "mass": np.array([_MOLECULE_MASS.get(s) or MASS_AMU[s] for s in species_of_line], float),
            "tau_ref": tau_ref,
        }
    )
    for x in ELEMENTS:
        table[f"dlogtau_{x}"] = [
            MOLECULES[s][0].get(x, 0.0) if s in MOLECULES else float(s == x) for s in species_of_line
        ]
    # τ⁰ from τ_ref: undo the temperature and gravity terms at the reference giant (abundances there are 0).
    theta_ref = 5040.0 / REFERENCE_LABELS[_I_TEFF]
    log_tau0 = (
        np.log10(tau_ref)
        + table["chi"].to_numpy() * (theta_ref - THETA_SUN)
        - table["theta_power"].to_numpy() * np.log10(theta_ref)
        - table["gravity_power"].to_numpy() * (REFERENCE_LABELS[_I_LOGG] - LOGG_SUN)
    )
    table["tau0"] = 10.0**log_tau0
    table = table[list(LINE_LIST_COLUMNS)]
    return table.sort_values("wavelength", kind="stable").reset_index(drop=True)


def _log_uniform(rng: np.random.Generator, lo: float, hi: float, n: int) -> np.ndarray:
    return np.exp(rng.uniform(np.log(lo), np.log(hi), n))


@dataclass(frozen=True)
class _Lines:
    """The line list as arrays (K lines)."""

    ln_wl: np.ndarray
    log_tau0: np.ndarray
    dlogtau: np.ndarray  # (K, n_elements)
    chi: np.ndarray
    gravity_power: np.ndarray
    theta_power: np.ndarray
    thermal: np.ndarray  # k/m_k, (km/s)² per K
    atomic: np.ndarray  # float 0/1
    sigma_ref: np.ndarray  # width (ln λ) at the reference giant and R = 22,500


def _lines(line_list: pd.DataFrame) -> _Lines:
    if not isinstance(line_list, pd.DataFrame):
        raise ValueError(f"line_list: expected a pandas DataFrame from make_line_list, got {type(line_list)}")
    missing = [c for c in LINE_LIST_COLUMNS if c not in line_list.columns]
    if missing:
        raise ValueError(f"line_list: missing column(s) {missing}; expected those of make_line_list")
    num = line_list[[c for c in LINE_LIST_COLUMNS if c not in ("species", "kind", "elements")]]
    values = num.to_numpy(dtype=np.float64)
    if not np.all(np.isfinite(values)):
        bad = [c for c in num.columns if not np.all(np.isfinite(num[c].to_numpy(dtype=np.float64)))]
        raise ValueError(f"line_list: non-finite values in column(s) {bad}")
    wl, tau0, mass = (line_list[c].to_numpy(np.float64) for c in ("wavelength", "tau0", "mass"))
    for name, v in (("wavelength", wl), ("tau0", tau0), ("mass", mass)):
        if np.any(v <= 0):
            raise ValueError(f"line_list: column {name!r} must be > 0")
    thermal = K_OVER_AMU / mass
    var_ref = (
        _lsf_variance(RESOLUTION) + REFERENCE_LABELS[_I_VTURB] ** 2 + REFERENCE_LABELS[_I_VBROAD] ** 2 / 2
    )
    return _Lines(
        ln_wl=np.log(wl),
        log_tau0=np.log10(tau0),
        dlogtau=line_list[[f"dlogtau_{x}" for x in ELEMENTS]].to_numpy(np.float64),
        chi=line_list["chi"].to_numpy(np.float64),
        gravity_power=line_list["gravity_power"].to_numpy(np.float64),
        theta_power=line_list["theta_power"].to_numpy(np.float64),
        thermal=thermal,
        atomic=line_list["atomic"].to_numpy(bool).astype(np.float64),
        sigma_ref=np.sqrt(var_ref + thermal * REFERENCE_LABELS[_I_TEFF]) / C_KMS,
    )


def _lsf_variance(resolution: np.ndarray | float) -> np.ndarray | float:
    """σ_LSF² in (km/s)² for resolving power R = λ/FWHM."""
    return (C_KMS / (FWHM_PER_SIGMA * np.asarray(resolution, dtype=np.float64))) ** 2


# --------------------------------------------------------------------------------------------------
# Synthesis
# --------------------------------------------------------------------------------------------------
def _check_labels(labels: np.ndarray) -> np.ndarray:
    y = np.asarray(labels, dtype=np.float64)
    if y.ndim == 1:
        y = y[None, :]
    if y.ndim != 2 or y.shape[1] != N_LABELS:
        raise ValueError(
            f"labels: expected shape (n_stars, {N_LABELS}) in the order {LABEL_NAMES}, got {y.shape}"
        )
    if not np.all(np.isfinite(y)):
        rows, cols = np.nonzero(~np.isfinite(y))
        raise ValueError(f"labels: non-finite value at star {rows[0]}, label {LABEL_NAMES[cols[0]]!r}")
    if np.any(y[:, _I_TEFF] <= 0):
        raise ValueError("labels: Teff must be > 0 K")
    return y


def _per_star(value: float | np.ndarray, n: int, name: str, *, positive: bool) -> np.ndarray:
    v = np.asarray(value, dtype=np.float64)
    if v.ndim == 0:
        v = np.full(n, float(v))
    if v.shape != (n,):
        raise ValueError(f"{name}: expected a scalar or an array of shape ({n},), got {v.shape}")
    if not np.all(np.isfinite(v)) or (positive and np.any(v <= 0)):
        raise ValueError(f"{name}: expected finite{' positive' if positive else ''} values")
    return v


def _line_terms(
    y: np.ndarray, lines: _Lines, resolution: np.ndarray, rv: np.ndarray, atomic_scale: np.ndarray
):
    """Per star and line: log τ, velocity variance (km/s)², width σ (ln λ), amplitude A and centre (ln λ)."""
    teff, logg = y[:, _I_TEFF, None], y[:, _I_LOGG, None]
    theta = 5040.0 / teff
    log_tau = (
        lines.log_tau0
        + y[:, _I_ABUND:] @ lines.dlogtau.T
        - lines.chi * (theta - THETA_SUN)
        + lines.theta_power * np.log10(theta)
        + lines.gravity_power * (logg - LOGG_SUN)
        + lines.atomic * np.log10(atomic_scale)[:, None]
    )
    var_v = (
        _lsf_variance(resolution)[:, None]
        + y[:, _I_VTURB, None] ** 2
        + y[:, _I_VBROAD, None] ** 2 / 2
        + lines.thermal * teff
    )
    sigma = np.sqrt(var_v) / C_KMS
    tau = 10.0**log_tau
    amp = tau * lines.sigma_ref / sigma
    centre = lines.ln_wl + np.log1p(rv / C_KMS)[:, None]
    return tau, var_v, sigma, amp, centre


def _half_width(step: float, sigma_max: float) -> int:
    # Rounded up to an even number so that tiny label changes (finite differences) keep the same window.
    w = int(np.ceil(N_SIGMA * sigma_max / step))
    return max(2, w + (w % 2))


def _gaussian_blocks(ln_grid: np.ndarray, centre: np.ndarray, sigma: np.ndarray):
    """Yield the profiles' geometry block by block of stars: ``(slice, flat, h, w, n_pad)``.

    Every line gets a window of ±W pixels (W from the widest line, :data:`N_SIGMA` σ) around the pixel
    nearest its centre. The grid is padded by W + 1 extrapolated pixels each side so windows never need
    clipping (lines at the edges spill into the padding, which the caller crops). ``flat`` indexes the
    padded (m, n_pad) block for ``numpy.bincount``; ``h = u²/(2σ²)`` has shape (m, K, 2W + 1). When every
    star has the same centres (one radial velocity) the window offsets u are computed once.
    """
    n, k = centre.shape
    step = float(np.min(np.diff(ln_grid)))
    w = _half_width(step, float(sigma.max()))
    ln_pad = np.concatenate(
        [ln_grid[0] - step * np.arange(w, 0, -1), ln_grid, ln_grid[-1] + step * np.arange(1, w + 2)]
    )
    n_pad = ln_pad.size
    offsets = np.arange(-w, w + 1)
    inv_2var = 0.5 / sigma**2
    shared = bool(np.all(centre == centre[:1]))
    if shared:
        pix_shared = (np.searchsorted(ln_grid, centre[0]) + w)[:, None] + offsets
        u2_shared = (ln_pad[pix_shared] - centre[0][:, None]) ** 2
    size = max(1, _CHUNK_ELEMENTS // (k * (2 * w + 1)))
    flat_cache: dict[int, np.ndarray] = {}
    for start in range(0, n, size):
        s = slice(start, min(n, start + size))
        m = s.stop - s.start
        if shared:
            h = u2_shared[None] * inv_2var[s, :, None]
            if m not in flat_cache:
                flat_cache[m] = (np.arange(m)[:, None, None] * n_pad + pix_shared[None]).ravel()
            flat = flat_cache[m]
        else:
            pix = (np.searchsorted(ln_grid, centre[s]) + w)[..., None] + offsets
            h = (ln_pad[pix] - centre[s][..., None]) ** 2 * inv_2var[s, :, None]
            flat = (np.arange(m)[:, None, None] * n_pad + pix).ravel()
        yield s, flat, h, w, n_pad


def _to_pixels(flat: np.ndarray, weights: np.ndarray, m: int, n_pad: int, w: int, n_pix: int) -> np.ndarray:
    """Sum per-line window values into the (m, n_pix) pixels (crop the padding)."""
    out = np.bincount(flat, weights.ravel(), minlength=m * n_pad).reshape(m, n_pad)
    return out[:, w : w + n_pix]


def _synthesise(
    labels: np.ndarray,
    line_list: pd.DataFrame,
    grid: np.ndarray,
    resolution: float | np.ndarray,
    rv_kms: float | np.ndarray,
    atomic_tau_scale: float | np.ndarray,
    jacobian: bool,
) -> tuple[np.ndarray, np.ndarray | None]:
    y = _check_labels(labels)
    ln_grid = _ln_grid(grid)
    lines = _lines(line_list)
    n, n_pix, n_lines = y.shape[0], ln_grid.size, lines.ln_wl.size
    resolution = _per_star(resolution, n, "resolution", positive=True)
    rv = _per_star(rv_kms, n, "rv_kms", positive=False)
    if np.any(np.abs(rv) >= C_KMS):
        raise ValueError("rv_kms: |v| must be below c")
    atomic_scale = _per_star(atomic_tau_scale, n, "atomic_tau_scale", positive=True)
    tau_pix = np.zeros((n, n_pix))
    jac = np.zeros((n, N_LABELS, n_pix)) if jacobian else None
    if n_lines == 0 or n == 0:
        return np.exp(-tau_pix), jac
    _, var_v, sigma, amp, centre = _line_terms(y, lines, resolution, rv, atomic_scale)
    for s, flat, h, w, n_pad in _gaussian_blocks(ln_grid, centre, sigma):
        m = s.stop - s.start
        z_minus_1 = 2.0 * h - 1.0 if jacobian else None  # u²/σ² − 1, for the width derivatives
        term = np.exp(np.negative(h, out=h), out=h)
        term *= amp[s, :, None]  # (m, K, 2W+1): each line's optical depth in its window
        tau_pix[s] = _to_pixels(flat, term, m, n_pad, w, n_pix)
        if jacobian:
            jac[s] = _jacobian_block(y[s], lines, var_v[s], term, z_minus_1, flat, m, n_pad, w, n_pix)
    flux = np.exp(-tau_pix)
    if jacobian:
        jac *= -flux[:, None, :]
    return flux, jac


def _jacobian_block(y, lines: _Lines, var_v, term, z_minus_1, flat, m, n_pad, w, n_pix) -> np.ndarray:
    """∂τ_pix/∂y_j for one block: Σ_k term_k [∂ln τ_k/∂y_j + (u²/σ_k² − 1) ∂ln σ_k/∂y_j]."""
    out = np.empty((m, N_LABELS, n_pix))

    def accumulate(weight: np.ndarray) -> np.ndarray:
        return _to_pixels(flat, term * weight, m, n_pad, w, n_pix)

    teff = y[:, _I_TEFF, None]
    theta = 5040.0 / teff
    # Teff: ∂ln τ/∂T = ln10 χ θ/T − n/T (θ = 5040/T); ∂ln σ/∂T = (k/m)/(2 σ_v²) (thermal width).
    dlntau_t = (LN10 * lines.chi * theta - lines.theta_power) / teff
    dlnsig_t = lines.thermal / (2.0 * var_v)
    out[:, _I_TEFF] = accumulate(dlntau_t[..., None] + z_minus_1 * dlnsig_t[..., None])
    # log g: ∂ln τ/∂log g = ln10 p; the width does not depend on g.
    out[:, _I_LOGG] = accumulate((LN10 * lines.gravity_power)[None, :, None])
    # v_turb, v_broad: widths only, ∂ln σ/∂v = v/σ_v² and (v/2)/σ_v².
    out[:, _I_VTURB] = accumulate(z_minus_1 * (y[:, _I_VTURB, None] / var_v)[..., None])
    out[:, _I_VBROAD] = accumulate(z_minus_1 * (0.5 * y[:, _I_VBROAD, None] / var_v)[..., None])
    # Abundances: ∂ln τ_k/∂[X/H] = ln10 d_kX; only lines that depend on X contribute.
    for j in range(len(ELEMENTS)):
        d = lines.dlogtau[:, j]
        out[:, _I_ABUND + j] = accumulate((LN10 * d)[None, :, None]) if np.any(d != 0) else 0.0
    return out


def synthesise(
    labels: np.ndarray,
    line_list: pd.DataFrame,
    grid: np.ndarray,
    *,
    resolution: float | np.ndarray = RESOLUTION,
    rv_kms: float | np.ndarray = 0.0,
    atomic_tau_scale: float | np.ndarray = 1.0,
) -> np.ndarray:
    """Continuum-normalised toy spectra (the module docstring's formula).

    Parameters
    ----------
    labels
        (n_stars, 14) or (14,) in the order of :data:`LABEL_NAMES` (K, dex, km/s, km/s, dex…).
    line_list
        :func:`make_line_list`'s table (or a subset of its rows).
    grid
        Pixel wavelengths (Å, rest frame of the star's spectrum), e.g. :func:`wavelength_grid`.
    resolution
        Resolving power R = λ/FWHM of the Gaussian LSF, scalar or (n_stars,).
    rv_kms
        Radial velocity (km/s) shifting the lines to λ_k (1 + v/c), scalar or (n_stars,).
    atomic_tau_scale
        Factor on every atomic line's τ (the M2 line-strength gap), scalar or (n_stars,).

    Returns
    -------
    numpy.ndarray
        (n_stars, n_pixels) float64 flux in (0, 1].
    """
    flux, _ = _synthesise(labels, line_list, grid, resolution, rv_kms, atomic_tau_scale, jacobian=False)
    return flux


def synthesise_jacobian(
    labels: np.ndarray,
    line_list: pd.DataFrame,
    grid: np.ndarray,
    *,
    resolution: float | np.ndarray = RESOLUTION,
    rv_kms: float | np.ndarray = 0.0,
    atomic_tau_scale: float | np.ndarray = 1.0,
    return_flux: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Analytic ∂f/∂y_j of :func:`synthesise` for all 14 labels: the true response functions.

    Parameters
    ----------
    labels, line_list, grid, resolution, rv_kms, atomic_tau_scale
        As :func:`synthesise`.
    return_flux
        Also return the spectra (computed on the way).

    Returns
    -------
    numpy.ndarray or tuple
        (n_stars, 14, n_pixels) derivatives per unit of each label (per K, per dex, per km/s), in the order of
        :data:`LABEL_NAMES`; with ``return_flux``, ``(flux, jacobian)``. The ±5σ window truncation is held
        fixed (its effect is ≤ 4e-6 of a line's depth).
    """
    flux, jac = _synthesise(labels, line_list, grid, resolution, rv_kms, atomic_tau_scale, jacobian=True)
    return (flux, jac) if return_flux else jac


# --------------------------------------------------------------------------------------------------
# Labels
# --------------------------------------------------------------------------------------------------
#: Red-giant label distribution (spec B2.1): ranges are uniform, (μ, σ) pairs Gaussian.
TEFF_RANGE = (3900.0, 5400.0)
LOGG_PIVOT, LOGG_SLOPE_PER_K, LOGG_HALF_WIDTH = 2.5, 1.0 / 800.0, 0.25
FE_H_MEAN_SIGMA, FE_H_CLIP = (-0.2, 0.3), (-1.2, 0.4)
ALPHA_SLOPE, ALPHA_SCATTER = 0.3, 0.05
C_FE_MEAN_SIGMA, N_FE_MEAN_SIGMA, CN_CORRELATION = (-0.1, 0.1), (0.3, 0.15), -0.6
OTHER_SCATTER = 0.05
V_TURB_RANGE, V_BROAD_RANGE = (1.0, 2.0), (4.0, 10.0)
ALPHA_ELEMENTS = ("O", "Mg", "Si", "Ca", "Ti")


def _widened(lo: float, hi: float, widen: float) -> tuple[float, float]:
    extra = 0.5 * (hi - lo) * widen  # written so that widen = 0 returns lo and hi exactly
    return lo - extra, hi + extra


def sample_labels(n: int, seed: int, widen: float = 0.0) -> np.ndarray:
    """Draw red-giant labels from the distribution both domains share (spec B2.1, last bullet).

    Teff ~ U(3,900, 5,400) K; log g = 2.5 + (Teff − 4,750)/800 + U(−0.25, 0.25); [Fe/H] ~ N(−0.2, 0.3)
    clipped to [−1.2, 0.4]; α elements (O, Mg, Si, Ca, Ti) = [Fe/H] + 0.3 max(0, −[Fe/H]) + N(0, 0.05);
    [C/Fe] ~ N(−0.1, 0.1) and [N/Fe] ~ N(0.3, 0.15) with correlation −0.6 (CN processing moves C into N);
    Al, Ni = [Fe/H] + N(0, 0.05); v_turb ~ U(1, 2), v_broad ~ U(4, 10) km/s.

    Parameters
    ----------
    n
        Number of stars.
    seed
        Seed of ``numpy.random.default_rng``.
    widen
        Relative widening of every range and scatter about its centre (the Teff, v and [Fe/H] clip ranges,
        the log g band, the Gaussian σ's): 0.2 is the box 20 % wider the emulator is trained on (B2.2 point 1).

    Returns
    -------
    numpy.ndarray
        (n, 14) float64 in the order of :data:`LABEL_NAMES`.
    """
    if n < 0:
        raise ValueError(f"n = {n}: expected ≥ 0")
    if not 0.0 <= widen < 1.0:
        raise ValueError(f"widen = {widen}: expected 0 ≤ widen < 1 (v_broad's range stays positive)")
    rng = np.random.default_rng(seed)
    k = 1.0 + widen
    y = np.empty((n, N_LABELS))
    teff = rng.uniform(*_widened(*TEFF_RANGE, widen), n)
    y[:, _I_TEFF] = teff
    y[:, _I_LOGG] = (
        LOGG_PIVOT
        + (teff - REFERENCE_LABELS[_I_TEFF]) * LOGG_SLOPE_PER_K
        + rng.uniform(-LOGG_HALF_WIDTH * k, LOGG_HALF_WIDTH * k, n)
    )
    y[:, _I_VTURB] = rng.uniform(*_widened(*V_TURB_RANGE, widen), n)
    y[:, _I_VBROAD] = rng.uniform(*_widened(*V_BROAD_RANGE, widen), n)
    fe = np.clip(rng.normal(FE_H_MEAN_SIGMA[0], FE_H_MEAN_SIGMA[1] * k, n), *_widened(*FE_H_CLIP, widen))
    col = {x: _I_ABUND + i for i, x in enumerate(ELEMENTS)}
    y[:, col["Fe"]] = fe
    alpha_base = fe + ALPHA_SLOPE * np.maximum(0.0, -fe)
    for x in ALPHA_ELEMENTS:
        y[:, col[x]] = alpha_base + rng.normal(0.0, ALPHA_SCATTER * k, n)
    # [C/Fe], [N/Fe]: bivariate normal with correlation CN_CORRELATION.
    z1, z2 = rng.standard_normal((2, n))
    z_n = CN_CORRELATION * z1 + np.sqrt(1.0 - CN_CORRELATION**2) * z2
    y[:, col["C"]] = fe + C_FE_MEAN_SIGMA[0] + C_FE_MEAN_SIGMA[1] * k * z1
    y[:, col["N"]] = fe + N_FE_MEAN_SIGMA[0] + N_FE_MEAN_SIGMA[1] * k * z_n
    for x in ("Al", "Ni"):
        y[:, col[x]] = fe + rng.normal(0.0, OTHER_SCATTER * k, n)
    return y


# --------------------------------------------------------------------------------------------------
# Instrument effects and noise (experiment M2; spec B2.2 point 4)
# --------------------------------------------------------------------------------------------------
def make_telluric_list(seed: int, grid: np.ndarray, n_lines: int = N_TELLURIC) -> pd.DataFrame:
    """Telluric-residual dips at fixed observed-frame wavelengths (Å) with their largest depth.

    Returns
    -------
    pandas.DataFrame
        ``wavelength`` (Å, observed frame; uniform in pixel position over ``grid``) and ``depth`` (U(1 %, 4 %),
        the depth at telluric scale 1), sorted by wavelength.
    """
    ln_grid = _ln_grid(grid)
    rng = np.random.default_rng(seed)
    pos = rng.uniform(0.0, ln_grid.size - 1, int(n_lines))
    table = pd.DataFrame(
        {
            "wavelength": np.exp(np.interp(pos, np.arange(ln_grid.size), ln_grid)),
            "depth": rng.uniform(*TELLURIC_DEPTH_RANGE, int(n_lines)),
        }
    )
    return table.sort_values("wavelength", kind="stable").reset_index(drop=True)


def continuum_tilt(n_pixels: int, a1: np.ndarray | float, a2: np.ndarray | float) -> np.ndarray:
    """Continuum factor 1 + a₁x + a₂x² per star, x = :func:`pixel_coordinate` (shape (n_stars, n_pixels))."""
    x = pixel_coordinate(n_pixels)
    a1 = np.atleast_1d(np.asarray(a1, dtype=np.float64))
    a2 = np.atleast_1d(np.asarray(a2, dtype=np.float64))
    if a1.shape != a2.shape or a1.ndim != 1:
        raise ValueError(
            f"a1, a2: expected scalars or equal-length 1-D arrays, got {a1.shape} and {a2.shape}"
        )
    return 1.0 + a1[:, None] * x + a2[:, None] * x**2


def telluric_transmission(
    grid: np.ndarray,
    tellurics: pd.DataFrame,
    rv_kms: np.ndarray,
    scale: np.ndarray,
    resolution: np.ndarray,
    *,
    frame: str = "rest",
) -> np.ndarray:
    """Transmission exp(−Σ_t s·depth_t·G_t) of telluric-residual dips, per star.

    The dips are unresolved (Gaussian of the star's LSF width) and sit at fixed observed wavelengths λ_t. In
    ``frame="rest"`` the spectrum's grid is the star's rest frame, where they appear at λ_t/(1 + v/c);
    in ``frame="observed"`` at λ_t.

    Parameters
    ----------
    grid
        Pixel wavelengths (Å).
    tellurics
        :func:`make_telluric_list`'s table.
    rv_kms, scale, resolution
        (n_stars,) radial velocity (km/s), telluric strength factor and resolving power.
    frame
        ``"rest"`` or ``"observed"``.

    Returns
    -------
    numpy.ndarray
        (n_stars, n_pixels) in (0, 1].
    """
    if frame not in ("rest", "observed"):
        raise ValueError(f"frame = {frame!r}: expected 'rest' or 'observed'")
    for c in ("wavelength", "depth"):
        if c not in tellurics.columns:
            raise ValueError(f"tellurics: missing column {c!r}; expected make_telluric_list's table")
    ln_grid = _ln_grid(grid)
    rv = np.asarray(rv_kms, dtype=np.float64)
    n = rv.size
    scale = _per_star(scale, n, "telluric scale", positive=False)
    resolution = _per_star(resolution, n, "resolution", positive=True)
    ln_t = np.log(tellurics["wavelength"].to_numpy(np.float64))
    centre = np.broadcast_to(ln_t, (n, ln_t.size)).copy()
    if frame == "rest":
        centre -= np.log1p(rv / C_KMS)[:, None]
    sigma = np.broadcast_to((np.sqrt(_lsf_variance(resolution)) / C_KMS)[:, None], centre.shape)
    amp = scale[:, None] * tellurics["depth"].to_numpy(np.float64)
    tau = np.zeros((n, ln_grid.size))
    if ln_t.size == 0 or n == 0:
        return np.exp(-tau)
    for s, flat, h, w, n_pad in _gaussian_blocks(ln_grid, centre, sigma):
        term = np.exp(np.negative(h, out=h), out=h) * amp[s, :, None]
        tau[s] = _to_pixels(flat, term, s.stop - s.start, n_pad, w, ln_grid.size)
    return np.exp(-tau)


def noise_pattern(grid: np.ndarray) -> np.ndarray:
    """Relative error per pixel: 1 + 2 x⁶ across each chip (x ∈ [−1, 1]), divided by its median.

    APOGEE error spectra rise towards the detector edges (lower throughput); ×3 at the very edge. Chips are
    the grid's contiguous runs (one for the 2,047-pixel window, three for the ASPCAP layouts).
    """
    ln_grid = _ln_grid(grid)
    p = np.empty(ln_grid.size)
    for a, b in _segments(ln_grid):
        x = np.linspace(-1.0, 1.0, b - a) if b - a > 1 else np.zeros(1)
        p[a:b] = 1.0 + EDGE_RISE * x**EDGE_POWER
    return p / np.median(p)


def add_noise(
    flux: np.ndarray,
    grid: np.ndarray,
    seed: int | np.random.Generator,
    *,
    snr_range: tuple[float, float] = SNR_RANGE,
    bad_pixel_fraction: float = BAD_PIXEL_FRACTION,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Gaussian noise of the observed domain (spec B2.2 point 4, M1 and M2).

    σ = :func:`noise_pattern` / S/N with S/N log-uniform in ``snr_range`` per star (the median S/N per
    pixel), and a random ``bad_pixel_fraction`` of pixels with σ = 1 (noise drawn with σ = 1 too, like the
    authors' mock whose errors were clipped to [0, 1]).

    Parameters
    ----------
    flux
        (n_stars, n_pixels) clean spectra.
    grid
        Their pixel wavelengths (for the chip layout of the pattern).
    seed
        Seed or generator.
    snr_range, bad_pixel_fraction
        As above.

    Returns
    -------
    tuple
        ``(noisy, sigma, snr, bad)``: (n, n_pixels) noisy flux and σ, (n,) S/N, (n, n_pixels) bool bad pixels.
    """
    flux = np.asarray(flux, dtype=np.float64)
    ln_grid = _ln_grid(grid)
    if flux.ndim != 2 or flux.shape[1] != ln_grid.size:
        raise ValueError(f"flux: expected shape (n_stars, {ln_grid.size}), got {flux.shape}")
    lo, hi = snr_range
    if not 0 < lo <= hi:
        raise ValueError(f"snr_range = {snr_range}: expected 0 < lo ≤ hi")
    if not 0.0 <= bad_pixel_fraction < 1.0:
        raise ValueError(f"bad_pixel_fraction = {bad_pixel_fraction}: expected [0, 1)")
    rng = np.random.default_rng(seed)
    n = flux.shape[0]
    snr = _log_uniform(rng, lo, hi, n)
    sigma = noise_pattern(grid)[None, :] / snr[:, None]
    bad = rng.uniform(size=flux.shape) < bad_pixel_fraction
    sigma = np.where(bad, 1.0, sigma)
    noisy = flux + sigma * rng.standard_normal(flux.shape)
    return noisy, sigma, snr, bad


@dataclass(frozen=True)
class ObservedSpectra:
    """Output of :func:`simulate_observed`.

    Attributes
    ----------
    flux
        (n, n_pixels) observed spectra (noisy unless ``noise=False``).
    clean
        (n, n_pixels) the same without noise.
    sigma
        (n, n_pixels) noise σ (zeros without noise; 1 on bad pixels).
    bad_pixels
        (n, n_pixels) bool.
    truth
        One row per star: ``resolution``, ``a1``, ``a2``, ``rv_kms``, ``telluric_scale``,
        ``atomic_tau_scale``, ``snr`` (NaN without noise).
    """

    flux: np.ndarray
    clean: np.ndarray
    sigma: np.ndarray
    bad_pixels: np.ndarray
    truth: pd.DataFrame


def simulate_observed(
    labels: np.ndarray,
    line_list: pd.DataFrame,
    grid: np.ndarray,
    seed: int,
    *,
    instrument: bool = True,
    noise: bool = True,
    tellurics: pd.DataFrame | None = None,
    resolution_range: tuple[float, float] = RESOLUTION_RANGE,
    tilt_sigma: float = TILT_SIGMA,
    cool_teff: float = COOL_TEFF,
    cool_atomic_tau_scale: float = COOL_ATOMIC_TAU_SCALE,
    rv_sigma_kms: float = RV_SIGMA_KMS,
    snr_range: tuple[float, float] = SNR_RANGE,
    bad_pixel_fraction: float = BAD_PIXEL_FRACTION,
    frame: str = "rest",
) -> ObservedSpectra:
    """The toy's observed domain: instrument effects (M2) and noise, with the truth per star.

    With ``instrument=True`` (M2): R ~ U(``resolution_range``), continuum tilt (1 + a₁x + a₂x²) with
    a ~ N(0, ``tilt_sigma``), atomic τ × ``cool_atomic_tau_scale`` for Teff < ``cool_teff``, and telluric
    residuals (``tellurics``, default :func:`make_telluric_list` with seed :data:`TELLURIC_SEED`) scaled per
    star by U(0, 1) for a radial velocity v ~ N(0, ``rv_sigma_kms``). In ``frame="rest"`` (default, like
    APOGEE's rest-frame spectra and the synthetic domain) the stellar lines stay at rest and the dips move
    by −v; in ``frame="observed"`` the stellar spectrum is shifted by +v and the dips stay put — the same
    relative shift. With ``instrument=False`` (M1 with ``observed_source: synthesiser``) the spectrum is
    :func:`synthesise` at R = 22,500. ``noise`` adds :func:`add_noise`.

    Parameters
    ----------
    labels, line_list, grid
        As :func:`synthesise`.
    seed
        Seed; instrument draws and noise use independent streams of ``numpy.random.SeedSequence(seed)``.
    instrument, noise, tellurics, resolution_range, tilt_sigma, cool_teff, cool_atomic_tau_scale,
    rv_sigma_kms, snr_range, bad_pixel_fraction, frame
        As above.

    Returns
    -------
    ObservedSpectra
    """
    if frame not in ("rest", "observed"):
        raise ValueError(f"frame = {frame!r}: expected 'rest' or 'observed'")
    y = _check_labels(labels)
    n_pix = _ln_grid(grid).size
    n = y.shape[0]
    inst_ss, noise_ss = np.random.SeedSequence(seed).spawn(2)
    rng = np.random.default_rng(inst_ss)
    if instrument:
        lo, hi = resolution_range
        if not 0 < lo <= hi:
            raise ValueError(f"resolution_range = {resolution_range}: expected 0 < lo ≤ hi")
        resolution = rng.uniform(lo, hi, n)
        a1, a2 = rng.normal(0.0, tilt_sigma, (2, n))
        rv = rng.normal(0.0, rv_sigma_kms, n)
        t_scale = rng.uniform(0.0, 1.0, n)
        atomic_scale = np.where(y[:, _I_TEFF] < cool_teff, cool_atomic_tau_scale, 1.0)
    else:
        resolution = np.full(n, RESOLUTION)
        a1 = a2 = rv = t_scale = np.zeros(n)
        atomic_scale = np.ones(n)
    stellar_rv = rv if frame == "observed" else np.zeros(n)
    clean = synthesise(
        y, line_list, grid, resolution=resolution, rv_kms=stellar_rv, atomic_tau_scale=atomic_scale
    )
    if instrument:
        if tellurics is None:
            tellurics = make_telluric_list(TELLURIC_SEED, grid)
        clean = clean * telluric_transmission(grid, tellurics, rv, t_scale, resolution, frame=frame)
        clean = clean * continuum_tilt(n_pix, a1, a2)
    if noise:
        flux, sigma, snr, bad = add_noise(
            clean,
            grid,
            np.random.default_rng(noise_ss),
            snr_range=snr_range,
            bad_pixel_fraction=bad_pixel_fraction,
        )
    else:
        flux, sigma, snr, bad = (
            clean.copy(),
            np.zeros_like(clean),
            np.full(n, np.nan),
            np.zeros(clean.shape, bool),
        )
    truth = pd.DataFrame(
        {
            "resolution": resolution,
            "a1": a1,
            "a2": a2,
            "rv_kms": rv,
            "telluric_scale": t_scale,
            "atomic_tau_scale": atomic_scale,
            "snr": snr,
        }
    )
    return ObservedSpectra(flux=flux, clean=clean, sigma=sigma, bad_pixels=bad, truth=truth)
