from pathlib import Path

from pathgeo.atomic import write_parquet
from pathgeo.jobs.landscape import landscape
from pathgeo.jobs.runner import start_job, workflow_request
from pathgeo.logs import setup
from pathgeo.training import checkpoints
from pathgeo.training.loop import build_trainer

setup(snakemake.log[0])
job = start_job(workflow_request(snakemake))
folder = Path(snakemake.input.checkpoints)
trainer = build_trainer(job.spec, job.data, job.device)
trainer.load_state(checkpoints.load(checkpoints.checkpoint_path(folder, 0)))
table = landscape(trainer, checkpoints.load(checkpoints.checkpoint_path(folder, job.spec.epochs)))
write_parquet(snakemake.output[0], table)
