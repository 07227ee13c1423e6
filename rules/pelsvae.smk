# PELS-VAE (paper 000 Secs. 3–4): cVAE and cVAE-P, their latent regressors, evaluation, new light curves.
from latentsky.pelsvae.config import MODELS

# Config block.
PELSVAE = config["pelsvae"]

PELSVAE_DIR = f"{RESULTS}/models/pelsvae"
# The two generative models of paper 000 Sec. 4.2: cvae (class only) and cvae_p (class + physics).
PELSVAE_MODELS = list(MODELS)
PELSVAE_MODEL = f"{PELSVAE_DIR}/{{model}}/model.pt"
PELSVAE_REGRESSORS = f"{PELSVAE_DIR}/{{model}}/regressors.pt"
PELSVAE_OUTPUTS = {
    "metrics": f"{METRICS}/pelsvae.json",
    "table3": f"{PELSVAE_DIR}/table3_regression_rmse.parquet",
    "rrlyrae_sequence": f"{PELSVAE_DIR}/rrlyrae_teff_sequence.parquet",
}
PELSVAE_FIGURES = {
    "loss": f"{FIGURES}/pelsvae/fig4_validation_loss.png",
    "recon_cvae": f"{FIGURES}/pelsvae/fig5_reconstructions_cvae.png",
    "latents": f"{FIGURES}/pelsvae/fig6_latent_pairs.png",
    "recon_cvae_p": f"{FIGURES}/pelsvae/fig7_reconstructions_cvae_p.png",
    "rrlyrae": f"{FIGURES}/pelsvae/fig8_rrlyrae_teff.png",
}
GENERATED_LIGHTCURVES = f"{RESULTS}/catalogs/generated_lightcurves.parquet"

RELEASED["pelsvae"] = lambda wildcards=None: [
    *expand(PELSVAE_MODEL, model=PELSVAE_MODELS),
    *expand(f"{PELSVAE_DIR}/{{model}}/training_history.parquet", model=PELSVAE_MODELS),
    *expand(PELSVAE_REGRESSORS, model=PELSVAE_MODELS),
    *PELSVAE_OUTPUTS.values(),
    *PELSVAE_FIGURES.values(),
    GENERATED_LIGHTCURVES,
]


# PELS-VAE (paper 000 Sec. 3): cVAE on every training curve, cVAE-P on those with T_eff, M_G and period.
rule train_pelsvae:
    input:
        train=LIGHTCURVE_SETS["train"],
        val=LIGHTCURVE_SETS["val"],
    output:
        model=PELSVAE_MODEL,
        history=f"{PELSVAE_DIR}/{{model}}/training_history.parquet",
    log:
        f"{LOGS}/train_pelsvae/{{model}}.log",
    wildcard_constraints:
        model="|".join(PELSVAE_MODELS),
    priority: 5
    retries: 2
    conda:
        "../envs/latentsky.yaml"
    threads: 1
    # Measured: the demo's trainings peak at 0.56 / 0.68 GB (70 / 93 s); `latentsky benchmark pelsvae` trains
    # the paper-size TCN at 166 curves/s on 2 CPU cores (1.4 GB RSS). The paper's ~70,000 examples × 100
    # epochs are 7·10⁶ curve passes: ~12 h on such a CPU, far less on the GPU asked for (not measured: no GPU
    # was lent); a job that overruns resumes from resume.pt with twice the time.
    resources:
        gpu=1,
        mem_mb=lambda wildcards, attempt: 8000 * attempt,
        runtime=lambda wildcards, attempt: 240 * attempt,
    params:
        pelsvae=PELSVAE,
        seed=lambda wildcards: seed_for(f"train_pelsvae_{wildcards.model}"),
        # Kept between attempts (not an output), so a preempted or failed job resumes where it stopped.
        resume=f"{PELSVAE_DIR}/{{model}}/resume.pt",
    script:
        "../scripts/train_pelsvae.py"


