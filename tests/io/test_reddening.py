"""Reddening maps in the OGLE form (latentsky.io.reddening): reading, one-line errors, nearest sight line."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from latentsky.io.reddening import read_reddening_map, reddening_at


def _write(tmp_path, frame, name="map.csv"):
    path = tmp_path / name
    if name.endswith(".parquet"):
        frame.to_parquet(path)
    else:
        frame.to_csv(path, index=False)
    return path


def test_reads_csv_and_parquet_with_and_without_a_i(tmp_path):
    frame = pd.DataFrame(
        {"ra": [270.0, 270.1], "dec": [-30.0, -30.0], "e_v_i": [1.0, 0.8], "a_i": [1.2, np.nan]}
    )
    table = read_reddening_map(_write(tmp_path, frame, "m.parquet"), r_i=1.5)
    # A row without A_I takes r_i × E(V−I); a given A_I is kept (Nataf et al. give both).
    np.testing.assert_allclose(table["a_i"], [1.2, 1.2])
    table = read_reddening_map(_write(tmp_path, frame.drop(columns="a_i")), r_i=1.25)
    np.testing.assert_allclose(table["a_i"], [1.25, 1.0])


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (pd.DataFrame({"ra": [1.0], "dec": [2.0]}), r"lacks column\(s\) \['e_v_i'\]"),
        (pd.DataFrame({"ra": [1.0], "dec": [2.0], "e_v_i": [-0.1]}), "column e_v_i row 0"),
        (pd.DataFrame({"ra": [1.0], "dec": ["x"], "e_v_i": [0.1]}), "column dec row 0"),
        (pd.DataFrame({"ra": [1.0], "dec": [95.0], "e_v_i": [0.1]}), "column dec outside"),
        (pd.DataFrame({"ra": [], "dec": [], "e_v_i": []}), "has no rows"),
    ],
)
def test_bad_maps_are_one_line_errors_naming_file_and_column(tmp_path, frame, message):
    path = _write(tmp_path, frame)
    with pytest.raises(ValueError, match=message) as err:
        read_reddening_map(path, r_i=1.5)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_truncated_file_is_a_one_line_error(tmp_path):
    path = tmp_path / "map.parquet"
    path.write_bytes(b"PAR1 truncated")
    with pytest.raises(ValueError, match="not a readable reddening map"):
        read_reddening_map(path, r_i=1.5)


def test_nearest_sight_line_and_outside_the_map():
    table = pd.DataFrame(
        {"ra": [270.0, 270.2], "dec": [-30.0, -30.0], "e_v_i": [1.0, 2.0], "a_i": [1.2, 2.4]}
    )
    ra = np.array([270.01, 270.19, 275.0, np.nan])
    dec = np.array([-30.0, -30.01, -30.0, -30.0])
    got = reddening_at(ra, dec, table, max_separation_arcmin=10.0)
    np.testing.assert_allclose(got["e_v_i"].to_numpy()[:2], [1.0, 2.0])
    assert got["e_v_i"].isna().tolist() == [False, False, True, True]
    assert got["separation_arcmin"].iloc[0] == pytest.approx(0.01 * np.cos(np.deg2rad(30.0)) * 60, rel=1e-3)
