"""The distance to the reference point per epoch: Figures 12 and 13 of the paper."""

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
    positive_filter,
    require_columns,
    unique_columns,
    with_series,
)


def distance(epochs: pl.DataFrame, color: str) -> Figure:
    """Mean distance ‖w_t − w*‖ to the reference point per epoch.  Paper Figures 12/13."""
    columns = unique_columns([*RUN_KEYS, "epoch", color, "dist_mean"])
    require_columns(epochs, "epochs", columns)
    data, color_encoding = factor_color(with_series(epochs.select(columns)), color)
    chart = (
        alt.Chart(inline_values(data))
        .transform_filter(positive_filter("dist_mean"))
        .mark_line(strokeWidth=1.8, point=alt.OverlayMarkDef(size=18))
        .encode(
            x=alt.X("epoch:Q", title="epoch"),
            y=alt.Y("dist_mean:Q", title="‖w − w*‖ (L2, log)", scale=alt.Scale(type="log")),
            color=color_encoding,
            detail=alt.Detail(f"{SERIES}:N"),
            tooltip=[
                alt.Tooltip("label:N", title="run"),
                alt.Tooltip("reference:N", title="reference"),
                alt.Tooltip("epoch:Q", title="epoch"),
                alt.Tooltip("dist_mean:Q", title="mean distance", format=".4g"),
            ],
        )
        .properties(width=PANEL_WIDTH, height=PANEL_HEIGHT)
    )
    return finish(
        chart,
        f"Distance to the reference point, by {factor_title(color)}",
        "per-epoch mean over the epoch's steps of the distance from the iterate w to w*",
    )


PLOT = Plot("distance", distance, "epochs", {"color": COLOR})
