"""Fetch one directory of the OGLE-III or OGLE-IV catalogs of variable stars: objects and I-band light curves.

(The module keeps its OGLE-III name, as do the workflow rule and the function; it reads OGLE-IV too.)

The OGLE-III CVS (Soszyński et al. 2008–2011; the light-curve set of paper 000, PELS-VAE, Sec. 2.1) is
served from :data:`DEFAULT_OGLE3_URL`, the OGLE-IV Collection of Variable Stars (OCVS; e.g. the bulge
eclipsing and ellipsoidal binaries of Soszyński et al. 2016, which paper 000 also uses) from
:data:`DEFAULT_OGLE4_URL`, both as one directory per target and class, ``{target}/{class}/`` in lower case
(targets ``blg``, ``lmc``, ``smc``, ``gd``; classes ``acep``, ``cep``, ``dsct``, ``ecl``, ``ell``, ``lpv``,
``rrlyr``, ``t2cep``, …), each with an HTML index listing

* ``ident.dat`` — ID, (OGLE-III) field and star number, subtype, RA/Dec (J2000), cross-identifications
  (OGLE-IV: the OGLE-IV, OGLE-III and OGLE-II ids); :func:`latentsky.io.ogle.read_ogle_ident` reads both;
* per-mode period tables (``cepF.dat``, ``cep1O.dat``, ``RRab.dat``, ``Miras.dat``, ``ecl.dat``, …: every
  ``*.dat`` other than ``ident.dat``) — mean I and V, period, …;
* ``phot.tar.gz`` — all light curves, members ``phot/I/<ID>.dat`` and ``phot/V/<ID>.dat``;
* ``phot/I/<ID>.dat`` — the same I-band files one by one (three columns: HJD − 2450000, I, error);
* ``README``, ``remarks.txt`` (skipped).

Some OGLE-IV directories keep the photometry by survey phase instead, ``phot_ogle4/I/<ID>.dat`` (and
``phot_ogle2/``, ``phot_ogle3/``; Soszyński et al. 2016 give OGLE-II, -III and -IV photometry of the bulge
binaries). Seen in other public projects' download code (e.g. ``blg/ecl/phot_ogle4/I/``), not in OGLE's
documentation: so the I band is read from ``phot_<survey>/I/`` where the index lists that directory (and from
such tarball members), otherwise from ``phot/I/``; the other phases' directories are skipped, so that one
object never gets two light curves on different calibrations. The name of the tarball of such a directory is
not known either: only ``phot.tar.gz`` is looked for.

:func:`fetch_ogle3_catalog` turns one directory into the two tables the workflow reads (the schema of the
simulated catalog, :data:`latentsky.io.ogle.OBJECT_COLUMNS`, and :data:`LIGHT_CURVE_COLUMNS`). All
parsing is done by :mod:`latentsky.io.ogle`; all HTTP by :mod:`latentsky.fetch.http` (retries, errors that
name the URL). Both Parquet files are written atomically, and only once everything has been fetched.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import tarfile
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Literal, cast
from urllib.parse import urljoin, urlsplit

import numpy as np
import pandas as pd
import pyarrow as pa
import requests

from latentsky.fetch.http import FetchError, download, http_session, index_links
from latentsky.io.ogle import OBJECT_COLUMNS, OgleFormatError, read_ogle_ident, read_ogle_lightcurve
from latentsky.provenance.files import write_parquet

log = logging.getLogger(__name__)

#: Root of the OGLE-III Catalog of Variable Stars.
DEFAULT_OGLE3_URL = "https://ftp.astrouw.edu.pl/ogle/ogle3/OIII-CVS/"
#: Root of the OGLE-IV Collection of Variable Stars (OCVS).
DEFAULT_OGLE4_URL = "https://www.astrouw.edu.pl/ogle/ogle4/OCVS/"
#: The surveys a catalog entry may name, and their default roots.
SURVEYS: dict[str, str] = {"ogle3": DEFAULT_OGLE3_URL, "ogle4": DEFAULT_OGLE4_URL}
#: OGLE-III targets (directory names): Galactic bulge, Magellanic Clouds, Galactic disk.
OGLE3_TARGETS: tuple[str, ...] = ("blg", "lmc", "smc", "gd")
#: Classes of the OGLE-III CVS known to this module (others with the same layout are accepted too).
OGLE3_CLASSES: tuple[str, ...] = ("acep", "cep", "dsct", "ecl", "ell", "lpv", "rrlyr", "t2cep")
#: Columns of the light-curve table, sorted by ``ogle_id`` then ``time``.
LIGHT_CURVE_COLUMNS: tuple[str, ...] = ("ogle_id", "time", "mag", "err")

_STRING_COLUMNS = {"ogle_id", "field", "var_class", "subtype"}
#: Arrow schema of the objects table: the columns of the simulated catalog, in its order.
OBJECT_SCHEMA = pa.schema(
    [
        (c, pa.string() if c in _STRING_COLUMNS else pa.int64() if c == "n_epochs" else pa.float64())
        for c in OBJECT_COLUMNS
    ]
)
#: Arrow schema of the light-curve table.
LIGHT_CURVE_SCHEMA = pa.schema(
    [(c, pa.string() if c == "ogle_id" else pa.float64()) for c in LIGHT_CURVE_COLUMNS]
)

LightCurveMode = Literal["tarball", "per_object"]
Survey = Literal["ogle3", "ogle4"]
_NAME = re.compile(r"^[a-z0-9]+$")
#: A photometry directory of one survey phase (``phot_ogle4``).
_PHASE_DIR = re.compile(r"^phot_ogle\d$")
#: A catalog entry of ``ogle.archive.catalogs``: ``[ogle4:]target/class`` (no prefix: OGLE-III).
_ENTRY = re.compile(r"^(?:(?P<survey>[a-z0-9]+):)?(?P<target>[a-z0-9]+)/(?P<var_class>[a-z0-9]+)$")


@dataclass(frozen=True)
class CatalogEntry:
    """One entry of ``ogle.archive.catalogs``, as :func:`parse_catalog_entry` reads it.

    Attributes
    ----------
    survey
        ``"ogle3"`` or ``"ogle4"``.
    target, var_class
        Directory names, lower case (``blg``, ``ecl``).
    """

    survey: Survey
    target: str
    var_class: str

    @property
    def path(self) -> str:
        """Where the workflow keeps the fetched tables, relative to its archive directory: ``blg/ecl`` for
        OGLE-III (as before OGLE-IV entries existed), ``ogle4/blg/ecl`` for OGLE-IV, so that the two
        surveys' directories of one target and class never share files."""
        base = f"{self.target}/{self.var_class}"
        return base if self.survey == "ogle3" else f"{self.survey}/{base}"


