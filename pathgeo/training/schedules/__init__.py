"""The schedule registry: learning-rate and weight-decay schedules as functions of the step.

Each module of this package declares one schedule (`SCHEDULE = ScheduleKind(...)`): its name as a run's `schedule`
field gives it, how a run id names it, whether it has a warm-up and of which shape, whether a checkpoint before the
end depends on the epoch budget, and its factors of the run's LR and weight decay at a step. Adding a schedule
touches one module and its test (tests/test_schedules.py); the config schema's enum and the plan's checks come from
here.

The trainer sets every parameter group's LR and weight decay from these before each optimizer step. Every schedule
but one is a pure function of the step, so a replay from any checkpoint gets the same values. The exception, the
geometry-adapted warm-up (gawu), also takes the step at which its warm-up ended; that step is found from the
gradients (pathgeo.training.warmup) and travels in the checkpoints.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

from pathgeo.registry import discover, lookup

if TYPE_CHECKING:
    from pathgeo.training.spec import RunSpec

# The shapes of a warm-up: none, linear from lr/warmup_steps to lr, exponential (lr · exp(growth · step)).
NO_WARMUP, LINEAR, EXPONENTIAL = "none", "linear", "exponential"


@dataclass(frozen=True)
class Schedule:
    """A run's schedule over its steps: `total_steps` in all, the first `warmup_steps` of them warm-up (the latest
    switch, for an adaptive one), `steps_per_epoch` a epoch, the exponential warm-up's `growth`."""

    name: str
    total_steps: int
    warmup_steps: int
    steps_per_epoch: int
    growth: float = 0.0

    def lr_factor(self, step: int, switch_step: int | None = None) -> float:
        """Multiplier of the run's `lr` at `step` (0-based). For the exponential warm-ups `lr` is the LR of step 0
        and `switch_step` the step where the cosine decay begins: `warmup_steps` for a fixed switch, the detected
        one for an adaptive schedule (`warmup_steps` while none has been detected)."""
        return schedule(self.name).lr(self, step, self.warmup_steps if switch_step is None else switch_step)

    def wd_factor(self, step: int) -> float:
        """Multiplier of the weight decay at `step`."""
        return schedule(self.name).wd(self, step)


def keep_weight_decay(schedule: Schedule, step: int) -> float:
    return 1.0


@dataclass(frozen=True)
class ScheduleKind:
    """A schedule: `lr(schedule, step, switch)` is the LR factor at a step (`switch`: where the warm-up ends),
    `wd(schedule, step)` the weight decay's. `slug`: how a run id names it (None: unnamed). `warmup`: NO_WARMUP,
    LINEAR or EXPONENTIAL (the last needs warmup_growth). `budget_dependent`: its LR at a step depends on the total
    number of epochs, so a checkpoint before the end is not the end of a shorter run and cannot stand for another
    epoch budget. `adaptive`: it detects its switch from the gradients (pathgeo.training.warmup)."""

    name: str
    lr: Callable[[Schedule, int, int], float]
    slug: str | None
    warmup: str = NO_WARMUP
    budget_dependent: bool = True
    adaptive: bool = False
    wd: Callable[[Schedule, int], float] = keep_weight_decay


@cache
def schedules() -> dict[str, ScheduleKind]:
    """Every schedule, by name, as the modules of this package declare them."""
    return discover(__name__, "SCHEDULE")


def schedule(name: str) -> ScheduleKind:
    return lookup(schedules(), name, "schedule")


def cosine(step: int, length: int) -> float:
    """One half period of cosine annealing from 1 to 0 over `length` steps."""
    return 0.5 * (1.0 + math.cos(math.pi * step / max(length, 1)))


def exponential_then_cosine(schedule: Schedule, step: int, switch: int) -> float:
    """The exponential warm-ups: exp(growth · step) until `switch`, then a half cosine to 0 at the end."""
    if step < switch:
        return math.exp(schedule.growth * step)
    return math.exp(schedule.growth * switch) * cosine(step - switch, schedule.total_steps - switch)


def schedule_for(spec: RunSpec, steps_per_epoch: int) -> Schedule:
    return Schedule(
        spec.schedule,
        spec.epochs * steps_per_epoch,
        spec.warmup_epochs * steps_per_epoch,
        steps_per_epoch,
        spec.warmup_growth,
    )
