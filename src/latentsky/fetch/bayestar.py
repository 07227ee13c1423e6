"""The real Bayestar map, fetched with dustmaps' own code (Green et al. 2019; dustmaps ``bayestar.fetch``).

dustmaps downloads into its configured data directory (``<data_dir>/bayestar/<version>.h5``). We point
that directory at a scratch folder beside the output, let dustmaps fetch and verify the file (it checks
the Dataverse MD5), then move the file onto the output path, so a failed download never leaves a partial
map where the workflow expects one.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

BAYESTAR_VERSIONS = ("bayestar2019", "bayestar2017", "bayestar2015")


def fetch_bayestar(out_path: str | os.PathLike, version: str = "bayestar2019") -> Path:
    """Download a Bayestar map with ``dustmaps.bayestar.fetch`` and move it to ``out_path``."""
    if version not in BAYESTAR_VERSIONS:
        raise ValueError(f"unknown Bayestar version {version!r}; expected one of {BAYESTAR_VERSIONS}")
    from dustmaps import bayestar
    from dustmaps.config import config

    out = Path(out_path)
    scratch = out.parent / f".{out.name}.download"
    scratch.mkdir(parents=True, exist_ok=True)
    previous = config["data_dir"]
    config["data_dir"] = str(scratch)
    try:
        bayestar.fetch(version=version)
    finally:
        config["data_dir"] = previous
    fetched = scratch / "bayestar" / f"{version}.h5"
    if not fetched.is_file():
        raise FileNotFoundError(f"dustmaps' fetch finished but {fetched} does not exist")
    os.replace(fetched, out)
    shutil.rmtree(scratch, ignore_errors=True)
    return out
