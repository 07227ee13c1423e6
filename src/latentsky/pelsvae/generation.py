"""Generating new light curves with a trained PELS-VAE (paper 000 Sec. 4.3) at any cadence.

For each request (class, T_eff, M_G, P, t0): physics → the latent regressor (:mod:`latentsky.pelsvae.regression`)
→ z → the decoder at the phases ((t − t0) / P) mod 1 of the requested times. Times come from a cadence
description (:func:`cadence_times`: regular, random, phases or the OGLE-III one) or a table of times.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from latentsky.pelsvae.data import LightCurveScaler
from latentsky.pelsvae.model import PelsVae, generate
from latentsky.pelsvae.regression import LatentRegressors

__all__ = [
    "CADENCE_KINDS",
    "cadence_times",
    "read_times_table",
    "read_requests",
    "request_times",
    "generate_lightcurves",
]
#: Cadence descriptions understood by :func:`cadence_times`.
CADENCE_KINDS = ("regular", "random", "phases", "ogle3")


# ---------------------------------------------------------------------------------------------------------
# Generation (Sec. 4.3)
# ---------------------------------------------------------------------------------------------------------


def cadence_times(spec: str, t0: float, period: float, rng: np.random.Generator) -> np.ndarray:
    """Observation times (d) from a cadence description, starting at ``t0``.

    ``regular:N:SPAN`` — N epochs evenly spaced over SPAN days; ``random:N:SPAN`` — N epochs uniform at random
    in SPAN days (sorted); ``phases:N`` — N epochs evenly spaced over one period (a smooth folded curve);
    ``ogle3:N:SEASONS`` — N epochs spread over SEASONS observing seasons of ~240 nights a year with nightly
    sampling and a ±3 h jitter, like the OGLE-III bulge/LMC cadence.
    """
    kind, *args = str(spec).split(":")
    try:
        values = [float(a) for a in args]
    except ValueError:
        values = []
    want = {"regular": 2, "random": 2, "phases": 1, "ogle3": 2}
    if kind not in want or len(values) != want[kind] or values[0] < 1 or int(values[0]) != values[0]:
        raise ValueError(
            f"cadence {spec!r}: expected regular:N:SPAN, random:N:SPAN, phases:N or ogle3:N:SEASONS "
            "with an integer N ≥ 1 (SPAN in days)"
        )
    n = int(values[0])
    if kind == "phases":
        return t0 + period * np.arange(n) / n
    span = values[1]
    if span <= 0:
        raise ValueError(f"cadence {spec!r}: the span must be positive")
    if kind == "regular":
        return t0 + span * np.arange(n) / n
    if kind == "random":
        return np.sort(t0 + span * rng.uniform(size=n))
    # ogle3: nights inside seasons of 240 d every 365.25 d, one or more epochs per night.
    season = np.floor(span * rng.uniform(size=n))
    night = np.floor(240.0 * rng.uniform(size=n))
    jitter = rng.normal(0.0, 0.125, size=n)
    return np.sort(t0 + 365.25 * season + night + jitter)


def read_times_table(path: str | os.PathLike) -> pd.DataFrame:
    """Timestamps from a file: CSV, ECSV/ASCII with a header, or Parquet, with a column ``time`` (d) and
    optionally ``request`` (which request each time belongs to; without it every request uses them all)."""
    p = Path(path)
    if p.suffix.lower() in (".parquet", ".pq"):
        table = pd.read_parquet(p)
    else:
        from astropy.table import Table

        try:
            table = Table.read(p, format="ascii").to_pandas()
        except Exception as exc:  # astropy raises many types for unreadable text
            raise ValueError(f"{path}: cannot read a table of timestamps ({exc})") from exc
    if "time" not in table.columns:
        raise ValueError(f"{path}: needs a column 'time' (days); it has {list(table.columns)}")
    times = pd.to_numeric(table["time"], errors="coerce")
    if times.isna().any():
        row = int(np.flatnonzero(times.isna().to_numpy())[0])
        raise ValueError(f"{path}: column 'time' row {row} is not a finite number")
    out = pd.DataFrame({"time": times.to_numpy(np.float64)})
    if "request" in table.columns:
        out["request"] = table["request"].to_numpy()
    return out


#: How a generated curve's latent is drawn (:func:`generate_lightcurves`).
LATENT_SAMPLING = ("dummy", "residual")
#: Request columns: required, then optional with their defaults.
REQUEST_REQUIRED = ("var_class", "teff", "abs_g", "period")
REQUEST_DEFAULTS: dict[str, Any] = {"t0": 0.0, "n_samples": 1, "median_mag": 0.0}


def read_requests(requests: pd.DataFrame | Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Normalise generation requests: one row per (class, T_eff [K], M_G [mag], P [d]) with ``t0`` (d),
    ``n_samples`` (light curves per request, each with its own dummy draw) and ``median_mag`` (the
    median I magnitude to add; 0 gives magnitudes relative to the median). Bad values are named."""
    frame = pd.DataFrame(list(requests) if not isinstance(requests, pd.DataFrame) else requests).copy()
    missing = [c for c in REQUEST_REQUIRED if c not in frame.columns]
    if missing:
        raise ValueError(f"generation requests need column(s) {missing}; got {list(frame.columns)}")
    for col, default in REQUEST_DEFAULTS.items():
        frame[col] = frame[col].fillna(default) if col in frame else default
    for col in ("teff", "abs_g", "period", "t0", "median_mag"):
        frame[col] = pd.to_numeric(frame[col], errors="coerce")
        bad = ~np.isfinite(frame[col].to_numpy(np.float64))
        if col == "period":
            bad |= ~(frame[col].to_numpy(np.float64) > 0)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"generation request {i}: {col} must be a finite number, got {frame[col].iloc[i]!r}"
            )
    n = pd.to_numeric(frame["n_samples"], errors="coerce")
    if not ((n >= 1) & (n == n.round())).all():
        raise ValueError(
            f"generation requests: n_samples must be integers ≥ 1, got {frame['n_samples'].tolist()}"
        )
    frame["n_samples"] = n.astype(np.int64)
    frame["var_class"] = frame["var_class"].astype(str)
    if "request" not in frame:
        frame["request"] = np.arange(len(frame))
    if frame["request"].duplicated().any():
        raise ValueError("generation requests: the 'request' column must be unique")
    return frame.reset_index(drop=True)


