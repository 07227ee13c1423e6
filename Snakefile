# latentsky: survey data → released catalogs with deep generative models.
# Stages live in rules/*.smk; the science in src/latentsky/. See README.md and docs/ (one page per method).
from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config/config.yaml"


validate(config, "config/schema.yaml")


report: "resources/report/workflow.rst"


include: "rules/common.smk"
include: "rules/sources.smk"
include: "rules/distances.smk"
include: "rules/crossmatch.smk"
include: "rules/lightcurves.smk"
include: "rules/pelsvae.smk"
include: "rules/bgs.smk"
include: "rules/xp.smk"
include: "rules/cyclestarnet.smk"
include: "rules/release.smk"


localrules:
    all,


rule all:
    default_target: True
    input:
        MANIFEST,
        MANIFEST_SHA256,
