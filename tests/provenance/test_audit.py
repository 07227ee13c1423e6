"""`latentsky audit` on a constructed lineage: raw → stage A → stage B (released)."""

import os

import pandas as pd
import pytest

from latentsky.cli import main
from latentsky.provenance.audit import audit
from latentsky.provenance.files import write_parquet
from latentsky.provenance.manifest import write_manifest
from latentsky.provenance.record import build_record


@pytest.fixture
def lineage(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # records hold paths relative to the workflow root, like Snakemake's cwd
    raw = tmp_path / "results/sources/raw.csv"
    raw.parent.mkdir(parents=True)
    raw.write_text("source_id,parallax\n1,0.5\n2,-0.1\n")
    a = write_parquet(
        pd.DataFrame({"source_id": [1, 2]}),
        tmp_path / "results/a.parquet",
        build_record(rule="a", inputs=[raw]),
    )
    b = write_parquet(
        pd.DataFrame({"source_id": [1, 2], "d": [2.0, 9.0]}),
        tmp_path / "results/catalog/b.parquet",
        build_record(rule="b", inputs=[a, raw]),
    )
    write_manifest(
        [b],
        tmp_path / "results/release/manifest.parquet",
        tmp_path / "results/release/manifest.sha256",
        build_record(rule="release_manifest", inputs=[b]),
    )
    return {"raw": raw, "a": a, "b": b, "root": tmp_path}


def flip_one_byte(path, offset=None):
    data = bytearray(path.read_bytes())
    i = len(data) // 2 if offset is None else offset
    data[i] ^= 0x01
    path.write_bytes(bytes(data))


def test_untouched_lineage_passes_and_prints_tree(lineage, capsys):
    result = audit(lineage["b"])
    assert result.ok, result.mismatches
    assert result.files_checked == 4  # b, then a, raw (under a), raw again under b (already shown)
    text = "\n".join(result.lines)
    assert "results/catalog/b.parquet" in text and "matches manifest" in text
    assert "├── results/a.parquet" in text and "results/sources/raw.csv" in text and "(source)" in text
    assert main(["audit", str(lineage["b"])]) == 0
    assert "audit passed" in capsys.readouterr().out


@pytest.mark.parametrize("victim", ["b", "a", "raw"])
def test_one_flipped_byte_anywhere_fails_naming_the_file(lineage, victim, capsys):
    flip_one_byte(lineage[victim])
    result = audit(lineage["b"])
    assert not result.ok
    expected = os.path.relpath(lineage[victim], lineage["root"])
    assert result.first_mismatch.path == expected
    assert main(["audit", str(lineage["b"])]) == 1
    assert f"audit FAILED: {expected}" in capsys.readouterr().err


def test_missing_input_and_unlisted_file_fail(lineage, tmp_path):
    lineage["raw"].unlink()
    result = audit(lineage["b"])
    assert result.first_mismatch.path == "results/sources/raw.csv"
    assert "missing" in result.first_mismatch.problem
    # a is a real workflow file but was not released: the manifest check names it.
    result = audit(lineage["a"])
    assert result.first_mismatch.path == "results/a.parquet"
    assert "not listed" in result.first_mismatch.problem


def test_moved_tree_audits_with_explicit_manifest(lineage, tmp_path):
    moved = tmp_path.parent / (tmp_path.name + "_moved")
    os.rename(tmp_path, moved)
    try:
        b = moved / "results/catalog/b.parquet"
        assert audit(b).ok  # root found by walking up to results/release/manifest.parquet
        assert audit(b, manifest=moved / "results/release/manifest.parquet").ok
    finally:
        os.rename(moved, tmp_path)
