# Catalogs: distance posteriors, one Parquet per HEALPix partition, assembled into a HATS catalog.


rule distance_catalog_partition:
    input:
        unpack(distance_dust_input),
        model=CMD_FLOW_MODEL,
        source=GAIA_PARTITION,
    output:
        DISTANCE_PARTITION,
    log:
        f"{LOGS}/distance_catalog_partition/Npix={{pixel}}_Dir={{dir}}.log",
    wildcard_constraints:
        pixel=r"\d+",
        dir=r"\d+",
    retries: 1
    conda:
        "../envs/latentsky.yaml"
    threads: 1
    resources:
        mem_mb=lambda wildcards, attempt: 4000 * attempt,
        runtime=lambda wildcards, attempt: 60 * attempt,
    params:
        distances=DISTANCES,
        catalog_dir=lambda wildcards, output: hats_root(output[0]),
        partition_order=GAIA_ORDER,
        seed=lambda wildcards: seed_for(f"distance_catalog_partition/{wildcards.pixel}"),
    script:
        "../scripts/distance_catalog_partition.py"


rule distance_catalog:
    input:
        distance_partitions,
    output:
        DISTANCE_CATALOG_METADATA,
        DISTANCE_CATALOG_TEXT,
    log:
        f"{LOGS}/distance_catalog.log",
    conda:
        "../envs/latentsky.yaml"
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        catalog_dir=lambda wildcards, output: hats_root(output[0]),
        partition_order=GAIA_ORDER,
    script:
        "../scripts/distance_catalog.py"


rule distance_metrics:
    input:
        catalog=distance_partitions,
        hats=DISTANCE_CATALOG_METADATA,
        truth=gaia_partitions(GAIA_TRUTH_PARTITION) if SIMULATED else [],
    output:
        metrics=f"{METRICS}/distances.json",
        cmd=report(
            f"{FIGURES}/distances/cmd_raw_vs_posterior.png",
            caption="../resources/report/captions/distance_cmd.rst",
            category="Distances",
            subcategory="Catalog",
        ),
        cluster=(
            report(
                f"{FIGURES}/distances/cluster_distances.png",
                caption="../resources/report/captions/cluster_distances.rst",
                category="Distances",
                subcategory="Catalog",
            )
            if SIMULATED
            else []
        ),
    log:
        f"{LOGS}/distance_metrics.log",
    conda:
        "../envs/latentsky.yaml"
    resources:
        mem_mb=8000,
        runtime=30,
    params:
        distances=DISTANCES,
        cluster=config["sources"]["gaia"]["simulated"]["cluster"],
    script:
        "../scripts/distance_metrics.py"


# PELS-VAE: Table 3, reconstructions against the class template, the RR Lyrae T_eff sequence, Figs. 4–8.
rule evaluate_pelsvae:
    input:
        models=expand(PELSVAE_MODEL, model=PELSVAE_MODELS),
        regressors=expand(PELSVAE_REGRESSORS, model=PELSVAE_MODELS),
        train=LIGHTCURVE_SETS["train"],
        test=LIGHTCURVE_SETS["test"],
    output:
        **PELSVAE_OUTPUTS,
        **{
            key: report(
                path,
                caption=f"../resources/report/captions/pelsvae_{key}.rst",
                category="PELS-VAE",
            )
            for key, path in PELSVAE_FIGURES.items()
        },
        table3_md=report(
            f"{PELSVAE_DIR}/table3_regression_rmse.md",
            caption="../resources/report/captions/pelsvae_table3.rst",
            category="PELS-VAE",
        ),
    log:
        f"{LOGS}/evaluate_pelsvae.log",
    conda:
        "../envs/latentsky.yaml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=60,
    params:
        pelsvae=PELSVAE,
        models=PELSVAE_MODELS,
        seed=seed_for("evaluate_pelsvae"),
    script:
        "../scripts/evaluate_pelsvae.py"


# New light curves (Sec. 4.3) for pelsvae.generation.requests at its cadence or timestamps file.
rule generate_lightcurves:
    input:
        **(
            {"times": PELSVAE["generation"]["times_file"]}
            if PELSVAE["generation"]["times_file"]
            else {}
        ),
        model=PELSVAE_MODEL.format(model=PELSVAE["generation"]["model"]),
        regressors=PELSVAE_REGRESSORS.format(model=PELSVAE["generation"]["model"]),
    output:
        GENERATED_LIGHTCURVES,
    log:
        f"{LOGS}/generate_lightcurves.log",
    conda:
        "../envs/latentsky.yaml"
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        generation=PELSVAE["generation"],
        device=PELSVAE["device"],
        seed=seed_for("generate_lightcurves"),
    script:
        "../scripts/generate_lightcurves.py"


# The BGS outlier-probability catalog (paper 003): one row per BGS target, metrics and the Fig. 3 gallery.
rule bgs_catalog:
    input:
        **({"truth": f"{DESI_DIR}/truth.parquet"} if DESI_SIMULATED else {}),
        spectra=DESI_SPECTRA.format(survey="bgs"),
        split=BGS_SPLIT.format(survey="bgs"),
        galaxy_model=BGS_AUTOENCODER.format(survey="bgs"),
        galaxy_flow=BGS_FLOW.format(survey="bgs"),
        star_model=BGS_AUTOENCODER.format(survey="mws"),
        star_flow=BGS_FLOW.format(survey="mws"),
    output:
        catalog=BGS_CATALOG,
        metrics=f"{METRICS}/bgs.json",
        gallery=report(
            f"{FIGURES}/bgs/outlier_gallery.png",
            caption="../resources/report/captions/bgs_gallery.rst",
            category="BGS outliers",
        ),
    log:
        f"{LOGS}/bgs_catalog.log",
    conda:
        "../envs/latentsky.yaml"
    threads: 2
    resources:
        mem_mb=16000,
        runtime=120,
    params:
        bgs=BGS,
        seed=seed_for("bgs_catalog"),
    script:
        "../scripts/bgs_catalog.py"
