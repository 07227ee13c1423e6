"""ESA's Gaia DR2 RUWE normalisation (DR2_RUWE_V1): download the zip, check it, extract the two u0 tables.

Gaia DR2's ``gaia_source`` has no RUWE; it is UWE / u0(G, BP−RP) with UWE = √(χ²_AL / (N_good − 5)) and u0
the reference UWE that Lindegren et al. (2018, GAIA-C3-TN-LU-LL-124) derived from all of DR2.
ESA publishes u0 on its DR2 known-issues page (https://www.cosmos.esa.int/web/gaia/dr2-known-issues) as
:data:`DR2_RUWE_URL`, a zip holding a readme and three CSV tables (readme of 2018 Aug 10):

* ``table_u0_g_col.txt`` — ``g_mag,bp_rp,u0``, G = 3.60(0.01)21.00 × C = −1.0(0.1)10.0, 193,251 rows;
* ``table_u0_g.txt`` — ``g_mag,u0``, the same G grid, for sources without a colour;
* ``table_u0_2D.txt`` — the same numbers as one wide table (not needed here).

:func:`fetch_dr2_u0_tables` downloads the zip with the shared HTTP helper (:mod:`latentsky.fetch.http`:
retries, errors naming the URL), checks that it is a zip whose members pass their CRC, finds the two tables
(at the top level or in a folder), checks that each reads as a u0 table
(:func:`latentsky.io.gaia_columns.read_u0_table`: the columns, positive u0, a complete grid) and writes each
atomically, so a half-downloaded zip or an HTML error page never leaves a table behind.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import tempfile
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import requests

from latentsky.fetch.http import FetchError, download, http_session
from latentsky.io.gaia_columns import ESA_U0_TABLE_FILES, GaiaTableError, read_u0_table
from latentsky.provenance.files import atomic_output

log = logging.getLogger(__name__)

__all__ = ["DR2_RUWE_URL", "archive_release", "fetch_dr2_u0_tables"]

#: ESA's DR2_RUWE_V1 zip, linked from the DR2 known-issues page.
DR2_RUWE_URL = "https://www.cosmos.esa.int/documents/29201/1769576/DR2_RUWE_V1.zip"
#: Which table holds which function: u0(G, C) needs the colour column, u0(G) must not have one.
_NEEDS_COLOUR = {ESA_U0_TABLE_FILES[0]: True, ESA_U0_TABLE_FILES[1]: False}
_DR3 = re.compile(r"e?dr3", re.IGNORECASE)


def archive_release(archive: Mapping[str, Any]) -> str:
    """``dr2`` or ``dr3``: the release a ``sources.gaia.archive`` block fetches.

    The TAP table (``gaiadr3.gaia_source``, ``gaiaedr3.gaia_source``) or bulk directory (``…/gdr3/…``)
    names it, as :func:`latentsky.fetch.gaia_archive.partition_adql` reads it to choose the columns. Only
    DR2 needs a u0 table: (E)DR3 publish ``ruwe`` in ``gaia_source``.
    """
    where = archive.get("tap_table", "") if archive.get("method") == "tap" else archive.get("bulk_url", "")
    return "dr3" if _DR3.search(str(where)) else "dr2"


def fetch_dr2_u0_tables(
    out_dir: str | os.PathLike,
    url: str = DR2_RUWE_URL,
    *,
    session: requests.Session | None = None,
    timeout: float = 120.0,
    retries: int = 3,
    backoff_s: float = 5.0,
) -> dict[str, Path]:
    """Download ESA's DR2_RUWE_V1 zip and write its two u0 tables into ``out_dir``, byte for byte.

    Parameters
    ----------
    out_dir
        Where ``table_u0_g_col.txt`` and ``table_u0_g.txt`` are written (created if missing).
    url
        The zip (:data:`DR2_RUWE_URL`, or a mirror of it).
    session, timeout, retries, backoff_s
        HTTP settings, see :func:`latentsky.fetch.http.download`.

    Returns
    -------
    dict
        File name → written path, for the two tables.

    Raises
    ------
    FetchError
        Naming the URL: the download failed, the body is not a zip (e.g. an HTML page), a member fails its
        CRC, a table is missing from the zip, or a table does not read as a u0 table (its member is named).
    """
    session = http_session(session)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # The zip (a few MB) goes to a scratch file beside the output rather than into memory.
    with tempfile.TemporaryFile(dir=out) as sink:
        n = download(session, url, sink, timeout=timeout, retries=retries, backoff_s=backoff_s)
        sink.seek(0)
        try:
            archive = zipfile.ZipFile(sink)
        except zipfile.BadZipFile as exc:
            head = _peek(sink)
            raise FetchError(f"{url}: not a zip archive ({n} bytes starting {head!r}): {exc}") from exc
        with archive:
            members = _find_members(archive, url)
            data = {name: _read_member(archive, member, url) for name, member in members.items()}
    # Both tables or neither: each is checked in its scratch file, and only when both pass are they moved
    # onto their paths (leaving the stack on an error deletes every scratch file).
    written: dict[str, Path] = {}
    with contextlib.ExitStack() as stack:
        for name, member in members.items():
            tmp = stack.enter_context(atomic_output(out / name))
            tmp.write_bytes(data[name])
            _check_table(tmp, name, member, url)
            written[name] = out / name
    log.info("%s: %d bytes; wrote %s", url, n, ", ".join(str(p) for p in written.values()))
    return written


def _peek(sink: Any) -> bytes:
    sink.seek(0)
    return sink.read(40)


def _find_members(archive: zipfile.ZipFile, url: str) -> dict[str, str]:
    """The zip member of each table, matched by file name wherever it sits (top level or a folder)."""
    by_name: dict[str, list[str]] = {}
    for info in archive.infolist():
        if not info.is_dir():
            by_name.setdefault(info.filename.rsplit("/", 1)[-1], []).append(info.filename)
    missing = [name for name in ESA_U0_TABLE_FILES if name not in by_name]
    if missing:
        found = ", ".join(sorted(i.filename for i in archive.infolist())) or "nothing"
        raise FetchError(
            f"{url}: the zip lacks {', '.join(missing)} (DR2_RUWE_V1's u0 tables); it holds {found}"
        )
    twice = [name for name in ESA_U0_TABLE_FILES if len(by_name[name]) > 1]
    if twice:
        raise FetchError(f"{url}: the zip holds {twice[0]} more than once: {', '.join(by_name[twice[0]])}")
    return {name: by_name[name][0] for name in ESA_U0_TABLE_FILES}


def _read_member(archive: zipfile.ZipFile, member: str, url: str) -> bytes:
    try:
        # ZipFile.read checks the member's CRC-32 and raises BadZipFile on a mismatch (a corrupt download
        # that still has a valid central directory).
        return archive.read(member)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise FetchError(f"{url}: zip member {member} is corrupt: {exc}") from exc


def _check_table(path: Path, name: str, member: str, url: str) -> None:
    try:
        table = read_u0_table(path)
    except GaiaTableError as exc:
        detail = str(exc).split(": ", 1)[-1]  # the message names the scratch file; name the member
        raise FetchError(f"{url}: zip member {member} is not a u0 table: {detail}") from exc
    has_colour = table.u0_grid is not None
    if has_colour != _NEEDS_COLOUR[name]:
        want = "g_mag, bp_rp, u0" if _NEEDS_COLOUR[name] else "g_mag, u0"
        raise FetchError(f"{url}: zip member {member} should have the columns {want}")
    grid = (
        f"G {table.g_grid[0]:.2f}–{table.g_grid[-1]:.2f} ({table.g_grid.size}) × BP−RP "
        f"{table.colour_grid[0]:.1f}–{table.colour_grid[-1]:.1f} ({table.colour_grid.size})"
        if has_colour
        else f"G {table.g_only[0]:.2f}–{table.g_only[-1]:.2f} ({table.g_only.size})"
    )
    log.info("%s: u0 on %s", member, grid)
