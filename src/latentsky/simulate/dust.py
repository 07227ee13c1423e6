"""A simulated 3-D dust map with known truth, written in the Bayestar19 HDF5 layout.

The distance model of Cranmer et al. (paper 004, Sec. 2 and 3.2) reads dust through ``dustmaps``'
:class:`dustmaps.bayestar.BayestarQuery`. To score it against truth, the simulated survey needs a dust map
that the *same reader* can open, so this module

1. evaluates an analytic Galactic dust model — a smooth exponential layer plus a few dozen clouds — on the
   Bayestar19 grid: HEALPix pixels (NESTED, Galactic l, b) × distance-modulus edges;
2. **defines the truth as that pixelised map**: the truth reddening at any (l, b, d) is exactly what
   ``BayestarQuery(mode='best')`` interpolates from ``/best_fit`` (constant within a pixel, linear in DM
   between edges, ∝ d before the first edge, constant after the last):
   :meth:`SimulatedDustMap.reddening_truth`;
3. adds what a real Bayestar19 file carries around the best fit: posterior ``/samples``, convergence flags, a
   reliable distance range per pixel, the Pan-STARRS footprint (dec > −30°) and a few holes;
4. writes ``/pixel_info`` (with the ``DM_bin_edges`` attribute), ``/samples`` and ``/best_fit`` exactly as
   ``dustmaps/bayestar.py`` (v1.0.x) reads them — :func:`write_bayestar_h5`.

Reddening is in Bayestar's native E(g−r)-like units ("E"); :mod:`latentsky.extinction` converts it to Gaia
bands (A_G = 2.442 E per Bayestar unit, …).

Bayestar19 itself is multi-resolution (nside 64…1024 chosen by stellar density; Green et al. 2019, ApJ 887,
93). This simulation uses one nside; ``BayestarQuery`` handles a single level like any other.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import h5py
import numpy as np
from astropy import units as u
from astropy.coordinates import Galactic, SkyCoord
from astropy_healpix import HEALPix

from latentsky.provenance.files import atomic_output, set_hdf5_provenance

# --------------------------------------------------------------------------------------------------
# Distance grid
# --------------------------------------------------------------------------------------------------
#: Bayestar19 distance-modulus grid (Green et al. 2019): 120 samples of the cumulative reddening, 0.125 mag
#: apart, starting at DM = 4 (63 pc). Note that 120 edges at 0.125 mag end at DM = 18.875, not 19.0; the
#: grid is a parameter (:func:`bayestar_dm_bin_edges`) so a file with other edges is one call away.
BAYESTAR19_DM_START = 4.0
BAYESTAR19_DM_STEP = 0.125
BAYESTAR19_N_DM = 120


def bayestar_dm_bin_edges(
    start: float = BAYESTAR19_DM_START, step: float = BAYESTAR19_DM_STEP, n: int = BAYESTAR19_N_DM
) -> np.ndarray:
    """Distance-modulus edges of the map, shape ``(n,)``, float64, in mag.

    The cumulative reddening is tabulated at these distance moduli (``/pixel_info`` attribute
    ``DM_bin_edges``). Multiples of 1/8 mag are exact in binary floating point, so the default grid is
    represented exactly in both float32 and float64.
    """
    if n < 2 or not step > 0 or not np.isfinite(start):
        raise ValueError(f"DM grid needs n >= 2 and step > 0, got start={start}, step={step}, n={n}")
    return start + step * np.arange(n, dtype=np.float64)


# --------------------------------------------------------------------------------------------------
# Model constants (the config exposes the physically interesting ones; these set the look of the sky)
# --------------------------------------------------------------------------------------------------
#: Pan-STARRS 1 / Bayestar footprint: a pixel is observed if its centre has ICRS dec above this.
FOOTPRINT_MIN_DEC_DEG = -30.0
#: Height of the Sun above the dust mid-plane (Bennett & Bovy 2019 find 20.8 ± 0.3 pc), kpc. The same
#: default as the survey's ``disc.sun_z_kpc``.
DEFAULT_SUN_Z_KPC = 0.02

# Clouds: Gaussian blobs in angle that add a smooth step in distance. Concentrated to the plane like
# molecular clouds (|b| scatter ~10°), 150 pc – 3 kpc away (the range Bayestar resolves best), a few
# degrees across, E amplitudes from a wisp (0.03) to a dark cloud (0.5). Log-uniform where the range spans
# an order of magnitude.
CLOUD_B_SIGMA_DEG = 10.0
CLOUD_B_MAX_DEG = 45.0
CLOUD_SIZE_DEG = (1.5, 8.0)
CLOUD_DISTANCE_PC = (150.0, 3000.0)
CLOUD_AMPLITUDE = (0.03, 0.5)
#: Width of a cloud's sigmoid step in distance modulus (0.1 mag ≈ 5% in distance, a thin cloud).
CLOUD_STEP_WIDTH_DM = 0.1

# Reliable distance range (Bayestar's DM_reliable_min / max, Green et al. 2019 Sec. 4): the map is
# constrained only between the nearest and the farthest stars with good distances. Simple rule used here:
#   DM_reliable_min = 5.5 + 1.5 |sin b|      few nearby stars per pixel, fewer still off the plane;
#   DM_reliable_max = 17.5 − 2.617 E_far − 3 |sin b|, clipped to [DM_reliable_min + 1, last edge]:
#     PS1's r ≈ 21.5 limit for a M_r ≈ 4 tracer gives 17.5, heavy dust (A_r = 2.617 E, Green et al. 2019
#     Table 1) dims the tracers, and away from the plane the disc runs out of stars.
RELIABLE_MIN_BASE_DM = 5.5
RELIABLE_MIN_LAT_DM = 1.5
RELIABLE_MAX_BASE_DM = 17.5
A_R_PER_E = 2.617
RELIABLE_MAX_LAT_DM = 3.0
#: A pixel whose reddening at the last edge exceeds this is flagged not converged: Bayestar's sampler
#: struggles in the few plane sightlines with very heavy dust.
CONVERGED_MAX_E = 5.0

#: dtype of ``/pixel_info`` as ``dustmaps.bayestar.BayestarQuery`` reads it.
PIXEL_INFO_DTYPE = np.dtype(
    [
        ("nside", "i8"),
        ("healpix_index", "i8"),
        ("converged", "u1"),
        ("DM_reliable_min", "f4"),
        ("DM_reliable_max", "f4"),
    ]
)

#: Keys of the ``dust`` config block and what each must be.
DUST_CONFIG_KEYS = (
    "nside",
    "n_samples",
    "hole_fraction",
    "midplane_reddening_per_kpc",
    "scale_height_kpc",
    "n_clouds",
    "sample_scatter",
)


# --------------------------------------------------------------------------------------------------
# Analytic model
# --------------------------------------------------------------------------------------------------
def layer_reddening(
    b_deg: np.ndarray,
    distance_kpc: np.ndarray,
    midplane_per_kpc: float,
    scale_height_kpc: float,
    sun_z_kpc: float,
) -> np.ndarray:
    """Cumulative reddening of a plane-parallel exponential dust layer, integrated from the Sun.

    Density ``ρ(z) = ρ0 exp(−|z| / h)``; along a sightline ``z(s) = z_sun + s sin b``, so with
    ``F(z) = sign(z) h (1 − exp(−|z|/h))`` (the antiderivative of ``exp(−|z|/h)``)::

        E(b, d) = ρ0 [F(z_sun + d sin b) − F(z_sun)] / sin b,     → ρ0 d exp(−|z_sun|/h) as sin b → 0.

    The formula is exact also for sightlines that cross the mid-plane (b < 0 with the Sun above it), and it
    saturates at ``ρ0 h / |sin b|`` for high |b|.

    Parameters
    ----------
    b_deg : array
        Galactic latitude in degrees; broadcast against ``distance_kpc``.
    distance_kpc : array
        Distance from the Sun in kpc (≥ 0).
    midplane_per_kpc : float
        ρ0, reddening E per kpc in the mid-plane.
    scale_height_kpc : float
        h, exponential scale height in kpc.
    sun_z_kpc : float
        Height of the Sun above the mid-plane in kpc.

    Returns
    -------
    array
        Cumulative E, broadcast shape of the inputs, float64; non-decreasing in distance.
    """
    h = float(scale_height_kpc)
    sin_b = np.sin(np.deg2rad(np.asarray(b_deg, dtype=np.float64)))
    d = np.asarray(distance_kpc, dtype=np.float64)
    sin_b, d = np.broadcast_arrays(sin_b, d)

    def antiderivative(z: np.ndarray) -> np.ndarray:
        return np.sign(z) * h * -np.expm1(-np.abs(z) / h)

    dz = d * sin_b
    # Where the sightline barely changes height the difference quotient loses precision; use the limit.
    small = np.abs(dz) < 1e-6 * h
    with np.errstate(divide="ignore", invalid="ignore"):
        general = (antiderivative(sun_z_kpc + dz) - antiderivative(np.full_like(dz, sun_z_kpc))) / sin_b
    flat = d * np.exp(-abs(sun_z_kpc) / h)
    return float(midplane_per_kpc) * np.where(small, flat, general)


@dataclass(frozen=True)
class DustClouds:
    """Parameters of the simulated clouds, each array of shape ``(n_clouds,)``.

    Attributes
    ----------
    l_deg, b_deg : Galactic centre of each cloud, degrees.
    size_deg : Gaussian angular σ, degrees.
    distance_pc : distance of the cloud (centre of its sigmoid step), pc.
    amplitude : reddening E added behind the cloud centre.
    """

    l_deg: np.ndarray
    b_deg: np.ndarray
    size_deg: np.ndarray
    distance_pc: np.ndarray
    amplitude: np.ndarray

    @classmethod
    def draw(cls, n: int, rng: np.random.Generator) -> DustClouds:
        """Draw ``n`` clouds from the module's distributions (see ``CLOUD_*`` constants)."""
        l_deg = rng.uniform(0.0, 360.0, n)
        b_deg = np.zeros(n)
        todo = np.arange(n)
        while todo.size:  # truncated normal in b by resampling: |b| <= CLOUD_B_MAX_DEG
            b_deg[todo] = rng.normal(0.0, CLOUD_B_SIGMA_DEG, todo.size)
            todo = todo[np.abs(b_deg[todo]) > CLOUD_B_MAX_DEG]
        size = np.exp(rng.uniform(*np.log(CLOUD_SIZE_DEG), n))
        dist = np.exp(rng.uniform(*np.log(CLOUD_DISTANCE_PC), n))
        amp = np.exp(rng.uniform(*np.log(CLOUD_AMPLITUDE), n))
        return cls(l_deg, b_deg, size, dist, amp)

    def reddening(self, l_deg: np.ndarray, b_deg: np.ndarray, dm: np.ndarray) -> np.ndarray:
        """Cumulative cloud reddening ``(n_dir, n_dm)`` for directions ``(n_dir,)`` and DMs ``(n_dm,)``.

        Each cloud adds ``A exp(−θ²/2σ²) / (1 + exp(−(DM − DM_c)/w))``: a Gaussian in the angular distance θ
        from its centre times a sigmoid step in distance modulus, which is 0 at d → 0 and monotone, so the
        total stays non-decreasing with distance.
        """
        l_rad = np.deg2rad(np.asarray(l_deg, dtype=np.float64))[:, None]
        b_rad = np.deg2rad(np.asarray(b_deg, dtype=np.float64))[:, None]
        lc, bc = np.deg2rad(self.l_deg)[None, :], np.deg2rad(self.b_deg)[None, :]
        cos_theta = np.sin(b_rad) * np.sin(bc) + np.cos(b_rad) * np.cos(bc) * np.cos(l_rad - lc)
        theta = np.rad2deg(np.arccos(np.clip(cos_theta, -1.0, 1.0)))  # (n_dir, n_cloud)
        weight = self.amplitude * np.exp(-0.5 * (theta / self.size_deg) ** 2)
        dm_cloud = 5.0 * np.log10(self.distance_pc) - 5.0
        # Logistic via tanh: numerically safe for large |x|.
        step = 0.5 * (
            1.0 + np.tanh(0.5 * (np.asarray(dm)[:, None] - dm_cloud[None, :]) / CLOUD_STEP_WIDTH_DM)
        )
        return weight @ step.T


