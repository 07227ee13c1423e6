"""Throughput and memory: ``latentsky benchmark distances`` (the CMD flow) and ``latentsky benchmark pelsvae``
(light-curve generation and training, :func:`benchmark_pelsvae`).

Benchmarks are not tests (DESIGN.md): this prints figures and asserts nothing. It simulates a small survey
with the workflow's own simulator and dust map, then times, for each model size asked for,

* optimiser steps per second at the configured mini-batch (2048 in the paper),
* the per-round refresh of best-estimate CMD points (stars per second; 32 samples × 5 dust iterations),
* catalog throughput on the same stars and flow for both posterior schemes — the paper's importance
  sampling (10 dust iterations × 32 draws + 512 draws) and the exact grid (config/schema.yaml defaults):
  stars/s, flow evaluations per star, their ratio,

and the peak memory (the process' maximum resident set size; on a GPU torch's peak allocation), with the
extrapolation of each scheme to Gaia DR2's 640 million stars (core-hours on a CPU, GPU-hours on a GPU).
"""

from __future__ import annotations

import resource
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from latentsky.distances.dust import BayestarDust
from latentsky.distances.flow import FlowArchitecture
from latentsky.distances.inputs import stars_from_gaia, training_mask
from latentsky.distances.noise import NoiseModelSettings, train_noise_model
from latentsky.distances.posterior import PosteriorSettings, distance_posteriors
from latentsky.distances.training import CMDFlowTrainer, TrainingSettings, training_points
from latentsky.io.gaia_columns import canonical_gaia
from latentsky.training import describe_device

#: Model sizes: the demo's (config/config.yaml) and the paper's (paper 004 Sec. 3.3).
SIZES = {"demo": FlowArchitecture(6, 64), "paper": FlowArchitecture(35, 500)}


def _peak_rss_mib() -> float:
    # ru_maxrss is KiB on Linux, bytes on macOS.
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 1024.0 if sys.platform != "darwin" else rss / 2**20


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def simulated_stars(n_stars: int, seed: int, workdir: Path):
    """A small simulated survey and its dust map, through the workflow's own simulator."""
    from latentsky.config import load_config
    from latentsky.simulate.dust import SimulatedDustMap, write_bayestar_h5
    from latentsky.simulate.gaia import simulate_gaia_survey

    cfg = load_config(overrides={"seed": seed, "sources": {"gaia": {"simulated": {"n_stars": n_stars}}}})
    dust_map = SimulatedDustMap.from_config(cfg["sources"]["dust"]["simulated"], seed=seed)
    observed_path = write_bayestar_h5(workdir / "bayestar.h5", dust_map, which="observed")
    observed, _ = simulate_gaia_survey(cfg["sources"]["gaia"]["simulated"], dust_map, seed=seed)
    gaia = canonical_gaia(observed, "benchmark survey")
    stars = stars_from_gaia(gaia, 0.029)
    dust = BayestarDust(observed_path)
    keep, _ = training_mask(gaia, stars, dust, ruwe_limit=1.4, min_dec_deg=-30.0)  # as train_cmd_flow
    return stars.subset(np.flatnonzero(keep)), dust


