"""From XP tables to model inputs and catalog rows (paper 001; spec A1.6): every star keeps its row, a star
the data cannot standardise is flagged, a missing band is flagged or masked as configured."""

import numpy as np
import pandas as pd
import pytest
from conftest import REAL_DATA

from latentsky.io.gaia_xp import FLAGS, read_xp_continuous, xp_table_to_arrow
from latentsky.xp.cannon import fit_cannon
from latentsky.xp.catalog import (
    full_covariance_chi2_of_file,
    model_inputs,
    read_catalog_labels,
    split_crossmatch,
    training_normalisation,
    xp_catalog,
)
from latentsky.xp.evaluation import full_covariance_chi2
from latentsky.xp.svae import ScatterVAE, encode_xp, fit_normalisation, standardise

XP = REAL_DATA / "gaia_xp_continuous"


def _real_table_with_g_flux():
    """The archive file with the missing-BP row, G fluxes added as a user would join them."""
    table = read_xp_continuous(XP / "XP_CONTINUOUS_RAW_with_missing_BP.csv")
    table.g_flux = np.nanmax(table.coefficients[:, [0, 55]], axis=1) * 15.0
    table.g_flux_source = np.full(len(table), "phot_g_mean_flux")
    table.flags = table.flags & ~FLAGS["missing_g_flux"]
    return table


def test_missing_band_is_flagged_or_masked_and_no_row_is_lost():
    table = _real_table_with_g_flux()
    missing_bp = table.has("missing_bp")
    assert missing_bp.sum() == 1
    complete = ~missing_bp
    norm = fit_normalisation(table.coefficients[complete], table.g_flux[complete])
    flagged = model_inputs(table, norm, "flag")
    assert flagged.usable.tolist() == complete.tolist()
    masked = model_inputs(table, norm, "mask")
    assert masked.usable.all()
    row = np.flatnonzero(missing_bp)[0]
    assert np.all(masked.weight[row, :55] == 0) and np.all(masked.weight[row, 55:] == 1)
    assert np.all(masked.x[row, :55] == 0)  # the training mean, in standardised units
    x, sigma = standardise(table.coefficients, table.errors, table.g_flux, norm)
    assert np.allclose(masked.x[row, 55:], x[row, 55:]) and np.allclose(
        masked.sigma[row, 55:], sigma[row, 55:]
    )

    model = ScatterVAE().eval()
    for mode, usable in (("flag", complete), ("mask", np.ones(len(table), bool))):
        catalog = xp_catalog({"user": (table, None)}, model, norm, missing_band=mode)
        assert catalog["source_id"].tolist() == table.source_id.tolist()
        assert catalog["has_latent"].tolist() == usable.tolist()
        assert (
            catalog.loc[~usable, "z_mu"].isna().all()
            and catalog.loc[~usable, "recon_reduced_chi2"].isna().all()
        )
        assert "missing_bp" in catalog.loc[row, "flag_names"]
        # Ranks: 1 = the largest mean ŝ (anomaly_rank) or reduced χ² (recon_chi2_rank) among the stars with
        # a latent, 0 for the others.
        scored = catalog[catalog["has_latent"]]
        assert (scored["anomaly_score"] == scored["scatter_mean_std_units"]).all()
        assert scored.sort_values("anomaly_rank")["anomaly_score"].is_monotonic_decreasing
        assert scored.sort_values("recon_chi2_rank")["recon_reduced_chi2"].is_monotonic_decreasing
        assert (catalog.loc[~usable, ["anomaly_rank", "recon_chi2_rank"]] == 0).all().all()


def test_star_without_g_flux_keeps_its_row_without_a_latent():
    table = read_xp_continuous(XP / "XP_CONTINUOUS_RAW.csv")  # archive XP tables carry no G flux
    assert table.has("missing_g_flux").all()
    norm = fit_normalisation(np.abs(table.coefficients) + 1.0, np.ones(len(table)))
    catalog = xp_catalog({"user": (table, None)}, ScatterVAE().eval(), norm)
    assert len(catalog) == len(table) and not catalog["has_latent"].any()
    assert all("missing_g_flux" in names for names in catalog["flag_names"])


def test_split_and_normalisation_use_only_usable_training_stars():
    rng = np.random.default_rng(0)
    table = _real_table_with_g_flux()
    n = 300
    big = table.take(rng.integers(0, len(table), n))
    big.source_id = np.arange(n, dtype=np.int64) + 10**15
    big.coefficients = big.coefficients * rng.normal(1, 0.05, (n, 110))
    split = split_crossmatch(big, [0.8, 0.1, 0.1], 3)
    assert np.array_equal(split, split_crossmatch(big.take(np.arange(n)[::-1]), [0.8, 0.1, 0.1], 3)[::-1])
    norm = training_normalisation(big, split)
    rows = (split == "train") & ~big.has("missing_bp")
    expected = fit_normalisation(big.coefficients[rows], big.g_flux[rows])
    assert np.allclose(norm.mean, expected.mean) and np.allclose(norm.std, expected.std)


