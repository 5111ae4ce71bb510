from pathgeo.analysis.zigzag import findings_tables
from pathgeo.atomic import write_parquet, write_with
from pathgeo.logs import setup

log = setup(snakemake.log[0])
table, phases = findings_tables(
    snakemake.input.steps, snakemake.params.runs, snakemake.params.window, snakemake.params.thresholds
)
write_parquet(snakemake.output.parquet, table)
write_parquet(snakemake.output.phases, phases)
write_with(snakemake.output.csv, lambda tmp: table.write_csv(tmp))
log.info("zigzag findings for %d runs:\n%s", len(table), table.select("label", "zigzag_onset_step", "verdict"))
