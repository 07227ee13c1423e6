"""The missing-line mask of Cycle-StarNet's mock experiment (O'Briain et al. 2021, §4.2; spec B2.2 point 2).

The paper removes "approximately 30 %" of the absorption features from the synthetic domain and asks
Cycle-StarNet to put them back from the observed domain. The authors' notebook ``Create_Line_Mask.ipynb``
(``make_mask``) decides which, and this module follows it step by step, for any spectrum function (the
toy synthesiser of :mod:`latentsky.simulate.apogee`, or a Payne emulator):

1. At the reference K giant (:data:`REFERENCE_GIANT`: Teff 4,750 K, log g 2.5, v_turb 1.5 km/s, v_macro/v_broad
   6 km/s, solar abundances, ¹²C/¹³C 7.5), raise one element's abundance by δ = 0.05 dex and take the gradient
   spectrum g = f(y + δ) − f(y).
2. A feature is a maximal run of pixels with g < −0.001 (the notebook's start/stop scan); it is strong when
   max |g| over the run exceeds 0.005.
3. For every element with at least 3 strong features, mask a random ⌊n/3⌋ of them (one shuffle per element
   from one random stream seeded once, elements in label order — the notebook's ``np.random.seed(1)``); an
   element with fewer is left whole.
4. The union of the masked runs' pixels is the total mask; the synthetic domain's spectra are set to 1.0
   there before standardisation.

The notebook's result over the 7,214 ASPCAP pixels with The Payne's Kurucz emulator: 133 of 415 strong
features masked (32 %), 1,177 pixels (16.3 %); per element strong/masked C 142/47, N 93/31, Fe 124/41,
Mg 13/4, Si 13/4, Ni 11/3, Ca 5/1, Al 4/1, Ti 3/1, and 2 or fewer (none masked) for Cr, Mn, O, Co, Ge.

Two details differ from the notebook's loop, neither changing its result on its data: a run still open at the
last pixel is closed there (the notebook would drop its end and misalign its start/stop lists), and a pixel
with g exactly −0.001 ends a run (the notebook neither starts nor ends one there). CN features appear once
for C and once for N with the same pixels (their depth depends on [C/H] + [N/H]); each row keeps its element.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = [
    "REFERENCE_GIANT",
    "DELTA",
    "THRESHOLD",
    "STRONG",
    "MASK_FRACTION",
    "MIN_STRONG_FEATURES",
    "FEATURE_COLUMNS",
    "LineFeatures",
    "reference_labels",
    "find_line_features",
    "build_line_mask",
    "mask_from_features",
]

#: The reference K giant of ``Create_Line_Mask`` (labels by name; every ``[X/H]`` is 0). The paper's text
#: says 4,740 K; the notebook uses 4,750 K.
REFERENCE_GIANT: dict[str, float] = {
    "Teff": 4750.0,
    "logg": 2.5,
    "v_turb": 1.5,
    "v_broad": 6.0,
    "v_macro": 6.0,
    "C12/C13": 7.5,
}
#: Abundance step (dex), run threshold and strong-feature threshold on g (flux units) of the notebook.
DELTA, THRESHOLD, STRONG = 0.05, 0.001, 0.005
#: Share of each element's strong features masked, and the fewest strong features an element needs.
MASK_FRACTION, MIN_STRONG_FEATURES = 1.0 / 3.0, 3
#: The notebook's ``np.random.seed(1)``.
DEFAULT_SEED = 1

#: Columns of the feature tables.
FEATURE_COLUMNS = (
    "element",
    "label",
    "first_pixel",
    "last_pixel",
    "n_pixels",
    "centre_pixel",
    "wavelength",
    "gradient_depth",
    "strong",
)


def reference_labels(label_names: Sequence[str]) -> np.ndarray:
    """The reference giant as a label vector in the order of ``label_names``.

    Names in :data:`REFERENCE_GIANT` take its values and every ``[X/H]`` label 0; any other name is an error.
    """
    out = np.empty(len(label_names))
    for i, name in enumerate(label_names):
        if name in REFERENCE_GIANT:
            out[i] = REFERENCE_GIANT[name]
        elif name.startswith("[") and name.endswith("/H]"):
            out[i] = 0.0
        else:
            raise ValueError(
                f"label {name!r} has no reference value: expected one of {sorted(REFERENCE_GIANT)} or '[X/H]'"
            )
    return out


@dataclass(frozen=True)
class LineFeatures:
    """Output of :func:`find_line_features`.

    Attributes
    ----------
    table
        One row per feature (weak and strong), columns :data:`FEATURE_COLUMNS`: ``element`` (symbol),
        ``label`` (``[X/H]``), ``first_pixel`` and ``last_pixel`` (inclusive), ``n_pixels``, ``centre_pixel``
        (g-weighted), ``wavelength`` (at the centre, NaN without a grid), ``gradient_depth`` (max |g|) and
        ``strong``; ordered by element (as given) and pixel.
    gradients
        (n_elements, n_pixels) the gradient spectra g = f(y_ref + δ e_X) − f(y_ref).
    reference_spectrum
        (n_pixels,) f(y_ref).
    elements
        The element symbols, in order.
    """

    table: pd.DataFrame
    gradients: np.ndarray
    reference_spectrum: np.ndarray
    elements: tuple[str, ...]

    @property
    def n_pixels(self) -> int:
        return int(self.gradients.shape[1])


def _runs(below: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Maximal runs of True: (first, last) pixel indices, inclusive."""
    edges = np.diff(np.concatenate([[0], below.astype(np.int8), [0]]))
    return np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1


