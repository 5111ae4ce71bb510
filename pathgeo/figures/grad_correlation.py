"""Training loss beside the mean adjacent-gradient correlation: the second paper's Figure 1 (top)."""

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
    one_reference,
    positive_filter,
    require_columns,
    unique_columns,
    with_series,
    zero_rule,
)


def grad_correlation(epochs: pl.DataFrame, color: str = "label") -> Figure:
    """Training loss beside the mean adjacent-gradient correlation, per epoch.

    One line per run, one reference point per run (both quantities depend on the
    gradients only).  Second paper, Figure 1 (top row).
    """
    correlation = "mean_grad_corr_mean"
    columns = unique_columns([*RUN_KEYS, "budget", "epoch", color, "loss_mean", correlation])
    require_columns(epochs, "epochs", columns)
    data = with_series(one_reference(epochs.select(columns)))
    data, color_encoding = factor_color(data, color)
    x = alt.X("epoch:Q", title="epoch")
    tooltip = [
        alt.Tooltip("label:N", title="run"),
        alt.Tooltip("epoch:Q", title="epoch"),
        alt.Tooltip("loss_mean:Q", title="mean loss", format=".4g"),
        alt.Tooltip(f"{correlation}:Q", title="mean μ(t)", format=".3f"),
    ]
    loss = (
        alt.Chart()
        .transform_filter(positive_filter("loss_mean"))
        .mark_line(strokeWidth=1.8)
        .encode(
            x=x,
            y=alt.Y("loss_mean:Q", title="training loss (epoch mean, log)", scale=alt.Scale(type="log")),
            color=color_encoding,
            detail=alt.Detail(f"{SERIES}:N"),
            tooltip=tooltip,
        )
        .properties(width=PANEL_WIDTH, height=PANEL_HEIGHT)
    )
    correlation_line = alt.Chart().mark_line(strokeWidth=1.8).encode(
        x=x,
        y=alt.Y(
            f"{correlation}:Q",
            title="gradient correlation μ (eq. 3), epoch mean",
            scale=alt.Scale(domain=[-1, 1]),
        ),
        color=color_encoding,
        detail=alt.Detail(f"{SERIES}:N"),
        tooltip=tooltip,
    )
    chart = alt.hconcat(
        loss,
        alt.layer(zero_rule(), correlation_line).properties(width=PANEL_WIDTH, height=PANEL_HEIGHT),
        data=inline_values(data),
    ).resolve_scale(color="shared")
    return finish(
        chart,
        f"Training loss and gradient correlation, by {factor_title(color)}",
        [
            (
                "μ(t) = mean of cos(G(s−1), G(s)) over the h − 1 adjacent pairs of the window ending at step t"
                " (eq. 3), averaged over the epoch's steps"
            ),
            "μ > 0: successive gradients agree (smooth geometry); μ < 0: they point back and forth (zigzag)",
        ],
    )


PLOT = Plot("grad_correlation", grad_correlation, "epochs", {"color": COLOR}, needs_w_star=False)
