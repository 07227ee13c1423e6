"""Profiles: `snakemake --profile slurm`, typed exactly so from the repository root, must resolve."""

import subprocess
import sys

import yaml


def test_slurm_profile_resolves_from_repo_root(repo_root):
    proc = subprocess.run(
        # --forceall: plan every job whatever results/ holds in this checkout. The model is named
        # explicitly: jobs after the partition-index checkpoint are planned only once it has run.
        [
            sys.executable,
            "-m",
            "snakemake",
            "--profile",
            "slurm",
            "-n",
            "--forceall",
            "all",
            "results/models/cmd_flow/model.pt",
            "results/models/pelsvae/cvae/model.pt",
            "results/models/pelsvae/cvae_p/model.pt",
            "results/models/xp/svae_paper.pt",
            "results/models/cyclestarnet/cyclestarnet.pt",
        ],
        cwd=repo_root,
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert "slurm and workflow specific profile profiles/default" in out
    # Jobs are planned for SLURM with the profile's partition, and rules keep their own resources.
    assert "slurm_partition=cpu" in out
    assert "rule simulate_dust_map:" in out
    # The GPU training rules are planned onto the GPU partition with their GPU.
    for rule in (
        "train_cmd_flow",
        "train_pelsvae",
        "train_svae",
        "train_payne_emulator",
        "train_cyclestarnet",
    ):
        train = out[out.index(f"rule {rule}:") :]
        resources = train[train.index("resources:") : train.index("\n", train.index("resources:"))]
        assert "slurm_partition=gpu" in resources and "gpu=1" in resources, rule


def test_profiles_keep_cluster_specifics_out_of_rules(repo_root):
    slurm = yaml.safe_load((repo_root / "profiles/slurm/config.yaml").read_text())
    assert slurm["executor"] == "slurm"
    default = yaml.safe_load((repo_root / "profiles/default/config.yaml").read_text())
    # The workflow profile is loaded on every run, after --profile: it must not override the executor
    # or SLURM settings.
    assert not {"executor", "default-resources", "set-resources", "jobs"} & set(default)
    for smk in (repo_root / "rules").glob("*.smk"):
        text = smk.read_text()
        assert "slurm_" not in text and "slurm_partition" not in text and "gpu_model" not in text, smk
