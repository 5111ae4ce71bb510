"""Warm-up switch points, training loss and learning rate per step: the second paper's Figure 10."""

from __future__ import annotations

import altair as alt
import polars as pl

from pathgeo.figures import COLOR, Plot
from pathgeo.figures.style import (
    PANEL_HEIGHT,
    PANEL_WIDTH,
    RUN_KEYS,
    SERIES,
    Figure,
    factor_color,
    factor_title,
    finish,
    inline_values,
    one_reference,
    positive_filter,
    require_columns,
    unique_columns,
    with_series,
)


def warmup(steps: pl.DataFrame, color: str = "label") -> Figure:
    """Training loss and learning rate per step, with each run's warm-up switch point.

    The switch point is the step of the run's largest learning rate: where the
    warm-up ends, whether fixed in advance or found by GAWU.  Runs whose learning
    rate never changes have none.  Second paper, Figure 10.
    """
    columns = unique_columns([*RUN_KEYS, "budget", "epoch", "step", color, "loss", "lr"])
    require_columns(steps, "steps", columns)
    data, color_encoding = factor_color(with_series(one_reference(steps.select(columns))), color)
    largest = pl.col("lr").max().over(SERIES)
    switches = (
        data.filter((pl.col("lr") == largest) & (largest > pl.col("lr").min().over(SERIES)))
        .sort("step")
        .group_by(SERIES, maintain_order=True)
        .first()
    )
    x = alt.X("step:Q", title="optimizer step")
    lr_y = alt.Y("lr:Q", title="learning rate (log)", scale=alt.Scale(type="log"))
    tooltip = [
        alt.Tooltip("label:N", title="run"),
        alt.Tooltip("step:Q", title="step"),
        alt.Tooltip("epoch:Q", title="epoch"),
        alt.Tooltip("loss:Q", title="loss", format=".4g"),
        alt.Tooltip("lr:Q", title="learning rate", format=".3g"),
    ]

    def line(field: str, y: alt.Y) -> alt.Chart:
        return (
            alt.Chart()
            .transform_filter(positive_filter(field))
            .mark_line(strokeWidth=1.2)
            .encode(x=x, y=y, color=color_encoding, detail=alt.Detail(f"{SERIES}:N"), tooltip=tooltip)
        )

    switch_tooltip = [
        alt.Tooltip("label:N", title="run"),
        alt.Tooltip("step:Q", title="switch step"),
        alt.Tooltip("epoch:Q", title="epoch"),
        alt.Tooltip("lr:Q", title="largest learning rate", format=".3g"),
    ]
    switch_rule = (
        alt.Chart(inline_values(switches))
        .mark_rule(strokeDash=[4, 3], strokeWidth=1, opacity=0.7)
        .encode(x=x, color=color_encoding, tooltip=switch_tooltip)
    )
    switch_point = (
        alt.Chart(inline_values(switches))
        .mark_point(filled=True, size=70, opacity=1, stroke="white", strokeWidth=1)
        .encode(x=x, y=lr_y, color=color_encoding, tooltip=switch_tooltip)
    )
    loss = line("loss", alt.Y("loss:Q", title="training loss (log)", scale=alt.Scale(type="log")))
    chart = alt.hconcat(
        loss.properties(width=PANEL_WIDTH, height=PANEL_HEIGHT),
        alt.layer(line("lr", lr_y), switch_rule, switch_point).properties(width=PANEL_WIDTH, height=PANEL_HEIGHT),
        data=inline_values(data),
    ).resolve_scale(color="shared")
    return finish(
        chart,
        f"Warm-up switch points: training loss and learning rate, by {factor_title(color)}",
        [
            "per step: training loss (left) and learning rate (right), both on log scales",
            "dot and dashed line: the run's switch point, the step of its largest learning rate (end of warm-up)",
            "gawu finds its switch point from the gradients; its warmup_epochs is only the latest one allowed",
        ],
    )


PLOT = Plot("warmup", warmup, "steps", {"color": COLOR}, needs_w_star=False)
