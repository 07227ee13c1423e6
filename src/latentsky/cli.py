"""The ``latentsky`` command line: tools a user runs beside the workflow.

``latentsky --help`` lists the commands; each command has its own ``--help``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence

from latentsky import __version__


def _run_audit(args: argparse.Namespace) -> int:
    from latentsky.provenance.audit import audit

    result = audit(args.path, manifest=args.manifest, root=args.root, lineage_only=args.lineage_only)
    if not args.quiet:
        print(f"workflow root: {result.root}")
        print(f"manifest: {result.manifest or 'not found'}")
        print()
        print("\n".join(result.lines))
        print()
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if result.ok:
        print(
            f"audit passed: {result.target} and {result.files_checked - 1} file(s) in its lineage as recorded"
        )
        return 0
    first = result.first_mismatch
    print(f"audit FAILED: {first}", file=sys.stderr)
    if len(result.mismatches) > 1:
        print(
            f"({len(result.mismatches) - 1} further mismatch(es) listed in the tree above)", file=sys.stderr
        )
    return 1


def _run_provenance(args: argparse.Namespace) -> int:
    from latentsky.provenance.files import ProvenanceError, read_provenance

    try:
        record = read_provenance(args.path)
    except ProvenanceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(record, indent=2, sort_keys=True))
    return 0


def _parse_dust(spec: str) -> tuple[dict, str | None]:
    """``none`` | ``constant:E`` | ``bayestar:PATH`` → (distances.dust block, map path)."""
    kind, _, value = spec.partition(":")
    if kind == "none" and not value:
        return {"kind": "none", "reddening": 0.0}, None
    if kind == "constant" and value:
        try:
            return {"kind": "constant", "reddening": float(value)}, None
        except ValueError:
            pass
    if kind == "bayestar" and value:
        return {"kind": "map", "reddening": 0.0}, value
    raise argparse.ArgumentTypeError(
        f"--dust {spec!r}: expected 'none', 'constant:E' (E in Bayestar units: 1 unit = 0.901 mag of E(g−r)) or 'bayestar:PATH'"  # noqa: E501
    )


def _distances_settings(args: argparse.Namespace) -> dict:
    """The ``distances`` block: schema defaults, then --config, then the command-line flags."""
    from latentsky.config import load_config

    paths = [args.config] if args.config else []
    overrides: dict = {"distances": {}}
    d = overrides["distances"]
    d["dust"], _ = args.dust
    d["device"] = args.device
    if args.parallax_offset is not None:
        d["parallax_offset_mas"] = args.parallax_offset
    if args.parallax_zero_point is not None:
        d["parallax_zero_point"] = args.parallax_zero_point
    if args.gaia_release is not None:
        d["gaia_release"] = args.gaia_release
    if getattr(args, "blocks", None) is not None:
        d.setdefault("flow", {})["n_blocks"] = args.blocks
    if getattr(args, "hidden", None) is not None:
        d.setdefault("flow", {})["hidden_features"] = args.hidden
    if getattr(args, "rounds", None) is not None:
        d.setdefault("training", {})["n_rounds"] = args.rounds
    if getattr(args, "steps_per_round", None) is not None:
        d.setdefault("training", {})["steps_per_round"] = args.steps_per_round
    post = d.setdefault("posterior", {})
    if getattr(args, "method", None) is not None:
        post["method"] = args.method
    if getattr(args, "posterior_samples", None) is not None:
        post.setdefault("paper", {})["n_samples"] = args.posterior_samples
    if getattr(args, "prior", None) is not None:
        post["prior"] = args.prior
    if getattr(args, "prior_length_kpc", None) is not None:
        post["prior_length_kpc"] = args.prior_length_kpc
    if getattr(args, "prior_table", None) is not None:
        post["prior_table"] = args.prior_table
    base = {} if paths else {"seed": args.seed, "sources": {}}
    config = load_config(*paths, overrides={**base, **overrides, "seed": args.seed})
    return config["distances"]


@dataclasses.dataclass
class _DistanceJob:
    """What both `distances` steps need: settings, the table, device, dust, and a provenance record."""

    distances: dict
    gaia: object
    device: object
    dust: object
    inputs: list
    record: dict


def _distance_job(args: argparse.Namespace, rule: str, extra_inputs: list) -> _DistanceJob:
    from latentsky.distances.inputs import dust_source
    from latentsky.io.gaia import concat_gaia_tables, read_gaia_table
    from latentsky.provenance.record import build_record
    from latentsky.training import describe_device, resolve_device

    distances = _distances_settings(args)
    _, map_path = args.dust
    gaia = concat_gaia_tables([read_gaia_table(t, u0_table=args.u0_table) for t in args.tables], args.tables)
    gaia.attrs["source"] = ", ".join(args.tables)  # what messages about the stacked table name
    device = resolve_device(distances["device"])
    inputs = [*args.tables, *extra_inputs, *([map_path] if map_path else [])]
    record = build_record(
        rule=rule,
        inputs=inputs,
        params={"distances": distances},
        config={"distances": distances, "seed": args.seed},
        seed=args.seed,
        device=describe_device(device),
    )
    return _DistanceJob(distances, gaia, device, dust_source(distances["dust"], map_path), inputs, record)


def _run_distances_train(args: argparse.Namespace) -> int:
    from latentsky.distances.pipeline import train_cmd_flow
    from latentsky.provenance.files import save_checkpoint
    from latentsky.provenance.record import sha256_file

    job = _distance_job(args, "latentsky distances train", [])
    digests = [sha256_file(p) for p in job.inputs]
    result = train_cmd_flow(job.gaia, job.dust, job.distances, args.seed, job.device, input_digests=digests)
    state = result.model_state()
    extra = {k: state[k] for k in ("n_train_stars", "removed_by_cut", "final_step", "noise_model_final_loss")}
    save_checkpoint(state, args.out, {**job.record, "extra": extra})
    print(
        f"trained on {result.n_train_stars} of {len(job.gaia)} stars (removed: {result.removed_by_cut}); "
        f"final loss {result.trainer.losses[-1]:.4f}; model written to {args.out}"
    )
    return 0


def _run_distances_catalog(args: argparse.Namespace) -> int:
    from latentsky.distances.pipeline import load_cmd_flow, posterior_catalog
    from latentsky.provenance.files import write_parquet

    job = _distance_job(args, "latentsky distances catalog", [args.model])
    flow = load_cmd_flow(args.model, job.device)
    catalog = posterior_catalog(job.gaia, flow, job.dust, job.distances, args.seed, job.device)
    write_parquet(catalog, args.out, job.record)
    has = catalog["has_posterior"]
    print(
        f"{len(catalog)} stars, {int(has.sum())} with a posterior; median distance "
        f"{catalog.loc[has, 'dist_q50'].median():.1f} pc; catalog written to {args.out}"
    )
    return 0


def _add_distance_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "tables", nargs="+", help="Gaia tables: CSV(.gz), ECSV, VOTable, FITS, Parquet or TAP JSON"
    )
    p.add_argument(
        "--dust",
        type=_parse_dust,
        default=_parse_dust("none"),
        help="none | constant:E | bayestar:PATH (a Bayestar-layout HDF5 map, e.g. bayestar2019.h5); default none",
    )
    p.add_argument("--config", help="YAML with a `distances:` block (config/schema.yaml) to start from")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda[:N] (default auto)")
    p.add_argument(
        "--parallax-offset",
        type=float,
        default=None,
        help="mas added to every parallax (default: the release's global offset, 0.029 for DR2 and 0.017 "
        "for (E)DR3; with --parallax-zero-point lindegren2021, for the stars outside its calibration)",
    )
    p.add_argument(
        "--parallax-zero-point",
        choices=["none", "lindegren2021"],
        default=None,
        help="none: the global offset; lindegren2021: the per-star (E)DR3 zero point of Lindegren et al. "
        "(2021), which needs nu_eff_used_in_astrometry, pseudocolour, ecl_lat, astrometric_params_solved",
    )
    p.add_argument(
        "--gaia-release",
        choices=["auto", "dr2", "dr3"],
        default=None,
        help="the tables' release (default auto: from their columns), which sets the default offset",
    )
    p.add_argument(
        "--u0-table",
        help="ESA's DR2 RUWE normalisation (table_u0_g_col.txt, or the directory with both of its tables); "
        "without it DR2 RUWE uses an empirical u0 and the rows are flagged ruwe_empirical_u0",
    )
    p.add_argument("--out", required=True, help="output file")


def _run_benchmark_distances(args: argparse.Namespace) -> int:
    from latentsky.benchmark import benchmark_distances, format_results
    from latentsky.training import resolve_device

    sizes = ["demo", "paper"] if args.size == "both" else [args.size]
    results = benchmark_distances(
        sizes,
        resolve_device(args.device),
        n_stars=args.stars,
        train_steps=args.steps,
        catalog_stars=args.catalog_stars,
        fit_steps=args.fit_steps,
    )
    print(format_results(results))
    return 0


def _read_request_table(path: str):
    import pandas as pd

    if path.lower().endswith((".parquet", ".pq")):
        return pd.read_parquet(path)
    from astropy.table import Table

    return Table.read(path, format="ascii").to_pandas()


def _run_generate_lightcurves(args: argparse.Namespace) -> int:
    import numpy as np

    from latentsky.pelsvae.generation import (
        generate_lightcurves,
        read_requests,
        read_times_table,
        request_times,
    )
    from latentsky.pelsvae.regression import load_regressors
    from latentsky.pelsvae.training import load_pelsvae
    from latentsky.provenance.files import write_parquet
    from latentsky.provenance.record import build_record
    from latentsky.training import describe_device, resolve_device

    if args.requests:
        requests = read_requests(_read_request_table(args.requests))
    else:
        one = {"var_class": args.var_class, "teff": args.teff, "abs_g": args.abs_g, "period": args.period}
        if any(v is None for v in one.values()):
            print("error: give --requests FILE, or --class, --teff, --abs-g and --period", file=sys.stderr)
            return 2
        requests = read_requests(
            [{**one, "t0": args.t0, "n_samples": args.n_samples, "median_mag": args.median_mag}]
        )
    if (args.times is None) == (args.cadence is None):
        print("error: give exactly one of --times FILE and --cadence SPEC", file=sys.stderr)
        return 2
    device = resolve_device(args.device)
    rng = np.random.default_rng(args.seed)
    model, scaler, _, _ = load_pelsvae(args.model, str(device))
    regressors = load_regressors(args.regressors)
    table = read_times_table(args.times) if args.times else None
    times = request_times(requests, rng, cadence=args.cadence, times_table=table)
    curves = generate_lightcurves(
        model,
        scaler,
        regressors,
        args.regressor,
        requests,
        times,
        rng,
        device=str(device),
        latent_sampling=args.latent_sampling,
    )
    inputs = [
        args.model,
        args.regressors,
        *([args.requests] if args.requests else []),
        *([args.times] if args.times else []),
    ]
    params = {
        "regressor": args.regressor,
        "latent_sampling": args.latent_sampling,
        "cadence": args.cadence,
        "requests": requests.drop(columns="request").to_dict(orient="records") if not args.requests else None,
    }
    record = build_record(
        rule="generate-lightcurves",
        inputs=inputs,
        params=params,
        config={"generation": params, "seed": args.seed},
        seed=args.seed,
        device=describe_device(device),
    )
    write_parquet(curves, args.out, record)
    print(f"wrote {len(curves)} light curves ({len(requests)} requests) to {args.out}")
    return 0


def _run_score_desi(args: argparse.Namespace) -> int:
    from pathlib import Path

    from latentsky.bgs.catalog import load_bgs_models, score_spectra
    from latentsky.io.desi import read_desi_coadds
    from latentsky.provenance.files import write_parquet
    from latentsky.provenance.record import build_record
    from latentsky.training import describe_device, resolve_device

    if args.redrock and len(args.redrock) != len(args.coadd):
        print("error: give one --redrock per coadd, or none (found beside each coadd)", file=sys.stderr)
        return 2
    redrock = args.redrock or [None] * len(args.coadd)
    models_dir = Path(args.models)
    files = {
        name: models_dir / f"{name}.pt"
        for name in ("bgs_autoencoder", "bgs_flow", "mws_autoencoder", "mws_flow")
    }
    missing = [str(f) for f in files.values() if not f.exists()]
    if missing:
        print(f"error: model files not found: {missing} (the train_bgs_* rules write them)", file=sys.stderr)
        return 2
    torch_device = resolve_device(args.device)
    device = str(torch_device)
    models = load_bgs_models(*files.values(), device=device, bin_factor=args.bin_factor)
    spectra = read_desi_coadds(
        list(zip(args.coadd, redrock, strict=True)), z_range=args.z_range, target_class=args.target_class
    )
    scores = score_spectra(spectra.table(), models, device)
    inputs = [*args.coadd, *(r for r in redrock if r), *files.values()]
    params = {"target_class": args.target_class, "z_range": args.z_range, "bin_factor": models.bin_factor}
    record = build_record(
        rule="score-desi",
        inputs=inputs,
        params=params,
        config={"bgs": params},
        device=describe_device(torch_device),
    )
    write_parquet(scores.catalog, args.out, record)
    if len(scores.catalog) == 0:
        # Not an error: a tile may hold no target of the class; a batch over many coadds keeps going.
        what = f"{args.target_class.upper()} targets" if args.target_class else "targets"
        print(f"no {what} in {', '.join(map(str, args.coadd))}: wrote an empty catalog to {args.out}")
        return 0
    print(f"wrote {len(scores.catalog)} rows ({int(scores.usable.sum())} scored) to {args.out}")
    for row in scores.catalog.itertuples():
        verdict = (
            f"log p_galaxy {row.log_p_galaxy:.2f}  quantile {row.galaxy_quantile:.3f}  "
            f"log p_star − log p_galaxy {row.log_likelihood_ratio:+.2f}  reduced χ² {row.fidelity:.2f}"
            if row.has_probability
            else f"not scored: {row.flag_names}"
        )
        print(f"  {row.target_id}  z {row.z:.5f}  {verdict}")
    return 0


def _run_xp_encode(args: argparse.Namespace) -> int:
    """Latents, scatter and anomaly scores of a user's XP table under a trained scatter VAE (paper 001)."""
    from pathlib import Path

    from latentsky.io.gaia_xp import read_xp_continuous
    from latentsky.provenance.files import write_parquet
    from latentsky.provenance.record import build_record
    from latentsky.training import describe_device, resolve_device
    from latentsky.xp.catalog import full_covariance_chi2_of_file, xp_catalog
    from latentsky.xp.svae import load_svae

    if not Path(args.model).is_file():
        print(f"error: model file not found: {args.model} (rule train_svae writes it)", file=sys.stderr)
        return 2
    device = resolve_device(args.device)
    model, settings, norm = load_svae(args.model, device)
    # With the archive's correlations the catalog gets its full-covariance χ²: a Parquet file is read for them
    # in batches of rows (they are most of its bytes), any other format at once.
    is_parquet = Path(args.table).suffix.lower() in (".parquet", ".pq")
    table = read_xp_continuous(args.table, with_correlations=not is_parquet)
    full = full_covariance_chi2_of_file(args.table, model, norm, args.missing_band) if is_parquet else None
    catalog = xp_catalog(
        {"user": (table, None)},
        model,
        norm,
        missing_band=args.missing_band,
        full_cov_chi2=None if full is None else {"user": full},
    )
    params = {"missing_band": args.missing_band, "architecture": settings.architecture}
    record = build_record(
        rule="xp-encode",
        inputs=[args.table, args.model],
        params=params,
        config={"svae": params},
        device=describe_device(device),
    )
    write_parquet(catalog, args.out, record)
    n = int(catalog["has_latent"].sum())
    print(f"wrote {len(catalog)} rows ({n} with a latent) to {args.out}")
    for row in catalog.loc[~catalog["has_latent"]].itertuples():
        print(f"  {row.source_id}: no latent ({row.flag_names})")
    if not catalog["g_flux_source"].eq("phot_g_mean_flux").all():
        print(
            "  note: some G fluxes came from phot_g_mean_mag (zero point 25.6874) or are missing; see g_flux_source"
        )
    return 0


