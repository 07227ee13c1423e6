# Release: the manifest of every released file (sha256, size, rows), the starting point of an audit.


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
