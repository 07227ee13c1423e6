"""Row slices of the catalog jobs (distances.catalog_resources.max_rows_per_job)."""

import pytest

from latentsky.jobs import row_slices


@pytest.mark.parametrize("n_rows,max_rows", [(29453, 10000), (1807, 1000), (10, 3), (7, 7), (8, 1)])
def test_slices_cover_every_row_once_and_are_balanced(n_rows, max_rows):
    slices = row_slices(n_rows, max_rows)
    assert slices[0][0] == 0 and slices[-1][1] == n_rows
    assert all(a[1] == b[0] for a, b in zip(slices, slices[1:], strict=False))  # contiguous, no overlap
    sizes = [stop - start for start, stop in slices]
    assert max(sizes) <= max_rows and max(sizes) - min(sizes) <= 1
    assert len(slices) == -(-n_rows // max_rows)  # as few jobs as the limit allows


def test_no_limit_or_a_small_partition_is_one_job():
    assert row_slices(29453, None) == [(0, 29453)]
    assert row_slices(5, 10) == [(0, 5)]
    assert row_slices(0, 10) == [(0, 0)]


def test_bad_counts_are_refused():
    with pytest.raises(ValueError, match="row count"):
        row_slices(-1, 10)
    with pytest.raises(ValueError, match="max_rows"):
        row_slices(10, 0)


def test_job_log_reports_peak_memory_and_time_against_the_rules_resources(tmp_path):
    """Every job's log ends with its peak memory and wall time beside the rule's mem_mb and runtime — the
    measurement rule resources are sized from; a job near its mem_mb says so. Run in a fresh interpreter: the
    peak of the test process itself is whatever earlier tests reached."""
    import subprocess
    import sys

    job = """
import sys
from types import SimpleNamespace
import numpy as np
from latentsky.jobs import job_logging
smk = SimpleNamespace(log=[sys.argv[1]], rule="demo", wildcards={},
                      resources=SimpleNamespace(mem_mb=int(sys.argv[2]), runtime=5))
with job_logging(smk):
    block = np.ones(300 * 2**20 // 8)  # 300 MB touched
    block.sum()
"""
    for mem_mb in (20_000, 100):
        log = tmp_path / f"job{mem_mb}.log"
        subprocess.run([sys.executable, "-c", job, str(log), str(mem_mb)], check=True)
        text = log.read_text()
        peak = float(text.split("peak memory ")[1].split(" MB")[0])
        assert 300 <= peak < 2000 and f"of mem_mb {mem_mb}," in text and "runtime 5 min" in text
        assert ("over 80 % of mem_mb" in text) == (mem_mb == 100)
