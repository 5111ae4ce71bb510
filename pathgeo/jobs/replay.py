"""Replay one segment of a run: the identical trajectory from one checkpoint to the next, with the probe.

At the segment's end the replayed parameters are compared with the reference checkpoint: the relative
drift is exactly 0.0 on CPU; a drift over the tolerance means the measurements are of another trajectory.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import polars as pl
import torch

from pathgeo.atomic import write_json, write_parquet
from pathgeo.engine.probe import Probe
from pathgeo.jobs.runner import begin_job
from pathgeo.measurements.point_geometry import PointGeometry, measurements_from
from pathgeo.planning.config import CORRELATION_DEFAULTS
from pathgeo.planning.provenance import check_code
from pathgeo.training import checkpoints, distributed, topology
from pathgeo.training.distributed import SINGLE, Shard
from pathgeo.training.flat import relative_drift
from pathgeo.training.loop import Observer, Trainer, build_trainer
from pathgeo.training.spec import RunSpec

log = logging.getLogger("pathgeo")


class Observers:
    """Several observers of one training loop, in order: the probe first, so that it reads each step's
    state before any measurement runs passes of its own (which restore it)."""

    def __init__(self, *observers: Observer):
        self.observers = observers

    def after_backward(self, loss: torch.Tensor, lr: float, weight_decay: float) -> None:
        for observer in self.observers:
            observer.after_backward(loss, lr, weight_decay)


class FidelityError(RuntimeError):
    """The replay left the reference trajectory by more than the tolerance."""


@dataclass(frozen=True)
class Fidelity:
    run_id: str
    epoch: int
    relative_drift: float
    max_buffer_difference: float
    nondeterministic_ops: tuple[str, ...]

    def as_dict(self) -> dict:
        return {
            "run_id": self.run_id,
            "epoch": self.epoch,
            "relative_drift": self.relative_drift,
            "max_buffer_difference": self.max_buffer_difference,
            "nondeterministic_ops": list(self.nondeterministic_ops),
        }


def flat_parameters_of(trainer: Trainer, model_state: dict[str, torch.Tensor]) -> torch.Tensor:
    """A checkpoint's parameters in the order of the trainer's flat buffer."""
    names = [name for name, p in trainer.module.named_parameters() if p.requires_grad]
    return torch.cat([model_state[name].reshape(-1) for name in names])


def measure_fidelity(trainer: Trainer, reference_state: dict) -> Fidelity:
    drift = relative_drift(trainer.flat.weights, flat_parameters_of(trainer, reference_state["model"]))
    param_names = {name for name, _ in trainer.module.named_parameters()}
    buffer_diff = 0.0
    for name, value in trainer.module.state_dict().items():
        if name not in param_names and value.is_floating_point():
            expected = reference_state["model"][name].to(value.device)
            buffer_diff = max(buffer_diff, (value - expected).abs().max().item() if value.numel() else 0.0)
    return Fidelity(trainer.run_id, trainer.epoch, drift, buffer_diff, tuple(sorted(trainer.nondeterministic_ops)))


def replay_segment(
    spec: RunSpec,
    data: Any,
    device: torch.device,
    start_state: dict,
    end_state: dict,
    references: dict[str, tuple[int, dict]],
    tolerance: float,
    correlations: dict[str, Any] | None = None,
    measurements: Sequence[PointGeometry] = (),
    shard: Shard = SINGLE,
) -> tuple[pl.DataFrame | None, pl.DataFrame | None, Fidelity]:
    """The per-step table, the correlation matrices and the fidelity of one segment. `references` maps a
    reference name to (its epoch, its checkpoint state); `correlations` holds the config's correlation
    settings (window, lagged, matrix_epochs), as pathgeo.planning.config.correlation_settings gives them;
    `measurements` (pathgeo.measurements.point_geometry) observe the segment beside the probe, and keep their tables. On
    several devices every rank calls it; the probe runs on rank 0 over the all-reduced gradient, only rank 0
    needs `references`, and the other ranks get no tables (runs with `measurements` train on one device)."""
    settings = {**CORRELATION_DEFAULTS, **(correlations or {})}
    trainer = build_trainer(spec, data, device, shard)
    trainer.load_state(start_state)
    if not shard.lead:
        return None, None, _replay_to(trainer, end_state, tolerance, None, ())
    steps_per_epoch = trainer.task.steps_per_epoch
    reference_weights = {name: flat_parameters_of(trainer, state["model"]) for name, (_, state) in references.items()}
    budgets = {name: epoch for name, (epoch, _) in references.items()}
    for measurement in measurements:
        measurement.start(trainer, reference_weights, budgets)
    probe = Probe(
        trainer.flat,
        reference_weights,
        weight_decay=spec.weight_decay,
        steps_per_epoch=steps_per_epoch,
        start_step=trainer.step,
        start_epoch=trainer.epoch,
        window=settings["window"],
        lagged=settings["lagged"],
        matrix_epochs=None if settings["matrix_epochs"] == "all" else settings["matrix_epochs"],
    )
    fidelity = _replay_to(trainer, end_state, tolerance, probe, measurements)
    table = probe.finish()
    matrices = probe.correlation_matrices().with_columns(pl.lit(spec.run_id).alias("run_id"))
    table = table.with_columns(
        pl.lit(spec.run_id).alias("run_id"),
        pl.col("reference").replace_strict(budgets, return_dtype=pl.Int64).alias("budget"),
    ).with_columns((pl.col("budget") * steps_per_epoch - pl.col("step")).alias("steps_to_reference"))
    return table, matrices, fidelity


def _replay_to(
    trainer: Trainer, end_state: dict, tolerance: float, probe: Probe | None, measurements: Sequence[PointGeometry]
) -> Fidelity:
    """Train to the end state's epoch (with the probe and the measurements, where given) and check the drift
    from it."""
    run_id, end_epoch = trainer.run_id, end_state["epoch"]
    observer = Observers(probe, *measurements) if probe is not None else None
    while trainer.epoch < end_epoch:
        stats = trainer.train_epoch(observer)
        if probe is not None:
            probe.end_epoch(stats.epoch)
        for measurement in measurements:
            measurement.end_epoch()
        log.info(
            "run %s replay epoch %d/%d: train loss %.4g (%.2f s, %.4g samples/s)",
            run_id,
            stats.epoch + 1,
            end_epoch,
            stats.train_loss,
            stats.seconds,
            stats.samples_per_second,
        )
    fidelity = measure_fidelity(trainer, end_state)
    log.info("run %s epoch %d: replay drift %.3g", run_id, trainer.epoch, fidelity.relative_drift)
    if not fidelity.relative_drift <= tolerance:
        raise FidelityError(
            f"run {run_id}: replay drifted from the reference at epoch {trainer.epoch}: relative drift "
            f"{fidelity.relative_drift:.3g} > tolerance {tolerance:g}"
            + (
                f" (nondeterministic ops: {', '.join(fidelity.nondeterministic_ops)})"
                if fidelity.nondeterministic_ops
                else ""
            )
        )
    return fidelity


def gpu_differences(reference_spec: str, gpus: dict | None) -> list[str]:
    """How this job's GPUs (its settings' "gpus") differ from those the reference's spec.json records."""
    recorded = json.loads(Path(reference_spec).read_text())["settings"].get("gpus")
    return topology.differences(recorded, gpus)


