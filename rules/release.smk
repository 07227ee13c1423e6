# Release: the manifest of every released file (sha256, size, rows), the starting point of an audit.
MANIFEST = f"{RESULTS}/release/manifest.parquet"
MANIFEST_SHA256 = f"{RESULTS}/release/manifest.sha256"


# Every file the release lists (and `latentsky audit` can check): the parts the stages registered in
# RELEASED (rules/common.smk).
released_files = lambda wildcards=None: [
    path for part in RELEASED.values() for path in part(wildcards)
]


rule release_manifest:
    input:
        released_files,
    output:
        manifest=MANIFEST,
        sha256=MANIFEST_SHA256,
    log:
        f"{LOGS}/release_manifest.log",
    conda:
        "../envs/latentsky.yaml"
    resources:
        mem_mb=2000,
        runtime=30,
    script:
        "../scripts/release_manifest.py"
