"""RSI and γ per step on the synthetic objectives (ALM, SM): Figure 5 of the paper."""

from __future__ import annotations

import altair as alt
import polars as pl

from pathgeo.figures import Plot
from pathgeo.figures.style import (
    RUN_KEYS,
    SERIES,
    Figure,
    factor_levels,
    finish,
    inline_values,
    require_columns,
    run_color,
    with_series,
    zero_rule,
)


def synthetic(steps: pl.DataFrame) -> Figure:
    """Per-step RSI and γ on the synthetic objectives (ALM, SM).  Paper Figure 5.

    One column per objective (`dataset`), rows RSI and γ, each panel on its own
    scales, with a zero line so that negative values stand out.
    """
    metrics = {"rsi": "RSI", "gamma": "γ"}
    require_columns(steps, "steps", [*RUN_KEYS, "dataset", "step", *metrics])
    data, color = run_color(with_series(steps.select([*RUN_KEYS, "dataset", "step", *metrics])))
    long = data.unpivot(
        index=[*RUN_KEYS, "run", SERIES, "dataset", "step"],
        on=list(metrics),
        variable_name="quantity",
        value_name="value",
    ).with_columns(pl.col("quantity").replace_strict(metrics))
    line = alt.Chart().mark_line(strokeWidth=1.2).encode(
        x=alt.X("step:Q", title="step"),
        y=alt.Y("value:Q", title=None, scale=alt.Scale(zero=False)),
        color=color,
        detail=alt.Detail(f"{SERIES}:N"),
        tooltip=[
            alt.Tooltip("run:N", title="run"),
            alt.Tooltip("step:Q", title="step"),
            alt.Tooltip("quantity:N", title="quantity"),
            alt.Tooltip("value:Q", title="value", format=".4g"),
        ],
    )
    objectives = factor_levels(data, "dataset")
    chart = (
        alt.layer(zero_rule(), line)
        .properties(width=300, height=180)
        .facet(
            row=alt.Row(
                "quantity:N",
                title=None,
                sort=list(metrics.values()),
                header=alt.Header(labelAngle=0, labelFontSize=16, labelAlign="right"),
            ),
            column=alt.Column("dataset:N", title="objective", sort=objectives),
            data=inline_values(long),
        )
        .resolve_scale(x="independent", y="independent")
    )
    return finish(
        chart,
        "RSI and γ on synthetic objectives",
        [
            "RSI = G·(w − w*) / ‖w − w*‖², γ = cos(G, w − w*), per step; dashed line at 0",
            "negative values: the step moves away from the final iterate w*",
        ],
    )


PLOT = Plot("synthetic", synthetic, "steps")
