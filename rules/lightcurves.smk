# Light curves: cleaning, folding, class-balancing augmentation, leak-free splits (paper 000 Sec. 2).
LIGHTCURVE_DIR = f"{RESULTS}/lightcurves"
LIGHTCURVE_SETS = {
    split: f"{LIGHTCURVE_DIR}/{split}.parquet" for split in ("train", "val", "test")
}

# The 2-D reddening map that corrects M_G and T_eff (crossmatch.reddening.map): "auto" is the simulation's own
# map for simulated fields and none for real ones; null keeps the paper's uncorrected values.
REDDENING_MAP = config["crossmatch"]["reddening"]["map"]
if REDDENING_MAP == "auto":
    REDDENING_MAP = OGLE_TABLES.get("reddening_map")

RELEASED["lightcurves"] = lambda wildcards=None: [
    *LIGHTCURVE_SETS.values(),
    f"{LIGHTCURVE_DIR}/object_status.parquet",
    f"{LIGHTCURVE_DIR}/class_counts.parquet",
    f"{METRICS}/lightcurves.json",
    f"{FIGURES}/lightcurves/fig1_panels.png",
]


# Priority 8 here and on simulate_ogle_fields and crossmatch_ogle_gaia (a few seconds each), 5 on the PELS-VAE
# trainings (train_cmd_flow 6, the BGS chain 10): on 2 cores the PELS-VAE chain (~8 minutes of jobs) must
# start early. At default priority it started at minute 8 and the demo took 17.7 minutes (measured with the
# XP stage added); with these priorities the CMD flow starts right after the MWS autoencoder.
rule lightcurve_training_sets:
    input:
        **({"reddening_map": REDDENING_MAP} if REDDENING_MAP else {}),
        **({"truth": OGLE_TABLES["truth"]} if "truth" in OGLE_TABLES else {}),
        objects=OGLE_TABLES["objects"],
        light_curves=OGLE_TABLES["light_curves"],
        gaia=OGLE_TABLES["gaia"],
        matches=f"{CROSSMATCH_DIR}/matches.parquet",
    output:
        **LIGHTCURVE_SETS,
        status=f"{LIGHTCURVE_DIR}/object_status.parquet",
        class_counts=f"{LIGHTCURVE_DIR}/class_counts.parquet",
        metrics=f"{METRICS}/lightcurves.json",
    log:
        f"{LOGS}/lightcurve_training_sets.log",
    priority: 8
    conda:
        "../envs/latentsky.yaml"
    # Measured on the demo (843,000 epochs read, 3,517 examples of 300 points): +180 MB to read, +255 MB at
    # the peak, 14 s. The paper's sample (~13,500 kept objects, ~10⁷ epochs; ~70,000 examples) scales that
    # to ≈ 2.1 GB + 1.5 GB and a few minutes: 8 GB and 30 minutes leave twice that.
    resources:
        mem_mb=8000,
        runtime=30,
    params:
        lightcurves=config["lightcurves"],
        distance_moduli=config["crossmatch"]["distance_moduli"],
        gaia_release=config["crossmatch"]["gaia_release"],
        reddening=config["crossmatch"]["reddening"],
        seed=seed_for("lightcurve_training_sets"),
    script:
        "../scripts/lightcurve_training_sets.py"


rule plot_lightcurves:
    input:
        light_curves=OGLE_TABLES["light_curves"],
        train=LIGHTCURVE_SETS["train"],
        objects=OGLE_TABLES["objects"],
    output:
        report(
            f"{FIGURES}/lightcurves/fig1_panels.png",
            caption="../resources/report/captions/lightcurve_panels.rst",
            category="Light curves",
        ),
    log:
        f"{LOGS}/plot_lightcurves.log",
    conda:
        "../envs/latentsky.yaml"
    resources:
        mem_mb=4000,
        runtime=10,
    script:
        "../scripts/plot_lightcurves.py"