def replay_job(message: dict, shard: Shard) -> None:
    """Replay one segment with the probe and write its tables and fidelity. `values`: checkpoints (the run's
    folder), start, end, references ({name: epoch}), tolerance, correlations, steps, matrices, fidelity,
    measurements (pathgeo.planning.config.Plan.measurements) and their tables full_batch and fixed_batches, code (a
    checkpoint made by other code is an error that says so, not a drift), reference_spec (the reference's
    spec.json: a drift error says how this job's GPUs differ from the reference's, pathgeo.training.topology)."""
    request, job = begin_job(message, shard)
    values = request.values
    other_gpus = gpu_differences(values["reference_spec"], job.settings.get("gpus"))
    if other_gpus:
        log.warning(
            "run %s: this replay's GPUs differ from the reference's: %s", job.spec.run_id, "; ".join(other_gpus)
        )

    @cache
    def state(epoch: int) -> dict:
        # The segment's end is usually a reference point too (always for the last segment): read it once.
        path = checkpoints.checkpoint_path(Path(values["checkpoints"]), epoch)
        loaded = checkpoints.load(path)
        check_code(loaded, values["code"], str(path))
        return loaded

    # Only rank 0 runs the probe, so only it holds the reference points.
    references = {name: (epoch, state(epoch)) for name, epoch in values["references"].items()} if shard.lead else {}
    full_batch, fixed_batches = measurements_from(values["measurements"])
    try:
        table, matrices, fidelity = replay_segment(
            job.spec,
            job.data,
            job.device,
            state(values["start"]),
            state(values["end"]),
            references,
            values["tolerance"],
            values["correlations"],
            (full_batch, fixed_batches),
            shard=shard,
        )
    except FidelityError as error:
        if not other_gpus:
            raise
        raise FidelityError(
            f"{error}. This replay ran on other GPUs than the reference ({values['reference_spec']}): "
            f"{'; '.join(other_gpus)}. Another GPU model runs other kernels, and with 3 or more ranks the "
            "all-reduce sums in an order that follows the links between the GPUs: replay on GPUs like the "
            "reference's (cluster/README.md, 'Multi-GPU runs')"
        ) from None
    finally:
        distributed.leave()
    if shard.lead:
        write_parquet(values["steps"], table)
        write_parquet(values["matrices"], matrices)
        write_parquet(values["full_batch"], full_batch.table(job.spec.run_id))
        write_parquet(values["fixed_batches"], fixed_batches.table(job.spec.run_id))
        write_json(values["fidelity"], fidelity.as_dict())
