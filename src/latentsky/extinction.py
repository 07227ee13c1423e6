"""Conversion of Bayestar reddening to Gaia-band extinction — the one place it is stated.

Cranmer et al. (paper 004, Sec. 3.2) give, for a 7000 K blackbody through an R_V = 3.1 O'Donnell (1994)
law, extinctions per magnitude of **E(g−r)** (Pan-STARRS 1)::

    A_G = 2.71 E(g−r),   E(BP−RP) = 0.85 E(g−r),   E(BP−G) = 0.39 E(g−r).

Bayestar does not report E(g−r) but reddening in its own unit E: Green et al. (2019, Table 1) give the
PS1 extinction per unit of Bayestar19 as R_g = 3.518 and R_r = 2.617 (Bayestar17, Green et al. 2018: the
same difference), so one Bayestar unit is E(g−r) = R_g − R_r = 0.901 mag. Per Bayestar unit, which is what
the map and this package's ``reddening`` columns hold, the coefficients are therefore 0.901 times the
paper's: A_G = 2.442 E, E(BP−RP) = 0.766 E, E(BP−G) = 0.351 E (:data:`CRANMER2020`). Applying the paper's
numbers to the map's E directly would make every extinction 11 % too large.

Both the simulated survey (to redden true photometry) and the distance model (to deredden observed
photometry) use :data:`CRANMER2020`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Green et al. (2019), Table 1: PS1 g and r extinction per unit of Bayestar19 reddening.
BAYESTAR19_R_G, BAYESTAR19_R_R = 3.518, 2.617
#: One Bayestar unit in magnitudes of E(g−r).
BAYESTAR_E_GR_PER_UNIT = BAYESTAR19_R_G - BAYESTAR19_R_R
#: Paper 004 Sec. 3.2: (A_G, E(BP−RP), E(BP−G)) per magnitude of E(g−r).
PAPER004_PER_E_GR = (2.71, 0.85, 0.39)


@dataclass(frozen=True)
class GaiaExtinctionCoefficients:
    """Extinction per unit Bayestar reddening E in Gaia DR2 bands."""

    a_g: float
    e_bp_rp: float
    e_bp_g: float

    @classmethod
    def per_bayestar_unit(cls, per_e_gr: tuple[float, float, float]) -> GaiaExtinctionCoefficients:
        """Coefficients per Bayestar unit from coefficients per magnitude of E(g−r)."""
        return cls(*(c * BAYESTAR_E_GR_PER_UNIT for c in per_e_gr))

    @property
    def a_bp(self) -> float:
        """A_BP = A_G + E(BP−G)."""
        return self.a_g + self.e_bp_g

    @property
    def a_rp(self) -> float:
        """A_RP = A_BP − E(BP−RP)."""
        return self.a_bp - self.e_bp_rp


CRANMER2020 = GaiaExtinctionCoefficients.per_bayestar_unit(PAPER004_PER_E_GR)


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
