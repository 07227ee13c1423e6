"""Provenance records: where a file came from, precisely enough to audit it later.

Every file the workflow writes carries one record (DESIGN.md, "Conventions"): the rule and wildcards that
made it, the params, a hash of the whole config, the sha256 and size of every input, the code version (git
commit and dirty flag, package version), the versions of Python and the key packages, the random seed, the
device, and the creation time. The record is plain JSON so it survives in Parquet key-value metadata, HDF5
attributes, torch checkpoints and JSON documents alike; :mod:`latentsky.provenance.files` puts it there.

Paths inside a record are stored relative to the workflow root (the directory Snakemake runs in), so a
record stays valid when the whole tree is moved or copied to another machine.
"""

from __future__ import annotations

import datetime as _dt
import functools
import hashlib
import json
import os
import platform
import subprocess
from collections.abc import Iterable, Mapping
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

#: Version of the record layout; bump when keys change meaning.
SCHEMA_VERSION = 1

#: Packages whose versions decide what a file contains.
KEY_PACKAGES = (
    "latentsky",
    "numpy",
    "scipy",
    "pandas",
    "pyarrow",
    "astropy",
    "astropy-healpix",
    "dustmaps",
    "h5py",
    "torch",
    "nflows",
    "spender",
    "scikit-learn",
    "snakemake",
)

#: Keys whose values change from run to run by nature; determinism comparisons ignore exactly these.
VOLATILE_KEYS = ("created_utc", "host", "runtime")

_HASH_CHUNK = 1 << 22


def creation_time() -> str:
    """UTC creation time for a record (ISO 8601, seconds): now, or ``SOURCE_DATE_EPOCH`` when set — the
    reproducible-builds convention (https://reproducible-builds.org/specs/source-date-epoch/), with which
    a rerun of a job writes a byte-identical file."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch is not None:
        try:
            moment = _dt.datetime.fromtimestamp(int(epoch), _dt.timezone.utc)
        except ValueError as exc:
            raise ValueError(
                f"SOURCE_DATE_EPOCH must be an integer (seconds since 1970), not {epoch!r}"
            ) from exc
    else:
        moment = _dt.datetime.now(_dt.timezone.utc)
    return moment.isoformat(timespec="seconds")


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes, read in 4 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def describe_file(path: str | os.PathLike, root: str | os.PathLike | None = None) -> dict[str, Any]:
    """``{"path", "sha256", "size"}`` of a file, with ``path`` relative to ``root`` when it lies inside."""
    p = Path(path)
    return {"path": relative_path(p, root), "sha256": sha256_file(p), "size": p.stat().st_size}


def relative_path(path: str | os.PathLike, root: str | os.PathLike | None = None) -> str:
    """``path`` as a POSIX string relative to ``root`` (default: cwd) if inside it, else absolute."""
    p = Path(os.path.abspath(path))
    base = Path(os.path.abspath(root if root is not None else os.getcwd()))
    try:
        return p.relative_to(base).as_posix()
    except ValueError:
        return p.as_posix()


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys and no insignificant whitespace: the form that is hashed."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=_json_default)


def _json_default(obj: Any) -> Any:
    # numpy scalars, Paths and Snakemake's Namedlist/ Wildcards all reduce to plain JSON types.
    if hasattr(obj, "item") and callable(obj.item):
        return obj.item()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, Mapping):
        return dict(obj)
    if isinstance(obj, (set, frozenset, tuple)) or hasattr(obj, "__iter__"):
        return list(obj)
    return str(obj)


def config_hash(config: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON of a (validated, defaults-filled) config."""
    return hashlib.sha256(canonical_json(config).encode()).hexdigest()