def parse_catalog_entry(entry: str) -> CatalogEntry:
    """Read one ``ogle.archive.catalogs`` entry: ``target/class`` (OGLE-III) or ``ogle4:target/class``.

    Raises
    ------
    ValueError
        For another form (a class must be a plain directory name), another survey prefix, or a target other
        than :data:`OGLE3_TARGETS` (the same four in OGLE-IV: the only ones this module was checked with).
    """
    match = _ENTRY.match(str(entry).strip().lower())
    if match is None:
        raise ValueError(f"OGLE catalog {entry!r} is not of the form [ogle4:]target/class, e.g. lmc/cep")
    survey = match["survey"] or "ogle3"
    if survey not in SURVEYS:
        raise ValueError(f"OGLE catalog {entry!r}: survey {survey!r} is not one of {tuple(SURVEYS)}")
    if match["target"] not in OGLE3_TARGETS:
        raise ValueError(f"OGLE catalog {entry!r}: target {match['target']!r} is not one of {OGLE3_TARGETS}")
    return CatalogEntry(cast(Survey, survey), match["target"], match["var_class"])


@dataclass(frozen=True)
class Ogle3Catalog:
    """What :func:`fetch_ogle3_catalog` wrote.

    Attributes
    ----------
    objects_path, light_curves_path
        The two Parquet files.
    directory_url
        The archive directory read (``…/OIII-CVS/lmc/cep/``).
    period_tables
        URLs of the period tables whose periods and mean magnitudes were joined, in join order.
    n_objects
        Rows of the objects table.
    n_epochs
        Rows of the light-curve table (all objects together).
    without_light_curve
        IDs kept with ``n_epochs = 0`` because the archive has no I-band light curve for them.
    without_period
        IDs kept with a NaN period because no period table lists them.
    """

    objects_path: Path
    light_curves_path: Path
    directory_url: str
    period_tables: tuple[str, ...]
    n_objects: int
    n_epochs: int
    without_light_curve: tuple[str, ...]
    without_period: tuple[str, ...]


