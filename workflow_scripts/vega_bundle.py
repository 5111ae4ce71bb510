from pathgeo.analysis.figures.save import write_bundle
from pathgeo.logs import setup

log = setup(snakemake.log[0])
write_bundle(snakemake.output[0])
log.info("wrote %s", snakemake.output[0])
