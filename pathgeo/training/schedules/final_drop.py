"""The Vaihingen recipe: the LR and the weight decay divided by 10 for the last epoch."""

from pathgeo.training.schedules import Schedule, ScheduleKind


def last_epoch_tenth(schedule: Schedule, step: int) -> float:
    return 0.1 if step >= schedule.total_steps - schedule.steps_per_epoch else 1.0


SCHEDULE = ScheduleKind(
    "final_drop", lambda schedule, step, switch: last_epoch_tenth(schedule, step), slug="drop", wd=last_epoch_tenth
)
