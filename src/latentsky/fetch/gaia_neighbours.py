"""Gaia DR2 (or DR3) sources around OGLE positions, by a TAP upload join on the ESA Gaia archive.

Paper 000 (PELS-VAE) Appendix A starts from *every* Gaia DR2 source within 2″ of each OGLE-III position
(34,653 matches, its Table 4); the validation cascade (:func:`latentsky.variables.crossmatch.run_cascade`) then picks
the counterpart among them using proper motions, Gaia's variability class, colours and Bailer-Jones
distances. :func:`fetch_gaia_neighbours` retrieves those candidates with the columns the cascade reads:

* the OGLE positions are uploaded as a VOTable (``TAP_UPLOAD.ogle``: ``ogle_id``, ``ra``, ``dec``) in
  chunks, because the archive limits the size of an uploaded table;
* one asynchronous job per chunk runs :func:`neighbours_adql`: a cone join on ``gaiadr2.gaia_source``
  (positions at J2015.5; the 15.5-yr epoch difference is handled later by the cascade's proper-motion
  radius, not by widening the cone), left-joined to ``gaiadr2.vari_classifier_result`` (Gaia's class,
  ``best_class_name``) and ``external.gaiadr2_geometric_distance`` (Bailer-Jones et al. 2018, ``r_est``);
* the chunks' results are concatenated, de-duplicated on ``source_id`` (a source near two OGLE objects is
  one Gaia source) and written as one Parquet file.

astroquery's :class:`~astroquery.gaia.GaiaClass` runs the jobs, as in
:func:`latentsky.fetch.gaia_archive.fetch_partition_tap`.
"""

from __future__ import annotations

import logging
import math
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from astropy.table import Table

from latentsky.fetch.gaia_archive import DEFAULT_TAP_URL, run_tap_job, tap_location
from latentsky.fetch.http import FetchError
from latentsky.io.gaia_columns import GAIA_COLUMNS
from latentsky.provenance.files import write_parquet

log = logging.getLogger(__name__)

#: Cone radius of the paper's cross-match (paper 000 Sec. 2.3 and Table 4), arcsec.
DEFAULT_RADIUS_ARCSEC = 2.0
#: OGLE positions per uploaded table and job. The archive caps uploads by size; 50,000 rows of
#: (ogle_id, ra, dec) are a VOTable of a few MB and return ~1e5 candidates, well below the row limit of
#: asynchronous jobs.
DEFAULT_CHUNK_SIZE = 50_000
#: Columns written: those the cross-match cascade reads, then Gaia DR2's FLAME radius and luminosity.
NEIGHBOUR_COLUMNS: tuple[str, ...] = (*GAIA_COLUMNS, "radius_val", "lum_val")

#: Per Gaia release, the columns the query selects as (table alias, archive column, result name) and the
#: tables behind the aliases. The result names are DR2's for both, so everything downstream reads one layout:
#: DR3's ``teff_gspphot`` (GSP-Phot, which fits the extinction A0 with T_eff — unlike DR2's Priam, which
#: assumes none and reads a reddened star as cool), FLAME ``radius_flame``/``lum_flame`` from
#: ``astrophysical_parameters``, and Bailer-Jones et al. (2021) ``r_med_geo`` in place of r_est (2018).
#: ``best_class_name`` becomes gaia_var_class; its DR3 labels are mapped by
#: :data:`latentsky.variables.crossmatch.GAIA_TO_OGLE_CLASS`.
#: The columns both releases select under their own names.
_ASTROMETRY_AND_PHOTOMETRY = (
    ("o", "ogle_id", "ogle_id"),
    ("g", "source_id", "source_id"),
    ("g", "ra", "ra"),
    ("g", "dec", "dec"),
    ("g", "pmra", "pmra"),
    ("g", "pmdec", "pmdec"),
    ("g", "phot_g_mean_mag", "phot_g_mean_mag"),
    ("g", "bp_rp", "bp_rp"),
)
RELEASES: dict[str, dict[str, Any]] = {
    "dr2": {
        "select": (
            *_ASTROMETRY_AND_PHOTOMETRY,
            ("g", "teff_val", "teff_val"),
            ("g", "radius_val", "radius_val"),
            ("g", "lum_val", "lum_val"),
            ("g", "phot_variable_flag", "phot_variable_flag"),
            ("v", "best_class_name", "best_class_name"),
            ("d", "r_est", "r_est"),
        ),
        "source": "gaiadr2.gaia_source",
        "joins": (("v", "gaiadr2.vari_classifier_result"), ("d", "external.gaiadr2_geometric_distance")),
    },
    "dr3": {
        "select": (
            *_ASTROMETRY_AND_PHOTOMETRY,
            ("g", "teff_gspphot", "teff_val"),
            ("a", "radius_flame", "radius_val"),
            ("a", "lum_flame", "lum_val"),
            ("g", "phot_variable_flag", "phot_variable_flag"),
            ("v", "best_class_name", "best_class_name"),
            ("d", "r_med_geo", "r_est"),
        ),
        "source": "gaiadr3.gaia_source",
        "joins": (
            ("a", "gaiadr3.astrophysical_parameters"),
            ("v", "gaiadr3.vari_classifier_result"),
            ("d", "external.gaiaedr3_distance"),
        ),
    },
}
#: The result columns of every release's query, in query order.
_RESULT_NAMES = tuple(name for _, _, name in RELEASES["dr2"]["select"])
_FLOAT_COLUMNS = ("ra", "dec", "pmra", "pmdec", "phot_g_mean_mag", "bp_rp", "teff_val", "r_est")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ARROW_TYPES = {"source_id": pa.int64(), "phot_variable_flag": pa.string(), "gaia_var_class": pa.string()}