def _run_benchmark_pelsvae(args: argparse.Namespace) -> int:
    from latentsky.benchmark import benchmark_pelsvae, format_pelsvae_results
    from latentsky.training import resolve_device

    result = benchmark_pelsvae(
        resolve_device(args.device), n_curves=args.curves, n_points=args.points, repeats=args.repeats
    )
    print(format_pelsvae_results(result))
    return 0


def _run_benchmark_xp(args: argparse.Namespace) -> int:
    from latentsky.benchmark import benchmark_xp, format_xp_results
    from latentsky.training import resolve_device

    print(
        format_xp_results(benchmark_xp(resolve_device(args.device), n_encode=args.stars, n_train=args.train))
    )
    return 0


def _run_benchmark_cyclestarnet(args: argparse.Namespace) -> int:
    from latentsky.benchmark import benchmark_cyclestarnet, format_cyclestarnet_results
    from latentsky.training import resolve_device

    if args.iterations < 1 or args.warmup < 1 or (args.threads is not None and args.threads < 1):
        print("error: need --iterations ≥ 1, --warmup ≥ 1 and --threads ≥ 1", file=sys.stderr)
        return 2
    result = benchmark_cyclestarnet(
        resolve_device(args.device),
        sizes=["demo", "paper"] if args.size == "both" else [args.size],
        iterations=args.iterations,
        warmup=args.warmup,
        threads=args.threads,
    )
    print(format_cyclestarnet_results(result))
    return 0


