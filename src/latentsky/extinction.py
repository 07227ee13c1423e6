"""Extinction in the Gaia bands — the one place it is stated: per unit of Bayestar reddening, and per A_0.

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


# --------------------------------------------------------------------------------------------------
# Gaia DR2 extinction as a function of colour and A_0 (Gaia Collaboration, Babusiaux et al. 2018, Eq. 1)
# --------------------------------------------------------------------------------------------------
#: Table 1 of Babusiaux et al. (2018): k_X = A_X / A_0 = c1 + c2 C + c3 C² + c4 C³ + c5 A_0 + c6 A_0² +
#: c7 C A_0, with C = (BP−RP)_0 and A_0 the extinction at 550 nm (Danielski et al. 2018). The bands' k
#: depend on the star's colour because a broad band sees a redder mean wavelength for a redder star.
BABUSIAUX2018_K: dict[str, tuple[float, ...]] = {
    "G": (0.9761, -0.1704, 0.0086, 0.0011, -0.0438, 0.0013, 0.0099),
    "BP": (1.1517, -0.0871, -0.0333, 0.0173, -0.0230, 0.0006, 0.0043),
    "RP": (0.6104, -0.0170, -0.0026, -0.0017, -0.0078, 0.00005, 0.0006),
}


def gaia_k(band: str, bp_rp0: np.ndarray, a0: np.ndarray) -> np.ndarray:
    """A_band / A_0 of a star of intrinsic colour ``bp_rp0`` behind ``a0`` magnitudes (Babusiaux+18 Eq. 1)."""
    c1, c2, c3, c4, c5, c6, c7 = BABUSIAUX2018_K[band]
    c = np.asarray(bp_rp0, dtype=np.float64)
    a = np.asarray(a0, dtype=np.float64)
    return c1 + c2 * c + c3 * c**2 + c4 * c**3 + c5 * a + c6 * a**2 + c7 * c * a


def gaia_reddening(bp_rp0: np.ndarray, a0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(A_G, E(BP−RP)) of a star of intrinsic colour ``bp_rp0`` behind ``a0`` (mag) — to redden a model."""
    a = np.asarray(a0, dtype=np.float64)
    return gaia_k("G", bp_rp0, a) * a, (gaia_k("BP", bp_rp0, a) - gaia_k("RP", bp_rp0, a)) * a


def gaia_deredden(bp_rp: np.ndarray, a0: np.ndarray, iterations: int = 60) -> tuple[np.ndarray, np.ndarray]:
    """Intrinsic (BP−RP)_0 and A_G of stars observed at ``bp_rp`` behind ``a0`` (mag).

    The coefficients depend on the unknown intrinsic colour, so (BP−RP)_0 = BP−RP − E(BP−RP)((BP−RP)_0, A_0)
    is solved by fixed-point iteration from the observed colour. The step contracts by |dE(BP−RP)/dC|, which
    is ~0.05 A_0 for FGK colours but reaches ~0.7 for a Mira behind A_0 = 4.5: 60 steps bring every star of
    (BP−RP)_0 < 3 and A_0 < 5 to 10⁻⁸ mag.
    """
    observed = np.asarray(bp_rp, dtype=np.float64)
    a = np.asarray(a0, dtype=np.float64)
    c = observed.copy()
    for _ in range(iterations):
        c = observed - gaia_reddening(c, a)[1]
    return c, gaia_reddening(c, a)[0]


def a0_from_ogle(e_v_i: np.ndarray, a_i: np.ndarray) -> np.ndarray:
    """A_0 ≈ A_V = A_I + E(V−I) from an OGLE-style reddening map (I-band extinction and V−I reddening).

    The OGLE maps (Nataf et al. 2013 for the bulge, Skowron et al. 2021 for the Magellanic Clouds) give E(V−I)
    and A_I, not A_V; their sum is A_V without assuming an extinction law — which matters towards the bulge,
    where A_I/E(V−I) ≈ 1.2 instead of the 1.5 of R_V = 3.1 (Nataf et al. 2013). A_V at 540 nm stands for
    Babusiaux's A_0 at 550 nm (1 % apart).
    """
    return np.asarray(a_i, dtype=np.float64) + np.asarray(e_v_i, dtype=np.float64)
