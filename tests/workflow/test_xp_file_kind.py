"""The XP stage on a user's own tables (``xp.kind: file``): archive-layout Parquet and a real archive CSV, the
APOGEE labels joined from an allStar FITS file, no truth. Every input star keeps its row; the archive's
correlations reach the catalog's full-covariance χ²."""

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import yaml
from astropy.io import fits
from conftest import REAL_DATA, prepare_tiny_workdir, run_snakemake

from latentsky.fetch.gaia_xp import APOGEE_ALLSTAR_COLUMNS
from latentsky.simulate.xp import LABEL_COLUMNS, simulate_xp_survey


def _write_allstar(path, source_ids, labels):
    """An allStar-shaped FITS table (DR17 names) for the labelled stars, plus one APOGEE star without a Gaia
    counterpart and one whose Gaia source is not in the XP table."""
    n = len(source_ids)
    ids = np.r_[source_ids, 0, 17]
    values = {
        "APOGEE_ID": np.array([f"2M{i:08d}" for i in range(n + 2)]),
        "TELESCOPE": np.full(n + 2, "apo25m"),
        "FIELD": np.full(n + 2, "field"),
        "GAIAEDR3_SOURCE_ID": ids.astype(np.int64),
        "STARFLAG": np.zeros(n + 2, dtype=np.int32),
        "ASPCAPFLAG": np.zeros(n + 2, dtype=np.int64),
        "SNR": np.full(n + 2, 100.0, dtype=np.float32),
        "ALPHA_M": np.zeros(n + 2, dtype=np.float32),
    }
    for name in ("TEFF", "TEFF_ERR", "LOGG", "LOGG_ERR", "M_H", "M_H_ERR", "SFD_EBV"):
        values[name] = np.r_[labels[name].to_numpy(dtype=np.float32), 4500.0, 4500.0].astype(np.float32)
    formats = {np.dtype("int64"): "K", np.dtype("int32"): "J", np.dtype("float32"): "E"}
    columns = [
        fits.Column(
            name=name,
            format=f"{values[name].dtype.itemsize}A"
            if values[name].dtype.kind == "U"
            else formats[values[name].dtype],
            array=values[name],
        )
        for name in APOGEE_ALLSTAR_COLUMNS
    ]
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns(columns)]).writeto(path)


def test_xp_stage_on_user_files_keeps_every_star_and_joins_labels(tmp_path, repo_root):
    workdir = prepare_tiny_workdir(tmp_path, repo_root)
    survey = simulate_xp_survey(900, 200, seed=41)
    cross = survey["crossmatch"]["observed"]
    labels = cross[list(LABEL_COLUMNS)]
    # The user's cross-match XP table carries no labels (they come from allStar) and no G magnitude column.
    xp_columns = [c for c in cross.columns if c not in LABEL_COLUMNS]
    pq.write_table(pa.Table.from_pandas(cross[xp_columns], preserve_index=False), workdir / "cross.parquet")
    pq.write_table(
        pa.Table.from_pandas(survey["unlabelled"]["observed"], preserve_index=False), workdir / "unl.parquet"
    )
    _write_allstar(workdir / "allStar.fits", cross["source_id"].to_numpy(), labels)
    real_csv = REAL_DATA / "gaia_xp_continuous/XP_CONTINUOUS_RAW_with_missing_BP.csv"
    (workdir / "user.yaml").write_text(
        yaml.safe_dump(
            {
                "xp": {
                    "kind": "file",
                    "file": {
                        "crossmatch": ["cross.parquet"],
                        "unlabelled": ["unl.parquet", str(real_csv)],
                        "allstar": "allStar.fits",
                    },
                }
            }
        )
    )
    run_snakemake(
        workdir,
        "results/catalogs/xp_latents.parquet",
        "results/metrics/xp_svae.json",
        configfiles=("tiny.yaml", "user.yaml"),
    )
    results = workdir / "results"
    prepared = pq.read_table(results / "sources/xp/crossmatch.parquet").to_pandas()
    assert prepared["source_id"].tolist() == cross["source_id"].tolist()
    np.testing.assert_allclose(prepared["TEFF"], labels["TEFF"], rtol=1e-6)
    # The archive's correlations are kept through preparation (packed, one list per band and star).
    assert prepared["bp_coefficient_correlations"].notna().all()

    catalog = pq.read_table(results / "catalogs/xp_latents.parquet").to_pandas()
    assert catalog["sample"].value_counts().to_dict() == {"crossmatch": 900, "unlabelled": 203}
    real = catalog[catalog["source_id"].isin([5405570973190252288])]
    assert len(real) == 1 and not real["has_latent"].iloc[0]  # no G flux in an archive XP table
    assert "missing_g_flux" in real["flag_names"].iloc[0] and "missing_bp" in real["flag_names"].iloc[0]
    encoded = catalog["has_latent"]
    assert encoded.sum() == 1100  # the three real archive rows have no G flux
    assert np.isfinite(catalog.loc[encoded, "recon_full_cov_chi2_64"]).all()
    assert catalog.loc[catalog["sample"] == "crossmatch", "cannon_reduced_chi2"].notna().all()

    metrics = json.loads((results / "metrics/xp_svae.json").read_text())
    code = metrics["presets"]["code"]
    assert "scatter_recovery" not in code and "latent_label_information" not in code  # no truth
    assert code["reduced_chi2_first32"]["svae"]["full_median"] > 0
    assert {"svae_tail_gt5", "mean_abs_error_ratio_bp"} <= set(metrics["acceptance"])
