"""Rule lightcurve_training_sets: cleaned, folded, balanced train/val/test light curves (paper 000 Sec. 2)."""

import numpy as np
import pandas as pd

from latentsky.io.ogle import read_light_curves
from latentsky.io.reddening import read_reddening_map, reddening_at
from latentsky.jobs import job_logging, job_record
from latentsky.provenance.files import write_json, write_parquet
from latentsky.variables.lightcurves import keep_subtype, table1_counts, training_sets
from latentsky.variables.physics import TEFF_DEREDDENED, adopted_physics, ogle_system

smk = snakemake  # noqa: F821 - injected by Snakemake


def faint_points_kept(objects: pd.DataFrame, status: pd.DataFrame) -> dict:
    """Median ``faint_kept`` of the objects that passed the SNR cut, per class and subtype."""
    cleaned = status.dropna(subset=["faint_kept"]).merge(
        objects[["ogle_id", "var_class", "subtype"]], on="ogle_id"
    )
    medians = cleaned.groupby(["var_class", "subtype"])["faint_kept"].agg(["median", "size"])
    return {
        f"{cls}/{sub}": {"median": float(r["median"]), "n": int(r["size"])}
        for (cls, sub), r in medians.iterrows()
    }


def physics_against_truth(physics: pd.DataFrame, truth: pd.DataFrame, system: pd.Series) -> dict:
    """Per system, the adopted T_eff and M_G against the simulation's truth beside Gaia's uncorrected values
    on the same objects — what the reddening correction buys, and where it over-corrects (foreground disc
    stars behind a 2-D map's full column)."""
    frame = physics.assign(system=system.to_numpy()).merge(
        truth[["ogle_id", "teff", "abs_g"]].rename(columns={"teff": "true_teff", "abs_g": "true_abs_g"}),
        on="ogle_id",
    )
    frame = frame[frame["has_physics"]]
    out = {}
    for name, g in frame.groupby("system"):
        dered = g[g["teff_source"] == TEFF_DEREDDENED]
        corrected = g[g["a_g"].notna()]
        out[str(name)] = {
            "n": int(len(g)),
            "n_teff_dereddened": int(len(dered)),
            "teff_dereddened_median_abs_error_K": float((dered["teff"] - dered["true_teff"]).abs().median()),
            "teff_gaia_median_abs_error_K": float((dered["teff_gaia"] - dered["true_teff"]).abs().median()),
            "n_abs_g_corrected": int(len(corrected)),
            "abs_g_median_abs_error": float((corrected["abs_g"] - corrected["true_abs_g"]).abs().median()),
            "abs_g_uncorrected_median_abs_error": float(
                (corrected["abs_g"] + corrected["a_g"] - corrected["true_abs_g"]).abs().median()
            ),
        }
    return out


with job_logging(smk) as log:
    cfg = smk.params.lightcurves
    objects = pd.read_parquet(smk.input.objects)
    matches = pd.read_parquet(smk.input.matches)
    # The training set is the validated cross-match (paper 000 Sec. 2): objects whose Gaia match the
    # cascade accepted, with Teff, M_G, R, L of that Gaia source. The others keep a status row saying so.
    # M_G of Magellanic Cloud members from the Clouds' distance moduli, not their prior-dominated r_est.
    field = objects.set_index("ogle_id")["field"] if "field" in objects else None
    system = ogle_system(matches["ogle_id"], None if field is None else matches["ogle_id"].map(field))
    # A reddening map (crossmatch.reddening) corrects M_G by A_G and a DR2 T_eff for the extinction Priam
    # ignores; looked up at each object's OGLE position.
    reddening = None
    if "reddening_map" in smk.input.keys():
        rcfg = smk.params.reddening
        position = objects.set_index("ogle_id").reindex(matches["ogle_id"])
        reddening = reddening_at(
            position["ra"].to_numpy(),
            position["dec"].to_numpy(),
            read_reddening_map(smk.input.reddening_map, rcfg["r_i"]),
            rcfg["max_separation_arcmin"],
        )
        log.info("reddening map: %d of %d objects inside it", reddening["e_v_i"].notna().sum(), len(matches))
    physics = adopted_physics(
        matches,
        pd.read_parquet(smk.input.gaia),
        system=system,
        distance_moduli=smk.params.distance_moduli,
        gaia_release=smk.params.gaia_release,
        reddening=reddening,
        var_class=matches["ogle_id"].map(objects.set_index("ogle_id")["var_class"]),
    )
    objects = objects.merge(physics, on="ogle_id", how="left", validate="1:1")
    accepted = set(matches.loc[matches["accepted"], "ogle_id"])
    matched = objects[objects["ogle_id"].isin(accepted)]
    # Only the curves the stage can use are read: matched objects of subtypes it keeps.
    subtypes = matched["subtype"] if "subtype" in matched else [None] * len(matched)
    usable = [keep_subtype(c, s) for c, s in zip(matched["var_class"], subtypes, strict=True)]
    light_curves = read_light_curves(smk.input.light_curves, matched.loc[usable, "ogle_id"])
    log.info("%d epochs of %d objects read", len(light_curves), light_curves["ogle_id"].nunique())
    examples, status = training_sets(
        matched,
        light_curves,
        np.random.default_rng(smk.params.seed),
        n_points=cfg["n_points"],
        snr_min=cfg["snr_min"],
        fractions=tuple(cfg["split"]),
        target_small=cfg["target_small"],
        target_large=cfg["target_large"],
        small_class_limit=cfg["small_class_limit"],
        ecl_reduce_to=cfg["ecl_reduce_to"],
    )
    unmatched = objects.loc[~objects["ogle_id"].isin(accepted), ["ogle_id"]].assign(
        status="no_accepted_match", snr=np.nan, split=None
    )
    status = pd.concat([status, unmatched], ignore_index=True)
    record = job_record(smk, seed=smk.params.seed)
    for split in ("train", "val", "test"):
        write_parquet(examples[examples["split"] == split], smk.output[split], record)
    write_parquet(status, smk.output.status, record)

    kept = objects[objects["ogle_id"].isin(status.loc[status["status"] == "kept", "ogle_id"])]
    counts = table1_counts(kept).add_prefix("clean_")
    per_split = examples.groupby(["var_class", "split"]).size().unstack("split", fill_value=0)
    counts = counts.join(per_split.add_prefix("examples_"), how="left").fillna(0)
    examples_cols = [c for c in counts.columns if c.startswith("examples_")]
    counts.loc["Total", examples_cols] = counts.drop(index="Total")[examples_cols].sum()
    counts[examples_cols] = counts[examples_cols].astype(int)
    write_parquet(counts.reset_index(names="var_class"), smk.output.class_counts, record)
    metrics = {
        "status_counts": status["status"].value_counts().to_dict(),
        "examples_per_split": examples["split"].value_counts().to_dict(),
        "examples_per_class_and_split": {k: v for k, v in per_split.to_dict(orient="index").items()},
        "test_set_augmented_examples": int(examples.loc[examples["split"] == "test", "augmented"].sum()),
        # How much of each curve's faint phase (eclipses, minimum light) survived the cleaning.
        "faint_points_kept_median": faint_points_kept(objects, status),
        "reddening_map": str(smk.input.reddening_map) if reddening is not None else None,
    }
    if "truth" in smk.input.keys():
        metrics["physics_against_truth"] = physics_against_truth(
            physics, pd.read_parquet(smk.input.truth), system
        )
    write_json(metrics, smk.output.metrics, record)
    log.info("examples: %s; objects: %s", metrics["examples_per_split"], metrics["status_counts"])
