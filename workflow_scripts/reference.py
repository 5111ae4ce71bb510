from pathgeo.jobs.reference import reference_job
from pathgeo.jobs.runner import run, workflow_request
from pathgeo.logs import setup

setup(snakemake.log.main)
# The rule `reference_part` (a job of a chain but its last) has only the checkpoints as output.
run(
    reference_job,
    workflow_request(
        snakemake,
        workspace=snakemake.params.workspace,
        checkpoint_epochs=list(snakemake.params.checkpoint_epochs),
        published=list(snakemake.params.published),
        until=snakemake.params.until,
        validate_every=snakemake.params.validate_every,
        earlier=snakemake.input.get("earlier") or None,
        extends=snakemake.input.get("extends") or None,
        checkpoints=snakemake.output.checkpoints,
        train_log=snakemake.output.get("train_log"),
        spec=snakemake.output.get("spec"),
        correlations=snakemake.params.correlations,
        train_correlations=snakemake.output.get("correlations"),
        train_correlation_matrices=snakemake.output.get("correlation_matrices"),
        code=snakemake.params.code,
        benchmark=snakemake.log.benchmark,
    ),
)