def request_times(
    requests: pd.DataFrame,
    rng: np.random.Generator,
    *,
    cadence: str | None = None,
    times_table: pd.DataFrame | None = None,
) -> dict[Any, np.ndarray]:
    """Timestamps (d) for every request: from ``times_table`` (:func:`read_times_table`; per request when it
    has a ``request`` column, else shared) or else from the ``cadence`` description, started at each
    request's t0 (:func:`cadence_times`)."""
    if times_table is not None:
        if "request" not in times_table:
            shared = times_table["time"].to_numpy(np.float64)
            return {req: shared for req in requests["request"]}
        groups = {k: g["time"].to_numpy(np.float64) for k, g in times_table.groupby("request", sort=False)}
        # Request ids from a CSV arrive as numbers or strings: compare as strings.
        by_text = {str(k): v for k, v in groups.items()}
        missing = [r for r in requests["request"] if str(r) not in by_text]
        if missing:
            raise ValueError(f"the timestamps table has no rows for request(s) {missing}")
        return {req: by_text[str(req)] for req in requests["request"]}
    if cadence is None:
        raise ValueError("give either a timestamps table or a cadence description")
    return {
        row.request: cadence_times(cadence, float(row.t0), float(row.period), rng)
        for row in requests.itertuples(index=False)
    }