def benchmark_distances(
    sizes: list[str],
    device: torch.device,
    n_stars: int = 20000,
    train_steps: int = 20,
    catalog_stars: int = 300,
    batch_size: int = 2048,
    seed: int = 0,
    fit_steps: int = 300,
    fit_batch_size: int = 512,
) -> list[dict]:
    """Measure each model size; returns one dict of figures per size (also printed by the CLI).

    The catalogs are timed on a flow and a noise model trained for ``fit_steps`` steps of
    ``fit_batch_size`` (not the few timed steps): the grid places its nodes where the posterior has mass,
    so its cost depends on how informative the CMD is. Measured at demo size on the benchmark's stars
    (300 stars): after 5 steps the noise model is so far from a density that the grid spent 47
    evaluations per star on posteriors 0.03 wide in ln(q95/q05); after 50, 300 and 1,500 steps,
    37, 31 and 30 evaluations on posteriors 0.81, 0.65 and 0.48 wide — so 300 steps, if anything,
    overstate the grid's cost. The paper scheme's cost does not depend on the flow (832 per star)."""
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        stars, dust = simulated_stars(n_stars, seed, Path(tmp))
        for size in sizes:
            arch = SIZES[size]
            settings = TrainingSettings(
                architecture=arch, batch_size=batch_size, n_rounds=1, steps_per_round=train_steps + 2
            )
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            t0 = time.perf_counter()
            trainer = CMDFlowTrainer(stars, dust, settings, seed=seed, device=device)
            refresh_s = time.perf_counter() - t0  # round 0 points: no model yet, dust iterations only
            trainer.train(until_step=2)  # warm-up (allocations, kernels)
            _sync(device)
            t0 = time.perf_counter()
            trainer.train(until_step=2 + train_steps)
            _sync(device)
            steps_per_s = train_steps / (time.perf_counter() - t0)

            sub = stars.subset(np.arange(min(len(stars), 4 * batch_size)))
            t0 = time.perf_counter()
            training_points(sub, trainer.model, dust, settings, np.random.default_rng(seed), device)
            _sync(device)
            refresh_with_model = len(sub) / (time.perf_counter() - t0)

            # The photometric-noise model, distilled for as many steps (its cost per step is measured; the
            # catalog's cost per evaluation is the same as the CMD flow's).
            def distil(model: torch.nn.Module, steps: int, batch: int, n_pool: int) -> torch.nn.Module:
                noise = NoiseModelSettings(steps=steps, batch_size=batch, n_pool=n_pool)
                return train_noise_model(model, stars.phot_err, noise, seed, device)[0]

            t0 = time.perf_counter()
            distil(trainer.model, train_steps, batch_size, 4 * batch_size)
            _sync(device)
            noise_steps_per_s = train_steps / (time.perf_counter() - t0)

            # The flow and noise model the catalogs are timed on (see the docstring).
            fit = CMDFlowTrainer(
                stars,
                dust,
                replace(settings, batch_size=fit_batch_size, steps_per_round=fit_steps),
                seed=seed,
                device=device,
            )
            fit.train(until_step=fit_steps)
            fitted_noise_model = distil(fit.model, fit_steps, fit_batch_size, 100 * fit_batch_size)
            cat = stars.subset(np.arange(min(len(stars), catalog_stars)))
            schemes = {}
            runs = {
                "paper": ("paper", "ignore", fit.model),
                "grid": ("grid", "convolve", fitted_noise_model),
                "grid_without_photometric_noise": ("grid", "ignore", fit.model),
            }
            for scheme, (method, noise, model) in runs.items():
                post = replace(
                    PosteriorSettings(),
                    method=method,
                    photometric_noise=noise,
                    batch_size=min(4096, len(cat)),
                )
                if device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats(device)
                t0 = time.perf_counter()
                out = distance_posteriors(cat, model, dust, post, np.random.default_rng(seed), device=device)
                _sync(device)
                seconds = time.perf_counter() - t0
                n_post = max(int(out["n_processed"]), 1)
                schemes[scheme] = {
                    "stars_per_s": len(cat) / seconds,
                    "flow_evaluations_per_star": float(out["flow_evaluations"]) / n_post,
                    "with_posterior": float(np.mean(out["has_posterior"])),
                    "peak_rss_mib": _peak_rss_mib(),
                    "peak_gpu_mib": torch.cuda.max_memory_allocated(device) / 2**20
                    if device.type == "cuda"
                    else None,
                    **_extrapolate(len(cat) / seconds, device),
                }
            results.append(
                {
                    "model": f"{size} ({arch.n_blocks} blocks × {arch.hidden_features} hidden)",
                    "device": describe_device(device),
                    "train_steps_per_s": steps_per_s,
                    "noise_model_steps_per_s": noise_steps_per_s,
                    "batch_size": batch_size,
                    "round_refresh_stars_per_s": refresh_with_model,
                    "round0_refresh_s": refresh_s,
                    "catalog_stars": len(cat),
                    "fit_steps": fit_steps,
                    "fit_batch_size": fit_batch_size,
                    "schemes": schemes,
                    "grid_speedup": schemes["grid"]["stars_per_s"] / schemes["paper"]["stars_per_s"],
                    "grid_without_photometric_noise_speedup": schemes["grid_without_photometric_noise"][
                        "stars_per_s"
                    ]
                    / schemes["paper"]["stars_per_s"],
                    "peak_rss_mib": _peak_rss_mib(),
                    "peak_gpu_mib": torch.cuda.max_memory_allocated(device) / 2**20
                    if device.type == "cuda"
                    else None,
                }
            )
    return results


#: Gaia DR2 sources (paper 004: a posterior for every one of them).
GAIA_DR2_STARS = 640_000_000


