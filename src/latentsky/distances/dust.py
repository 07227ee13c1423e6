"""Dust along a line of sight, as the distance model consumes it (paper 004, Sec. 3.2).

Three sources, chosen by config (``distances.dust``) or by the CLI for a user-supplied table:

* :class:`NoDust` — E = 0 everywhere (e.g. a nearby cluster such as the Hyades);
* :class:`ConstantDust` — one reddening E (Bayestar units) for every star at every distance beyond 0 (a
  foreground screen, e.g. an SFD value for a small field);
* :class:`BayestarDust` — a map in the Bayestar HDF5 layout (the real Bayestar19 or the simulated one),
  read by ``dustmaps.bayestar.BayestarQuery`` itself. Training uses the map's median (paper 004 Sec. 3:
  "the median dust estimate will not bias the model during training"); evaluation uses its posterior
  samples.

All return reddening in Bayestar units E; :mod:`latentsky.extinction` turns it into Gaia extinctions.
"""

from __future__ import annotations

import contextlib
import io
import os
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord


@dataclass
class Coverage:
    """Per-star map coverage: ``in_map`` False where the map has no data (footprint edge or hole)."""

    in_map: np.ndarray
    outside_footprint: np.ndarray  # south of the map's footprint (Bayestar: dec < −30°)
    in_hole: np.ndarray  # inside the footprint but the map has no pixel there


class DustSource(Protocol):
    """What the distance model needs from a dust map."""

    n_samples: int

    def coverage(self, ra_deg: np.ndarray, dec_deg: np.ndarray) -> Coverage: ...

    def samples(self, ra_deg: np.ndarray, dec_deg: np.ndarray, distance_pc: np.ndarray) -> np.ndarray:
        """Reddening samples, shape (N, n_samples); NaN where the map has no data."""
        ...

    def median(self, ra_deg: np.ndarray, dec_deg: np.ndarray, distance_pc: np.ndarray) -> np.ndarray:
        """Median reddening over the map's samples, shape (N,)."""
        ...

    def profiles(self, ra_deg: np.ndarray, dec_deg: np.ndarray) -> DustProfiles:
        """Every map sample along each star's whole line of sight (one lookup per star)."""
        ...

    def describe(self) -> dict: ...


@dataclass
class DustProfiles:
    """Reddening along each star's line of sight: every map sample at every distance-modulus node.

    One lookup per star gives E(d) at any distance, which is what the grid posterior needs
    (:mod:`latentsky.distances.grid`): the dust *at that distance*, with no iteration.
    :meth:`reddening` interpolates as ``dustmaps.bayestar.BayestarQuery`` does for a single distance —
    linear in distance modulus between nodes, E ∝ d in front of the first node, constant beyond the last —
    so both give the same numbers (tested).
    """

    dm_nodes: np.ndarray  # (M,) distance moduli of the map's nodes
    samples: np.ndarray  # (N, S, M) reddening, NaN where the map has no data
    dm_reliable_min: np.ndarray  # (N,) the map's reliable distance-modulus range at the star
    dm_reliable_max: np.ndarray
    converged: np.ndarray  # (N,) bool
    proportional_in_front: bool = True  # Bayestar: E ∝ d in front of the first node; False: constant

    @property
    def n_samples(self) -> int:
        return self.samples.shape[1]

    def reddening(self, dm: np.ndarray, median: bool = False) -> np.ndarray:
        """E at distance moduli ``dm`` (N, K): shape (N, S, K), or (N, 1, K) of the median profile."""
        prof = np.median(self.samples, axis=1, keepdims=True) if median else self.samples
        dm = np.asarray(dm, dtype=float)
        nodes = self.dm_nodes
        m = len(nodes)
        hi = np.clip(np.searchsorted(nodes, dm), 1, max(m - 1, 1)) if m > 1 else np.zeros(dm.shape, int)
        lo = np.maximum(hi - 1, 0)
        e_lo = np.take_along_axis(prof, lo[:, None, :], axis=2)
        e_hi = np.take_along_axis(prof, hi[:, None, :], axis=2)
        span = nodes[hi] - nodes[lo]
        t = np.clip((dm - nodes[lo]) / np.where(span > 0, span, 1.0), 0.0, 1.0)[:, None, :]
        out = (1.0 - t) * e_lo + t * e_hi
        if self.proportional_in_front:
            front = (dm < nodes[0])[:, None, :]
            scale = 10.0 ** (0.2 * np.minimum(dm - nodes[0], 0.0))[:, None, :]
            out = np.where(front, scale * prof[:, :, :1], out)
        return out

    def max_reddening(self) -> np.ndarray:
        """The largest reddening any sample reaches along the line of sight, (N,)."""
        return np.nanmax(self.samples.reshape(self.samples.shape[0], -1), axis=1, initial=0.0)


