"""Learning-rate and weight-decay schedules as pure functions of the step.

The trainer sets every parameter group's LR and weight decay from these before each step, so there is no
scheduler state to checkpoint and a replay from any checkpoint gets the same values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pathgeo.spec import RunSpec


@dataclass(frozen=True)
class Schedule:
    name: str
    total_steps: int
    warmup_steps: int
    steps_per_epoch: int

    def lr_factor(self, step: int) -> float:
        """Multiplier of the peak LR at `step` (0-based)."""
        if self.name == "constant":
            return 1.0
        if self.name == "warmup_cosine":
            if step < self.warmup_steps:
                return (step + 1) / self.warmup_steps
            progress = (step - self.warmup_steps) / max(self.total_steps - self.warmup_steps, 1)
            return 0.5 * (1.0 + math.cos(math.pi * progress))
        if self.name == "final_drop":
            return self.wd_factor(step)
        raise ValueError(f"unknown schedule '{self.name}'")

    def wd_factor(self, step: int) -> float:
        """Multiplier of the weight decay: the Vaihingen recipe divides LR and weight decay by 10 for the
        last epoch; every other schedule keeps the weight decay."""
        if self.name == "final_drop" and step >= self.total_steps - self.steps_per_epoch:
            return 0.1
        return 1.0


def schedule_for(spec: RunSpec, steps_per_epoch: int) -> Schedule:
    return Schedule(spec.schedule, spec.epochs * steps_per_epoch, spec.warmup_epochs * steps_per_epoch, steps_per_epoch)
