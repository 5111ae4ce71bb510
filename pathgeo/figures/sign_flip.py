"""The share of gradient entries flipping sign between adjacent steps: the second paper's Figure 8."""

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
    """Share of gradient entries whose sign flips between adjacent steps, per epoch:
    mean line with the 5–95 % band over the epoch's steps.  Second paper, Figure 8."""
    stats = ["sign_flip_mean", "sign_flip_q05", "sign_flip_q95"]
    columns = unique_columns([*RUN_KEYS, "budget", "epoch", color, *stats])
    require_columns(epochs, "epochs", columns)
    data = with_series(one_reference(epochs.select(columns))).with_columns(pl.col(stats) * 100)
    data, color_encoding = factor_color(data, color)
    layers = band_and_mean(
        "sign_flip",
        "sign_flip_q05",
        "sign_flip_q95",
        color_encoding,
        "gradient entries flipping sign (%)",
    )
    chart = alt.layer(rule_at(RANDOM_SIGN_FLIPS), *layers, data=inline_values(data)).properties(
        width=PANEL_WIDTH, height=PANEL_HEIGHT
    )
    return finish(
        chart,
        f"Sign flips of gradient entries between adjacent steps, by {factor_title(color)}",
        [
            "share of entries of G with opposite sign at steps t − 1 and t: epoch mean (line), 5–95 % quantiles (band)",
            f"dashed line: {RANDOM_SIGN_FLIPS:.0f} %, what independent gradients would give",
        ],
    )


PLOT = Plot("sign_flip", sign_flip, "epochs", {"color": COLOR}, needs_w_star=False)