def uniform_profiles(n: int, reddening: float) -> DustProfiles:
    """The same reddening at every distance for ``n`` stars (no dust, or a foreground screen)."""
    return DustProfiles(
        dm_nodes=np.zeros(1),
        samples=np.full((n, 1, 1), float(reddening)),
        dm_reliable_min=np.full(n, -np.inf),
        dm_reliable_max=np.full(n, np.inf),
        converged=np.ones(n, bool),
        proportional_in_front=False,
    )


class NoDust:
    """E = 0: no extinction anywhere."""

    n_samples = 1

    def coverage(self, ra_deg: np.ndarray, dec_deg: np.ndarray) -> Coverage:
        n = np.shape(ra_deg)[0]
        return Coverage(np.ones(n, bool), np.zeros(n, bool), np.zeros(n, bool))

    def samples(self, ra_deg: np.ndarray, dec_deg: np.ndarray, distance_pc: np.ndarray) -> np.ndarray:
        return np.zeros((np.shape(ra_deg)[0], 1))

    def median(self, ra_deg: np.ndarray, dec_deg: np.ndarray, distance_pc: np.ndarray) -> np.ndarray:
        return np.zeros(np.shape(ra_deg)[0])

    def profiles(self, ra_deg: np.ndarray, dec_deg: np.ndarray) -> DustProfiles:
        return uniform_profiles(np.shape(ra_deg)[0], 0.0)

    def describe(self) -> dict:
        return {"kind": "none"}


@dataclass
class ConstantDust:
    """The same reddening E for every star (a foreground screen); no map uncertainty."""

    reddening: float
    n_samples: int = 1

    def __post_init__(self) -> None:
        if not np.isfinite(self.reddening) or self.reddening < 0:
            raise ValueError(f"constant reddening must be finite and ≥ 0, got {self.reddening}")

    def coverage(self, ra_deg: np.ndarray, dec_deg: np.ndarray) -> Coverage:
        return NoDust().coverage(ra_deg, dec_deg)

    def samples(self, ra_deg: np.ndarray, dec_deg: np.ndarray, distance_pc: np.ndarray) -> np.ndarray:
        return np.full((np.shape(ra_deg)[0], 1), float(self.reddening))

    def median(self, ra_deg: np.ndarray, dec_deg: np.ndarray, distance_pc: np.ndarray) -> np.ndarray:
        return np.full(np.shape(ra_deg)[0], float(self.reddening))

    def profiles(self, ra_deg: np.ndarray, dec_deg: np.ndarray) -> DustProfiles:
        return uniform_profiles(np.shape(ra_deg)[0], self.reddening)

    def describe(self) -> dict:
        return {"kind": "constant", "reddening": float(self.reddening)}


