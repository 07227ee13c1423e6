"""Fetchers of real survey data: they download the archives' own files, atomically, and name the URL when
anything goes wrong. Each is tested offline against recorded real responses served over a loopback HTTP
server (DESIGN.md, "Conventions")."""

from latentsky.fetch.gaia_archive import (
    DEFAULT_BULK_URL,
    DEFAULT_TAP_URL,
    BulkFile,
    BulkPartition,
    FetchError,
    TapPartition,
    fetch_bulk_partition,
    fetch_partition_tap,
    list_bulk_files,
    partition_adql,
    select_bulk_files,
)

__all__ = [
    "DEFAULT_BULK_URL",
    "DEFAULT_TAP_URL",
    "BulkFile",
    "BulkPartition",
    "FetchError",
    "TapPartition",
    "fetch_bulk_partition",
    "fetch_partition_tap",
    "list_bulk_files",
    "partition_adql",
    "select_bulk_files",
]
