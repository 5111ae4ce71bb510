from pathlib import Path

from pathgeo import checkpoints
from pathgeo.atomic import write_json, write_parquet
from pathgeo.jobs import start_workflow_job
from pathgeo.logs import setup
from pathgeo.reference import train_reference

setup(snakemake.log[0])
job = start_workflow_job(snakemake)
run_dir = Path(snakemake.output.spec).parent
table = train_reference(
    job.spec,
    job.data,
    job.device,
    tuple(snakemake.params.checkpoint_epochs),
    lambda epoch, state: checkpoints.save(checkpoints.checkpoint_path(run_dir, epoch), state),
)
write_parquet(snakemake.output.train_log, table)
write_json(snakemake.output.spec, {"run_id": job.spec.run_id, "spec": job.spec.canonical(), "settings": job.settings})
