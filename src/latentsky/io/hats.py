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
only. Every partition must hold the ``_healpix_29`` spatial-index column (lsdb makes it the index and
filters on it) with rows sorted by it, and every row must lie inside its partition's pixel.

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
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import logging
import operator
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from hats.catalog import CatalogType, HatsProperties, PartitionInfo, TableProperties
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
    "PROVENANCE_PROPERTY",
    "finalize_catalog",
    "partition_path",
    "prepare_partition",
    "provenance_sha256",
    "spatial_index",
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

    partition_info = PartitionInfo(pixels)
    partition_info_path = Path(os.fspath(paths.get_partition_info_pointer(catalog_dir)))
    with atomic_output(partition_info_path) as tmp:
        partition_info.write_to_file(partition_info_file=tmp)
    written.append(partition_info_path)

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
    hats_max_rows: int,
    partition_info: PartitionInfo,
    skymap_order: int | None,
    provenance: Mapping[str, Any],
    extra: Mapping[str, Any],
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
    coverage = partition_info.calculate_fractional_coverage()
    derived: dict[str, Any] = {
        "catalog_name": catalog_name,
        "catalog_type": CatalogType.OBJECT,
        "total_rows": total_rows,
        "ra_column": ra_column,
        "dec_column": dec_column,
        "healpix_column": SPATIAL_INDEX_COLUMN,
        "healpix_order": SPATIAL_INDEX_ORDER,
        "npix_suffix": _NPIX_SUFFIX,
        "hats_max_rows": hats_max_rows,
        "hats_order": partition_info.get_highest_order(),
        "moc_sky_fraction": float(f"{coverage:.5g}"),
        "skymap_order": skymap_order,
        PROVENANCE_PROPERTY: provenance_sha256(provenance),
    }
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
