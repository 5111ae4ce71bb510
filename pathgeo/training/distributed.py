"""A run on several devices of one node: DistributedDataParallel, one process per device.

- `Shard`: a process's rank among the run's devices. A Task splits each global minibatch with `Shard.part`, so
  step t trains on the same sample indices for any number of devices, rank r taking the r-th contiguous part.
- `launch`: starts the job's processes (`python -m pathgeo.training.distributed REQUEST`), each of which calls one job
  function. A rank that fails or is killed (even by SIGKILL) stops the others at once and fails the job with its
  rank and exit status; a rank whose parent dies is killed with it (PR_SET_PDEATHSIG), so no rank trains on
  unsupervised or waits forever in a collective.
- `join`: in each process, the process group, NCCL on CUDA and gloo on CPU, met through a file store in a private
  temporary folder (no ports to pick, nothing shared with another job on the node).
- `replicate`: the DistributedDataParallel wrapper, which all-reduces the mean gradient during backward and
  broadcasts rank 0's buffers at each forward. Batch norm thus normalises each rank's part, as the authors'
  DataParallel did, and its running statistics are rank 0's. Gradients stay views of the flat buffer.
- `sum_across`: all-reduced sums of small per-step tensors (the loss, sample counts).

Determinism: with 2 ranks an all-reduce sum has one rounding (a + b = b + a), so any reduction order gives the
same bits; with more, the order must not change between the reference and its replay. NCCL's ring follows the
links between the job's GPUs: jobs of 3 or more GPUs take their node whole, and every CUDA job records its GPUs
and their links in its settings (pathgeo.training.topology), which a drifting replay compares with the reference's. DDP
would rebuild its gradient buckets after the first step in the order gradients arrived, so a run resumed or replayed from a
checkpoint would sum in another layout than the uninterrupted run at the first step after its start; with
`find_unused_parameters=True` DDP keeps its construction-time layout for good. On CUDA, DETERMINISTIC_NCCL
(which pathgeo.jobs.runner.run sets for deterministic runs, where the site has not set them) pins NCCL's algorithm
and protocol, whose choice otherwise depends on the message size, and turns off NVLink SHARP, whose in-switch
reductions are not deterministic.
"""

from __future__ import annotations

import ctypes
import importlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

log = logging.getLogger("pathgeo")

RENDEZVOUS = "PATHGEO_RENDEZVOUS"
PARENT = "PATHGEO_PARENT"
# Seconds a rank gets to exit after SIGTERM once another one failed, before SIGKILL.
GRACE_SECONDS = 10.0
POLL_SECONDS = 0.1

# The NCCL settings under which an all-reduce sums in the same order every time on the same node type.
DETERMINISTIC_NCCL = {"NCCL_ALGO": "Ring", "NCCL_PROTO": "Simple", "NCCL_NVLS_ENABLE": "0"}


class RankFailed(RuntimeError):
    """A rank of a multi-device job ended with an error or a signal; the other ranks were stopped."""


@dataclass(frozen=True)
class Shard:
    """Rank `rank` of a run on `world` devices."""

    rank: int = 0
    world: int = 1

    @property
    def lead(self) -> bool:
        """Rank 0: the process that writes checkpoints, tables and logs, and runs the probe."""
        return self.rank == 0

    def part(self, batch: torch.Tensor) -> torch.Tensor:
        """This rank's contiguous part of a global minibatch (along dim 0); the whole of it on one device."""
        if self.world == 1:
            return batch
        part = batch.tensor_split(self.world)[self.rank]
        if len(part) == 0:
            raise ValueError(
                f"a minibatch of {len(batch)} samples cannot be split over {self.world} devices: choose batch_size "
                "and devices so that every minibatch, the epoch's last one included, has a sample for each rank"
            )
        return part


SINGLE = Shard()


