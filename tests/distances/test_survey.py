"""Source-table summaries and partition reading."""

import numpy as np
import pandas as pd
import pytest

from latentsky.distances.survey import survey_summary
from latentsky.io.gaia import read_gaia_table, read_partitions


def test_sampled_read_is_seeded_and_proportional(tmp_path):
    paths = []
    for i in range(3):
        p = tmp_path / f"Npix={i}.parquet"
        pd.DataFrame({"source_id": np.arange(i * 10000, (i + 1) * 10000)}).to_parquet(p)
        paths.append(p)
    a = read_partitions(paths, sample_fraction=0.25, seed=5)
    b = read_partitions(paths, sample_fraction=0.25, seed=5)
    assert a.equals(b)
    # Binomial(30000, 0.25): 7500 ± 75; five sigma.
    assert abs(len(a) - 7500) < 375
    assert len(read_partitions(paths)) == 30000
    with pytest.raises(ValueError, match="no partitions"):
        read_partitions([])


def test_survey_summary_of_real_hyades(real_data):
    gaia = read_gaia_table(real_data / "gaia_dr2_clusters" / "hyades.csv")
    summary = survey_summary(gaia)
    assert summary["n_stars"] == 515
    assert summary["fraction_missing_bp_rp"] == pytest.approx(6 / 515)
    assert summary["fraction_negative_parallax"] == 0.0
    assert summary["median_parallax_snr"] > 100  # Hyades members at ~47 pc
