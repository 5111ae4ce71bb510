rule replay:
    input:
        unpack(run_data),
        checkpoints="results/runs/{run}/checkpoints",
        reference_spec="results/runs/{run}/spec.json",
    output:
        steps="results/runs/{run}/replay/{start}-{end}.parquet",
        matrices="results/runs/{run}/replay/{start}-{end}.matrices.parquet",
        fidelity="results/runs/{run}/replay/{start}-{end}.fidelity.json",
        full_batch="results/runs/{run}/replay/{start}-{end}.full_batch.parquet",
        fixed_batches="results/runs/{run}/replay/{start}-{end}.fixed_batches.parquet",
    log:
        "logs/replay/{run}/{start}-{end}.log",
    benchmark:
        "benchmarks/replay/{run}/{start}-{end}.tsv"
    conda:
        "../environment.yml"
    threads: run_threads
    resources:
        gpu=gpus,
        nodes=1,
        cpus_per_gpu=cpus_per_gpu,
        slurm_extra=keep_topology,
        mem_mb=replay_mem_mb,
        runtime=replay_runtime,
    params:
        spec=run_spec_json,
        code=run_code,
        measurement=measurement_version(),
        references=segment_references,
        tolerance=config["fidelity_tolerance"],
        correlations=correlation_settings(config),
        measurements=lambda wildcards: PLAN.measurements(wildcards.run),
        device=config["device"],
        data_root=DATA_ROOT,
        deterministic=config["deterministic"],
    script:
        "../workflow_scripts/replay.py"