def _run_benchmark_bgs(args: argparse.Namespace) -> int:
    from latentsky.benchmark import benchmark_bgs, format_bgs_results
    from latentsky.training import resolve_device

    if args.spectra < 8 or args.bin_factor < 1 or args.train_batch < 2 or args.train_steps < 1:
        print(
            "error: need --spectra ≥ 8, --bin-factor ≥ 1, --train-batch ≥ 2, --train-steps ≥ 1",
            file=sys.stderr,
        )
        return 2
    result = benchmark_bgs(
        resolve_device(args.device),
        n_spectra=args.spectra,
        bin_factor=args.bin_factor,
        train_batch_size=args.train_batch,
        train_steps=args.train_steps,
    )
    print(format_bgs_results(result))
    return 0


def _run_compare_runs(args: argparse.Namespace) -> int:
    from latentsky.provenance.compare import compare_parquet_trees

    result = compare_parquet_trees(args.a, args.b)
    for path, why in sorted(result.mismatches.items()):
        print(f"DIFFERS {path}: {why}")
    print(
        f"{result.compared} Parquet/JSON files compared, {len(result.mismatches)} differ "
        "(key-value metadata, JSON provenance and manifest sha256 and size left out)"
    )
    return 0 if result.compared and not result.mismatches else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="latentsky",
        description="latentsky: survey data to released catalogs with deep generative models. "
        "Run the workflow with `snakemake` (see README); these commands work beside it.",
    )
    parser.add_argument("--version", action="version", version=f"latentsky {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser(
        "audit",
        help="check a released file against the manifest and every file in its lineage",
        description="Check PATH's hash against the release manifest, then recursively check that every "
        "input recorded in its provenance still exists with the recorded sha256, up to the raw sources. "
        "Prints the lineage as a tree; exits 1 naming the first mismatch.",
    )
    p.add_argument("path", help="a released file (Parquet, HDF5, JSON, PNG or checkpoint)")
    p.add_argument(
        "--manifest", help="release manifest (default: results/release/manifest.parquet under the root)"
    )
    p.add_argument(
        "--root",
        help="workflow root that recorded paths are relative to "
        "(default: the nearest ancestor of PATH holding results/release/manifest.parquet)",
    )
    p.add_argument(
        "--lineage-only",
        action="store_true",
        help="skip the manifest check (a file made beside the workflow, e.g. by generate-lightcurves); "
        "its lineage is checked as usual",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="print only the verdict")
    p.set_defaults(func=_run_audit)

    p = sub.add_parser("provenance", help="print the provenance record embedded in a file as JSON")
    p.add_argument("path")
    p.set_defaults(func=_run_provenance)

    p = sub.add_parser(
        "distances",
        help="train the CMD flow on your own Gaia table and catalogue distances (paper 004)",
        description="Distance posteriors for any Gaia table, outside the workflow: `train` fits the CMD "
        "normalizing flow, `catalog` writes one row per star. Settings default to config/schema.yaml's "
        "`distances` block; flags override them.",
    )
    dsub = p.add_subparsers(dest="distances_command", metavar="STEP", required=True)
    t = dsub.add_parser("train", help="fit the CMD flow (writes a model checkpoint)")
    _add_distance_options(t)
    t.add_argument("--blocks", type=int, help="MADE→BatchNorm→Reverse blocks (paper: 35)")
    t.add_argument("--hidden", type=int, help="hidden units per MADE (paper: 500)")
    t.add_argument("--rounds", type=int, help="dust/distance re-estimation rounds")
    t.add_argument("--steps-per-round", type=int, help="optimiser steps per round")
    t.set_defaults(func=_run_distances_train)
    c = dsub.add_parser("catalog", help="distance posteriors for every star (writes Parquet)")
    _add_distance_options(c)
    c.add_argument("--model", required=True, help="model checkpoint from `latentsky distances train`")
    c.add_argument(
        "--method",
        choices=("grid", "paper"),
        help="posterior scheme (default grid: exact, on a distance grid)",
    )
    c.add_argument("--posterior-samples", type=int, help="paper scheme only: posterior draws per star (512)")
    c.add_argument(
        "--prior", choices=("flat", "edsd", "ggd"), help="distance prior (default edsd; flat is paper 004's)"
    )
    c.add_argument("--prior-length-kpc", type=float, help="length scale L of the edsd prior (default 1.35)")
    c.add_argument("--prior-table", help="ggd prior: CSV/Parquet with healpix, GGDrlen, GGDalpha, GGDbeta")
    c.set_defaults(func=_run_distances_catalog)

    p = sub.add_parser("benchmark", help="print throughput and memory figures (not a test)")
    bsub = p.add_subparsers(dest="benchmark_command", metavar="PIPELINE", required=True)
    b = bsub.add_parser(
        "distances",
        help="CMD flow: training steps/s, catalog stars/s of the paper's and the grid scheme, peak memory,"
        " 640M-star extrapolation, for the demo and paper-size models",
    )
    b.add_argument("--size", choices=("demo", "paper", "both"), default="both")
    b.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    b.add_argument("--stars", type=int, default=20000, help="simulated stars to draw from")
    b.add_argument("--steps", type=int, default=20, help="optimiser steps to time")
    b.add_argument(
        "--catalog-stars", type=int, default=300, help="stars to catalogue with each scheme (the same stars)"
    )
    b.add_argument(
        "--fit-steps",
        type=int,
        default=300,
        help="steps (batch 512) training the flow and noise model the catalogs are timed on: the grid's cost "
        "depends on how informative the CMD is",
    )
    b.set_defaults(func=_run_benchmark_distances)
    b = bsub.add_parser(
        "bgs",
        help="spender + flows (paper 003): catalog scoring and training spectra/s at the full DESI grid, "
        "extrapolated to DESI DR1 BGS",
    )
    b.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    b.add_argument("--spectra", type=int, default=256, help="simulated BGS spectra to score")
    b.add_argument(
        "--bin-factor", type=int, default=1, help="observed pixels averaged into one (1: full grid)"
    )
    b.add_argument("--train-batch", type=int, default=64, help="spectra per training step (paper: 512)")
    b.add_argument("--train-steps", type=int, default=3, help="training steps to time per phase")
    b.set_defaults(func=_run_benchmark_bgs)
    b = bsub.add_parser(
        "pelsvae",
        help="PELS-VAE: time to generate a batch of light curves (paper: 100 in ~1.3 s), training curves/s",
    )
    b.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    b.add_argument("--curves", type=int, default=100, help="light curves per generated batch (default 100)")
    b.add_argument("--points", type=int, default=300, help="epochs per light curve (default 300)")
    b.add_argument("--repeats", type=int, default=5, help="timed repetitions (the median is printed)")
    b.set_defaults(func=_run_benchmark_pelsvae)
    b = bsub.add_parser(
        "xp",
        help="scatter VAE (paper 001): encoding and training stars/s, extrapolated to 220M DR3 XP spectra",
    )
    b.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    b.add_argument("--stars", type=int, default=200_000, help="spectra encoded (default 200,000)")
    b.add_argument("--train", type=int, default=40_960, help="stars in the timed training epoch")
    b.set_defaults(func=_run_benchmark_xp)
    b = bsub.add_parser(
        "cyclestarnet",
        help="Cycle-StarNet (paper 002): training iterations/s at demo and paper size, fp32 and bf16 where the "
        "device has it, extrapolated to the paper's 350,000 iterations",
    )
    b.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    b.add_argument("--size", choices=("demo", "paper", "both"), default="both")
    b.add_argument(
        "--iterations", type=int, default=10, help="timed iterations per configuration (default 10)"
    )
    b.add_argument("--warmup", type=int, default=2, help="iterations before the timed ones (default 2)")
    b.add_argument(
        "--threads",
        type=int,
        help="torch threads (default: torch's, usually the cores; on a busy machine fewer avoid oversubscription)",
    )
    b.set_defaults(func=_run_benchmark_cyclestarnet)

    p = sub.add_parser(
        "generate-lightcurves",
        help="new light curves from a trained PELS-VAE for given class, Teff, M_G, period (paper 000 Sec. 4.3)",
        description="Physics → latent (a fitted regressor, with the dummy dimension drawn from U(0, 1)) → "
        "decoder at the phases of the timestamps you give. Writes Parquet with provenance: one row per "
        "light curve, list columns time, phase, mag, err.",
    )
    p.add_argument("--model", required=True, help="model.pt from the train_pelsvae rule")
    p.add_argument("--regressors", required=True, help="regressors.pt from the pelsvae_regression rule")
    p.add_argument("--regressor", default="random_forest", choices=("linear", "random_forest", "mlp"))
    p.add_argument(
        "--latent-sampling",
        default="dummy",
        choices=("dummy", "residual"),
        help="dummy: the paper (samples of one request nearly identical); residual: add a validation residual "
        "of the class, the variety the physics leaves open",
    )
    p.add_argument(
        "--requests",
        help="table (CSV/ECSV/Parquet) with var_class, teff, abs_g, period and optional request, t0, "
        "n_samples, median_mag",
    )
    p.add_argument("--class", dest="var_class", help="variability class of a single request, e.g. RRLYR")
    p.add_argument("--teff", type=float, help="effective temperature (K)")
    p.add_argument("--abs-g", type=float, help="absolute G magnitude M_G (mag)")
    p.add_argument("--period", type=float, help="period (d)")
    p.add_argument("--t0", type=float, default=0.0, help="epoch of phase 0 (d; default 0)")
    p.add_argument("--n-samples", type=int, default=1, help="light curves per request (default 1)")
    p.add_argument("--median-mag", type=float, default=0.0, help="median I magnitude (default 0: relative)")
    p.add_argument("--times", help="table with a column time (d) and optionally request")
    p.add_argument(
        "--cadence", help="regular:N:SPAN | random:N:SPAN (SPAN in d) | phases:N | ogle3:N:SEASONS"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the dummy draws and random cadences")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    p.add_argument("--out", required=True, help="output Parquet file")
    p.set_defaults(func=_run_generate_lightcurves)

    p = sub.add_parser(
        "score-desi",
        help="outlier scores of DESI coadd spectra under the trained BGS models (paper 003)",
        description="Reads DESI coadd + Redrock files with the workflow's reader (paper 003 Sec. 2 cuts as "
        "flags), encodes each spectrum with the galaxy and star autoencoders and writes the catalog's columns "
        "(log p_galaxy, log p_star, their ratio, reduced χ², latents, galaxy_quantile against the galaxy "
        "model's training sample, rank among the scored rows) as Parquet with provenance; one row per target.",
    )
    p.add_argument("coadd", nargs="+", help="coadd-*.fits file(s)")
    p.add_argument("--redrock", action="append", help="redrock file per coadd (default: beside it, by name)")
    p.add_argument(
        "--models", default="results/models/bgs", help="directory of bgs_/mws_ autoencoder and flow .pt"
    )
    p.add_argument(
        "--target-class", choices=("bgs", "mws"), help="read only targets of this class (FIBERMAP bits)"
    )
    p.add_argument(
        "--z-range", type=float, nargs=2, default=(0.0, 0.8), help="redshifts scored (others flagged)"
    )
    p.add_argument(
        "--bin-factor", type=int, help="pixels per bin (default: the galaxy model's; 1 for spender files)"
    )
    p.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    p.add_argument("--out", required=True, help="output Parquet file")
    p.set_defaults(func=_run_score_desi)

    p = sub.add_parser(
        "xp",
        help="Gaia XP spectra under the trained scatter VAE (paper 001)",
    )
    xsub = p.add_subparsers(dest="xp_command", metavar="COMMAND", required=True)
    x = xsub.add_parser(
        "encode",
        help="latents, scatter and anomaly scores of an XP table (any archive format)",
        description="Reads Gaia DR3 XP continuous spectra (archive CSV, ECSV, VOTable, FITS, a datalink zip or "
        "Parquet; phot_g_mean_flux or phot_g_mean_mag beside them), encodes them with a model written by rule "
        "train_svae and writes the catalog's columns (latent mean and log-variance, reduced χ² with and "
        "without the star's scatter, the scatter per coefficient, anomaly score and rank, flags) as Parquet "
        "with provenance; one row per input star.",
    )
    x.add_argument("table", help="XP table file")
    x.add_argument("--model", default="results/models/xp/svae_paper.pt", help="sVAE model file")
    x.add_argument(
        "--missing-band",
        choices=("flag", "mask"),
        default="flag",
        help="a star without BP or RP: flag it (no latent) or encode it with the band masked",
    )
    x.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    x.add_argument("--out", required=True, help="output Parquet file")
    x.set_defaults(func=_run_xp_encode)

    p = sub.add_parser(
        "compare-runs",
        help="do two results/ trees hold the same data? (exit 1 if not)",
        description="Compares every Parquet and JSON file under A with the one at the same path under B: table "
        "data without key-value metadata, JSON without its provenance key, the release manifest without "
        "its sha256 column (those hold creation times and hashes of bytes that embed them). A file in one "
        "tree only differs.",
    )
    p.add_argument("a", help="a results/ directory")
    p.add_argument("b", help="another results/ directory")
    p.set_defaults(func=_run_compare_runs)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args))
    except (ValueError, OSError) as exc:
        # Bad input (a file, a column, a setting): one line naming it, no traceback (DESIGN.md).
        print(f"latentsky {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
