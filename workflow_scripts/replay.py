from functools import cache
from pathlib import Path

from pathgeo import checkpoints
from pathgeo.atomic import write_json, write_parquet
from pathgeo.jobs import start_workflow_job
from pathgeo.logs import setup
from pathgeo.provenance import check_code
from pathgeo.replay import replay_segment

setup(snakemake.log[0])
job = start_workflow_job(snakemake)


@cache
def state(epoch):
    # The segment's end is usually a reference point too (always for the last segment): read it once.
    path = checkpoints.checkpoint_path(Path(snakemake.input.checkpoints), epoch)
    loaded = checkpoints.load(path)
    check_code(loaded, snakemake.params.code, str(path))
    return loaded


references = {name: (epoch, state(epoch)) for name, epoch in snakemake.params.references.items()}
table, matrices, fidelity = replay_segment(
    job.spec,
    job.data,
    job.device,
    state(int(snakemake.wildcards.start)),
    state(int(snakemake.wildcards.end)),
    references,
    snakemake.params.tolerance,
    snakemake.params.correlations,
)
write_parquet(snakemake.output.steps, table)
write_parquet(snakemake.output.matrices, matrices)
write_json(snakemake.output.fidelity, fidelity.as_dict())
