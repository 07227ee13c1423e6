# BGS outliers (paper 003): DESI spectra, SPENDER autoencoders + flows, the outlier-probability catalog.
import json
from pathlib import Path

# Config blocks.
DESI = config["desi"]
BGS = config["bgs"]

DESI_DIR = f"{RESULTS}/sources/desi"
DESI_SURVEYS = ["bgs", "mws"]
# A simulated held-out BGS set (own seed), scored by bgs_catalog and never trained on (issue 17).
DESI_HELDOUT_SURVEY = "bgs_heldout"
# Redrock class of each survey's sample (paper 003 Sec. 2).
DESI_SPECTYPE = {"bgs": "GALAXY", "mws": "STAR", DESI_HELDOUT_SURVEY: "GALAXY"}
DESI_SPECTRA = f"{RESULTS}/desi/{{survey}}_spectra.parquet"
DESI_SIMULATED = DESI["kind"] == "simulated"
DESI_HELDOUT = DESI_SIMULATED and DESI["simulated"]["n_eval"] > 0
# desi.kind edr: one coadd + Redrock pair per EDR survey/programme/HEALPix directory, listed by a checkpoint.
DESI_EDR_INDEX = f"{DESI_DIR}/edr/index.json"
DESI_EDR_FILE = f"{DESI_DIR}/edr/{{kind}}-{{edr_survey}}-{{program}}-{{healpix}}.fits"

BGS_MODEL_DIR = f"{RESULTS}/models/bgs"
# The galaxy model trains on BGS, the star model on MWS (paper 003 Sec. 5).
BGS_AUTOENCODER = f"{BGS_MODEL_DIR}/{{survey}}_autoencoder.pt"
BGS_FLOW = f"{BGS_MODEL_DIR}/{{survey}}_flow.pt"
BGS_SPLIT = f"{BGS_MODEL_DIR}/{{survey}}_split.parquet"
BGS_CATALOG = f"{RESULTS}/catalogs/bgs_probability.parquet"


# Helpers (lambdas; see rules/common.smk).
# The pixels the desi_edr_index checkpoint lists (desi.kind edr).
desi_edr_pixels = lambda: json.loads(
    Path(checkpoints.desi_edr_index.get().output[0]).read_text()
)["pixels"]
# The (coadd, redrock) files prepare_desi_spectra reads: the simulated pair of the survey, or every EDR
# pixel of the index (BGS and MWS targets share the bright-programme files).
desi_input_files = lambda wildcards: (
    {
        "coadd": [f"{DESI_DIR}/coadd-sim-{wildcards.survey}.fits"],
        "redrock": [f"{DESI_DIR}/redrock-sim-{wildcards.survey}.fits"],
    }
    if DESI_SIMULATED
    else {
        kind: [
            DESI_EDR_FILE.format(
                kind=kind,
                edr_survey=p["survey"],
                program=p["program"],
                healpix=p["healpix"],
            )
            for p in desi_edr_pixels()
        ]
        for kind in ("coadd", "redrock")
    }
)

RELEASED["bgs"] = lambda wildcards=None: [
    *expand(DESI_SPECTRA, survey=DESI_SURVEYS),
    *([f"{DESI_DIR}/truth.parquet"] if DESI_SIMULATED else []),
    *(
        [
            DESI_SPECTRA.format(survey=DESI_HELDOUT_SURVEY),
            f"{DESI_DIR}/truth-{DESI_HELDOUT_SURVEY}.parquet",
        ]
        if DESI_HELDOUT
        else []
    ),
    *expand(BGS_AUTOENCODER, survey=DESI_SURVEYS),
    *expand(BGS_FLOW, survey=DESI_SURVEYS),
    *expand(BGS_SPLIT, survey=DESI_SURVEYS),
    *expand(
        f"{BGS_MODEL_DIR}/{{survey}}_training_history.parquet", survey=DESI_SURVEYS
    ),
    BGS_CATALOG,
    f"{METRICS}/bgs.json",
    f"{FIGURES}/bgs/outlier_gallery.png",
]


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
        priority: 10
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

    rule simulate_desi_heldout:
        output:
            coadd=f"{DESI_DIR}/coadd-sim-{DESI_HELDOUT_SURVEY}.fits",
            redrock=f"{DESI_DIR}/redrock-sim-{DESI_HELDOUT_SURVEY}.fits",
            truth=f"{DESI_DIR}/truth-{DESI_HELDOUT_SURVEY}.parquet",
        log:
            f"{LOGS}/simulate_desi_heldout.log",
        # bgs_catalog waits for it: at default priority it ran at minute 12.5, after the flows were done.
        priority: 10
        conda:
            "../envs/latentsky.yaml"
        resources:
            mem_mb=8000,
            runtime=30,
        params:
            simulated=DESI["simulated"],
            seed=seed_for("simulate_desi_heldout"),
        script:
            "../scripts/simulate_desi_heldout.py"

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
        survey="|".join(DESI_SURVEYS + ([DESI_HELDOUT_SURVEY] if DESI_HELDOUT else [])),
    priority: 10
    retries: 1
    conda:
        "../envs/latentsky.yaml"
    resources:
        mem_mb=lambda wildcards, attempt: 8000 * attempt,
        runtime=60,
    params:
        spectype=lambda wildcards: DESI_SPECTYPE[wildcards.survey],
        z_range=lambda wildcards: (
            DESI["z_range"] if DESI_SPECTYPE[wildcards.survey] == "GALAXY" else None
        ),
        # Simulated files hold one survey each; a real coadd holds every target class of its fibres.
        target_class=lambda wildcards: None if DESI_SIMULATED else wildcards.survey,
    script:
        "../scripts/prepare_desi_spectra.py"


