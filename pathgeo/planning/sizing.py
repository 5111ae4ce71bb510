"""What a run's jobs ask the scheduler for (memory, time limit, CPUs per device) and what they cost in device
hours, derived from the run spec: the model's size and training FLOPs, the epochs, the device count, the probe.

Every figure here is an estimate from the assumptions named below in capitals, not a measurement. The model's
parameters and forward FLOPs are exact counts (the model built on torch's meta device, its forward on one
sample counted by torch.utils.flop_counter); a training step is taken as 3 forwards (backward = 2, the usual
rule; the counter's own backward count is wrong for grouped convolutions); the throughput they turn into is not:
`throughput` takes a measured figure from MEASURED where one exists and otherwise assumes a fraction of the
device's peak rate. The compute plan (pathgeo.tools.compute_plan) says which.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from pathgeo import plugins
from pathgeo.atomic import cache_folder, write_with
from pathgeo.columns import LAG_PROTOCOLS, LAGS
from pathgeo.engine.record import Layout, rings_for
from pathgeo.planning.provenance import library_version
from pathgeo.training.data import kind
from pathgeo.training.models import build_model, model
from pathgeo.training.optimizers import optimizer
from pathgeo.training.spec import RunSpec

if TYPE_CHECKING:  # a job checks its device memory here without the config's machinery (jsonschema, figures)
    from pathgeo.planning.config import Plan

MB = 1 << 20

# Peak dense rates of an A100 (NVIDIA's A100 datasheet), FLOP/s: float32 on the CUDA cores, TF32 and bfloat16 on
# the tensor cores, float64 on the FP64 tensor cores.
A100_PEAK_FLOPS = {"float32": 19.5e12, "tf32": 156e12, "bf16": 312e12, "float64": 19.5e12}
# ASSUMED: the share of that peak a training step reaches (convolution and matmul kernels, plus everything that
# is bandwidth-bound: batch norm, activations, the optimizer step).
ASSUMED_A100_UTILIZATION = 0.35
# ASSUMED: FLOP/s of one CPU thread in a training step (vectorised float32; float64 half of it).
ASSUMED_CPU_THREAD_FLOPS = 20e9
# ASSUMED: the throughput of N devices is N x one device's x this (the all-reduce overlaps most of backward).
ASSUMED_SCALING_EFFICIENCY = 0.9
# ASSUMED: a replay step with the probe costs this many plain steps (measured on CPU: 1.08-2.37, README; not
# measured on a GPU).
ASSUMED_PROBE_SLOWDOWN = 2.0
# ASSUMED: evaluation, checkpoints and data loading add this share to the training time.
ASSUMED_EPOCH_OVERHEAD = 0.1
# ASSUMED: minutes to start a job (imports, CUDA context, loading the data and checkpoints).
ASSUMED_STARTUP_MINUTES = 5
# Time limits: twice the estimate, at least 15 minutes, at most the site's limit (the config's max_job_minutes:
# a reference run whose estimate exceeds it trains in a chain of jobs, `reference_chain`).
RUNTIME_SAFETY = 2.0
MIN_RUNTIME_MINUTES = 15

# ASSUMED: host memory of one process: the interpreter, torch and (on a GPU) the CUDA libraries and context.
ASSUMED_PROCESS_MB = {"cpu": 1500, "cuda": 4000}
# ASSUMED: host memory of a dataset resident in one process, by kind (generated kinds are small), and of each
# DataLoader worker (ImageNet's `workers`).
ASSUMED_DATA_MB = {"cifar10": 400, "imagenet": 1000, "corpus": 1000, "vaihingen": 2000}
ASSUMED_WORKER_MB = 300
# ASSUMED where the data decides them: classes of ImageNet-1K, the vocabulary of WikiText-2, training samples; the
# classes of a tensors file whose config gives no num_classes: two, the fewest a classifier has (a model built with
# none warns "Initializing zero-element tensors is a no-op").
ASSUMED_CLASSES = {"image224": 1000, "tokens": 33_278, "tensors": 2}
IMAGENET_TRAIN_IMAGES = 1_281_167
# A corpus run's sample is one seq_len-token window of a stream; ASSUMED: its training file holds one token
# per BYTES_PER_TOKEN bytes (WikiText-2: 10.8 MB for 2,088,628 tokens), and WikiText-2's tokens where the file
# is not at hand.
BYTES_PER_TOKEN = 5.2
ASSUMED_CORPUS_TOKENS = 2_088_628


@dataclass(frozen=True)
class ModelSize:
    parameters: int
    buffers: int
    # Forward and backward of one training sample (3 forwards); 6 per parameter where the model takes no batch.
    flops_per_sample: float


def _example(spec: RunSpec) -> tuple[tuple[int, ...], bool] | None:
    """The shape of one sample of what the run's dataset feeds its model, and whether it is token ids (None: a
    synthetic objective, whose model is its parameters, or a tensors file, whose shape only the file knows)."""
    params = spec.data.params
    provided = kind(spec.data.kind).provides(params)
    if provided.startswith("image") and provided[len("image") :].isdigit():
        side = int(provided[len("image") :])
        return (1, 3, side, side), False
    shapes = {
        "mnist1d": ((1, 40), False),
        "segmentation": ((1, 3, params.get("patch_size", 0), params.get("patch_size", 0)), False),
        "tokens": ((1, params.get("seq_len", 0)), True),
    }
    return shapes.get(provided)


def model_size(spec: RunSpec) -> ModelSize:
    entry = model(spec.model)
    # By what the dataset feeds, not by the model's input: a plug-in or torchvision model has none.
    provided = kind(spec.data.kind).provides(spec.data.params)
    classes = (
        kind(spec.data.kind).task.num_classes or spec.data.params.get("num_classes") or ASSUMED_CLASSES.get(provided, 0)
    )
    reads = tuple((key, spec.data.params[key]) for key in entry.reads)
    options = tuple(sorted(spec.model_options.items()))
    arguments = (spec.model, spec.width, reads, classes, options, _example(spec))
    return _model_size(*arguments) if plugins.is_plugin(spec.model) else _stored_model_size(*arguments)


@cache
def _sizes_file() -> Path:
    """Where the registry's models' sizes are kept between processes: every `snakemake` run checks its config's
    models with a forward pass on the meta device, and the first such pass in a process imports torch's compiler
    (1.5 s). Keyed by the code that measures (the models, this module) and torch's version; a plug-in or torchvision
    model (code outside pathgeo) is measured every time."""
    code = f"{library_version(('training/models', 'planning/sizing.py'))} torch {torch.__version__}"
    return cache_folder() / f"model-sizes-{hashlib.sha256(code.encode()).hexdigest()[:16]}.json"


@cache
def _stored_model_size(*arguments) -> ModelSize:
    """`_model_size`, from the file of sizes measured before where it holds them; a file that cannot be read or
    written is only slower."""
    key = json.dumps(arguments, default=str)
    path = _sizes_file()
    try:
        stored = json.loads(path.read_text())
    except (OSError, ValueError):
        stored = {}
    if key in stored:
        return ModelSize(*stored[key])
    size = _model_size(*arguments)
    try:
        write_with(path, lambda tmp: tmp.write_text(json.dumps({**stored, key: dataclasses.astuple(size)})))
    except OSError:
        pass
    return size


@cache
def _model_size(name: str, width: float, data_params: tuple, classes: int, options: tuple, example) -> ModelSize:
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        net = build_model(name, width, dict(data_params), 0, classes, dict(options))
    parameters = sum(p.numel() for p in net.parameters() if p.requires_grad)
    buffers = sum(b.numel() for b in net.buffers())
    if example is None:
        return ModelSize(parameters, buffers, 6.0 * parameters)
    shape, tokens = example
    x = torch.zeros(shape, dtype=torch.long, device="meta") if tokens else torch.empty(shape, device="meta")
    counter = FlopCounterMode(display=False)
    # In eval mode: batch norm refuses one sample in train mode where a feature map is down to 1 x 1.
    with counter, torch.no_grad():
        net.eval()(x)
    return ModelSize(parameters, buffers, 3.0 * counter.get_total_flops())


@cache
def optimizer_slots(name: str) -> int:
    """Model-sized tensors the optimizer keeps (momentum: 1, Adam: 2), counted on a one-element model."""
    weight = torch.nn.Parameter(torch.ones(1))
    opt = optimizer(name).cls([weight], lr=0.1, **optimizer(name).settings)
    weight.grad = torch.ones(1)
    opt.step()
    # Tensors of the parameter's shape (a 0-dim tensor is a step count).
    return sum(
        1
        for state in opt.state.values()
        for value in state.values()
        if torch.is_tensor(value) and value.is_floating_point() and value.shape == weight.shape
    )


def probe_copies(correlations: dict, references: int) -> int:
    """Model-sized float32 vectors the probe holds on the device with these correlation settings: w_prev and
    one w* per reference point, and the earlier gradients and weights its rings keep (pathgeo.engine.record: h
    rolling gradients, plus one base G and w for the anchored lags, or the last 51 of each for every_step)."""
    rings = rings_for(Layout(correlations["window"], references, LAGS), correlations["lagged"])
    return (1 + references if references else 0) + rings.g_depth + rings.w_depth


def _corpus_tokens(spec: RunSpec, data_root: str | Path | None) -> int:
    train = Path(data_root or ".") / spec.data.params["path"] / spec.data.params["files"]["train"]
    return int(train.stat().st_size / BYTES_PER_TOKEN) if train.is_file() else ASSUMED_CORPUS_TOKENS


def samples_per_epoch(spec: RunSpec, data_root: str | Path | None = None) -> int:
    """Training samples (minibatch rows) of one epoch: from the config where it says, else the published
    dataset's size (ASSUMED: the files decide it)."""
    params = spec.data.params
    size = kind(spec.data.kind).train_size
    if size is not None:
        return size(params)
    if "steps_per_epoch" in params:  # a synthetic objective: one row per step
        return params["steps_per_epoch"]
    published = {
        "cifar10": lambda: round(50_000 * (1 - params["val_fraction"])),
        "imagenet": lambda: IMAGENET_TRAIN_IMAGES,
        "corpus": lambda: _corpus_tokens(spec, data_root) // params["seq_len"],
        "vaihingen": lambda: params["patches_per_epoch"],
    }
    return published[spec.data.kind]() if spec.data.kind in published else 10_000