# --------------------------------------------------------------------------------------------------
# The map
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class SimulatedDustMap:
    """A full-sky pixelised dust map (the truth) plus what a Bayestar19 file carries around it.

    Attributes
    ----------
    nside : int
        HEALPix nside (NESTED ordering, Galactic frame, as Bayestar).
    dm_bin_edges : ndarray, shape (n_DM,)
        Distance moduli (mag) at which the cumulative reddening is tabulated.
    best_fit : ndarray, shape (12 nside², n_DM), float32
        Cumulative reddening E at each pixel centre and edge: **the truth**.
    samples : ndarray, shape (12 nside², n_samples, n_DM), float32
        Posterior-like draws around ``best_fit``; each is non-decreasing in DM.
    converged : ndarray, shape (12 nside²,), bool
    dm_reliable_min, dm_reliable_max : ndarray, shape (12 nside²,), float32
        Reliable distance-modulus range per pixel (rule in the module constants).
    footprint : ndarray, shape (12 nside²,), bool
        Pixel centre at ICRS dec > −30° (Pan-STARRS / Bayestar footprint).
    hole : ndarray, shape (12 nside²,), bool
        Footprint pixels left out of the observed map at random.
    clouds : DustClouds or None
        The clouds that shaped the map (``None`` for a map read back from files).
    """

    nside: int
    dm_bin_edges: np.ndarray
    best_fit: np.ndarray
    samples: np.ndarray
    converged: np.ndarray
    dm_reliable_min: np.ndarray
    dm_reliable_max: np.ndarray
    footprint: np.ndarray
    hole: np.ndarray
    clouds: DustClouds | None

    # ---------------------------------------------------------------------------------------- build
    @classmethod
    def from_config(
        cls,
        cfg: Mapping[str, Any],
        seed: int,
        *,
        dm_bin_edges: np.ndarray | None = None,
        sun_z_kpc: float = DEFAULT_SUN_Z_KPC,
    ) -> SimulatedDustMap:
        """Build the map from the ``dust`` config block.

        Parameters
        ----------
        cfg : mapping
            Keys (all required, no others): ``nside`` (power of two, 1…1024), ``n_samples`` (≥ 1),
            ``hole_fraction`` (in [0, 1)), ``midplane_reddening_per_kpc`` (E per kpc, ≥ 0),
            ``scale_height_kpc`` (> 0), ``n_clouds`` (≥ 0), ``sample_scatter`` (fractional std of the
            samples around the best fit, in [0, 1]).
        seed : int
            Seed of the numpy Generator; the same seed gives an identical map.
        dm_bin_edges : array, optional
            Distance-modulus grid, strictly increasing; default the Bayestar19 grid.
        sun_z_kpc : float
            Height of the Sun above the dust mid-plane, kpc.

        Raises
        ------
        ValueError
            Naming the offending key when the config is missing a key, has an unknown one or a bad value.
        """
        c = validate_dust_config(cfg)
        edges = (
            bayestar_dm_bin_edges() if dm_bin_edges is None else np.asarray(dm_bin_edges, dtype=np.float64)
        )
        if edges.ndim != 1 or edges.size < 2 or not np.all(np.diff(edges) > 0):
            raise ValueError("dm_bin_edges must be a strictly increasing 1-D array of at least 2 values")
        # Independent streams so that, e.g., changing n_samples does not move the clouds.
        ss_clouds, ss_holes, ss_samples = np.random.SeedSequence(int(seed)).spawn(3)
        clouds = DustClouds.draw(c["n_clouds"], np.random.default_rng(ss_clouds))

        nside = c["nside"]
        hp = HEALPix(nside=nside, order="nested", frame=Galactic())
        centres = hp.healpix_to_skycoord(np.arange(hp.npix))
        l_c, b_c = centres.l.deg, centres.b.deg

        d_kpc = 10.0 ** (0.2 * edges - 2.0)
        best = layer_reddening(
            b_c[:, None], d_kpc[None, :], c["midplane_reddening_per_kpc"], c["scale_height_kpc"], sun_z_kpc
        )
        if clouds.l_deg.size:
            best = best + clouds.reddening(l_c, b_c, edges)
        # Each term is non-decreasing in distance; enforce it bit-exactly after rounding to float32.
        best_fit = np.maximum.accumulate(best.astype(np.float32), axis=1)

        samples = _draw_samples(
            best_fit, c["n_samples"], c["sample_scatter"], np.random.default_rng(ss_samples)
        )

        footprint = centres.icrs.dec.deg > FOOTPRINT_MIN_DEC_DEG
        fp_idx = np.flatnonzero(footprint)
        n_holes = int(round(c["hole_fraction"] * fp_idx.size))
        hole = np.zeros(hp.npix, dtype=bool)
        if n_holes:
            hole[np.random.default_rng(ss_holes).choice(fp_idx, size=n_holes, replace=False)] = True

        abs_sin_b = np.abs(np.sin(np.deg2rad(b_c)))
        e_far = best_fit[:, -1].astype(np.float64)
        dm_min = np.minimum(RELIABLE_MIN_BASE_DM + RELIABLE_MIN_LAT_DM * abs_sin_b, edges[-1] - 1.0)
        dm_max = RELIABLE_MAX_BASE_DM - A_R_PER_E * e_far - RELIABLE_MAX_LAT_DM * abs_sin_b
        dm_max = np.clip(dm_max, dm_min + 1.0, max(edges[-1], dm_min.max() + 1.0))
        converged = e_far < CONVERGED_MAX_E

        return cls(
            nside=nside,
            dm_bin_edges=edges,
            best_fit=best_fit,
            samples=samples,
            converged=converged,
            dm_reliable_min=dm_min.astype(np.float32),
            dm_reliable_max=dm_max.astype(np.float32),
            footprint=footprint,
            hole=hole,
            clouds=clouds,
        )

    # ------------------------------------------------------------------------------------ geometry
    @property
    def npix(self) -> int:
        """Number of HEALPix pixels on the full sky, 12 nside²."""
        return 12 * self.nside**2

    @property
    def n_samples(self) -> int:
        """Number of posterior-like samples per pixel."""
        return int(self.samples.shape[1])

    @property
    def observed(self) -> np.ndarray:
        """Boolean mask ``(npix,)`` of the pixels written to the observed map: footprint minus holes."""
        return self.footprint & ~self.hole

    def _healpix(self) -> HEALPix:
        return HEALPix(nside=self.nside, order="nested", frame=Galactic())

    def pixel_index(self, l_deg: np.ndarray, b_deg: np.ndarray) -> np.ndarray:
        """NESTED HEALPix index (Galactic) of positions given in degrees; int64, shape of the inputs."""
        lon = np.asarray(l_deg, dtype=np.float64)
        lat = np.asarray(b_deg, dtype=np.float64)
        if np.any(~np.isfinite(lat)) or np.any(np.abs(lat) > 90.0) or np.any(~np.isfinite(lon)):
            raise ValueError("Galactic coordinates must be finite with |b| <= 90 deg")
        return np.asarray(self._healpix().lonlat_to_healpix(lon * u.deg, lat * u.deg), dtype=np.int64)

    def pixel_centres(self) -> tuple[np.ndarray, np.ndarray]:
        """Galactic ``(l, b)`` in degrees of all pixel centres, each of shape ``(npix,)``."""
        c = self._healpix().healpix_to_skycoord(np.arange(self.npix))
        return c.l.deg, c.b.deg

    def _radec_pixels(self, ra_deg: np.ndarray, dec_deg: np.ndarray) -> np.ndarray:
        gal = SkyCoord(
            ra=np.asarray(ra_deg, dtype=np.float64) * u.deg,
            dec=np.asarray(dec_deg, dtype=np.float64) * u.deg,
            frame="icrs",
        ).galactic
        return self.pixel_index(gal.l.deg, gal.b.deg)

    def in_footprint(self, ra_deg: np.ndarray, dec_deg: np.ndarray) -> np.ndarray:
        """Whether each ICRS position (degrees) falls in a footprint pixel (pixel centre dec > −30°).

        The footprint is a set of map pixels, as in the real Bayestar file, so near dec = −30° a star's
        own dec and its pixel's can sit on opposite sides of the limit. Returns bool, shape of the inputs.
        """
        return self.footprint[self._radec_pixels(ra_deg, dec_deg)]

    def in_hole(self, ra_deg: np.ndarray, dec_deg: np.ndarray) -> np.ndarray:
        """Whether each ICRS position (degrees) falls in a hole of the observed map. bool, input shape."""
        return self.hole[self._radec_pixels(ra_deg, dec_deg)]

    def has_data(self, ra_deg: np.ndarray, dec_deg: np.ndarray) -> np.ndarray:
        """Whether the observed map covers each ICRS position: footprint and not a hole (BayestarQuery
        on the observed file returns finite values exactly there). bool, shape of the inputs."""
        return self.observed[self._radec_pixels(ra_deg, dec_deg)]

    # -------------------------------------------------------------------------------------- truth
    def reddening_truth(self, l_deg: np.ndarray, b_deg: np.ndarray, distance_pc: np.ndarray) -> np.ndarray:
        """True cumulative reddening E at Galactic (l, b) and distance: the full-sky ``best_fit``
        interpolated exactly as ``dustmaps.bayestar.BayestarQuery.query(mode='best')`` does.

        Constant within a pixel; linear in distance modulus between edges; ``E(d) = E_0 d / d_0`` before the
        first edge ``d_0``; constant after the last. The code follows ``dustmaps/bayestar.py`` line for
        line (same DM formula, same ``searchsorted`` side) so that the two agree to float32 rounding; a test
        checks it against BayestarQuery on a written file.

        Parameters
        ----------
        l_deg, b_deg : array
            Galactic longitude and latitude in degrees.
        distance_pc : array
            Distance in pc, ≥ 0 (0 gives 0). Broadcast with ``l_deg`` and ``b_deg``.

        Returns
        -------
        ndarray
            E in Bayestar units, float64, broadcast shape of the inputs.
        """
        l_arr, b_arr, d_arr = np.broadcast_arrays(
            np.asarray(l_deg, dtype=np.float64),
            np.asarray(b_deg, dtype=np.float64),
            np.asarray(distance_pc, dtype=np.float64),
        )
        if not np.all(np.isfinite(d_arr) & (d_arr >= 0)):
            raise ValueError("distance_pc must be finite and >= 0")
        shape = d_arr.shape
        pix = self.pixel_index(l_arr.ravel(), b_arr.ravel())
        d = d_arr.ravel()
        edges = self.dm_bin_edges
        with np.errstate(divide="ignore"):
            dm = 5.0 * (np.log10(d / 1000.0) + 2.0)  # dustmaps: 5 (log10(d / kpc) + 2)
        k = np.searchsorted(edges, dm)
        out = np.empty(d.size, dtype=np.float64)
        near, far = k == 0, k == edges.size
        btw = ~near & ~far
        bf = self.best_fit
        out[near] = 10.0 ** (0.2 * (dm[near] - edges[0])) * bf[pix[near], 0]
        out[far] = bf[pix[far], -1]
        kb = k[btw]
        a = (edges[kb] - dm[btw]) / (edges[kb] - edges[kb - 1])
        out[btw] = (1.0 - a) * bf[pix[btw], kb] + a * bf[pix[btw], kb - 1]
        return out.reshape(shape)


