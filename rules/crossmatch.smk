# OGLE-III × Gaia cross-match with the proper-motion validation cascade (paper 000 Appendix A, Table 4).
OGLE_DIR = f"{RESULTS}/sources/ogle"
OGLE_TABLES = {
    name: f"{OGLE_DIR}/{name}.parquet"
    for name in ("objects", "light_curves", "gaia", "truth")
}
CROSSMATCH_DIR = f"{RESULTS}/crossmatch"
# The PELS-VAE authors' OGLE-III × Gaia DR2 tables (crossmatch.published_tables; null skips the rule).
PUBLISHED_XMATCH = config["crossmatch"]["published_tables"]
PUBLISHED_DIR = f"{CROSSMATCH_DIR}/published"
PUBLISHED_OUTPUTS = [
    f"{PUBLISHED_DIR}/matches.parquet",
    f"{PUBLISHED_DIR}/summary.parquet",
    f"{METRICS}/crossmatch_published.json",
]


rule simulate_ogle_fields:
    output:
        **OGLE_TABLES,
    log:
        f"{LOGS}/simulate_ogle_fields.log",
    conda:
        "../envs/latentsky.yaml"
    resources:
        mem_mb=4000,
        runtime=10,
    params:
        simulated=config["ogle"]["simulated"],
        seed=seed_for("simulate_ogle_fields"),
    script:
        "../scripts/simulate_ogle_fields.py"


rule crossmatch_ogle_gaia:
    input:
        objects=OGLE_TABLES["objects"],
        gaia=OGLE_TABLES["gaia"],
        truth=OGLE_TABLES["truth"],
    output:
        matches=f"{CROSSMATCH_DIR}/matches.parquet",
        counts=f"{CROSSMATCH_DIR}/cascade_counts.parquet",
        counts_md=report(
            f"{CROSSMATCH_DIR}/cascade_counts.md",
            caption="../resources/report/captions/cascade_counts.rst",
            category="Cross-match",
        ),
        metrics=f"{METRICS}/crossmatch.json",
    log:
        f"{LOGS}/crossmatch_ogle_gaia.log",
    conda:
        "../envs/latentsky.yaml"
    resources:
        mem_mb=4000,
        runtime=20,
    params:
        crossmatch=config["crossmatch"],
    script:
        "../scripts/crossmatch_ogle_gaia.py"


rule crossmatch_published_tables:
    input:
        tables=published_xmatch_tables,
    output:
        matches=PUBLISHED_OUTPUTS[0],
        summary=PUBLISHED_OUTPUTS[1],
        summary_md=report(
            f"{PUBLISHED_DIR}/summary.md",
            caption="../resources/report/captions/published_crossmatch.rst",
            category="Cross-match",
        ),
        metrics=PUBLISHED_OUTPUTS[2],
    log:
        f"{LOGS}/crossmatch_published_tables.log",
    conda:
        "../envs/latentsky.yaml"
    resources:
        mem_mb=4000,
        runtime=20,
    params:
        crossmatch=config["crossmatch"],
    script:
        "../scripts/crossmatch_published_tables.py"
