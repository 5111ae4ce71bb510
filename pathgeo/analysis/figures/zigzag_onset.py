"""The learning-rate scaling of the zigzag onset: the first step where μ(t) turns negative against the learning rate,
on log–log axes, with the fitted exponent (the second paper's fractal structure: zigzag at every scale)."""

from __future__ import annotations

import math

import altair as alt
import polars as pl

from pathgeo.analysis.figures import COLOR, Plot
from pathgeo.analysis.figures.style import (
    COLOR_LEVEL,
    FULL_WIDTH,
    PANEL_HEIGHT,
    Figure,
    Tip,
    finish,
    lines,
    log_axis,
    log_scale,
    series_tips,
    tooltip,
)
from pathgeo.analysis.figures.tables import EPOCH, RUN, inline_values, require_columns
from pathgeo.analysis.figures.words import count_words, value_words

ONSET = "onset_step_number"
FIT = "fit"


def fitted_exponent(lrs: list[float], onsets: list[float]) -> tuple[float, float] | None:
    """The least-squares line log10(onset) = a + b log10(lr) over these runs: (b, a); None under two distinct LRs."""
    if len(set(lrs)) < 2:
        return None
    xs, ys = [math.log10(v) for v in lrs], [math.log10(v) for v in onsets]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    return slope, my - slope * mx


def zigzag_onset(zigzag: pl.DataFrame, train: pl.DataFrame, color: str = "model") -> Figure:
    """One point per run of the experiment that turns zigzag: its onset step (counted from 1) against its learning
    rate, both on log axes, and per colour level the fitted line onset ~ η^b with its slope b in the subtitle."""
    require_columns(zigzag, "zigzag", ["run_id", "label", "peak_lr", "zigzag_onset_step", "verdict"])
    drawn = zigzag.filter(pl.col("run_id").is_in(train.get_column("run_id").unique().implode()))
    never = drawn.filter(pl.col("zigzag_onset_step").is_null())
    runs = lines(drawn.filter(pl.col("zigzag_onset_step").is_not_null()), color)
    points = runs.data.with_columns(
        (pl.col("zigzag_onset_step") + 1).cast(pl.Float64).alias(ONSET), (pl.col("zigzag_onset_epoch") + 1).alias(EPOCH)
    )
    fits, keys = [], []
    for level in runs.levels:
        rows = points.filter(pl.col(COLOR_LEVEL) == level)
        found = fitted_exponent(rows.get_column("peak_lr").to_list(), rows.get_column(ONSET).to_list())
        if found is None:
            continue
        slope, intercept = found
        key = f"{level}: slope {slope:.2f}" if len(runs.levels) > 1 else f"slope {slope:.2f}"
        keys.append(key)
        for lr in (rows.get_column("peak_lr").min(), rows.get_column("peak_lr").max()):
            fits.append(
                {"peak_lr": lr, ONSET: 10 ** (intercept + slope * math.log10(lr)), COLOR_LEVEL: level, FIT: key}
            )
    x = alt.X("peak_lr:Q", scale=log_scale(points, ["peak_lr"], pad=1.3), axis=log_axis("learning rate η (log)"))
    y = alt.Y(
        f"{ONSET}:Q", scale=log_scale(points, [ONSET], pad=1.5), axis=log_axis("first step with μ(t) < 0, from 1 (log)")
    )
    tips, calculate = tooltip(
        [
            *series_tips(runs),
            Tip("peak_lr", "learning rate", ".3g"),
            Tip(ONSET, "zigzag from step", ".0f"),
            Tip(EPOCH, "in epoch", ".0f"),
            Tip("min_mean_corr", "smallest μ(t)", ".3f"),
            Tip("verdict", "geometry"),
        ]
    )
    marks = (
        alt.Chart(inline_values(points.select(RUN, COLOR_LEVEL, "peak_lr", ONSET, EPOCH, "min_mean_corr", "verdict")))
        .transform_calculate(**calculate)
        .mark_point(filled=True, size=70, opacity=0.9)
        .encode(x=x, y=y, color=runs.color, tooltip=tips)
    )
    layers = [marks]
    if fits:
        layers.insert(
            0,
            alt.Chart(inline_values(pl.DataFrame(fits)))
            .mark_line(strokeDash=[5, 3], strokeWidth=1.5)
            .encode(x=x, y=y, color=runs.color.legend(None), detail=f"{FIT}:N"),
        )
    chart = alt.layer(*layers).properties(width=FULL_WIDTH, height=PANEL_HEIGHT + 40)
    unfitted = "none: one LR" if points.height else "none: no run turns zigzag"
    subtitle = [
        "each point a run: the first step where the mean correlation of adjacent gradients, μ(t), turns negative",
        "dashed: the least-squares line in log–log, onset ~ η^b, " + ("; ".join(keys) if keys else unfitted),
    ]
    if not never.is_empty():
        lrs = ", ".join(value_words("peak_lr", lr) for lr in sorted(never.get_column("peak_lr").to_list()))
        subtitle.append(f"{count_words(never.height, 'run')} not zigzag by its last step, at η = {lrs}")
    return finish(chart, "The zigzag onset against the learning rate", subtitle)


PLOT = Plot(
    "zigzag_onset",
    zigzag_onset,
    "zigzag",
    options={"color": COLOR},
    also=("train",),
    needs_w_star=False,
    caption=(
        "The second paper's fractal structure of the zigzag geometry, as one number per run: the first step where the "
        "mean gradient correlation μ(t) turns negative (the zigzag onset of the run's findings table), against its "
        "learning rate, on log–log axes. A dashed line is the least-squares fit of log onset on log η over a colour's "
        "runs; its slope, in the subtitle, is how the onset scales with the step size (a step size k times smaller "
        "turns zigzag after k^b times as many steps). Runs that never turn are named in the subtitle."
    ),
)
