"""Config schema: defaults, and bad configs failing before any job runs, naming the key."""

import re
import shutil
import subprocess
import sys

import pytest
import yaml

from latentsky.config import ConfigError, derive_seed, load_config


def test_default_and_full_configs_validate(repo_root):
    default = load_config(repo_root / "config/config.yaml")
    assert default["sources"]["gaia"]["kind"] == "simulated"
    # Defaults are filled in for keys a config leaves out.
    minimal = load_config(overrides={"seed": 1, "sources": {}})
    assert minimal["sources"]["gaia"]["simulated"]["cluster"]["distance_pc"] == 840.0
    assert minimal["sources"]["dust"]["simulated"]["nside"] == 16
    full = load_config(repo_root / "config/full.yaml")
    assert full["sources"]["dust"]["kind"] == "bayestar19"


@pytest.mark.parametrize(
    "override, key",
    [
        ({"sources": {"gaia": {"partition_ordr": 1}}}, "partition_ordr"),
        ({"sources": {"gaia": {"simulated": {"n_stars": "many"}}}}, "n_stars"),
        ({"sources": {"dust": {"kind": "planck"}}}, "kind"),
        ({"seed": -1}, "seed"),
    ],
)
def test_bad_config_names_the_key(repo_root, override, key):
    with pytest.raises(ConfigError, match=key):
        load_config(repo_root / "config/config.yaml", overrides=override)


def test_snakemake_refuses_bad_config_before_any_job(repo_root, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"sources": {"gaia": {"simulated": {"g_limt": 20.0}}}}))
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--configfile", str(bad)],
        cwd=repo_root,
        capture_output=True,
        text=True,
    )
    assert proc.returncode != 0
    assert "g_limt" in proc.stdout + proc.stderr
    assert "simulate_dust_map" not in proc.stdout  # no job was planned


@pytest.mark.parametrize(
    "entry, ok",
    [("ogle4:blg/ecl", True), ("blg/ecl", True), ("ogle5:blg/ecl", False), ("ogle4:m31/ecl", False)],
)
def test_ogle_catalog_entries_name_the_survey(repo_root, entry, ok):
    override = {"ogle": {"archive": {"catalogs": [entry]}}}
    if ok:
        archive = load_config(repo_root / "config/config.yaml", overrides=override)["ogle"]["archive"]
        assert archive["catalogs"] == [entry]
        assert archive["ogle4_base_url"] == "https://www.astrouw.edu.pl/ogle/ogle4/OCVS/"
    else:
        with pytest.raises(ConfigError, match="catalogs"):
            load_config(repo_root / "config/config.yaml", overrides=override)


def test_derived_seeds_are_stable_and_distinct():
    assert derive_seed(20260101, "simulate_gaia_survey") == derive_seed(20260101, "simulate_gaia_survey")
    seeds = {derive_seed(20260101, s) for s in ("a", "b", "c", "simulate_dust_map")}
    assert len(seeds) == 4


def test_full_config_plans_the_real_fetches(repo_root, tmp_path):
    # The paper-scale configuration resolves into the real archive fetch jobs (dry run, empty results/).
    for name in ("Snakefile", "rules", "scripts", "config", "resources", "envs", "profiles"):
        src = repo_root / name
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, tmp_path / name)
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--configfile", "config/full.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert re.search(r"fetch_gaia_partition\s+3072", out)  # 12 · 4⁴ partitions of DR2
    assert re.search(r"gaia_partition_from_archive\s+3072", out)


def test_full_config_plans_the_ogle3_archive_fetches(repo_root, tmp_path):
    # The real OGLE path: one fetch per configured OGLE-III CVS or OGLE-IV OCVS directory, a merge, one
    # Gaia neighbour job.
    for name in ("Snakefile", "rules", "scripts", "config", "resources", "envs", "profiles"):
        src = repo_root / name
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, tmp_path / name)
    target = "results/lightcurves/train.parquet"
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", target, "--configfile", "config/full.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    catalogs = load_config(repo_root / "config/full.yaml")["ogle"]["archive"]["catalogs"]
    # 17 OGLE-III directories and OGLE-IV's blg/ecl: the authors' bulge ECL/ELL are OGLE-IV objects, never
    # asked of OIII-CVS.
    assert len(catalogs) == 18 and [c for c in catalogs if c.startswith("ogle4:")] == ["ogle4:blg/ecl"]
    assert not {"blg/ecl", "blg/ell"} & set(catalogs)
    assert re.search(r"fetch_ogle3_catalog\s+17\b", out) and re.search(r"fetch_ogle4_catalog\s+1\b", out)
    # Each survey's directory has its own outputs: OGLE-IV's under ogle4/, apart from any OGLE-III blg/ecl.
    assert "results/sources/ogle3_archive/ogle4/blg/ecl/objects.parquet" in out
    assert re.search(r"merge_ogle_catalogs\s+1\b", out) and re.search(r"fetch_gaia_neighbours\s+1\b", out)
    assert "simulate_ogle_fields" not in out
