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
    # Measured (job log's peak memory): 0.51 GB and 11 s reading 0.84 M epochs of 1,300 objects (the demo),
    # 1.43 GB and 102 s reading 8.4 M epochs of 12,700 (its fields × 10): 0.12 kB and 12 µs an epoch read.
    # The paper's sample (~13,500 kept objects, ~10⁷ epochs; ~70,000 examples) needs ≈ 2 GB and ~3 minutes:
    # 8 GB and 30 minutes leave room for denser cadences.
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
    # Reads one raw curve per class (fig1_objects): 0.41 GB on the demo, 0.79 GB beside a 10× larger
    # light-curve table (8.4 M epochs; pyarrow's row-group scan), 3–4 s.
    resources:
        mem_mb=4000,
        runtime=10,
    script:
        "../scripts/plot_lightcurves.py"
