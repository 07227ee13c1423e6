"""Distance priors π(d) over d > 0, all of the generalised-gamma form π(d) ∝ d^β exp(−(d/L)^α).

* ``flat`` — constant in d (β = 0, no exponential), the prior paper 004 states for its catalog (Sec. 4.2).
  With it the far tail dominates faint stars: the likelihood of a low-SNR parallax is nearly flat in d
  while the prior's volume keeps growing, so medians run to tens of kpc (issue 16: 18.8 % of the demo's
  medians beyond 10 kpc, where no simulated star is). Use it to reproduce the paper.
* ``edsd`` — the exponentially decreasing space density d² exp(−d/L) (Bailer-Jones 2015; β = 2, α = 1),
  one length scale L for the whole sky. The default: a volume-complete disc seen from inside, it keeps
  the tail bounded at the price of pulling distant halo stars in.
* ``ggd`` — the generalised gamma distribution of Bailer-Jones et al. (2021, eq. 3) with (L, α, β) per
  HEALPix level-5 pixel, fitted there to a Gaia mock catalogue (GeDR3mock, Rybizki et al. 2020). Read from
  the table the user gives: the authors' ``prior_summary.csv`` has the columns this reader expects
  (``healpix``, ``GGDrlen`` in pc, ``GGDalpha``, ``GGDbeta``). Use it for real Gaia.

* ``tabulated`` — a density in ln d tabulated per HEALPix pixel, e.g. the (smoothed) histogram of a mock
  catalogue's distances: Bailer-Jones et al.'s construction without the GGD's shape. A GGD cannot follow
  a population with a sharp outer edge (the simulated disc ends at 10 kpc, its stars pile up towards
  it); a tabulated prior can. Columns ``healpix_order``, ``healpix``, ``distance_pc``, ``density``.

For every kind, :meth:`DistancePrior.parameters` gives the per-star prior and :func:`log_prior` evaluates
log π on any array of distances for those stars.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import pandas as pd

from latentsky.io.healpix import radec_to_healpix

PRIOR_KINDS = ("flat", "edsd", "ggd", "tabulated")
TABULATED_COLUMNS = ("healpix_order", "healpix", "distance_pc", "density")
#: HEALPix order of the Bailer-Jones et al. (2021) prior table (level 5, nested, 12 288 pixels).
GGD_TABLE_ORDER = 5
GGD_COLUMNS = ("healpix", "GGDrlen", "GGDalpha", "GGDbeta")


@dataclass(frozen=True)
class PriorParameters:
    """(L, α, β) per star; L = inf means no exponential cut-off (the flat prior). A tabulated prior sets
    ``table_ln_d`` (M,) and ``table_log_density`` (N, M) instead: log π per unit ln d at those nodes."""

    length_pc: np.ndarray
    alpha: np.ndarray
    beta: np.ndarray
    table_ln_d: np.ndarray | None = None
    table_log_density: np.ndarray | None = None

    def subset(self, rows: np.ndarray) -> PriorParameters:
        table = None if self.table_log_density is None else self.table_log_density[rows]
        return PriorParameters(
            self.length_pc[rows], self.alpha[rows], self.beta[rows], self.table_ln_d, table
        )


@dataclass(frozen=True)
class DistancePrior:
    """The prior the catalog uses; see the module docstring for the kinds."""

    kind: str = "edsd"
    length_kpc: float = 1.35
    table: str | None = None  # ggd only: the per-HEALPix parameter table (CSV or Parquet)

    def __post_init__(self) -> None:
        if self.kind not in PRIOR_KINDS:
            raise ValueError(
                f"distance prior kind must be one of {', '.join(PRIOR_KINDS)}, got {self.kind!r}"
            )
        if not self.length_kpc > 0:
            raise ValueError(f"distance prior length_kpc must be > 0, got {self.length_kpc}")
        if self.kind in ("ggd", "tabulated") and not self.table:
            raise ValueError(f"distance prior {self.kind!r} needs a table (prior_table)")

    def parameters(self, ra_deg: np.ndarray, dec_deg: np.ndarray) -> PriorParameters:
        n = np.shape(ra_deg)[0]
        if self.kind == "flat":
            return PriorParameters(np.full(n, np.inf), np.ones(n), np.zeros(n))
        if self.kind == "edsd":
            return PriorParameters(np.full(n, 1000.0 * self.length_kpc), np.ones(n), np.full(n, 2.0))
        if self.kind == "ggd":
            return ggd_table(self.table).parameters(ra_deg, dec_deg)
        return tabulated_prior(self.table).parameters(ra_deg, dec_deg)

    def describe(self) -> dict:
        out: dict = {"kind": self.kind}
        if self.kind == "edsd":
            out["length_kpc"] = self.length_kpc
        if self.kind in ("ggd", "tabulated"):
            out["table"] = os.fspath(self.table)
        return out


def log_prior(distance_pc: np.ndarray, params: PriorParameters) -> np.ndarray:
    """log π(d) up to a per-star constant; ``distance_pc`` has the stars on its first axis."""
    d = np.asarray(distance_pc, dtype=float)
    if params.table_log_density is not None:
        # Linear in ln d between the table's nodes, its end values beyond them; − ln d turns the
        # density per unit ln d into one per unit d.
        ln_d = np.log(d).reshape(d.shape[0], -1)
        nodes = params.table_ln_d
        hi = np.clip(np.searchsorted(nodes, ln_d), 1, len(nodes) - 1)
        t = np.clip((ln_d - nodes[hi - 1]) / (nodes[hi] - nodes[hi - 1]), 0.0, 1.0)
        lo_v = np.take_along_axis(params.table_log_density, hi - 1, axis=1)
        hi_v = np.take_along_axis(params.table_log_density, hi, axis=1)
        return ((1.0 - t) * lo_v + t * hi_v - ln_d).reshape(d.shape)
    extra = (1,) * (d.ndim - 1)
    length = params.length_pc.reshape(-1, *extra)
    alpha = params.alpha.reshape(-1, *extra)
    beta = params.beta.reshape(-1, *extra)
    cut = np.where(np.isfinite(length), (d / np.where(np.isfinite(length), length, 1.0)) ** alpha, 0.0)
    return beta * np.log(d) - cut


def prior_far_distance(params: PriorParameters, e_folds: float = 40.0) -> np.ndarray:
    """Per star, a distance beyond which π(d) is below e^−``e_folds`` of its peak (inf for the flat prior)."""
    if params.table_ln_d is not None:
        return np.full(len(params.length_pc), np.inf)  # the table's far value holds beyond its last node
    with np.errstate(divide="ignore", invalid="ignore"):
        # (d/L)^α = e_folds + β ln((d/L)^{1/α}·…) is dominated by the first term; doubling it is safe.
        far = params.length_pc * (2.0 * e_folds + 4.0 * params.beta) ** (1.0 / params.alpha)
    return np.where(np.isfinite(params.length_pc), far, np.inf)


@dataclass(frozen=True)
class GGDTable:
    """Bailer-Jones et al. (2021) prior parameters per level-5 HEALPix pixel (nested)."""

    path: str
    length_pc: np.ndarray  # indexed by pixel; NaN where the table has no row
    alpha: np.ndarray
    beta: np.ndarray

    def parameters(self, ra_deg: np.ndarray, dec_deg: np.ndarray) -> PriorParameters:
        pix = radec_to_healpix(np.asarray(ra_deg, float), np.asarray(dec_deg, float), GGD_TABLE_ORDER)
        missing = ~np.isfinite(self.length_pc[pix])
        if missing.any():
            raise ValueError(
                f"{self.path}: no prior row for HEALPix level-5 pixel(s) "
                f"{sorted(set(pix[missing].tolist()))[:5]} (column healpix), needed by {int(missing.sum())} stars"
            )
        return PriorParameters(self.length_pc[pix], self.alpha[pix], self.beta[pix])


_GGD_CACHE: dict[str, GGDTable] = {}


def ggd_table(path: str | os.PathLike) -> GGDTable:
    """Read (once per process) and check a GGD prior table; a one-line error names file and column."""
    key = os.fspath(path)
    if key in _GGD_CACHE:
        return _GGD_CACHE[key]
    frame = _read_table(key, GGD_COLUMNS)
    npix = 12 * 4**GGD_TABLE_ORDER
    pix = frame["healpix"].to_numpy()
    if not np.issubdtype(pix.dtype, np.integer) or pix.min() < 0 or pix.max() >= npix:
        raise ValueError(f"{key}: column healpix must hold level-5 pixel numbers 0…{npix - 1}")
    arrays = {}
    for col, name in (("GGDrlen", "length_pc"), ("GGDalpha", "alpha"), ("GGDbeta", "beta")):
        values = frame[col].to_numpy(dtype=float)
        if not (np.all(np.isfinite(values)) and np.all(values > 0 if col != "GGDbeta" else values >= 0)):
            raise ValueError(f"{key}: column {col} must be finite and {'≥ 0' if col == 'GGDbeta' else '> 0'}")
        full = np.full(npix, np.nan)
        full[pix] = values
        arrays[name] = full
    table = GGDTable(key, **arrays)
    _GGD_CACHE[key] = table
    return table


@dataclass(frozen=True)
class TabulatedPrior:
    """log π per unit ln d on shared nodes, for every pixel of one HEALPix order."""

    path: str
    order: int
    ln_d: np.ndarray  # (M,)
    log_density: np.ndarray  # (12·4^order, M), NaN rows where the table has no pixel

    def parameters(self, ra_deg: np.ndarray, dec_deg: np.ndarray) -> PriorParameters:
        pix = radec_to_healpix(np.asarray(ra_deg, float), np.asarray(dec_deg, float), self.order)
        missing = ~np.isfinite(self.log_density[pix, 0])
        if missing.any():
            raise ValueError(
                f"{self.path}: no prior rows for HEALPix order-{self.order} pixel(s) "
                f"{sorted(set(pix[missing].tolist()))[:5]} (column healpix), needed by {int(missing.sum())} stars"
            )
        n = len(pix)
        return PriorParameters(np.full(n, np.inf), np.ones(n), np.zeros(n), self.ln_d, self.log_density[pix])


_TABULATED_CACHE: dict[str, TabulatedPrior] = {}


def tabulated_prior(path: str | os.PathLike) -> TabulatedPrior:
    """Read (once per process) and check a tabulated prior; a one-line error names file and column."""
    key = os.fspath(path)
    if key in _TABULATED_CACHE:
        return _TABULATED_CACHE[key]
    frame = _read_table(key, TABULATED_COLUMNS)
    orders = frame["healpix_order"].unique()
    if len(orders) != 1 or not 0 <= int(orders[0]) <= 12:
        raise ValueError(f"{key}: column healpix_order must hold one HEALPix order (0…12), got {orders[:5]}")
    order = int(orders[0])
    nodes = np.sort(frame["distance_pc"].unique())
    if len(nodes) < 2 or not nodes[0] > 0:
        raise ValueError(f"{key}: column distance_pc must hold at least two positive distances")
    density = frame["density"].to_numpy(dtype=float)
    if not (np.all(np.isfinite(density)) and np.all(density > 0)):
        raise ValueError(f"{key}: column density must be finite and > 0 (smooth empty bins)")
    npix = 12 * 4**order
    pix = frame["healpix"].to_numpy()
    if pix.min() < 0 or pix.max() >= npix:
        raise ValueError(f"{key}: column healpix must hold order-{order} pixel numbers 0…{npix - 1}")
    table = np.full((npix, len(nodes)), np.nan)
    table[pix, np.searchsorted(nodes, frame["distance_pc"].to_numpy())] = np.log(density)
    present = np.isfinite(table).any(axis=1)
    if np.isnan(table[present]).any():
        raise ValueError(f"{key}: every pixel needs a density at every distance_pc of the table")
    prior = TabulatedPrior(key, order, np.log(nodes), table)
    _TABULATED_CACHE[key] = prior
    return prior


def _read_table(key: str, columns: tuple[str, ...]) -> pd.DataFrame:
    if not os.path.isfile(key):
        raise FileNotFoundError(f"distance prior table {key} does not exist")
    try:
        frame = pd.read_parquet(key) if key.endswith(".parquet") else pd.read_csv(key)
    except Exception as exc:  # noqa: BLE001 - any parse failure becomes one line naming the file
        raise ValueError(f"{key}: not a readable CSV/Parquet prior table ({exc})") from None
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{key}: prior table lacks column(s) {', '.join(missing)}; expected {columns}")
    return frame
