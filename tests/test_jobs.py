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