@dataclass(frozen=True)
class Throughput:
    samples_per_second: float  # of all the run's devices together
    source: str  # "measured ..." or "assumed ..."


# Measured training throughput of one device, samples/s, by (model, width, precision, device kind), with the
# command and hardware that measured it. Empty: no GPU was at hand (`python -m pathgeo.tools.precision_check` on an
# A100 measures CIFAR ResNet-18, README "On a GPU").
MEASURED: dict[tuple[str, float, str, str], tuple[float, str]] = {}


def throughput(spec: RunSpec, device: str, threads: int = 1) -> Throughput:
    """Training samples per second of the run on `device` ("a100" or "cpu") with all its devices."""
    size = model_size(spec)
    devices = spec.devices * (ASSUMED_SCALING_EFFICIENCY if spec.devices > 1 else 1.0)
    measured = MEASURED.get((spec.model, spec.width, spec.precision, device))
    if measured is not None:
        return Throughput(measured[0] * devices, f"measured: {measured[1]}")
    if device == "cpu":
        rate = ASSUMED_CPU_THREAD_FLOPS * threads * (0.5 if spec.precision == "float64" else 1.0)
        source = f"assumed: {ASSUMED_CPU_THREAD_FLOPS / 1e9:g} GFLOP/s per thread"
        return Throughput(rate / size.flops_per_sample, source)
    rate = A100_PEAK_FLOPS[spec.precision] * ASSUMED_A100_UTILIZATION
    return Throughput(
        rate * devices / size.flops_per_sample,
        f"assumed: {ASSUMED_A100_UTILIZATION:.0%} of the A100's {spec.precision} peak"
        + (f", {spec.devices} GPUs at {ASSUMED_SCALING_EFFICIENCY:.0%} scaling" if spec.devices > 1 else ""),
    )


