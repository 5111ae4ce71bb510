"""The geometry-adapted warm-up (GAWU) of "A mysterious optimization geometry": the exponential warm-up, switched to
the cosine decay at the first step where the mean gradient correlation over gawu_window steps turns from positive to
negative (pathgeo.training.warmup), at warmup_epochs at the latest."""

from pathgeo.training.schedules import EXPONENTIAL, ScheduleKind, exponential_then_cosine

SCHEDULE = ScheduleKind("gawu", exponential_then_cosine, slug="gawu", warmup=EXPONENTIAL, adaptive=True)
