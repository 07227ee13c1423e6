"""`latentsky benchmark cyclestarnet` through the command line: every configuration is printed, and the printed
rate and extrapolations follow from the printed seconds per iteration (timings themselves are never asserted)."""

import re

import pytest
import torch

from latentsky.cli import main
from latentsky.cyclestarnet.training import TrainingSettings
from latentsky.training import resolve_precision

NUMBER = r"([0-9.]+(?:e[+-]?[0-9]+)?)"
ROW = re.compile(
    rf"^  (demo|paper) \(([0-9,]+) px, .*, batch ([0-9]+)\), (fp32|bf16): {NUMBER} s/it, {NUMBER} it/s → "
    rf"the (demo|paper)'s ([0-9,]+) iterations in {NUMBER} (min|h)$"
)
# Every figure is printed to 4 significant digits (relative rounding ≤ 5e-4 each); a figure derived from
# another printed one therefore agrees within 1e-3.
PRINTED = 1e-3


def test_cyclestarnet_benchmark_prints_consistent_figures(capsys):
    # 1 warm-up + 2 timed iterations per configuration on one thread: ~10 s on a loaded 2-core CPU. Two threads
    # outside it, to see --threads applied and undone (the conftest restores its own setting afterwards).
    torch.set_num_threads(2)
    rc = main("benchmark cyclestarnet --device cpu --iterations 2 --warmup 1 --threads 1".split())
    out = capsys.readouterr().out
    assert rc == 0
    lines = out.splitlines()
    assert lines[0].startswith(
        "Cycle-StarNet (paper 002) training on cpu, 1 torch thread(s): median of 2 iterations"
    )
    rows = [ROW.match(line) for line in lines[1:-1]]
    assert all(rows), out
    precisions = ["fp32", "bf16"] if resolve_precision("auto", "cpu") == "bf16" else ["fp32"]
    assert [(m[1], m[4]) for m in rows] == [(s, p) for s in ("demo", "paper") for p in precisions]
    for m in rows:
        size, pixels, batch = m[1], int(m[2].replace(",", "")), int(m[3])
        s_per_it, it_per_s = float(m[5]), float(m[6])
        budget, total, unit = int(m[8].replace(",", "")), float(m[9]), m[10]
        assert (pixels, batch) == {"demo": (2047, 16), "paper": (7167, 8)}[size]
        assert s_per_it > 0 and it_per_s > 0
        assert it_per_s == pytest.approx(1 / s_per_it, rel=PRINTED)
        if size == "paper":
            assert (m[7], budget, unit) == ("paper", 350_000, "h")  # paper 002 App. B
            assert total == pytest.approx(350_000 * s_per_it / 3600, rel=PRINTED)
        else:
            assert (m[7], budget, unit) == ("demo", TrainingSettings().iterations, "min")
            assert total == pytest.approx(budget * s_per_it / 60, rel=PRINTED)
    assert re.fullmatch(r"  peak memory: RSS [0-9]+ MiB", lines[-1])
    assert torch.get_num_threads() == 2


@pytest.mark.parametrize(
    "flags",
    [["--iterations", "0"], ["--warmup", "0"], ["--threads", "0"]],
    ids=["iterations", "warmup", "threads"],
)
def test_cyclestarnet_benchmark_refuses_counts_below_one(flags, capsys):
    assert main(["benchmark", "cyclestarnet", "--device", "cpu", *flags]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--iterations ≥ 1, --warmup ≥ 1 and --threads ≥ 1" in err
