from functools import cache
from pathlib import Path

from pathgeo import checkpoints
from pathgeo.atomic import write_json, write_parquet
from pathgeo.jobs import start_workflow_job
from pathgeo.logs import setup
from pathgeo.point_geometry import measurements_from
from pathgeo.replay import replay_segment

setup(snakemake.log[0])
job = start_workflow_job(snakemake)


@cache
def state(epoch):
    # The segment's end is usually a reference point too (always for the last segment): read it once.
    return checkpoints.load(checkpoints.checkpoint_path(Path(snakemake.input.checkpoints), epoch))


references = {name: (epoch, state(epoch)) for name, epoch in snakemake.params.references.items()}
full_batch, fixed_batches = measurements_from(snakemake.params.measurements)
table, matrices, fidelity = replay_segment(
    job.spec,
    job.data,
    job.device,
    state(int(snakemake.wildcards.start)),
    state(int(snakemake.wildcards.end)),
    references,
    snakemake.params.tolerance,
    snakemake.params.correlations,
    (full_batch, fixed_batches),
)
write_parquet(snakemake.output.steps, table)
write_parquet(snakemake.output.matrices, matrices)
write_parquet(snakemake.output.full_batch, full_batch.table(job.spec.run_id))
write_parquet(snakemake.output.fixed_batches, fixed_batches.table(job.spec.run_id))
write_json(snakemake.output.fidelity, fidelity.as_dict())
