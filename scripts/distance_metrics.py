"""Rule distance_metrics: results/metrics/distances.json and the distance figures (paper 004 Tables 1–2)."""

import numpy as np

from latentsky.distances.figures import cluster_figure, cmd_comparison_figure
from latentsky.distances.inputs import dust_source, posterior_settings, stars_from_gaia
from latentsky.distances.metrics import accuracy, cluster_table, outside_support_blame, table1
from latentsky.distances.pipeline import load_cmd_flow
from latentsky.distances.prior import DistancePrior
from latentsky.distances.stars import DistanceFlag
from latentsky.distances.validation import compare_schemes, reference_agreement
from latentsky.io.gaia import read_partitions
from latentsky.io.gaia_columns import canonical_gaia
from latentsky.jobs import job_logging, job_record
from latentsky.provenance.files import nan_to_null, save_figure, write_json
from latentsky.training import resolve_device

smk = snakemake  # noqa: F821 - injected by Snakemake

with job_logging(smk) as log:
    cfg = smk.params.distances
    offset = cfg["parallax_offset_mas"]
    catalog = read_partitions(smk.input.catalog)
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
        stars = stars_from_gaia(gaia.loc[sample["source_id"]].reset_index(), offset)
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
        rows, used = cluster_table(
            catalog, cl["ra_deg"], cl["dec_deg"], m["cluster_radius_deg"], offset, m["edsd_length_kpc"]
        )
        metrics["cluster"] = {"truth_kpc": cl["distance_pc"] / 1000.0, "rows": rows}
        save_figure(
            cluster_figure(rows, used, cl["distance_pc"] / 1000.0), smk.output.cluster, record, dpi=110
        )
    write_json(nan_to_null(metrics), smk.output.metrics, record)
    save_figure(cmd_comparison_figure(catalog, offset), smk.output.cmd, record, dpi=100)
    log.info("distance metrics: %s", metrics)
