"""The locally optimal learning rate against the step actually taken: Figure 3 of the paper."""

from __future__ import annotations

import altair as alt
import polars as pl

from pathgeo.figures import COLOR, Plot
from pathgeo.figures.style import (
    BAND_OPACITY,
    PANEL_HEIGHT,
    PANEL_WIDTH,
    RUN_KEYS,
    SERIES,
    Figure,
    distinct_runs,
    epoch_x,
    factor_color,
    factor_title,
    finish,
    hover_line,
    inline_values,
    log_axis,
    log_scale,
    positive_filter,
    require_columns,
    unique_columns,
    width_note,
    with_series,
)

OPTIMAL = "η* = RSI / EB² (mean, interquartile band)"
TAKEN = "step taken: lr / (1 − β) under momentum β, lr without"


def lolr(epochs: pl.DataFrame, color: str) -> Figure:
    """Locally optimal learning rate per epoch against the step size actually taken.

    Mean η* = RSI/EB² with its interquartile band over the epoch's steps, and, dashed in the same colour, the
    run's mean LR times its optimizer's step scale (`step_scale`: 1/(1 − β) under heavy-ball momentum, so that a
    momentum run at lr 0.01 compares at 0.1). Runs whose optimizer has no single step scale (Adam) get no dashed
    line. The log axis is fitted to both.  Paper Figure 3.
    """
    columns = unique_columns([*RUN_KEYS, "epoch", color, "lolr_mean", "lolr_q25", "lolr_q75", "lr_mean", "step_scale"])
    require_columns(epochs, "epochs", columns)
    data = distinct_runs(with_series(epochs.select(columns))).with_columns(
        (pl.col("lr_mean") * pl.col("step_scale")).alias("step_lr")
    )
    data, color_encoding = factor_color(data, color)
    scale = log_scale(data, ["lolr_mean", "lolr_q25", "lolr_q75", "step_lr"])
    axis = log_axis("learning rate (log)")
    x = epoch_x()
    dash = alt.StrokeDash(
        "quantity:N",
        title="line",
        scale=alt.Scale(domain=[OPTIMAL, TAKEN], range=[[1, 0], [6, 4]]),
        legend=alt.Legend(symbolType="stroke", symbolSize=500, symbolStrokeWidth=2, labelLimit=0),
    )
    tooltip = [
        alt.Tooltip("run:N", title="run"),
        alt.Tooltip("epoch:Q", title="epoch"),
        alt.Tooltip("lolr_mean:Q", title="mean η*", format=".3g"),
        alt.Tooltip("lolr_q25:Q", title="η* 25th percentile", format=".3g"),
        alt.Tooltip("lolr_q75:Q", title="η* 75th percentile", format=".3g"),
        alt.Tooltip("lr_mean:Q", title="lr", format=".3g"),
        alt.Tooltip("step_lr:Q", title="step taken, lr × step scale", format=".3g"),
    ]
    band = (
        alt.Chart()
        .transform_filter(positive_filter("lolr_q25", "lolr_q75"))
        .mark_area(opacity=BAND_OPACITY)
        .encode(
            x=x,
            y=alt.Y("lolr_q25:Q", scale=scale, axis=axis),
            y2="lolr_q75:Q",
            color=color_encoding,
            detail=alt.Detail(f"{SERIES}:N"),
        )
    )
    optimal = hover_line(
        alt.Chart().transform_filter(positive_filter("lolr_mean")).transform_calculate(quantity=f"'{OPTIMAL}'"),
        x,
        alt.Y("lolr_mean:Q", scale=scale, axis=axis),
        color_encoding,
        tooltip,
        stroke_dash=dash,
    )
    taken = (
        alt.Chart()
        .transform_filter(positive_filter("step_lr"))
        .transform_calculate(quantity=f"'{TAKEN}'")
        .mark_line(strokeWidth=1.4)
        .encode(
            x=x,
            y=alt.Y("step_lr:Q", scale=scale, axis=axis),
            color=color_encoding,
            strokeDash=dash,
            detail=alt.Detail(f"{SERIES}:N"),
        )
    )
    chart = alt.layer(band, taken, *optimal, data=inline_values(data)).properties(
        width=PANEL_WIDTH, height=PANEL_HEIGHT + 40
    )
    subtitle = [
        "η* minimizes ‖w − ηG − w*‖: the step along −G that would land closest to w*",
        "log scale: epochs where η* ≤ 0 (G pointing away from w*) are not drawn",
    ]
    without = data.filter(pl.col("step_scale").is_null()).get_column("run").unique().sort().to_list()
    if without:
        subtitle.append(
            f"no dashed line for {', '.join(without)}: its step has no single scale (Adam's is per coordinate)"
        )
    return finish(
        chart,
        f"Locally optimal learning rate vs the step taken, by {factor_title(color)}",
        subtitle + width_note(epochs),
    )


def caption(color: str) -> str:
    return (
        f"The locally optimal learning rate η* = RSI / EB², the step size along −G that would bring w closest to w*, "
        f"per epoch by {factor_title(color)}: the mean over the epoch's steps with its interquartile band, on a log "
        "scale (epochs with η* ≤ 0 are not drawn). Dashed in the same colour: the step actually taken, the learning "
        "rate times 1/(1 − β) under heavy-ball momentum β (0.1 for lr 0.01 at β = 0.9), the learning rate itself "
        "under plain SGD; Adam's step has no single scale and gets no dashed line."
    )


PLOT = Plot("lolr", lolr, "epochs", {"color": COLOR}, caption=caption)
