# Cycle-StarNet (paper 002): a Payne emulator of the synthetic model, the synthetic and observed domains of the
# mock experiment, the domain-adaptation network, its transferred spectra and missing lines, the evaluation.
APOGEE = config["apogee"]
APOGEE_SIM = APOGEE["simulated"]
PAYNE = config["payne"]
CSN = config["cyclestarnet"]

APOGEE_DIR = f"{RESULTS}/sources/apogee_toy"
CSN_MODEL_DIR = f"{RESULTS}/models/cyclestarnet"
# Memory of the jobs that hold both domains' spectra (float32 flux, error, weight and a float64 copy, ×1.5):
# 0.5 GB at the demo's 2 × 8,000 stars of 2,047 pixels, 20 GB at the paper's 2 × 80,000 of 7,167.
CSN_DATA_MB = int(
    2000
    + 1.5
    * 20
    * APOGEE_SIM["n_pixels"]
    * (2 * APOGEE_SIM["n_train"] + APOGEE_SIM["n_val"] + APOGEE_SIM["n_test"])
    / 1e6
)
CSN_FIGURES = [
    "synthetic_residuals",
    "observed_residuals",
    "transfer_residuals",
    "line_recovery",
    "carbon_nitrogen",
    "training_curves",
]

RELEASED["cyclestarnet"] = lambda wildcards=None: [
    f"{APOGEE_DIR}/line_list.parquet",
    f"{APOGEE_DIR}/line_mask.parquet",
    f"{CSN_MODEL_DIR}/payne.pt",
    f"{CSN_MODEL_DIR}/cyclestarnet.pt",
    f"{CSN_MODEL_DIR}/cyclestarnet_history.parquet",
    f"{RESULTS}/catalogs/cyclestarnet_transferred.parquet",
    f"{RESULTS}/catalogs/missing_lines.parquet",
    f"{METRICS}/cyclestarnet.json",
    *expand(f"{FIGURES}/cyclestarnet/{{name}}.png", name=CSN_FIGURES),
]


# The chain to train_cyclestarnet has priority 9 (as the BGS and crossmatch chains): at the default priority it
# started at minute 7 of the demo and its 3-minute training ran alone at the end.
# The toy H-band synthesiser's line list, the emulator's training spectra (labels 20 % wider than the stars')
# and the label draws of both domains (spec B2.1–B2.2).
rule simulate_apogee_toy:
    output:
        line_list=f"{APOGEE_DIR}/line_list.parquet",
        emulator_set=f"{APOGEE_DIR}/emulator_spectra.parquet",
        labels=f"{APOGEE_DIR}/domain_labels.parquet",
    log:
        f"{LOGS}/simulate_apogee_toy.log",
    priority: 9
    conda:
        "../envs/latentsky.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        simulated=APOGEE_SIM,
        seed=seed_for("simulate_apogee_toy"),
    script:
        "../scripts/simulate_apogee_toy.py"


# The Payne (Ting et al. 2019) trained on the toy's spectra, or a published emulator from a local file.
rule train_payne_emulator:
    input:
        emulator_set=f"{APOGEE_DIR}/emulator_spectra.parquet",
        pretrained=[PAYNE["pretrained"]] if PAYNE["pretrained"] else [],
    output:
        model=f"{CSN_MODEL_DIR}/payne.pt",
        history=f"{CSN_MODEL_DIR}/payne_history.parquet",
    log:
        f"{LOGS}/train_payne_emulator.log",
    priority: 9
    retries: 2
    conda:
        "../envs/latentsky.yaml"
    threads: 1
    resources:
        gpu=1,
        mem_mb=4000,
        runtime=lambda wildcards, attempt: 120 * attempt,
    params:
        payne=PAYNE,
        seed=seed_for("train_payne_emulator"),
        resume=f"{CSN_MODEL_DIR}/payne_resume.pt",
    script:
        "../scripts/train_payne_emulator.py"


# The line mask (the authors' make_mask at the reference giant) and the observed domain of the experiment.
rule cyclestarnet_domains:
    input:
        line_list=f"{APOGEE_DIR}/line_list.parquet",
        labels=f"{APOGEE_DIR}/domain_labels.parquet",
        emulator=f"{CSN_MODEL_DIR}/payne.pt",
    output:
        line_mask=f"{APOGEE_DIR}/line_mask.parquet",
        observed=f"{APOGEE_DIR}/observed_spectra.parquet",
    log:
        f"{LOGS}/cyclestarnet_domains.log",
    priority: 9
    conda:
        "../envs/latentsky.yaml"
    resources:
        mem_mb=CSN_DATA_MB,
        runtime=20,
    params:
        simulated=APOGEE_SIM,
        seed=seed_for("cyclestarnet_domains"),
    script:
        "../scripts/cyclestarnet_domains.py"


