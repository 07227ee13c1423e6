"""`latentsky benchmark bgs`: the figures it prints are consistent with each other (timings themselves are
not asserted; DESIGN.md), and bad arguments get one line."""

import math

import torch

from latentsky.benchmark import (
    DESI_DR1_BGS_SPECTRA,
    PAPER_BGS_TRAINING_SPECTRA,
    benchmark_bgs,
    format_bgs_results,
)
from latentsky.cli import main


def test_bgs_benchmark_scores_every_usable_spectrum_and_extrapolates_from_its_rate():
    r = benchmark_bgs(torch.device("cpu"), n_spectra=16, bin_factor=16, train_batch_size=4, train_steps=1)
    assert r["pixels"] == 7781 // 16  # the DESI grid, binned
    assert 0 < r["n_scored"] <= 16
    for key in ("read_spectra_per_s", "score_spectra_per_s", "phase1_spectra_per_s", "phase2_spectra_per_s"):
        assert math.isfinite(r[key]) and r[key] > 0
    hours = DESI_DR1_BGS_SPECTRA / r["score_spectra_per_s"] / 3600
    assert math.isclose(r["dr1_scoring_hours"], hours)
    assert math.isclose(r["dr1_scoring_core_hours"], hours * torch.get_num_threads())
    assert math.isclose(r["paper_epoch_hours"], PAPER_BGS_TRAINING_SPECTRA / r["phase2_spectra_per_s"] / 3600)
    assert "DESI DR1 BGS (13M)" in format_bgs_results(r)


def test_bgs_benchmark_refuses_bad_arguments_in_one_line(capsys):
    assert main(["benchmark", "bgs", "--spectra", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err
