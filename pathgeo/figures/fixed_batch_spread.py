"""How the geometry spreads over K fixed minibatches at every N-th step (pathgeo.point_geometry), the first paper's
other point measurement."""

from __future__ import annotations

import altair as alt
import polars as pl

from pathgeo.figures import COLOR, Plot
from pathgeo.figures.full_batch_geometry import PANELS, point_lines, point_panels, point_scale, point_y
from pathgeo.figures.style import (
    BAND_OPACITY,
    RUN_KEYS,
    SERIES,
    Figure,
    band_log_scale,
    factor_color,
    factor_title,
    finish,
    positive_filter,
    require_columns,
    step_x,
    unique_columns,
    with_series,
)


def fixed_batch_spread(fixed_batches: pl.DataFrame, color: str = "label") -> Figure:
    """How γ, RSI and EB spread over K fixed minibatches at one point: at each measured step, the mean over
    the batches (line) and their min–max (band), one line per run and reference point. The first paper's code
    (`get_batch_list_grads`)."""
    fields = [f"{m}_{stat}" for m, _ in PANELS for stat in ("mean", "min", "max")]
    columns = unique_columns([*RUN_KEYS, "budget", "step", "batches", color, *fields])
    require_columns(fixed_batches, "fixed_batches", columns)
    data, color_encoding = factor_color(with_series(fixed_batches.select(columns)), color)

    def layers(metric: str, log: bool, x: alt.X) -> list[alt.Chart]:
        mean, low, high = f"{metric}_mean", f"{metric}_min", f"{metric}_max"
        scale = band_log_scale(data, mean, low, high) if log else point_scale(data, log, [])
        band = (alt.Chart().transform_filter(positive_filter(low, high)) if log else alt.Chart()).mark_area(
            opacity=BAND_OPACITY
        ).encode(
            x=x, y=point_y(metric, log, low, scale), y2=alt.Y2(f"{high}:Q"), color=color_encoding,
            detail=alt.Detail(f"{SERIES}:N"),
        )
        return [band, *point_lines(metric, log, x, color_encoding, mean, [low, high], scale)]

    batches = sorted(set(fixed_batches.get_column("batches").to_list()))
    return finish(
        point_panels(data, layers, step_x, "optimizer step (all batches at that step's weights)"),
        f"Spread of the geometry over fixed minibatches at one point, by {factor_title(color)}",
        [f"at each measured step: the gradients of the same {', '.join(map(str, batches))} fixed minibatches at that "
         "step's weights", "line: their mean; band: min–max over the batches; EB on a log scale"],
    )


def caption(color: str = "label") -> str:
    return (
        f"By {factor_title(color)}, one line per run and reference point: at each measured step, γ, RSI and EB (log "
        "scale) of the gradients of the same K fixed minibatches at that step's weights, their mean (line) and min–max "
        "over the batches (band): how much the geometry of one point depends on the minibatch. The first paper's code "
        "measures it (get_batch_list_grads)."
    )


PLOT = Plot("fixed_batch_spread", fixed_batch_spread, "fixed_batches", {"color": COLOR}, caption=caption)