# Physics (+ class, + a dummy ~ U(0, 1)) → latent regressors of Sec. 4.2, scored as in Table 3.
rule pelsvae_regression:
    input:
        model=PELSVAE_MODEL,
        train=LIGHTCURVE_SETS["train"],
        val=LIGHTCURVE_SETS["val"],
    output:
        regressors=PELSVAE_REGRESSORS,
    log:
        f"{LOGS}/pelsvae_regression/{{model}}.log",
    wildcard_constraints:
        model="|".join(PELSVAE_MODELS),
    priority: 5
    conda:
        "../envs/latentsky.yaml"
    threads: 2
    # The random forest with leaves of half an object's repeats pickles to 0.18 kB a design row (measured on
    # 50,000 rows; 1.8 kB with the former leaves of 5): ~350 MB at full.yaml's 20,000 curves × 100 repeats,
    # beside the 2M × 12 design itself (~0.2 GB) and scikit-learn's fitting copies. The demo's jobs (80,000
    # rows, three regressors) peak at 0.64 GB in 29–38 s; 25× the rows is ~15 minutes.
    resources:
        mem_mb=lambda wildcards, attempt: 8000 * attempt,
        runtime=lambda wildcards, attempt: 120 * attempt,
    params:
        pelsvae=PELSVAE,
        seed=lambda wildcards: seed_for(f"pelsvae_regression_{wildcards.model}"),
    script:
        "../scripts/pelsvae_regression.py"


# PELS-VAE: Table 3, reconstructions against the class template, the RR Lyrae T_eff sequence, Figs. 4–8.
rule evaluate_pelsvae:
    input:
        models=expand(PELSVAE_MODEL, model=PELSVAE_MODELS),
        regressors=expand(PELSVAE_REGRESSORS, model=PELSVAE_MODELS),
        train=LIGHTCURVE_SETS["train"],
        test=LIGHTCURVE_SETS["test"],
    output:
        **PELSVAE_OUTPUTS,
        **{
            key: report(
                path,
                caption=f"../resources/report/captions/pelsvae_{key}.rst",
                category="PELS-VAE",
            )
            for key, path in PELSVAE_FIGURES.items()
        },
        table3_md=report(
            f"{PELSVAE_DIR}/table3_regression_rmse.md",
            caption="../resources/report/captions/pelsvae_table3.rst",
            category="PELS-VAE",
        ),
    log:
        f"{LOGS}/evaluate_pelsvae.log",
    conda:
        "../envs/latentsky.yaml"
    threads: 1
    # Measured on the demo: 0.65 GB, 8 s. At full.yaml's scale the two random forests (~350 MB each, see
    # pelsvae_regression) and the test set (~0.5 GB) make ~2 GB.
    resources:
        mem_mb=8000,
        runtime=60,
    params:
        pelsvae=PELSVAE,
        models=PELSVAE_MODELS,
        seed=seed_for("evaluate_pelsvae"),
    script:
        "../scripts/evaluate_pelsvae.py"


# New light curves (Sec. 4.3) for pelsvae.generation.requests at its cadence or timestamps file.
rule generate_lightcurves:
    input:
        **(
            {"times": PELSVAE["generation"]["times_file"]}
            if PELSVAE["generation"]["times_file"]
            else {}
        ),
        model=PELSVAE_MODEL.format(model=PELSVAE["generation"]["model"]),
        regressors=PELSVAE_REGRESSORS.format(model=PELSVAE["generation"]["model"]),
    output:
        GENERATED_LIGHTCURVES,
    log:
        f"{LOGS}/generate_lightcurves.log",
    conda:
        "../envs/latentsky.yaml"
    # Measured on the demo: 0.47 GB, 0.3 s; one ~350 MB forest more at full.yaml's scale.
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        generation=PELSVAE["generation"],
        device=PELSVAE["device"],
        seed=seed_for("generate_lightcurves"),
    script:
        "../scripts/generate_lightcurves.py"