def training_hours(
    spec: RunSpec, epochs: int, device: str, threads: int = 1, probe: bool = False, data_root: str | Path | None = None
) -> float:
    """Wall-clock hours of `epochs` epochs of the run (with the probe: a replay)."""
    seconds = epochs * samples_per_epoch(spec, data_root) / throughput(spec, device, threads).samples_per_second
    seconds *= 1 + ASSUMED_EPOCH_OVERHEAD
    if probe:
        seconds *= ASSUMED_PROBE_SLOWDOWN
    return seconds / 3600


def runtime_minutes(
    spec: RunSpec,
    epochs: int,
    device: str,
    threads: int,
    attempt: int = 1,
    probe: bool = False,
    data_root: str | Path | None = None,
    limit: int | None = None,
) -> int:
    """The time limit of a job that trains `epochs` epochs: twice the estimate and the start-up, more with every
    attempt, at least MIN_RUNTIME_MINUTES and at most `limit` (the site's, config key max_job_minutes)."""
    estimate = ASSUMED_STARTUP_MINUTES + 60 * training_hours(spec, epochs, device, threads, probe, data_root)
    minutes = max(MIN_RUNTIME_MINUTES, math.ceil(RUNTIME_SAFETY * estimate * attempt))
    return int(minutes if limit is None else min(limit, minutes))


