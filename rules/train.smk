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
