"""The jobs of the workflow, from a Snakemake rule's values to their outputs.

A job is a `Request` (plain values: what the rule passes) and a job function (`reference_job` here,
`pathgeo.replay.replay_job` beside the replay it runs, so that a reference job imports no measurement code)
that every process of the run calls with its `Shard`. `run` calls it in this process for a run on one device,
or starts one process per device (pathgeo.distributed.launch) for a run on several. Each process first settles
the device, determinism, threads and data (`start_job`); rank 0 alone writes outputs.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from pathgeo import checkpoints, data, distributed, preflight, topology, w_star_free
from pathgeo.atomic import write_json, write_parquet, write_with
from pathgeo.devices import configure_determinism, select_device
from pathgeo.distributed import SINGLE, Shard
from pathgeo.logs import setup
from pathgeo.reference import (
    adopt_checkpoints,
    publish_checkpoints,
    resume_point,
    take_up_shorter_run,
    train_reference,
)
from pathgeo.spec import RunSpec

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
    node can run it (pathgeo.preflight): a job in a GPU allocation without CUDA already stops at select_device."""
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


def reference_job(message: dict, shard: Shard) -> None:
    """Train the run (resuming from its workspace), or in a chain of jobs its part up to epoch `until`, and publish
    the checkpoints. The run's last job also writes its train log, its spec and the tables of the measurements that
    need no w* (pathgeo.w_star_free; empty where its replay measures).
    `values`: workspace, checkpoint_epochs (the run's; a job of a chain ends at one of them), until, earlier (the
    output folder of the chain's job before this one, or None), extends (the checkpoints folder of the shorter run
    this one goes on from, pathgeo.config.extended_run, or None), checkpoints (this job's output folder) and
    published (the epochs it holds: those up to `until`), validate_every; for the last job train_log, spec,
    correlations (the w*-free settings, or None), train_correlations and train_correlation_matrices (their
    tables); code (the version of the code that shapes a trajectory, pathgeo.provenance), which every checkpoint
    and the spec record."""
    request, job = begin_job(message, shard)
    values = request.values
    # Snakemake deletes the outputs of a killed job before it runs again, so checkpoints are made in a
    # workspace beside them, which a restarted job resumes from, and linked into the output when the run is done.
    workspace = Path(values["workspace"])
    epochs = tuple(values["checkpoint_epochs"])
    until, code = values["until"], values["code"]
    last_job = until == job.spec.epochs
    if shard.lead and values["earlier"]:
        adopt_checkpoints(Path(values["earlier"]), workspace)
    if shard.lead and values["extends"]:
        taken = take_up_shorter_run(Path(values["extends"]), workspace, job.spec, epochs)
        log.info(
            "run %s goes on from the shorter run %s, whose checkpoints up to epoch %d are this run's",
            job.spec.run_id,
            Path(values["extends"]).parent.name,
            taken,
        )
    resume = resume_point(workspace, epochs, code, shard)
    # The last state saved holds the w*-free tables (a run resumed after its last checkpoint saves none).
    last = {"state": resume}

    def save(epoch: int, state: dict) -> None:
        state = {**state, "code": code}
        checkpoints.save(checkpoints.checkpoint_path(workspace, epoch), state)
        last["state"] = state

    try:
        table = train_reference(
            job.spec,
            job.data,
            job.device,
            epochs,
            save,
            resume=resume,
            correlations=values["correlations"],
            shard=shard,
            until=until,
            validate_every=values["validate_every"],
        )
    finally:
        distributed.leave()
    if not shard.lead:
        return
    if not last_job:
        publish_checkpoints(workspace, Path(values["checkpoints"]), tuple(values["published"]), prune=False)
        log.info(
            "run %s: trained to epoch %d of %d; the next job of its chain goes on from there",
            job.spec.run_id,
            until,
            job.spec.epochs,
        )
        return
    steps, matrices = w_star_free.tables(last["state"], job.spec.run_id, job.spec.epochs)
    publish_checkpoints(workspace, Path(values["checkpoints"]), tuple(values["published"]))
    write_parquet(values["train_log"], table)
    write_parquet(values["train_correlations"], steps)
    write_parquet(values["train_correlation_matrices"], matrices)
    write_json(
        values["spec"],
        {"run_id": job.spec.run_id, "spec": job.spec.canonical(), "code": code, "settings": job.settings},
    )
