# Distances (paper 004): the CMD normalizing flow and the HATS catalog of distance posteriors per partition.

# Config block.
DISTANCES = config["distances"]
POSTERIOR = DISTANCES["posterior"]
# What each rule reads of the block, so that changing the posterior or the metrics does not retrain the
# flow (Snakemake reruns a job whose params changed), and changing the metrics does not redo the catalog.
# Keys no job's output depends on (the scheduler's resources, the margin's width) are left out of both.
NOT_OUTPUT_KEYS = ("metrics", "catalog_resources", "margin_threshold_arcsec")
DISTANCES_TRAINING = {
    k: v for k, v in DISTANCES.items() if k not in ("posterior", *NOT_OUTPUT_KEYS)
}
DISTANCES_CATALOG = {k: v for k, v in DISTANCES.items() if k not in NOT_OUTPUT_KEYS}

CMD_FLOW_DIR = f"{RESULTS}/models/cmd_flow"
CMD_FLOW_MODEL = f"{CMD_FLOW_DIR}/model.pt"
DISTANCE_CATALOG = f"{RESULTS}/catalogs/distances"
# HATS layout: dataset/Norder=N/Dir=D/Npix=P.parquet with D = 10000 · (P // 10000).
DISTANCE_PARTITION = (
    f"{DISTANCE_CATALOG}/dataset/Norder={GAIA_ORDER}/Dir={{dir}}/Npix={{pixel}}.parquet"
)
# Catalog-level HATS files. The two Parquet footers carry the provenance of the job that wrote them and
# are released; the text files (hats.properties, properties, partition_info.csv) are derived from them.
DISTANCE_CATALOG_METADATA = [
    f"{DISTANCE_CATALOG}/dataset/_metadata",
    f"{DISTANCE_CATALOG}/dataset/_common_metadata",
]
DISTANCE_CATALOG_TEXT = [
    f"{DISTANCE_CATALOG}/{name}"
    for name in ("hats.properties", "properties", "partition_info.csv")
]

if DISTANCES["dust"]["kind"] == "map" and DUST_KIND == "none":
    raise WorkflowError(
        "config distances.dust.kind is 'map' but sources.dust.kind is 'none': give a map "
        "(sources.dust.kind simulated or bayestar19) or set distances.dust.kind to none or constant"
    )


# The prior's table: the user's (posterior.prior_table), else the simulated survey's own mock tables.
PRIOR_TABLE = None
if POSTERIOR["prior"] in ("ggd", "tabulated"):
    if POSTERIOR["prior_table"]:
        PRIOR_TABLE = POSTERIOR["prior_table"]
    elif SIMULATED:
        PRIOR_TABLE = SIMULATED_PRIOR_TABLES[POSTERIOR["prior"]]
    else:
        raise WorkflowError(
            f"config distances.posterior.prior is {POSTERIOR['prior']!r} but prior_table is empty: give the "
            "table (for ggd, Bailer-Jones et al. 2021's prior_summary.csv: healpix, GGDrlen, GGDalpha, GGDbeta)"
        )


# Helpers (lambdas; see rules/common.smk).
# One catalog partition per non-empty source pixel (known once gaia_partition_index has run).
distance_partitions = lambda wildcards=None: [
    DISTANCE_PARTITION.format(dir=hats_dir(p), pixel=p) for p in nonempty_gaia_pixels()
]
# The dust map, when the distance model reads one (distances.dust.kind = map).
distance_dust_input = lambda wildcards=None: (
    {"dust": DUST_MAP} if DISTANCES["dust"]["kind"] == "map" else {}
)
# Catalog job resources from the measured throughput (distances.catalog_resources; `latentsky benchmark
# distances`): minutes for a job's rows, times the margin and the attempt, plus start-up.
CATALOG_RESOURCES = DISTANCES["catalog_resources"]
catalog_minutes = lambda n_rows, attempt: attempt * int(
    10
    + CATALOG_RESOURCES["runtime_margin"]
    * n_rows
    / CATALOG_RESOURCES["stars_per_s"]
    / 60
)
# A partition with more than max_rows_per_job rows is computed in near-equal row slices, one job each
# (fixed-order partitions are badly unbalanced in the plane), which the partition job joins.
DISTANCE_SLICE = f"{RESULTS}/catalogs/distances_slices/Npix={{pixel}}/rows={{start}}-{{stop}}.parquet"
distance_slices = lambda pixel: [
    DISTANCE_SLICE.format(pixel=pixel, start=start, stop=stop)
    for start, stop in row_slices(
        gaia_partition_rows()[str(pixel)], CATALOG_RESOURCES["max_rows_per_job"]
    )
]
# The rows come from the partition index, an input of the job: through the checkpoint API they would not
# be known when one partition is asked for alone (Snakemake then evaluates the resource to 0). A job that
# joins slices computes nothing.
catalog_runtime = lambda wildcards, input, attempt: (
    catalog_minutes(0, attempt)
    if input.get("slices")
    else catalog_minutes(
        json.loads(Path(input.index).read_text())["rows"][str(wildcards.pixel)], attempt
    )
)
# A GPU for the catalog jobs when the config asks for one (the SLURM profile routes them).
CATALOG_GPU = 1 if str(DISTANCES["device"]).startswith("cuda") else 0
# The prior's table, when the prior reads one.
distance_prior_input = lambda wildcards=None: (
    {"prior_table": PRIOR_TABLE} if PRIOR_TABLE else {}
)
# A partition job's slices, when its partition is computed in slices (none otherwise).
distance_slice_input = lambda wildcards: (
    {"slices": slices} if len(slices := distance_slices(wildcards.pixel)) > 1 else {}
)

