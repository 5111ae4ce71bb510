"""The constant learning rate."""

from pathgeo.training.schedules import ScheduleKind

SCHEDULE = ScheduleKind("constant", lambda schedule, step, switch: 1.0, slug=None, budget_dependent=False)
