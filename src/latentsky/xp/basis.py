"""The Gaia DR3 BP/RP basis through GaiaXPy — the one place the package touches GaiaXPy's internals.

Gaia DR3 publishes XP spectra as 55 BP and 55 RP coefficients of a continuous basis. GaiaXPy's ``calibrate``
turns them into an absolute flux on a 343-point grid, 336–1020 nm in 2 nm steps (spec A2.3 [verified]):

    f(λ) = w_bp(λ) · Σ_k c_bp,k D_bp,k(λ) + w_rp(λ) · Σ_k c_rp,k D_rp,k(λ)

with D_bp, D_rp (55 × 343) the sampled basis of the default DR3 models (BP ``v375wi``, RP ``v142r``) and
w_bp, w_rp (343) the merge weights (1/0 below/above the BP/RP crossover and a linear ramp between). In
matrix form f = A c with the design matrix A = [w_bp D_bpᵀ | w_rp D_rpᵀ] (343 × 110) and c = (c_bp, c_rp).
:func:`sampled_spectrum` is exactly ``gaiaxpy.calibrate``'s flux (W m⁻² nm⁻¹ for coefficients in e⁻/s).

Going the other way, SED → coefficients, is ill-posed (A has a condition number of ~2e7 per band: the
high-order bases are nearly degenerate on a 2 nm grid), so the simulator uses one fixed ridge operator on
column-normalised A (:func:`projection_operator`, spec A2.3):

    S = diag(‖A_col‖)⁻¹,   R = S (S AᵀA S + λ I)⁻¹ S Aᵀ,   c = R f,   λ = 1e-4.

A·R·f reproduces smooth SEDs (blackbodies 3,000–15,000 K, A0 0–5) to ≤ 2 % over 400–1000 nm; the
simulated "true XP spectrum" is then A·c by construction, so GaiaXPy calibrates it back exactly.

GaiaXPy renamed its loaders between releases (``_load_xpsampling_from_xml`` / ``_load_xpmerge_from_xml`` in
the 1.x series that xp_vae's scripts call, no underscore in 2.x; spec D2): both spellings are tried. The
basis is loaded once per process (``functools.lru_cache``) — parsing the XML costs ~2 s.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

#: Coefficients per band in Gaia DR3 XP continuous spectra.
N_COEFFICIENTS_PER_BAND = 55
#: BP followed by RP, the order used throughout (spec A1.1: index 0–54 BP, 55–109 RP).
N_COEFFICIENTS = 2 * N_COEFFICIENTS_PER_BAND
#: Wavelengths of GaiaXPy's default sampling: 336–1020 nm in 2 nm steps.
N_WAVELENGTHS = 343
#: Ridge strength of the fixed SED → coefficient operator, on unit-norm design-matrix columns (spec A2.3).
DEFAULT_RIDGE_LAMBDA = 1e-4


def import_gaiaxpy():
    """The ``gaiaxpy`` package, imported with matplotlib's settings restored afterwards: its plotter module sets
    ``text.usetex = True`` globally on import (gaiaxpy 2.1.5, ``plotter/plotter.py``), after which every
    figure of the process needs a LaTeX installation. Import GaiaXPy through this (once is enough: Python
    caches the module)."""
    import matplotlib

    with matplotlib.rc_context():
        import gaiaxpy  # deferred: importing gaiaxpy costs ~1 s
    return gaiaxpy


def _gaiaxpy_loader(name: str):
    """GaiaXPy's XML loader ``name``, under its 2.x name or its 1.x private name (spec D2)."""
    import_gaiaxpy()
    from gaiaxpy.core import config

    for candidate in (name, f"_{name}"):
        loader = getattr(config, candidate, None)
        if loader is not None:
            return loader
    raise ImportError(
        f"gaiaxpy.core.config has neither {name} nor _{name}; the installed GaiaXPy is not supported "
        "(latentsky pins gaiaxpy 2.1.5)"
    )


