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
    with pytest.raises(OgleFormatError, match="line 1: 'STAR-1' is not an OGLE identifier"):
        read_ogle_ident(f)
    # An OGLE-III field without its star number, and an OGLE-III line that lost its field (a number before RA).
    f.write_text("OGLE-LMC-CEP-0002 LMC175.6 F 04:36:03.14 -70:30:53.2\n")
    with pytest.raises(OgleFormatError, match=r"line 1: star number .* must be an integer, got 'F'"):
        read_ogle_ident(f)
    f.write_text("OGLE-LMC-CEP-0002 11404 F 04:36:03.14 -70:30:53.2\n")
    with pytest.raises(
        OgleFormatError, match=r"line 1: expected ID, OGLE-III field, star number .* found '11404 F'"
    ):
        read_ogle_ident(f)


def test_ogle3_ident_with_two_subtype_tokens(tmp_path):
    # Some OGLE-III classes write a type and a flag before RA; the reader refused more than one token before.
    f = tmp_path / "ident.dat"
    f.write_text(
        "OGLE-BLG-LPV-000001  BLG100.1  1234  SRV  O  17:47:07.00 -35:06:30.0\n"
        "OGLE-BLG-LPV-000002  BLG100.1  1235  Mira    17:47:08.00 -35:06:31.0  V1234_Sco\n"
    )
    t = read_ogle_ident(f)
    assert t["subtype"].tolist() == ["SRV O", "Mira"]
    assert t["field"].tolist() == ["BLG100.1", "BLG100.1"] and t["star_id"].tolist() == [1234, 1235]
    assert t["cross_ids"].tolist() == ["", "V1234_Sco"] and (t["survey"] == "OGLE-III").all()


OGLE4 = DATA / "ogle4_ident"
#: file: (rows, lines without an OGLE-IV id); the real lines of tests/data/ogle4_ident.
OGLE4_IDENTS = {
    "blg_dsct_ident.dat": (21, 1),
    "blg_cep_ident.dat": (21, 5),
    "blg_t2cep_ident.dat": (18, 4),
    "blg_hb_ident.dat": (11, 2),
    "blg_rot_ident.dat": (14, 0),
}


@pytest.mark.parametrize("name", sorted(OGLE4_IDENTS))
def test_real_ogle4_idents(name):
    t = read_ogle_ident(OGLE4 / name)
    rows, without_ogle4_id = OGLE4_IDENTS[name]
    assert len(t) == rows and (t["survey"] == "OGLE-IV").all() and (t["target"] == "BLG").all()
    assert int(t["field"].isna().sum()) == int(t["star_id"].isna().sum()) == without_ogle4_id
    # The bulge fields of these lines: RA 17h-18.5h, Dec -40°..-21°.
    assert t["ra"].between(255, 278).all() and t["dec"].between(-40, -21).all()
    # OGLE-IV fields are FIELD.CCD with a two-digit CCD; no OGLE-III id (one-digit CCD) was taken for one.
    assert t["field"].dropna().str.fullmatch(r"BLG\d{3}\.\d{2}").all()


