"""Reference training: train once, checkpoint at the segment boundaries, log every epoch.

A job killed by a time limit, a preemption or `kill -9` and started again resumes from its last checkpoint:
each checkpoint carries the log of the epochs before it, so the resumed run ends with the same weights and
the same log as an uninterrupted one.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
import torch

from pathgeo import checkpoints
from pathgeo.spec import RunSpec
from pathgeo.training import build_trainer
from pathgeo.w_star_free import STATE_KEY, TrainingCorrelations

log = logging.getLogger("pathgeo")


def train_reference(
    spec: RunSpec,
    data: Any,
    device: torch.device,
    checkpoint_epochs: tuple[int, ...],
    save_checkpoint: Callable[[int, dict], None],
    resume: dict | None = None,
    correlations: dict[str, Any] | None = None,
) -> pl.DataFrame:
    """Train from the seed's initial weights (or from the checkpoint `resume`) to `spec.epochs`; returns the
    per-epoch log. With `correlations` (window, matrix_epochs) training also takes the measurements that
    need no w*, segment by segment (pathgeo.w_star_free); each checkpoint carries their tables so far."""
    trainer = build_trainer(spec, data, device)
    rows: list[dict] = []
    if resume is not None:
        trainer.load_state(resume)
        rows = list(resume["log"])
        log.info("run %s resumes from its checkpoint at epoch %d", spec.run_id, trainer.epoch)
    measured = None
    if correlations is not None:
        measured = TrainingCorrelations(trainer, correlations, (resume or {}).get(STATE_KEY))
    if resume is None and 0 in checkpoint_epochs:
        save_checkpoint(0, {**trainer.state(), "log": [], **(measured.checkpoint() if measured else {})})
    while trainer.epoch < spec.epochs:
        stats = trainer.train_epoch(measured)
        if measured is not None:
            measured.end_epoch(stats.epoch)
        val = trainer.task.evaluate()
        rows.append(
            {
                "epoch": stats.epoch,
                "train_loss": stats.train_loss,
                "train_accuracy": stats.train_accuracy,
                **val,
                "lr": trainer.optimizer.param_groups[0]["lr"],
                "seconds": stats.seconds,
            }
        )
        log.info(
            "run %s epoch %d/%d: train loss %.4g, %s (%.2f s)",
            spec.run_id, stats.epoch + 1, spec.epochs, stats.train_loss,
            ", ".join(f"{k} {v:.4g}" for k, v in val.items()) or "no validation", stats.seconds,
        )
        if trainer.epoch in checkpoint_epochs:
            save_checkpoint(trainer.epoch, {**trainer.state(), "log": rows, **(measured.checkpoint() if measured else {})})
    if trainer.nondeterministic_ops:
        log.warning("run %s used nondeterministic ops: %s", spec.run_id, sorted(trainer.nondeterministic_ops))
    return pl.DataFrame(rows, infer_schema_length=None).with_columns(pl.exclude("epoch").cast(pl.Float64))


def latest_checkpoint(folder: Path) -> dict | None:
    """The newest readable checkpoint in `folder`, if any (writes are atomic, so every file there is whole)."""
    paths = sorted(Path(folder).glob("epoch*.pt"))
    return checkpoints.load(paths[-1]) if paths else None


def publish_checkpoints(workspace: Path, destination: Path, epochs: tuple[int, ...]) -> None:
    """Make the finished run's workspace its checkpoint folder by one rename, so a job killed at any moment
    leaves either a resumable workspace or a complete folder. Files for other epochs (from an earlier
    segment length) and leftovers of interrupted writes are dropped first."""
    keep = {checkpoints.checkpoint_path(workspace, epoch).name for epoch in epochs}
    missing = keep - {path.name for path in workspace.iterdir()}
    if missing:
        raise RuntimeError(f"{workspace}: checkpoints {sorted(missing)} are missing; delete the folder and rerun")
    for path in workspace.iterdir():
        if path.name not in keep:
            path.unlink()
    if destination.exists():
        destination.rmdir()
    os.replace(workspace, destination)
