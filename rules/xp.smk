# Gaia XP (paper 001): the scatter VAE and The Cannon on the same stars, the latent catalog, the evaluation.
import os

from latentsky.provenance.files import parquet_num_rows

XP = config["xp"]
SVAE = config["svae"]
CANNON = config["cannon"]

XP_DIR = f"{RESULTS}/sources/xp"
XP_SAMPLES = ["crossmatch", "unlabelled"]
XP_SIMULATED = XP["kind"] == "simulated"
# xp.kind apogee_crossmatch: the archives' stars, fetched in XP_FETCH["n_parts"] jobs per sample.
XP_FETCH = XP["apogee_crossmatch"]
XP_ALLSTAR = (
    XP_FETCH["allstar"]
    or f"{XP_DIR}/apogee/{os.path.basename(XP_FETCH['allstar_url'])}"
)
XP_PART = f"{XP_DIR}/parts/{{sample}}-{{part}}-of-{XP_FETCH['n_parts']}.parquet"
XP_MODEL_DIR = f"{RESULTS}/models/xp"
SVAE_PRESETS = list(SVAE["presets"])
SVAE_MODEL = f"{XP_MODEL_DIR}/svae_{{preset}}.pt"
XP_CATALOG = f"{RESULTS}/catalogs/xp_latents.parquet"
XP_FIGURES = [
    "example_reconstruction",
    "normalised_errors",
    "wavelength_residuals",
    "latent_coverage",
    "training_curves",
]
# One split of the cross-match for the sVAE presets and the Cannon (test stars are never trained on).
XP_SPLIT_SEED = seed_for("xp_split")

# Partitioned XP input (xp.partitions): one HATS partition of the latent catalog per input pixel. Pixels whose
# table has no rows are left out (HATS has no empty partitions).
XP_PARTS = XP["partitions"]
XP_HATS = f"{RESULTS}/catalogs/xp_latents_hats"
XP_HATS_PARTITION = (
    f"{XP_HATS}/dataset/Norder={XP_PARTS['order']}/Dir={{dir}}/Npix={{pixel}}.parquet"
)
XP_HATS_FILES = [
    *(f"{XP_HATS}/dataset/{name}" for name in ("_metadata", "_common_metadata")),
    *(
        f"{XP_HATS}/{name}"
        for name in (
            "hats.properties",
            "properties",
            "partition_info.csv",
            "point_map.fits",
            "skymap.fits",
        )
    ),
]
if (XP_PARTS["order"] is None) != (XP_PARTS["table"] is None):
    raise ValueError("xp.partitions needs both order and table (or neither)")
if XP_PARTS["table"] is not None and "{pixel}" not in XP_PARTS["table"]:
    raise ValueError(
        f"xp.partitions.table {XP_PARTS['table']!r} has no {{pixel}} to fill in"
    )
xp_partition_table = lambda pixel: XP_PARTS["table"].format(pixel=pixel)
for _pixel in XP_PARTS["pixels"] if XP_PARTS["table"] is not None else []:
    if not os.path.isfile(xp_partition_table(_pixel)):
        raise ValueError(
            f"xp.partitions: no file {xp_partition_table(_pixel)} for pixel {_pixel} (order {XP_PARTS['order']})"
        )
XP_HATS_PIXELS = (
    [p for p in XP_PARTS["pixels"] if parquet_num_rows(xp_partition_table(p)) > 0]
    if XP_PARTS["table"] is not None
    else []
)
xp_hats_partitions = lambda wildcards=None: [
    XP_HATS_PARTITION.format(dir=hats_dir(p), pixel=p) for p in XP_HATS_PIXELS
]

if SVAE["catalog_preset"] not in SVAE_PRESETS:
    raise ValueError(
        f"svae.catalog_preset {SVAE['catalog_preset']!r} is not one of svae.presets {SVAE_PRESETS}"
    )
if XP["kind"] == "file" and not XP["file"]["crossmatch"]:
    raise ValueError(
        "xp.kind is 'file' but xp.file.crossmatch lists no XP table of labelled stars"
    )

RELEASED["xp"] = lambda wildcards=None: [
    *expand(f"{XP_DIR}/{{sample}}.parquet", sample=XP_SAMPLES),
    *(
        expand(f"{XP_DIR}/truth-{{sample}}.parquet", sample=XP_SAMPLES)
        if XP_SIMULATED
        else []
    ),
    *expand(SVAE_MODEL, preset=SVAE_PRESETS),
    *expand(f"{XP_MODEL_DIR}/svae_{{preset}}_history.parquet", preset=SVAE_PRESETS),
    f"{XP_MODEL_DIR}/cannon.pt",
    XP_CATALOG,
    f"{METRICS}/xp_svae.json",
    *expand(f"{FIGURES}/xp/{{name}}.png", name=XP_FIGURES),
    *(XP_HATS_FILES if XP_HATS_PIXELS else []),
]


