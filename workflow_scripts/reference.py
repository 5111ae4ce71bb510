from pathlib import Path

from pathgeo import checkpoints
from pathgeo.atomic import write_json, write_parquet
from pathgeo.jobs import start_workflow_job
from pathgeo.logs import setup
from pathgeo.reference import publish_checkpoints, resume_point, train_reference

setup(snakemake.log[0])
job = start_workflow_job(snakemake)
# Snakemake deletes the outputs of a killed job before it runs again, so checkpoints are made in a
# workspace beside them, which a restarted job resumes from, and linked into the output when the run is done.
# Each checkpoint records the version of the code that made it (pathgeo.provenance).
workspace = Path(snakemake.params.workspace)
epochs = tuple(snakemake.params.checkpoint_epochs)
code = snakemake.params.code
table = train_reference(
    job.spec,
    job.data,
    job.device,
    epochs,
    lambda epoch, state: checkpoints.save(checkpoints.checkpoint_path(workspace, epoch), {**state, "code": code}),
    resume=resume_point(workspace, epochs, code),
)
publish_checkpoints(workspace, Path(snakemake.output.checkpoints), epochs)
write_parquet(snakemake.output.train_log, table)
write_json(
    snakemake.output.spec,
    {"run_id": job.spec.run_id, "spec": job.spec.canonical(), "code": code, "settings": job.settings},
)