def find_line_features(
    spectrum_fn: Callable[[np.ndarray], np.ndarray],
    y_ref: np.ndarray,
    label_names: Sequence[str],
    elements: Sequence[str],
    delta: float = DELTA,
    threshold: float = THRESHOLD,
    strong: float = STRONG,
    *,
    wavelength: np.ndarray | None = None,
) -> LineFeatures:
    """Per element, the absorption features of its gradient spectrum (``make_mask`` steps 1–2).

    Parameters
    ----------
    spectrum_fn
        Maps labels (n, n_labels) in the order of ``label_names`` to continuum-normalised flux (n, n_pixels),
        as a numpy array; called once with the reference and every perturbed star.
    y_ref
        (n_labels,) reference labels, e.g. ``reference_labels(label_names)``.
    label_names
        Names of the labels; element X is perturbed through ``[X/H]``.
    elements
        Element symbols to examine, e.g. ``("C", "N", "Fe")``.
    delta
        Abundance step (dex).
    threshold
        A feature is a maximal run of pixels with g < −threshold.
    strong
        A feature is strong when max |g| over it exceeds this.
    wavelength
        Optional (n_pixels,) wavelengths for the ``wavelength`` column.

    Returns
    -------
    LineFeatures
    """
    label_names = list(label_names)
    elements = tuple(elements)
    y_ref = np.asarray(y_ref, dtype=np.float64)
    if y_ref.shape != (len(label_names),) or not np.all(np.isfinite(y_ref)):
        raise ValueError(
            f"y_ref: expected {len(label_names)} finite labels ({label_names}), got {y_ref.shape}"
        )
    if not (delta > 0 and threshold > 0 and strong >= threshold):
        raise ValueError(
            f"delta = {delta}, threshold = {threshold}, strong = {strong}: need δ > 0, 0 < thr ≤ strong"
        )
    if len(set(elements)) != len(elements):
        raise ValueError(f"elements: duplicates in {elements}")
    rows = []
    for x in elements:
        if f"[{x}/H]" not in label_names:
            raise ValueError(f"element {x!r}: label '[{x}/H]' not in label_names {label_names}")
        rows.append(label_names.index(f"[{x}/H]"))
    batch = np.repeat(y_ref[None, :], len(elements) + 1, axis=0)
    batch[np.arange(1, len(elements) + 1), rows] += delta
    flux = np.asarray(spectrum_fn(batch), dtype=np.float64)
    if flux.ndim != 2 or flux.shape[0] != batch.shape[0]:
        raise ValueError(
            f"spectrum_fn: expected flux of shape ({batch.shape[0]}, n_pixels), got {flux.shape}"
        )
    if not np.all(np.isfinite(flux)):
        raise ValueError("spectrum_fn: returned non-finite flux")
    n_pixels = flux.shape[1]
    if wavelength is not None:
        wavelength = np.asarray(wavelength, dtype=np.float64)
        if wavelength.shape != (n_pixels,):
            raise ValueError(f"wavelength: expected shape ({n_pixels},), got {wavelength.shape}")
    gradients = flux[1:] - flux[0]

    records = []
    pix = np.arange(n_pixels, dtype=np.float64)
    for x, g in zip(elements, gradients, strict=True):
        for first, last in zip(*_runs(g < -threshold), strict=True):
            seg = slice(first, last + 1)
            weight = -g[seg]  # > threshold > 0 on the run
            centre = float(np.sum(weight * pix[seg]) / np.sum(weight))
            depth = float(np.max(np.abs(g[seg])))
            records.append(
                {
                    "element": x,
                    "label": f"[{x}/H]",
                    "first_pixel": int(first),
                    "last_pixel": int(last),
                    "n_pixels": int(last - first + 1),
                    "centre_pixel": centre,
                    "wavelength": float(np.interp(centre, pix, wavelength))
                    if wavelength is not None
                    else np.nan,
                    "gradient_depth": depth,
                    "strong": depth > strong,
                }
            )
    table = pd.DataFrame.from_records(records, columns=list(FEATURE_COLUMNS))
    table = table.astype(
        {"first_pixel": np.int64, "last_pixel": np.int64, "n_pixels": np.int64, "strong": bool}
    )
    return LineFeatures(table=table, gradients=gradients, reference_spectrum=flux[0], elements=elements)