def launch(
    target: Callable[[dict, Shard], None], request: dict[str, Any], world: int, environment: dict[str, str]
) -> None:
    """Run `target(request, Shard(rank, world))` in `world` processes and wait for all of them; `target` must be a
    module-level function (each process imports it by name) and `request` JSON-serialisable. `environment` is
    added to each process's (deterministic NCCL settings, thread counts)."""
    folder = Path(tempfile.mkdtemp(prefix="pathgeo-ranks-"))
    try:
        request_path = folder / "request.json"
        message = {"target": f"{target.__module__}:{target.__qualname__}", "request": request}
        request_path.write_text(json.dumps(message))
        # The ranks import the same pathgeo as this process, wherever it was imported from.
        package_root = str(Path(__file__).resolve().parents[2])
        python_path = os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))
        env = {
            **os.environ,
            **environment,
            RENDEZVOUS: str(folder / "store"),
            PARENT: str(os.getpid()),
            "WORLD_SIZE": str(world),
            "PYTHONPATH": python_path,
        }
        ranks = [
            subprocess.Popen(
                [sys.executable, "-m", "pathgeo.training.distributed", str(request_path)],
                env={**env, "RANK": str(rank), "LOCAL_RANK": str(rank)},
            )
            for rank in range(world)
        ]
        _supervise(ranks)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _supervise(ranks: list[subprocess.Popen]) -> None:
    try:
        while True:
            codes = [process.poll() for process in ranks]
            failed = [(rank, code) for rank, code in enumerate(codes) if code not in (None, 0)]
            if failed:
                rank, code = failed[0]
                status = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit status {code}"
                raise RankFailed(
                    f"rank {rank} of {len(ranks)} ended with {status}; the other ranks were stopped "
                    "(its error, if it had time to write one, is in the log above)"
                )
            if all(code == 0 for code in codes):
                return
            time.sleep(POLL_SECONDS)
    finally:
        _stop(ranks)


def _stop(ranks: list[subprocess.Popen]) -> None:
    for process in ranks:
        if process.poll() is None:
            process.terminate()
    deadline = time.monotonic() + GRACE_SECONDS
    for process in ranks:
        try:
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _die_with_parent(parent: int) -> None:
    """SIGKILL this process when the launching process dies (Linux), so that no rank outlives its job."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL)
    except (OSError, AttributeError):
        return  # no prctl (not Linux): the launcher's supervision still stops ranks on a failure
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def backend(device: torch.device) -> str:
    return "nccl" if device.type == "cuda" else "gloo"


def rank_device(device: torch.device, shard: Shard) -> torch.device:
    """Rank r trains on the r-th visible GPU (SLURM's --gpus=N makes the job's N visible; with --exclusive, which
    jobs of 3 or more GPUs ask for, all of its node's)."""
    if device.type != "cuda":
        return device
    visible = torch.cuda.device_count()
    if shard.world > visible:
        raise RuntimeError(
            f"config key 'devices': the run asks for {shard.world} GPUs but {visible} are visible to this job "
            f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')}); ask SLURM for {shard.world}"
        )
    torch.cuda.set_device(shard.rank)
    return torch.device("cuda", shard.rank)


def join(shard: Shard, device: torch.device) -> None:
    """This process's membership of the run's process group (from `launch`'s environment)."""
    store = os.environ.get(RENDEZVOUS)
    if store is None:
        raise RuntimeError(f"rank {shard.rank} of {shard.world} was not started by pathgeo.training.distributed.launch")
    dist.init_process_group(backend(device), init_method=f"file://{store}", rank=shard.rank, world_size=shard.world)


def leave() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def replicate(model: nn.Module, device: torch.device) -> nn.Module:
    """`model` wrapped for data-parallel training: the mean gradient over ranks after each backward, and rank 0's
    buffers broadcast at each forward (DDP's default). DDP's C++ side prints once per rank that the model has no
    unused parameters: the flag is there for the fixed bucket layout (see above), not for unused parameters."""
    return nn.parallel.DistributedDataParallel(
        model, device_ids=[device.index] if device.type == "cuda" else None, find_unused_parameters=True
    )


def sum_across(values: torch.Tensor, shard: Shard) -> torch.Tensor:
    """The elementwise sum of `values` over the ranks (itself on one device); no host synchronisation."""
    if shard.world == 1:
        return values
    dist.all_reduce(values)
    return values


def gather(value: Any, shard: Shard) -> list[Any] | None:
    """Every rank's `value` (picklable), in rank order, on rank 0; None elsewhere."""
    if shard.world == 1:
        return [value]
    gathered = [None] * shard.world if shard.lead else None
    dist.gather_object(value, gathered, dst=0)
    return gathered


def broadcast(value: Any, shard: Shard) -> Any:
    """Rank 0's `value` (picklable) on every rank."""
    if shard.world == 1:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def main(request_path: str) -> None:
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    _die_with_parent(int(os.environ[PARENT]))
    message = json.loads(Path(request_path).read_text())
    module, name = message["target"].split(":")
    target = getattr(importlib.import_module(module), name)
    target(message["request"], Shard(rank, world))


if __name__ == "__main__":
    main(sys.argv[1])
