"""`latentsky benchmark xp`: the printed extrapolations follow from the measured rates (timings themselves are
never asserted)."""

import pytest
import torch

from latentsky.benchmark import GAIA_DR3_XP_SPECTRA, PAPER_XP_TRAINING_STARS, benchmark_xp, format_xp_results


def test_xp_benchmark_extrapolates_from_its_rates():
    r = benchmark_xp(torch.device("cpu"), n_encode=1024, n_train=512)
    assert set(r["presets"]) == {"paper", "code"}
    for p in r["presets"].values():
        assert p["encode_stars_per_s"] > 0 and p["train_stars_per_s"] > 0
        assert p["dr3_encode_hours"] == pytest.approx(GAIA_DR3_XP_SPECTRA / p["encode_stars_per_s"] / 3600)
        assert p["paper_epoch_s"] == pytest.approx(PAPER_XP_TRAINING_STARS / p["train_stars_per_s"])
    text = format_xp_results(r)
    assert "220M" in text and "preset code" in text