def test_cannon_columns_fill_only_for_stars_with_labels(tmp_path):
    rng = np.random.default_rng(1)
    table = _real_table_with_g_flux()
    complete = ~table.has("missing_bp")
    norm = fit_normalisation(table.coefficients[complete], table.g_flux[complete])
    inputs = model_inputs(table, norm)
    labels = pd.DataFrame(
        {"TEFF": [5800.0, np.nan, 4500.0], "LOGG": [4.4, 2.0, 2.5], "M_H": [0.0, -0.3, 0.1]}
    )
    lab = rng.normal(size=(50, 3)) * [500, 1, 0.3] + [5000, 3, 0]
    cannon = fit_cannon(
        lab, rng.normal(size=(50, 110)), np.full((50, 110), 0.1), label_names=("teff", "logg", "m_h")
    )
    catalog = xp_catalog({"crossmatch": (table, labels)}, ScatterVAE().eval(), norm, cannon=cannon)
    has = inputs.usable & labels["TEFF"].notna().to_numpy()
    assert catalog["cannon_reduced_chi2"].notna().tolist() == has.tolist()
    path = tmp_path / "x.parquet"
    labels.assign(SFD_EBV=0.1).to_parquet(path)
    assert read_catalog_labels(path, ("teff", "ebv")).shape == (3, 2)
    with pytest.raises(ValueError, match="M_H"):
        labels.drop(columns="M_H").to_parquet(path)
        read_catalog_labels(path, ("teff", "m_h"))


def test_full_covariance_column_streams_the_archive_correlations(tmp_path):
    """The catalog's ``recon_full_cov_chi2_64``, read in batches of two rows, equals the χ² of the whole real
    file read at once with its correlations; the missing-BP row is scored on RP alone (masked band) or not at
    all (flagged); a file without correlation columns gives None."""
    import pyarrow.parquet as pq

    table = read_xp_continuous(XP / "XP_CONTINUOUS_RAW_with_missing_BP.csv", with_correlations=True)
    table.g_flux = np.nanmax(table.coefficients[:, [0, 55]], axis=1) * 15.0
    table.g_flux_source = np.full(len(table), "phot_g_mean_flux")
    table.flags = table.flags & ~FLAGS["missing_g_flux"]
    path = tmp_path / "xp.parquet"
    pq.write_table(xp_table_to_arrow(table), path)
    complete = ~table.has("missing_bp")
    norm = fit_normalisation(table.coefficients[complete], table.g_flux[complete])
    model = ScatterVAE().eval()
    for mode in ("flag", "mask"):
        streamed = full_covariance_chi2_of_file(str(path), model, norm, mode, batch_rows=2)
        inputs = model_inputs(table, norm, mode)
        out = encode_xp(model, inputs.x)
        residual = np.where(inputs.weight > 0, inputs.x - out.x_hat, np.nan)
        whole = full_covariance_chi2(residual, inputs.sigma, out.s_hat, table.correlations)["full"]
        assert np.isfinite(whole).all()  # the masked row is scored on RP alone
        np.testing.assert_allclose(streamed, np.where(inputs.usable, whole, np.nan), rtol=1e-6)
        assert np.isfinite(streamed).tolist() == inputs.usable.tolist()
        catalog = xp_catalog(
            {"user": (table, None)}, model, norm, missing_band=mode, full_cov_chi2={"user": streamed}
        )
        assert catalog["recon_full_cov_chi2_64"].notna().tolist() == inputs.usable.tolist()
        # A table read with its correlations gets the same column without being given it.
        in_memory = xp_catalog({"user": (table, None)}, model, norm, missing_band=mode)
        np.testing.assert_allclose(in_memory["recon_full_cov_chi2_64"], streamed, rtol=1e-6)
    no_corr = tmp_path / "no_corr.parquet"
    pq.write_table(
        xp_table_to_arrow(table).drop(["bp_coefficient_correlations", "rp_coefficient_correlations"]), no_corr
    )
    assert full_covariance_chi2_of_file(str(no_corr), model, norm) is None
    with pytest.raises(ValueError, match=f"{len(table) + 1} full-covariance"):
        xp_catalog({"user": (table, None)}, model, norm, full_cov_chi2={"user": np.ones(len(table) + 1)})
