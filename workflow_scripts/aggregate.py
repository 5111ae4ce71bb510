from pathgeo.aggregate import experiment_tables
from pathgeo.atomic import write_parquet
from pathgeo.logs import setup

log = setup(snakemake.log[0])
epochs, steps, matrices = experiment_tables(
    snakemake.wildcards.experiment,
    snakemake.input.replays,
    snakemake.input.matrices,
    snakemake.params.runs,
    snakemake.params.exclude_final_epoch,
)
write_parquet(snakemake.output.epochs, epochs)
write_parquet(snakemake.output.steps, steps)
write_parquet(snakemake.output.matrices, matrices)
log.info(
    "experiment %s: %d epoch rows, %d step rows, %d matrix entries",
    snakemake.wildcards.experiment, len(epochs), len(steps), len(matrices),
)
