"""Gaia-band extinction as a function of colour (Babusiaux et al. 2018) and the colour–T_eff relation of
Mucciarelli et al. (2021): hand-computed values from the published coefficients, inverses, ranges."""

from __future__ import annotations

import numpy as np
import pytest

from latentsky.extinction import a0_from_ogle, gaia_deredden, gaia_k, gaia_reddening
from latentsky.photometry import (
    MB21_BP_RP,
    bp_rp0_from_teff,
    class_bp_rp0,
    class_teff,
    teff_from_bp_rp0,
)


def test_babusiaux_coefficients_by_hand():
    # k_G at (BP−RP)_0 = 1, A_0 = 1: the sum of Table 1's seven G coefficients.
    assert gaia_k("G", 1.0, 1.0) == pytest.approx(
        0.9761 - 0.1704 + 0.0086 + 0.0011 - 0.0438 + 0.0013 + 0.0099
    )
    # k_BP − k_RP at C = 0.5, A_0 = 2 term by term.
    bp = 1.1517 - 0.0871 * 0.5 - 0.0333 * 0.25 + 0.0173 * 0.125 - 0.0230 * 2 + 0.0006 * 4 + 0.0043 * 1.0
    rp = 0.6104 - 0.0170 * 0.5 - 0.0026 * 0.25 - 0.0017 * 0.125 - 0.0078 * 2 + 0.00005 * 4 + 0.0006 * 1.0
    a_g, e_bp_rp = gaia_reddening(0.5, 2.0)
    assert e_bp_rp == pytest.approx(2.0 * (bp - rp))
    # A redder star sees less extinction in G per A_0 (its mean wavelength in G is longer).
    assert gaia_k("G", 1.5, 1.0) < gaia_k("G", 0.5, 1.0)


@pytest.mark.parametrize("a0", [0.0, 0.3, 2.0, 4.5])
def test_deredden_inverts_redden(a0):
    bp_rp0 = np.array([0.2, 0.6, 1.0, 1.6, 2.5])
    a_g, e = gaia_reddening(bp_rp0, a0)
    back, a_g_back = gaia_deredden(bp_rp0 + e, np.full(5, a0))
    np.testing.assert_allclose(back, bp_rp0, atol=1e-6)
    np.testing.assert_allclose(a_g_back, a_g, atol=1e-6)


def test_a0_from_an_ogle_map_needs_no_extinction_law():
    # Nataf et al. (2013) give A_I and E(V−I): A_V = A_I + E(V−I), whatever A_I/E(V−I) is along the sight line.
    assert a0_from_ogle(0.9, 1.1) == pytest.approx(2.0)


def test_mucciarelli_relation_by_hand():
    # Giant, [Fe/H] = −1, (BP−RP)_0 = 0.8: θ = b0 + b1 C + b2 C² + b3 z + b4 z² + b5 z C.
    b0, b1, b2, b3, b4, b5 = MB21_BP_RP["giant"]["b"]
    theta = b0 + b1 * 0.8 + b2 * 0.64 + b3 * -1.0 + b4 * 1.0 + b5 * -0.8
    teff, valid = teff_from_bp_rp0(np.array([0.8]), -1.0, False)
    assert teff[0] == pytest.approx(5040.0 / theta)
    assert 5500 < teff[0] < 5700 and valid[0]
    # The Sun (5772 K, BP−RP ≈ 0.82) on the dwarf relation at solar metallicity: within the relation's 61 K.
    assert teff_from_bp_rp0(np.array([0.82]), 0.0, True)[0][0] == pytest.approx(5772.0, abs=100.0)
    # Outside the fitted colour range the value is flagged, not published as measured.
    _, valid = teff_from_bp_rp0(np.array([0.2, 0.35, 1.6, 2.5]), 0.0, np.array([False, True, True, False]))
    assert valid.tolist() == [False, False, False, False]


def test_inverse_and_class_inputs():
    teff = np.array([3000.0, 4500.0, 5800.0, 7000.0, 9000.0])
    for dwarf in (False, True):
        for feh in (-1.5, 0.0):
            c = bp_rp0_from_teff(teff, feh, dwarf)
            assert np.all(np.diff(c) < 0)  # hotter is bluer
            np.testing.assert_allclose(teff_from_bp_rp0(c, feh, dwarf)[0], teff, rtol=1e-10)
    classes = np.array(["RRLYR", "DSCT", "CEP", "UNKNOWN"])
    c = class_bp_rp0(np.full(4, 6500.0), classes)
    np.testing.assert_allclose(class_teff(c, classes)[0], 6500.0, rtol=1e-10)
    # RR Lyrae (giant relation, [Fe/H] −1) and δ Scuti (dwarf, solar) of one T_eff differ in colour.
    assert abs(c[0] - c[1]) > 0.01