# SPENDER autoencoders (paper 003 Sec. 3.1): galaxies from BGS, stars from MWS. The BGS chain has priority 10
# (train_cmd_flow 5): it is the demo's longest, and on 2 cores the scheduler otherwise fills both slots with
# the CMD flow and the PELS-VAE first (measured: the galaxy autoencoder started at minute 8.8 of 19).
rule train_bgs_autoencoder:
    input:
        spectra=DESI_SPECTRA,
    output:
        model=BGS_AUTOENCODER,
        history=f"{BGS_MODEL_DIR}/{{survey}}_training_history.parquet",
        split=BGS_SPLIT,
    log:
        f"{LOGS}/train_bgs_autoencoder/{{survey}}.log",
    wildcard_constraints:
        survey="|".join(DESI_SURVEYS),
    priority: 10
    retries: 2
    conda:
        "../envs/latentsky.yaml"
    threads: 2
    resources:
        gpu=1,
        mem_mb=lambda wildcards, attempt: 16000 * attempt,
        runtime=lambda wildcards, attempt: 480 * attempt,
    params:
        bgs=BGS,
        seed=lambda wildcards: seed_for(f"train_bgs_autoencoder_{wildcards.survey}"),
        # Kept between attempts (not an output), so a preempted or failed job resumes after its last epoch.
        resume=f"{BGS_MODEL_DIR}/{{survey}}_resume.pt",
    script:
        "../scripts/train_bgs_autoencoder.py"


# The MAF over each autoencoder's latents (paper 003 Sec. 3.2).
rule train_bgs_flow:
    input:
        spectra=DESI_SPECTRA,
        split=BGS_SPLIT,
        model=BGS_AUTOENCODER,
    output:
        flow=BGS_FLOW,
    log:
        f"{LOGS}/train_bgs_flow/{{survey}}.log",
    wildcard_constraints:
        survey="|".join(DESI_SURVEYS),
    priority: 10
    conda:
        "../envs/latentsky.yaml"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=60,
    params:
        bgs=BGS,
        seed=lambda wildcards: seed_for(f"train_bgs_flow_{wildcards.survey}"),
    script:
        "../scripts/train_bgs_flow.py"


# The BGS outlier-probability catalog (paper 003): one row per BGS target, metrics and the Fig. 3 gallery.
rule bgs_catalog:
    input:
        **({"truth": f"{DESI_DIR}/truth.parquet"} if DESI_SIMULATED else {}),
        **(
            {
                "heldout_spectra": DESI_SPECTRA.format(survey=DESI_HELDOUT_SURVEY),
                "heldout_truth": f"{DESI_DIR}/truth-{DESI_HELDOUT_SURVEY}.parquet",
            }
            if DESI_HELDOUT
            else {}
        ),
        spectra=DESI_SPECTRA.format(survey="bgs"),
        split=BGS_SPLIT.format(survey="bgs"),
        galaxy_model=BGS_AUTOENCODER.format(survey="bgs"),
        galaxy_flow=BGS_FLOW.format(survey="bgs"),
        star_model=BGS_AUTOENCODER.format(survey="mws"),
        star_flow=BGS_FLOW.format(survey="mws"),
        histories=expand(
            f"{BGS_MODEL_DIR}/{{survey}}_training_history.parquet", survey=DESI_SURVEYS
        ),
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
    priority: 10
    conda:
        "../envs/latentsky.yaml"
    threads: 2
    resources:
        mem_mb=16000,
        runtime=120,
    params:
        bgs=BGS,
        seed=seed_for("bgs_catalog"),
        population=DESI["simulated"]["population"] if DESI_SIMULATED else None,
    script:
        "../scripts/bgs_catalog.py"
