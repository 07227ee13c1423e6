# OGLE-III × Gaia cross-match with the proper-motion validation cascade (paper 000 Appendix A, Table 4).
#   ogle.kind simulated     — OGLE-III-like fields with known Gaia counterparts (truth kept beside them)
#   ogle.kind ogle3_archive — the OGLE-III Catalog of Variable Stars over HTTP (and OGLE-IV OCVS directories
#                             where ogle.archive.catalogs names them, "ogle4:blg/ecl"), Gaia DR2 through astroquery

# Config blocks.
OGLE_KIND = config["ogle"]["kind"]
OGLE_ARCHIVE = config["ogle"]["archive"]
# The PELS-VAE authors' OGLE-III × Gaia DR2 tables (crossmatch.published_tables; null skips the rule).
PUBLISHED_XMATCH = config["crossmatch"]["published_tables"]

OGLE_DIR = f"{RESULTS}/sources/ogle"
OGLE_ARCHIVE_DIR = f"{RESULTS}/sources/ogle3_archive"
# Truth exists only for the simulated fields.
OGLE_TABLES = {
    name: f"{OGLE_DIR}/{name}.parquet"
    for name in ("objects", "light_curves", "gaia")
    + (("truth", "reddening_map") if OGLE_KIND == "simulated" else ())
}
CROSSMATCH_DIR = f"{RESULTS}/crossmatch"
PUBLISHED_DIR = f"{CROSSMATCH_DIR}/published"
PUBLISHED_OUTPUTS = [
    f"{PUBLISHED_DIR}/matches.parquet",
    f"{PUBLISHED_DIR}/summary.parquet",
    f"{METRICS}/crossmatch_published.json",
    f"{PUBLISHED_DIR}/physics.parquet",
    f"{FIGURES}/crossmatch/published_cepheid_pl.png",
]

# The authors' five tables in that directory, each plain or .gz; checked at parse time.
PUBLISHED_XMATCH_FILES = []
if PUBLISHED_XMATCH:
    from latentsky.io.ogle import OgleFormatError, published_table_paths

    try:
        PUBLISHED_XMATCH_FILES = [
            str(path) for path in published_table_paths(PUBLISHED_XMATCH).values()
        ]
    except OgleFormatError as err:
        raise WorkflowError(
            f"config crossmatch.published_tables: {err}. Point it at the directory of the PELS-VAE "
            "authors' tables (resources/ogle3_gaiadr2_xmatch in the repository) or set it to null to "
            "skip the comparison with the published cross-match."
        ) from err

# Helpers (lambdas; see rules/common.smk).
# The fetched catalog directories' tables (ogle.archive.catalogs: "target/class" for OGLE-III under
# {OGLE_ARCHIVE_DIR}/target/class, "ogle4:target/class" for OGLE-IV under {OGLE_ARCHIVE_DIR}/ogle4/target/class).
ogle3_catalog_files = lambda name: [
    f"{OGLE_ARCHIVE_DIR}/{parse_catalog_entry(entry).path}/{name}.parquet"
    for entry in OGLE_ARCHIVE["catalogs"]
]

if OGLE_KIND != "simulated":
    from latentsky.fetch.ogle3 import OGLE3_TARGETS, parse_catalog_entry

RELEASED["crossmatch"] = lambda wildcards=None: [
    *OGLE_TABLES.values(),
    f"{CROSSMATCH_DIR}/matches.parquet",
    f"{CROSSMATCH_DIR}/cascade_counts.parquet",
    f"{METRICS}/crossmatch.json",
    *(PUBLISHED_OUTPUTS if PUBLISHED_XMATCH else []),
]