def ogle3_directory_url(target: str, var_class: str, base_url: str = DEFAULT_OGLE3_URL) -> str:
    """The archive directory of one target and class, ``{base_url}/{target}/{var_class}/`` in lower case.

    The OGLE-IV OCVS has the same layout under :data:`DEFAULT_OGLE4_URL`.

    Raises
    ------
    ValueError
        For a target other than :data:`OGLE3_TARGETS` or a class that is not a plain lower-case name.
    """
    t, c = str(target).strip().lower(), str(var_class).strip().lower()
    if t not in OGLE3_TARGETS:
        raise ValueError(f"OGLE-III target {target!r} not one of {OGLE3_TARGETS}")
    if not _NAME.match(c):
        raise ValueError(f"OGLE-III class {var_class!r} is not a directory name such as {OGLE3_CLASSES}")
    return urljoin(base_url if base_url.endswith("/") else base_url + "/", f"{t}/{c}/")


def _directory_files(directory_url: str, links: Iterable[str]) -> dict[str, str]:
    """Name → URL of the files directly inside ``directory_url`` (no sort links, parents or subdirs)."""
    files: dict[str, str] = {}
    for url in links:
        parts = urlsplit(url)
        if parts.query or parts.fragment or not url.startswith(directory_url):
            continue
        name = url[len(directory_url) :]
        if name and "/" not in name:
            files.setdefault(name, url)
    return files


def _directory_subdirs(directory_url: str, links: Iterable[str]) -> set[str]:
    """Names of the subdirectories directly inside ``directory_url`` that its index links to (``phot_ogle4``)."""
    names = set()
    for url in links:
        parts = urlsplit(url)
        if parts.query or parts.fragment or not url.startswith(directory_url):
            continue
        name = url[len(directory_url) :]
        if name.endswith("/") and name.count("/") == 1:
            names.add(name[:-1])
    return names


def _relabel(exc: OgleFormatError, labels: Mapping[Path, str]) -> OgleFormatError:
    """The reader's error with each temporary path replaced by the archive URL it was downloaded from."""
    message = str(exc)
    for local, label in labels.items():
        message = message.replace(str(local), label)
    return OgleFormatError(message)


def _download_to(session: requests.Session, url: str, path: Path, **kw: Any) -> Path:
    with open(path, "wb") as sink:
        download(session, url, sink, **kw)
    return path


