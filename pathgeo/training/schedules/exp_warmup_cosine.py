"""The exponential warm-up of "A mysterious optimization geometry": the LR grows by exp(warmup_growth) every step
from `lr` until epoch warmup_epochs, then decays by one half cosine period to 0 at the end."""

from pathgeo.training.schedules import EXPONENTIAL, ScheduleKind, exponential_then_cosine

SCHEDULE = ScheduleKind("exp_warmup_cosine", exponential_then_cosine, slug="expwucos", warmup=EXPONENTIAL)
