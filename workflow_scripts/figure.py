import polars as pl

from pathgeo.figures import plot
from pathgeo.figures.save import save
from pathgeo.logs import setup

log = setup(snakemake.log[0])
options = dict(snakemake.params.figure)
entry = plot(options.pop("plot"))
options.pop("experiment", None)
table = pl.concat([pl.read_parquet(path) for path in snakemake.input.tables], how="diagonal_relaxed")
chart = entry.draw(table, **options)
save(chart, snakemake.output.html, snakemake.output.image)
log.info("wrote %s and %s", snakemake.output.html, snakemake.output.image)