def _read_lightcurve_file(path: Path, label: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    try:
        lc = read_ogle_lightcurve(path)
    except OgleFormatError as exc:
        raise _relabel(exc, {path: label}) from None
    # Stable sort: OGLE files are in time order already; equal times keep the file's order.
    order = np.argsort(lc["time"].to_numpy(), kind="stable")
    time, mag, err = (lc[c].to_numpy(np.float64)[order] for c in ("time", "mag", "err"))
    return time, mag, err


def _lightcurves_from_tarball(
    tar_path: Path, url: str, wanted: set[str], scratch: Path, survey: Survey = "ogle3"
) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Read the I-band members (``…/I/<ID>.dat``) of ``wanted`` objects, in one sequential pass (``r|gz``).

    Members under another survey phase's directory (``phot_ogle3/I/`` when ``survey`` is ``"ogle4"``) are
    skipped. Where an object has both ``phot_<survey>/I/<ID>.dat`` and a member of a directory that names
    no phase (``phot/I/``), the phase's own file wins. Members are read into memory one at a time and handed
    to :func:`read_ogle_lightcurve` through one scratch file; nothing is extracted, and V-band and
    unselected members are skipped unread.
    """
    curves: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    rank: dict[str, int] = {}
    member_file = scratch / "member.dat"
    try:
        with tarfile.open(tar_path, mode="r|gz") as tar:
            for member in tar:
                path = PurePosixPath(member.name)
                if not member.isfile() or path.suffix != ".dat" or len(path.parts) < 2:
                    continue
                if path.parts[-2] != "I" or path.stem not in wanted:
                    continue
                phase = path.parts[-3] if len(path.parts) >= 3 and _PHASE_DIR.match(path.parts[-3]) else None
                if phase is not None and phase != f"phot_{survey}":
                    continue
                this_rank = 0 if phase is not None else 1
                if path.stem in curves:
                    if this_rank == rank[path.stem]:
                        raise FetchError(f"{url}: holds two I-band light curves of {path.stem}")
                    if this_rank > rank[path.stem]:
                        continue
                handle = tar.extractfile(member)
                assert handle is not None  # a regular file member always has data
                member_file.write_bytes(handle.read())
                curves[path.stem] = _read_lightcurve_file(member_file, f"{url}!{member.name}")
                rank[path.stem] = this_rank
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise FetchError(f"{url}: not a readable .tar.gz archive ({type(exc).__name__}: {exc})") from exc
    return curves


def fetch_ogle3_catalog(
    target: str,
    var_class: str,
    out_objects: str | os.PathLike,
    out_light_curves: str | os.PathLike,
    *,
    survey: Survey = "ogle3",
    base_url: str | None = None,
    light_curves: LightCurveMode = "tarball",
    ids: Iterable[str] | None = None,
    session: requests.Session | None = None,
    timeout: float = 120.0,
    retries: int = 3,
    backoff_s: float = 2.0,
    record: Mapping[str, Any] | None = None,
) -> Ogle3Catalog:
    """Download one OGLE-III or OGLE-IV catalog directory; write its objects and I-band light curves as Parquet.

    Parameters
    ----------
    target, var_class
        Target (``blg``, ``lmc``, ``smc``, ``gd``) and class directory (``cep``, ``rrlyr``, ``ecl``, …);
        case-insensitive.
    out_objects
        Parquet file, one row per object, columns ``ogle_id``, ``field`` (the target, upper case: ``LMC``),
        ``ra``, ``dec`` (J2000, deg), ``var_class`` (from the ID: ``CEP``), ``subtype`` (ident.dat's mode
        token, e.g. ``F``, ``RRab``, ``Mira``; null where the class has none), ``period`` (d), ``i_mag``
        (mean I, mag), ``v_i`` (mean V − mean I, mag; NaN if either is missing), ``n_epochs`` (rows in the
        light-curve table), sorted by ``ogle_id``.
    out_light_curves
        Parquet file with :data:`LIGHT_CURVE_COLUMNS`: ``time`` (HJD − 2450000, d), ``mag`` (I, mag),
        ``err`` (mag), sorted by ``ogle_id`` then ``time``.
    survey
        ``"ogle3"`` (OIII-CVS) or ``"ogle4"`` (OCVS): the default ``base_url`` and which survey phase's
        photometry directory to read where a directory splits them (module docstring).
    base_url
        Root of the catalog (default :data:`SURVEYS` ``[survey]``: :data:`DEFAULT_OGLE3_URL` or
        :data:`DEFAULT_OGLE4_URL`); the directory is :func:`ogle3_directory_url` ``(target, var_class,
        base_url)``.
    light_curves
        ``"tarball"``: download ``phot.tar.gz`` once (retried as a whole on failure, to a scratch directory
        beside the outputs) and read the selected objects' I-band members (``phot/I/`` or
        ``phot_<survey>/I/``) in one sequential pass without extracting anything — best for a whole class.
        ``"per_object"``: download ``phot_<survey>/I/<ID>.dat`` (where the index lists ``phot_<survey>/``)
        or ``phot/I/<ID>.dat`` for each selected object — best for a few ``ids``.
    ids
        Restrict to these OGLE IDs; every one must be in ``ident.dat``.
    session, timeout, retries, backoff_s
        HTTP session (default: :func:`latentsky.fetch.http.http_session`), timeout per request (s),
        retries of transient failures and first backoff (s, doubling); see
        :func:`latentsky.fetch.http.download`.
    record
        Provenance record stored in both files (:func:`latentsky.provenance.files.write_parquet`); default: one built
        by :func:`latentsky.provenance.record.build_record` for rule ``fetch_ogle3`` with these parameters.

    Returns
    -------
    Ogle3Catalog
        Paths, URLs used, row counts and the IDs kept without a light curve or a period.

    Raises
    ------
    FetchError
        Naming the URL: the index or a file cannot be fetched (after retries for transient failures; a 404
        fails at once), the index lists no ``ident.dat`` (or no ``phot.tar.gz`` in ``"tarball"`` mode),
        the tarball is unreadable, or no selected object has any light curve (a wrong layout, not data).
    OgleFormatError
        A file has neither the OGLE-III nor the OGLE-IV layout; the message names its URL and line.
    ValueError
        Bad arguments, or ``ids`` not in ``ident.dat`` (all missing IDs are named).

    Notes
    -----
    Nothing is dropped silently (paper 000 Appendix A counts every OGLE object of the cross-match):

    * an object without an I-band light curve (no ``phot/I`` member, or a 404 for its file in
      ``"per_object"`` mode) is kept with ``n_epochs = 0`` and logged;
    * an object in no period table is kept with NaN ``period``, ``i_mag`` and ``v_i`` and logged as a
      warning; the cross-match cascade flags it (it needs a period);
    * an object in two period tables (e.g. ``RRd`` stars) takes the first table in index order
      (:func:`latentsky.io.ogle.read_ogle_ident`).
    """
    if light_curves not in ("tarball", "per_object"):
        raise ValueError(f"light_curves must be 'tarball' or 'per_object', not {light_curves!r}")
    if survey not in SURVEYS:
        raise ValueError(f"survey must be one of {tuple(SURVEYS)}, not {survey!r}")
    base_url = SURVEYS[survey] if base_url is None else base_url
    out_obj, out_lc = Path(out_objects), Path(out_light_curves)
    if out_obj.resolve() == out_lc.resolve():
        raise ValueError(f"{out_obj}: objects and light curves must go to different files")
    directory = ogle3_directory_url(target, var_class, base_url)
    http = http_session(session)
    kw = {"timeout": timeout, "retries": retries, "backoff_s": backoff_s}

    links = index_links(http, directory, **kw)
    files = _directory_files(directory, links)
    # Per-object I-band files: the survey phase's own directory where the index has one, else phot/.
    phot_dir = f"phot_{survey}" if f"phot_{survey}" in _directory_subdirs(directory, links) else "phot"
    if "ident.dat" not in files:
        raise FetchError(f"{directory}: the directory index lists no ident.dat")
    table_names = [n for n in files if n.endswith(".dat") and n != "ident.dat"]
    skipped = sorted(n for n in files if n not in table_names and n not in ("ident.dat", "phot.tar.gz"))
    log.info("%s: ident.dat, period tables %s; not read: %s", directory, table_names, skipped)
    if light_curves == "tarball" and "phot.tar.gz" not in files:
        raise FetchError(
            f"{directory}: the directory index lists no phot.tar.gz; use light_curves='per_object'"
        )

    out_obj.parent.mkdir(parents=True, exist_ok=True)
    # Downloads go next to the outputs (same filesystem, usually the cluster's scratch), not to /tmp.
    with tempfile.TemporaryDirectory(prefix=f".{out_obj.name}.fetch-", dir=out_obj.parent) as tmpdir:
        scratch = Path(tmpdir)
        local = {n: _download_to(http, files[n], scratch / n, **kw) for n in ["ident.dat", *table_names]}
        try:
            ident = read_ogle_ident(local["ident.dat"], period_tables=[local[n] for n in table_names])
        except OgleFormatError as exc:
            raise _relabel(exc, {path: files[name] for name, path in local.items()}) from None
        if not table_names:
            ident = ident.assign(i_mag=math.nan, v_mag=math.nan, period=math.nan)

        if ids is not None:
            wanted = list(dict.fromkeys(str(i).strip() for i in ([ids] if isinstance(ids, str) else ids)))
            missing = sorted(set(wanted) - set(ident["ogle_id"]))
            if missing:
                raise ValueError(
                    f"{files['ident.dat']}: {len(missing)} requested ID(s) not listed: {missing}"
                )
            ident = ident[ident["ogle_id"].isin(wanted)]
        ident = ident.sort_values("ogle_id", kind="stable").reset_index(drop=True)
        selected = ident["ogle_id"].tolist()

        if light_curves == "tarball":
            tar_url = files["phot.tar.gz"]
            tar_path = _download_to(http, tar_url, scratch / "phot.tar.gz", **kw)
            curves = _lightcurves_from_tarball(tar_path, tar_url, set(selected), scratch, survey)
            tar_path.unlink()
        else:
            curves = {}
            for ogle_id in selected:
                url = urljoin(directory, f"{phot_dir}/I/{ogle_id}.dat")
                path = scratch / f"{ogle_id}.dat"
                try:
                    _download_to(http, url, path, **kw)
                except FetchError as exc:
                    if exc.status != 404:
                        raise
                    continue
                curves[ogle_id] = _read_lightcurve_file(path, url)
                path.unlink()

    without_lc = tuple(i for i in selected if i not in curves)
    if selected and not curves:
        raise FetchError(
            f"{directory}: found no I-band light curve for any of the {len(selected)} selected object(s) "
            f"({light_curves} mode); the archive layout may have changed"
        )
    if without_lc:
        log.warning(
            "%s: %d object(s) have no I-band light curve and are kept with n_epochs = 0: %s",
            directory,
            len(without_lc),
            ", ".join(without_lc[:20]) + (" …" if len(without_lc) > 20 else ""),
        )
    without_period = tuple(ident.loc[ident["period"].isna(), "ogle_id"])
    if without_period:
        log.warning(
            "%s: %d object(s) are in no period table and are kept with NaN period: %s",
            directory,
            len(without_period),
            ", ".join(without_period[:20]) + (" …" if len(without_period) > 20 else ""),
        )

    n_epochs = np.array([len(curves[i][0]) if i in curves else 0 for i in selected], dtype=np.int64)
    objects = pd.DataFrame(
        {
            "ogle_id": ident["ogle_id"].astype(object),
            "field": ident["target"].astype(object),
            "ra": ident["ra"].to_numpy(np.float64),
            "dec": ident["dec"].to_numpy(np.float64),
            "var_class": ident["var_class"].astype(object),
            "subtype": ident["subtype"].astype(object).where(ident["subtype"].notna(), None),
            "period": ident["period"].to_numpy(np.float64),
            "i_mag": ident["i_mag"].to_numpy(np.float64),
            "v_i": (ident["v_mag"] - ident["i_mag"]).to_numpy(np.float64),
            "n_epochs": n_epochs,
        }
    )
    object_table = pa.Table.from_pandas(objects, schema=OBJECT_SCHEMA, preserve_index=False)
    light_curve_table = _light_curve_table(selected, curves, n_epochs)

    if record is None:
        from latentsky.provenance.record import build_record

        record = build_record(
            rule="fetch_ogle3",
            params={
                "survey": survey,
                "target": target,
                "var_class": var_class,
                "base_url": base_url,
                "light_curves": light_curves,
                "ids": selected if ids is not None else None,
            },
        )
    fetch = {
        "survey": survey,
        "directory_url": directory,
        "ident": files["ident.dat"],
        "period_tables": [files[n] for n in table_names],
        "light_curves": light_curves,
    }
    _write(light_curve_table, out_lc, record, fetch)
    try:
        _write(object_table, out_obj, record, fetch)
    except BaseException:
        # Both files or neither: a light-curve table without its objects table is not an output.
        out_lc.unlink(missing_ok=True)
        raise
    log.info(
        "%s: %d objects, %d epochs written to %s and %s",
        directory,
        len(objects),
        int(n_epochs.sum()),
        out_obj,
        out_lc,
    )
    return Ogle3Catalog(
        objects_path=out_obj,
        light_curves_path=out_lc,
        directory_url=directory,
        period_tables=tuple(files[n] for n in table_names),
        n_objects=len(objects),
        n_epochs=int(n_epochs.sum()),
        without_light_curve=without_lc,
        without_period=without_period,
    )


def _light_curve_table(
    selected: list[str], curves: Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray]], n_epochs: np.ndarray
) -> pa.Table:
    """One long table in ``selected`` order (already sorted by ID; each curve sorted by time).

    The ID column is built from integer codes in Arrow, not from one Python string per epoch: a class such as
    the bulge OSARGs has ~10^8 epochs.
    """
    present = [i for i in selected if i in curves]

    def column(k: int) -> np.ndarray:
        return np.concatenate([curves[i][k] for i in present]) if present else np.empty(0, np.float64)

    codes = np.repeat(np.arange(len(selected), dtype=np.int32), n_epochs)
    ogle_id = pa.DictionaryArray.from_arrays(pa.array(codes), pa.array(selected, pa.string())).cast(
        pa.string()
    )
    return pa.Table.from_arrays([ogle_id, column(0), column(1), column(2)], schema=LIGHT_CURVE_SCHEMA)


def _write(table: pa.Table, path: Path, record: Mapping[str, Any], fetch: Mapping[str, Any]) -> None:
    metadata = dict(table.schema.metadata or {})
    metadata[b"latentsky.fetch"] = json.dumps(dict(fetch), sort_keys=True).encode()
    write_parquet(table.replace_schema_metadata(metadata), path, record)


__all__ = [
    "DEFAULT_OGLE3_URL",
    "DEFAULT_OGLE4_URL",
    "LIGHT_CURVE_COLUMNS",
    "OGLE3_CLASSES",
    "OGLE3_TARGETS",
    "SURVEYS",
    "CatalogEntry",
    "Ogle3Catalog",
    "fetch_ogle3_catalog",
    "ogle3_directory_url",
    "parse_catalog_entry",
]