def _extrapolate(stars_per_s: float, device: torch.device) -> dict:
    """Hours for 640M stars at this rate: core-hours on a CPU (× torch's threads), GPU-hours on a GPU."""
    hours = GAIA_DR2_STARS / stars_per_s / 3600.0
    if device.type == "cuda":
        return {"gpu_hours_640m": hours, "core_hours_640m": None}
    return {"gpu_hours_640m": None, "core_hours_640m": hours * torch.get_num_threads()}


def format_results(results: list[dict]) -> str:
    lines = []
    for r in results:
        lines.append(f"{r['model']} on {r['device']}")
        lines.append(f"  training: {r['train_steps_per_s']:.2f} steps/s at batch {r['batch_size']}")
        lines.append(f"  noise model (distillation): {r['noise_model_steps_per_s']:.2f} steps/s")
        lines.append(
            f"  round refresh (32 samples × 5 dust iterations): {r['round_refresh_stars_per_s']:.0f} stars/s"
        )
        for method, m in r["schemes"].items():
            cost = (
                f"{m['core_hours_640m']:.3g} core-hours"
                if m["core_hours_640m"] is not None
                else f"{m['gpu_hours_640m']:.3g} GPU-hours"
            )
            lines.append(
                f"  catalog, {method} scheme, {r['catalog_stars']} stars (flow trained {r['fit_steps']} steps of "
                f"{r['fit_batch_size']}): {m['stars_per_s']:.1f} stars/s, "
                f"{m['flow_evaluations_per_star']:.0f} flow evaluations per star, "
                f"{100 * m['with_posterior']:.1f} % with a posterior; 640M stars: {cost}"
            )
        lines.append(
            f"  grid (the catalog's: photometric noise convolved) / paper scheme: {r['grid_speedup']:.1f}× "
            f"the stars per second on the same stars; without the noise model "
            f"{r['grid_without_photometric_noise_speedup']:.1f}×"
        )
        gpu = f", GPU peak {r['peak_gpu_mib']:.0f} MiB" if r["peak_gpu_mib"] is not None else ""
        lines.append(f"  peak memory: RSS {r['peak_rss_mib']:.0f} MiB{gpu}")
    return "\n".join(lines)


def benchmark_pelsvae(
    device: torch.device, *, n_curves: int = 100, n_points: int = 300, repeats: int = 5, seed: int = 0
) -> dict:
    """Generation and training throughput of a paper-size PELS-VAE (Table 2's best: TCN, h 48, 5 blocks).

    Generation is timed as the paper states it (Sec. 4.3: about 1.3 s for 100 light curves): ``n_curves``
    physical vectors → latent vectors (a random forest fitted on synthetic latents; its cost is part of
    the figure) → decoder at ``n_points`` epochs each. The weights are untrained: the time does not depend
    on them. Training is timed as curves per second over a few optimiser steps at batch 128.
    """
    from latentsky.pelsvae.config import CLASSES, PelsVaeConfig
    from latentsky.pelsvae.data import LightCurveScaler, class_one_hot
    from latentsky.pelsvae.model import PelsVae, generate
    from latentsky.pelsvae.regression import make_regressor
    from latentsky.pelsvae.training import PelsVaeTrainer

    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    config = PelsVaeConfig(use_physics=True)
    model = PelsVae(config).to(device).eval()
    scaler = LightCurveScaler(-1.0, 1.0, 0.01, (6000.0, 0.0, 0.0), (1000.0, 1.0, 0.5))
    # A forest of the paper's kind on 100 repeats × 200 objects of synthetic (physics, class, dummy) → z.
    n_fit = 20000
    X = np.column_stack(
        [
            rng.normal(size=(n_fit, 3)),
            np.eye(len(CLASSES))[rng.integers(0, len(CLASSES), n_fit)],
            rng.uniform(size=n_fit),
        ]
    )
    regressor = make_regressor("random_forest", seed).fit(X, rng.normal(size=(n_fit, config.z_dim)))
    onehot = class_one_hot(["RRLYR"] * n_curves, CLASSES)
    times = np.sort(rng.uniform(0, 1000.0, size=(n_curves, n_points)), axis=1)
    period = rng.uniform(0.3, 0.8, size=n_curves)

    def one_batch() -> None:
        physics = np.column_stack([rng.normal(size=(n_curves, 3))])
        z = regressor.predict(np.column_stack([physics, onehot, rng.uniform(size=n_curves)]))
        generate(model, scaler, "RRLYR", z, np.mod(times / period[:, None], 1.0), device=device)
        _sync(device)

    one_batch()  # warm-up (first CUDA kernels, lazy allocations)
    durations = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        one_batch()
        durations.append(time.perf_counter() - t0)

    # Training throughput on synthetic curves of the same length.
    frame = pd.DataFrame(
        {
            "var_class": rng.choice(CLASSES, 512),
            "phase": [np.sort(rng.uniform(size=n_points)) for _ in range(512)],
            "mag": [15 + 0.3 * rng.normal(size=n_points) for _ in range(512)],
            "err": [np.full(n_points, 0.01) for _ in range(512)],
            "teff": rng.uniform(5000, 7000, 512),
            "abs_g": rng.normal(size=512),
            "period": rng.uniform(0.3, 30, 512),
        }
    )
    trainer = PelsVaeTrainer(frame, None, config, seed, device, epochs=1)
    idx = np.arange(config.batch_size)
    trainer._step(idx)  # warm-up
    _sync(device)
    n_steps = 4
    t0 = time.perf_counter()
    for _ in range(n_steps):
        trainer._step(idx)
    _sync(device)
    train_rate = n_steps * config.batch_size / (time.perf_counter() - t0)
    return {
        "model": f"PELS-VAE cVAE-P, TCN h {config.h_size}, {config.n_blocks} blocks, k {config.kernel_size}",
        "device": describe_device(device),
        "n_curves": n_curves,
        "n_points": n_points,
        "generate_s_median": float(np.median(durations)),
        "generate_s_min": float(np.min(durations)),
        "train_curves_per_s": train_rate,
        "batch_size": config.batch_size,
        "peak_rss_mib": _peak_rss_mib(),
    }


