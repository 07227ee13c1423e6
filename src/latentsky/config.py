"""Configuration helpers shared by the Snakefile, scripts, CLI and tests.

The JSON schema in ``config/schema.yaml`` is the single description of every key; Snakemake validates
against it (``snakemake.utils.validate``) before any job runs. :func:`load_config` does the same outside
Snakemake, with the same defaults, so the library and tests see exactly what a workflow run sees.
"""

from __future__ import annotations

import copy
import hashlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

#: Repository root when running from a checkout (editable install): config/ and resources/ live here.
REPO_ROOT = Path(__file__).resolve().parents[2]
SCHEMA_PATH = REPO_ROOT / "config" / "schema.yaml"


class ConfigError(ValueError):
    """A config value is missing, misspelt or of the wrong type; the message names the key."""


def derive_seed(master_seed: int, stage: str) -> int:
    """A 32-bit seed for ``stage`` derived from the master seed.

    Hash-based so that adding a stage never shifts the random streams of the others.
    """
    digest = hashlib.sha256(f"{int(master_seed)}:{stage}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


def dataclass_from_dict(cls: type, d: Mapping[str, Any], what: str) -> Any:
    """``cls(**d)`` for a dataclass, refusing unknown keys with an error naming them (``what`` says whose)."""
    import dataclasses

    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise ValueError(f"unknown {what} keys {unknown}; known keys: {sorted(known)}")
    return cls(**dict(d))


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``override`` merged into a copy of ``base``, recursively for nested mappings (as Snakemake does)."""
    merged = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def validate_config(config: dict[str, Any], schema_path: str | os.PathLike = SCHEMA_PATH) -> dict[str, Any]:
    """Validate ``config`` in place against the schema, filling in defaults, and return it.

    Uses Snakemake's own validator so that the library and the Snakefile agree on defaults.
    """
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate

    try:
        validate(config, str(schema_path), set_default=True)
    except WorkflowError as exc:
        raise ConfigError(str(exc)) from exc
    return config


def load_config(*paths: str | os.PathLike, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Read YAML config files (later ones override earlier ones), apply ``overrides``, validate."""
    config: dict[str, Any] = {}
    for p in paths:
        with open(p) as fh:
            loaded = yaml.safe_load(fh) or {}
        if not isinstance(loaded, Mapping):
            raise ConfigError(f"{p}: a config file must hold a mapping at top level")
        config = deep_merge(config, loaded)
    if overrides:
        config = deep_merge(config, overrides)
    return validate_config(config)
