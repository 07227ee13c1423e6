"""XP stars partitioned by HEALPix (``xp.partitions``): one catalog job per pixel, a HATS catalog that lsdb
opens, one row per input star (a star without a latent flagged, not dropped), and pixels without stars left
out as HATS requires."""

import lsdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from conftest import prepare_tiny_workdir, run_snakemake
from hats.pixel_math.spatial_index import spatial_index_to_healpix

from latentsky.io.hats import spatial_index
from latentsky.provenance.files import read_provenance
from latentsky.simulate.xp import simulate_xp_survey
from latentsky.xp.catalog import partition_catalog
from latentsky.xp.svae import ScatterVAE, XpNormalisation

ORDER = 1


def _positions_in(pixel: int, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n`` random positions inside a nested HEALPix pixel at :data:`ORDER`."""
    ra, dec = np.empty(0), np.empty(0)
    while len(ra) < n:
        r = rng.uniform(0, 360, 20000)
        d = np.degrees(np.arcsin(rng.uniform(-1, 1, 20000)))
        inside = spatial_index_to_healpix(spatial_index(r, d), target_order=ORDER) == pixel
        ra, dec = np.r_[ra, r[inside]], np.r_[dec, d[inside]]
    return ra[:n], dec[:n]


def _write_partitions(directory, counts: dict[int, int], seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    stars = simulate_xp_survey(10, sum(counts.values()), seed=seed)["unlabelled"]["observed"].copy()
    stars.loc[stars.index[0], ["phot_g_mean_flux", "phot_g_mean_mag"]] = np.nan  # no G flux: kept, flagged
    start = 0
    for pixel, n in counts.items():
        part = stars.iloc[start : start + n].copy()
        part["ra"], part["dec"] = _positions_in(pixel, n, rng)
        pq.write_table(pa.Table.from_pandas(part, preserve_index=False), directory / f"xp_{pixel}.parquet")
        start += n
    return stars


def test_partitioned_xp_stars_become_a_hats_catalog(tmp_path, repo_root):
    workdir = prepare_tiny_workdir(tmp_path, repo_root)
    stars = _write_partitions(workdir, {4: 120, 9: 80, 30: 0})
    (workdir / "parts.yaml").write_text(
        yaml.safe_dump(
            {"xp": {"partitions": {"order": ORDER, "table": "xp_{pixel}.parquet", "pixels": [4, 9, 30]}}}
        )
    )
    run_snakemake(
        workdir, "results/catalogs/xp_latents_hats/hats.properties", configfiles=("tiny.yaml", "parts.yaml")
    )
    hats_dir = workdir / "results/catalogs/xp_latents_hats"
    info = pd.read_csv(hats_dir / "partition_info.csv")
    assert sorted(info["Npix"]) == [4, 9]  # pixel 30 had no stars: no partition
    catalog = lsdb.open_catalog(hats_dir, columns="all").compute()
    assert set(lsdb.open_catalog(hats_dir).columns) == {
        "source_id",
        "ra",
        "dec",
        "has_latent",
        "z_mu",
        "anomaly_score",
        "flags",
    }
    assert sorted(catalog["source_id"]) == sorted(stars["source_id"])
    assert catalog["has_latent"].sum() == len(stars) - 1
    no_flux = catalog.set_index("source_id").loc[stars["source_id"].iloc[0]]
    assert not no_flux["has_latent"] and "missing_g_flux" in no_flux["flag_names"]
    assert np.isfinite(catalog.loc[catalog["has_latent"], "recon_full_cov_chi2_64"]).all()
    assert {"ra", "dec", "z_mu", "anomaly_score"} <= set(catalog.columns)
    assert "anomaly_rank" not in catalog.columns  # a rank within one pixel would mislead
    part = hats_dir / "dataset/Norder=1/Dir=0/Npix=4.parquet"
    assert read_provenance(part)["rule"] == "xp_catalog_partition"


def test_partition_catalog_refuses_tables_without_positions(tmp_path):
    table = simulate_xp_survey(10, 5, seed=1)["unlabelled"]["observed"]
    model, norm = ScatterVAE().eval(), XpNormalisation(np.zeros(110), np.ones(110))
    path = tmp_path / "xp_7.parquet"
    pq.write_table(pa.Table.from_pandas(table, preserve_index=False), path)
    with pytest.raises(ValueError, match=r"xp_7.parquet: no column\(s\) ra, dec; join ra and dec"):
        partition_catalog(str(path), model, norm)
    table["ra"], table["dec"] = 10.0, np.r_[np.nan, np.zeros(4)]
    pq.write_table(pa.Table.from_pandas(table, preserve_index=False), path)
    with pytest.raises(ValueError, match=r"xp_7.parquet: 1 star\(s\) without a finite ra/dec"):
        partition_catalog(str(path), model, norm)
    with pytest.raises(ValueError, match="must be Parquet"):
        partition_catalog(str(tmp_path / "xp_7.csv"), model, norm)
