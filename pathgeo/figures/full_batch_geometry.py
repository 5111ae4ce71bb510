"""The geometry of the full-batch gradient at the end of every N-th epoch (pathgeo.point_geometry), one of the first
paper's two other measurements; its panels serve fixed_batch_spread too."""

from __future__ import annotations

from collections.abc import Callable

import altair as alt
import polars as pl

from pathgeo.figures import COLOR, Plot
from pathgeo.figures.style import (
    PANEL_WIDTH,
    RUN_KEYS,
    SERIES,
    Figure,
    epoch_x,
    factor_color,
    factor_title,
    finish,
    hover_line,
    inline_values,
    log_axis,
    log_scale,
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


def point_y(metric: str, log: bool, field: str, scale: alt.Scale) -> alt.Y:
    title = metric_title(metric) + (" (log)" if log else "")
    return alt.Y(f"{field}:Q", scale=scale, axis=log_axis(title)) if log else alt.Y(f"{field}:Q", title=title, scale=scale)


def point_scale(data: pl.DataFrame, log: bool, fitted_to: list[str]) -> alt.Scale:
    """A log scale fitted to the data (EB), or a linear one not forced through 0."""
    return log_scale(data, fitted_to) if log else alt.Scale(zero=False)


def point_lines(
    metric: str, log: bool, x: alt.X, color: alt.Color, field: str, also: list[str], scale: alt.Scale
) -> list[alt.Chart]:
    """A line of `field` with the hover points that name the datum; the tooltip adds the `also` columns."""
    base = alt.Chart().transform_filter(positive_filter(field)) if log else alt.Chart()
    tooltip = [
        alt.Tooltip("label:N", title="run"),
        alt.Tooltip("reference:N", title="reference"),
        alt.Tooltip(f"{x.shorthand.split(':')[0]}:Q"),
        *(alt.Tooltip(f"{column}:Q", format=".4g") for column in [field, *also]),
    ]
    return hover_line(base, x, point_y(metric, log, field, scale), color, tooltip)


def point_panels(
    data: pl.DataFrame, layers_of: Callable[[str, bool, alt.X], list[alt.Chart]], x_of: Callable[[str | None], alt.X],
    x_title: str,
) -> alt.VConcatChart:
    """One panel per metric of PANELS, the x axis titled on the bottom one only."""
    charts = []
    for position, (metric, log) in enumerate(PANELS):
        layers = layers_of(metric, log, x_of(x_title if position == len(PANELS) - 1 else None))
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

    def layers(metric: str, log: bool, x: alt.X) -> list[alt.Chart]:
        decayed = f"{metric}_wd"
        scale = point_scale(data, log, [metric, decayed])
        dashed = (alt.Chart().transform_filter(positive_filter(decayed)) if log else alt.Chart()).mark_line(
            strokeWidth=1.6, strokeDash=[5, 3]
        ).encode(x=x, y=point_y(metric, log, decayed, scale), color=color_encoding, detail=alt.Detail(f"{SERIES}:N"))
        return [dashed, *point_lines(metric, log, x, color_encoding, metric, [decayed], scale)]

    return finish(
        point_panels(data, layers, lambda title: epoch_x("epoch", title), "epoch (full-batch gradient at its end)"),
        f"Geometry of the full-batch gradient along the minibatch path, by {factor_title(color)}",
        ["the gradient of the mean loss over the whole training set, at the weights each measured epoch ends with",
         "solid: G; dashed: G + λw (with the weight-decay term); EB on a log scale"],
    )


def caption(color: str = "label") -> str:
    return (
        f"By {factor_title(color)}, one line per run and reference point: γ, RSI and EB (log scale) of the full-batch "
        "gradient, the gradient of the mean loss over the whole training set, at the weights each measured epoch ends "
        "with, along the minibatch trajectory; dashed, the same with the weight-decay term (G + λw). The first paper's "
        "code measures it (get_fullbatch_gradient); its figures show the minibatch gradients, which this sets beside."
    )


PLOT = Plot("full_batch_geometry", full_batch_geometry, "full_batch", {"color": COLOR}, caption=caption)