def generate_lightcurves(
    model: PelsVae,
    scaler: LightCurveScaler,
    regressors: LatentRegressors,
    regressor: str,
    requests: pd.DataFrame,
    times: Mapping[Any, np.ndarray] | np.ndarray,
    rng: np.random.Generator,
    *,
    device: str = "cpu",
    latent_sampling: str = "dummy",
) -> pd.DataFrame:
    """New light curves (Sec. 4.3): one row per (request, sample), list columns ``time``, ``phase``, ``mag``,
    ``err`` in the order of the given times.

    Parameters
    ----------
    model, scaler : a trained PELS-VAE and its scaler; ``regressors`` fitted on its latent space.
    regressor : which regressor maps physics to latents (linear | random_forest | mlp).
    requests : output of :func:`read_requests`.
    times : one array of times (d) for every request, or request → array.
    rng : draws the dummy dimension of each sample (and its residual).
    latent_sampling : ``dummy`` — the paper: z = regressor(physics, dummy), which gives the samples of one
        request almost the same curve; ``residual`` — z = regressor(physics, dummy) + a validation residual
        of the request's class (:meth:`LatentRegressors.residual_draws`), the spread the physics leaves open.
    """
    if latent_sampling not in LATENT_SAMPLING:
        raise ValueError(f"latent_sampling {latent_sampling!r} not one of {LATENT_SAMPLING}")
    if regressors.classes != tuple(model.config.classes):
        raise ValueError("the regressors were fitted for a model with other classes")
    rows = requests.loc[requests.index.repeat(requests["n_samples"])].reset_index(drop=True)
    rows["sample"] = rows.groupby("request").cumcount()
    rows["dummy"] = rng.uniform(size=len(rows))
    if regressors.physics_range:  # files written before the range was kept have none to check
        regressors.check_support(
            requests["teff"],
            requests["abs_g"],
            requests["period"],
            requests["var_class"],
            labels=[f"generation request {r!r}" for r in requests["request"]],
        )
    z = regressors.predict(
        regressor, rows["teff"], rows["abs_g"], rows["period"], rows["var_class"], rows["dummy"]
    )
    if latent_sampling == "residual":
        z = z + regressors.residual_draws(regressor, rows["var_class"], rng)
    per_row_times = []
    for req in rows["request"]:
        t = times.get(req) if isinstance(times, Mapping) else times
        if t is None or len(t) == 0:
            raise ValueError(f"generation request {req!r}: no timestamps")
        per_row_times.append(np.asarray(t, dtype=np.float64))
    out_mag, out_err, out_phase = [], [], []
    # Requests with the same number of epochs are decoded together (the decoder takes (N, T) phases).
    lengths = np.array([len(t) for t in per_row_times])
    mags: list[np.ndarray | None] = [None] * len(rows)
    errs: list[np.ndarray | None] = [None] * len(rows)
    phases: list[np.ndarray | None] = [None] * len(rows)
    for length in np.unique(lengths):
        idx = np.flatnonzero(lengths == length)
        t = np.stack([per_row_times[i] for i in idx])
        p = rows["period"].to_numpy(np.float64)[idx, None]
        t0 = rows["t0"].to_numpy(np.float64)[idx, None]
        phase = np.mod((t - t0) / p, 1.0)
        mag, err = generate(
            model,
            scaler,
            rows["var_class"].iloc[idx].tolist(),
            z[idx],
            phase,
            rows["median_mag"].to_numpy(np.float64)[idx],
            device=device,
        )
        for k, i in enumerate(idx):
            mags[i], errs[i], phases[i] = mag[k], err[k], phase[k]
    out_mag = [m.tolist() for m in mags]
    out_err = [e.tolist() for e in errs]
    out_phase = [p.tolist() for p in phases]
    columns = ["request", "sample", "var_class", "teff", "abs_g", "period", "t0", "median_mag", "dummy"]
    out = rows[columns].copy()
    out["regressor"] = regressor
    out["latent_sampling"] = latent_sampling
    out["model"] = regressors.model
    out["z"] = [list(map(float, v)) for v in z]
    out["time"] = [t.tolist() for t in per_row_times]
    out["phase"] = out_phase
    out["mag"] = out_mag
    out["err"] = out_err
    return out
