"""Rule crossmatch_published_tables: the cascade on the PELS-VAE authors' real OGLE-III × Gaia DR2 rows."""

import pandas as pd

from latentsky.io.markdown import markdown_table
from latentsky.io.ogle import compare_with_published, read_published_crossmatch
from latentsky.jobs import job_logging, job_record
from latentsky.provenance.files import atomic_output, write_json, write_parquet
from latentsky.variables.crossmatch import (
    PM_RADIUS_CONVENTIONS,
    published_agreement,
    published_agreement_summary,
    run_cascade,
)

smk = snakemake  # noqa: F821 - injected by Snakemake

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
    write_json(metrics, smk.output.metrics, record)
    log.info(
        "%s PM radius: %d objects, agreement with the authors %.4f, %d disagreements",
        convention,
        metrics["n_objects"],
        metrics["agreement"],
        len(metrics["disagreements"]),
    )