@lru_cache(maxsize=1)
def _basis() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(wavelength grid, D_bp, D_rp, w_bp, w_rp) of GaiaXPy's default DR3 configuration, read-only."""
    sampling = _gaiaxpy_loader("load_xpsampling_from_xml")()
    merge_out = _gaiaxpy_loader("load_xpmerge_from_xml")()
    # 2.x returns (sampling_grid, {"bp": w_bp, "rp": w_rp}); guard against a bare dict as well.
    if isinstance(merge_out, tuple):
        grid, merge = merge_out
    else:
        grid, merge = None, merge_out
    d_bp = np.asarray(sampling["bp"], dtype=np.float64)
    d_rp = np.asarray(sampling["rp"], dtype=np.float64)
    w_bp = np.asarray(merge["bp"], dtype=np.float64)
    w_rp = np.asarray(merge["rp"], dtype=np.float64)
    if grid is None:
        grid = np.linspace(336.0, 1020.0, N_WAVELENGTHS)
    grid = np.asarray(grid, dtype=np.float64)
    expected = (N_COEFFICIENTS_PER_BAND, N_WAVELENGTHS)
    if d_bp.shape != expected or d_rp.shape != expected or grid.shape != (N_WAVELENGTHS,):
        raise ValueError(
            f"unexpected GaiaXPy basis shapes: D_bp {d_bp.shape}, D_rp {d_rp.shape}, grid {grid.shape}"
        )
    out = (grid, d_bp, d_rp, w_bp, w_rp)
    for arr in out:
        arr.setflags(write=False)
    return out


def xp_wavelength_grid() -> np.ndarray:
    """GaiaXPy's default sampling grid (nm): 343 values, 336–1020 in steps of 2 (read-only)."""
    return _basis()[0]


@lru_cache(maxsize=1)
def design_matrix() -> np.ndarray:
    """A = [w_bp D_bpᵀ | w_rp D_rpᵀ] (343 × 110, read-only): flux = A @ (c_bp, c_rp), as ``calibrate``."""
    _, d_bp, d_rp, w_bp, w_rp = _basis()
    a = np.concatenate([w_bp[:, None] * d_bp.T, w_rp[:, None] * d_rp.T], axis=1)
    a.setflags(write=False)
    return a


def sampled_spectrum(coefficients: np.ndarray) -> np.ndarray:
    """Flux on :func:`xp_wavelength_grid` of coefficients (n, 110) [BP 0–54, RP 55–109] → (n, 343).

    Identical to ``gaiaxpy.calibrate`` with its default sampling and no truncation (W m⁻² nm⁻¹ for
    coefficients in e⁻/s). A single spectrum (110,) gives (343,).
    """
    c = np.asarray(coefficients, dtype=np.float64)
    if c.shape[-1] != N_COEFFICIENTS:
        raise ValueError(f"expected {N_COEFFICIENTS} coefficients in the last axis, got shape {c.shape}")
    return c @ design_matrix().T


@lru_cache(maxsize=4)
def projection_operator(lam: float = DEFAULT_RIDGE_LAMBDA) -> np.ndarray:
    """The fixed ridge operator R (110 × 343, read-only) of spec A2.3: c = R f.

    R = S (S AᵀA S + λ I)⁻¹ S Aᵀ with S = diag(‖A_col‖)⁻¹: ridge regression of f on the column-normalised
    design matrix, mapped back to coefficient units. Normalising the columns first makes λ a relative
    strength (the columns' norms span many decades); R is linear, so the SED's overall scale is irrelevant.
    """
    if not lam > 0:
        raise ValueError(f"ridge lambda must be > 0, got {lam}")
    a = design_matrix()
    s = 1.0 / np.linalg.norm(a, axis=0)
    a_s = a * s[None, :]
    gram = a_s.T @ a_s + lam * np.eye(N_COEFFICIENTS)
    r = s[:, None] * np.linalg.solve(gram, a_s.T)
    r.setflags(write=False)
    return r


def project_sed(flux: np.ndarray, lam: float = DEFAULT_RIDGE_LAMBDA) -> np.ndarray:
    """Coefficients (n, 110) of SEDs sampled on :func:`xp_wavelength_grid` (n, 343), via R (spec A2.3).

    A single SED (343,) gives (110,). The coefficients are in the units of ``flux`` divided by those of
    :func:`design_matrix` (e⁻/s for a flux in W m⁻² nm⁻¹).
    """
    f = np.asarray(flux, dtype=np.float64)
    if f.shape[-1] != N_WAVELENGTHS:
        raise ValueError(f"expected {N_WAVELENGTHS} wavelengths in the last axis, got shape {f.shape}")
    return f @ projection_operator(lam).T