@dataclass(frozen=True)
class GaiaNeighbours:
    """What :func:`fetch_gaia_neighbours` wrote: the file, the query, one job id per chunk, row counts."""

    path: Path
    query: str
    job_ids: tuple[str, ...]
    n_pairs: int
    n_sources: int


def neighbours_adql(
    radius_arcsec: float = DEFAULT_RADIUS_ARCSEC, upload_table: str = "ogle", release: str = "dr2"
) -> str:
    """ADQL joining an uploaded table of OGLE positions with every Gaia source within a radius.

    Parameters
    ----------
    radius_arcsec
        Cone radius in arcsec (paper 000: 2″), converted to the degrees ADQL's ``CIRCLE`` takes.
    upload_table
        Name of the uploaded table, queried as ``TAP_UPLOAD.<upload_table>`` with columns ``ogle_id``,
        ``ra``, ``dec`` (deg, J2000).
    release
        ``dr2`` (the paper's) or ``dr3`` (:data:`RELEASES`).

    Returns
    -------
    str
        One row per (OGLE object, Gaia source) pair: ``o.ogle_id`` and the Gaia columns of
        :data:`NEIGHBOUR_COLUMNS` (``best_class_name`` in place of ``gaia_var_class``). Sources without a
        Gaia classification or a Bailer-Jones distance are kept (LEFT OUTER JOINs), with nulls there.
    """
    if not (math.isfinite(radius_arcsec) and radius_arcsec > 0):
        raise ValueError(f"radius_arcsec must be a positive number of arcsec, got {radius_arcsec!r}")
    if not _IDENTIFIER.match(upload_table):
        raise ValueError(f"upload_table {upload_table!r} is not a valid ADQL table name")
    if release not in RELEASES:
        raise ValueError(f"Gaia release {release!r} not one of {sorted(RELEASES)}")
    spec = RELEASES[release]
    columns = ", ".join(
        f"{alias}.{column}" + ("" if column == name else f" AS {name}")
        for alias, column, name in spec["select"]
    )
    radius_deg = float(radius_arcsec) / 3600.0
    joins = " ".join(
        f"LEFT OUTER JOIN {table} AS {alias} ON {alias}.source_id = g.source_id"
        for alias, table in spec["joins"]
    )
    return (
        f"SELECT {columns} "
        f"FROM TAP_UPLOAD.{upload_table} AS o "
        f"JOIN {spec['source']} AS g "
        f"ON 1=CONTAINS(POINT('ICRS', g.ra, g.dec), CIRCLE('ICRS', o.ra, o.dec, {radius_deg!r})) "
        f"{joins}"
    )