class BayestarDust:
    """A Bayestar-layout HDF5 map read through ``dustmaps.bayestar.BayestarQuery``.

    Parameters
    ----------
    path : the map file (``bayestar2019.h5`` or the simulated ``bayestar.h5``).
    max_samples : load at most this many posterior samples per pixel (memory; None = all).
    footprint_min_dec : southern limit of the footprint in ICRS dec, used to tell "outside the footprint"
        from "a hole inside it" when the map has no data (Pan-STARRS 1: −30°).
    """

    def __init__(
        self, path: str | os.PathLike, max_samples: int | None = None, footprint_min_dec: float = -30.0
    ) -> None:
        from dustmaps.bayestar import BayestarQuery

        self.path = os.fspath(path)
        if not os.path.isfile(self.path):
            raise FileNotFoundError(f"dust map {self.path} does not exist")
        # BayestarQuery prints progress to stdout; keep it out of catalog jobs' stdout.
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                self._query = BayestarQuery(
                    map_fname=self.path, max_samples=max_samples, version="bayestar2019"
                )
        except (OSError, KeyError, ValueError) as exc:
            # Not HDF5, or HDF5 without /pixel_info, /samples, … : say which file and what it must be.
            raise ValueError(
                f"dust map {self.path}: not a Bayestar-layout HDF5 map (/pixel_info, /samples, /best_fit): {exc}"
            ) from None
        self.n_samples = int(self._query._n_samples)
        self.footprint_min_dec = footprint_min_dec

    def _coords(self, ra_deg: np.ndarray, dec_deg: np.ndarray, distance_pc: np.ndarray | None) -> SkyCoord:
        kw = {} if distance_pc is None else {"distance": np.asarray(distance_pc, dtype=float) * u.pc}
        return SkyCoord(ra=np.asarray(ra_deg) * u.deg, dec=np.asarray(dec_deg) * u.deg, frame="icrs", **kw)

    def coverage(self, ra_deg: np.ndarray, dec_deg: np.ndarray) -> Coverage:
        # A distance inside the map's range; NaN comes back exactly where no pixel covers the position.
        probe = self._query(self._coords(ra_deg, dec_deg, np.full(np.shape(ra_deg), 1000.0)), mode="best")
        in_map = np.isfinite(np.asarray(probe, dtype=float))
        south = np.asarray(dec_deg) < self.footprint_min_dec
        return Coverage(in_map=in_map, outside_footprint=~in_map & south, in_hole=~in_map & ~south)

    def samples(self, ra_deg: np.ndarray, dec_deg: np.ndarray, distance_pc: np.ndarray) -> np.ndarray:
        if np.shape(ra_deg)[0] == 0:
            return np.zeros((0, self.n_samples))
        out = self._query(self._coords(ra_deg, dec_deg, distance_pc), mode="samples")
        return np.asarray(out, dtype=float).reshape(np.shape(ra_deg)[0], self.n_samples)

    def median(self, ra_deg: np.ndarray, dec_deg: np.ndarray, distance_pc: np.ndarray) -> np.ndarray:
        if np.shape(ra_deg)[0] == 0:
            return np.zeros(0)
        return np.asarray(self._query(self._coords(ra_deg, dec_deg, distance_pc), mode="median"), dtype=float)

    def profiles(self, ra_deg: np.ndarray, dec_deg: np.ndarray) -> DustProfiles:
        n = np.shape(ra_deg)[0]
        nodes = np.asarray(self._query.distmods.value, dtype=float)
        if n == 0:
            empty = np.zeros(0)
            return DustProfiles(
                nodes, np.zeros((0, self.n_samples, len(nodes))), empty, empty, empty.astype(bool)
            )
        values, flags = self._query(self._coords(ra_deg, dec_deg, None), mode="samples", return_flags=True)
        values = np.asarray(values, dtype=float).reshape(n, self.n_samples, len(nodes))
        return DustProfiles(
            dm_nodes=nodes,
            samples=values,
            dm_reliable_min=np.asarray(flags["min_reliable_distmod"], dtype=float).reshape(n),
            dm_reliable_max=np.asarray(flags["max_reliable_distmod"], dtype=float).reshape(n),
            converged=np.asarray(flags["converged"], dtype=bool).reshape(n),
        )

    def describe(self) -> dict:
        return {"kind": "bayestar", "path": self.path, "n_samples": self.n_samples}


def dust_from_spec(
    kind: str, *, path: str | os.PathLike | None = None, reddening: float | None = None
) -> DustSource:
    """Build a dust source from a config/CLI description: ``none``, ``constant`` or ``bayestar``."""
    if kind == "none":
        return NoDust()
    if kind == "constant":
        if reddening is None:
            raise ValueError("dust kind 'constant' needs a reddening value (E, Bayestar units)")
        return ConstantDust(float(reddening))
    if kind == "bayestar":
        if path is None:
            raise ValueError("dust kind 'bayestar' needs the path of a Bayestar-layout HDF5 map")
        return BayestarDust(path)
    raise ValueError(f"unknown dust kind {kind!r}; expected 'none', 'constant' or 'bayestar'")
