from pathgeo.jobs import reference_job, run, workflow_request
from pathgeo.logs import setup

setup(snakemake.log.main)
run(
    reference_job,
    workflow_request(
        snakemake,
        workspace=snakemake.params.workspace,
        checkpoint_epochs=list(snakemake.params.checkpoint_epochs),
        checkpoints=snakemake.output.checkpoints,
        train_log=snakemake.output.train_log,
        spec=snakemake.output.spec,
        correlations=snakemake.params.correlations,
        train_correlations=snakemake.output.correlations,
        train_correlation_matrices=snakemake.output.correlation_matrices,
        code=snakemake.params.code,
        benchmark=snakemake.log.benchmark,
    ),
)
