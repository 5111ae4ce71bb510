from pathgeo.jobs.replay import replay_job
from pathgeo.jobs.runner import run, workflow_request
from pathgeo.logs import setup

setup(snakemake.log[0])
run(
    replay_job,
    workflow_request(
        snakemake,
        checkpoints=snakemake.input.checkpoints,
        reference_spec=snakemake.input.reference_spec,
        start=int(snakemake.wildcards.start),
        end=int(snakemake.wildcards.end),
        references=dict(snakemake.params.references),
        tolerance=snakemake.params.tolerance,
        correlations=dict(snakemake.params.correlations),
        steps=snakemake.output.steps,
        matrices=snakemake.output.matrices,
        fidelity=snakemake.output.fidelity,
        measurements=snakemake.params.measurements,
        full_batch=snakemake.output.full_batch,
        fixed_batches=snakemake.output.fixed_batches,
        code=snakemake.params.code,
    ),
)
