from pathlib import Path

import polars as pl

from pathgeo.analysis.figures import figure_options, plot
from pathgeo.analysis.figures.save import save
from pathgeo.logs import setup

log = setup(snakemake.log[0])
figure = snakemake.params.figure
entry = plot(figure["plot"])
# A table the figure also reads may have no files (a claims figure that names no experiments reads no train table).
tables = [
    pl.concat([pl.read_parquet(path) for path in snakemake.input[table]], how="diagonal_relaxed")
    if snakemake.input[table]
    else pl.DataFrame()
    for table in entry.tables
]
chart = entry.draw(*tables, **figure_options(figure))
bundle = Path(snakemake.input.bundle).read_text(encoding="utf-8")
save(chart, snakemake.output.html, snakemake.output.image, bundle)
log.info("wrote %s and %s", snakemake.output.html, snakemake.output.image)