def build_line_mask(
    features: LineFeatures,
    mask_fraction: float = MASK_FRACTION,
    seed: int = DEFAULT_SEED,
    *,
    min_strong: int = MIN_STRONG_FEATURES,
) -> tuple[pd.DataFrame, np.ndarray]:
    """Choose the masked features and the pixel mask (``make_mask`` step 3 and the notebook's union).

    Parameters
    ----------
    features
        :func:`find_line_features`'s result.
    mask_fraction
        Share of each element's strong features to mask, ⌊n · fraction⌋ of them (the authors' configs explore
        5–50 %; 1/3 in the paper's run).
    seed
        Seed of the one random stream shuffled per element in order (elements with < ``min_strong`` strong
        features draw nothing, as in the notebook).
    min_strong
        Elements with fewer strong features keep all of them.

    Returns
    -------
    tuple
        ``(table, mask)``: the strong features (columns :data:`FEATURE_COLUMNS` + ``masked``) and the
        (n_pixels,) boolean pixel mask, the union of the masked features' pixels.
    """
    if not 0.0 < mask_fraction <= 1.0:
        raise ValueError(f"mask_fraction = {mask_fraction}: expected 0 < fraction ≤ 1")
    if min_strong < 1:
        raise ValueError(f"min_strong = {min_strong}: expected ≥ 1")
    rng = np.random.default_rng(seed)
    table = features.table[features.table["strong"]].copy()
    table["masked"] = False
    mask = np.zeros(features.n_pixels, dtype=bool)
    for x in features.elements:
        idx = table.index[table["element"] == x]
        n = idx.size
        if n < min_strong:
            continue
        # ⌊n · fraction⌋; the small epsilon makes e.g. 6 × (1/3) = 1.9999… count as 2, like the notebook's
        # int(n/3).
        n_mask = math.floor(n * mask_fraction + 1e-9)
        chosen = idx[rng.permutation(n)[:n_mask]]
        table.loc[chosen, "masked"] = True
    for first, last in table.loc[table["masked"], ["first_pixel", "last_pixel"]].itertuples(index=False):
        mask[first : last + 1] = True
    return table.reset_index(drop=True), mask


def mask_from_features(table: pd.DataFrame, n_pixels: int) -> np.ndarray:
    """The (n_pixels,) boolean pixel mask of a feature table with a ``masked`` column (the union of the masked
    features' inclusive pixel ranges) — how the mask is read back from ``line_mask.parquet``."""
    mask = np.zeros(int(n_pixels), dtype=bool)
    for first, last in table.loc[table["masked"].astype(bool), ["first_pixel", "last_pixel"]].itertuples(
        index=False
    ):
        mask[int(first) : int(last) + 1] = True
    return mask
