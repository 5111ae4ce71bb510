from pathgeo.analysis.claims import claims_table
from pathgeo.atomic import write_parquet, write_with
from pathgeo.logs import setup

log = setup(snakemake.log[0])
table = claims_table(
    snakemake.input.replays,
    snakemake.params.runs,
    snakemake.params.thresholds,
    snakemake.params.exclude_final_epoch,
)
write_parquet(snakemake.output.parquet, table)
write_with(snakemake.output.csv, lambda tmp: table.write_csv(tmp))
log.info("claims for %d runs:\n%s", len(table), table.select("label", "^holds_.*$"))
