# Sources: the Gaia-like source table, partitioned by HEALPix, and the 3-D dust map.
#   sources.gaia.kind simulated    — the simulated survey with truth (embedded default)
#   sources.gaia.kind file         — Gaia tables a user supplies, in any archive format
#   sources.gaia.kind gaia_archive — real Gaia, fetched per partition (bulk files or TAP)
#   sources.dust.kind simulated    — an analytic dust map written in the Bayestar19 layout
#   sources.dust.kind bayestar19   — the real map, by dustmaps' own fetch


if DUST_KIND == "simulated":

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

    rule plot_dust_map:
        input:
            DUST_MAP,
        output:
            report(
                f"{FIGURES}/sources/dust_map.png",
                caption="../resources/report/captions/dust_map.rst",
                category="Sources",
                subcategory="Dust map",
            ),
        log:
            f"{LOGS}/plot_dust_map.log",
        conda:
            "../envs/latentsky.yaml"
        resources:
            mem_mb=2000,
            runtime=10,
        script:
            "../scripts/plot_dust_map.py"


if GAIA_KIND == "simulated":

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

    rule plot_gaia_survey:
        input:
            observed=gaia_partitions(GAIA_PARTITION),
            truth=gaia_partitions(GAIA_TRUTH_PARTITION),
        output:
            report(
                f"{FIGURES}/sources/gaia_cmd.png",
                caption="../resources/report/captions/gaia_cmd.rst",
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


if GAIA_KIND == "file":

    rule ingest_gaia_tables:
        input:
            tables=config["sources"]["gaia"]["file"]["paths"],
        output:
            observed=gaia_partitions(GAIA_PARTITION),
        log:
            f"{LOGS}/ingest_gaia_tables.log",
        conda:
            "../envs/latentsky.yaml"
        resources:
            mem_mb=8000,
            runtime=60,
        params:
            partition_order=GAIA_ORDER,
            u0_table=config["sources"]["gaia"]["file"]["u0_table"],
        script:
            "../scripts/ingest_gaia_tables.py"


if DUST_KIND == "bayestar19":

    rule fetch_bayestar19:
        output:
            DUST_MAP,
        log:
            f"{LOGS}/fetch_bayestar19.log",
        retries: 2
        conda:
            "../envs/latentsky.yaml"
        resources:
            mem_mb=2000,
            runtime=600,
        script:
            "../scripts/fetch_bayestar19.py"


if GAIA_KIND == "gaia_archive":

    rule fetch_gaia_partition:
        output:
            GAIA_RAW_PARTITION,
        log:
            f"{LOGS}/fetch_gaia_partition/Npix={{pixel}}.log",
        retries: 3
        conda:
            "../envs/latentsky.yaml"
        resources:
            mem_mb=4000,
            runtime=240,
        params:
            archive=ARCHIVE,
            partition_order=GAIA_ORDER,
        script:
            "../scripts/fetch_gaia_partition.py"

    rule gaia_partition_from_archive:
        input:
            raw_partitions_around,
        output:
            GAIA_PARTITION,
        log:
            f"{LOGS}/gaia_partition_from_archive/Npix={{pixel}}.log",
        retries: 1
        conda:
            "../envs/latentsky.yaml"
        resources:
            mem_mb=lambda wildcards, attempt: 16000 * attempt,
            runtime=120,
        params:
            partition_order=GAIA_ORDER,
        script:
            "../scripts/gaia_partition_from_archive.py"


checkpoint gaia_partition_index:
    input:
        gaia_partitions(GAIA_PARTITION),
    output:
        GAIA_PARTITION_INDEX,
    log:
        f"{LOGS}/gaia_partition_index.log",
    conda:
        "../envs/latentsky.yaml"
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        partition_order=GAIA_ORDER,
    script:
        "../scripts/gaia_partition_index.py"


rule gaia_survey_metrics:
    input:
        observed=gaia_partitions(GAIA_PARTITION),
        truth=gaia_partitions(GAIA_TRUTH_PARTITION) if SIMULATED else [],
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


# DESI spectra (paper 003): simulated BGS + MWS as real-format coadd and Redrock files, or the EDR by
# HEALPix pixel; then the reader.
if DESI_SIMULATED:

    rule simulate_desi_spectra:
        output:
            coadd=expand(f"{DESI_DIR}/coadd-sim-{{survey}}.fits", survey=DESI_SURVEYS),
            redrock=expand(
                f"{DESI_DIR}/redrock-sim-{{survey}}.fits", survey=DESI_SURVEYS
            ),
            truth=f"{DESI_DIR}/truth.parquet",
        log:
            f"{LOGS}/simulate_desi_spectra.log",
        conda:
            "../envs/latentsky.yaml"
        resources:
            mem_mb=8000,
            runtime=30,
        params:
            simulated=DESI["simulated"],
            surveys=DESI_SURVEYS,
            seed=seed_for("simulate_desi_spectra"),
        script:
            "../scripts/simulate_desi_spectra.py"

else:

    checkpoint desi_edr_index:
        output:
            DESI_EDR_INDEX,
        log:
            f"{LOGS}/desi_edr_index.log",
        retries: 2
        conda:
            "../envs/latentsky.yaml"
        resources:
            mem_mb=1000,
            runtime=60,
        params:
            edr=DESI["edr"],
        script:
            "../scripts/desi_edr_index.py"

    rule fetch_desi_healpix:
        output:
            coadd=DESI_EDR_FILE.replace("{kind}", "coadd"),
            redrock=DESI_EDR_FILE.replace("{kind}", "redrock"),
        log:
            f"{LOGS}/fetch_desi_healpix/{{edr_survey}}-{{program}}-{{healpix}}.log",
        wildcard_constraints:
            edr_survey="sv[123]",
            program="[a-z]+",
            healpix="[0-9]+",
        retries: 3
        conda:
            "../envs/latentsky.yaml"
        resources:
            mem_mb=2000,
            runtime=60,
        params:
            base_url=DESI["edr"]["base_url"],
        script:
            "../scripts/fetch_desi_healpix.py"


rule prepare_desi_spectra:
    input:
        unpack(desi_input_files),
    output:
        DESI_SPECTRA,
    log:
        f"{LOGS}/prepare_desi_spectra/{{survey}}.log",
    wildcard_constraints:
        survey="|".join(DESI_SURVEYS),
    retries: 1
    conda:
        "../envs/latentsky.yaml"
    resources:
        mem_mb=lambda wildcards, attempt: 8000 * attempt,
        runtime=60,
    params:
        spectype=lambda wildcards: DESI_SPECTYPE[wildcards.survey],
        z_range=lambda wildcards: DESI["z_range"] if wildcards.survey == "bgs" else None,
        # Simulated files hold one survey each; a real coadd holds every target class of its fibres.
        target_class=lambda wildcards: None if DESI_SIMULATED else wildcards.survey,
    script:
        "../scripts/prepare_desi_spectra.py"
