"""Fetchers of real survey data: they download the archives' own files, atomically, and name the URL when
anything goes wrong. Each is tested offline against recorded real responses served over a loopback HTTP
server (DESIGN.md, "Conventions").

* :mod:`latentsky.fetch.gaia_archive` — Gaia gaia_source by HEALPix partition (bulk files or TAP);
* :mod:`latentsky.fetch.gaia_u0` — ESA's DR2 RUWE normalisation tables (DR2_RUWE_V1);
* :mod:`latentsky.fetch.bayestar` — the Bayestar 3-D dust maps through dustmaps' own fetch.
"""

from latentsky.fetch import gaia_archive
from latentsky.fetch.bayestar import fetch_bayestar
from latentsky.fetch.gaia_archive import *  # noqa: F403 - the module's public API, listed in its __all__

__all__ = [*gaia_archive.__all__, "fetch_bayestar"]
