"""The common part of the workflow's jobs, from a Snakemake rule's values to a process ready to compute.

A job is a `Request` (plain values: what the rule passes) and a job function (pathgeo.jobs.reference.reference_job,
pathgeo.jobs.replay.replay_job) that every process of the run calls with its `Shard`. `run` calls it in this process
for a run on one device, or starts one process per device (pathgeo.training.distributed.launch) for a run on several.
Each process first settles the device, determinism, threads and data (`start_job`); rank 0 alone writes outputs.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from pathgeo.atomic import write_with
from pathgeo.logs import setup
from pathgeo.planning import preflight
from pathgeo.training import data, distributed, topology
from pathgeo.training.devices import configure_determinism, select_device
from pathgeo.training.distributed import SINGLE, Shard
from pathgeo.training.spec import RunSpec

log = logging.getLogger("pathgeo")


@dataclass(frozen=True)
class Request:
    """What a rule hands its job: the run, where its data is, how to compute, and the rule's own values
    (`values`: outputs, checkpoint epochs, references, ...)."""

    spec: str  # the canonical JSON
    device: str
    deterministic: bool
    threads: int
    manifest: str
    tensors: str | None = None
    data_root: str = "."
    log: str | None = None
    values: dict[str, Any] = field(default_factory=dict)

    @property
    def run(self) -> RunSpec:
        return RunSpec.from_canonical(json.loads(self.spec))


@dataclass
class Job:
    spec: RunSpec
    device: torch.device
    data: Any
    settings: dict[str, object]
    shard: Shard = SINGLE


def start_job(request: Request, shard: Shard = SINGLE) -> Job:
    """Settle the device, determinism, threads and data of one process of the run. On several devices it joins
    the run's process group, and the job's threads are shared among the ranks. On a GPU it first checks that the
    node can run it (pathgeo.planning.preflight): a job in a GPU allocation without CUDA already stops at select_device."""
    spec = request.run
    settings = configure_determinism(request.deterministic)
    threads = max(1, request.threads // shard.world)
    torch.set_num_threads(threads)
    chosen = distributed.rank_device(select_device(request.device), shard)
    if chosen.type == "cuda":
        preflight.before_training(spec, chosen, _probe_vectors(request.values, shard))
    if shard.world > 1:
        distributed.join(shard, chosen)
        settings.update(backend=distributed.backend(chosen), devices=shard.world)
        if chosen.type == "cuda":
            settings["nccl"] = {key: os.environ.get(key) for key in distributed.DETERMINISTIC_NCCL}
    settings.update(device=str(chosen), threads=threads, torch=torch.__version__)
    settings.update(topology.recorded(chosen, shard.world))
    log.info(
        "run %s on %s (%d threads%s, deterministic=%s, precision %s)",
        spec.run_id,
        chosen,
        threads,
        f" per rank, {shard.world} ranks" if shard.world > 1 else "",
        request.deterministic,
        spec.precision,
    )
    loaded = data.load_for_run(spec.data, request.data_root, request.tensors, request.manifest)
    return Job(spec, chosen, loaded, settings, shard)


def _probe_vectors(values: dict[str, Any], shard: Shard) -> int | None:
    """The probe's model-sized vectors in this process: rank 0 of a job whose values carry correlation settings
    runs one (a replay, over its reference points; a reference job that measures the w*-free correlations)."""
    if not shard.lead:
        return None
    return preflight.probe_vectors(values.get("correlations"), len(values.get("references", {})))


def run(job: Callable[[dict, Shard], None], request: Request) -> None:
    """`job(request, shard)` in this process (one device) or in one process per device of the run; then the
    job's wall time and peak memory go to the log, for sizing its resources."""
    spec = request.run
    start = time.perf_counter()
    if spec.devices == 1:
        job(asdict(request), SINGLE)
    else:
        # A site's own NCCL settings win over the deterministic defaults.
        defaults = distributed.DETERMINISTIC_NCCL if request.deterministic else {}
        environment = {key: value for key, value in defaults.items() if key not in os.environ}
        log.info("run %s: starting %d ranks", spec.run_id, spec.devices)
        distributed.launch(job, asdict(request), spec.devices, environment)
    seconds = time.perf_counter() - start
    usage = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    # ru_maxrss is in KiB on Linux; for the children, that of the largest rank (or DataLoader worker).
    own, ranks = (u.ru_maxrss / 1024 for u in usage)
    log.info(
        "run %s: job done in %.1f s; peak resident memory %.0f MB%s",
        spec.run_id,
        seconds,
        own,
        f", largest of its {spec.devices} ranks {ranks:.0f} MB" if spec.devices > 1 else "",
    )
    if request.values.get("benchmark"):
        write_benchmark(
            request.values["benchmark"], seconds, max(own, ranks), sum(u.ru_utime + u.ru_stime for u in usage)
        )


def write_benchmark(path: str, seconds: float, max_rss_mb: float, cpu_seconds: float) -> None:
    """The job's wall time, peak memory and CPU time in the columns (and units) of a Snakemake `benchmark:` file.
    The reference rule cannot have `benchmark:` (Snakemake refuses it for a rule it caches between workflows: a
    result from the cache has no run to time), so its job writes one itself, as a second log."""
    hours, rest = divmod(int(seconds), 3600)
    clock = f"{hours}:{rest // 60:02d}:{rest % 60:02d}"
    text = f"s\th:m:s\tmax_rss\tcpu_time\n{seconds:.4f}\t{clock}\t{max_rss_mb:.2f}\t{cpu_seconds:.2f}\n"
    write_with(path, lambda target: target.write_text(text))


def workflow_request(smk, **values: Any) -> Request:
    """The Request of a Snakemake rule's job: its params, threads, inputs and log (reference and replay share
    them), and the rule's own `values`."""
    return Request(
        spec=smk.params.spec,
        device=smk.params.device,
        deterministic=smk.params.deterministic,
        threads=smk.threads,
        manifest=smk.input.manifest,
        tensors=smk.input.get("tensors"),
        data_root=smk.params.data_root,
        log=smk.log[0] if smk.log else None,
        values=values,
    )


def begin_job(message: dict, shard: Shard) -> tuple[Request, Job]:
    """The Request a job function was called with, and its process set up (a rank logs to its own file)."""
    request = Request(**message)
    if shard.world > 1:
        setup(request.log, rank=shard.rank)
    return request, start_job(request, shard)