def _upload_table(objects: pd.DataFrame) -> Table:
    """The chunk as an astropy Table (ogle_id, ra/dec float64 deg), written as VOTable for the upload."""
    table = Table(
        {
            # Bytes, so the VOTable FIELD is datatype="char": every TAP service accepts it for an upload.
            "ogle_id": np.asarray(objects["ogle_id"], dtype=str).astype(np.bytes_),
            "ra": np.asarray(objects["ra"], dtype=np.float64),
            "dec": np.asarray(objects["dec"], dtype=np.float64),
        }
    )
    table["ra"].unit = table["dec"].unit = "deg"
    return table


def _run_chunk(
    gaia: Any, where: str, query: str, upload: Path, upload_table: str, result: Path
) -> tuple[str, pd.DataFrame]:
    """One asynchronous upload job: its id and result. Every failure is a FetchError naming ``where``."""
    job, frame = run_tap_job(
        gaia,
        where,
        query,
        result,
        output_format="votable",
        reader="votable",
        upload_resource=str(upload),
        upload_table_name=upload_table,
    )
    frame.columns = [str(c).lower() for c in frame.columns]
    missing = [name for name in _RESULT_NAMES if name not in frame.columns]
    if missing:
        raise FetchError(
            f"TAP service {where}: job {job.jobid} result lacks column(s) {missing}; found {list(frame.columns)}"
        )
    if frame["source_id"].isna().any():
        raise FetchError(f"TAP service {where}: job {job.jobid} result has rows without a source_id")
    log.info("TAP job %s: %d OGLE–Gaia pairs", job.jobid, len(frame))
    return str(job.jobid), frame


def _text(values: pd.Series) -> pd.Series:
    """A pandas "string" column, NA for nulls.

    A null char cell of a VOTable (an unclassified source after the LEFT OUTER JOIN) reads back as an empty
    string from TABLEDATA and as a masked value from BINARY2; both become NA. Bytes are decoded.
    """
    text = values.astype(object).map(lambda v: v.decode() if isinstance(v, bytes) else v).astype("string")
    text = text.str.strip()
    return text.mask(text == "", pd.NA)


def _normalise(pairs: pd.DataFrame) -> pd.DataFrame:
    """The pairs' Gaia columns with the output dtypes, one row per source_id, sorted by source_id."""
    out = pd.DataFrame({"source_id": pairs["source_id"].astype(np.int64)})
    for name in (*_FLOAT_COLUMNS, "radius_val", "lum_val"):
        out[name] = pd.to_numeric(pairs[name], errors="raise").astype(np.float64)
    flag = _text(pairs["phot_variable_flag"])
    out["phot_variable_flag"] = flag.astype(object).where(flag.notna(), None)
    out["gaia_var_class"] = _text(pairs["best_class_name"])
    # A source within the radius of two OGLE objects (or, in principle, with two classifier rows) is one
    # Gaia source; the cascade finds its pairs again from the positions.
    out = out.drop_duplicates("source_id", keep="first").sort_values("source_id", kind="stable")
    return out[list(NEIGHBOUR_COLUMNS)].reset_index(drop=True)