def test_ogle4_ident_values():
    dsct = read_ogle_ident(OGLE4 / "blg_dsct_ident.dat").set_index("ogle_id")
    first = dsct.loc["OGLE-BLG-DSCT-00001"]
    # 17:12:55.10 = 15 · (17 + 12/60 + 55.10/3600) = 258.2295833°; -29:48:06.5 = -(29 + 48/60 + 6.5/3600).
    assert first["ra"] == pytest.approx(258.2295833, abs=1e-6)
    assert first["dec"] == pytest.approx(-29.8018056, abs=1e-6)
    assert (first["subtype"], first["field"], first["star_id"], first["var_class"]) == (
        "singlemode",
        "BLG617.16",
        97164,
        "DSCT",
    )
    assert first["cross_ids"] == "BLG363.8.78880"  # the OGLE-III id, kept
    assert dsct.loc["OGLE-BLG-DSCT-00007", "cross_ids"] == ""  # no OGLE-III, OGLE-II or other id
    assert dsct.loc["OGLE-BLG-DSCT-00004", "subtype"] == "multimode"
    # Blank OGLE-IV column: the OGLE-III id after it is not taken for the OGLE-IV one.
    no_id = dsct.loc["OGLE-BLG-DSCT-11060"]
    assert pd.isna(no_id["field"]) and pd.isna(no_id["star_id"]) and no_id["cross_ids"] == "BLG366.8.110874"
    assert dsct.loc["OGLE-BLG-DSCT-02471", "cross_ids"] == "BLG121.2.188306 BUL_SC26_130067 OGLE MM5-A V74"
    assert (dsct.loc["OGLE-BLG-DSCT-05270", "field"], dsct.loc["OGLE-BLG-DSCT-05270", "star_id"]) == (
        "BLG505.03",
        127475,
    )

    cep = read_ogle_ident(OGLE4 / "blg_cep_ident.dat").set_index("ogle_id")
    assert cep.loc["OGLE-BLG-CEP-016", "subtype"] == "1O/2O/3O"
    only_gcvs = cep.loc["OGLE-BLG-CEP-031"]  # neither OGLE-IV nor OGLE-III id, only a GCVS name
    assert pd.isna(only_gcvs["field"]) and only_gcvs["cross_ids"] == "V1828 Sgr"

    t2cep = read_ogle_ident(OGLE4 / "blg_t2cep_ident.dat").set_index("ogle_id")
    assert (t2cep.loc["OGLE-BLG-T2CEP-0001", "field"], t2cep.loc["OGLE-BLG-T2CEP-0001", "star_id"]) == (
        "BLG897.11",
        124,
    )
    assert t2cep.loc["OGLE-BLG-T2CEP-0006", "cross_ids"] == "BLG360.4.41373 NSV 21170"

    # blg/hb writes RA and Dec with blanks: 17 26 26.55 -29  3 18.8.
    hb = read_ogle_ident(OGLE4 / "blg_hb_ident.dat").set_index("ogle_id")
    assert hb.loc["OGLE-BLG-HB-0001", "ra"] == pytest.approx(15 * (17 + 26 / 60 + 26.55 / 3600), abs=1e-6)
    assert hb.loc["OGLE-BLG-HB-0001", "dec"] == pytest.approx(-(29 + 3 / 60 + 18.8 / 3600), abs=1e-6)
    assert hb.loc["OGLE-BLG-HB-0001", "field"] == "BLG614.01"
    assert hb.loc["OGLE-BLG-HB-0001", "cross_ids"] == "OGLE-BLG-ELL-000759"
    assert hb.loc["OGLE-BLG-HB-0358", "subtype"] == "MS"

    # Six-digit ids, no subtype column.
    rot = read_ogle_ident(OGLE4 / "blg_rot_ident.dat").set_index("ogle_id")
    assert rot.loc["OGLE-BLG-ROT-000001", "var_class"] == "ROT"
    assert pd.isna(rot.loc["OGLE-BLG-ROT-000001", "subtype"])
    assert rot.loc["OGLE-BLG-ROT-012533", "cross_ids"] == "Cl* NGC 6530 WFI 15298"


def test_ogle4_ident_errors(tmp_path):
    real = (OGLE4 / "blg_dsct_ident.dat").read_text().splitlines(keepends=True)
    f = tmp_path / "ident.dat"
    # Something other than an OGLE-IV id in its column (here a magnitude).
    f.write_text("OGLE-BLG-DSCT-00001  singlemode  17:12:55.10 -29:48:06.5  16.470  1.666\n")
    with pytest.raises(
        OgleFormatError, match=r"ident\.dat, line 1: expected the OGLE-IV id .* found '16\.470'"
    ):
        read_ogle_ident(f)
    # One file, one layout.
    f.write_text(real[0] + "OGLE-BLG-DSCT-99999  BLG100.1  1234  F  17:47:07.00 -35:06:30.0\n")
    with pytest.raises(
        OgleFormatError, match=r"line 2: OGLE-III layout, but the lines before have the OGLE-IV"
    ):
        read_ogle_ident(f)
    f.write_text(real[0] + real[0])
    with pytest.raises(OgleFormatError, match="OGLE-BLG-DSCT-00001 appears more than once"):
        read_ogle_ident(f)


