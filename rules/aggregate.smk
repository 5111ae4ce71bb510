rule aggregate:
    input:
        replays=experiment_replays,
        matrices=experiment_matrices,
        train_logs=experiment_train_logs,
        full_batch=experiment_full_batch,
        fixed_batches=experiment_fixed_batches,
        library=library("analysis/aggregate.py", "columns.py"),
    output:
        epochs=f"{OUTPUTS}/tables/{{experiment}}/epochs.parquet",
        steps=f"{OUTPUTS}/tables/{{experiment}}/steps.parquet",
        matrices=f"{OUTPUTS}/tables/{{experiment}}/matrices.parquet",
        train=f"{OUTPUTS}/tables/{{experiment}}/train.parquet",
        full_batch=f"{OUTPUTS}/tables/{{experiment}}/full_batch.parquet",
        fixed_batches=f"{OUTPUTS}/tables/{{experiment}}/fixed_batches.parquet",
    log:
        f"{LOGS}/aggregate/{{experiment}}.log",
    conda:
        "../environment.yml"
    params:
        runs=experiment_runs,
        exclude_final_epoch=config["exclude_final_epoch"],
        window=correlation_settings(config)["window"],
    script:
        "../workflow_scripts/aggregate.py"


rule claims:
    input:
        replays=replay_files(list(PLAN.runs)),
        library=library("analysis/claims.py", "analysis/aggregate.py", "columns.py"),
    output:
        parquet=f"{OUTPUTS}/tables/claims.parquet",
        csv=report(
            f"{OUTPUTS}/tables/claims.csv",
            caption="../report/claims.rst",
            category="all runs",
            subcategory="Claims",
            labels={"table": "claims", "view": "table (CSV)"},
        ),
    log:
        f"{LOGS}/claims.log",
    conda:
        "../environment.yml"
    params:
        runs=replayed_runs(),
        thresholds=config["claims"],
        exclude_final_epoch=config["exclude_final_epoch"],
    script:
        "../workflow_scripts/claims.py"


rule zigzag:
    input:
        steps=step_tables(list(PLAN.runs)),
        library=library("analysis/zigzag.py", "analysis/aggregate.py", "columns.py"),
    output:
        parquet=f"{OUTPUTS}/tables/zigzag.parquet",
        phases=f"{OUTPUTS}/tables/zigzag_phases.parquet",
        csv=report(
            f"{OUTPUTS}/tables/zigzag.csv",
            caption="../report/zigzag.rst",
            category="all runs",
            subcategory="zigzag findings",
            labels={"table": "zigzag", "view": "table (CSV)"},
        ),
    log:
        f"{LOGS}/zigzag.log",
    conda:
        "../environment.yml"
    params:
        runs=all_runs(),
        window=correlation_settings(config)["window"],
        thresholds=zigzag_thresholds(config),
    script:
        "../workflow_scripts/zigzag.py"