def epochs_per_job(
    spec: RunSpec, limit: int, device: str, threads: int, probe: bool = False, data_root: str | Path | None = None
) -> int:
    """The most epochs one job of the run trains (with the probe: replays) within `limit` minutes at its first
    attempt; one at least (a single epoch over the limit still runs, in a job asking for the limit)."""
    per_epoch = 60 * training_hours(spec, 1, device, threads, probe, data_root)
    budget = limit / RUNTIME_SAFETY - ASSUMED_STARTUP_MINUTES
    return max(1, math.floor(budget / per_epoch)) if per_epoch > 0 else spec.epochs


def reference_chain(
    spec: RunSpec,
    checkpoints: tuple[int, ...],
    limit: int | None,
    device: str,
    threads: int,
    data_root: str | Path | None = None,
) -> tuple[int, ...]:
    """The epoch at which each job of the run's reference training ends, in order; the last is the run's end.
    One job when the whole run fits `limit` minutes (or there is no limit); otherwise a chain of jobs, each
    resuming from the checkpoint the one before it ended at. Jobs end at the run's `checkpoints`, the ends of its
    segments, each job taking as many segments as fit (the measurements taken during training restart there, as
    in a replay; `within_time_limit` makes the segments short enough)."""
    if limit is None or runtime_minutes(spec, spec.epochs, device, threads, data_root=data_root) <= limit:
        return (spec.epochs,)
    most = epochs_per_job(spec, limit, device, threads, data_root=data_root)
    ends, start = [], 0
    for epoch, after in zip(checkpoints, (*checkpoints[1:], None)):
        if epoch > start and (after is None or after - start > most):
            ends.append(epoch)
            start = epoch
    return tuple(ends)


