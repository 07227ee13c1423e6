"""HATS catalogs assembled from HEALPix partitions that are written independently, one job each.

The distance-posterior catalog is produced by one Snakemake job per HEALPix pixel of a fixed order ``N``;
each job writes its own partition file (so one partition can be regenerated alone, by its path), and a
final cheap job turns the set of partition files into a HATS catalog that ``lsdb.open_catalog`` and
``hats.read_hats`` can read. The layout is HATS' own (IVOA Note "HATS"; hats/lsdb 0.11)::

    catalog_dir/
    ├── hats.properties          catalog properties (hats' TableProperties)      finalize_catalog
    ├── properties               identical copy, for HiPS-style readers          finalize_catalog
    ├── partition_info.csv       Norder,Npix of every non-empty partition        finalize_catalog
    ├── point_map.fits           optional star-count map; hats' MOC comes from it (skymap_order)
    ├── skymap.fits              optional, same map under its newer name          (skymap_order)
    └── dataset/
        ├── _common_metadata     schema-only Parquet file                         finalize_catalog
        ├── _metadata            schema + every partition's row-group footers     finalize_catalog
        └── Norder=N/Dir=D/Npix=P.parquet                                         write_partition

What the readers actually require (read from the hats/lsdb 0.11 source): ``hats.properties`` with
``obs_collection`` (name), ``dataproduct_type`` (``object``) and ``hats_col_ra``/``hats_col_dec``;
``partition_info.csv`` (without it hats lists the dataset directory, slowly and with a warning); and
``dataset/_common_metadata`` or ``dataset/_metadata`` (without a schema lsdb refuses to open the catalog).
The point map is optional: without it the catalog's MOC is ``None`` and spatial searches prune by partition
only (hats builds the MOC from the non-zero pixels of ``point_map.fits``, ``hats.loaders.read_hats``), so
the workflow always asks for one at :func:`default_skymap_order`. Every partition must hold the
``_healpix_29`` spatial-index column (lsdb makes it the index and filters on it) with rows sorted by it,
and every row must lie inside its partition's pixel.

Empty pixels. HATS has no empty partitions: lsdb's own writer (``lsdb.io.to_hats``) drops pixels with no
rows from ``partition_info.csv`` and writes no file for them, and hats' strict validation
(``hats.io.validation.is_valid_catalog``) requires the partition files on disk, ``partition_info.csv`` and
the pixels in ``_metadata`` to agree exactly. So :func:`write_partition` writes *nothing* for a pixel
without stars (and returns ``None``), and such pixels are simply absent from the finalized catalog.

Provenance. Partition files are written by :func:`latentsky.provenance.files.write_parquet`, so each carries the
record of the job that made it. The catalog-level files are derived metadata (recomputable from the
partitions) and hats writes most of their bytes, but all of them are moved into place atomically with
:func:`latentsky.provenance.files.atomic_output`, and the finalize job's record is attached where the format allows:
in the key-value metadata of ``_common_metadata`` and ``_metadata`` (under the same key as in every
workflow Parquet file), and as the sha256 of its canonical JSON in the ``latentsky_provenance_sha256``
property of ``hats.properties``. The FITS maps carry no record.

Margin cache. A cross-match pairs each star with the stars of its own partition only, so a pair split by a
partition boundary is lost unless the right-hand catalog brings a *margin cache*: a second HATS catalog
(``catalog_type`` ``margin``) whose partition for pixel ``p`` holds the rows of the other partitions
within ``hats_margin_threshold`` arcsec of ``p``'s boundary; lsdb concatenates it to ``p``'s partition
when it matches (``lsdb.open_catalog(catalog, margin_cache=margin)``). :func:`write_margin_catalog` writes
one from a finalized catalog, in a sibling directory (not inside the catalog: hats' strict validation
lists every ``Norder*/Dir*/Npix*`` below the catalog root)::

    margin_dir/
    ├── hats.properties, properties   dataproduct_type=margin, hats_margin_threshold, hats_primary_table_url
    ├── partition_info.csv            the pixels with a non-empty margin
    └── dataset/
        ├── _common_metadata, _metadata       the primary's schema; the margin job's record
        └── Norder=N/Dir=D/Npix=P.parquet     rows of other partitions near P, sorted by _healpix_29

The margin is exact, where lsdb's and hats-import's are not (they keep every row of the order-``M`` cells
bordering the pixel, a band wider than the threshold): candidates come from hats' own construction
(the cells of margin order ``M`` adjacent to the pixel, ``hats.pixel_math.get_margin``), and each is then
kept only if its great-circle distance to the pixel is below the threshold.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import logging
import math
import operator
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import cdshealpix.nested
import hats
import hats.pixel_math.healpix_shim as hp
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from hats.catalog import Catalog, CatalogType, HatsProperties, PartitionInfo, TableProperties
from hats.io import file_io, paths, write_parquet_metadata
from hats.io.validation import is_valid_catalog
from hats.pixel_math import HealpixPixel
from hats.pixel_math.spatial_index import (
    SPATIAL_INDEX_COLUMN,
    SPATIAL_INDEX_ORDER,
    compute_spatial_index,
    healpix_to_spatial_index,
    spatial_index_to_healpix,
)

from latentsky import __version__
from latentsky.provenance.files import PARQUET_KEY, atomic_output, write_parquet
from latentsky.provenance.record import canonical_json

__all__ = [
    "MARGIN_EDGE_TOLERANCE",
    "PROVENANCE_PROPERTY",
    "default_skymap_order",
    "finalize_catalog",
    "margin_order",
    "partition_path",
    "prepare_partition",
    "provenance_sha256",
    "spatial_index",
    "write_margin_catalog",
    "write_partition",
]

#: ``hats.properties`` key holding the sha256 of the finalize job's provenance record (canonical JSON).
PROVENANCE_PROPERTY = "latentsky_provenance_sha256"

# Properties finalize_catalog derives from the data itself; letting ``extra_properties`` override them
# would produce a catalog whose description contradicts its files.
_DERIVED_PROPERTIES = (
    "catalog_name",
    "catalog_type",
    "total_rows",
    "ra_column",
    "dec_column",
    "healpix_column",
    "healpix_order",
    "npix_suffix",
    "hats_max_rows",
    "moc_sky_fraction",
    "skymap_order",
    "hats_order",
    PROVENANCE_PROPERTY,
)

_NPIX_SUFFIX = ".parquet"


# ---------------------------------------------------------------------------------------- spatial index
def spatial_index(ra_deg: Any, dec_deg: Any) -> np.ndarray:
    """HATS spatial index (nested HEALPix order 29, hats' ``_healpix_29``) of ICRS positions in degrees.

    Computed by hats' own :func:`hats.pixel_math.spatial_index.compute_spatial_index`, so it agrees
    bit for bit with what hats and lsdb compute when they search or cross-match the catalog.

    Parameters
    ----------
    ra_deg, dec_deg : array_like
        Right ascension and declination in degrees, same shape.

    Returns
    -------
    numpy.ndarray
        ``int64`` array of order-29 nested pixel indices, the shape of the inputs.

    Raises
    ------
    ValueError
        If the shapes differ, or a position is not finite or has ``|dec| > 90``. hats itself maps NaN to
        a valid-looking index, which would silently put the row in a wrong partition.
    """
    ra = np.asarray(ra_deg, dtype=np.float64)
    dec = np.asarray(dec_deg, dtype=np.float64)
    if ra.shape != dec.shape:
        raise ValueError(f"ra and dec must have the same shape, got {ra.shape} and {dec.shape}")
    bad = ~(np.isfinite(ra) & np.isfinite(dec)) | (np.abs(dec) > 90.0)
    if bad.any():
        raise ValueError(
            f"{int(bad.sum())} position(s) have a non-finite ra/dec or |dec| > 90 deg; "
            "they have no HEALPix pixel"
        )
    if ra.size == 0:
        return np.zeros(ra.shape, dtype=np.int64)
    return np.asarray(compute_spatial_index(ra, dec), dtype=np.int64).reshape(ra.shape)


# ------------------------------------------------------------------------------------------------ paths
def _healpix_pixel(order: int, pixel: int) -> HealpixPixel:
    # operator.index accepts Python and numpy integers but not floats or strings (Snakemake wildcards
    # arrive as strings; the caller must convert them deliberately).
    order, pixel = operator.index(order), operator.index(pixel)
    if not 0 <= order <= SPATIAL_INDEX_ORDER:
        raise ValueError(f"HEALPix order must be in 0..{SPATIAL_INDEX_ORDER}, got {order}")
    npix = 12 * 4**order
    if not 0 <= pixel < npix:
        raise ValueError(f"pixel {pixel} outside 0..{npix - 1} at order {order}")
    return HealpixPixel(order, pixel)


def partition_path(catalog_dir: str | os.PathLike, order: int, pixel: int) -> Path:
    """Path of the partition file of ``pixel`` at ``order``: ``dataset/Norder=N/Dir=D/Npix=P.parquet``.

    Built by hats' :func:`hats.io.paths.pixel_catalog_file`, the function lsdb uses to find partitions,
    so the two cannot drift apart (``D`` is ``P`` rounded down to a multiple of 10000).
    """
    hats_path = paths.pixel_catalog_file(catalog_dir, _healpix_pixel(order, pixel), npix_suffix=_NPIX_SUFFIX)
    return Path(os.fspath(hats_path))


# ----------------------------------------------------------------------------------------- partitions
def prepare_partition(
    df: pd.DataFrame,
    ra_column: str = "ra",
    dec_column: str = "dec",
    *,
    order: int | None = None,
    pixel: int | None = None,
) -> pd.DataFrame:
    """Add the HATS spatial-index column and sort the rows by it, as HATS requires of a partition.

    Parameters
    ----------
    df : pandas.DataFrame
        The partition's rows. Its index must be unnamed: it is not written (only columns are), so a named
        index would be lost silently.
    ra_column, dec_column : str
        Columns holding ICRS right ascension and declination in degrees.
    order, pixel : int, optional
        The partition's HEALPix pixel (nested). When given, every row must lie inside it.

    Returns
    -------
    pandas.DataFrame
        A new frame with :data:`SPATIAL_INDEX_COLUMN` (``int64``) as first column, rows sorted by it
        (stable, so rows with equal index keep their input order), and a fresh ``RangeIndex``. An
        existing spatial-index column is recomputed from the positions rather than trusted.

    Raises
    ------
    ValueError
        If a position column is missing, the index is named, a position is invalid, only one of
        ``order``/``pixel`` is given, or rows lie outside ``pixel`` (the message names the pixel and the
        number of stray rows).
    """
    if (order is None) != (pixel is None):
        raise ValueError("give both order and pixel, or neither")
    missing = [name for name in (ra_column, dec_column) if name not in df.columns]
    if missing:
        raise ValueError(f"partition has no position column(s) {missing}; columns are {list(df.columns)}")
    if any(name is not None for name in df.index.names):
        raise ValueError(
            f"partition has a named index {list(df.index.names)}, which would not be written; "
            "call reset_index() to keep it as a column (or drop it explicitly)"
        )
    index = spatial_index(df[ra_column].to_numpy(), df[dec_column].to_numpy())
    if order is not None and pixel is not None:
        hp_pixel = _healpix_pixel(order, pixel)
        in_pixel = spatial_index_to_healpix(index, target_order=hp_pixel.order) == hp_pixel.pixel
        n_stray = int(np.count_nonzero(~in_pixel))
        if n_stray:
            first = int(np.flatnonzero(~in_pixel)[0])
            raise ValueError(
                f"{n_stray} of {len(df)} row(s) lie outside HEALPix pixel {hp_pixel.pixel} "
                f"(order {hp_pixel.order}, nested ICRS); first at ra={df[ra_column].iloc[first]!r}, "
                f"dec={df[dec_column].iloc[first]!r}. HATS partitions must be split by position"
            )
    out = df.drop(columns=[SPATIAL_INDEX_COLUMN], errors="ignore")
    out.insert(0, SPATIAL_INDEX_COLUMN, index)
    return out.iloc[np.argsort(index, kind="stable")].reset_index(drop=True)


def write_partition(
    df: pd.DataFrame,
    catalog_dir: str | os.PathLike,
    order: int,
    pixel: int,
    provenance: Mapping[str, Any],
    ra_column: str = "ra",
    dec_column: str = "dec",
) -> Path | None:
    """Write one HATS partition file, atomically and with ``provenance`` in its key-value metadata.

    Runs :func:`prepare_partition` (spatial index, sorting, pixel check) and writes the result with
    :func:`latentsky.provenance.files.write_parquet` to :func:`partition_path`.

    Parameters
    ----------
    df : pandas.DataFrame
        Rows of the partition; see :func:`prepare_partition`.
    catalog_dir : path-like
        Root directory of the HATS catalog.
    order, pixel : int
        The partition's HEALPix pixel (nested ICRS).
    provenance : Mapping
        Provenance record of the job (:func:`latentsky.provenance.record.build_record`).
    ra_column, dec_column : str
        Columns holding right ascension and declination in degrees.

    Returns
    -------
    pathlib.Path or None
        The written file, or ``None`` when ``df`` has no rows: HATS has no empty partitions (module
        docstring), so nothing is written and the pixel is left out of the catalog. A file left at the
        path by an earlier run, when the pixel still had stars, is removed, so the directory never
        describes an older state of the pixel.
    """
    path = partition_path(catalog_dir, order, pixel)
    if len(df) == 0:
        path.unlink(missing_ok=True)
        return None
    prepared = prepare_partition(df, ra_column, dec_column, order=order, pixel=pixel)
    return write_parquet(prepared, path, provenance)


# ---------------------------------------------------------------------------------------- provenance
def provenance_sha256(provenance: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON (:func:`latentsky.provenance.record.canonical_json`) of a record."""
    return hashlib.sha256(canonical_json(dict(provenance)).encode()).hexdigest()


def _provenance_bytes(provenance: Mapping[str, Any]) -> bytes:
    # Same encoding as latentsky.provenance.files.write_parquet, so read_parquet_provenance reads it back.
    return json.dumps(dict(provenance), sort_keys=True).encode()


def _hats_creation_date(provenance: Mapping[str, Any]) -> str | None:
    # hats stamps "now"; using the record's creation time instead makes hats.properties a function of
    # the inputs and the record, like every other workflow output. Same format as hats' own stamp.
    created = provenance.get("created_utc")
    if not isinstance(created, str):
        return None
    try:
        moment = _dt.datetime.fromisoformat(created)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=_dt.timezone.utc)
    return moment.astimezone(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M%Z")


# ------------------------------------------------------------------------------------------- finalize
def default_skymap_order(order: int) -> int:
    """Order of the star-count map (and so of the MOC) for a catalog partitioned at ``order``.

    lsdb's own writer's rule (``lsdb.io.to_hats``: the deepest partition order, at least 8). At order 8 the
    map is 786,432 int64 counts (6 MiB) and the MOC resolves 14 arcmin, fine enough to prune cone searches
    and cross-matches inside a partition; deeper orders cost 4x the memory each.
    """
    return max(8, operator.index(order))


def finalize_catalog(
    catalog_dir: str | os.PathLike,
    catalog_name: str,
    order: int,
    partition_files: Sequence[str | os.PathLike],
    provenance: Mapping[str, Any],
    ra_column: str = "ra",
    dec_column: str = "dec",
    extra_properties: Mapping[str, Any] | None = None,
    *,
    skymap_order: int | None = None,
) -> list[Path]:
    """Write the catalog-level HATS files that make the partition files one catalog.

    Checks the partitions first (paths, order, no strays in ``dataset/``, equal schemas, non-empty,
    spatial-index range inside each pixel from the Parquet footer statistics), then writes
    ``dataset/_common_metadata`` and ``dataset/_metadata`` (hats' :func:`hats.io.write_parquet_metadata`,
    re-stamped with ``provenance``), ``partition_info.csv`` (hats' :class:`PartitionInfo`), optionally the
    point map and skymap, and finally ``properties`` and ``hats.properties`` (hats'
    :class:`TableProperties`). ``hats.properties`` goes last because its presence is what makes readers
    treat the directory as a catalog. The result must pass hats' strict validation.

    Parameters
    ----------
    catalog_dir : path-like
        Root directory of the catalog; the partitions are already under ``catalog_dir/dataset``.
    catalog_name : str
        Catalog name (``obs_collection``).
    order : int
        The fixed HEALPix order of all partitions.
    partition_files : sequence of path-like
        Every partition file of the catalog, as returned by :func:`write_partition` (empty pixels have
        none). ``dataset/`` must contain nothing else, because hats' metadata writer reads the whole
        directory: a stale partition or a temporary file left by a killed job would end up in
        ``_metadata``.
    provenance : Mapping
        Provenance record of the finalize job.
    ra_column, dec_column : str
        Position columns (``hats_col_ra``/``hats_col_dec``).
    extra_properties : Mapping, optional
        Further ``hats.properties`` entries, by :class:`TableProperties` field name or HATS key, e.g.
        ``{"default_columns": [...], "obs_title": "..."}``; unknown keys are kept as extra properties.
        Properties derived from the data (row counts, columns, orders, ...) cannot be overridden.
    skymap_order : int, optional
        If given (``order <= skymap_order <= 29``), also write ``point_map.fits`` and ``skymap.fits``:
        star counts per HEALPix pixel at that order, from which hats builds the catalog's MOC. This reads
        the spatial-index column of every partition; the map holds ``12 * 4**skymap_order`` int64 counts
        in memory (lsdb's own writer uses order max(8, partition order)). Without it, maps left by an
        earlier run are removed and the catalog has no MOC.

    Returns
    -------
    list of pathlib.Path
        The files written, in the order written.

    Raises
    ------
    ValueError
        If the partition files are inconsistent as described above, or ``extra_properties`` is invalid.
    RuntimeError
        If hats' strict validation rejects the finished catalog.
    """
    catalog_dir = Path(catalog_dir)
    order = operator.index(order)
    pixels = _check_partition_files(catalog_dir, order, partition_files)
    files = [partition_path(catalog_dir, order, pixel.pixel) for pixel in pixels]
    schema = _common_schema(files, ra_column, dec_column)
    row_counts = _check_partition_contents(files, pixels)
    if skymap_order is not None:
        skymap_order = operator.index(skymap_order)
        if not order <= skymap_order <= SPATIAL_INDEX_ORDER:
            raise ValueError(f"skymap_order must be in {order}..{SPATIAL_INDEX_ORDER}, got {skymap_order}")
    properties_extra = _check_extra_properties(extra_properties, schema)

    written: list[Path] = []
    total_rows = _write_dataset_metadata(catalog_dir, provenance, written)
    if total_rows != sum(row_counts):
        raise RuntimeError(f"hats counted {total_rows} rows, the partition footers {sum(row_counts)}")

    partition_info = _write_partition_info(catalog_dir, pixels, written)

    histogram = _count_histogram(files, skymap_order) if skymap_order is not None else None
    for pointer in (paths.get_point_map_file_pointer, paths.get_skymap_file_pointer):
        map_path = Path(os.fspath(pointer(catalog_dir)))
        if histogram is None:
            # A map left by an earlier finalize would describe old partitions, and hats builds the MOC
            # that prunes spatial searches from point_map.fits: stale, it would hide stars.
            map_path.unlink(missing_ok=True)
            continue
        with atomic_output(map_path) as tmp:
            file_io.write_fits_image(histogram, tmp)
        written.append(map_path)

    properties = _table_properties(
        files,
        catalog_name=catalog_name,
        ra_column=ra_column,
        dec_column=dec_column,
        total_rows=total_rows,
        hats_max_rows=max(row_counts),
        partition_info=partition_info,
        skymap_order=skymap_order,
        provenance=provenance,
        extra=properties_extra,
    )
    # hats writes the same content under both names (TableProperties.to_properties_file); the legacy
    # "properties" name is what HiPS-style clients look for. hats.properties last: see docstring.
    for name in ("properties", "hats.properties"):
        with atomic_output(catalog_dir / name) as tmp:
            properties.to_properties_file_path(tmp, initial_comments="HATS catalog")
        written.append(catalog_dir / name)

    _validate(catalog_dir)
    return written


def _write_partition_info(
    catalog_dir: Path, pixels: list[HealpixPixel], written: list[Path]
) -> PartitionInfo:
    """``partition_info.csv`` (Norder, Npix of every partition) through hats' writer, moved into place
    atomically; its path is appended to ``written``."""
    info = PartitionInfo(pixels)
    path = Path(os.fspath(paths.get_partition_info_pointer(catalog_dir)))
    with atomic_output(path) as tmp:
        info.write_to_file(partition_info_file=tmp)
    written.append(path)
    return info


def _check_partition_files(
    catalog_dir: Path, order: int, partition_files: Sequence[str | os.PathLike]
) -> list[HealpixPixel]:
    """The pixels of ``partition_files``, after checking they are exactly the partitions in ``dataset/``."""
    if len(partition_files) == 0:
        raise ValueError("no partition files: a HATS catalog needs at least one non-empty partition")
    pixels: list[HealpixPixel] = []
    expected: set[Path] = set()
    for raw in partition_files:
        path = Path(raw)
        pixel = paths.get_healpix_from_path(path.as_posix())
        if pixel.order != order:
            raise ValueError(f"{path}: not a partition file of order {order} (parsed as {pixel})")
        canonical = partition_path(catalog_dir, order, pixel.pixel)
        if path.resolve() != canonical.resolve():
            raise ValueError(f"{path}: partition of pixel {pixel.pixel} must be at {canonical}")
        if not canonical.is_file():
            raise ValueError(f"{path}: partition file does not exist")
        if canonical.resolve() in expected:
            raise ValueError(f"{path}: listed twice")
        expected.add(canonical.resolve())
        pixels.append(pixel)

    dataset_dir = Path(os.fspath(paths.dataset_directory(catalog_dir)))
    own_metadata = {
        Path(os.fspath(paths.get_common_metadata_pointer(catalog_dir))).resolve(),
        Path(os.fspath(paths.get_parquet_metadata_pointer(catalog_dir))).resolve(),
    }
    allowed = expected | own_metadata
    strays = sorted(
        str(Path(root, name))
        for root, _, names in os.walk(dataset_dir)
        for name in names
        if Path(root, name).resolve() not in allowed
    )
    if strays:
        shown = ", ".join(strays[:10]) + (f" (+{len(strays) - 10} more)" if len(strays) > 10 else "")
        raise ValueError(
            f"{dataset_dir} holds {len(strays)} file(s) that are not listed partitions, and hats would read "
            f"them into _metadata: {shown}. Remove them (temporary files left by killed jobs, or partitions "
            "of pixels that are now empty or of another order)"
        )
    return sorted(pixels)


def _common_schema(files: list[Path], ra_column: str, dec_column: str) -> pa.Schema:
    """The partitions' shared Arrow schema (without key-value metadata)."""
    reference = pq.read_schema(files[0]).remove_metadata()
    for name in (SPATIAL_INDEX_COLUMN, ra_column, dec_column):
        if name not in reference.names:
            raise ValueError(f"{files[0]}: no column {name!r}; write partitions with write_partition")
    for path in files[1:]:
        schema = pq.read_schema(path).remove_metadata()
        if not schema.equals(reference):
            # _common_metadata holds one schema for all partitions; lsdb reads every partition with it.
            raise ValueError(f"{path}: schema differs from {files[0]}:\n{schema}\nvs\n{reference}")
    return reference


def _check_partition_contents(files: list[Path], pixels: list[HealpixPixel]) -> list[int]:
    """Row count of each partition, after checking it is non-empty and inside its pixel.

    The pixel check uses the spatial-index min/max in the footer statistics, so it costs no data reads;
    it catches a file written other than by :func:`write_partition` or put in the wrong place.
    """
    counts = []
    for path, pixel in zip(files, pixels, strict=True):
        meta = pq.read_metadata(path)
        if meta.num_rows == 0:
            raise ValueError(f"{path}: empty partition; HATS omits empty pixels, write_partition writes none")
        counts.append(meta.num_rows)
        # Parquet leaf-column position, which differs from the Arrow field position once a nested
        # column (e.g. a list of posterior samples) precedes it.
        column = [meta.schema.column(i).path for i in range(meta.num_columns)].index(SPATIAL_INDEX_COLUMN)
        lo = int(healpix_to_spatial_index(pixel.order, pixel.pixel))
        hi = int(healpix_to_spatial_index(pixel.order, pixel.pixel + 1))
        for group in range(meta.num_row_groups):
            stats = meta.row_group(group).column(column).statistics
            if stats is None or not stats.has_min_max:
                raise ValueError(f"{path}: no {SPATIAL_INDEX_COLUMN} statistics in row group {group}")
            if stats.min < lo or stats.max >= hi:
                raise ValueError(
                    f"{path}: {SPATIAL_INDEX_COLUMN} spans {stats.min}..{stats.max}, outside pixel "
                    f"{pixel.pixel} (order {pixel.order}: {lo}..{hi - 1})"
                )
    return counts


def _check_extra_properties(extra: Mapping[str, Any] | None, schema: pa.Schema) -> dict[str, Any]:
    if not extra:
        return {}
    protected = set(_DERIVED_PROPERTIES)
    for name in _DERIVED_PROPERTIES:
        field = TableProperties.model_fields.get(name)
        if field is not None and field.alias:
            protected.add(field.alias)
    clash = sorted(protected & set(extra))
    if clash:
        raise ValueError(f"extra_properties may not set {clash}: finalize_catalog derives them")
    for key in ("default_columns", "hats_cols_default"):
        columns = extra.get(key)
        if columns is None:
            continue
        columns = HatsProperties.space_delimited_list(columns)
        unknown = sorted(set(columns or ()) - set(schema.names))
        if unknown:
            # lsdb would only fail later, when a user opens the catalog with its default columns.
            raise ValueError(f"default columns {unknown} are not catalog columns {schema.names}")
    return dict(extra)


def _write_dataset_metadata(catalog_dir: Path, provenance: Mapping[str, Any], written: list[Path]) -> int:
    """Write ``_common_metadata`` and ``_metadata`` with hats, carrying ``provenance``; return total rows.

    hats takes the schema, key-value metadata included, from the first partition file, so its output
    would carry that partition job's record. It therefore writes into a scratch directory, and each file
    is rewritten from there with the finalize record in place of that one (same schema, same row-group
    footers with their partition paths) and moved into the catalog atomically.
    """
    with tempfile.TemporaryDirectory(prefix="latentsky-hats-") as scratch:
        total_rows = int(write_parquet_metadata(catalog_dir, output_path=scratch, create_metadata=True))
        for pointer in (paths.get_common_metadata_pointer, paths.get_parquet_metadata_pointer):
            staged = Path(os.fspath(pointer(scratch)))
            dest = Path(os.fspath(pointer(catalog_dir)))
            schema = pq.read_schema(staged)
            metadata = dict(schema.metadata or {})
            metadata[PARQUET_KEY] = _provenance_bytes(provenance)
            footers = pq.read_metadata(staged)
            collector = [footers] if footers.num_row_groups else None
            with atomic_output(dest) as tmp:
                file_io.write_parquet_metadata(
                    schema.with_metadata(metadata), tmp, metadata_collector=collector
                )
            written.append(dest)
    return total_rows


def _count_histogram(files: list[Path], skymap_order: int) -> np.ndarray:
    """Star counts per nested HEALPix pixel at ``skymap_order``, over all partitions."""
    histogram = np.zeros(12 * 4**skymap_order, dtype=np.int64)
    for path in files:
        index = pq.read_table(path, columns=[SPATIAL_INDEX_COLUMN]).column(0).to_numpy()
        pixels = spatial_index_to_healpix(index, target_order=skymap_order)
        # np.unique rather than bincount: a full-length bincount per partition would cost 12 * 4**k each.
        pixel, count = np.unique(pixels, return_counts=True)
        histogram[pixel] += count
    return histogram


def _table_properties(
    files: list[Path],
    *,
    catalog_name: str,
    ra_column: str,
    dec_column: str,
    total_rows: int,
    hats_max_rows: int | None,
    partition_info: PartitionInfo,
    skymap_order: int | None,
    provenance: Mapping[str, Any],
    extra: Mapping[str, Any],
    catalog_type: CatalogType = CatalogType.OBJECT,
    typed: Mapping[str, Any] | None = None,
) -> TableProperties:
    # hats' own provenance block (builder, creation date, HATS version, size estimate), as lsdb writes it,
    # with the two run-dependent stamps pinned so that hats.properties is a function of the partitions
    # and the record: the creation date comes from the record, and the size estimate (KiB) counts the
    # partition files only, where hats would walk the whole directory and so count the metadata files
    # of an earlier finalize run, or anything else lying there.
    hats_provenance = HatsProperties.new_provenance_dict(None, builder=f"latentsky v{__version__}")
    creation_date = _hats_creation_date(provenance)
    if creation_date is not None:
        hats_provenance["hats_creation_date"] = creation_date
    hats_provenance["hats_estsize"] = int(sum(path.stat().st_size for path in files) / 1024)
    derived: dict[str, Any] = {
        "catalog_name": catalog_name,
        "catalog_type": catalog_type,
        "total_rows": total_rows,
        "ra_column": ra_column,
        "dec_column": dec_column,
        "healpix_column": SPATIAL_INDEX_COLUMN,
        "healpix_order": SPATIAL_INDEX_ORDER,
        "npix_suffix": _NPIX_SUFFIX,
        "hats_max_rows": hats_max_rows,
        "hats_order": partition_info.get_highest_order() if len(partition_info) else None,
        "skymap_order": skymap_order,
        PROVENANCE_PROPERTY: provenance_sha256(provenance),
        # Type-specific fields (a margin's hats_primary_table_url and hats_margin_threshold).
        **(typed or {}),
    }
    if catalog_type == CatalogType.OBJECT:
        # The sky fraction of the data; a margin's pixels say nothing about where its rows are.
        coverage = partition_info.calculate_fractional_coverage()
        derived["moc_sky_fraction"] = float(f"{coverage:.5g}")
    merged = {**hats_provenance, **extra, **derived}
    # Extra (non-field) values are written verbatim; the properties file holds text only.
    return TableProperties(
        **{
            key: (value if key in TableProperties.model_fields or value is None else str(value))
            for key, value in merged.items()
        }
    )


@contextlib.contextmanager
def _captured_warnings() -> Iterator[list[str]]:
    # hats' validator reports problems only through the root logger; keep them for the error message.
    messages: list[str] = []

    class _Collector(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            messages.append(record.getMessage())

    handler = _Collector(level=logging.WARNING)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield messages
    finally:
        root.removeHandler(handler)


def _validate(catalog_dir: Path) -> None:
    with _captured_warnings() as messages:
        valid = is_valid_catalog(catalog_dir, strict=True)
    if not valid:
        raise RuntimeError(f"{catalog_dir}: hats' strict validation failed: " + "; ".join(messages))


# ---------------------------------------------------------------------------------------- margin cache
#: Largest distance allowed between a pixel's true edge and the polyline the margin test measures to, as a
#: fraction of the margin threshold: only a row that close to the threshold can fall on either side of it.
#: For the workflow's 10 arcsec it is 0.1 mas, four times finer than HATS' own spatial index resolves
#: positions (an order-29 cell is 0.39 mas across).
MARGIN_EDGE_TOLERANCE = 1e-5

# What a margin catalog directory holds; write_margin_catalog replaces such a directory and nothing else.
_MARGIN_DIR_NAMES = frozenset({"hats.properties", "properties", "partition_info.csv", "dataset"})
# Vertices per pixel edge the distance test starts from, and the most it refines to (it doubles).
_EDGE_STEP = 8
_MAX_EDGE_DOUBLINGS = 10
# Point-to-segment distances computed at once: bounds the temporary arrays (~6 MiB each).
_SEGMENT_CHUNK = 1 << 18


def margin_order(margin_threshold_arcsec: float) -> int:
    """HEALPix order ``M`` of the cells the margin's candidate rows are drawn from.

    Every point within the threshold of a pixel must lie in an order-``M`` cell adjacent to the pixel, so
    two order-``M`` cells that are not neighbours must lie at least the threshold apart. hats estimates
    that distance as the mean cell size / 1.6 (``hats.pixel_math.healpix_shim.order2mindist``; lsdb and
    hats-import take the deepest order that satisfies it, ``margin2order``), calling the 1.6 "a rough
    estimate". Measured on cdshealpix's cell boundaries the worst case (near the poles) is mean size / 1.48
    at high orders, so hats' choice holds by 8 %; one order coarser makes it hold by a factor of 2.2, for
    twice as many candidates to test.
    """
    return max(0, int(hp.margin2order(float(margin_threshold_arcsec) / 60.0)) - 1)


def write_margin_catalog(
    catalog_dir: str | os.PathLike,
    margin_dir: str | os.PathLike,
    margin_threshold_arcsec: float,
    provenance: Mapping[str, Any],
    *,
    catalog_name: str | None = None,
) -> list[Path]:
    """Write the HATS margin cache of a finalized catalog (module docstring, "Margin cache").

    For every pixel of the catalog, and every pixel of hats' "negative tree" (the pixels the catalog does
    not cover, which hats-import and lsdb give margins too, ``hats.catalog.Catalog.
    generate_negative_tree_pixels``), the margin partition holds the rows of the *other* partitions whose
    great-circle distance to the pixel is below ``margin_threshold_arcsec``, all columns, sorted by
    ``_healpix_29``; pixels without such rows get no partition. Candidates are the rows in the order-``M``
    cells (:func:`margin_order`) that border the pixel, as hats-import selects them; each is then kept only
    if its distance to the nearest bordering cell of the pixel is below the threshold, that distance measured
    to the cell's boundary sampled by cdshealpix (``vertices``) finely enough that the polyline lies within
    :data:`MARGIN_EDGE_TOLERANCE` times the threshold of the true HEALPix edge.

    Memory holds one partition at a time: each partition is read once, its margin rows go to scratch shards
    (one per receiving pixel, as hats-import's map step writes them), and each margin partition is then
    assembled from its shards alone. Everything is written into a scratch directory beside ``margin_dir``
    and moved into place at the end, so a failed run leaves the previous margin (or none), never a mix.

    Parameters
    ----------
    catalog_dir : path-like
        A finalized HATS object catalog (:func:`finalize_catalog`).
    margin_dir : path-like
        Where the margin catalog goes: a sibling of ``catalog_dir``, never inside it (hats' strict
        validation of the catalog would find the margin's partitions). An existing directory there is
        replaced if it is a margin catalog or the remains of one (only ``hats.properties``, ``properties``,
        ``partition_info.csv`` and ``dataset/``).
    margin_threshold_arcsec : float
        The margin's width (``hats_margin_threshold``). lsdb's cross-match is complete for radii up to it.
    provenance : Mapping
        Provenance record of the job: carried by every margin partition and by the two metadata files, as
        in :func:`finalize_catalog`.
    catalog_name : str, optional
        Name of the margin catalog; default ``<catalog name>_<threshold>arcs``, lsdb's convention.

    Returns
    -------
    list of pathlib.Path
        The files written (at their final place): margin partitions, ``_metadata``, ``_common_metadata``,
        ``partition_info.csv``, ``properties``, ``hats.properties``.

    Raises
    ------
    ValueError
        If the threshold is not a positive number, ``catalog_dir`` is not a HATS object catalog,
        ``margin_dir`` is inside it or holds something else, or the threshold is too wide for the
        catalog's partitions (its margin cells would be as large as the partitions).
    RuntimeError
        If hats' strict validation rejects the margin catalog.
    """
    catalog_dir, margin_dir = Path(catalog_dir), Path(margin_dir)
    threshold = _check_margin_threshold(catalog_dir, margin_threshold_arcsec)
    primary = _read_primary(catalog_dir)
    _check_margin_dir(catalog_dir, margin_dir)
    info = primary.catalog_info
    partitions = sorted(primary.get_healpix_pixels())
    targets = sorted(partitions + list(primary.generate_negative_tree_pixels()))
    order_m = margin_order(threshold)
    deepest = max(pixel.order for pixel in targets)
    if order_m <= deepest:
        raise ValueError(
            f"{catalog_dir}: a {threshold:g} arcsec margin needs cells of order {order_m}, not deeper than the "
            f"partitions (order {deepest}); use a smaller threshold"
        )
    starts = _tiling_starts(targets)
    position = {pixel: i for i, pixel in enumerate(targets)}
    schema_metadata = _schema_metadata(catalog_dir)
    threshold_rad = math.radians(threshold / 3600.0)

    margin_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{margin_dir.name}.", dir=margin_dir.parent) as scratch:
        staging, shard_root = Path(scratch, "catalog"), Path(scratch, "shards")
        shards: dict[int, list[Path]] = {}
        for pixel in partitions:
            source = paths.pixel_catalog_file(catalog_dir, pixel, npix_suffix=info.npix_suffix)
            table = pq.read_table(os.fspath(source))
            rows, receivers = _margin_rows(
                table[SPATIAL_INDEX_COLUMN].to_numpy(),
                table[info.ra_column].to_numpy(),
                table[info.dec_column].to_numpy(),
                own=position[pixel],
                starts=starts,
                order_m=order_m,
                threshold_rad=threshold_rad,
            )
            for receiver in np.unique(receivers):
                shard = shard_root / str(receiver) / f"{pixel.order}_{pixel.pixel}.parquet"
                shard.parent.mkdir(parents=True, exist_ok=True)
                pq.write_table(table.take(rows[receivers == receiver]), shard)
                shards.setdefault(int(receiver), []).append(shard)
            del table

        written: list[Path] = []
        pixels: list[HealpixPixel] = []
        counts: list[int] = []
        for receiver in sorted(shards):
            # Shards in partition order, then a stable sort: the same rows give the same file.
            table = pa.concat_tables([pq.read_table(shard) for shard in shards[receiver]])
            order = np.argsort(table[SPATIAL_INDEX_COLUMN].to_numpy(), kind="stable")
            table = table.take(order).replace_schema_metadata(schema_metadata)
            target = targets[receiver]
            written.append(
                write_parquet(table, partition_path(staging, target.order, target.pixel), provenance)
            )
            pixels.append(target)
            counts.append(table.num_rows)

        if pixels:
            total_rows = _write_dataset_metadata(staging, provenance, written)
        else:
            total_rows = _write_empty_dataset_metadata(
                staging, primary.schema, schema_metadata, provenance, written
            )
        if total_rows != sum(counts):
            raise RuntimeError(f"hats counted {total_rows} margin rows, the margin partitions {sum(counts)}")

        partition_info = _write_partition_info(staging, pixels, written)

        properties = _table_properties(
            [path for path in written if path.suffix == _NPIX_SUFFIX and path.name.startswith("Npix=")],
            catalog_name=catalog_name or f"{info.catalog_name}_{threshold:g}arcs",
            ra_column=info.ra_column,
            dec_column=info.dec_column,
            total_rows=total_rows,
            hats_max_rows=max(counts) if counts else None,
            partition_info=partition_info,
            skymap_order=None,
            provenance=provenance,
            extra={"default_columns": info.default_columns} if info.default_columns else {},
            catalog_type=CatalogType.MARGIN,
            typed={
                # Relative to the margin catalog, so the pair stays valid when results/ is moved.
                "primary_catalog": os.path.relpath(os.path.abspath(catalog_dir), os.path.abspath(margin_dir)),
                "margin_threshold": threshold,
            },
        )
        for name in ("properties", "hats.properties"):
            with atomic_output(staging / name) as tmp:
                properties.to_properties_file_path(tmp, initial_comments="HATS margin catalog")
            written.append(staging / name)
        _validate(staging)

        # Swap the finished catalog in; the previous one goes with the scratch directory.
        if margin_dir.exists():
            os.replace(margin_dir, Path(scratch, "previous"))
        os.replace(staging, margin_dir)
    return [margin_dir / path.relative_to(staging) for path in written]


def _check_margin_threshold(catalog_dir: Path, value: Any) -> float:
    valid = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    threshold = float(value) if valid else math.nan
    if not (math.isfinite(threshold) and threshold > 0):
        raise ValueError(
            f"{catalog_dir}: the margin threshold must be a positive number of arcsec, got {value!r}"
        )
    return threshold


def _read_primary(catalog_dir: Path) -> Catalog:
    """The catalog at ``catalog_dir`` as hats reads it, or a one-line ValueError naming the path."""
    try:
        catalog = hats.read_hats(catalog_dir, read_moc=False)
    except (OSError, ValueError) as exc:  # FileNotFoundError; pydantic's and Arrow's errors are ValueErrors
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"{catalog_dir}: not a HATS catalog ({reason})") from exc
    if not isinstance(catalog, Catalog) or catalog.catalog_info.catalog_type not in (
        CatalogType.OBJECT,
        CatalogType.SOURCE,
    ):
        kind = getattr(getattr(catalog, "catalog_info", None), "catalog_type", type(catalog).__name__)
        raise ValueError(
            f"{catalog_dir}: not a HATS object catalog (hats reads a {kind}); margins are of those"
        )
    if catalog.schema is None:
        raise ValueError(
            f"{catalog_dir}: HATS catalog without dataset/_common_metadata; run finalize_catalog"
        )
    if not catalog.get_healpix_pixels():
        raise ValueError(f"{catalog_dir}: HATS catalog without partitions")
    return catalog


def _check_margin_dir(catalog_dir: Path, margin_dir: Path) -> None:
    """Refuse a margin directory that would overlap the catalog or replace something not a margin."""
    primary, margin = Path(os.path.abspath(catalog_dir)), Path(os.path.abspath(margin_dir))
    if margin == primary or primary in margin.parents or margin in primary.parents:
        raise ValueError(
            f"{margin_dir}: the margin catalog must be a sibling of {catalog_dir}, not inside it or around it "
            "(hats' validation of the catalog would read the margin's partitions as its own)"
        )
    if not margin.exists():
        return
    if not margin.is_dir():
        raise ValueError(f"{margin_dir}: exists and is not a directory")
    unexpected = sorted(entry.name for entry in margin.iterdir() if entry.name not in _MARGIN_DIR_NAMES)
    if unexpected:
        raise ValueError(
            f"{margin_dir}: holds {unexpected[:5]}, which no margin catalog does; refusing to replace it"
        )
    properties = margin / "hats.properties"
    if properties.exists():
        try:
            kind = TableProperties.read_from_dir(margin).catalog_type
        except ValueError:
            kind = None
        if kind != CatalogType.MARGIN:
            raise ValueError(
                f"{margin_dir}: holds a HATS catalog that is not a margin; refusing to replace it"
            )


def _tiling_starts(pixels: list[HealpixPixel]) -> np.ndarray:
    """First order-29 index of each pixel (sorted), after checking the pixels tile the sphere exactly.

    Partitions plus hats' negative tree cover the sky once, so the pixel holding any cell is found by one
    binary search on these starts.
    """
    orders = np.array([pixel.order for pixel in pixels], dtype=np.int64)
    numbers = np.array([pixel.pixel for pixel in pixels], dtype=np.int64)
    starts = np.asarray(healpix_to_spatial_index(orders, numbers), dtype=np.int64)
    ends = np.asarray(healpix_to_spatial_index(orders, numbers + 1), dtype=np.int64)
    full = int(healpix_to_spatial_index(0, 12))
    if starts[0] != 0 or ends[-1] != full or np.any(starts[1:] != ends[:-1]):
        raise RuntimeError("the catalog's partitions and hats' negative tree do not tile the sphere")
    return starts


def _schema_metadata(catalog_dir: Path) -> dict[bytes, bytes]:
    """Key-value schema metadata of the catalog (pandas' and hats'), without the finalize job's record."""
    schema_file = paths.get_common_metadata_pointer(catalog_dir)
    metadata = dict(pq.read_schema(os.fspath(schema_file)).metadata or {})
    metadata.pop(PARQUET_KEY, None)
    return metadata


def _margin_rows(
    index: np.ndarray,
    ra_deg: np.ndarray,
    dec_deg: np.ndarray,
    *,
    own: int,
    starts: np.ndarray,
    order_m: int,
    threshold_rad: float,
) -> tuple[np.ndarray, np.ndarray]:
    """The rows of one partition that belong to other pixels' margins, as (row, receiving pixel) pairs.

    ``own`` and the receivers are positions in the tiling whose first indices are ``starts``.
    """
    shift = 2 * (SPATIAL_INDEX_ORDER - order_m)
    cells = spatial_index_to_healpix(index, target_order=order_m)
    cell_ids, row_cell = np.unique(cells, return_inverse=True)
    # hats' margin pixels of T (hats.pixel_math.get_margin) are cdshealpix's external_neighbours: the
    # order-M cells outside T sharing an edge or a corner with it. The relation is symmetric, so a cell of
    # this partition is a margin cell of T exactly when one of its 8 neighbours lies in T.
    neighbours = cdshealpix.nested.neighbours(cell_ids.astype(np.uint64), order_m)  # -1 where none
    cell_of = np.repeat(np.arange(len(cell_ids)), neighbours.shape[1])
    neighbours = neighbours.ravel()
    valid = neighbours >= 0
    cell_of, neighbours = cell_of[valid], neighbours[valid]
    receiver = np.searchsorted(starts, neighbours << shift, side="right") - 1
    foreign = receiver != own
    pairs = pd.DataFrame(
        {"cell": cell_of[foreign], "neighbour": neighbours[foreign], "receiver": receiver[foreign]}
    )
    if pairs.empty:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    rows = pd.DataFrame({"row": np.arange(len(index)), "cell": row_cell.ravel()})
    candidates = rows.merge(pairs, on="cell")
    if candidates.empty:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    points = _unit_vectors(np.radians(ra_deg), np.radians(dec_deg))
    row = candidates["row"].to_numpy()
    tolerance_rad = MARGIN_EDGE_TOLERANCE * threshold_rad
    distance = _distance_to_cells(points[row], candidates["neighbour"].to_numpy(), order_m, tolerance_rad)
    # The nearest point of T lies in one of its cells bordering the row's cell (margin_order), so the
    # row is within the threshold of T iff it is within it of one of those cells.
    kept = candidates.loc[distance < threshold_rad, ["receiver", "row"]].drop_duplicates()
    kept = kept.sort_values(["receiver", "row"])
    return kept["row"].to_numpy(dtype=np.int64), kept["receiver"].to_numpy(dtype=np.int64)


def _unit_vectors(lon_rad: np.ndarray, lat_rad: np.ndarray) -> np.ndarray:
    cos_lat = np.cos(lat_rad)
    return np.stack([cos_lat * np.cos(lon_rad), cos_lat * np.sin(lon_rad), np.sin(lat_rad)], axis=-1)


def _cell_loops(cells: np.ndarray, order: int, step: int) -> np.ndarray:
    """Boundary of each cell as ``4 * step`` unit vectors in order around it (cdshealpix ``vertices``)."""
    lon, lat = cdshealpix.nested.vertices(cells.astype(np.uint64), order, step=int(step))
    return _unit_vectors(lon.rad, lat.rad)


def _arc_distance(points: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Great-circle distance (rad) from ``points`` to the minor arcs ``a``-``b`` (unit vectors, broadcast).

    Written with differences from ``a``: for arcs of milliarcseconds, ``a x b`` would lose to cancellation
    what the distance is made of (its rounding, ~1e-16, divided by the arc's length tilts the normal), while
    ``a x (b - a)`` and ``(p - a) . n`` keep their relative precision.
    """
    chord = b - a
    normal = np.cross(a, chord)
    length = np.linalg.norm(normal, axis=-1)
    normal = normal / np.where(length > 0, length, 1.0)[..., None]
    offset = points - a
    sine = np.sum(offset * normal, axis=-1)
    foot = offset - sine[..., None] * normal  # projection on the arc's plane, from a
    within = (
        (length > 0)
        & (np.sum(np.cross(a, foot) * normal, axis=-1) >= 0)
        & (np.sum(np.cross(foot - chord, b) * normal, axis=-1) >= 0)
    )
    to_circle = np.arctan2(np.abs(sine), np.linalg.norm(points - sine[..., None] * normal, axis=-1))
    to_ends = np.minimum(_angle(points, a), _angle(points, b))
    return np.where(within, to_circle, to_ends)


def _angle(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    # From the chord: accurate down to the smallest separations, where arccos of the dot product is not.
    return 2.0 * np.arcsin(np.minimum(np.linalg.norm(u - v, axis=-1) / 2.0, 1.0))


def _edge_steps(cells: np.ndarray, order: int, tolerance_rad: float) -> np.ndarray:
    """Vertices per edge that keep each cell's boundary polyline within the tolerance of its true edges.

    HEALPix edges are not great circles: they curve (most near the poles) and bend where they cross the
    polar-cap boundary |z| = 2/3. So the chord between two boundary vertices departs from the edge, by at
    most about twice its departure at the chord's midpoint (exactly the sagitta on a smooth arc; at least
    half the largest departure across a bend). That midpoint departure is measured for each cell, from
    cdshealpix's vertices at twice the step, and the step is doubled until twice it is within the
    tolerance: first by the factor a smooth arc needs (halving a chord quarters its sagitta), then, where a
    bend makes that too little, again until the measurement agrees.
    """
    steps = np.full(len(cells), _EDGE_STEP, dtype=np.int64)
    most = _EDGE_STEP * 2**_MAX_EDGE_DOUBLINGS
    pending = np.arange(len(cells))
    while pending.size:
        still = []
        for step in np.unique(steps[pending]):
            group = pending[steps[pending] == step]
            chords = _cell_loops(cells[group], order, int(step))
            midpoints = _cell_loops(cells[group], order, 2 * int(step))[:, 1::2]
            departure = _arc_distance(midpoints, chords, np.roll(chords, -1, axis=1)).max(axis=1)
            ratio = 2.0 * departure / tolerance_rad
            coarse = (ratio > 1.0) & (step < most)
            doublings = np.ceil(np.log(np.maximum(ratio[coarse], 4.0)) / np.log(4.0)).astype(np.int64)
            steps[group[coarse]] = np.minimum(step * 2**doublings, most)
            still.append(group[coarse])
        pending = np.concatenate(still)
    return steps


def _distance_to_cells(points: np.ndarray, cells: np.ndarray, order: int, tolerance_rad: float) -> np.ndarray:
    """Great-circle distance (rad) from each point to the boundary of its cell (the points lie outside)."""
    cell_ids, point_cell = np.unique(cells, return_inverse=True)
    point_cell = point_cell.ravel()
    steps = _edge_steps(cell_ids, order, tolerance_rad)
    distance = np.empty(len(points))
    for step in np.unique(steps):
        group = np.flatnonzero(steps == step)
        loops = _cell_loops(cell_ids[group], order, int(step))
        # Position of each point's cell within the group (-1: another group).
        slot = np.full(len(cell_ids), -1)
        slot[group] = np.arange(len(group))
        members = np.flatnonzero(slot[point_cell] >= 0)
        chunk = max(1, _SEGMENT_CHUNK // loops.shape[1])
        for begin in range(0, len(members), chunk):
            batch = members[begin : begin + chunk]
            a = loops[slot[point_cell[batch]]]
            b = np.roll(a, -1, axis=1)
            distance[batch] = _arc_distance(points[batch, None, :], a, b).min(axis=1)
    return distance


def _write_empty_dataset_metadata(
    catalog_dir: Path,
    schema: pa.Schema,
    metadata: Mapping[bytes, bytes],
    provenance: Mapping[str, Any],
    written: list[Path],
) -> int:
    """``_common_metadata`` and ``_metadata`` of a catalog without partitions (a margin nobody is near)."""
    stamped = dict(metadata)
    stamped[PARQUET_KEY] = _provenance_bytes(provenance)
    schema = schema.remove_metadata().with_metadata(stamped)
    for pointer in (paths.get_common_metadata_pointer, paths.get_parquet_metadata_pointer):
        dest = Path(os.fspath(pointer(catalog_dir)))
        with atomic_output(dest) as tmp:
            file_io.write_parquet_metadata(schema, tmp)
        written.append(dest)
    return 0
