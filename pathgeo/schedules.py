"""Learning-rate schedules as pure functions of the step, so a replay from any checkpoint gets the same LR."""

from __future__ import annotations

import math

import torch

from pathgeo.spec import RunSpec


def lr_factor(schedule: str, step: int, total_steps: int, warmup_steps: int) -> float:
    """Multiplier of the peak LR at `step` (0-based)."""
    if schedule == "constant":
        return 1.0
    if schedule == "warmup_cosine":
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(total_steps - warmup_steps, 1)
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    raise ValueError(f"unknown schedule '{schedule}'")


def build_scheduler(
    spec: RunSpec, optimizer: torch.optim.Optimizer, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LambdaLR:
    total = spec.epochs * steps_per_epoch
    warmup = spec.warmup_epochs * steps_per_epoch
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(spec.schedule, step, total, warmup))