def format_pelsvae_results(r: dict) -> str:
    return "\n".join(
        [
            f"{r['model']} on {r['device']}",
            f"  generate {r['n_curves']} light curves × {r['n_points']} epochs (regressor + decoder): "
            f"{r['generate_s_median']:.3f} s median, {r['generate_s_min']:.3f} s best (paper: ~1.3 s)",
            f"  training: {r['train_curves_per_s']:.0f} curves/s at batch {r['batch_size']}",
            f"  peak memory: RSS {r['peak_rss_mib']:.0f} MiB",
        ]
    )


#: DESI DR1's Bright Galaxy Survey (issue 17: ~13 million spectra) and paper 003's training set (70 % of
#: ~250,000 EDR BGS spectra, Sec. 2).
DESI_DR1_BGS_SPECTRA = 13_000_000
PAPER_BGS_TRAINING_SPECTRA = 175_000


def benchmark_bgs(
    device: torch.device,
    n_spectra: int = 256,
    bin_factor: int = 1,
    train_batch_size: int = 64,
    train_steps: int = 3,
    seed: int = 0,
) -> dict:
    """Spectra per second of the BGS catalog's scoring (galaxy and star autoencoders' encoders, the galaxy
    model's fidelity, both latent flows: what ``score_desi_partition`` runs per spectrum) and of a phase-1
    and a phase-2 training step, at ``bin_factor`` (1 = the full 0.8 Å DESI grid, the paper's), on
    simulated spectra read back through the real coadd reader; with the extrapolations to DESI DR1 BGS
    (scoring) and to one epoch over paper 003's training set. Untrained weights: the cost of a pass does not
    depend on them."""
    from latentsky.bgs.autoencoder import (
        SpenderSettings,
        build_autoencoder,
        spectra_tensors,
        train_autoencoder,
    )
    from latentsky.bgs.catalog import BgsModels, score_spectra
    from latentsky.bgs.flow import build_flow
    from latentsky.io.desi import read_desi_coadd
    from latentsky.simulate.desi import simulate_desi, write_desi_files

    torch.manual_seed(seed)
    with tempfile.TemporaryDirectory() as tmp:
        sim = simulate_desi({"n_bgs": n_spectra, "n_mws": 0, "outlier_fraction": 0.0}, seed)
        coadd, redrock = Path(tmp) / "coadd.fits", Path(tmp) / "redrock.fits"
        write_desi_files(sim, np.arange(n_spectra), coadd, redrock)
        t0 = time.perf_counter()
        spectra = read_desi_coadd(coadd, redrock)
        read_s = time.perf_counter() - t0
    table = spectra.table()
    usable = table[table["flags"] == 0]
    settings = SpenderSettings(bin_factor=bin_factor, batch_size=train_batch_size)
    galaxy_ae, instrument = build_autoencoder(settings)
    star_ae, _ = build_autoencoder(settings)
    galaxy_ae, star_ae, instrument = (
        galaxy_ae.to(device).eval(),
        star_ae.to(device).eval(),
        instrument.to(device),
    )
    data = spectra_tensors(
        np.stack(usable["flux"].to_numpy()),
        np.stack(usable["ivar"].to_numpy()),
        usable["z"].to_numpy(),
        bin_factor,
        device,
    )
    with torch.no_grad():
        latents = galaxy_ae.encode(data.spec[: min(len(data), 64)]).cpu().numpy()
    models = BgsModels(galaxy_ae, build_flow(latents), star_ae, build_flow(latents), instrument, bin_factor)
    score_spectra(usable.iloc[:8], models, str(device))  # warm-up
    _sync(device)
    t0 = time.perf_counter()
    scores = score_spectra(table, models, str(device))
    _sync(device)
    score_s = time.perf_counter() - t0
    n_scored = int(scores.usable.sum())

    def train_seconds(steps: int, phase1: int, phase2: int) -> float:
        idx = np.resize(np.arange(len(data)), train_batch_size * steps)
        run = replace(settings, epochs_phase1=phase1, epochs_phase2=phase2, lr_schedule="constant")
        _sync(device)
        t0 = time.perf_counter()
        train_autoencoder(data.index(idx), data.index(idx[:2]), run, seed=seed, device=device)
        _sync(device)
        return time.perf_counter() - t0

    def train_rate(phase1: int, phase2: int) -> float:
        # One step and 1 + train_steps steps: the difference leaves out building the model and the
        # validation pass, which a long run pays once per run or epoch.
        once = train_seconds(1, phase1, phase2)
        more = train_seconds(1 + train_steps, phase1, phase2)
        return train_steps * train_batch_size / max(more - once, 1e-9)

    phase1, phase2 = train_rate(1, 0), train_rate(0, 1)
    scoring_rate = n_scored / score_s
    hours = DESI_DR1_BGS_SPECTRA / scoring_rate / 3600.0
    threads = 1 if device.type == "cuda" else torch.get_num_threads()
    return {
        "device": describe_device(device),
        "bin_factor": bin_factor,
        "pixels": int(data.spec.shape[1]),
        "n_scored": n_scored,
        "read_spectra_per_s": len(table) / read_s,
        "score_spectra_per_s": scoring_rate,
        "train_batch_size": train_batch_size,
        "phase1_spectra_per_s": phase1,
        "phase2_spectra_per_s": phase2,
        "dr1_scoring_hours": hours,
        "dr1_scoring_core_hours": None if device.type == "cuda" else hours * threads,
        "paper_epoch_hours": PAPER_BGS_TRAINING_SPECTRA / phase2 / 3600.0,
        "peak_rss_mib": _peak_rss_mib(),
        "peak_gpu_mib": torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None,
    }


