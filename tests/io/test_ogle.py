"""latentsky.io.ogle on the real OGLE-III files in tests/data/ogle3_lightcurves and on OGLE-format snippets."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord
from conftest import PUBLISHED_XMATCH_DIR, REAL_DATA

from latentsky.io.ogle import (
    OBJECT_COLUMNS,
    OgleFormatError,
    concat_ogle_catalogs,
    published_table_paths,
    read_light_curves,
    read_ogle_gaia_xmatch,
    read_ogle_ident,
    read_ogle_lightcurve,
    read_training_meta_ids,
)

DATA = REAL_DATA
LC = DATA / "ogle3_lightcurves"
XM = published_table_paths(PUBLISHED_XMATCH_DIR)

LC_ROWS = {
    "OGLE-LMC-CEP-0002": 366,
    "OGLE-LMC-CEP-0005": 367,
    "OGLE-LMC-CEP-0674": 366,
    "OGLE-BLG-RRLYR-02924": 139,
    "OGLE-GD-ECL-00692": 1921,
}
XM_ROWS = {
    "cmd_confirmed.csv": 7620,
    "var_conf_matches.csv": 3833,
    "cmd_secondaries_confirmed.csv": 539,
    "one_pmrad_match.csv": 1119,
    "gaiaVar_noClass_confirmed.csv": 463,
}


@pytest.mark.parametrize("name", sorted(LC_ROWS))
def test_real_lightcurves(name):
    lc = read_ogle_lightcurve(LC / f"{name}.dat")
    assert list(lc.columns) == ["time", "mag", "err"]
    assert len(lc) == LC_ROWS[name]
    assert np.all(np.diff(lc["time"]) > 0)
    # OGLE-III seasons 2001-2009: HJD-2450000 between 2000 and 5000.
    assert 2000 < lc["time"].min() and lc["time"].max() < 5000
    assert lc["err"].between(0.003, 0.02).all()
    assert lc["mag"].between(13, 18).all()


def test_lightcurve_errors_name_file_and_line(tmp_path):
    bad = tmp_path / "bad.dat"
    bad.write_text("2171.85654 15.601 0.007\n2184.81537 15.657\n")
    with pytest.raises(OgleFormatError, match=r"bad\.dat, line 2: expected 3 columns"):
        read_ogle_lightcurve(bad)
    bad.write_text("2171.85654 15.601 0.007\n2184.81537 15.657 -0.007\n")
    with pytest.raises(OgleFormatError, match=r"line 2: error"):
        read_ogle_lightcurve(bad)
    bad.write_text("2171.85654 15.601 nan\n")
    with pytest.raises(OgleFormatError, match=r"line 1: error"):
        read_ogle_lightcurve(bad)


def test_lightcurve_keeps_file_order(tmp_path):
    f = tmp_path / "lc.dat"
    f.write_text("3000.0 15.0 0.01\n2000.0 15.1 0.01\n")
    assert read_ogle_lightcurve(f)["time"].tolist() == [3000.0, 2000.0]


IDENT = """\
OGLE-LMC-CEP-0002   LMC175.6  11404  F     04:36:03.14 -70:30:53.2  OGLE050329.22-692621.7  05.4915.53
OGLE-LMC-CEP-0005   LMC175.5  28561  F/1O  04:36:36.57 -70:17:39.2
OGLE-BLG-RRLYR-02924 BLG184.6 123456 RRab  17:47:07.00 -35:06:30.0  V1234_Sco
OGLE-LMC-ELL-0001   LMC100.1  1      00:00:00.00 +00:30:00.0
"""
CEPF = """\
OGLE-LMC-CEP-0002  15.530  16.265  3.1181189  0.0000057  2171.37258  0.443  0.478 4.480 0.247 2.700
OGLE-LMC-CEP-0005  14.560  15.200  5.6122000  0.0000100  2172.00000  -      -     -     -     -
"""


def test_ident_with_period_table(tmp_path):
    (tmp_path / "ident.dat").write_text(IDENT)
    (tmp_path / "cepF.dat").write_text(CEPF)
    t = read_ogle_ident(tmp_path / "ident.dat", period_tables=[tmp_path / "cepF.dat"])
    assert t["ogle_id"].tolist()[0] == "OGLE-LMC-CEP-0002"
    assert t["var_class"].tolist() == ["CEP", "CEP", "RRLYR", "ELL"]
    assert t["subtype"].iloc[:3].tolist() == ["F", "F/1O", "RRab"] and pd.isna(t["subtype"].iloc[3])
    # 04:36:03.14 = 69.013083 deg; -70:30:53.2 = -70.514778 deg.
    assert t["ra"].iloc[0] == pytest.approx(69.0130833, abs=1e-6)
    assert t["dec"].iloc[0] == pytest.approx(-70.5147778, abs=1e-6)
    assert t["ra"].iloc[3] == 0.0 and t["dec"].iloc[3] == pytest.approx(0.5)
    assert t["period"].iloc[0] == pytest.approx(3.1181189)
    assert np.isnan(t["i_amp"].iloc[1]) and np.isnan(t["period"].iloc[2])
    assert t["cross_ids"].iloc[0] == "OGLE050329.22-692621.7 05.4915.53"
    assert t["star_id"].dtype == "Int64"


def test_ident_errors(tmp_path):
    f = tmp_path / "ident.dat"
    f.write_text("OGLE-LMC-CEP-0002 LMC175.6 11404 F 69.013 -70.51\n")
    with pytest.raises(OgleFormatError, match=r"ident\.dat, line 1: expected RA"):
        read_ogle_ident(f)
    f.write_text("STAR-1 LMC175.6 11404 F 04:36:03.14 -70:30:53.2\n")
    with pytest.raises(OgleFormatError, match="line 1: 'STAR-1' is not an OGLE-III identifier"):
        read_ogle_ident(f)


@pytest.mark.parametrize("name", sorted(XM_ROWS))
def test_real_xmatch_tables(name):
    t = read_ogle_gaia_xmatch(XM[name])
    assert len(t) == XM_ROWS[name]
    assert t["source_id"].dtype == "Int64" and t["source_id"].notna().all()
    assert set(t["var_class"]) <= {"ACEP", "CEP", "DSCT", "ECL", "ELL", "LPV", "RRLYR", "T2CEP"}
    assert (t["period"] > 0).all()
    # Every match lies within the 2" cone of paper 000 Sec. 2.3 at epoch 2015.5 ...
    assert t["sep_arcsec"].max() < 2.0
    if name == "cmd_secondaries_confirmed.csv":
        assert t["ang_dist_arcsec"].isna().all()
    else:
        # ... and angDist is in arcsec (in degrees it would be up to 7000").
        assert 0 < t["ang_dist_arcsec"].min() and t["ang_dist_arcsec"].max() < 2.0
    ok = t["r_est"] > 0
    expected = t["phot_g_mean_mag"] - 5 * np.log10(t["r_est"] / 10)
    np.testing.assert_allclose(t.loc[ok, "abs_g"], expected[ok])
    assert t.loc[~ok, "abs_g"].isna().all()


def test_xmatch_abs_gmag_quirk():
    raw = pd.read_csv(XM["cmd_confirmed.csv"])
    t = read_ogle_gaia_xmatch(XM["cmd_confirmed.csv"])
    # The file's abs_Gmag is abs_Imag; the recomputed M_G differs by G - I (several mag for red LPVs).
    assert np.allclose(raw["abs_Gmag"], raw["abs_Imag"])
    assert np.nanmax(np.abs(t["abs_g"] - raw["abs_Gmag"])) > 1.0
    # angDist matches the OGLE-Gaia(J2000) separation in arcsec.
    ogle = SkyCoord(raw["RA"].to_numpy() * u.deg, raw["Dec"].to_numpy() * u.deg)
    gaia = SkyCoord(raw["ra_epoch2000"].to_numpy() * u.deg, raw["dec_epoch2000"].to_numpy() * u.deg)
    np.testing.assert_allclose(t["ang_dist_arcsec"], ogle.separation(gaia).arcsec, atol=1e-5)


def test_xmatch_missing_column(tmp_path):
    f = tmp_path / "x.csv"
    pd.read_csv(XM["gaiaVar_noClass_confirmed.csv"]).drop(columns=["r_est"]).to_csv(f, index=False)
    with pytest.raises(OgleFormatError, match=r"x\.csv: missing required column\(s\) \['r_est'\]"):
        read_ogle_gaia_xmatch(f)


def test_training_meta_ids():
    ids = read_training_meta_ids(DATA / "ogle3_gaiadr2_xmatch" / "training_meta_id.csv.gz")
    # Table 1: 65,760 augmented examples from ~33,100 validated sources.
    assert len(ids) == 65760 and ids.dtype == np.int64
    assert 33000 < ids.nunique() < 33200


def test_concat_ogle_catalogs_keeps_every_object_and_refuses_duplicates():
    def objects(ids):
        return pd.DataFrame({c: ([*ids] if c == "ogle_id" else [0.0] * len(ids)) for c in OBJECT_COLUMNS})

    def curves(ids):
        return pd.DataFrame({"ogle_id": [i for i in ids for _ in range(2)], "time": [2.0, 1.0] * len(ids),
                             "mag": 15.0, "err": 0.01})  # fmt: skip

    a, b = ["OGLE-LMC-CEP-0002", "OGLE-LMC-CEP-0001"], ["OGLE-BLG-RRLYR-02924"]
    merged, lc = concat_ogle_catalogs([objects(a), objects(b)], [curves(a), curves(b)], names=["lmc", "blg"])
    assert list(merged["ogle_id"]) == sorted(a + b) and list(merged.columns) == list(OBJECT_COLUMNS)
    assert len(lc) == 6 and lc.groupby("ogle_id")["time"].apply(lambda t: t.is_monotonic_increasing).all()
    with pytest.raises(OgleFormatError, match=r"OGLE-LMC-CEP-0002 appears in more than one catalog.*lmc"):
        concat_ogle_catalogs([objects(a), objects(a[:1])], [curves(a), curves(a[:1])], names=["lmc", "lmc2"])
    with pytest.raises(OgleFormatError, match="blg: missing column"):
        concat_ogle_catalogs([objects(a), objects(b).drop(columns="period")], [curves(a), curves(b)],
                             names=["lmc", "blg"])  # fmt: skip


def test_light_curve_table_reads_only_the_objects_asked_for(tmp_path):
    # The real curves in one long table, in small row groups as a fetched catalog is: the filter returns
    # exactly the rows of the ids asked for.
    frames = [read_ogle_lightcurve(LC / f"{name}.dat").assign(ogle_id=name) for name in sorted(LC_ROWS)]
    table = pd.concat(frames, ignore_index=True)[["ogle_id", "time", "mag", "err"]]
    path = tmp_path / "light_curves.parquet"
    table.to_parquet(path, row_group_size=100)
    some = read_light_curves(path, ["OGLE-LMC-CEP-0005", "OGLE-BLG-RRLYR-02924", "OGLE-NOT-THERE-1"])
    assert some["ogle_id"].value_counts().to_dict() == {"OGLE-LMC-CEP-0005": 367, "OGLE-BLG-RRLYR-02924": 139}
    pd.testing.assert_frame_equal(
        some[some["ogle_id"] == "OGLE-LMC-CEP-0005"].reset_index(drop=True),
        table[table["ogle_id"] == "OGLE-LMC-CEP-0005"].reset_index(drop=True),
    )
    assert len(read_light_curves(path)) == sum(LC_ROWS.values())
    assert read_light_curves(path, []).empty
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(OgleFormatError, match="light_curves.parquet: not a light-curve table"):
        read_light_curves(path, ["OGLE-LMC-CEP-0005"])
