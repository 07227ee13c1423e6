"""The ``latentsky`` command line: tools a user runs beside the workflow.

``latentsky --help`` lists the commands; each command has its own ``--help``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from latentsky import __version__


def _cmd_audit(args: argparse.Namespace) -> int:
    from latentsky.audit import audit

    result = audit(args.path, manifest=args.manifest, root=args.root)
    if not args.quiet:
        print(f"workflow root: {result.root}")
        print(f"manifest: {result.manifest or 'not found'}")
        print()
        print("\n".join(result.lines))
        print()
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if result.ok:
        print(
            f"audit passed: {result.target} and {result.files_checked - 1} file(s) in its lineage as recorded"
        )
        return 0
    first = result.first_mismatch
    print(f"audit FAILED: {first}", file=sys.stderr)
    if len(result.mismatches) > 1:
        print(
            f"({len(result.mismatches) - 1} further mismatch(es) listed in the tree above)", file=sys.stderr
        )
    return 1


def _cmd_provenance(args: argparse.Namespace) -> int:
    from latentsky.outputs import ProvenanceError, read_provenance

    try:
        record = read_provenance(args.path)
    except ProvenanceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(record, indent=2, sort_keys=True))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="latentsky",
        description="latentsky: survey data to released catalogs with deep generative models. "
        "Run the workflow with `snakemake` (see README); these commands work beside it.",
    )
    parser.add_argument("--version", action="version", version=f"latentsky {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser(
        "audit",
        help="check a released file against the manifest and every file in its lineage",
        description="Check PATH's hash against the release manifest, then recursively check that every "
        "input recorded in its provenance still exists with the recorded sha256, up to the raw sources. "
        "Prints the lineage as a tree; exits 1 naming the first mismatch.",
    )
    p.add_argument("path", help="a released file (Parquet, HDF5, JSON, PNG or checkpoint)")
    p.add_argument(
        "--manifest", help="release manifest (default: results/release/manifest.parquet under the root)"
    )
    p.add_argument(
        "--root",
        help="workflow root that recorded paths are relative to "
        "(default: the nearest ancestor of PATH holding results/release/manifest.parquet)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="print only the verdict")
    p.set_defaults(func=_cmd_audit)

    p = sub.add_parser("provenance", help="print the provenance record embedded in a file as JSON")
    p.add_argument("path")
    p.set_defaults(func=_cmd_provenance)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return int(args.func(args))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