def format_bgs_results(r: dict) -> str:
    unit = "GPU-hours" if r["dr1_scoring_core_hours"] is None else "core-hours"
    cost = r["dr1_scoring_hours"] if r["dr1_scoring_core_hours"] is None else r["dr1_scoring_core_hours"]
    gpu = f", GPU peak {r['peak_gpu_mib']:.0f} MiB" if r["peak_gpu_mib"] is not None else ""
    return "\n".join(
        [
            f"spender autoencoder at bin factor {r['bin_factor']} ({r['pixels']} pixels) on {r['device']}",
            f"  read (coadd + Redrock → normalised spectra): {r['read_spectra_per_s']:.0f} spectra/s",
            f"  score (two encoders, fidelity, two flows), {r['n_scored']} spectra: "
            f"{r['score_spectra_per_s']:.1f} spectra/s; DESI DR1 BGS ({DESI_DR1_BGS_SPECTRA / 1e6:.0f}M): "
            f"{r['dr1_scoring_hours']:.3g} h wall, {cost:.3g} {unit}",
            f"  training at batch {r['train_batch_size']}: phase 1 (fidelity) {r['phase1_spectra_per_s']:.1f} "
            f"spectra/s, phase 2 (augmentation, similarity, consistency) {r['phase2_spectra_per_s']:.1f} "
            f"spectra/s; one phase-2 epoch over paper 003's {PAPER_BGS_TRAINING_SPECTRA:,} training spectra: "
            f"{r['paper_epoch_hours']:.3g} h",
            f"  peak memory: RSS {r['peak_rss_mib']:.0f} MiB{gpu}",
        ]
    )


