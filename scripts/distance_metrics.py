"""Rule distance_metrics: results/metrics/distances.json and the distance figures (paper 004 Tables 1–2)."""

import numpy as np
import pandas as pd

from latentsky.distances.figures import cluster_figure, cmd_comparison_figure
from latentsky.distances.inputs import dust_source, posterior_settings, stars_from_gaia
from latentsky.distances.metrics import (
    accuracy,
    cluster_table,
    cone_members,
    listed_members,
    outside_support_blame,
    table1,
)
from latentsky.distances.pipeline import load_cmd_flow, posterior_catalog
from latentsky.distances.prior import DistancePrior
from latentsky.distances.stars import DistanceFlag
from latentsky.distances.validation import compare_schemes, reference_agreement
from latentsky.io.gaia import read_gaia_table, read_partitions
from latentsky.io.gaia_columns import canonical_gaia
from latentsky.jobs import job_logging, job_record
from latentsky.provenance.files import nan_to_null, save_figure, write_json
from latentsky.training import resolve_device

smk = snakemake  # noqa: F821 - injected by Snakemake

with job_logging(smk) as log:
    cfg = smk.params.distances
    m_cfg = cfg["metrics"]
    catalog = read_partitions(smk.input.catalog)
    # The offset each star's posterior used (the release's global one, or a per-star zero point).
    offset = catalog["parallax_offset"].to_numpy(dtype=float)
    record = job_record(smk)
    metrics = {"table1": table1(catalog, offset)}
    metrics["snr_improvement_mean"] = metrics["table1"]["snr_improvement_mean"]
    if smk.input.truth:
        truth = read_partitions(smk.input.truth)
        merged = catalog.merge(truth, on="source_id", how="left", validate="1:1")
        m = cfg["metrics"]
        metrics.update(accuracy(merged, merged["true_distance_pc"].to_numpy(), offset, m["edsd_length_kpc"]))
        device = resolve_device(cfg["device"])
        flow = load_cmd_flow(smk.input.model, device)
        metrics["outside_cmd_support"] = outside_support_blame(merged, flow)
        # The same stars through every scheme and prior, and the grid against an independent reference.
        settings = posterior_settings(cfg["posterior"], smk.input.get("prior_table"))
        dust = dust_source(cfg["dust"], smk.input.get("dust"))
        pick = np.sort(
            np.random.default_rng(smk.params.seed).permutation(len(merged))[: m["n_compare_stars"]]
        )
        sample = merged.iloc[pick]
        gaia = canonical_gaia(read_partitions(smk.input.sources), "distance sources").set_index("source_id")
        stars = stars_from_gaia(
            gaia.loc[sample["source_id"]].reset_index(), sample["parallax_offset"].to_numpy(dtype=float)
        )
        priors = {"flat": DistancePrior("flat"), "edsd": DistancePrior("edsd", m["edsd_length_kpc"])}
        priors.update(
            {kind: DistancePrior(kind, table=path) for kind, path in smk.params.prior_tables.items()}
        )
        ok = (sample["flags"].to_numpy() & DistanceFlag.RUWE_ABOVE_LIMIT) == 0
        truth_pc = sample["true_distance_pc"].to_numpy()
        comparison, posterior = compare_schemes(
            stars, truth_pc, ok, flow, dust, settings, priors, smk.params.seed, device
        )
        metrics["scheme_and_prior_comparison"] = comparison
        metrics["grid_vs_reference"] = reference_agreement(
            stars,
            posterior,
            flow,
            dust,
            settings,
            m["n_reference_stars"],
            m["n_reference_draws"],
            smk.params.seed,
            device,
        )
        cl = smk.params.cluster
        cone = cone_members(catalog, cl["ra_deg"], cl["dec_deg"], m["cluster_radius_deg"])
        rows, used = cluster_table(cone, cone["parallax_offset"].to_numpy(dtype=float), m["edsd_length_kpc"])
        metrics["cluster"] = {"truth_kpc": cl["distance_pc"] / 1000.0, "rows": rows}
        save_figure(
            cluster_figure(rows, used, cl["distance_pc"] / 1000.0), smk.output.cluster, record, dpi=110
        )
    # Real clusters the user names: their listed members, catalogued by the same code where the catalog
    # lacks them (a real cluster on the simulated survey, or members outside the released partitions).
    named = {}
    for cl, members_path, figure in zip(
        cfg["metrics"]["clusters"], smk.input.members, smk.output.named_clusters, strict=True
    ):
        members = read_gaia_table(members_path)
        found, missing = listed_members(catalog, members)
        if len(missing):
            device = resolve_device(cfg["device"])
            extra = posterior_catalog(
                missing,
                load_cmd_flow(smk.input.model, device),
                dust_source(cfg["dust"], smk.input.get("dust")),
                cfg,
                smk.params.seed,
                device,
                prior_table=smk.input.get("prior_table"),
            )
            found = pd.concat([found, extra], ignore_index=True)
        rows, used = cluster_table(
            found, found["parallax_offset"].to_numpy(dtype=float), m_cfg["edsd_length_kpc"]
        )
        literature_kpc = cl["distance_pc"] / 1000.0 if "distance_pc" in cl else None
        named[cl["name"]] = {
            "members": members_path,
            "n_members": int(len(found)),
            "n_catalogued_here": int(len(missing)),
            "n_with_posterior": int(found["has_posterior"].sum()),
            "literature_kpc": literature_kpc,
            "reference": cl.get("reference"),
            "rows": rows,
        }
        save_figure(cluster_figure(rows, used, literature_kpc, title=cl["name"]), figure, record, dpi=110)
        log.info("cluster %s: %d members, %d catalogued here", cl["name"], len(found), len(missing))
    if named:
        metrics["named_clusters"] = named
    write_json(nan_to_null(metrics), smk.output.metrics, record)
    save_figure(cmd_comparison_figure(catalog, offset), smk.output.cmd, record, dpi=100)
    log.info("distance metrics: %s", metrics)
