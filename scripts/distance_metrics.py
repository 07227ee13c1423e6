"""Rule distance_metrics: results/metrics/distances.json and the distance figures (paper 004 Tables 1–2)."""

from latentsky.distances.figures import cluster_figure, cmd_comparison_figure
from latentsky.distances.metrics import accuracy, cluster_table, table1
from latentsky.io.gaia import read_partitions
from latentsky.jobs import job_logging, job_record
from latentsky.provenance.files import save_figure, write_json

smk = snakemake  # noqa: F821 - injected by Snakemake

with job_logging(smk) as log:
    cfg = smk.params.distances
    offset = cfg["parallax_offset_mas"]
    catalog = read_partitions(smk.input.catalog)
    record = job_record(smk)
    metrics = {"table1": table1(catalog, offset)}
    if smk.input.truth:
        truth = read_partitions(smk.input.truth, columns=["source_id", "true_distance_pc"])
        merged = catalog.merge(truth, on="source_id", how="left", validate="1:1")
        metrics.update(
            accuracy(merged, merged["true_distance_pc"].to_numpy(), offset, cfg["metrics"]["edsd_length_kpc"])
        )
        metrics["snr_improvement_mean"] = metrics["table1"]["snr_improvement_mean"]
        cl = smk.params.cluster
        rows, used = cluster_table(
            catalog,
            cl["ra_deg"],
            cl["dec_deg"],
            cfg["metrics"]["cluster_radius_deg"],
            offset,
            cfg["metrics"]["edsd_length_kpc"],
        )
        metrics["cluster"] = {"truth_kpc": cl["distance_pc"] / 1000.0, "rows": rows}
        save_figure(
            cluster_figure(rows, used, cl["distance_pc"] / 1000.0), smk.output.cluster, record, dpi=110
        )
    else:
        metrics["snr_improvement_mean"] = metrics["table1"]["snr_improvement_mean"]
    write_json(metrics, smk.output.metrics, record)
    save_figure(cmd_comparison_figure(catalog, offset), smk.output.cmd, record, dpi=100)
    log.info("distance metrics: %s", metrics)
