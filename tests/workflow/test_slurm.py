"""The workflow on a real (one-node) SLURM cluster through the project's own profiles/slurm.

``tests/slurm/run.sh`` starts the cluster (``tests/slurm/start_cluster.sh``: Debian's slurm-wlm and munge,
partitions ``ci-cpu`` and ``ci-gpu``, one fake GPU) and runs this module with ``LATENTSKY_SLURM_STATE``
pointing at the cluster's state directory. Without a cluster the tests are skipped, saying why.

The profile is edited as a user would edit it — the lines marked EDIT: partition names, CPU cores per GPU,
the account (this cluster has no accounting, so ``slurm-no-account`` and ``squeue`` for job states) — and
nothing else but the status-poll interval. The checks: every job went
through sbatch (``scontrol show job`` records, kept for an hour by MinJobAge, with the rule in the job's
comment), GPU rules ran on the GPU partition with a GPU in their TRES, CPU rules on the CPU partition, and
every Parquet output's data equal a local run's (provenance excluded, :mod:`latentsky.provenance.compare`).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import prepare_tiny_workdir

from latentsky.provenance.compare import compare_parquet_trees

pytestmark = pytest.mark.slurm

STATE = os.environ.get("LATENTSKY_SLURM_STATE")
CPU_PARTITION, GPU_PARTITION = "ci-cpu", "ci-gpu"
# Rules that declare `gpu: 1` and so must land on the GPU partition.
GPU_RULES = {
    "train_cmd_flow",
    "train_pelsvae",
    "train_bgs_autoencoder",
    "train_svae",
    "train_payne_emulator",
    "train_cyclestarnet",
}


def user_edited_profile(src: Path, dest: Path) -> Path:
    """profiles/slurm/config.yaml with the EDIT lines changed the way a user adapts it to a cluster."""
    text = (src / "config.yaml").read_text()
    text = text.replace('slurm_partition: "cpu"', f'slurm_partition: "{CPU_PARTITION}"')
    text = text.replace('slurm_partition: "gpu"', f'slurm_partition: "{GPU_PARTITION}"')
    # This node has os.cpu_count() cores and one GPU.
    text, n_gpu = re.subn(r"(?m)^(\s*)cpus_per_gpu: \d+", rf"\g<1>cpus_per_gpu: {os.cpu_count()}", text)
    assert n_gpu == len(GPU_RULES), "every GPU rule has a cpus_per_gpu line in the profile"
    text, n = re.subn(r"^\s*slurm_account: .*\n", "", text, flags=re.M)
    assert n == 1, "the profile's slurm_account line moved; update this test with the README"
    # No accounting database on this cluster: no account, and job states from squeue (MinJobAge 1 h).
    text += "slurm-no-account: true\nslurm-status-command: squeue\n"
    # Not a cluster setting: poll job states every few seconds instead of 40 s, so that ~45 mostly
    # sequential jobs fit in CI's time.
    text += "slurm-init-seconds-before-status-checks: 2\n"
    dest.mkdir(parents=True)
    (dest / "config.yaml").write_text(text)
    return dest


def scontrol_jobs() -> list[dict[str, str]]:
    out = subprocess.run(["scontrol", "-o", "show", "job"], capture_output=True, text=True, check=True).stdout
    jobs = []
    for line in out.splitlines():
        fields = dict(re.findall(r"(\w+(?::\w+)?)=(\S*)", line))
        if fields:
            jobs.append(fields)
    return jobs


@pytest.fixture(scope="module")
def slurm_run(tmp_path_factory, repo_root):
    if not STATE or shutil.which("sbatch") is None:
        pytest.skip("no SLURM cluster: run tests/slurm/run.sh (it installs and starts one where it can)")
    before = {j["JobId"] for j in scontrol_jobs()}
    workdir = prepare_tiny_workdir(tmp_path_factory.mktemp("slurm"), repo_root)
    profile = user_edited_profile(repo_root / "profiles/slurm", workdir / "my_cluster_profile")
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "--profile", str(profile), "--jobs", "4",
         "--configfile", "tiny.yaml"],
        cwd=workdir, capture_output=True, text=True,
    )  # fmt: skip
    (Path(STATE) / "snakemake.log").write_text(proc.stdout + proc.stderr)
    assert proc.returncode == 0, proc.stderr[-6000:]
    jobs = [j for j in scontrol_jobs() if j["JobId"] not in before]
    return workdir, jobs, proc.stderr


def _rule_of(job: dict[str, str]) -> str:
    match = re.match(r"rule_([A-Za-z0-9_]+?)(?:_wildcards_.*)?$", job.get("Comment", ""))
    assert match, f"job {job['JobId']} has no rule in its comment: {job.get('Comment')!r}"
    return match.group(1)


def test_every_job_went_through_sbatch_and_completed(slurm_run):
    workdir, jobs, log = slurm_run
    assert len(jobs) >= 30, f"only {len(jobs)} SLURM jobs recorded"
    assert all(j["JobState"] == "COMPLETED" for j in jobs), {j["JobId"]: j["JobState"] for j in jobs}
    rules = {_rule_of(j) for j in jobs}
    # The jobs that do the work ran on the cluster, not on the submitting host.
    assert {"simulate_gaia_survey", "distance_catalog_partition", "bgs_catalog"} <= rules
    assert GPU_RULES <= rules
    # One log per job, as the rules declare.
    assert (workdir / "results/logs/bgs_catalog.log").stat().st_size > 0


def test_gpu_rules_landed_on_the_gpu_partition_with_a_gpu(slurm_run):
    _, jobs, _ = slurm_run
    for job in jobs:
        rule = _rule_of(job)
        # The GPU request as the controller recorded it (sbatch --gpus=1 → TresPerJob=gres:gpu:1).
        gpus = job.get("TresPerJob", "")
        if rule in GPU_RULES:
            assert job["Partition"] == GPU_PARTITION, (rule, job["Partition"])
            assert gpus == "gres:gpu:1", (rule, gpus)
        else:
            assert job["Partition"] == CPU_PARTITION, (rule, job["Partition"])
            assert "gpu" not in gpus, (rule, gpus)


def test_outputs_equal_a_local_run(slurm_run, tiny_results):
    workdir, _, _ = slurm_run
    differences = compare_parquet_trees(tiny_results, workdir / "results")
    assert differences.compared >= 25
    assert not differences.mismatches, differences.mismatches
