"""Reference training: train once, checkpoint at the segment boundaries, log every epoch."""

from __future__ import annotations

from typing import Any

import logging
from collections.abc import Callable

import polars as pl
import torch

from pathgeo.spec import RunSpec
from pathgeo.training import build_trainer

log = logging.getLogger("pathgeo")


def train_reference(
    spec: RunSpec,
    data: Any,
    device: torch.device,
    checkpoint_epochs: tuple[int, ...],
    save_checkpoint: Callable[[int, dict], None],
) -> pl.DataFrame:
    """Train from the seed's initial weights to `spec.epochs`; returns the per-epoch log."""
    trainer = build_trainer(spec, data, device)
    if 0 in checkpoint_epochs:
        save_checkpoint(0, trainer.state())
    rows = []
    while trainer.epoch < spec.epochs:
        stats = trainer.train_epoch()
        val = trainer.task.evaluate()
        rows.append(
            {
                "epoch": stats.epoch,
                "train_loss": stats.train_loss,
                "train_accuracy": stats.train_accuracy,
                "val_loss": val.get("val_loss"),
                "val_accuracy": val.get("val_accuracy"),
                "lr": trainer.optimizer.param_groups[0]["lr"],
                "seconds": stats.seconds,
            }
        )
        log.info(
            "run %s epoch %d/%d: train loss %.4g, val loss %s, val acc %s (%.2f s)",
            spec.run_id, stats.epoch + 1, spec.epochs, stats.train_loss,
            _fmt(val.get("val_loss")), _fmt(val.get("val_accuracy")), stats.seconds,
        )
        if trainer.epoch in checkpoint_epochs:
            save_checkpoint(trainer.epoch, trainer.state())
    if trainer.nondeterministic_ops:
        log.warning("run %s used nondeterministic ops: %s", spec.run_id, sorted(trainer.nondeterministic_ops))
    return pl.DataFrame(rows, schema_overrides={"train_accuracy": pl.Float64, "val_loss": pl.Float64, "val_accuracy": pl.Float64})


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"