@functools.lru_cache(maxsize=8)
def code_version(repo_dir: str | None = None) -> dict[str, Any]:
    """Git commit and dirty flag of the workflow checkout, and the installed package version.

    ``repo_dir`` defaults to the directory holding this module's source tree, which is the workflow
    checkout when latentsky is installed editable (``make`` does that); otherwise the commit is ``None``
    and only the package version identifies the code.
    """
    from latentsky import __version__

    where = repo_dir or str(Path(__file__).resolve().parents[2])
    commit: str | None = None
    dirty: bool | None = None
    try:
        commit = _git(where, "rev-parse", "HEAD")
        # Untracked files under results/ are ignored by .gitignore, so only code changes count as dirty.
        dirty = bool(_git(where, "status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.CalledProcessError):
        pass
    return {"git_commit": commit, "git_dirty": dirty, "package_version": __version__}


def _git(where: str, *args: str) -> str:
    out = subprocess.run(["git", "-C", where, *args], check=True, capture_output=True, text=True, timeout=30)
    return out.stdout.strip()


@functools.lru_cache(maxsize=1)
def environment_versions() -> dict[str, Any]:
    """Python version, platform and versions of :data:`KEY_PACKAGES` that are installed."""
    packages = {}
    for name in KEY_PACKAGES:
        try:
            packages[name] = version(name)
        except PackageNotFoundError:
            continue
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "packages": packages,
    }


def build_record(
    *,
    rule: str,
    inputs: Iterable[str | os.PathLike] = (),
    wildcards: Mapping[str, Any] | None = None,
    params: Mapping[str, Any] | None = None,
    config: Mapping[str, Any] | None = None,
    seed: int | None = None,
    device: str = "cpu",
    root: str | os.PathLike | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Assemble a provenance record. Hashes every input file now, so call it once inputs are final.

    Parameters
    ----------
    rule : name of the Snakemake rule (or CLI command) that writes the file.
    inputs : files the output was computed from; each is recorded with sha256 and size.
    wildcards, params : the job's wildcards and params (JSON-able after conversion).
    config : the run's config; only its hash is stored, the values live in params.
    seed : the random seed the job used, if any.
    device : ``"cpu"`` or e.g. ``"cuda:0 (NVIDIA H100)"``.
    root : the workflow root paths are made relative to (default: cwd).
    extra : further JSON-able facts a stage wants on record (e.g. training step).
    """
    missing = [os.fspath(p) for p in inputs if not Path(p).is_file()]
    if missing:
        raise FileNotFoundError(f"provenance: input file(s) not found: {', '.join(missing)}")
    record = {
        "schema_version": SCHEMA_VERSION,
        "rule": rule,
        "wildcards": json.loads(canonical_json(dict(wildcards or {}))),
        "params": json.loads(canonical_json(dict(params or {}))),
        "config_sha256": config_hash(config) if config is not None else None,
        "inputs": [describe_file(p, root) for p in inputs],
        "code": code_version(),
        "environment": environment_versions(),
        "seed": seed,
        "device": device,
        "host": platform.node(),
        "created_utc": creation_time(),
    }
    if extra:
        record["extra"] = json.loads(canonical_json(dict(extra)))
    return record


def record_from_snakemake(
    smk: Any,
    *,
    seed: int | None = None,
    device: str = "cpu",
    extra: Mapping[str, Any] | None = None,
    leave_out: Iterable[str | os.PathLike] = (),
) -> dict[str, Any]:
    """Provenance record for the job behind a Snakemake ``script:`` object.

    Inputs are every file in ``smk.input`` (directories are expanded to the files inside them, sorted)
    except those in ``leave_out``: temporary intermediates the workflow deletes once this job has run,
    which an audit could not find (the job then lists the inputs they were computed from instead).
    """
    skip = {os.fspath(p) for p in leave_out}
    inputs: list[Path] = []
    for item in smk.input:
        if os.fspath(item) in skip:
            continue
        p = Path(item)
        if p.is_dir():
            inputs.extend(sorted(f for f in p.rglob("*") if f.is_file()))
        else:
            inputs.append(p)
    params = {k: v for k, v in smk.params.items()} if hasattr(smk.params, "items") else {}
    wildcards = {k: v for k, v in smk.wildcards.items()} if hasattr(smk.wildcards, "items") else {}
    return build_record(
        rule=smk.rule,
        inputs=inputs,
        wildcards=wildcards,
        params=params,
        config=smk.config,
        seed=seed,
        device=device,
        extra=extra,
    )


def without_volatile(record: Mapping[str, Any]) -> dict[str, Any]:
    """The record less :data:`VOLATILE_KEYS`: what must agree between two runs of the same config."""
    return {k: v for k, v in record.items() if k not in VOLATILE_KEYS}