# Real clusters the user names for Table 2 (distances.metrics.clusters), one figure each.
NAMED_CLUSTERS = DISTANCES["metrics"]["clusters"]
NAMED_CLUSTER_FIGURES = [
    f"{FIGURES}/distances/cluster_{c['name']}.png" for c in NAMED_CLUSTERS
]

RELEASED["distances"] = lambda wildcards=None: [
    CMD_FLOW_MODEL,
    f"{CMD_FLOW_DIR}/training_history.parquet",
    f"{FIGURES}/distances/loss_curve.png",
    *distance_partitions(),
    *DISTANCE_CATALOG_METADATA,
    f"{METRICS}/distances.json",
    f"{FIGURES}/distances/cmd_raw_vs_posterior.png",
    *([f"{FIGURES}/distances/cluster_distances.png"] if SIMULATED else []),
    *NAMED_CLUSTER_FIGURES,
]


# Training on GPU where the profile provides one (CPU fallback in the demo).
rule train_cmd_flow:
    input:
        unpack(distance_dust_input),
        observed=gaia_partitions(GAIA_PARTITION),
    output:
        model=CMD_FLOW_MODEL,
        history=f"{CMD_FLOW_DIR}/training_history.parquet",
        loss_figure=report(
            f"{FIGURES}/distances/loss_curve.png",
            caption="../resources/report/captions/cmd_flow_loss.rst",
            category="Distances",
            subcategory="Training",
        ),
    log:
        f"{LOGS}/train_cmd_flow.log",
    priority: 6
    retries: 2
    conda:
        "../envs/latentsky.yaml"
    threads: 2
    resources:
        gpu=1,
        mem_mb=lambda wildcards, attempt: 8000 * attempt,
        runtime=lambda wildcards, attempt: 120 * attempt,
    params:
        distances=DISTANCES_TRAINING,
        seed=seed_for("train_cmd_flow"),
        # Kept between attempts (not an output), so a preempted or failed job resumes where it stopped.
        resume=f"{CMD_FLOW_DIR}/resume.pt",
    script:
        "../scripts/train_cmd_flow.py"


# The catalog: distance posteriors, one Parquet per HEALPix partition, assembled into a HATS catalog.
rule distance_catalog_partition:
    input:
        unpack(distance_dust_input),
        unpack(distance_prior_input),
        unpack(distance_slice_input),
        model=CMD_FLOW_MODEL,
        source=GAIA_PARTITION,
        index=GAIA_PARTITION_INDEX,
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
    threads: CATALOG_RESOURCES["threads"]
    resources:
        gpu=lambda wildcards, input: 0 if input.get("slices") else CATALOG_GPU,
        mem_mb=lambda wildcards, attempt: CATALOG_RESOURCES["mem_mb"] * attempt,
        runtime=catalog_runtime,
    params:
        distances=DISTANCES_CATALOG,
        catalog_dir=lambda wildcards, output: hats_root(output[0]),
        partition_order=GAIA_ORDER,
        seed=lambda wildcards: seed_for(f"distance_catalog_partition/{wildcards.pixel}"),
    script:
        "../scripts/distance_catalog_partition.py"


