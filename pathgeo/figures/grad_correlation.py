"""Training loss beside the mean adjacent-gradient correlation: the second paper's Figures 1 (top) and 9."""

from __future__ import annotations

import altair as alt
import polars as pl

from pathgeo.figures import COLOR, Plot
from pathgeo.figures.style import (
    PANEL_HEIGHT,
    PANEL_WIDTH,
    RUN_KEYS,
    Figure,
    distinct_runs,
    epoch_x,
    factor_color,
    factor_title,
    finish,
    hover_line,
    inline_values,
    log_axis,
    log_scale,
    one_reference,
    positive_filter,
    require_columns,
    unique_columns,
    width_note,
    with_series,
    zero_rule,
)


def grad_correlation(epochs: pl.DataFrame, color: str = "label") -> Figure:
    """Training loss beside the mean adjacent-gradient correlation, per epoch.

    One line per run, one reference point per run (both quantities depend on the
    gradients only). The loss axis is fitted to the data. Second paper, Figure 1 (top
    row), and coloured by batch size its Figure 9.
    """
    correlation = "mean_grad_corr_mean"
    columns = unique_columns([*RUN_KEYS, "budget", "epoch", color, "loss_mean", correlation])
    require_columns(epochs, "epochs", columns)
    data = distinct_runs(with_series(one_reference(epochs.select(columns))))
    data, color_encoding = factor_color(data, color)
    # Both panels over every epoch: μ(t) is undefined for a window's first steps, and its panel would start later.
    x = epoch_x(domain=[data.get_column("epoch").min(), data.get_column("epoch").max()])
    tooltip = [
        alt.Tooltip("run:N", title="run"),
        alt.Tooltip("epoch:Q", title="epoch"),
        alt.Tooltip("loss_mean:Q", title="mean loss", format=".4g"),
        alt.Tooltip(f"{correlation}:Q", title="mean μ(t)", format=".3f"),
    ]
    loss = hover_line(
        alt.Chart().transform_filter(positive_filter("loss_mean")),
        x,
        alt.Y(
            "loss_mean:Q",
            scale=log_scale(data, ["loss_mean"], pad=1.05),
            axis=log_axis("training loss (epoch mean, log)"),
        ),
        color_encoding,
        tooltip,
    )
    correlation_line = hover_line(
        alt.Chart().transform_filter(f"isValid(datum['{correlation}'])"),
        x,
        alt.Y(f"{correlation}:Q", title="gradient correlation μ (eq. 3), epoch mean", scale=alt.Scale(domain=[-1, 1])),
        color_encoding,
        tooltip,
    )
    chart = alt.hconcat(
        alt.layer(*loss).properties(width=PANEL_WIDTH, height=PANEL_HEIGHT),
        alt.layer(zero_rule(), *correlation_line).properties(width=PANEL_WIDTH, height=PANEL_HEIGHT),
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
            *width_note(epochs),
        ],
    )


def caption(color: str = "label") -> str:
    by = factor_title(color)
    return (
        f"Per epoch, by {by}: the training loss (left, log scale fitted to the data) and the mean gradient correlation "
        "μ(t) of the second paper's equation (3) (right), the mean of cos(G(s−1), G(s)) over the adjacent pairs of the "
        "window of h steps ending at step t, averaged over the epoch's steps. μ near +1: successive gradients agree "
        "(smooth geometry); near −1: they point back and forth (zigzag geometry)."
    )


PLOT = Plot("grad_correlation", grad_correlation, "epochs", {"color": COLOR}, caption=caption, needs_w_star=False)