def _draw_samples(
    best_fit: np.ndarray, n_samples: int, scatter: float, rng: np.random.Generator
) -> np.ndarray:
    """Posterior-like draws around ``best_fit``: shape ``(npix, n_samples, n_DM)``, float32.

    Each draw multiplies the best fit's non-negative increments by independent mean-one log-normal factors
    (scatter between distance bins) and the whole profile by one more (a coherent shift, which dominates
    the fractional scatter of the cumulative reddening at large distance). Both keep the profile
    non-decreasing, and the expectation of every draw is the best fit.
    """

    def mean_one_lognormal(size: tuple[int, ...]) -> np.ndarray:
        s2 = np.log1p(scatter**2)  # fractional std `scatter` ⇔ σ_ln² = ln(1 + scatter²)
        return np.exp(rng.normal(-0.5 * s2, np.sqrt(s2), size))

    npix, n_dm = best_fit.shape
    inc = np.diff(best_fit.astype(np.float64), axis=1, prepend=0.0)
    inc = np.maximum(inc, 0.0)[:, None, :]
    draws = np.cumsum(inc * mean_one_lognormal((npix, n_samples, n_dm)), axis=2)
    draws *= mean_one_lognormal((npix, n_samples, 1))
    return draws.astype(np.float32)


# --------------------------------------------------------------------------------------------------
# Config
# --------------------------------------------------------------------------------------------------
def _number(cfg: Mapping[str, Any], key: str, *, integer: bool = False) -> float | int:
    value = cfg[key]
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"dust config key '{key}' must be a number, got {value!r}")
    if integer:
        if float(value) != int(value):
            raise ValueError(f"dust config key '{key}' must be an integer, got {value!r}")
        return int(value)
    if not np.isfinite(value):
        raise ValueError(f"dust config key '{key}' must be finite, got {value!r}")
    return float(value)


