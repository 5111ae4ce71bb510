"""RSI, EB and γ per epoch, stacked: Figure 2 of the paper."""

from __future__ import annotations

import altair as alt
import polars as pl

from pathgeo.figures import Plot
from pathgeo.figures.style import (
    PANEL_WIDTH,
    RUN_KEYS,
    Figure,
    band_and_mean,
    finish,
    inline_values,
    metric_title,
    require_columns,
    run_color,
    with_series,
    zero_rule,
)


def rsi_eb_gamma(epochs: pl.DataFrame) -> Figure:
    """RSI, EB and γ per epoch (mean with min–max band), stacked.  Paper Figure 2."""
    panels = [("rsi", False), ("eb", True), ("gamma", False)]
    stats = [f"{metric}_{stat}" for metric, _ in panels for stat in ("mean", "min", "max")]
    require_columns(epochs, "epochs", [*RUN_KEYS, "epoch", *stats])
    data, color = run_color(with_series(epochs.select([*RUN_KEYS, "epoch", *stats])))
    charts = []
    for position, (metric, log) in enumerate(panels):
        bottom = position == len(panels) - 1
        # Only the bottom panel carries the epoch axis title; the x scale is shared.
        x_axis = alt.Axis() if bottom else alt.Axis(title=None)
        layers = band_and_mean(
            metric,
            f"{metric}_min",
            f"{metric}_max",
            color,
            metric_title(metric) + (" (log)" if log else ""),
            log=log,
            x_axis=x_axis,
        )
        if not log:
            layers.insert(0, zero_rule())
        charts.append(alt.layer(*layers).properties(width=PANEL_WIDTH, height=170))
    chart = (
        alt.vconcat(*charts, data=inline_values(data), spacing=12)
        .resolve_scale(x="shared", y="independent", color="shared")
    )
    return finish(
        chart,
        "RSI, EB and γ along the optimization path",
        "per-epoch mean (line) and min–max over the epoch's steps (band); EB on a log scale",
    )


PLOT = Plot("rsi_eb_gamma", rsi_eb_gamma, "epochs")
