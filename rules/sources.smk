# Sources: the simulated Gaia survey and its 3-D dust map (embedded default).


rule simulate_dust_map:
    output:
        observed=DUST_MAP,
        truth=DUST_TRUTH_MAP,
    log:
        f"{LOGS}/simulate_dust_map.log",
    conda:
        "../envs/latentsky.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        simulated=config["sources"]["dust"]["simulated"],
        seed=seed_for("simulate_dust_map"),
    script:
        "../scripts/simulate_dust_map.py"


rule simulate_gaia_survey:
    input:
        truth_dust=DUST_TRUTH_MAP,
        observed_dust=DUST_MAP,
    output:
        observed=gaia_partitions(GAIA_PARTITION),
        truth=gaia_partitions(GAIA_TRUTH_PARTITION),
    log:
        f"{LOGS}/simulate_gaia_survey.log",
    conda:
        "../envs/latentsky.yaml"
    resources:
        mem_mb=4000,
        runtime=20,
    params:
        simulated=config["sources"]["gaia"]["simulated"],
        partition_order=GAIA_ORDER,
        seed=seed_for("simulate_gaia_survey"),
    script:
        "../scripts/simulate_gaia_survey.py"


rule gaia_survey_metrics:
    input:
        observed=gaia_partitions(GAIA_PARTITION),
        truth=gaia_partitions(GAIA_TRUTH_PARTITION),
    output:
        f"{METRICS}/sources.json",
    log:
        f"{LOGS}/gaia_survey_metrics.log",
    conda:
        "../envs/latentsky.yaml"
    resources:
        mem_mb=4000,
        runtime=10,
    script:
        "../scripts/gaia_survey_metrics.py"


rule plot_gaia_survey:
    input:
        observed=gaia_partitions(GAIA_PARTITION),
        truth=gaia_partitions(GAIA_TRUTH_PARTITION),
        dust=DUST_MAP,
    output:
        cmd=report(
            f"{FIGURES}/sources/gaia_cmd.png",
            caption="../resources/report/captions/gaia_cmd.rst",
            category="Sources",
            subcategory="Simulated Gaia survey",
        ),
        dust=report(
            f"{FIGURES}/sources/dust_map.png",
            caption="../resources/report/captions/dust_map.rst",
            category="Sources",
            subcategory="Simulated Gaia survey",
        ),
    log:
        f"{LOGS}/plot_gaia_survey.log",
    conda:
        "../envs/latentsky.yaml"
    resources:
        mem_mb=4000,
        runtime=10,
    script:
        "../scripts/plot_gaia_survey.py"
