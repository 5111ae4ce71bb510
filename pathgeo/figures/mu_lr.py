"""μ(t) beside the warm-up learning rate, step by step: the second paper's Figure 7."""

from __future__ import annotations

import altair as alt
import polars as pl

from pathgeo.figures import Plot
from pathgeo.figures.style import (
    PANEL_HEIGHT,
    PANEL_WIDTH,
    Figure,
    finish,
    hover_line,
    inline_values,
    log_axis,
    log_scale,
    one_reference,
    require_columns,
    run_names,
    run_order,
    step_x,
    zero_rule,
)

MU_COLOR = "#d62728"  # the paper's red
LR_COLOR = "#2ca02c"  # and green


def mu_lr(steps: pl.DataFrame) -> Figure:
    """Per step, μ(t) (red, left axis) and the learning rate (green, log, right axis), one panel per run, as the
    paper's Figure 7 draws the mean gradient correlation of a warm-up run over its schedule. Each run is named by
    its schedule and its switch point as the data show it (`run_names`)."""
    columns = ["run_id", "label", "reference", "budget", "step", "epoch", "schedule", "lr", "mean_grad_corr"]
    require_columns(steps, "steps", columns)
    data = one_reference(steps.select(columns))
    names = run_names(data)
    data = data.with_columns(pl.col("run_id").replace_strict(names).alias("run"))
    x = step_x()
    tooltip = [
        alt.Tooltip("run:N", title="run"),
        alt.Tooltip("step:Q", title="step"),
        alt.Tooltip("epoch:Q", title="epoch"),
        alt.Tooltip("mean_grad_corr:Q", title="μ(t)", format=".3f"),
        alt.Tooltip("lr:Q", title="learning rate", format=".3g"),
    ]
    lr_scale = log_scale(data, ["lr"])
    mu_y = alt.Y(
        "mean_grad_corr:Q",
        scale=alt.Scale(domain=[-1, 1]),
        axis=alt.Axis(title="μ(t): mean adjacent-gradient correlation", titleColor=MU_COLOR),
    )
    lr_axis = log_axis("learning rate (log)")
    lr_axis.titleColor, lr_axis.orient = LR_COLOR, "right"
    panels = []
    for run in run_order(names):
        values = inline_values(data.filter(pl.col("run") == run))
        # The tooltip of μ's points names the step's learning rate too: one hover layer per panel.
        mu = hover_line(
            alt.Chart().transform_filter("isValid(datum.mean_grad_corr)"),
            x,
            mu_y,
            alt.value(MU_COLOR),
            tooltip,
            detail=None,
            stroke_width=1.4,
        )
        lr = (
            alt.Chart()
            .mark_line(color=LR_COLOR, strokeWidth=1.4)
            .encode(x=x, y=alt.Y("lr:Q", scale=lr_scale, axis=lr_axis))
        )
        panels.append(
            alt.layer(alt.layer(zero_rule(), *mu), lr, data=values)
            .resolve_scale(y="independent")
            .properties(
                width=PANEL_WIDTH, height=PANEL_HEIGHT - 60, title=alt.TitleParams(run, fontSize=12, anchor="start")
            )
        )
    chart = alt.vconcat(*panels, spacing=16)
    return finish(
        chart,
        "μ(t) over the warm-up learning rate",
        [
            "per step: μ(t), the mean of the last h − 1 adjacent-gradient cosines (red, left axis), and the "
            "learning rate (green, log, right axis)",
            "μ(t) < 0 (below the dashed line): successive gradients point back and forth (zigzag geometry)",
        ],
    )


PLOT = Plot(
    "mu_lr",
    mu_lr,
    "steps",
    needs_w_star=False,
    caption=(
        "For each run, per step: μ(t), the mean of the adjacent-gradient correlations cos(G(s−1), G(s)) over the "
        "window ending at step t (the second paper's equation 3), in red on the left axis, and the learning rate of "
        "the schedule in green on a log scale on the right axis. Where μ(t) is negative, successive gradients point "
        "back and forth (zigzag geometry); the paper's Figure 7 reads a warm-up off this picture. Each panel is named by "
        "the run's schedule and its switch point as the data show it (the first step of its largest learning rate)."
    ),
)
