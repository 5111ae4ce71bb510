import polars as pl

from pathgeo import figures
from pathgeo.logs import setup

log = setup(snakemake.log[0])
spec = dict(snakemake.params.figure)
plot = figures.FIGURES[spec.pop("plot")]
spec.pop("experiment", None)
table = pl.concat([pl.read_parquet(path) for path in snakemake.input.tables], how="diagonal_relaxed")
chart = plot(table, **spec)
figures.save(chart, snakemake.output.html, snakemake.output.image)
log.info("wrote %s and %s", snakemake.output.html, snakemake.output.image)
