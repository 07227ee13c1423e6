"""The two domains of the mock experiments (paper 002 §4.2; spec B2.2) from the toy synthesiser and the Payne
emulator, and their standardised training arrays.

* **Synthetic domain**: x_s = Payne(y_s) with the line mask's pixels set to 1.0 (the lines the synthetic
  model lacks), noiseless, error 0.005 — generated from the labels, as the authors' ``create_synth_batch``.
* **Observed domain**, experiment ``m1`` (§4.2): the emulator's full spectrum (``observed_source: emulator``,
  the authors' mock) or the toy's (``synthesiser``, adding the emulator's own error as a small extra gap), plus
  noise at S/N 50–300 with 1 % bad pixels. Experiment ``m2`` adds a synthetic gap from the toy (per-star LSF,
  continuum tilt, the cool giants' line-strength offset, telluric residuals; truth kept per star).
* **Unpaired** training stars: the two domains' labels are independent draws of one distribution (the paper:
  "essential", §5.2(b)); the validation and test stars are **paired** (the same labels in both domains), so
  everything is scored against truth.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from latentsky.cyclestarnet.lines import FluxScale, ReferenceStar, mean_split_latent, reference_star
from latentsky.cyclestarnet.model import CycleStarNet
from latentsky.cyclestarnet.training import ERROR_FLOOR, Domains
from latentsky.io.spectra import read_list_column
from latentsky.simulate.apogee import REFERENCE_LABELS, add_noise, simulate_observed, synthesise

__all__ = [
    "EXPERIMENTS",
    "MAX_ERROR",
    "OBSERVED_SOURCES",
    "ObservedDomain",
    "emulate",
    "noiseless_observed",
    "flux_scale",
    "observed_arrays",
    "observed_domain",
    "reference_giant",
    "standardised_domains",
]

EXPERIMENTS = ("m1", "m2")
OBSERVED_SOURCES = ("emulator", "synthesiser")
#: Pixels with a larger flux error are masked in the observed domain (paper §4.1.2).
MAX_ERROR = 0.05


@dataclass
class ObservedDomain:
    """Observed spectra with their truth: ``flux``, ``error`` (σ floored at 0.005), ``weight`` (0 for a masked
    pixel: bad, or σ > 0.05), ``clean`` (noiseless), and ``truth`` (per star: resolution, a1, a2, rv_kms,
    telluric_scale, atomic_tau_scale, snr)."""

    flux: np.ndarray
    error: np.ndarray
    weight: np.ndarray
    clean: np.ndarray
    truth: pd.DataFrame
    star_id: np.ndarray | None = None


@torch.no_grad()
def emulate(emulator: torch.nn.Module, labels: np.ndarray, batch: int = 4096) -> np.ndarray:
    """The emulator's spectra (n, P) of physical labels (n, n_labels), float64."""
    out = [
        emulator(torch.tensor(np.asarray(labels[i : i + batch]), dtype=torch.float32)).double().numpy()
        for i in range(0, len(labels), batch)
    ]
    return np.concatenate(out) if out else np.zeros((0, 0))


def observed_domain(
    labels: np.ndarray,
    *,
    experiment: str,
    observed_source: str,
    emulator: torch.nn.Module,
    line_list: pd.DataFrame,
    grid: np.ndarray,
    seed: int,
    snr_range: tuple[float, float],
    bad_pixel_fraction: float,
) -> ObservedDomain:
    """The observed spectra of ``labels`` for ``experiment`` ``m1`` or ``m2`` (see the module docstring)."""
    if experiment not in EXPERIMENTS:
        raise ValueError(f"cyclestarnet experiment {experiment!r} not one of {EXPERIMENTS}")
    if observed_source not in OBSERVED_SOURCES:
        raise ValueError(f"observed_source {observed_source!r} not one of {OBSERVED_SOURCES}")
    if experiment == "m1" and observed_source == "emulator":
        clean = emulate(emulator, labels)
        flux, sigma, snr, bad = add_noise(
            clean, grid, seed, snr_range=tuple(snr_range), bad_pixel_fraction=bad_pixel_fraction
        )
        truth = pd.DataFrame(
            {
                "resolution": 22_500.0,
                "a1": 0.0,
                "a2": 0.0,
                "rv_kms": 0.0,
                "telluric_scale": 0.0,
                "atomic_tau_scale": 1.0,
                "snr": snr,
            }
        )
    else:
        sim = simulate_observed(
            labels,
            line_list,
            grid,
            seed,
            instrument=experiment == "m2",
            snr_range=tuple(snr_range),
            bad_pixel_fraction=bad_pixel_fraction,
        )
        flux, sigma, bad, clean, truth = sim.flux, sim.sigma, sim.bad_pixels, sim.clean, sim.truth
    error = np.maximum(sigma, ERROR_FLOOR)
    weight = ((~bad) & (error <= MAX_ERROR)).astype(np.float32)
    truth = truth.reset_index(drop=True).reindex(columns=list(TRUTH_COLUMNS))
    return ObservedDomain(flux, error, weight, clean, truth)