if XP_SIMULATED:

    # Physically shaped SEDs on Gaia's own DR3 BP/RP basis (GaiaXPy), with known truth (spec A2).
    rule simulate_xp_survey:
        output:
            tables=expand(f"{XP_DIR}/{{sample}}.parquet", sample=XP_SAMPLES),
            truth=expand(f"{XP_DIR}/truth-{{sample}}.parquet", sample=XP_SAMPLES),
        log:
            f"{LOGS}/simulate_xp_survey.log",
        conda:
            "../envs/latentsky.yaml"
        resources:
            mem_mb=4000,
            runtime=30,
        params:
            simulated=XP["simulated"],
            samples=XP_SAMPLES,
            seed=seed_for("simulate_xp_survey"),
        script:
            "../scripts/simulate_xp_survey.py"

elif XP["kind"] == "apogee_crossmatch":

    if not XP_FETCH["allstar"]:

        # APOGEE DR17 allStarLite from the SDSS Science Archive Server, checked to read as an allStar table.
        rule fetch_apogee_allstar:
            output:
                XP_ALLSTAR,
            log:
                f"{LOGS}/fetch_apogee_allstar.log",
            retries: 3
            conda:
                "../envs/latentsky.yaml"
            resources:
                mem_mb=4000,
                runtime=120,
            params:
                url=XP_FETCH["allstar_url"],
            script:
                "../scripts/fetch_apogee_allstar.py"

    # The unlabelled sample's ids: the first n_unlabelled XP sources in gaia_source's random_index order.
    rule select_xp_unlabelled_ids:
        output:
            ids=f"{XP_DIR}/unlabelled_ids.parquet",
            answer=f"{XP_DIR}/unlabelled_ids_tap.vot",
        log:
            f"{LOGS}/select_xp_unlabelled_ids.log",
        retries: 3
        conda:
            "../envs/latentsky.yaml"
        resources:
            mem_mb=4000,
            runtime=120,
        params:
            fetch=XP_FETCH,
        script:
            "../scripts/select_xp_unlabelled_ids.py"

    # One part of a sample's XP spectra (source_id modulo n_parts) through the archive's datalink, G flux by
    # TAP; every asked-for id keeps its row (missing_from_archive when the archive has no spectrum).
    rule fetch_xp_part:
        input:
            ids=lambda wildcards: (
                XP_ALLSTAR
                if wildcards.sample == "crossmatch"
                else f"{XP_DIR}/unlabelled_ids.parquet"
            ),
        output:
            XP_PART,
        log:
            f"{LOGS}/fetch_xp_part/{{sample}}-{{part}}.log",
        wildcard_constraints:
            sample="|".join(XP_SAMPLES),
            part=r"\d+",
        retries: 3
        conda:
            "../envs/latentsky.yaml"
        resources:
            mem_mb=4000,
            runtime=600,
        params:
            fetch=XP_FETCH,
        script:
            "../scripts/fetch_xp_part.py"

    # A sample's parts in one table, the cross-match with its allStar labels joined by source_id.
    rule xp_sources_from_parts:
        input:
            parts=lambda wildcards: expand(
                XP_PART,
                sample=wildcards.sample,
                part=range(XP_FETCH["n_parts"]),
            ),
            allstar=lambda wildcards: (
                [XP_ALLSTAR] if wildcards.sample == "crossmatch" else []
            ),
        output:
            f"{XP_DIR}/{{sample}}.parquet",
        log:
            f"{LOGS}/xp_sources_from_parts/{{sample}}.log",
        wildcard_constraints:
            sample="|".join(XP_SAMPLES),
        conda:
            "../envs/latentsky.yaml"
        resources:
            mem_mb=8000,
            runtime=120,
        script:
            "../scripts/xp_sources_from_parts.py"

else:

    # A user's XP tables (any archive format) in the one Parquet layout, the labels of the cross-match
    # joined from APOGEE DR17 allStar by Gaia source_id.
    rule prepare_xp_sources:
        input:
            tables=lambda wildcards: XP["file"][wildcards.sample],
            allstar=lambda wildcards: (
                [XP["file"]["allstar"]]
                if wildcards.sample == "crossmatch" and XP["file"]["allstar"]
                else []
            ),
        output:
            f"{XP_DIR}/{{sample}}.parquet",
        log:
            f"{LOGS}/prepare_xp_sources/{{sample}}.log",
        wildcard_constraints:
            sample="|".join(XP_SAMPLES),
        conda:
            "../envs/latentsky.yaml"
        resources:
            mem_mb=8000,
            runtime=60,
        script:
            "../scripts/prepare_xp_sources.py"


# The scatter VAE (paper 001 Sec. 2), one model per preset: the paper's and the authors' 2024 code.
rule train_svae:
    input:
        crossmatch=f"{XP_DIR}/crossmatch.parquet",
    output:
        model=SVAE_MODEL,
        history=f"{XP_MODEL_DIR}/svae_{{preset}}_history.parquet",
    log:
        f"{LOGS}/train_svae/{{preset}}.log",
    wildcard_constraints:
        preset="|".join(SVAE_PRESETS),
    retries: 2
    conda:
        "../envs/latentsky.yaml"
    threads: 1
    resources:
        gpu=1,
        mem_mb=lambda wildcards, attempt: 8000 * attempt,
        runtime=lambda wildcards, attempt: 240 * attempt,
    params:
        settings=lambda wildcards: SVAE["presets"][wildcards.preset],
        preset=lambda wildcards: wildcards.preset,
        device=SVAE["device"],
        missing_band=SVAE["missing_band"],
        split=XP["split"],
        split_seed=XP_SPLIT_SEED,
        seed=lambda wildcards: seed_for(f"train_svae_{wildcards.preset}"),
        # Kept between attempts (not an output), so a preempted job resumes after its last checkpoint.
        resume=f"{XP_MODEL_DIR}/svae_{{preset}}_resume.pt",
    script:
        "../scripts/train_svae.py"


