"""Audit a released file: is it the file the release lists, and is every file in its lineage unchanged?

``latentsky audit PATH`` (see :mod:`latentsky.cli`):

1. finds the release manifest (``results/release/manifest.parquet`` under the workflow root, found by
   walking up from PATH, or given explicitly) and checks PATH's sha256 and size against its row;
2. reads PATH's provenance record and, for every recorded input, checks that the file still exists at
   the recorded path (relative to the workflow root) with the recorded size and sha256;
3. recurses into every input that carries a record of its own, up to the raw sources (files without a
   record, e.g. a download or a shipped resource, are leaves);
4. prints the lineage as a tree and reports the first mismatch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from latentsky.provenance.files import ProvenanceError, read_provenance
from latentsky.provenance.manifest import MANIFEST_RELPATH, read_manifest
from latentsky.provenance.record import sha256_file


@dataclass
class Mismatch:
    """One thing that is not as recorded."""

    path: str
    problem: str
    recorded_by: str | None = None  # the file whose record (or the manifest) made the claim

    def __str__(self) -> str:
        where = f" (recorded in {self.recorded_by})" if self.recorded_by else ""
        return f"{self.path}: {self.problem}{where}"


@dataclass
class AuditResult:
    target: str
    root: Path
    manifest: Path | None
    lines: list[str] = field(default_factory=list)
    mismatches: list[Mismatch] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    files_checked: int = 0

    @property
    def ok(self) -> bool:
        return not self.mismatches

    @property
    def first_mismatch(self) -> Mismatch | None:
        return self.mismatches[0] if self.mismatches else None


def find_root(path: Path) -> Path | None:
    """Nearest ancestor of ``path`` holding ``results/release/manifest.parquet``."""
    for parent in [path.parent, *path.parent.parents]:
        if (parent / MANIFEST_RELPATH).is_file():
            return parent
    return None


def audit(
    path: str | os.PathLike,
    manifest: str | os.PathLike | None = None,
    root: str | os.PathLike | None = None,
    lineage_only: bool = False,
) -> AuditResult:
    """Audit ``path``; see the module docstring. Never raises for a mismatch: it is in the result.

    ``lineage_only`` skips step 1, for a file made beside the workflow rather than released by it (e.g.
    ``latentsky generate-lightcurves`` run from the workflow root on released models): its own hash is
    then on record nowhere, but every file it was made from is checked as usual.
    """
    target = Path(os.path.abspath(path))
    if root is None:
        if manifest is not None:
            # <root>/results/release/manifest.parquet
            root_path = Path(os.path.abspath(manifest)).parents[len(MANIFEST_RELPATH.parts) - 1]
        else:
            root_path = find_root(target) or Path.cwd()
    else:
        root_path = Path(os.path.abspath(root))
    manifest_path = Path(manifest) if manifest is not None else root_path / MANIFEST_RELPATH
    result = AuditResult(target=_rel(target, root_path), root=root_path, manifest=None)

    if not target.is_file():
        result.mismatches.append(Mismatch(result.target, "file does not exist"))
        return result

    # 1. The released file against the manifest.
    target_hash = sha256_file(target)
    if lineage_only:
        manifest_note = "not released (lineage only)"
    elif not manifest_path.is_file():
        result.mismatches.append(Mismatch(_rel(manifest_path, root_path), "release manifest not found"))
        manifest_note = "no manifest"
    else:
        result.manifest = manifest_path
        rows = read_manifest(manifest_path)
        row = rows.get(result.target)
        if row is None:
            result.mismatches.append(
                Mismatch(result.target, "not listed in the release manifest", _rel(manifest_path, root_path))
            )
            manifest_note = "NOT IN MANIFEST"
        elif row["sha256"] != target_hash or row["size"] != target.stat().st_size:
            result.mismatches.append(
                Mismatch(
                    result.target,
                    f"sha256 {target_hash[:12]}… differs from the manifest's {row['sha256'][:12]}…",
                    _rel(manifest_path, root_path),
                )
            )
            manifest_note = "HASH DIFFERS FROM MANIFEST"
        else:
            manifest_note = "matches manifest"
    result.files_checked += 1

    # 2–4. The lineage.
    try:
        record = read_provenance(target)
    except ProvenanceError as exc:
        result.mismatches.append(Mismatch(result.target, f"no provenance record ({exc})"))
        result.lines.append(f"{result.target}  [{target_hash[:12]}] {manifest_note}")
        return result
    result.lines.append(f"{result.target}  [{target_hash[:12]}] {manifest_note}")
    _describe_record(record, result, indent="    ")
    _walk_inputs(record, result.target, result, prefix="", seen={result.target})
    return result


def _walk_inputs(
    record: dict[str, Any], owner: str, result: AuditResult, prefix: str, seen: set[str]
) -> None:
    inputs = record.get("inputs", [])
    for i, entry in enumerate(inputs):
        last = i == len(inputs) - 1
        branch = "└── " if last else "├── "
        child_prefix = prefix + ("    " if last else "│   ")
        rel = entry["path"]
        p = Path(rel) if os.path.isabs(rel) else result.root / rel
        result.files_checked += 1
        if not p.is_file():
            result.mismatches.append(Mismatch(rel, "missing", owner))
            result.lines.append(f"{prefix}{branch}{rel}  MISSING")
            continue
        if p.stat().st_size != entry["size"]:
            result.mismatches.append(
                Mismatch(rel, f"size {p.stat().st_size} differs from recorded {entry['size']}", owner)
            )
            result.lines.append(f"{prefix}{branch}{rel}  SIZE DIFFERS")
            continue
        digest = sha256_file(p)
        if digest != entry["sha256"]:
            result.mismatches.append(
                Mismatch(rel, f"sha256 {digest[:12]}… differs from recorded {entry['sha256'][:12]}…", owner)
            )
            result.lines.append(f"{prefix}{branch}{rel}  HASH DIFFERS")
            continue
        if rel in seen:
            result.lines.append(f"{prefix}{branch}{rel}  [{digest[:12]}] ok (lineage shown above)")
            continue
        seen.add(rel)
        try:
            child = read_provenance(p)
        except ProvenanceError:
            result.lines.append(f"{prefix}{branch}{rel}  [{digest[:12]}] ok (source)")
            continue
        result.lines.append(f"{prefix}{branch}{rel}  [{digest[:12]}] ok")
        _describe_record(child, result, indent=child_prefix + "    ")
        _walk_inputs(child, rel, result, child_prefix, seen)


def _describe_record(record: dict[str, Any], result: AuditResult, indent: str) -> None:
    code = record.get("code", {})
    commit = (code.get("git_commit") or "unknown")[:10]
    dirty = code.get("git_dirty")
    state = "dirty" if dirty else ("clean" if dirty is False else "unknown state")
    wildcards = record.get("wildcards") or {}
    wc = " " + ",".join(f"{k}={v}" for k, v in sorted(wildcards.items())) if wildcards else ""
    result.lines.append(
        f"{indent}rule {record.get('rule')}{wc} · code {commit} ({state}) · "
        f"seed {record.get('seed')} · {record.get('device')} · {record.get('created_utc')}"
    )
    warning = f"rule {record.get('rule')}{wc} ran from a checkout with uncommitted changes ({commit})"
    if dirty and warning not in result.warnings:
        result.warnings.append(warning)


def _rel(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()
