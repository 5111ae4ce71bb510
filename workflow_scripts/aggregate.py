from pathgeo.aggregate import experiment_tables
from pathgeo.atomic import write_parquet
from pathgeo.logs import setup

log = setup(snakemake.log[0])
epochs, steps = experiment_tables(
    snakemake.wildcards.experiment,
    snakemake.input.replays,
    snakemake.params.runs,
    snakemake.params.exclude_final_epoch,
)
write_parquet(snakemake.output.epochs, epochs)
write_parquet(snakemake.output.steps, steps)
log.info("experiment %s: %d epoch rows, %d step rows", snakemake.wildcards.experiment, len(epochs), len(steps))
