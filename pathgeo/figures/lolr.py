"""The locally optimal learning rate against the learning rate used: Figure 3 of the paper."""

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
    factor_color,
    factor_title,
    finish,
    inline_values,
    positive_filter,
    require_columns,
    unique_columns,
    with_series,
)


def lolr(epochs: pl.DataFrame, color: str) -> Figure:
    """Locally optimal learning rate per epoch against the learning rate used.

    Mean η* = RSI/EB² with its interquartile band over the epoch's steps, and the
    run's mean learning rate as a dashed line of the same colour.  Paper Figure 3.
    """
    columns = unique_columns([*RUN_KEYS, "epoch", color, "lolr_mean", "lolr_q25", "lolr_q75", "lr_mean"])
    require_columns(epochs, "epochs", columns)
    data, color_encoding = factor_color(with_series(epochs.select(columns)), color)
    scale = alt.Scale(type="log")
    y_title = "learning rate (log)"
    x = alt.X("epoch:Q", title="epoch")
    dash = alt.StrokeDash(
        "quantity:N",
        title="line",
        scale=alt.Scale(domain=["loLR η* = RSI / EB²", "LR used"], range=[[1, 0], [6, 4]]),
        legend=alt.Legend(symbolType="stroke", symbolSize=500, symbolStrokeWidth=2),
    )
    tooltip = [
        alt.Tooltip("label:N", title="run"),
        alt.Tooltip("epoch:Q", title="epoch"),
        alt.Tooltip("lolr_mean:Q", title="mean η*", format=".3g"),
        alt.Tooltip("lr_mean:Q", title="LR used", format=".3g"),
    ]
    band = (
        alt.Chart()
        .transform_filter(positive_filter("lolr_q25", "lolr_q75"))
        .mark_area(opacity=BAND_OPACITY)
        .encode(
            x=x,
            y=alt.Y("lolr_q25:Q", title=y_title, scale=scale),
            y2="lolr_q75:Q",
            color=color_encoding,
            detail=alt.Detail(f"{SERIES}:N"),
        )
    )
    def line(field: str, quantity: str, stroke_width: float) -> alt.Chart:
        return (
            alt.Chart()
            .transform_filter(positive_filter(field))
            .transform_calculate(quantity=f"'{quantity}'")
            .mark_line(strokeWidth=stroke_width)
            .encode(
                x=x,
                y=alt.Y(f"{field}:Q", title=y_title, scale=scale),
                color=color_encoding,
                strokeDash=dash,
                detail=alt.Detail(f"{SERIES}:N"),
                tooltip=tooltip,
            )
        )

    optimal = line("lolr_mean", "loLR η* = RSI / EB²", 1.8)
    used = line("lr_mean", "LR used", 1.4)
    chart = alt.layer(band, optimal, used, data=inline_values(data)).properties(
        width=PANEL_WIDTH, height=PANEL_HEIGHT + 40
    )
    return finish(
        chart,
        f"Locally optimal learning rate vs the learning rate used, by {factor_title(color)}",
        [
            "η* minimizes ‖w − ηG − w*‖; mean (solid) with interquartile band over the epoch's steps",
            "log scale: epochs where η* ≤ 0 (G pointing away from w*) are not drawn",
        ],
    )


PLOT = Plot("lolr", lolr, "epochs", {"color": COLOR})
