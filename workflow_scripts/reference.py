from pathlib import Path

from pathgeo import checkpoints
from pathgeo.atomic import write_json, write_parquet
from pathgeo.jobs import start_workflow_job
from pathgeo.logs import setup
from pathgeo.reference import latest_checkpoint, publish_checkpoints, train_reference
from pathgeo.w_star_free import tables

setup(snakemake.log[0])
job = start_workflow_job(snakemake)
# Snakemake deletes the outputs of a killed job before it runs again, so checkpoints are made in a
# workspace beside them, which a restarted job resumes from, and moved into the output when the run is done.
workspace = Path(snakemake.params.workspace)
epochs = tuple(snakemake.params.checkpoint_epochs)
resume = latest_checkpoint(workspace)
# The last state saved holds the w*-free tables (a run resumed after its last checkpoint saves none).
last = {"state": resume}


def save(epoch, state):
    checkpoints.save(checkpoints.checkpoint_path(workspace, epoch), state)
    last["state"] = state


table = train_reference(
    job.spec, job.data, job.device, epochs, save, resume=resume, correlations=snakemake.params.correlations
)
steps, matrices = tables(last["state"], job.spec.run_id, job.spec.epochs)
publish_checkpoints(workspace, Path(snakemake.output.checkpoints), epochs)
write_parquet(snakemake.output.train_log, table)
write_parquet(snakemake.output.correlations, steps)
write_parquet(snakemake.output.correlation_matrices, matrices)
write_json(snakemake.output.spec, {"run_id": job.spec.run_id, "spec": job.spec.canonical(), "settings": job.settings})
