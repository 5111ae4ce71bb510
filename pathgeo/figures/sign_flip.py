"""The share of gradient entries flipping sign between adjacent steps, per epoch (the per-cell matrix of the second
paper's Figure 8 is correlation_matrices with `cell: sign_flip`)."""

from __future__ import annotations

import altair as alt
import polars as pl

from pathgeo.figures import COLOR, Plot
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
    one_reference,
    require_columns,
    rule_at,
    unique_columns,
    with_series,
)

# Independent gradients with symmetric entries flip the sign of half of them (percent).
RANDOM_SIGN_FLIPS = 50.0


def sign_flip(epochs: pl.DataFrame, color: str = "label") -> Figure:
    """Share of gradient entries whose sign flips between adjacent steps, per epoch: the epoch mean, with the
    5–95 % band over the epoch's steps where epochs have more than one step (in full batch an epoch is one step,
    and the line is that step's value)."""
    stats = ["sign_flip_mean", "sign_flip_q05", "sign_flip_q95"]
    columns = unique_columns([*RUN_KEYS, "budget", "epoch", "steps", color, *stats])
    require_columns(epochs, "epochs", columns)
    data = distinct_runs(with_series(one_reference(epochs.select(columns)))).with_columns(pl.col(stats) * 100)
    data, color_encoding = factor_color(data, color)
    banded = bool((data.get_column("steps") > 1).any())
    layers = band_and_mean(
        "sign_flip",
        "sign_flip_q05",
        "sign_flip_q95",
        color_encoding,
        "gradient entries flipping sign (%)",
        band=banded,
        band_name="5–95 %",
    )
    chart = alt.layer(rule_at(RANDOM_SIGN_FLIPS), *layers, data=inline_values(data)).properties(
        width=PANEL_WIDTH, height=PANEL_HEIGHT
    )
    what = (
        "epoch mean (line), 5–95 % quantiles over the epoch's steps (band)"
        if banded
        else ("one step per epoch (full batch): each epoch's value")
    )
    return finish(
        chart,
        f"Sign flips of gradient entries between adjacent steps, by {factor_title(color)}",
        [
            f"share of entries of G with opposite sign at steps t − 1 and t: {what}",
            f"dashed line: {RANDOM_SIGN_FLIPS:.0f} %, what independent gradients would give",
        ],
    )


def caption(color: str = "label") -> str:
    by = factor_title(color)
    return (
        f"Per epoch, by {by}: the percentage of gradient entries whose sign differs between adjacent steps t − 1 and "
        "t (an entry that is 0 at either step counts as no flip), the epoch's mean with the 5–95 % band over its steps "
        "where an epoch has several. The dashed line at 50 % is what independent gradients would give; a zigzag "
        "geometry flips most entries."
    )


PLOT = Plot("sign_flip", sign_flip, "epochs", {"color": COLOR}, caption=caption, needs_w_star=False)
