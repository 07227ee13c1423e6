"""Atomic, provenance-carrying writers for every output kind."""

import json
import os

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from latentsky.provenance import files
from latentsky.provenance.files import load_checkpoint, save_checkpoint
from latentsky.provenance.record import build_record, without_volatile


@pytest.fixture
def record(tmp_path):
    src = tmp_path / "input.txt"
    src.write_text("raw survey bytes\n")
    return build_record(rule="unit", inputs=[src], params={"k": 1}, config={"seed": 3}, seed=3, root=tmp_path)


def test_parquet_round_trip_keeps_data_and_record(tmp_path, record):
    df = pd.DataFrame({"source_id": np.arange(5, dtype=np.int64), "bp_rp": [0.1, np.nan, 1.2, 0.3, 2.0]})
    path = files.write_parquet(df, tmp_path / "t.parquet", record)
    table = pq.read_table(path)
    assert table["source_id"].to_pylist() == [0, 1, 2, 3, 4]
    # Missing photometry is a null, as in the Gaia archive, not a NaN.
    assert table["bp_rp"].null_count == 1
    got = files.read_provenance(path)
    assert got == json.loads(json.dumps(record))
    assert got["inputs"][0]["path"] == "input.txt"
    assert got["inputs"][0]["size"] == len("raw survey bytes\n")
    assert files.num_rows(path) == 5


def test_same_table_and_record_give_identical_bytes(tmp_path, record):
    df = pd.DataFrame({"x": np.linspace(0, 1, 100)})
    a = files.write_parquet(df, tmp_path / "a.parquet", record)
    b = files.write_parquet(df, tmp_path / "b.parquet", record)
    assert a.read_bytes() == b.read_bytes()


def test_failed_write_leaves_no_file_and_keeps_previous(tmp_path, record, monkeypatch):
    path = tmp_path / "catalog.parquet"
    files.write_parquet(pd.DataFrame({"x": [1.0]}), path, record)
    before = path.read_bytes()

    def explode(*args, **kwargs):
        with open(args[1], "wb") as fh:  # a partial write, then the job dies
            fh.write(b"PAR1 partial")
        raise KeyboardInterrupt("killed mid-write")

    monkeypatch.setattr(pq, "write_table", explode)
    with pytest.raises(KeyboardInterrupt):
        files.write_parquet(pd.DataFrame({"x": [2.0]}), path, record)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_sigkill_mid_write_leaves_the_previous_file(tmp_path):
    """kill -9 while a Parquet file is half written (no Python cleanup runs): the output path still holds
    the previous complete file, or nothing."""
    import signal
    import subprocess
    import sys
    import textwrap

    path = tmp_path / "catalog.parquet"
    child = textwrap.dedent(
        f"""
        import os, signal
        import pyarrow.parquet as pq
        from latentsky.provenance import files
        def write_half_then_die(table, where, **kw):
            with open(where, "wb") as fh:
                fh.write(b"PAR1 half a row group")
                fh.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        if os.environ.get("DIE"):
            pq.write_table = write_half_then_die
        import pandas as pd
        files.write_parquet(pd.DataFrame({{"x": [float(os.environ.get("X", 1))]}}), {str(path)!r}, {{"rule": "t"}})
        """
    )
    subprocess.run([sys.executable, "-c", child], check=True)
    before = path.read_bytes()
    died = subprocess.run([sys.executable, "-c", child], env={**os.environ, "DIE": "1", "X": "2"})
    assert died.returncode == -signal.SIGKILL
    assert path.read_bytes() == before and pq.read_table(path).column("x").to_pylist() == [1.0]
    # The dead writer's temporary file is left beside it (nothing ran to remove it) — never at the path.
    assert [p.name.startswith(".catalog.parquet.") for p in tmp_path.iterdir() if p != path] == [True]


def test_source_date_epoch_fixes_the_creation_time(tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1767225600")
    assert build_record(rule="t")["created_utc"] == "2026-01-01T00:00:00+00:00"
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "yesterday")
    with pytest.raises(ValueError, match="SOURCE_DATE_EPOCH must be an integer"):
        build_record(rule="t")


def test_json_png_hdf5_checkpoint_carry_the_record(tmp_path, record):
    import h5py
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files.write_json({"metric": 1.5}, tmp_path / "m.json", record)
    assert json.loads((tmp_path / "m.json").read_text())["metric"] == 1.5

    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    files.save_figure(fig, tmp_path / "f.png", record)

    with files.atomic_output(tmp_path / "m.h5") as tmp:
        with h5py.File(tmp, "w") as fh:
            fh["x"] = np.arange(3)
            files.set_hdf5_provenance(fh, record)

    save_checkpoint({"step": 7, "weights": __import__("torch").ones(3)}, tmp_path / "c.pt", record)
    state, prov = load_checkpoint(tmp_path / "c.pt")
    assert state["step"] == 7 and float(state["weights"].sum()) == 3.0

    for name in ("m.json", "f.png", "m.h5", "c.pt"):
        assert without_volatile(files.read_provenance(tmp_path / name)) == without_volatile(record), name


def test_file_without_record_is_reported(tmp_path):
    pq.write_table(pa.table({"x": [1]}), tmp_path / "plain.parquet")
    with pytest.raises(files.ProvenanceError, match="plain.parquet.*no 'latentsky.provenance'"):
        files.read_provenance(tmp_path / "plain.parquet")
    (tmp_path / "truncated.parquet").write_bytes(b"PAR1\x00\x00")
    with pytest.raises(files.ProvenanceError, match="truncated.parquet: not a readable Parquet"):
        files.read_provenance(tmp_path / "truncated.parquet")
    with pytest.raises(files.ProvenanceError, match="no provenance reader"):
        files.read_provenance(tmp_path / "notes.txt")


def test_record_fields(tmp_path, record):
    for key in (
        "rule",
        "wildcards",
        "params",
        "config_sha256",
        "inputs",
        "code",
        "environment",
        "seed",
        "device",
        "created_utc",
    ):
        assert key in record, key
    assert record["code"]["package_version"]
    assert "numpy" in record["environment"]["packages"]
    assert len(record["config_sha256"]) == 64
    # The config hash depends on values, not on key order.
    other = build_record(rule="unit", config={"seed": 3}, root=tmp_path)
    assert other["config_sha256"] == record["config_sha256"]
    assert build_record(rule="unit", config={"seed": 4})["config_sha256"] != record["config_sha256"]
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        build_record(rule="unit", inputs=[tmp_path / "nope.txt"])
    assert os.path.isabs(
        build_record(rule="u", inputs=[tmp_path / "input.txt"], root="/nonexistent")["inputs"][0]["path"]
    )


def test_nan_to_null_makes_undefined_metrics_writable(tmp_path):
    from latentsky.provenance.files import nan_to_null, write_json

    doc = {"rho": float("nan"), "ratios": [1.5, float("inf")], "nested": {"x": np.float64("nan"), "n": 3}}
    with pytest.raises(ValueError):
        write_json(doc, tmp_path / "bad.json", {"rule": "t"})
    write_json(nan_to_null(doc), tmp_path / "ok.json", {"rule": "t"})
    back = json.loads((tmp_path / "ok.json").read_text())
    assert back["rho"] is None and back["ratios"] == [1.5, None] and back["nested"] == {"x": None, "n": 3}
