import json

from pathgeo.logs import setup
from pathgeo.training import data
from pathgeo.training.spec import DataSpec

log = setup(snakemake.log[0])
spec = DataSpec(**json.loads(snakemake.params.data))
log.info(
    "fingerprinting dataset %s (%s) under %s", spec.name, spec.kind, data.dataset_root(spec, snakemake.params.data_root)
)
data.save_fingerprint(spec, snakemake.params.data_root, snakemake.output.manifest)
log.info("wrote %s", snakemake.output.manifest)
