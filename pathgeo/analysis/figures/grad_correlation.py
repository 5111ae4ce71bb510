"""Training loss above the mean adjacent-gradient correlation: the second paper's Figures 1 (top) and 9."""

from __future__ import annotations

import altair as alt
import polars as pl

from pathgeo.analysis.figures import COLOR, Plot
from pathgeo.analysis.figures.style import (
    BY_RUN,
    COLOR_LEVEL,
    FULL_WIDTH,
    SMALL_HEIGHT,
    SPACING,
    Figure,
    Tip,
    constant_lr,
    epoch_domain,
    epoch_x,
    finish,
    hover_line,
    line_encoding,
    linear_scale,
    lines,
    panel_title,
    valid_filter,
    width_note,
    zero_rule,
)
from pathgeo.analysis.figures.tables import (
    EPOCH,
    RUN,
    RUN_KEYS,
    epoch_statistics,
    inline_values,
    one_reference,
    require_columns,
    thinning_note,
    unique_columns,
    with_epoch_number,
    with_series,
)
from pathgeo.analysis.figures.words import factor_title

CORRELATION = "mean_grad_corr_mean"
# μ is a cosine: its axis shows all of [−1, 1] with a margin, so that a line at +1 or −1 stays off the frame.
COSINE_DOMAIN = [-1.05, 1.05]


def grad_correlation(steps: pl.DataFrame, color: str = BY_RUN) -> Figure:
    """Training loss (top) and the mean adjacent-gradient correlation μ(t) (bottom), each the mean over an epoch's
    steps, one line per run (one reference point per run: both quantities depend on the gradients only, so every
    epoch is drawn, the last one too). μ(t) is the mean over a window of h steps, so a run's line starts where its
    first window is full; the subtitle says where that is later than the first epoch. Second paper, Figure 1 (top
    row), and coloured by batch size its Figure 9."""
    columns = unique_columns(
        [
            *RUN_KEYS,
            "experiment",
            "budget",
            "epoch",
            "step",
            "schedule",
            color,
            "seed",
            "width",
            "model",
            "width_unit",
            "loss",
            "mean_grad_corr",
        ]
    )
    require_columns(steps, "steps", [c for c in columns if c not in ("experiment", "width_unit")])
    per_epoch = epoch_statistics(
        one_reference(steps.select([c for c in columns if c in steps.columns])), ["loss", "mean_grad_corr"], ("mean",)
    )
    data = with_series(with_epoch_number(per_epoch))
    drawn = lines(data, color)
    x_domain = epoch_domain(data)
    tips = [
        Tip(RUN, "run"),
        Tip(EPOCH, "epoch"),
        Tip("loss_mean", "mean loss", ".4g"),
        Tip(CORRELATION, "mean μ(t)", ".3f", missing="not yet: the window of h steps is not full"),
    ]
    loss = hover_line(
        alt.Chart().transform_filter(valid_filter("loss_mean")),
        epoch_x(title=None, domain=x_domain),
        alt.Y("loss_mean:Q", title="training loss (epoch mean)", scale=linear_scale(data, ["loss_mean"])),
        line_encoding(drawn),
        tips,
    )
    correlation = hover_line(
        alt.Chart().transform_filter(valid_filter(CORRELATION)),
        epoch_x(domain=x_domain),
        alt.Y(
            f"{CORRELATION}:Q",
            title="μ(t), epoch mean (eq. 3)",
            scale=alt.Scale(domain=COSINE_DOMAIN, nice=False),
            axis=alt.Axis(values=[-1, -0.5, 0, 0.5, 1]),
        ),
        line_encoding(drawn),
        tips,
    )
    chart = alt.vconcat(
        alt.layer(*loss).properties(width=FULL_WIDTH, height=SMALL_HEIGHT),
        alt.layer(zero_rule(), *correlation).properties(width=FULL_WIDTH, height=SMALL_HEIGHT),
        data=inline_values(drawn.data),
        spacing=SPACING,
    )
    starts = (
        drawn.data.filter(pl.col(CORRELATION).is_not_null())
        .group_by(COLOR_LEVEL)
        .agg(pl.col(EPOCH).min())
        .filter(pl.col(EPOCH) > x_domain[0])
    )
    # By epoch, and the levels of one epoch in the legend's order (group_by hands them out in any order).
    late = [
        f"epoch {epoch} at {panel_title(drawn, level)}"
        for level, epoch in sorted(starts.iter_rows(), key=lambda row: (row[1], drawn.levels.index(row[0])))
    ]
    return finish(
        chart,
        "Training loss and gradient correlation, by "
        f"{factor_title(color, constant_lr(steps)) if color != BY_RUN else 'run'}",
        [
            (
                "μ(t) = mean of cos(G(s−1), G(s)) over the h − 1 adjacent pairs of the window ending at step t (eq. "
                "3); lines: epoch means"
            ),
            "μ > 0: successive gradients agree (smooth geometry); μ < 0: they point back and forth (zigzag)",
            *([f"μ(t) needs a full window of h steps: it starts in {', '.join(late)}"] if late else []),
            *width_note(steps),
            *thinning_note(per_epoch),
        ],
    )


def caption(color: str = BY_RUN) -> str:
    by = "run" if color == BY_RUN else factor_title(color)
    return (
        f"Per epoch, by {by}: the training loss (top) and the mean gradient correlation μ(t) of the second paper's "
        "equation (3) (bottom), the mean of cos(G(s−1), G(s)) over the adjacent pairs of the window of h steps ending "
        "at step t, each the mean over the epoch's steps. Neither needs a reference point, so every epoch is drawn; "
        "μ(t)'s line starts where a run's first window is full (later than the first epoch where an epoch has fewer "
        "than h steps, as the subtitle says). μ near +1: successive gradients agree (smooth geometry); near −1: they "
        "point back and forth (zigzag geometry)."
    )


PLOT = Plot("grad_correlation", grad_correlation, "steps", {"color": COLOR}, caption=caption, needs_w_star=False)