# The Cannon (Ness et al. 2015) on the same training stars and catalog labels (paper 001 Sec. 3).
rule fit_xp_cannon:
    input:
        crossmatch=f"{XP_DIR}/crossmatch.parquet",
    output:
        model=f"{XP_MODEL_DIR}/cannon.pt",
    log:
        f"{LOGS}/fit_xp_cannon.log",
    conda:
        "../envs/latentsky.yaml"
    resources:
        mem_mb=8000,
        runtime=30,
    params:
        cannon=CANNON,
        missing_band=SVAE["missing_band"],
        split=XP["split"],
        split_seed=XP_SPLIT_SEED,
    script:
        "../scripts/fit_xp_cannon.py"


# The latent catalog: one row per star of both samples (spec A1.6, A5), with the Cannon beside it.
rule xp_catalog:
    input:
        tables=expand(f"{XP_DIR}/{{sample}}.parquet", sample=XP_SAMPLES),
        model=SVAE_MODEL.format(preset=SVAE["catalog_preset"]),
        cannon=f"{XP_MODEL_DIR}/cannon.pt",
    output:
        XP_CATALOG,
    log:
        f"{LOGS}/xp_catalog.log",
    conda:
        "../envs/latentsky.yaml"
    resources:
        mem_mb=8000,
        runtime=60,
    params:
        samples=XP_SAMPLES,
        missing_band=SVAE["missing_band"],
        split=XP["split"],
        split_seed=XP_SPLIT_SEED,
    script:
        "../scripts/xp_catalog.py"


# The paper's figures of merit on the held-out stars, every preset beside the Cannon (spec A3).
rule evaluate_xp_svae:
    input:
        **(
            {"truth": expand(f"{XP_DIR}/truth-{{sample}}.parquet", sample=XP_SAMPLES)}
            if XP_SIMULATED
            else {}
        ),
        tables=expand(f"{XP_DIR}/{{sample}}.parquet", sample=XP_SAMPLES),
        models=expand(SVAE_MODEL, preset=SVAE_PRESETS),
        histories=expand(
            f"{XP_MODEL_DIR}/svae_{{preset}}_history.parquet", preset=SVAE_PRESETS
        ),
        cannon=f"{XP_MODEL_DIR}/cannon.pt",
        catalog=XP_CATALOG,
    output:
        metrics=f"{METRICS}/xp_svae.json",
        figures=[
            report(
                f"{FIGURES}/xp/{name}.png",
                caption=f"../resources/report/captions/xp_{name}.rst",
                category="Gaia XP scatter VAE",
            )
            for name in XP_FIGURES
        ],
    log:
        f"{LOGS}/evaluate_xp_svae.log",
    conda:
        "../envs/latentsky.yaml"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=60,
    params:
        presets=SVAE_PRESETS,
        catalog_preset=SVAE["catalog_preset"],
        missing_band=SVAE["missing_band"],
        split=XP["split"],
        split_seed=XP_SPLIT_SEED,
        seed=seed_for("evaluate_xp_svae"),
    script:
        "../scripts/evaluate_xp_svae.py"


# The latent catalog of one HEALPix partition of xp.partitions (catalog preset), a HATS partition file.
rule xp_catalog_partition:
    input:
        table=lambda wildcards: xp_partition_table(wildcards.pixel),
        model=SVAE_MODEL.format(preset=SVAE["catalog_preset"]),
    output:
        XP_HATS_PARTITION,
    log:
        f"{LOGS}/xp_catalog_partition/Npix={{pixel}}_Dir={{dir}}.log",
    wildcard_constraints:
        pixel=r"\d+",
        dir=r"\d+",
    conda:
        "../envs/latentsky.yaml"
    resources:
        mem_mb=8000,
        runtime=60,
    params:
        catalog_dir=lambda wildcards, output: hats_root(output[0]),
        order=XP_PARTS["order"],
        pixel=lambda wildcards: int(wildcards.pixel),
        missing_band=SVAE["missing_band"],
    script:
        "../scripts/xp_catalog_partition.py"


# The catalog-level HATS files over every XP partition (readable with lsdb.open_catalog).
rule xp_catalog_hats:
    input:
        xp_hats_partitions,
    output:
        XP_HATS_FILES,
    log:
        f"{LOGS}/xp_catalog_hats.log",
    conda:
        "../envs/latentsky.yaml"
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        catalog_dir=lambda wildcards, output: hats_root(output[0]),
        order=XP_PARTS["order"],
    script:
        "../scripts/xp_catalog_hats.py"
