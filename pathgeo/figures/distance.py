"""The distance to the reference point per epoch: Figures 12, 13 and 24 of the paper."""

from __future__ import annotations

import altair as alt
import polars as pl

from pathgeo.figures import BAND, COLOR, Plot
from pathgeo.figures.style import (
    PANEL_HEIGHT,
    PANEL_WIDTH,
    RUN_KEYS,
    Figure,
    band_and_mean,
    distinct_runs,
    factor_color,
    factor_title,
    finish,
    inline_values,
    log_scale,
    over_seeds,
    require_columns,
    unique_columns,
    width_note,
    with_series,
)


def distance(epochs: pl.DataFrame, color: str, band: str = "steps") -> Figure:
    """Mean distance ‖w_t − w*‖ to the reference point per epoch, on a log scale fitted to the data, with a band
    of the epoch's steps or of the seeds (as in gamma_band).  Paper Figures 12, 13 and 24."""
    columns = unique_columns([*RUN_KEYS, "epoch", color, "dist_mean", "dist_min", "dist_max"])
    require_columns(epochs, "epochs", columns)
    if band == "seeds":
        data, low, high = over_seeds(epochs, "dist"), "dist_seed_min", "dist_seed_max"
    else:
        data, low, high = distinct_runs(with_series(epochs.select(columns))), "dist_min", "dist_max"
    data, color_encoding = factor_color(data, color)
    layers = band_and_mean(
        "dist",
        low,
        high,
        color_encoding,
        "‖w − w*‖ (L2, log)",
        scale=log_scale(data, ["dist_mean", low, high]),
        band_name="seed" if band == "seeds" else "band",
    )
    chart = alt.layer(*layers, data=inline_values(data)).properties(width=PANEL_WIDTH, height=PANEL_HEIGHT)
    spread = (
        "min–max over the seeds of the epoch means (band), their mean (line)"
        if band == "seeds"
        else ("per-epoch mean over the epoch's steps (line) and their min–max (band)")
    )
    return finish(
        chart,
        f"Distance to the reference point, by {factor_title(color)}",
        [f"distance from the iterate w to w*: {spread}", *width_note(epochs)],
    )


def caption(color: str, band: str = "steps") -> str:
    spread = (
        "the minimum to maximum over runs that differ only in their seed"
        if band == "seeds"
        else ("its minimum to maximum over the epoch's steps")
    )
    return (
        f"The distance ‖w − w*‖ from the iterate to the reference point per epoch, by {factor_title(color)}: the mean "
        f"over the epoch's steps with a band of {spread}, on a log scale fitted to the data. A longer way to w* at the "
        "same γ means the optimizer travels further in directions that do not lead to w*."
    )


PLOT = Plot("distance", distance, "epochs", {"color": COLOR, "band": BAND}, caption=caption)
