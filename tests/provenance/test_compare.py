"""Run comparison (``latentsky compare-runs``): data compared, provenance-bearing bytes left out."""

from __future__ import annotations

import json

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from latentsky.provenance.compare import compare_parquet_trees, json_data_equal, parquet_data_equal


def _write(path, frame, metadata=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    pq.write_table(table.replace_schema_metadata(metadata), path)


def _manifest(**changes):
    rows = {
        "path": ["results/a.parquet", "results/b.json"],
        "sha256": ["aa" * 32, "bb" * 32],
        "size": [1000, 200],
        "n_rows": [10, 0],
        "kind": ["parquet", "json"],
    }
    rows.update(changes)
    return pd.DataFrame(rows)


def test_metadata_is_ignored_and_values_are_not(tmp_path):
    frame = pd.DataFrame({"x": [1.0, 2.0], "flag": ["ok", "no_posterior"]})
    _write(tmp_path / "a.parquet", frame, {b"latentsky.provenance": b'{"created_utc": "then"}'})
    _write(tmp_path / "b.parquet", frame, {b"latentsky.provenance": b'{"created_utc": "now, longer"}'})
    assert parquet_data_equal(tmp_path / "a.parquet", tmp_path / "b.parquet") is None
    _write(tmp_path / "c.parquet", frame.assign(x=[1.0, 2.0 + 1e-12]))
    assert parquet_data_equal(tmp_path / "a.parquet", tmp_path / "c.parquet") == "column 'x' differs"
    _write(tmp_path / "d.parquet", frame.iloc[:1])
    assert parquet_data_equal(tmp_path / "a.parquet", tmp_path / "d.parquet") == "2 vs 1 rows"


def test_manifest_hashes_and_sizes_are_left_out_rows_are_not(tmp_path):
    # A moved config path makes every record, so every hash and some sizes, differ: same data.
    _write(tmp_path / "A/release/manifest.parquet", _manifest())
    _write(tmp_path / "B/release/manifest.parquet", _manifest(sha256=["cc" * 32, "dd" * 32], size=[995, 200]))
    assert compare_parquet_trees(tmp_path / "A", tmp_path / "B").mismatches == {}
    # A lost row is a lost star: that is compared.
    _write(tmp_path / "C/release/manifest.parquet", _manifest(n_rows=[9, 0]))
    assert compare_parquet_trees(tmp_path / "A", tmp_path / "C").mismatches == {
        "release/manifest.parquet": "column 'n_rows' differs"
    }
    # The columns are left out only in the manifest, not in a catalog that happens to have a "size" column.
    _write(tmp_path / "A/catalog.parquet", pd.DataFrame({"size": [1, 2]}))
    _write(tmp_path / "B/catalog.parquet", pd.DataFrame({"size": [1, 3]}))
    assert compare_parquet_trees(tmp_path / "A", tmp_path / "B").mismatches == {
        "catalog.parquet": "column 'size' differs"
    }


def test_json_provenance_key_ignored_and_missing_files_reported(tmp_path):
    (tmp_path / "A").mkdir()
    (tmp_path / "B").mkdir()
    (tmp_path / "A/m.json").write_text(json.dumps({"rmse": 0.1, "provenance": {"created_utc": "then"}}))
    (tmp_path / "B/m.json").write_text(json.dumps({"rmse": 0.1, "provenance": {"created_utc": "now"}}))
    assert json_data_equal(tmp_path / "A/m.json", tmp_path / "B/m.json") is None
    (tmp_path / "B/m.json").write_text(json.dumps({"rmse": 0.2}))
    assert json_data_equal(tmp_path / "A/m.json", tmp_path / "B/m.json") == "keys differ: ['rmse']"
    (tmp_path / "A/only_here.json").write_text("{}")
    result = compare_parquet_trees(tmp_path / "A", tmp_path / "B")
    assert result.compared == 1
    assert result.mismatches["only_here.json"] == f"only in {tmp_path / 'A'}"
