rule reference:
    input:
        unpack(run_data),
        earlier=earlier_chain_job,
        extends=extended_checkpoints,
    output:
        checkpoints=directory("results/runs/{run}/checkpoints"),
        train_log="results/runs/{run}/train_log.parquet",
        spec="results/runs/{run}/spec.json",
        correlations="results/runs/{run}/train_correlations.parquet",
        correlation_matrices="results/runs/{run}/train_correlations.matrices.parquet",
    log:
        main="logs/reference/{run}.log",
        # Snakemake's benchmark columns, written by the job: a rule cached between workflows has no benchmark:.
        benchmark="benchmarks/reference/{run}.tsv",
    cache: "omit-software"
    conda:
        "../environment.yml"
    threads: run_threads
    resources:
        gpu=gpus,
        nodes=1,
        cpus_per_gpu=cpus_per_gpu,
        slurm_extra=keep_topology,
        mem_mb=reference_mem_mb,
        runtime=reference_runtime,
    params:
        spec=run_spec_json,
        code=run_code,
        checkpoint_epochs=checkpoint_epochs,
        published=published_epochs,
        until=chain_until,
        validate_every=lambda wildcards: PLAN.run_validate_every[wildcards.run],
        correlations=lambda wildcards: training_correlations(PLAN, wildcards.run, config),
        measurement=reference_measurement,
        workspace=lambda wildcards: f"results/runs/{wildcards.run}/partial",
        device=config["device"],
        data_root=DATA_ROOT,
        deterministic=config["deterministic"],
    script:
        "../workflow_scripts/reference.py"


# A run whose reference training would take longer than the site's max_job_minutes trains in a chain of jobs: each
# one but the last trains its epochs and hands its checkpoints to the next (rules/common.smk, reference_chain).
use rule reference as reference_part with:
    output:
        checkpoints=directory("results/runs/{run}/chain/{until}"),
    log:
        main="logs/reference/{run}.until{until}.log",
        benchmark="benchmarks/reference/{run}.until{until}.tsv",
