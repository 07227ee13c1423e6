"""Tables in the layout of ESA's DR2_RUWE_V1 release, for tests of the u0 reader and fetcher.

The release's readme (L. Lindegren, 2018 Aug 10) describes them: comma-separated values with a single header
line; ``table_u0_g_col.txt`` has the columns ``g_mag, bp_rp, u0`` for G = 3.60(0.01)21.00 and
C = −1.0(0.1)10.0 (193,251 data lines, G varying slowest), ``table_u0_g.txt`` the columns ``g_mag, u0`` on
the same G grid; G and C are bin centres. The real file's size (5,375,015 bytes, ≈ 28 bytes a line) says u0
is written at full double precision. The u0 values here are chosen by each test, so that the answers are
known exactly.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable

import numpy as np

#: ESA's grids (readme): G = 3.60(0.01)21.00, C = −1.0(0.1)10.0.
ESA_G = np.round(np.arange(360, 2101) / 100.0, 2)
ESA_COLOUR = np.round(np.arange(-10, 101) / 10.0, 1)


def table_u0_g_col(
    u0: Callable[[np.ndarray, np.ndarray], np.ndarray], g: np.ndarray = ESA_G, colour: np.ndarray = ESA_COLOUR
) -> bytes:
    """``table_u0_g_col.txt``: ``g_mag,bp_rp,u0``, G varying slowest, u0 = ``u0(G, C)``."""
    gg, cc = np.meshgrid(g, colour, indexing="ij")
    values = u0(gg, cc)
    lines = ["g_mag,bp_rp,u0"]
    lines += [
        f"{a:.2f},{b:.1f},{v!r}"
        for a, b, v in zip(gg.ravel(), cc.ravel(), values.ravel().tolist(), strict=True)
    ]
    return ("\n".join(lines) + "\n").encode("ascii")


def table_u0_g(u0: Callable[[np.ndarray], np.ndarray], g: np.ndarray = ESA_G) -> bytes:
    """``table_u0_g.txt``: ``g_mag,u0``."""
    lines = ["g_mag,u0"] + [f"{a:.2f},{v!r}" for a, v in zip(g, u0(g).tolist(), strict=True)]
    return ("\n".join(lines) + "\n").encode("ascii")


def dr2_ruwe_zip(members: dict[str, bytes], folder: str = "DR2_RUWE_V1/", stored: bool = False) -> bytes:
    """A zip of ``members`` (name → bytes) inside ``folder``, as the release packs its readme and tables."""
    buffer = io.BytesIO()
    method = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(buffer, "w", compression=method) as zf:
        if folder:
            zf.writestr(folder, b"")
        for name, data in members.items():
            zf.writestr(folder + name, data)
    return buffer.getvalue()