# Cycle-StarNet (paper 002 §3.1, App. B): generator and critic steps, resumable after preemption.
rule train_cyclestarnet:
    input:
        emulator=f"{CSN_MODEL_DIR}/payne.pt",
        line_mask=f"{APOGEE_DIR}/line_mask.parquet",
        labels=f"{APOGEE_DIR}/domain_labels.parquet",
        observed=f"{APOGEE_DIR}/observed_spectra.parquet",
    output:
        model=f"{CSN_MODEL_DIR}/cyclestarnet.pt",
        history=f"{CSN_MODEL_DIR}/cyclestarnet_history.parquet",
    log:
        f"{LOGS}/train_cyclestarnet.log",
    priority: 9
    retries: 2
    conda:
        "../envs/latentsky.yaml"
    threads: 1
    resources:
        gpu=1,
        mem_mb=lambda wildcards, attempt: CSN_DATA_MB * attempt,
        # 0.1 s an iteration: the demo network on one CPU core, and the authors' "≈ 10 h" for 350k paper-size
        # iterations on a GPU (`latentsky benchmark cyclestarnet` measures it on yours).
        runtime=lambda wildcards, attempt: attempt
        * int(60 + CSN["training"]["iterations"] * 0.1 / 60),
    params:
        network=CSN["network"],
        training=CSN["training"],
        device=CSN["device"],
        seed=seed_for("train_cyclestarnet"),
        resume=f"{CSN_MODEL_DIR}/cyclestarnet_resume.pt",
    script:
        "../scripts/train_cyclestarnet.py"


# Transferred spectra of the test stars and the masked features recovered and attributed (paper §4.2).
rule cyclestarnet_products:
    input:
        emulator=f"{CSN_MODEL_DIR}/payne.pt",
        model=f"{CSN_MODEL_DIR}/cyclestarnet.pt",
        line_list=f"{APOGEE_DIR}/line_list.parquet",
        line_mask=f"{APOGEE_DIR}/line_mask.parquet",
        labels=f"{APOGEE_DIR}/domain_labels.parquet",
        observed=f"{APOGEE_DIR}/observed_spectra.parquet",
    output:
        transferred=f"{RESULTS}/catalogs/cyclestarnet_transferred.parquet",
        lines=f"{RESULTS}/catalogs/missing_lines.parquet",
    log:
        f"{LOGS}/cyclestarnet_products.log",
    conda:
        "../envs/latentsky.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        simulated=APOGEE_SIM,
        derivatives=CSN["derivatives"],
    script:
        "../scripts/cyclestarnet_products.py"


rule evaluate_cyclestarnet:
    input:
        emulator=f"{CSN_MODEL_DIR}/payne.pt",
        emulator_set=f"{APOGEE_DIR}/emulator_spectra.parquet",
        model=f"{CSN_MODEL_DIR}/cyclestarnet.pt",
        history=f"{CSN_MODEL_DIR}/cyclestarnet_history.parquet",
        line_list=f"{APOGEE_DIR}/line_list.parquet",
        line_mask=f"{APOGEE_DIR}/line_mask.parquet",
        labels=f"{APOGEE_DIR}/domain_labels.parquet",
        observed=f"{APOGEE_DIR}/observed_spectra.parquet",
        transferred=f"{RESULTS}/catalogs/cyclestarnet_transferred.parquet",
        lines=f"{RESULTS}/catalogs/missing_lines.parquet",
    output:
        metrics=f"{METRICS}/cyclestarnet.json",
        figures=[
            report(
                f"{FIGURES}/cyclestarnet/{name}.png",
                caption=f"../resources/report/captions/cyclestarnet_{name}.rst",
                category="Cycle-StarNet",
            )
            for name in CSN_FIGURES
        ],
    log:
        f"{LOGS}/evaluate_cyclestarnet.log",
    conda:
        "../envs/latentsky.yaml"
    threads: 1
    resources:
        mem_mb=6000,
        runtime=30,
    params:
        simulated=APOGEE_SIM,
        seed=seed_for("evaluate_cyclestarnet"),
    script:
        "../scripts/evaluate_cyclestarnet.py"
