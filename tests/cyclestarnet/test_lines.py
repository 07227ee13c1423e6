"""Transfer, response functions, recovery and attribution (latentsky.cyclestarnet.lines) against hand
computations and finite differences, on a small network and a smooth analytic stand-in for the emulator."""

import numpy as np
import pandas as pd
import pytest
import torch

from latentsky.cyclestarnet.lines import (
    FluxScale,
    attribute_features,
    feature_recovery,
    recovery_over_stars,
    response_functions,
    transfer_flux,
)
from latentsky.cyclestarnet.model import CycleStarNet

LABELS = ["Teff", "[C/H]", "[Fe/H]"]


def _spectrum(y: torch.Tensor) -> torch.Tensor:
    """A smooth stand-in for the emulator: two Gaussian lines whose depths follow [C/H] and [Fe/H]."""
    x = torch.linspace(0, 1, 219, dtype=y.dtype)
    c = 0.3 * torch.exp(y[:, 1:2]) * torch.exp(-0.5 * ((x - 0.3) / 0.02) ** 2)
    fe = 0.2 * torch.exp(y[:, 2:3]) * torch.exp(-0.5 * ((x - 0.7) / 0.02) ** 2)
    return 1 - c - fe + 0.0 * y[:, :1] * x


def test_transfer_masks_before_standardising(small_network):
    torch.manual_seed(0)
    model = CycleStarNet(small_network).eval()
    scale = FluxScale(0.95, 0.1)
    flux = _spectrum(torch.zeros(2, 3))
    mask = torch.zeros(219, dtype=torch.bool)
    mask[60:70] = True
    with torch.no_grad():
        a = transfer_flux(model, flux, mask, scale, torch.zeros(1, 1, 2))
        masked = torch.where(mask, torch.ones_like(flux), flux)
        b = scale.to_flux(model.synth_to_obs(scale.to_x(masked), torch.zeros(1, 1, 2)))
        # What is under the mask does not reach the network.
        c = transfer_flux(model, flux - 0.5 * mask, mask, scale, torch.zeros(1, 1, 2))
    assert torch.equal(a, b) and torch.equal(a, c)


def test_autograd_response_equals_finite_differences(small_network):
    torch.manual_seed(1)
    model = CycleStarNet(small_network).eval().double()
    scale = FluxScale(0.95, 0.1)
    mask = torch.zeros(219, dtype=torch.bool)
    mask[60:70] = True
    y = torch.tensor([0.1, 0.2, -0.1], dtype=torch.float64)
    z_sp = torch.zeros(1, 1, 2, dtype=torch.float64)
    auto = response_functions(model, _spectrum, y, mask, scale, z_sp)
    fd = response_functions(model, _spectrum, y, mask, scale, z_sp, method="finite_difference", delta=1e-5)
    # Forward differences of 1e-5 in float64: truncation error ~ δ·f''/2 ≈ 1e-5 of the peak (the lines' depths
    # are exponential in the labels), rounding ~ 1e-16/δ — far below 1 % of the peak.
    for key in ("J_synth", "J_transfer"):
        peak = np.abs(auto[key]).max()
        assert np.abs(auto[key] - fd[key]).max() < 0.01 * peak, key
    # The synthetic model is blind under the mask: its response there is exactly zero (the notebook's assert).
    assert np.all(auto["J_synth"][:, 60:70] == 0.0)
    # And it is the analytic derivative elsewhere: ∂f/∂[Fe/H] = −0.2 e^[Fe/H] φ at the Fe line's centre.
    x = np.linspace(0, 1, 219)
    k = int(np.argmin(np.abs(x - 0.7)))
    phi = np.exp(-0.5 * ((x[k] - 0.7) / 0.02) ** 2)
    assert auto["J_synth"][2, k] == pytest.approx(-0.2 * np.exp(-0.1) * phi, rel=1e-5)
    np.testing.assert_allclose(auto["J_diff"], auto["J_transfer"] - auto["J_synth"])
    with pytest.raises(ValueError, match="not one of autograd, finite_difference"):
        response_functions(model, _spectrum, y, mask, scale, None, method="secant")


def test_recovery_and_false_fill_by_hand():
    features = pd.DataFrame(
        {"element": ["Fe", "C"], "first_pixel": [2, 6], "last_pixel": [4, 7], "masked": [True, False]}
    )
    truth = np.array([1, 1, 0.8, 0.6, 0.8, 1, 0.7, 0.7, 1.0])
    synth = truth.copy()
    synth[2:5] = 1.0  # the masked Fe feature is missing from the synthetic model
    transferred = synth.copy()
    transferred[2:5] = [0.9, 0.8, 0.9]  # half of the missing absorption put back
    transferred[6:8] = [0.65, 0.7]  # 0.05 of extra absorption on the unmasked C feature
    out = feature_recovery(features, transferred, synth, truth)
    # Missing 0.2 + 0.4 + 0.2 = 0.8, recovered 0.1 + 0.2 + 0.1 = 0.4; C's own absorption 0.6, extra 0.05.
    assert out.loc[0, "recovery_ratio"] == pytest.approx(0.5) and np.isnan(out.loc[0, "false_fill"])
    assert out.loc[1, "false_fill"] == pytest.approx(0.05 / 0.6) and np.isnan(out.loc[1, "recovery_ratio"])
    many = recovery_over_stars(
        features, np.stack([transferred, synth]), np.stack([synth, synth]), np.stack([truth, truth])
    )
    assert (
        many[0, 0] == pytest.approx(0.5) and many[1, 0] == pytest.approx(0.0) and np.isnan(many[:, 1]).all()
    )


def test_attribution_picks_the_largest_deepening_and_scores_c_or_n():
    features = pd.DataFrame(
        {
            "element": ["Fe", "N", "Fe"],
            "first_pixel": [0, 3, 6],
            "last_pixel": [2, 4, 7],
            "masked": [True] * 3,
        }
    )
    j = np.zeros((3, 8))
    j[2, 0:3] = -1.0  # more Fe deepens feature 0
    j[1, 0:3] = -0.2
    j[1, 3:5] = -0.5  # C deepens the N (CN) feature more than N does
    j[2, 6:8] = -0.1
    j[1, 6:8] = -0.3  # and the second Fe feature: wrongly C
    out = attribute_features(features, j, LABELS, ["C", "Fe"])
    assert out["attributed_element"].tolist() == ["Fe", "C", "C"]
    assert out["correct"].tolist() == [True, False, False]
    assert out["correct_c_or_n"].tolist() == [True, True, False]
    assert out.loc[0, "top1_score"] == pytest.approx(3.0) and out.loc[0, "top2_score"] == pytest.approx(0.6)
    assert out["in_top2"].tolist() == [True, False, True]
