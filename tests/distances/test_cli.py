"""`latentsky distances train|catalog` on a real Gaia DR2 table: the Hyades members (shared data)."""

import numpy as np
import pandas as pd
import pytest

from latentsky.cli import main
from latentsky.provenance.files import read_provenance


@pytest.fixture(scope="module")
def hyades_catalog(real_data, tmp_path_factory):
    table = real_data / "gaia_dr2_clusters" / "hyades.csv"
    out = tmp_path_factory.mktemp("hyades")
    model, catalog = out / "flow.pt", out / "distances.parquet"
    common = [str(table), "--dust", "none", "--seed", "1", "--device", "cpu"]
    assert (
        main(
            [
                "distances",
                "train",
                *common,
                "--blocks",
                "2",
                "--hidden",
                "16",
                "--rounds",
                "2",
                "--steps-per-round",
                "60",
                "--out",
                str(model),
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "distances",
                "catalog",
                *common,
                "--model",
                str(model),
                "--posterior-samples",
                "128",
                "--out",
                str(catalog),
            ]
        )
        == 0
    )
    return table, model, pd.read_parquet(catalog), catalog


def test_every_hyades_star_has_a_row(hyades_catalog):
    table, _, catalog, _ = hyades_catalog
    raw = pd.read_csv(table)
    assert len(catalog) == len(raw) == 515
    assert set(catalog["source_id"]) == set(raw["source_id"])
    # The 6 stars without BP/RP keep their rows, flagged and without a posterior.
    no_colour = catalog["flag_names"].str.contains("missing_bp_rp")
    assert no_colour.sum() == 6
    assert not catalog.loc[no_colour, "has_posterior"].any()


def test_hyades_distance_matches_its_parallaxes(hyades_catalog):
    _, _, catalog, _ = hyades_catalog
    has = catalog["has_posterior"]
    assert has.sum() > 450
    # Hyades parallaxes have SNR ~ 100–1000: the posterior median must sit on 1/ϖ (Hyades ≈ 47 pc)
    # to well within the 1 % the parallax errors allow.
    inverse = 1000.0 / (catalog.loc[has, "parallax"] + 0.029)
    ratio = catalog.loc[has, "dist_q50"] / inverse
    assert np.median(np.abs(ratio - 1)) < 0.01
    assert 44 < catalog.loc[has, "dist_q50"].median() < 50


def test_cli_outputs_carry_provenance(hyades_catalog):
    table, model, _, catalog_path = hyades_catalog
    record = read_provenance(catalog_path)
    assert record["rule"] == "latentsky distances catalog"
    assert {i["path"].rsplit("/", 1)[-1] for i in record["inputs"]} == {"hyades.csv", "flow.pt"}
    assert read_provenance(model)["extra"]["n_train_stars"] > 350


def test_bad_dust_spec_is_refused(capsys):
    with pytest.raises(SystemExit):
        main(["distances", "catalog", "x.csv", "--dust", "sfd", "--model", "m.pt", "--out", "o.parquet"])
    assert "expected 'none', 'constant:E'" in capsys.readouterr().err
