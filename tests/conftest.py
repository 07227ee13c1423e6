"""Shared fixtures. Real survey files live in tests/data (its README gives each one's origin and licence);
the authors' OGLE-III × Gaia tables, which the workflow reads too, in resources/ogle3_gaiadr2_xmatch."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
REAL_DATA = REPO_ROOT / "tests" / "data"
PUBLISHED_XMATCH_DIR = REPO_ROOT / "resources" / "ogle3_gaiadr2_xmatch"


@pytest.fixture(scope="session", autouse=True)
def _gaiaxpy_without_global_usetex() -> None:
    """Tests import GaiaXPy directly (to cross-check our reader and basis): the first import goes through
    latentsky's guard, or matplotlib would need LaTeX for every later figure of the session."""
    from latentsky.xp.basis import import_gaiaxpy

    import_gaiaxpy()


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def real_data() -> Path:
    return REAL_DATA


def default_sources_config() -> dict:
    """The ``sources`` block with every schema default filled in (what the workflow sees)."""
    from latentsky.config import load_config

    return load_config(overrides={"seed": 0, "sources": {}})["sources"]


#: What a copy of the workflow needs (tests run it in a temporary directory, never in the checkout).
WORKFLOW_FILES = ("Snakefile", "rules", "scripts", "config", "resources", "envs", "profiles")


def prepare_tiny_workdir(workdir: Path, repo_root: Path) -> Path:
    """A copy of the workflow in ``workdir`` with the tiny config (tiny.yaml) and its inputs."""
    for name in WORKFLOW_FILES:
        src = repo_root / name
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, workdir / name)
    shutil.copy2(repo_root / "tests/config/tiny.yaml", workdir / "tiny.yaml")
    shutil.copy2(repo_root / "tests/config/generation_times.csv", workdir / "generation_times.csv")
    return workdir


def run_snakemake(
    workdir: Path, *args: str, configfiles: tuple[str, ...] = ("tiny.yaml",)
) -> subprocess.CompletedProcess:
    """``snakemake ARGS --cores 2 --configfile tiny.yaml`` in ``workdir`` (later config files override
    earlier ones); fails the test on error."""
    proc = subprocess.run(
        # Targets and options first: --configfile takes every following word as another config file.
        [sys.executable, "-m", "snakemake", *args, "--cores", "2", "--configfile", *configfiles],
        cwd=workdir,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise AssertionError(
            f"snakemake {' '.join(args)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
        )
    return proc


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, repo_root) -> Path:
    """The whole workflow on the tiny config, run once per session (shared by the workflow and SLURM
    tests); the workdir is returned. Tests may change it; :func:`tiny_results` is a copy taken at once."""
    workdir = prepare_tiny_workdir(tmp_path_factory.mktemp("workflow"), repo_root)
    run_snakemake(workdir)
    shutil.copytree(workdir / "results", workdir.parent / "pristine_results")
    return workdir


@pytest.fixture(scope="session")
def tiny_results(tiny_run) -> Path:
    """The results tree of :func:`tiny_run` as the run left it."""
    return tiny_run.parent / "pristine_results"