# Rows [start, stop) of a partition too large for one job (see DISTANCE_SLICE); temporary, joined by
# distance_catalog_partition.
rule distance_catalog_slice:
    input:
        unpack(distance_dust_input),
        unpack(distance_prior_input),
        model=CMD_FLOW_MODEL,
        source=GAIA_PARTITION,
    output:
        temp(DISTANCE_SLICE),
    log:
        f"{LOGS}/distance_catalog_slice/Npix={{pixel}}_rows={{start}}-{{stop}}.log",
    wildcard_constraints:
        pixel=r"\d+",
        start=r"\d+",
        stop=r"\d+",
    retries: 1
    conda:
        "../envs/latentsky.yaml"
    threads: CATALOG_RESOURCES["threads"]
    resources:
        gpu=CATALOG_GPU,
        mem_mb=lambda wildcards, attempt: CATALOG_RESOURCES["mem_mb"] * attempt,
        runtime=lambda wildcards, attempt: catalog_minutes(
            int(wildcards.stop) - int(wildcards.start), attempt
        ),
    params:
        distances=DISTANCES_CATALOG,
        seed=lambda wildcards: seed_for(
            f"distance_catalog_partition/{wildcards.pixel}/{wildcards.start}"
        ),
    script:
        "../scripts/distance_catalog_slice.py"


# The star-count maps finalize writes (default_skymap_order), from which hats and lsdb build the MOC.
DISTANCE_CATALOG_MAPS = [
    f"{DISTANCE_CATALOG}/{name}" for name in ("point_map.fits", "skymap.fits")
]


rule distance_catalog:
    input:
        distance_partitions,
    output:
        DISTANCE_CATALOG_METADATA,
        DISTANCE_CATALOG_TEXT,
        DISTANCE_CATALOG_MAPS,
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


# The catalog's HATS margin cache: a sibling catalog (HATS keeps margins beside their catalog; inside it,
# hats' validation would read the margin's partitions as the catalog's), holding for each pixel the rows
# of the other partitions within distances.margin_threshold_arcsec of it, for lsdb cross-matches across
# partition boundaries. Its partitions depend on the data, so the rule names the catalog-level files only
# (the job replaces the whole directory); the two Parquet footers carry the job's provenance and _metadata
# lists every margin partition's row groups, so they are what the release lists.
DISTANCE_MARGIN = f"{RESULTS}/catalogs/distances_margin"
DISTANCE_MARGIN_METADATA = [
    f"{DISTANCE_MARGIN}/dataset/_metadata",
    f"{DISTANCE_MARGIN}/dataset/_common_metadata",
]
DISTANCE_MARGIN_TEXT = [
    f"{DISTANCE_MARGIN}/{name}"
    for name in ("hats.properties", "properties", "partition_info.csv")
]

RELEASED["distances_margin"] = lambda wildcards=None: DISTANCE_MARGIN_METADATA


rule distance_catalog_margin:
    input:
        partitions=distance_partitions,
        catalog=DISTANCE_CATALOG_METADATA + DISTANCE_CATALOG_TEXT,
    output:
        DISTANCE_MARGIN_METADATA,
        DISTANCE_MARGIN_TEXT,
    log:
        f"{LOGS}/distance_catalog_margin.log",
    retries: 1
    conda:
        "../envs/latentsky.yaml"
    # Reads every partition once, one at a time.
    resources:
        mem_mb=lambda wildcards, attempt: 4000 * attempt,
        runtime=lambda wildcards, attempt: 120 * attempt,
    params:
        catalog_dir=lambda wildcards, input: hats_root(input.catalog[0]),
        margin_dir=lambda wildcards, output: hats_root(output[0]),
        threshold_arcsec=DISTANCES["margin_threshold_arcsec"],
    script:
        "../scripts/distance_catalog_margin.py"


# Scores against truth on the simulated survey; with it, the same stars through every scheme and prior
# (the model, map and prior tables are inputs for that).
rule distance_metrics:
    input:
        unpack(distance_dust_input),
        unpack(distance_prior_input),
        catalog=distance_partitions,
        hats=DISTANCE_CATALOG_METADATA,
        truth=gaia_partitions(GAIA_TRUTH_PARTITION) if SIMULATED else [],
        model=CMD_FLOW_MODEL,
        sources=gaia_partitions(GAIA_PARTITION) if SIMULATED else [],
        prior_tables=list(SIMULATED_PRIOR_TABLES.values()) if SIMULATED else [],
        members=[c["members"] for c in NAMED_CLUSTERS],
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
        named_clusters=[
            report(
                path,
                caption="../resources/report/captions/cluster_named.rst",
                category="Distances",
                subcategory="Catalog",
            )
            for path in NAMED_CLUSTER_FIGURES
        ],
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
        prior_tables=SIMULATED_PRIOR_TABLES if SIMULATED else {},
        seed=seed_for("distance_metrics"),
    script:
        "../scripts/distance_metrics.py"
