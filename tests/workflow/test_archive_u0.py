"""The archive route's DR2 RUWE through the workflow: rule fetch_gaia_u0_table downloads ESA's u0 tables
(served over loopback in ESA's DR2_RUWE_V1 layout) and gaia_partition_from_archive normalises with them;
without a table the partition's rows are flagged ruwe_empirical_u0. The fetched raw partition is put in
place from the real Hyades DR2 rows, so only these two rules run."""

from __future__ import annotations

import gzip
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import WORKFLOW_FILES
from esa_u0 import dr2_ruwe_zip, table_u0_g, table_u0_g_col
from loopback_http import LoopbackServer, Response

from latentsky.io.gaia_columns import unit_weight_error
from latentsky.io.healpix import radec_to_healpix

ZIP_PATH = "/documents/29201/1769576/DR2_RUWE_V1.zip"


def u0_gc(g, c):
    return 1.05 + 0.01 * (g - 3.6) + 0.02 * c


@pytest.fixture(scope="module")
def hyades(real_data):
    path = real_data / "gaia_dr2_clusters" / "hyades.csv"
    raw = pd.read_csv(path)
    pixels = radec_to_healpix(raw["ra"].to_numpy(), raw["dec"].to_numpy(), 0)
    pixel = int(np.bincount(pixels).argmax())  # the order-0 pixel holding most of the cluster
    return path, raw, pixel


def _workdir(tmp_path: Path, repo_root: Path, hyades, archive: dict) -> tuple[Path, str]:
    path, _, pixel = hyades
    tmp_path.mkdir(parents=True, exist_ok=True)
    for name in WORKFLOW_FILES:
        src = repo_root / name
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, tmp_path / name)
    raw = tmp_path / f"results/sources/gaia_raw/Norder=0/Npix={pixel}.csv.gz"
    raw.parent.mkdir(parents=True)
    raw.write_bytes(gzip.compress(path.read_bytes(), mtime=0))
    config = {
        "seed": 1,
        "sources": {
            "gaia": {
                "kind": "gaia_archive",
                "partition_order": 0,
                "archive": {"partitions": [pixel], **archive},
            },
            "dust": {"kind": "none"},
        },
        "distances": {"dust": {"kind": "none"}, "posterior": {"prior": "edsd"}},
    }
    (tmp_path / "archive.yaml").write_text(yaml.safe_dump(config))
    return tmp_path, f"results/sources/gaia/Norder=0/Npix={pixel}.parquet"


def _snakemake(workdir: Path, *args: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", *args, "--cores", "1", "--configfile", "archive.yaml"],
        cwd=workdir,
        capture_output=True,
        text=True,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    return out


def test_the_partition_rule_normalises_with_esas_fetched_tables(tmp_path, repo_root, hyades):
    _, raw, pixel = hyades
    with LoopbackServer() as server:
        members = {
            "table_u0_g_col.txt": table_u0_g_col(u0_gc),
            "table_u0_g.txt": table_u0_g(lambda g: 1.3 + 0 * g),
        }
        server.route("GET", ZIP_PATH, Response(body=dr2_ruwe_zip(members)))
        workdir, target = _workdir(tmp_path, repo_root, hyades, {"u0_url": server.url + ZIP_PATH})
        out = _snakemake(workdir, target)
        assert server.count("GET", ZIP_PATH) == 1
    assert "fetch_gaia_u0_table" in out and "gaia_partition_from_archive" in out
    for name, data in members.items():
        assert (workdir / "results/sources/gaia_u0" / name).read_bytes() == data
    partition = pd.read_parquet(workdir / target)
    here = radec_to_healpix(raw["ra"].to_numpy(), raw["dec"].to_numpy(), 0) == pixel
    assert len(partition) == int(here.sum()) > 100
    assert not partition["ruwe_empirical_u0"].any()
    rows = raw[here].sort_values("source_id")
    uwe = unit_weight_error(
        rows["astrometric_chi2_al"].to_numpy(), rows["astrometric_n_good_obs_al"].to_numpy()
    )
    g, c = rows["phot_g_mean_mag"].to_numpy(), rows["bp_rp"].to_numpy()
    expected = np.where(np.isfinite(c), uwe / u0_gc(np.clip(g, 3.6, 21.0), np.clip(c, -1.0, 10.0)), uwe / 1.3)
    np.testing.assert_allclose(partition["ruwe"], expected, rtol=1e-12)
    log = (workdir / f"results/logs/gaia_partition_from_archive/Npix={pixel}.log").read_text()
    assert "ESA's u0 tables" in log and "table_u0_g_col.txt" in log


def test_without_a_table_every_row_is_flagged_empirical(tmp_path, repo_root, hyades):
    workdir, target = _workdir(tmp_path, repo_root, hyades, {"u0_table": None})
    out = _snakemake(workdir, target)
    assert "fetch_gaia_u0_table" not in out
    partition = pd.read_parquet(workdir / target)
    assert partition["ruwe_empirical_u0"].all() and np.isfinite(partition["ruwe"]).all()
    pixel = hyades[2]
    log = (workdir / f"results/logs/gaia_partition_from_archive/Npix={pixel}.log").read_text()
    assert "no u0 table" in log and "ruwe_empirical_u0" in log


def test_dr3_and_a_given_table_plan_no_fetch(tmp_path, repo_root, hyades):
    workdir, target = _workdir(
        tmp_path / "dr3", repo_root, hyades, {"method": "tap", "tap_table": "gaiadr3.gaia_source"}
    )
    plan = _snakemake(workdir, target, "-n")
    assert "fetch_gaia_u0_table" not in plan
    given = tmp_path / "mine" / "table_u0_g_col.txt"
    given.parent.mkdir()
    given.write_bytes(table_u0_g_col(u0_gc))
    workdir, target = _workdir(tmp_path / "given", repo_root, hyades, {"u0_table": str(given)})
    plan = _snakemake(workdir, target, "-n")
    assert "fetch_gaia_u0_table" not in plan and str(given) in plan