#: Per-star truth columns of the observed domain's table (besides star_id and split).
TRUTH_COLUMNS = ("resolution", "a1", "a2", "rv_kms", "telluric_scale", "atomic_tau_scale", "snr")


def observed_arrays(path: str) -> dict[str, ObservedDomain]:
    """The observed domain's table (rule cyclestarnet_domains) as one :class:`ObservedDomain` per split
    (``obs_train``, ``val``, ``test``; ``clean`` is NaN for the training stars, whose truth is not kept)."""
    table = pd.read_parquet(path, columns=["star_id", "split", *[c for c in TRUTH_COLUMNS]])
    arrays = {name: read_list_column(path, name) for name in ("flux", "error", "weight", "clean")}
    out = {}
    for split in ("obs_train", "val", "test"):
        rows = (table["split"] == split).to_numpy()
        out[split] = ObservedDomain(
            flux=arrays["flux"][rows].astype(np.float64),
            error=arrays["error"][rows].astype(np.float64),
            weight=arrays["weight"][rows].astype(np.float32),
            clean=arrays["clean"][rows].astype(np.float64),
            truth=table.loc[rows, list(TRUTH_COLUMNS)].reset_index(drop=True),
            star_id=table.loc[rows, "star_id"].to_numpy(),
        )
    return out


def flux_scale(synth_flux: np.ndarray) -> FluxScale:
    """Mean and standard deviation of all synthetic training pixels (the authors' two scalars, 0.97746 and
    0.05181 for their Payne spectra)."""
    return FluxScale(float(np.mean(synth_flux)), float(np.std(synth_flux)))


def standardised_domains(
    synth_flux: np.ndarray,
    obs: ObservedDomain,
    val_synth_flux: np.ndarray,
    val_obs: ObservedDomain,
    line_mask: np.ndarray,
    scale: FluxScale | None = None,
) -> tuple[Domains, FluxScale]:
    """The training arrays: synthetic spectra masked (pixels of ``line_mask`` → 1.0) then standardised,
    observed spectra and errors standardised; the scale from the masked synthetic training spectra unless
    given."""
    synth = np.where(line_mask, 1.0, synth_flux)
    val_synth = np.where(line_mask, 1.0, val_synth_flux)
    scale = scale or flux_scale(synth)

    def x(flux: np.ndarray) -> np.ndarray:
        return ((flux - scale.mean) / scale.scale).astype(np.float32)

    domains = Domains(
        synth=x(synth),
        obs=x(obs.flux),
        obs_error=(obs.error / scale.scale).astype(np.float32),
        obs_weight=obs.weight,
        val_synth=x(val_synth),
        val_obs=x(val_obs.flux),
        val_obs_error=(val_obs.error / scale.scale).astype(np.float32),
        val_obs_weight=val_obs.weight,
        synth_error=ERROR_FLOOR / scale.scale,
    )
    return domains, scale


def describe(domain: ObservedDomain) -> dict[str, Any]:
    """Summary figures of an observed domain for the log and the metrics."""
    return {
        "n_stars": int(len(domain.flux)),
        "median_snr": float(np.median(domain.truth["snr"])),
        "masked_pixel_fraction": float(1 - domain.weight.mean()),
    }


def noiseless_observed(
    labels: np.ndarray,
    *,
    experiment: str,
    observed_source: str,
    emulator: torch.nn.Module,
    line_list: pd.DataFrame,
    grid: np.ndarray,
) -> np.ndarray:
    """The observed domain's noiseless spectrum of ``labels`` without instrument effects (the truth a recovered
    line is compared with): the emulator's full spectrum in M1 with ``observed_source: emulator``, else the toy's
    at R = 22,500."""
    if experiment == "m1" and observed_source == "emulator":
        return emulate(emulator, np.atleast_2d(labels))
    return synthesise(np.atleast_2d(labels), line_list, grid)


def reference_giant(
    model: CycleStarNet,
    emulator: torch.nn.Module,
    line_mask: np.ndarray,
    scale: FluxScale,
    validation_flux: np.ndarray,
    *,
    experiment: str,
    observed_source: str,
    line_list: pd.DataFrame,
    grid: np.ndarray,
) -> tuple[ReferenceStar, np.ndarray, torch.Tensor | None]:
    """The reference giant (:data:`~latentsky.simulate.apogee.REFERENCE_LABELS`) transferred with the mean
    split latent of the paired validation stars (the authors' Fig. 10): its :class:`ReferenceStar`, its
    noiseless observed truth (:func:`noiseless_observed`) and that mean z_sp."""
    z_sp = mean_split_latent(model, scale, validation_flux)
    ref = reference_star(model, emulator, REFERENCE_LABELS, line_mask, scale, z_sp)
    truth = noiseless_observed(
        REFERENCE_LABELS,
        experiment=experiment,
        observed_source=observed_source,
        emulator=emulator,
        line_list=line_list,
        grid=grid,
    )[0]
    return ref, truth, z_sp
