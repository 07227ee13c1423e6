"""Conversion of Bayestar reddening to Gaia-band extinction.

Cranmer et al. (paper 004, Sec. 3.2, eq. after "Dust estimation"): for a 7000 K blackbody through an
R_V = 3.1 O'Donnell (1994) law, with E the Bayestar reddening in its native E(g−r)-like units::

    A_G = 2.71 E,   E(BP−RP) = 0.85 E,   E(BP−G) = 0.39 E.

Both the simulated survey (to redden true photometry) and the distance model (to deredden observed
photometry) use these numbers, so they live in exactly one place.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class GaiaExtinctionCoefficients:
    """Extinction per unit Bayestar reddening E in Gaia DR2 bands."""

    a_g: float = 2.71
    e_bp_rp: float = 0.85
    e_bp_g: float = 0.39

    @property
    def a_bp(self) -> float:
        """A_BP = A_G + E(BP−G)."""
        return self.a_g + self.e_bp_g

    @property
    def a_rp(self) -> float:
        """A_RP = A_BP − E(BP−RP)."""
        return self.a_bp - self.e_bp_rp


CRANMER2020 = GaiaExtinctionCoefficients()


def redden(
    abs_g: np.ndarray,
    bp_rp0: np.ndarray,
    bp_g0: np.ndarray,
    reddening: np.ndarray,
    coeffs: GaiaExtinctionCoefficients = CRANMER2020,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Apply extinction: return (G − DM shift excluded, BP−RP, BP−G) reddened by ``reddening``.

    ``abs_g`` may be an absolute or apparent magnitude; only A_G is added to it.
    """
    e = np.asarray(reddening, dtype=float)
    return (
        np.asarray(abs_g) + coeffs.a_g * e,
        np.asarray(bp_rp0) + coeffs.e_bp_rp * e,
        np.asarray(bp_g0) + coeffs.e_bp_g * e,
    )


def deredden(
    g: np.ndarray,
    bp_rp: np.ndarray,
    bp_g: np.ndarray,
    reddening: np.ndarray,
    coeffs: GaiaExtinctionCoefficients = CRANMER2020,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inverse of :func:`redden`."""
    e = np.asarray(reddening, dtype=float)
    return (
        np.asarray(g) - coeffs.a_g * e,
        np.asarray(bp_rp) - coeffs.e_bp_rp * e,
        np.asarray(bp_g) - coeffs.e_bp_g * e,
    )