#: Gaia DR3's XP spectra (paper 001: "220+ million") and the paper's cross-match training set (Sec. 2.3:
#: ~5×10⁵, 90 % of it trained on).
GAIA_DR3_XP_SPECTRA = 220_000_000
PAPER_XP_TRAINING_STARS = 450_000


def benchmark_xp(
    device: torch.device, *, n_encode: int = 200_000, n_train: int = 40_960, seed: int = 0
) -> dict:
    """Encoding and training throughput of both scatter-VAE presets (paper 001).

    Encoding: ``n_encode`` standardised spectra → μ, ln σ², x̂ and ŝ at μ (what the catalog stores), in
    batches of 8,192. Training: one epoch of :func:`latentsky.xp.svae.train_svae` at the preset's batch size
    on ``n_train`` stars, including its end-of-epoch passes over the training and validation sets. The
    weights do not change the cost, so random inputs stand in for spectra."""
    from latentsky.xp.svae import SvaeSettings, build_svae, encode_xp, train_svae

    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    x = rng.normal(size=(n_encode, 110)).astype(np.float32)
    presets = {
        "paper": SvaeSettings(epochs=1),
        "code": SvaeSettings(architecture="code", loss_reduction="sum", optimizer="adamw", lr=1e-4, epochs=1),
    }
    out: dict = {"device": describe_device(device), "n_encode": n_encode, "n_train": n_train, "presets": {}}
    for name, settings in presets.items():
        model = build_svae(settings).to(device).eval()
        encode_xp(model, x[:8192])  # warm-up
        _sync(device)
        t0 = time.perf_counter()
        encode_xp(model, x)
        _sync(device)
        encode_rate = n_encode / (time.perf_counter() - t0)
        xt = x[:n_train].astype(np.float64)
        sets = (xt, np.full_like(xt, 0.05), np.ones_like(xt))
        val = tuple(a[: n_train // 9] for a in sets)
        t0 = time.perf_counter()
        train_svae(sets, val, settings, seed=seed, device=device)
        _sync(device)
        epoch_rate = n_train / (time.perf_counter() - t0)
        out["presets"][name] = {
            "encode_stars_per_s": encode_rate,
            "train_stars_per_s": epoch_rate,
            "batch_size": settings.batch_size,
            "dr3_encode_hours": GAIA_DR3_XP_SPECTRA / encode_rate / 3600,
            "paper_epoch_s": PAPER_XP_TRAINING_STARS / epoch_rate,
        }
    out["peak_rss_mib"] = _peak_rss_mib()
    return out


def format_xp_results(r: dict) -> str:
    lines = [f"scatter VAE (paper 001) on {r['device']}"]
    epochs = {"paper": 100, "code": 5000}  # paper Sec. 2.3; the authors' train.log
    for name, p in r["presets"].items():
        lines += [
            f"  preset {name}: encode {p['encode_stars_per_s']:,.0f} stars/s → all {GAIA_DR3_XP_SPECTRA / 1e6:.0f}M "
            f"DR3 XP spectra in {p['dr3_encode_hours']:.2f} h",
            f"    training {p['train_stars_per_s']:,.0f} stars/s at batch {p['batch_size']} → one epoch of "
            f"{PAPER_XP_TRAINING_STARS:,} stars {p['paper_epoch_s']:.0f} s, {epochs[name]} epochs "
            f"{p['paper_epoch_s'] * epochs[name] / 3600:.1f} h",
        ]
    lines.append(f"  peak memory: RSS {r['peak_rss_mib']:.0f} MiB")
    return "\n".join(lines)


#: Cycle-StarNet's iterations in paper 002 App. B (one generator and one critic step each, batch 8 per domain).
PAPER_CYCLESTARNET_ITERATIONS = 350_000

#: Sizes timed by :func:`benchmark_cyclestarnet`: (``NetworkSettings`` keywords, batch per domain). The demo's
#: is ``NetworkSettings``' defaults at batch 16 (spec B2.3); the paper's is Table 1 (7,167 pixels, full widths,
#: z_sh 25 and z_sp 4 channels, §4.1) at App. B's batch of 8.
CYCLESTARNET_SIZES: dict[str, tuple[dict, int]] = {
    "demo": ({}, 16),
    "paper": ({"n_pixels": 7167, "width_factor": 1.0, "shared_z_filters": 25, "split_z_filters": 4}, 8),
}


def benchmark_cyclestarnet(
    device: torch.device,
    *,
    sizes: Sequence[str] = ("demo", "paper"),
    iterations: int = 10,
    warmup: int = 2,
    threads: int | None = None,
    seed: int = 0,
) -> dict:
    """Seconds per Cycle-StarNet training iteration (a generator and a critic step, paper 002 §3.1 and App. B)
    for each size in ``sizes`` (keys of :data:`CYCLESTARNET_SIZES`), in fp32 and, where the device has bfloat16
    arithmetic (:func:`latentsky.training.resolve_precision` of ``"auto"``), in bf16.

    Each configuration is one call of :func:`latentsky.cyclestarnet.training.train_cyclestarnet` for
    ``warmup + iterations`` iterations on random standardised spectra (N(0, 1) pixels: the cost of an
    iteration does not depend on the values), so the timed code is the trainer's own. Its ``progress``
    callback stamps the clock after every iteration; the first ``warmup`` iterations (allocations, kernel
    selection, Adam's lazily created state) are left out, and the median of the other intervals — robust to a
    loaded machine descheduling the process now and then — is the figure. Every interval also holds the
    trainer's paired validation (run here after each iteration, so that the callback fires), on two spectra; its
    median, timed apart with :func:`latentsky.cyclestarnet.training.paired_validation` on the trained model, is
    subtracted (about 5 % of an iteration on a CPU).

    Parameters
    ----------
    device : where to train.
    sizes : which of :data:`CYCLESTARNET_SIZES` to time.
    iterations : timed iterations per configuration (≥ 1).
    warmup : iterations before the timed ones (≥ 1: the first iteration has no interval to time).
    threads : torch's intra-op threads during the benchmark (``None``: torch's default, usually the cores).
    seed : of the spectra and the weights.

    Returns
    -------
    dict
        ``device``, ``threads``, ``iterations``, ``warmup``, ``demo_iterations`` (the demo's budget, from
        ``TrainingSettings``), ``peak_rss_mib`` and ``runs``: one dict per (size, precision) with ``size``,
        ``precision``, ``n_pixels``, ``width_factor``, ``shared_z_filters``, ``split_z_filters``, ``batch_size``,
        ``s_per_iteration``, ``iterations_per_s``, ``validation_s``, ``paper_hours`` (paper size only: 350,000
        iterations) or ``demo_minutes`` (demo size only), ``peak_gpu_mib`` (``None`` off a GPU).
    """
    from latentsky.cyclestarnet.model import NetworkSettings
    from latentsky.cyclestarnet.training import (
        Domains,
        TrainingSettings,
        paired_validation,
        train_cyclestarnet,
    )
    from latentsky.training import resolve_precision

    if iterations < 1 or warmup < 1:
        raise ValueError(f"need iterations ≥ 1 and warmup ≥ 1; got {iterations} and {warmup}")
    unknown = sorted(set(sizes) - set(CYCLESTARNET_SIZES))
    if unknown:
        raise ValueError(
            f"unknown Cycle-StarNet size(s) {unknown}; expected some of {list(CYCLESTARNET_SIZES)}"
        )
    precisions = ["fp32"] + (["bf16"] if resolve_precision("auto", device) == "bf16" else [])
    # 0.005 (the synthetic domain's error, paper §4.1.2) over the authors' flux scale 0.05181: the standardised
    # error the trainer divides by; any positive value costs the same.
    error = 0.005 / 0.05181
    threads_before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    out: dict = {
        "device": describe_device(device),
        "threads": torch.get_num_threads(),
        "iterations": iterations,
        "warmup": warmup,
        "demo_iterations": TrainingSettings().iterations,
        "runs": [],
    }
    try:
        for size in sizes:
            keywords, batch = CYCLESTARNET_SIZES[size]
            network = NetworkSettings(**keywords)
            n_train = 4 * batch  # unpaired training spectra per domain; each batch draws from them
            x = (
                np.random.default_rng(seed)
                .normal(size=(2 * n_train + 4, network.n_pixels))
                .astype(np.float32)
            )
            domains = Domains(
                synth=x[:n_train],
                obs=x[n_train : 2 * n_train],
                obs_error=np.full((n_train, network.n_pixels), error, np.float32),
                obs_weight=np.ones((n_train, network.n_pixels), np.float32),
                val_synth=x[-4:-2],
                val_obs=x[-2:],
                val_obs_error=np.full((2, network.n_pixels), error, np.float32),
                val_obs_weight=np.ones((2, network.n_pixels), np.float32),
                synth_error=error,
            )
            for precision in precisions:
                settings = TrainingSettings(
                    batch_size=batch,
                    iterations=warmup + iterations,
                    warmup_reconstruction_only=0,  # the authors' schedule; the same cost either way
                    validate_every=1,  # the progress callback fires after each iteration's validation
                    precision=precision,
                )
                stamps: list[float] = []

                def stamp(done: int, row: dict[str, float], stamps: list[float] = stamps) -> None:
                    _sync(device)
                    stamps.append(time.perf_counter())

                if device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats(device)
                model, _ = train_cyclestarnet(
                    domains, network, settings, seed=seed, device=device, progress=stamp
                )
                # stamps[k] follows iteration k + 1, so interval j (stamps[j + 1] − stamps[j]) is iteration j + 2:
                # the timed iterations warmup + 1 … warmup + iterations are intervals warmup − 1 onwards.
                intervals = np.diff(stamps)[warmup - 1 :]
                val = [
                    torch.as_tensor(a, device=device)
                    for a in (
                        domains.val_synth,
                        domains.val_obs,
                        domains.val_obs_error,
                        domains.val_obs_weight,
                    )
                ]
                validation = []
                for _ in range(iterations):
                    t0 = time.perf_counter()
                    paired_validation(model, *val, synth_error=error)
                    _sync(device)
                    validation.append(time.perf_counter() - t0)
                validation_s = float(np.median(validation))
                s_per_it = float(np.median(intervals)) - validation_s
                run = {
                    "size": size,
                    "precision": precision,
                    "n_pixels": network.n_pixels,
                    "width_factor": network.width_factor,
                    "shared_z_filters": network.shared_z_filters,
                    "split_z_filters": network.split_z_filters,
                    "batch_size": batch,
                    "s_per_iteration": s_per_it,
                    "iterations_per_s": 1.0 / s_per_it,
                    "validation_s": validation_s,
                    "peak_gpu_mib": torch.cuda.max_memory_allocated(device) / 2**20
                    if device.type == "cuda"
                    else None,
                }
                if size == "paper":
                    run["paper_hours"] = PAPER_CYCLESTARNET_ITERATIONS * s_per_it / 3600.0
                else:
                    run["demo_minutes"] = out["demo_iterations"] * s_per_it / 60.0
                out["runs"].append(run)
    finally:
        torch.set_num_threads(threads_before)
    out["peak_rss_mib"] = _peak_rss_mib()
    return out


def format_cyclestarnet_results(r: dict) -> str:
    """The lines ``latentsky benchmark cyclestarnet`` prints for a :func:`benchmark_cyclestarnet` result: one per
    (size, precision) with s/it, it/s and the run's budget in wall time (the paper's 350,000 iterations in hours,
    the demo's in minutes), every figure to 4 significant digits."""
    lines = [
        f"Cycle-StarNet (paper 002) training on {r['device']}, {r['threads']} torch thread(s): median of "
        f"{r['iterations']} iterations (generator + critic step) after {r['warmup']} warm-up, paired "
        f"validation timed apart and subtracted"
    ]
    for run in r["runs"]:
        if "paper_hours" in run:
            budget = f"the paper's {PAPER_CYCLESTARNET_ITERATIONS:,} iterations in {run['paper_hours']:.4g} h"
        else:
            budget = f"the demo's {r['demo_iterations']:,} iterations in {run['demo_minutes']:.4g} min"
        gpu = f", GPU peak {run['peak_gpu_mib']:.0f} MiB" if run["peak_gpu_mib"] is not None else ""
        lines.append(
            f"  {run['size']} ({run['n_pixels']:,} px, widths × {run['width_factor']:g}, z_sh "
            f"{run['shared_z_filters']}, z_sp {run['split_z_filters']}, batch {run['batch_size']}), "
            f"{run['precision']}: {run['s_per_iteration']:.4g} s/it, {run['iterations_per_s']:.4g} it/s "
            f"→ {budget}{gpu}"
        )
    lines.append(f"  peak memory: RSS {r['peak_rss_mib']:.0f} MiB")
    return "\n".join(lines)
