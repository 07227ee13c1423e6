# Training jobs (GPU where the profile provides one; CPU fallback in the demo).


rule train_cmd_flow:
    input:
        unpack(distance_dust_input),
        observed=gaia_partitions(GAIA_PARTITION),
    output:
        model=CMD_FLOW_MODEL,
        history=f"{CMD_FLOW_DIR}/training_history.parquet",
        loss_figure=report(
            f"{FIGURES}/distances/loss_curve.png",
            caption="../resources/report/captions/cmd_flow_loss.rst",
            category="Distances",
            subcategory="Training",
        ),
    log:
        f"{LOGS}/train_cmd_flow.log",
    retries: 2
    conda:
        "../envs/latentsky.yaml"
    threads: 2
    resources:
        gpu=1,
        mem_mb=lambda wildcards, attempt: 8000 * attempt,
        runtime=lambda wildcards, attempt: 120 * attempt,
    params:
        distances=DISTANCES,
        seed=seed_for("train_cmd_flow"),
        # Kept between attempts (not an output), so a preempted or failed job resumes where it stopped.
        resume=f"{CMD_FLOW_DIR}/resume.pt",
    script:
        "../scripts/train_cmd_flow.py"


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
    retries: 2
    conda:
        "../envs/latentsky.yaml"
    threads: 1
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
    conda:
        "../envs/latentsky.yaml"
    threads: 2
    resources:
        mem_mb=lambda wildcards, attempt: 8000 * attempt,
        runtime=lambda wildcards, attempt: 120 * attempt,
    params:
        pelsvae=PELSVAE,
        seed=lambda wildcards: seed_for(f"pelsvae_regression_{wildcards.model}"),
    script:
        "../scripts/pelsvae_regression.py"


# SPENDER autoencoders (paper 003 Sec. 3.1): galaxies from BGS, stars from MWS.
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