def segment_epochs_within(
    spec: RunSpec,
    spacing: int,
    limit: int | None,
    device: str,
    threads: int,
    probe: bool,
    data_root: str | Path | None = None,
) -> int:
    """The run's checkpoint spacing: the config's `spacing` (segment_epochs) or, where one segment would take one
    job (with the probe: a replay; without: reference training) longer than `limit` minutes, its largest divisor
    that fits (a divisor, so that every reference point, a multiple of the spacing, stays a checkpoint); one
    epoch at least."""
    if limit is None:
        return spacing
    divisors = [d for d in range(spacing, 0, -1) if spacing % d == 0]
    fitting = (
        d for d in divisors if runtime_minutes(spec, d, device, threads, probe=probe, data_root=data_root) <= limit
    )
    return next(fitting, 1)


def unfit_model(spec: RunSpec) -> str | None:
    """Why the run's model cannot take one sample of its dataset (a forward pass on the meta device), or None.
    The registry's models are matched to their datasets by kind already; a torchvision or plug-in model is not."""
    example = _example(spec)
    try:
        model_size(spec)
    except Exception as error:  # whatever the model raises on that input
        shape = f"one sample of shape {example[0]}" if example else "its dataset's input"
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        return (
            f"model '{spec.model}' cannot take dataset '{spec.data.name}' (kind {spec.data.kind}): a forward pass of "
            f"{shape} raised {type(error).__name__}: {message}. Choose a model for that input, or pass "
            "model_options that fit it"
        )
    return None


def sized_plan(config: dict, limit: int | None, device: str, threads: int, data_root: str | Path | None = None) -> Plan:
    """The config's plan (pathgeo.planning.config.build_plan), refused where a model cannot take its dataset's input, with
    every segment short enough for one job within `limit` minutes (`within_time_limit`)."""
    from pathgeo.planning.config import build_plan
    from pathgeo.planning.config_errors import ConfigError

    plan = build_plan(config)
    for experiment, run_ids in plan.experiments.items():
        for run_id in run_ids:
            problem = unfit_model(plan.runs[run_id])
            if problem:
                raise ConfigError(f"experiments.{experiment}", problem)
    return within_time_limit(plan, limit, device, threads, data_root)


def within_time_limit(
    plan: Plan, limit: int | None, device: str, threads: int, data_root: str | Path | None = None
) -> Plan:
    """The plan with every segment short enough for one job within `limit` minutes: a replay segment for a
    replayed run, a job of its reference training for one that is not (`reference_chain` ends its jobs at
    segment ends)."""
    spacing = {
        run_id: segment_epochs_within(
            plan.runs[run_id], every, limit, device, threads, plan.replayed(run_id), data_root
        )
        for run_id, every in plan.run_segment_epochs.items()
    }
    return dataclasses.replace(plan, run_segment_epochs=spacing)


def _element_bytes(spec: RunSpec) -> int:
    return 8 if spec.precision == "float64" else 4


def checkpoint_mb(spec: RunSpec) -> float:
    """One checkpoint: parameters, buffers and optimizer state."""
    size = model_size(spec)
    return (size.parameters * (1 + optimizer_slots(spec.optimizer)) + size.buffers) * _element_bytes(spec) / MB


def state_vectors(optimizer_name: str, devices: int, probe_vectors: int = 0) -> dict[str, int]:
    """Model-sized vectors one rank holds on its device, by part: weights and gradients (the flat buffer), the
    optimizer's slots, DDP's gradient buckets on several devices, and the probe's copies (rank 0's)."""
    return {
        "weights": 1,
        "gradients": 1,
        "optimizer": optimizer_slots(optimizer_name),
        "DDP buckets": 1 if devices > 1 else 0,
        "probe": probe_vectors,
    }


def model_state_parts_mb(spec: RunSpec, probe_vectors: int = 0) -> dict[str, float]:
    """`model_state_mb` by part (state_vectors)."""
    vector_mb = model_size(spec).parameters * _element_bytes(spec) / MB
    return {
        part: count * vector_mb for part, count in state_vectors(spec.optimizer, spec.devices, probe_vectors).items()
    }


