"""The XP source tables of the real-data routes (latentsky.xp.sources): the APOGEE stars asked for, the labels
joined by source_id, the fetch parts and their merge — on an allStar-shaped FITS file and real archive rows."""

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from gaia_xp_archive import BRIGHT, FAINT, NO_BP, write_allstar

from latentsky.fetch.gaia_xp import read_apogee_allstar
from latentsky.io.gaia_xp import missing_xp_rows, read_xp_continuous, xp_table_to_arrow
from latentsky.provenance.files import read_provenance
from latentsky.provenance.record import build_record
from latentsky.xp.sources import (
    allstar_label_columns,
    crossmatch_source_ids,
    ids_of_part,
    merge_xp_parts,
)

STAR = (80.0, 2.4, 0.05, -0.21, 0.01, 0.08, 0.03, 0, 0)


@pytest.fixture
def allstar(tmp_path):
    rows = [
        ("2M00000002+7417074", "apo25m", "120+12", BRIGHT, 4650.0, *STAR, 143.0),
        ("2M00000002+7417074", "lco25m", "120+12S", BRIGHT, 4700.0, *STAR, 310.5),  # the star's row
        ("2M00000019-1924498", "apo25m", "060-75", -1, 5000.0, *STAR, 95.0),  # no Gaia counterpart
        ("2M00000032+5737103", "apo25m", "N7789", FAINT, 5100.0, *STAR, 50.0),
        ("2M00000033+5737104", "apo25m", "N7789", FAINT, 5200.0, *STAR, 40.0),  # a Gaia blend of two stars
    ]
    path = tmp_path / "allStar.fits"
    write_allstar(path, rows)
    return read_apogee_allstar(path)


def test_crossmatch_ids_and_labels_follow_the_stars_rows(allstar):
    assert crossmatch_source_ids(allstar).tolist() == sorted([BRIGHT, FAINT])
    labels = allstar_label_columns(allstar, np.array([FAINT, NO_BP, BRIGHT]))
    assert labels["TEFF"][[0, 2]].tolist() == [5100.0, 4700.0] and np.isnan(labels["TEFF"][1])
    assert labels["APOGEE_ID"][0] == "2M00000032+5737103" and labels["APOGEE_ID"][2] == "2M00000002+7417074"


def test_parts_cover_every_id_once():
    ids = np.arange(10**6, 10**6 + 997, dtype=np.int64) * 7
    parts = [ids_of_part(ids, k, 5) for k in range(5)]
    assert np.array_equal(np.sort(np.concatenate(parts)), ids)
    assert max(map(len, parts)) - min(map(len, parts)) <= 1
    with pytest.raises(ValueError, match=r"part 5 is not in 0…4"):
        ids_of_part(ids, 5, 5)


def _part(path, table, fetch):
    arrow = xp_table_to_arrow(table)
    pq.write_table(arrow.replace_schema_metadata({b"latentsky.fetch": json.dumps(fetch).encode()}), path)
    return path


def test_merge_streams_the_parts_and_joins_labels(allstar, real_data, tmp_path):
    rows = read_xp_continuous(
        real_data / "gaia_xp_continuous" / "XP_CONTINUOUS_RAW_with_missing_BP.csv", with_correlations=True
    )
    keep = np.isin(rows.source_id, [BRIGHT, NO_BP, FAINT])
    first = _part(tmp_path / "p0.parquet", rows.take(np.flatnonzero(keep)), {"part": 0})
    second = _part(tmp_path / "p1.parquet", missing_xp_rows([17], with_correlations=True), {"part": 1})
    record = build_record(rule="xp_sources_from_parts", params={}, config={"seed": 0}, seed=0)
    out = tmp_path / "crossmatch.parquet"
    n = merge_xp_parts([first, second], out, record, allstar=allstar, batch_rows=2)
    merged = pq.read_table(out)
    assert n == merged.num_rows == int(keep.sum()) + 1
    assert merged.column("source_id").to_pylist() == [*rows.source_id[keep].tolist(), 17]
    teff = dict(zip(merged.column("source_id").to_pylist(), merged.column("TEFF").to_pylist(), strict=True))
    assert teff[BRIGHT] == 4700.0 and teff[FAINT] == 5100.0 and teff[NO_BP] is None and teff[17] is None
    assert merged.column("APOGEE_ID").type == pa.string()
    # The merged rows read back to the same arrays, correlations included; the fetch records are kept.
    back = read_xp_continuous(out, with_correlations=True)
    np.testing.assert_array_equal(back.coefficients[: keep.sum()], rows.coefficients[keep])
    np.testing.assert_allclose(back.correlations[: keep.sum()], rows.correlations[keep], atol=6e-8)
    assert read_provenance(out) == json.loads(json.dumps(record))
    assert json.loads(pq.read_schema(out).metadata[b"latentsky.fetch_parts"]) == [{"part": 0}, {"part": 1}]


def test_merge_refuses_parts_of_another_layout_and_writes_empty_samples(allstar, tmp_path):
    record = build_record(rule="xp_sources_from_parts", params={}, config={"seed": 0}, seed=0)
    good = _part(tmp_path / "p0.parquet", missing_xp_rows([], with_correlations=True), {"part": 0})
    other = tmp_path / "p1.parquet"
    pq.write_table(pa.table({"source_id": pa.array([1], pa.int64())}), other)
    with pytest.raises(ValueError, match=r"p1.parquet: its columns differ from .*p0.parquet's"):
        merge_xp_parts([good, other], tmp_path / "x.parquet", record)
    assert not (tmp_path / "x.parquet").exists()
    out = tmp_path / "empty.parquet"
    assert merge_xp_parts([good], out, record, allstar=allstar) == 0
    empty = pq.read_table(out)
    assert empty.num_rows == 0 and {"source_id", "bp_coefficients", "TEFF", "APOGEE_ID"} <= set(
        empty.column_names
    )
