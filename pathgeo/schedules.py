"""Learning-rate and weight-decay schedules as functions of the step.

The trainer sets every parameter group's LR and weight decay from these before each optimizer step. Every
schedule but one is a pure function of the step, so a replay from any checkpoint gets the same values. The
exception, the geometry-adapted warm-up (gawu), also takes the step at which its warm-up ended; that step is
found from the gradients (pathgeo.warmup) and travels in the checkpoints.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pathgeo.spec import RunSpec

EXPONENTIAL_WARMUPS = ("exp_warmup_cosine", "gawu")


@dataclass(frozen=True)
class Schedule:
    name: str
    total_steps: int
    warmup_steps: int
    steps_per_epoch: int
    growth: float = 0.0

    def lr_factor(self, step: int, switch_step: int | None = None) -> float:
        """Multiplier of the run's `lr` at `step` (0-based). For the exponential warm-ups `lr` is the LR of
        step 0 and `switch_step` the step where the cosine decay begins: fixed at `warmup_steps` for
        exp_warmup_cosine; for gawu the detected one, or `warmup_steps` while none has been detected."""
        if self.name == "constant":
            return 1.0
        if self.name == "warmup_cosine":
            if step < self.warmup_steps:
                return (step + 1) / self.warmup_steps
            return _cosine(step - self.warmup_steps, self.total_steps - self.warmup_steps)
        if self.name in EXPONENTIAL_WARMUPS:
            switch = self.warmup_steps if switch_step is None else switch_step
            if step < switch:
                return math.exp(self.growth * step)
            return math.exp(self.growth * switch) * _cosine(step - switch, self.total_steps - switch)
        if self.name == "final_drop":
            return self.wd_factor(step)
        raise ValueError(f"unknown schedule '{self.name}'")

    def wd_factor(self, step: int) -> float:
        """Multiplier of the weight decay: the Vaihingen recipe divides LR and weight decay by 10 for the
        last epoch; every other schedule keeps the weight decay."""
        if self.name == "final_drop" and step >= self.total_steps - self.steps_per_epoch:
            return 0.1
        return 1.0


def _cosine(step: int, length: int) -> float:
    """One half period of cosine annealing from 1 to 0 over `length` steps."""
    return 0.5 * (1.0 + math.cos(math.pi * step / max(length, 1)))


def schedule_for(spec: RunSpec, steps_per_epoch: int) -> Schedule:
    return Schedule(
        spec.schedule,
        spec.epochs * steps_per_epoch,
        spec.warmup_epochs * steps_per_epoch,
        steps_per_epoch,
        spec.warmup_growth,
    )