if OGLE_KIND == "simulated":

    rule simulate_ogle_fields:
        output:
            **OGLE_TABLES,
        log:
            f"{LOGS}/simulate_ogle_fields.log",
        priority: 8
        conda:
            "../envs/latentsky.yaml"
        # Measured (job log's peak memory): 0.43 GB and 1.3 s at 1,500 objects, 2.7 GB and 14 s at 15,000 —
        # 0.17 MB an object (its light curves), so 0.2 MB an object above a 1 GB floor.
        resources:
            mem_mb=max(2000, 1000 + config["ogle"]["simulated"]["n_objects"] // 5),
            runtime=10,
        params:
            simulated=config["ogle"]["simulated"],
            seed=seed_for("simulate_ogle_fields"),
        script:
            "../scripts/simulate_ogle_fields.py"

else:
    # Real OGLE: one fetch job per catalog directory (target/class), merged into the tables the
    # simulation writes (no truth), then every Gaia DR2 source within the cone of each object. The target
    # is constrained, so that an OGLE-IV path (ogle4/blg/ecl) can never be read as OGLE-III target/class.

    rule fetch_ogle3_catalog:
        output:
            objects=f"{OGLE_ARCHIVE_DIR}/{{target}}/{{cls}}/objects.parquet",
            light_curves=f"{OGLE_ARCHIVE_DIR}/{{target}}/{{cls}}/light_curves.parquet",
        log:
            f"{LOGS}/fetch_ogle3_catalog/{{target}}_{{cls}}.log",
        wildcard_constraints:
            target="|".join(OGLE3_TARGETS),
            cls=r"[a-z0-9]+",
        retries: 3
        conda:
            "../envs/latentsky.yaml"
        resources:
            mem_mb=lambda wildcards, attempt: 8000 * attempt,
            runtime=240,
        params:
            archive=OGLE_ARCHIVE,
            survey="ogle3",
        script:
            "../scripts/fetch_ogle3_catalog.py"

    use rule fetch_ogle3_catalog as fetch_ogle4_catalog with:
        output:
            objects=f"{OGLE_ARCHIVE_DIR}/ogle4/{{target}}/{{cls}}/objects.parquet",
            light_curves=f"{OGLE_ARCHIVE_DIR}/ogle4/{{target}}/{{cls}}/light_curves.parquet",
        log:
            f"{LOGS}/fetch_ogle4_catalog/{{target}}_{{cls}}.log",
        params:
            archive=OGLE_ARCHIVE,
            survey="ogle4",

    rule merge_ogle_catalogs:
        input:
            objects=ogle3_catalog_files("objects"),
            light_curves=ogle3_catalog_files("light_curves"),
        output:
            objects=OGLE_TABLES["objects"],
            light_curves=OGLE_TABLES["light_curves"],
        log:
            f"{LOGS}/merge_ogle_catalogs.log",
        conda:
            "../envs/latentsky.yaml"
        # The light curves are streamed one row group at a time: measured on 20 million epochs in five
        # catalogs, 0.40 GB peak (0.14 GB of it imports) and 2 s, where the in-memory concatenation took
        # 2.2 GB — 105 bytes an epoch, ~50 GB for the ~5·10⁸ epochs of full.yaml's catalogs. Peak memory does
        # not grow with the epochs; the time does (I/O bound: minutes at paper scale).
        resources:
            mem_mb=4000,
            runtime=60,
        script:
            "../scripts/merge_ogle_catalogs.py"

    rule fetch_gaia_neighbours:
        input:
            objects=OGLE_TABLES["objects"],
        output:
            OGLE_TABLES["gaia"],
        log:
            f"{LOGS}/fetch_gaia_neighbours.log",
        retries: 3
        conda:
            "../envs/latentsky.yaml"
        resources:
            mem_mb=8000,
            runtime=480,
        params:
            archive=OGLE_ARCHIVE,
            radius_arcsec=config["crossmatch"]["radius_arcsec"],
            release=config["crossmatch"]["gaia_release"],
        script:
            "../scripts/fetch_gaia_neighbours.py"


rule crossmatch_ogle_gaia:
    input:
        # Precision and recall need the simulation's truth; real data get the counts alone.
        **({"truth": OGLE_TABLES["truth"]} if "truth" in OGLE_TABLES else {}),
        objects=OGLE_TABLES["objects"],
        gaia=OGLE_TABLES["gaia"],
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
    priority: 8
    conda:
        "../envs/latentsky.yaml"
    # Measured (job log's peak memory) on the simulated fields: 0.23 GB and 1.6 s with 0.5 MB of input
    # (1,500 objects), 0.42 GB and 19 s with 5 MB (15,000): ~45 MB and ~4 s per MB of input Parquet (70 MB
    # per MB of objects + Gaia tables alone). full.yaml's ~800,000 OGLE-III + OGLE-IV objects and their Gaia
    # neighbours are ~170 MB of input: ~13 GB and ~15 minutes; both are sized from the inputs at run time.
    resources:
        mem_mb=lambda wildcards, input: max(4000, int(1000 + 70 * input.size_mb)),
        runtime=lambda wildcards, input: max(20, int(10 + 0.2 * input.size_mb)),
    params:
        crossmatch=config["crossmatch"],
    script:
        "../scripts/crossmatch_ogle_gaia.py"


rule crossmatch_published_tables:
    input:
        tables=PUBLISHED_XMATCH_FILES,
    output:
        matches=PUBLISHED_OUTPUTS[0],
        summary=PUBLISHED_OUTPUTS[1],
        summary_md=report(
            f"{PUBLISHED_DIR}/summary.md",
            caption="../resources/report/captions/published_crossmatch.rst",
            category="Cross-match",
        ),
        metrics=PUBLISHED_OUTPUTS[2],
        physics=PUBLISHED_OUTPUTS[3],
        pl_figure=report(
            PUBLISHED_OUTPUTS[4],
            caption="../resources/report/captions/published_cepheid_pl.rst",
            category="Cross-match",
        ),
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
