from pathgeo.analysis.aggregate import experiment_tables
from pathgeo.atomic import write_parquet
from pathgeo.logs import setup

log = setup(snakemake.log[0])
tables = experiment_tables(
    snakemake.wildcards.experiment,
    snakemake.input.replays,
    snakemake.input.matrices,
    snakemake.input.train_logs,
    snakemake.params.runs,
    snakemake.params.exclude_final_epoch,
    snakemake.input.full_batch,
    snakemake.input.fixed_batches,
    snakemake.params.window,
)
for name, table in tables.items():
    write_parquet(snakemake.output[name], table)
log.info(
    "experiment %s: %s",
    snakemake.wildcards.experiment,
    ", ".join(f"{len(table)} {name} rows" for name, table in tables.items()),
)