def test_full_hjd_lightcurve_is_shifted(tmp_path):
    # Full HJD (as some OGLE-IV files may write it): the same times as HJD - 2450000.
    ref = np.loadtxt(LC / "OGLE-LMC-CEP-0002.dat")
    f = tmp_path / "full.dat"
    np.savetxt(f, np.column_stack([ref[:, 0] + 2450000.0, ref[:, 1:]]), fmt=["%.5f", "%.3f", "%.3f"])
    lc = read_ogle_lightcurve(f)
    np.testing.assert_allclose(lc["time"], ref[:, 0], rtol=0, atol=1e-8)
    np.testing.assert_array_equal(lc[["mag", "err"]].to_numpy(), ref[:, 1:])
    f.write_text("2457000.12345 15.0 0.01\n7001.5 15.1 0.01\n")
    with pytest.raises(OgleFormatError, match=r"full\.dat, line 2: mixes full HJD"):
        read_ogle_lightcurve(f)


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


def test_merged_light_curves_stream_in_id_order(tmp_path):
    """Per-directory tables (sorted, small row groups) merge into one sorted table equal to the in-memory
    concatenation; interleaving id ranges are sorted together; an unsorted part is refused by name."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from latentsky.io.ogle import merge_light_curve_files
    from latentsky.provenance.files import read_parquet_provenance

    def curves(ids, n=3):
        return pd.DataFrame({"ogle_id": [i for i in ids for _ in range(n)], "time": [1.0, 2.0, 3.0] * len(ids),
                             "mag": np.arange(n * len(ids), dtype=float), "err": 0.01})  # fmt: skip

    tables = {
        "lmc_cep": curves(["OGLE-LMC-CEP-0001", "OGLE-LMC-CEP-0002"]),
        "blg_rrlyr": curves(["OGLE-BLG-RRLYR-02924", "OGLE-BLG-RRLYR-02925"]),
        # Four- and five-digit ids of one prefix interleave lexicographically with the OGLE-III ones.
        "lmc_ecl3": curves(["OGLE-LMC-ECL-0100", "OGLE-LMC-ECL-2000"]),
        "lmc_ecl4": curves(["OGLE-LMC-ECL-01500", "OGLE-LMC-ECL-30000"]),
        "empty": curves([]),
    }
    paths = []
    for name, frame in tables.items():
        path = tmp_path / f"{name}.parquet"
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path, row_group_size=2)
        paths.append(path)
    out = tmp_path / "merged.parquet"
    n = merge_light_curve_files(paths, out, {"rule": "test"}, batch_rows=2)
    merged = pd.read_parquet(out)
    expected = pd.concat(tables.values(), ignore_index=True).sort_values(["ogle_id", "time"], kind="stable")
    assert n == len(expected) == 24
    pd.testing.assert_frame_equal(
        merged.reset_index(drop=True), expected.reset_index(drop=True), check_dtype=False
    )
    assert read_parquet_provenance(out)["rule"] == "test"
    bad = tmp_path / "bad.parquet"
    shuffled = curves(["OGLE-SMC-CEP-0002", "OGLE-SMC-CEP-0001"])
    pq.write_table(pa.Table.from_pandas(shuffled, preserve_index=False), bad, row_group_size=2)
    with pytest.raises(OgleFormatError, match=r"bad.parquet: light curves not sorted by ogle_id"):
        merge_light_curve_files([bad], tmp_path / "m2.parquet", {"rule": "test"}, batch_rows=2)
    assert not (tmp_path / "m2.parquet").exists()
