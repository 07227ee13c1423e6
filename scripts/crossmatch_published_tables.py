"""Rule crossmatch_published_tables: the cascade on the PELS-VAE authors' real OGLE-III × Gaia DR2 rows."""

import pandas as pd

from latentsky.io.markdown import markdown_table
from latentsky.io.ogle import PublishedCrossmatch, compare_with_published, read_published_crossmatch
from latentsky.jobs import job_logging, job_record
from latentsky.provenance.files import atomic_output, save_figure, write_json, write_parquet
from latentsky.variables.crossmatch import (
    PM_RADIUS_CONVENTIONS,
    published_agreement,
    published_agreement_summary,
    run_cascade,
)
from latentsky.variables.figures import cepheid_period_luminosity
from latentsky.variables.physics import adopted_physics, ogle_system, period_luminosity

smk = snakemake  # noqa: F821 - injected by Snakemake


def published_period_luminosity(
    matches: pd.DataFrame,
    published: PublishedCrossmatch,
    physics_path: str,
    figure_path: str,
    moduli: dict[str, float],
    record: dict,
) -> dict:
    """The adopted physics of the authors' rows with the Clouds' distance moduli, beside the paper's
    Bailer-Jones M_G, and the Magellanic Cepheids' P–L relation under each (metrics, table, figure)."""
    objects = published.ogle[["ogle_id", "var_class", "subtype", "period"]]
    frames, fits = {}, {}
    for label, mod in (("distance moduli", moduli), ("Bailer-Jones r_est (paper)", {})):
        phys = adopted_physics(matches, published.gaia, distance_moduli=mod)
        frame = objects.merge(phys, on="ogle_id", how="left").assign(system=ogle_system(objects["ogle_id"]))
        frames[label], fits[label] = frame, period_luminosity(frame)
    write_parquet(frames["distance moduli"], physics_path, record)
    save_figure(cepheid_period_luminosity(frames, fits), figure_path, record)
    adopted = frames["distance moduli"]
    cepheids = adopted[(adopted["var_class"] == "CEP") & adopted["system"].isin(["LMC", "SMC"])]
    return {
        "distance_moduli": dict(moduli),
        "fits": {label: fit.to_dict(orient="records") for label, fit in fits.items()},
        "magellanic_cepheid_abs_g": {
            name: {
                "n": int(group["abs_g"].notna().sum()),
                "median": float(group["abs_g"].median()),
                "p05": float(group["abs_g"].quantile(0.05)),
                "p95": float(group["abs_g"].quantile(0.95)),
                "fraction_in_-6_-1.5": float(group["abs_g"].between(-6.0, -1.5).mean()),
            }
            for name, group in cepheids.groupby("system")
        },
    }


with job_logging(smk) as log:
    cfg = smk.params.crossmatch
    published = read_published_crossmatch(cfg["published_tables"])
    log.info(
        "%d OGLE objects, %d Gaia sources from %s",
        len(published.ogle),
        len(published.gaia),
        cfg["published_tables"],
    )
    kw = dict(radius_arcsec=cfg["radius_arcsec"], dt_yr=cfg["dt_yr"], isolation_ratio=cfg["isolation_ratio"])

    def compare(convention: str) -> pd.DataFrame:
        matches, _ = run_cascade(published.ogle, published.gaia, pm_radius_convention=convention, **kw)
        return compare_with_published(matches, published)

    convention = cfg["pm_radius_convention"]
    matches = compare(convention)
    summary = published_agreement_summary(matches)
    record = job_record(smk)
    write_parquet(matches, smk.output.matches, record)
    write_parquet(summary, smk.output.summary, record)
    with atomic_output(smk.output.summary_md) as tmp:
        tmp.write_text(markdown_table(summary))

    other = next(c for c in PM_RADIUS_CONVENTIONS if c != convention)
    metrics = {
        "pm_radius_convention": convention,
        **published_agreement(matches),
        "class_counts": {k: int(v) for k, v in matches["var_class"].value_counts().sort_index().items()},
        "disagreements": matches.loc[~matches["agrees"], ["ogle_id", "rule"]].to_dict(orient="records"),
        "other_pm_radius_convention": {"pm_radius_convention": other, **published_agreement(compare(other))},
    }
    # The photometric check the paper leaves out, on the authors' accepted sources: Gaia G against the G their
    # OGLE I and V−I predict, per published table (its Table-4 row).
    checked = matches.dropna(subset=["delta_g"]).assign(table=matches["published_tables"].astype(str))
    metrics["photometric_consistency"] = {
        str(table): {
            "n_checked": len(g),
            "median_delta_g": float(g["delta_g"].median()),
            "fraction_beyond_1mag": float((g["delta_g"].abs() > 1.0).mean()),
        }
        for table, g in checked.groupby("table")
    }
    metrics["period_luminosity"] = published_period_luminosity(
        matches, published, smk.output.physics, smk.output.pl_figure, cfg["distance_moduli"], record
    )
    write_json(metrics, smk.output.metrics, record)
    log.info(
        "%s PM radius: %d objects, agreement with the authors %.4f, %d disagreements",
        convention,
        metrics["n_objects"],
        metrics["agreement"],
        len(metrics["disagreements"]),
    )
