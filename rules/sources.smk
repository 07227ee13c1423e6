# Sources: the Gaia-like source table, partitioned by HEALPix, and the 3-D dust map.
#   sources.gaia.kind simulated    — the simulated survey with truth (embedded default)
#   sources.gaia.kind file         — Gaia tables a user supplies, in any archive format
#   sources.gaia.kind gaia_archive — real Gaia, fetched per partition (bulk files or TAP)
#   sources.dust.kind simulated    — an analytic dust map written in the Bayestar19 layout
#   sources.dust.kind bayestar19   — the real map, by dustmaps' own fetch
import json
from functools import partial
from pathlib import Path

from latentsky.fetch.gaia_u0 import archive_release
from latentsky.io.gaia_columns import ESA_U0_TABLE_FILES
from latentsky.io.healpix import neighbours_in, npix

# Config blocks.
GAIA_KIND = config["sources"]["gaia"]["kind"]
DUST_KIND = config["sources"]["dust"]["kind"]
ARCHIVE = config["sources"]["gaia"]["archive"]
GAIA_ORDER = config["sources"]["gaia"]["partition_order"]
SIMULATED = GAIA_KIND == "simulated"

GAIA_PARTITIONS = list(range(npix(GAIA_ORDER)))
if GAIA_KIND == "gaia_archive" and ARCHIVE["partitions"]:
    GAIA_PARTITIONS = sorted(set(ARCHIVE["partitions"]))
    _bad = [p for p in GAIA_PARTITIONS if p >= npix(GAIA_ORDER)]
    if _bad:
        raise WorkflowError(
            f"config sources.gaia.archive.partitions: {_bad} do not exist at partition_order {GAIA_ORDER} "
            f"(0..{npix(GAIA_ORDER) - 1})"
        )

# Source layout follows HATS' Norder=/Npix= naming so a partition's path says which sky it covers.
GAIA_PARTITION = f"{RESULTS}/sources/gaia/Norder={GAIA_ORDER}/Npix={{pixel}}.parquet"
GAIA_TRUTH_PARTITION = (
    f"{RESULTS}/sources/gaia_truth/Norder={GAIA_ORDER}/Npix={{pixel}}.parquet"
)
GAIA_RAW_SUFFIX = ".csv.gz" if ARCHIVE["method"] == "bulk" else ".vot.gz"
GAIA_RAW_PARTITION = (
    f"{RESULTS}/sources/gaia_raw/Norder={GAIA_ORDER}/Npix={{pixel}}{GAIA_RAW_SUFFIX}"
)
# Beside, not inside, the partition directory, which stays a plain Parquet dataset.
GAIA_PARTITION_INDEX = f"{RESULTS}/sources/gaia_partition_index.json"
DUST_MAP = f"{RESULTS}/sources/dust/bayestar.h5"
# ESA's DR2 RUWE normalisation (DR2_RUWE_V1), for archive DR2 with sources.gaia.archive.u0_table: fetch.
GAIA_U0_TABLES = [f"{RESULTS}/sources/gaia_u0/{name}" for name in ESA_U0_TABLE_FILES]
# Distance-prior tables for the simulated survey (the user gives their own for real Gaia).
SIMULATED_PRIOR_TABLES = {
    "tabulated": f"{RESULTS}/sources/distance_prior/tabulated.parquet",
    "ggd": f"{RESULTS}/sources/distance_prior/ggd.parquet",
}
DUST_TRUTH_MAP = f"{RESULTS}/sources/dust_truth/bayestar_fullsky.h5"


# The u0 tables the archive route's RUWE is normalised with: DR2's gaia_source has no ruwe, (E)DR3's has.
# Empty: an empirical u0 per fetched partition, flagged per row (ruwe_empirical_u0) into the catalog.
ARCHIVE_U0 = ARCHIVE["u0_table"]
ARCHIVE_U0_TABLES = []
if GAIA_KIND == "gaia_archive" and archive_release(ARCHIVE) == "dr2" and ARCHIVE_U0:
    if ARCHIVE_U0 == "fetch":
        ARCHIVE_U0_TABLES = GAIA_U0_TABLES
    else:
        ARCHIVE_U0_TABLES = (
            [ARCHIVE_U0] if isinstance(ARCHIVE_U0, str) else list(ARCHIVE_U0)
        )


# Helpers (lambdas; see rules/common.smk).
# A per-partition path pattern expanded over every source partition, in partition order.
gaia_partitions = partial(expand, pixel=GAIA_PARTITIONS)
# The fetched source_id range of a pixel and of its neighbours (see rule gaia_partition_from_archive).
raw_partitions_around = lambda wildcards: expand(
    GAIA_RAW_PARTITION,
    pixel=neighbours_in(int(wildcards.pixel), GAIA_ORDER, GAIA_PARTITIONS),
)
# Rows per pixel, from the partition index (so known once its checkpoint has run).
gaia_partition_rows = lambda: json.loads(
    Path(checkpoints.gaia_partition_index.get().output[0]).read_text()
)["rows"]
# Pixels holding at least one star, in pixel order.
nonempty_gaia_pixels = lambda: sorted(
    int(p) for p, n in gaia_partition_rows().items() if n > 0
)

RELEASED["sources"] = lambda wildcards=None: [
    *gaia_partitions(GAIA_PARTITION),
    GAIA_PARTITION_INDEX,
    f"{METRICS}/sources.json",
    *(
        [
            *gaia_partitions(GAIA_TRUTH_PARTITION),
            f"{FIGURES}/sources/gaia_cmd.png",
            *SIMULATED_PRIOR_TABLES.values(),
        ]
        if SIMULATED
        else []
    ),
    *(
        [DUST_MAP, DUST_TRUTH_MAP, f"{FIGURES}/sources/dust_map.png"]
        if DUST_KIND == "simulated"
        else []
    ),
]


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

    # The mock behind the simulated survey's distance priors: an independent draw of its stellar density.
    rule simulate_distance_prior:
        output:
            tabulated=SIMULATED_PRIOR_TABLES["tabulated"],
            ggd=SIMULATED_PRIOR_TABLES["ggd"],
        log:
            f"{LOGS}/simulate_distance_prior.log",
        conda:
            "../envs/latentsky.yaml"
        resources:
            mem_mb=2000,
            runtime=10,
        params:
            simulated=config["sources"]["gaia"]["simulated"],
            mock=config["sources"]["gaia"]["prior_mock"],
            seed=seed_for("simulate_distance_prior"),
        script:
            "../scripts/simulate_distance_prior.py"

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

    if ARCHIVE_U0 == "fetch" and archive_release(ARCHIVE) == "dr2":

        rule fetch_gaia_u0_table:
            output:
                GAIA_U0_TABLES,
            log:
                f"{LOGS}/fetch_gaia_u0_table.log",
            retries: 3
            conda:
                "../envs/latentsky.yaml"
            resources:
                mem_mb=1000,
                runtime=30,
            params:
                url=ARCHIVE["u0_url"],
            script:
                "../scripts/fetch_gaia_u0_table.py"

    rule gaia_partition_from_archive:
        input:
            raw=raw_partitions_around,
            u0=ARCHIVE_U0_TABLES,
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
            release=archive_release(ARCHIVE),
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