def model_state_mb(spec: RunSpec, probe_vectors: int = 0) -> float:
    """One rank's model state: weights and gradients (the flat buffer), optimizer state, DDP's gradient buckets,
    and `probe_vectors` model-sized vectors of the probe (rank 0's). Activations come on top (they depend on the
    batch)."""
    return sum(model_state_parts_mb(spec, probe_vectors).values())


# The config's default correlation window h (pathgeo.planning.config.CORRELATION_DEFAULTS).
DEFAULT_WINDOW = 5


def largest_model(
    memory_bytes: int, optimizer_name: str, lagged: str, references: int = 1, window: int = DEFAULT_WINDOW
) -> int:
    """The most float32 parameters whose model state and probe copies (a replay's rank 0 on one device, the
    vectors model_state_mb counts) fit in `memory_bytes`; activations and the CUDA context come on top."""
    probe = probe_copies({"window": window, "lagged": lagged}, references)
    return memory_bytes // (4 * sum(state_vectors(optimizer_name, 1, probe).values()))


def largest_models(
    memories_gib: tuple[int, ...] = (40, 80), optimizers: tuple[str, ...] = ("momentum", "adam"), references: int = 1
) -> list[tuple[str, str, dict[int, int]]]:
    """(lag protocol, optimizer, {GiB of device memory: largest_model}) for every lag protocol and optimizer."""
    return [
        (lagged, name, {gib: largest_model(gib << 30, name, lagged, references) for gib in memories_gib})
        for lagged in LAG_PROTOCOLS
        for name in optimizers
    ]


def host_memory_mb(spec: RunSpec, device: str, checkpoints_held: int, probe_vectors: int = 0, attempt: int = 1) -> int:
    """Host memory (sbatch --mem) of a job over all its ranks: each process's base and resident data, the
    checkpoints it holds in memory, and on the CPU the model state and the probe (on a GPU they are in device
    memory). Half again for what this leaves out (activations), and once more with every attempt."""
    base = ASSUMED_PROCESS_MB["cpu" if device == "cpu" else "cuda"]
    data_mb = ASSUMED_DATA_MB.get(spec.data.kind, 100) + ASSUMED_WORKER_MB * spec.data.params.get("workers", 0)
    total = spec.devices * (base + data_mb) + checkpoints_held * checkpoint_mb(spec)
    if device == "cpu":
        total += spec.devices * model_state_mb(spec) + model_state_mb(spec, probe_vectors) - model_state_mb(spec)
    return int(math.ceil(1.5 * total * attempt))


def cpus_per_device(spec: RunSpec, threads: int) -> int:
    """CPU cores per device: the config's threads, and at least one per DataLoader worker and the main process."""
    return max(threads, spec.data.params.get("workers", 0) + 1)


@dataclass(frozen=True)
class PlannedRun:
    run_id: str
    spec: RunSpec
    reference_hours: float  # wall clock of the reference job(s)
    replay_hours: float  # wall clock of all its replay segments together
    source: str
    reference_jobs: int  # more than one: a chain of jobs within the site's time limit
    replay_jobs: int

    @property
    def device_hours(self) -> float:
        return (self.reference_hours + self.replay_hours) * self.spec.devices


def compute_plan(
    plan: Plan, device: str = "a100", threads: int = 1, data_root: str | Path | None = None, limit: int | None = None
) -> list[PlannedRun]:
    """Every run of a plan with the hours its reference training and its replays take, and its jobs within the
    time limit `limit` (minutes)."""
    rows = []
    for run_id, spec in sorted(plan.runs.items()):
        segments = plan.segments(run_id)
        replayed = sum(end - start for start, end in segments)
        rows.append(
            PlannedRun(
                run_id,
                spec,
                training_hours(spec, spec.epochs, device, threads, data_root=data_root),
                training_hours(spec, replayed, device, threads, probe=True, data_root=data_root),
                throughput(spec, device, threads).source,
                len(reference_chain(spec, plan.checkpoint_epochs(run_id), limit, device, threads, data_root)),
                len(segments),
            )
        )
    return rows