def validate_dust_config(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """Check the ``dust`` config block and return it with normalised Python types.

    Raises
    ------
    ValueError
        Naming the key that is missing, unknown or out of range.
    """
    if not isinstance(cfg, Mapping):
        raise ValueError(f"dust config must be a mapping, got {type(cfg).__name__}")
    for key in DUST_CONFIG_KEYS:
        if key not in cfg:
            raise ValueError(
                f"dust config is missing key '{key}' (expected keys: {', '.join(DUST_CONFIG_KEYS)})"
            )
    unknown = sorted(set(cfg) - set(DUST_CONFIG_KEYS))
    if unknown:
        raise ValueError(
            f"dust config has unknown key '{unknown[0]}' (expected: {', '.join(DUST_CONFIG_KEYS)})"
        )
    out: dict[str, Any] = {}
    nside = _number(cfg, "nside", integer=True)
    if not (1 <= nside <= 1024 and nside & (nside - 1) == 0):
        raise ValueError(f"dust config key 'nside' must be a power of two in 1..1024, got {nside}")
    out["nside"] = nside
    out["n_samples"] = _number(cfg, "n_samples", integer=True)
    if out["n_samples"] < 1:
        raise ValueError(f"dust config key 'n_samples' must be >= 1, got {out['n_samples']}")
    out["hole_fraction"] = _number(cfg, "hole_fraction")
    if not 0.0 <= out["hole_fraction"] < 1.0:
        raise ValueError(f"dust config key 'hole_fraction' must be in [0, 1), got {out['hole_fraction']}")
    out["midplane_reddening_per_kpc"] = _number(cfg, "midplane_reddening_per_kpc")
    if out["midplane_reddening_per_kpc"] < 0:
        raise ValueError(
            "dust config key 'midplane_reddening_per_kpc' must be >= 0, "
            f"got {out['midplane_reddening_per_kpc']}"
        )
    out["scale_height_kpc"] = _number(cfg, "scale_height_kpc")
    if not out["scale_height_kpc"] > 0:
        raise ValueError(f"dust config key 'scale_height_kpc' must be > 0, got {out['scale_height_kpc']}")
    out["n_clouds"] = _number(cfg, "n_clouds", integer=True)
    if out["n_clouds"] < 0:
        raise ValueError(f"dust config key 'n_clouds' must be >= 0, got {out['n_clouds']}")
    out["sample_scatter"] = _number(cfg, "sample_scatter")
    if not 0.0 <= out["sample_scatter"] <= 1.0:
        raise ValueError(f"dust config key 'sample_scatter' must be in [0, 1], got {out['sample_scatter']}")
    return out


# --------------------------------------------------------------------------------------------------
# Writer
# --------------------------------------------------------------------------------------------------
def write_bayestar_h5(
    path: str | os.PathLike[str],
    dust_map: SimulatedDustMap,
    which: Literal["observed", "truth"] = "observed",
    provenance: Mapping[str, Any] | None = None,
) -> Path:
    """Write the map in the Bayestar19 HDF5 layout read by ``dustmaps.bayestar.BayestarQuery``.

    Layout (as ``dustmaps/bayestar.py`` reads it):

    - ``/pixel_info``: structured array ``(n_pix,)`` with ``nside`` (i8), ``healpix_index`` (i8, NESTED,
      Galactic), ``converged`` (u1), ``DM_reliable_min`` and ``DM_reliable_max`` (f4); attribute
      ``DM_bin_edges`` (f8, ``(n_DM,)``).
    - ``/samples``: ``(n_pix, n_samples, n_DM)`` f4.
    - ``/best_fit``: ``(n_pix, n_DM)`` f4.

    Parameters
    ----------
    path : path
        Output file; written through :func:`latentsky.provenance.files.atomic_output`, so a reader never sees a
        half-written map.
    dust_map : SimulatedDustMap
    which : {'observed', 'truth'}
        ``'observed'``: footprint pixels minus holes (what a user of the real map gets).
        ``'truth'``: all 12 nside² pixels, no holes.
    provenance : mapping, optional
        The provenance record, stored as the root attribute :data:`latentsky.provenance.files.HDF5_ATTR`.

    Returns
    -------
    Path
        The written path.
    """
    if which == "observed":
        sel = np.flatnonzero(dust_map.observed)
    elif which == "truth":
        sel = np.arange(dust_map.npix)
    else:
        raise ValueError(f"which must be 'observed' or 'truth', got {which!r}")
    info = np.empty(sel.size, dtype=PIXEL_INFO_DTYPE)
    info["nside"] = dust_map.nside
    info["healpix_index"] = sel
    info["converged"] = dust_map.converged[sel]
    info["DM_reliable_min"] = dust_map.dm_reliable_min[sel]
    info["DM_reliable_max"] = dust_map.dm_reliable_max[sel]

    with atomic_output(path) as tmp:
        # track_times=False keeps the bytes independent of the wall clock.
        with h5py.File(tmp, "w") as f:
            ds = f.create_dataset("pixel_info", data=info, track_times=False)
            ds.attrs["DM_bin_edges"] = dust_map.dm_bin_edges.astype(np.float64)
            opts = {"compression": "gzip", "compression_opts": 4, "shuffle": True, "track_times": False}
            f.create_dataset("samples", data=dust_map.samples[sel], **opts)
            f.create_dataset("best_fit", data=dust_map.best_fit[sel], **opts)
            f.attrs["map"] = f"latentsky simulated Bayestar19-layout dust map ({which})"
            f.attrs["nside"] = dust_map.nside
            if provenance is not None:
                set_hdf5_provenance(f, provenance)
    return Path(path)


def read_simulated_dust_map(
    truth_path: str | os.PathLike[str], observed_path: str | os.PathLike[str]
) -> SimulatedDustMap:
    """Read back a map written by :func:`write_bayestar_h5`: the full-sky truth file and the observed file.

    The truth file holds every pixel (best fit, samples, flags); which footprint pixels are holes is read
    from the observed file (the footprint pixels it lacks). ``clouds`` is ``None``: the truth is the
    pixelised map, which is all :meth:`SimulatedDustMap.reddening_truth` needs.
    """
    with h5py.File(truth_path, "r") as f:
        info = f["pixel_info"][:]
        edges = np.asarray(f["pixel_info"].attrs["DM_bin_edges"], dtype=np.float64)
        best_fit = f["best_fit"][:]
        samples = f["samples"][:]
    with h5py.File(observed_path, "r") as f:
        observed_pixels = f["pixel_info"]["healpix_index"][:]
    nside = int(info["nside"][0])
    npix = 12 * nside**2
    if not (np.all(info["nside"] == nside) and np.array_equal(info["healpix_index"], np.arange(npix))):
        raise ValueError(
            f"{truth_path}: /pixel_info must list every nside={nside} pixel once, in order "
            "(a full-sky truth map)"
        )
    hp = HEALPix(nside=nside, order="nested", frame=Galactic())
    footprint = hp.healpix_to_skycoord(np.arange(npix)).icrs.dec.deg > FOOTPRINT_MIN_DEC_DEG
    observed = np.zeros(npix, dtype=bool)
    observed[observed_pixels] = True
    if np.any(observed & ~footprint):
        raise ValueError(
            f"{observed_path}: holds pixels outside the dec > {FOOTPRINT_MIN_DEC_DEG}° footprint"
        )
    return SimulatedDustMap(
        nside=nside,
        dm_bin_edges=edges,
        best_fit=best_fit,
        samples=samples,
        converged=info["converged"].astype(bool),
        dm_reliable_min=info["DM_reliable_min"],
        dm_reliable_max=info["DM_reliable_max"],
        footprint=footprint,
        hole=footprint & ~observed,
        clouds=None,
    )
