"""The share of gradient entries flipping sign between adjacent steps, per epoch (the per-cell matrix of the second
paper's Figure 8 is correlation_matrices with `cell: sign_flip`)."""

from __future__ import annotations

import altair as alt
import polars as pl

from pathgeo.analysis.figures import COLOR, Plot
from pathgeo.analysis.figures.style import (
    BY_RUN,
    STEPS_BAND,
    Band,
    Figure,
    band_grid,
    constant_lr,
    epoch_domain,
    finish,
    lines,
    rule_at,
)
from pathgeo.analysis.figures.tables import (
    RUN_KEYS,
    epoch_statistics,
    one_reference,
    require_columns,
    thinning_note,
    unique_columns,
    with_epoch_number,
    with_series,
)
from pathgeo.analysis.figures.words import factor_title

# Independent gradients with symmetric entries flip the sign of half of them (percent).
RANDOM_SIGN_FLIPS = 50.0
STATS = ["sign_flip_mean", "sign_flip_min", "sign_flip_max"]


def sign_flip(steps: pl.DataFrame, color: str = BY_RUN) -> Figure:
    """Share of gradient entries whose sign flips between adjacent steps, per epoch: each run's mean over the epoch's
    steps, with its min–max over them where epochs have more than one step (in full batch an epoch is one step, and
    the line is that step's value). It needs no reference point: every epoch is drawn, the last one too."""
    columns = unique_columns(
        [*RUN_KEYS, "experiment", "budget", "epoch", "step", "schedule", color, "seed", "width", "model", "sign_flip"]
    )
    require_columns(steps, "steps", [c for c in columns if c != "experiment"])
    per_epoch = epoch_statistics(one_reference(steps.select([c for c in columns if c in steps.columns])), ["sign_flip"])
    data = with_series(with_epoch_number(per_epoch)).with_columns(pl.col(STATS) * 100)
    drawn = lines(data, color)
    banded = bool((data.get_column("steps") > 1).any())
    band = Band(
        "sign_flip",
        STATS[0],
        *(STATS[1:] if banded else (None, None)),
        "gradient entries flipping sign (%)",
        alt.Scale(domain=[0, 100], nice=False),
        "share flipping (%)",
    )
    chart = band_grid(
        drawn,
        [band],
        epoch_domain(data),
        key=STEPS_BAND if banded else None,
        also=lambda band, where, x, first: [rule_at(RANDOM_SIGN_FLIPS)],
    )
    what = (
        "each run's mean over the epoch's steps (line), their min–max (band)"
        if banded
        else ("one step per epoch (full batch): each epoch's value")
    )
    by = "run" if color == BY_RUN else factor_title(color, constant_lr(steps))
    return finish(
        chart,
        f"Sign flips of gradient entries between adjacent steps, by {by}",
        [
            f"share of entries of G with opposite sign at steps t − 1 and t: {what}",
            f"dashed line: {RANDOM_SIGN_FLIPS:.0f} %, what independent gradients would give",
            *thinning_note(per_epoch),
        ],
    )


def caption(color: str = BY_RUN) -> str:
    by = "run" if color == BY_RUN else factor_title(color)
    return (
        f"Per epoch, by {by}: the percentage of gradient entries whose sign differs between adjacent steps t − 1 and "
        f"t (an entry that is 0 at either step counts as no flip), each run's mean over the epoch's steps with a band "
        f"of {STEPS_BAND} where an epoch has several. It needs no reference point, so every epoch is drawn. The dashed "
        "line at 50 % is what independent gradients would give; a zigzag geometry flips most entries."
    )


PLOT = Plot("sign_flip", sign_flip, "steps", {"color": COLOR}, caption=caption, needs_w_star=False)
