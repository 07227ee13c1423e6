"""The workflow end to end on the tiny config, in a temporary copy of the repository."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from latentsky.audit import audit
from latentsky.outputs import read_provenance
from latentsky.release import read_manifest

pytestmark = pytest.mark.workflow

WORKFLOW_FILES = ("Snakefile", "rules", "scripts", "config", "resources", "envs", "profiles")


def run_snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        # Targets and options first: --configfile takes every following word as another config file.
        [sys.executable, "-m", "snakemake", *args, "--cores", "2", "--configfile", "tiny.yaml"],
        cwd=workdir,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise AssertionError(
            f"snakemake {' '.join(args)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
        )
    return proc


@pytest.fixture(scope="module")
def workflow_run(tmp_path_factory, repo_root):
    workdir = tmp_path_factory.mktemp("workflow")
    for name in WORKFLOW_FILES:
        src = repo_root / name
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, workdir / name)
    shutil.copy2(repo_root / "tests/config/tiny.yaml", workdir / "tiny.yaml")
    run_snakemake(workdir)
    return workdir


def test_default_target_builds_release(workflow_run):
    manifest = read_manifest(workflow_run / "results/release/manifest.parquet")
    assert "results/sources/dust/bayestar.h5" in manifest
    assert sum(p.startswith("results/sources/gaia/Norder=0/") for p in manifest) == 12
    stars = sum(manifest[p]["n_rows"] for p in manifest if p.startswith("results/sources/gaia/"))
    truths = sum(manifest[p]["n_rows"] for p in manifest if p.startswith("results/sources/gaia_truth/"))
    assert stars == truths and abs(stars - 4000) <= 4000 * 0.02
    sums = (workflow_run / "results/release/manifest.sha256").read_text().splitlines()
    assert len(sums) == len(manifest)
    for line in sums:
        digest, path = line.split("  ", 1)
        assert manifest[path]["sha256"] == digest


def test_every_parquet_and_output_carries_provenance(workflow_run):
    parquets = sorted((workflow_run / "results").rglob("*.parquet"))
    assert len(parquets) >= 25
    for path in parquets:
        record = read_provenance(path)
        assert record["rule"] and record["config_sha256"] and record["code"]["package_version"], path
        assert record["environment"]["packages"]["pyarrow"] == __import__("pyarrow").__version__
    record = read_provenance(workflow_run / "results/sources/gaia/Norder=0/Npix=4.parquet")
    assert record["rule"] == "simulate_gaia_survey"
    assert [i["path"] for i in record["inputs"]] == [
        "results/sources/dust_truth/bayestar_fullsky.h5",
        "results/sources/dust/bayestar.h5",
    ]
    assert record["seed"] == record["params"]["seed"]
    for other in (
        "results/sources/dust/bayestar.h5",
        "results/metrics/sources.json",
        "results/figures/sources/gaia_cmd.png",
    ):
        assert read_provenance(workflow_run / other)["rule"], other


def test_audit_passes_on_every_released_file(workflow_run):
    manifest = read_manifest(workflow_run / "results/release/manifest.parquet")
    for rel in manifest:
        result = audit(workflow_run / rel)
        assert result.ok, (rel, [str(m) for m in result.mismatches])


@pytest.mark.parametrize(
    "tampered, audited",
    [
        # the released file itself
        ("results/sources/gaia/Norder=0/Npix=4.parquet", "results/sources/gaia/Norder=0/Npix=4.parquet"),
        # an upstream input two levels down: the truth dust map the survey was drawn from
        ("results/sources/dust_truth/bayestar_fullsky.h5", "results/metrics/sources.json"),
    ],
)
def test_audit_names_a_flipped_byte(workflow_run, tampered, audited):
    path = workflow_run / tampered
    original = path.read_bytes()
    data = bytearray(original)
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "latentsky.cli", "audit", audited],
            cwd=workflow_run,
            capture_output=True,
            text=True,
        )
        assert proc.returncode == 1
        assert f"audit FAILED: {tampered}" in proc.stderr
    finally:
        path.write_bytes(original)
    assert audit(workflow_run / audited).ok


def test_report_has_the_source_figures(workflow_run):
    run_snakemake(workflow_run, "--report", "results/report.html")
    html = (workflow_run / "results/report.html").read_text(errors="replace")
    assert "gaia_cmd.png" in html and "dust_map.png" in html


def test_single_target_regenerates_after_deletion(workflow_run):
    target = workflow_run / "results/metrics/sources.json"
    before = {k: v for k, v in read_provenance(target).items() if k != "created_utc"}
    target.unlink()
    proc = run_snakemake(workflow_run, "results/metrics/sources.json")
    assert "gaia_survey_metrics" in proc.stderr + proc.stdout
    assert "simulate_gaia_survey" not in proc.stderr  # upstream partitions were reused, not recomputed
    after = {k: v for k, v in read_provenance(target).items() if k != "created_utc"}
    assert after == before
    # The release now lists a file whose bytes differ only in the record's timestamp: rebuild it.
    run_snakemake(workflow_run)
    assert audit(target).ok


def test_parquet_partitions_are_readable_as_a_dataset(workflow_run):
    table = pq.read_table(workflow_run / "results/sources/gaia")
    assert "source_id" in table.column_names and table.num_rows > 3900
