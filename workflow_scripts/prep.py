import json

from pathgeo.logs import setup
from pathgeo.training import data
from pathgeo.training.spec import DataSpec

log = setup(snakemake.log[0])
spec = DataSpec(**json.loads(snakemake.params.data))
log.info("preparing dataset %s (%s) %s", spec.name, spec.kind, spec.params)
tensors = data.build(spec)
data.save(tensors, spec, snakemake.output.tensors, snakemake.output.manifest)
log.info("wrote %s: %s", snakemake.output.tensors, {k: tuple(v.shape) for k, v in tensors.items()})
