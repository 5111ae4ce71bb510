"""γ (or another cosine) along the path with its per-epoch band: Figures 1, 4, 6 and 16 of the paper."""

from __future__ import annotations

import altair as alt
import polars as pl

from pathgeo.figures import COLOR, FACET, METRIC, Plot
from pathgeo.figures.style import (
    FACET_WIDTH,
    PANEL_HEIGHT,
    PANEL_WIDTH,
    RUN_KEYS,
    Figure,
    band_and_mean,
    factor_color,
    factor_levels,
    factor_title,
    finish,
    inline_values,
    metric_symbol,
    metric_title,
    require_columns,
    unique_columns,
    with_series,
    zero_rule,
)


def gamma_band(
    epochs: pl.DataFrame, color: str, facet: str | None = None, metric: str = "gamma"
) -> Figure:
    """Per-epoch mean of `metric` with its min–max band, coloured by a run factor.

    One line per (run, reference point); `facet` splits the runs into columns.
    Paper Figures 1, 4, 6 and 16 (γ by optimizer, batch size, architecture, seed,
    epoch budget).
    """
    mean, low, high = f"{metric}_mean", f"{metric}_min", f"{metric}_max"
    columns = unique_columns([*RUN_KEYS, "epoch", color, facet, mean, low, high])
    require_columns(epochs, "epochs", columns)
    data = with_series(epochs.select(columns))
    facet_levels = factor_levels(data, facet) if facet is not None else []
    data, color_encoding = factor_color(data, color)
    layers = [zero_rule(), *band_and_mean(metric, low, high, color_encoding, metric_title(metric))]
    title = f"{metric_symbol(metric)} along the optimization path, by {factor_title(color)}"
    if facet is None:
        chart: Figure = alt.layer(*layers, data=inline_values(data)).properties(
            width=PANEL_WIDTH, height=PANEL_HEIGHT
        )
    else:
        data = data.with_columns(pl.col(facet).cast(pl.String))
        chart = (
            alt.layer(*layers)
            .properties(width=FACET_WIDTH, height=PANEL_HEIGHT)
            .facet(
                column=alt.Column(f"{facet}:N", title=factor_title(facet), sort=facet_levels),
                data=inline_values(data),
            )
        )
    return finish(
        chart, title, "per-epoch mean (line) and min–max over the epoch's steps (band)"
    )


PLOT = Plot("gamma_band", gamma_band, "epochs", {"color": COLOR, "facet": FACET, "metric": METRIC})