def fetch_gaia_neighbours(
    objects: pd.DataFrame,
    out_path: str | os.PathLike,
    *,
    radius_arcsec: float = DEFAULT_RADIUS_ARCSEC,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    gaia: Any = None,
    tap_url: str = DEFAULT_TAP_URL,
    upload_table: str = "ogle",
    release: str = "dr2",
    record: Mapping[str, Any] | None = None,
) -> GaiaNeighbours:
    """Every Gaia DR2 source within ``radius_arcsec`` of an OGLE position, written to one Parquet file.

    Parameters
    ----------
    objects
        OGLE objects with ``ogle_id`` (unique str) and ``ra``, ``dec`` (J2000, deg), e.g. the objects table
        of :func:`latentsky.fetch.ogle3.fetch_ogle3_catalog`.
    out_path
        Parquet file with :data:`NEIGHBOUR_COLUMNS`: ``source_id`` (int64), ``ra``, ``dec`` (J2015.5, deg),
        ``pmra``, ``pmdec`` (mas/yr), ``phot_g_mean_mag`` (mag), ``bp_rp`` (mag), ``teff_val`` (K),
        ``r_est`` (Bailer-Jones 2018 distance, pc; NaN where absent), ``phot_variable_flag`` (str),
        ``gaia_var_class`` (Gaia DR2 ``best_class_name``, pandas "string", NA where unclassified),
        ``radius_val`` (R_sun), ``lum_val`` (L_sun); one row per source, sorted by ``source_id``.
    radius_arcsec
        Cone radius, arcsec (paper 000: 2″).
    chunk_size
        OGLE positions per upload and job (the archive limits upload size).
    gaia
        An :class:`astroquery.gaia.GaiaClass` (tests pass one pointed at a loopback server). Default: one for
        ``tap_url`` made with ``show_server_messages=False``.
    tap_url
        Archive URL used when ``gaia`` is None.
    upload_table
        Name of the uploaded table (``TAP_UPLOAD.<name>``).
    release
        Gaia ``dr2`` (the paper's) or ``dr3``: the tables and columns of :data:`RELEASES`, written under DR2's
        column names.
    record
        Provenance record for the Parquet file; default: one built by
        :func:`latentsky.provenance.record.build_record` for rule ``fetch_gaia_neighbours``.

    Returns
    -------
    GaiaNeighbours
        The path, the query, the archive's job ids (one per chunk), the number of (OGLE, Gaia) pairs the
        jobs returned and of distinct sources written.

    Raises
    ------
    FetchError
        Naming the TAP service, when it cannot be reached, a job fails, or a result is unusable or was
        truncated by the server; nothing is then written to ``out_path``.
    ValueError
        Bad arguments or an ``objects`` table without unique ``ogle_id`` and finite positions.
    """
    missing = [c for c in ("ogle_id", "ra", "dec") if c not in objects.columns]
    if missing:
        raise ValueError(f"objects table: missing column(s) {missing}; found {list(objects.columns)}")
    if objects["ogle_id"].duplicated().any():
        dup = objects.loc[objects["ogle_id"].duplicated(), "ogle_id"].iloc[0]
        raise ValueError(f"objects table: column ogle_id must be unique; {dup!r} repeats")
    positions = objects[["ra", "dec"]].to_numpy(np.float64)
    if not np.isfinite(positions).all():
        raise ValueError("objects table: ra and dec must be finite (deg)")
    if int(chunk_size) < 1:
        raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
    query = neighbours_adql(radius_arcsec, upload_table, release)
    if gaia is None:
        from astroquery.gaia import GaiaClass

        gaia = GaiaClass(gaia_tap_server=tap_url, gaia_data_server=tap_url, show_server_messages=False)
    where = tap_location(gaia, tap_url)
    out = Path(out_path)
    n_chunks = math.ceil(len(objects) / int(chunk_size))
    log.info("TAP %s: %d OGLE positions in %d upload(s): %s", where, len(objects), n_chunks, query)

    frames, job_ids = [], []
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{out.name}.fetch-", dir=out.parent) as tmpdir:
        for i in range(n_chunks):
            chunk = objects.iloc[i * int(chunk_size) : (i + 1) * int(chunk_size)]
            upload = Path(tmpdir) / f"{upload_table}_{i}.vot"
            _upload_table(chunk).write(upload, format="votable")
            job_id, frame = _run_chunk(
                gaia, where, query, upload, upload_table, Path(tmpdir) / f"result_{i}.vot"
            )
            job_ids.append(job_id)
            frames.append(frame)
    pairs = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(_RESULT_NAMES))
    table = _normalise(pairs)
    log.info("%d pairs, %d distinct Gaia sources within %g arcsec", len(pairs), len(table), radius_arcsec)

    if record is None:
        from latentsky.provenance.record import build_record

        record = build_record(
            rule="fetch_gaia_neighbours",
            params={
                "radius_arcsec": radius_arcsec,
                "chunk_size": chunk_size,
                "release": release,
                "tap_url": where,
                "query": query,
            },
        )
    schema = pa.schema([(c, _ARROW_TYPES.get(c, pa.float64())) for c in NEIGHBOUR_COLUMNS])
    write_parquet(pa.Table.from_pandas(table, schema=schema, preserve_index=False), out, record)
    log.info("%d Gaia %s sources written to %s", len(table), release.upper(), out)
    return GaiaNeighbours(
        path=out, query=query, job_ids=tuple(job_ids), n_pairs=len(pairs), n_sources=len(table)
    )


__all__ = [
    "GaiaNeighbours",
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_RADIUS_ARCSEC",
    "NEIGHBOUR_COLUMNS",
    "RELEASES",
    "fetch_gaia_neighbours",
    "neighbours_adql",
]
