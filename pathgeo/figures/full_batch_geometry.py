"""The geometry of the full-batch gradient at the end of every N-th epoch (pathgeo.point_geometry), one of the first
paper's two other measurements; its panels serve fixed_batch_spread too."""

from __future__ import annotations

import altair as alt
import polars as pl

from pathgeo.figures import COLOR, Plot
from pathgeo.figures.style import (
    PANEL_WIDTH,
    RUN_KEYS,
    SERIES,
    Figure,
    factor_color,
    factor_title,
    finish,
    inline_values,
    metric_title,
    positive_filter,
    require_columns,
    unique_columns,
    with_series,
    zero_rule,
)

# (metric, on a log scale) per panel, top to bottom.
PANELS = [("gamma", False), ("rsi", False), ("eb", True)]
PANEL_HEIGHT = 150


def point_axes(metric: str, log: bool, x: tuple[str, str | None]) -> tuple[alt.X, str, alt.Scale]:
    """The x encoding ((field, title); a None title for all panels but the bottom one), y title and scale."""
    scale = alt.Scale(type="log") if log else alt.Scale(zero=False)
    return alt.X(f"{x[0]}:Q", title=x[1]), metric_title(metric) + (" (log)" if log else ""), scale


def point_line(metric: str, log: bool, x: tuple[str, str | None], color: alt.Color, y_field: str, dashed: bool = False) -> alt.Chart:
    """A line with a point at each measurement of `y_field`; the points carry the tooltips."""
    x_encoding, y_title, scale = point_axes(metric, log, x)
    chart = (
        alt.Chart()
        .mark_line(strokeWidth=1.6, point=alt.OverlayMarkDef(size=18), strokeDash=[5, 3] if dashed else [1, 0])
        .encode(
            x=x_encoding,
            y=alt.Y(f"{y_field}:Q", title=y_title, scale=scale),
            color=color,
            detail=alt.Detail(f"{SERIES}:N"),
            tooltip=[
                alt.Tooltip("label:N", title="run"),
                alt.Tooltip("reference:N", title="reference"),
                alt.Tooltip(f"{x[0]}:Q", title=x[0]),
                alt.Tooltip(f"{y_field}:Q", title=y_field, format=".4g"),
            ],
        )
    )
    return chart.transform_filter(positive_filter(y_field)) if log else chart


def point_panels(data: pl.DataFrame, layers_of, x_field: str, x_title: str) -> alt.VConcatChart:
    charts = []
    for position, (metric, log) in enumerate(PANELS):
        x = (x_field, x_title if position == len(PANELS) - 1 else None)
        layers = layers_of(metric, log, x)
        if not log:
            layers.insert(0, zero_rule())
        charts.append(alt.layer(*layers).properties(width=PANEL_WIDTH, height=PANEL_HEIGHT))
    return alt.vconcat(*charts, data=inline_values(data), spacing=12).resolve_scale(
        x="shared", y="independent", color="shared"
    )


def full_batch_geometry(full_batch: pl.DataFrame, color: str = "label") -> Figure:
    """γ, RSI and EB of the full-batch gradient at the end of each measured epoch, one line per run and
    reference point; dashed, the same with the weight-decay term (G + λw). The first paper's code
    (`get_fullbatch_gradient`), along the minibatch trajectory."""
    fields = [f"{m}{suffix}" for m, _ in PANELS for suffix in ("", "_wd")]
    columns = unique_columns([*RUN_KEYS, "budget", "epoch", color, *fields])
    require_columns(full_batch, "full_batch", columns)
    data, color_encoding = factor_color(with_series(full_batch.select(columns)), color)

    def layers(metric, log, x):
        return [point_line(metric, log, x, color_encoding, metric), point_line(metric, log, x, color_encoding, f"{metric}_wd", dashed=True)]

    return finish(
        point_panels(data, layers, "epoch", "epoch (full-batch gradient at its end)"),
        f"Geometry of the full-batch gradient along the minibatch path, by {factor_title(color)}",
        ["the gradient of the mean loss over the whole training set, at the weights each measured epoch ends with",
         "solid: G; dashed: G + λw (with the weight-decay term); EB on a log scale"],
    )


PLOT = Plot("full_batch_geometry", full_batch_geometry, "full_batch", {"color": COLOR})
