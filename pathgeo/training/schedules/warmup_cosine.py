"""A linear warm-up over warmup_epochs, then one half cosine period to 0 at the end."""

from pathgeo.training.schedules import LINEAR, Schedule, ScheduleKind, cosine


def lr(schedule: Schedule, step: int, switch: int) -> float:
    if step < schedule.warmup_steps:
        return (step + 1) / schedule.warmup_steps
    return cosine(step - schedule.warmup_steps, schedule.total_steps - schedule.warmup_steps)


SCHEDULE = ScheduleKind("warmup_cosine", lr, slug="wucos", warmup=LINEAR)
