"""Shared fixtures. Real survey files live in ../shared/data (see its README); tests read them there."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.fail(f"real-data fixtures not found at {SHARED_DATA} (the checkout must sit beside shared/)")
    return SHARED_DATA


def default_sources_config() -> dict:
    """The ``sources`` block with every schema default filled in (what the workflow sees)."""
    from latentsky.config import load_config

    return load_config(overrides={"seed": 0, "sources": {}})["sources"]
