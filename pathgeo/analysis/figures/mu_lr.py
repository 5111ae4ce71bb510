"""μ(t) beside the warm-up learning rate, step by step: the second paper's Figure 7."""

from __future__ import annotations

import altair as alt
import polars as pl

from pathgeo.analysis.figures import Plot
from pathgeo.analysis.figures.style import (
    CATEGORICAL,
    FULL_WIDTH,
    NEUTRAL_COLOR,
    SMALL_HEIGHT,
    SPACING,
    Figure,
    Tip,
    epoch_x,
    finish,
    hover_line,
    line_key,
    log_axis,
    log_scale,
    valid_filter,
    zero_rule,
)
from pathgeo.analysis.figures.tables import (
    AT,
    EPOCH,
    RUN,
    STEP,
    inline_values,
    one_reference,
    require_columns,
    schedule_names,
    schedule_order,
    with_step_position,
)

LR_DASH = [6, 3]
# Room for the learning rate's axis on the right.
RIGHT_AXIS = 70


def mu_lr(steps: pl.DataFrame) -> Figure:
    """Per step, μ(t) (in the run's colour, left axis) and the learning rate (grey, dashed, log, right axis), one
    panel per run, as the paper's Figure 7 draws the mean gradient correlation of a warm-up run over its schedule. The
    x axis counts epochs, as in every figure (a step at the epochs trained before it). Each run is named by its
    schedule and its switch point as the data show it (`schedule_names`), in the colours of the gawu figure."""
    columns = ["run_id", "label", "reference", "budget", "step", "epoch", "schedule", "lr", "mean_grad_corr"]
    require_columns(steps, "steps", columns)
    data = with_step_position(one_reference(steps.select(columns)))
    names = schedule_names(data)
    order = schedule_order(names)
    data = data.with_columns(pl.col("run_id").replace_strict(names).alias(RUN))
    span = [0.0, float(data.get_column("epoch").max() + 1)]
    tips = [
        Tip(RUN, "run"),
        Tip(STEP, "step"),
        Tip(EPOCH, "epoch"),
        Tip("mean_grad_corr", "μ(t)", ".3f", missing="not yet: the window of h steps is not full"),
        Tip("lr", "learning rate", ".3g"),
    ]
    lr_scale = log_scale(data, ["lr"])
    lr_axis = log_axis("learning rate (log, dashed)", orient="right")
    panels = []
    for index, run in enumerate(order):
        values = inline_values(data.filter(pl.col(RUN) == run))
        x = epoch_x(AT, "epoch" if index == len(order) - 1 else None, span)
        mu = hover_line(
            alt.Chart().transform_filter(valid_filter("mean_grad_corr")),
            x,
            alt.Y(
                "mean_grad_corr:Q",
                scale=alt.Scale(domain=[-1.05, 1.05], nice=False),
                axis=alt.Axis(title="μ(t)", values=[-1, -0.5, 0, 0.5, 1]),
            ),
            {"color": alt.value(CATEGORICAL[index % len(CATEGORICAL)])},
            tips,
            stroke_width=1.4,
        )
        lr = (
            alt.Chart()
            .mark_line(color=NEUTRAL_COLOR, strokeWidth=1.2, strokeDash=LR_DASH)
            .encode(x=x, y=alt.Y("lr:Q", scale=lr_scale, axis=lr_axis))
        )
        layers = [alt.layer(zero_rule(), *mu), lr] + (
            [line_key("learning rate (right axis, log)", LR_DASH)] if index == 0 else []
        )
        panels.append(
            alt.layer(*layers, data=values)
            .resolve_scale(y="independent")
            .properties(
                width=FULL_WIDTH - RIGHT_AXIS,
                height=SMALL_HEIGHT - 20,
                title=alt.TitleParams(run, fontSize=12, anchor="start"),
            )
        )
    chart = alt.vconcat(*panels, spacing=SPACING)
    return finish(
        chart,
        "μ(t) over the warm-up learning rate",
        [
            (
                "per step: μ(t), the mean of the last h − 1 adjacent-gradient cosines (solid, left axis), and the "
                "learning rate (dashed, log, right)"
            ),
            "μ(t) < 0 (below the dotted line): successive gradients point back and forth (zigzag geometry)",
        ],
    )


PLOT = Plot(
    "mu_lr",
    mu_lr,
    "steps",
    needs_w_star=False,
    caption=(
        "For each run, per step on an axis of epochs: μ(t), the mean of the adjacent-gradient correlations "
        "cos(G(s−1), G(s)) over the window ending at step t (the second paper's equation 3), solid in the run's colour "
        "on the left axis, and the learning rate of the schedule, dashed grey on a log scale on the right axis. Where "
        "μ(t) is negative, successive gradients point back and forth (zigzag geometry); the paper's Figure 7 reads a "
        "warm-up off this picture. Each panel is named by the run's schedule and its switch point as the data show it "
        "(the first step of its largest learning rate), in the colours of the gawu figure."
    ),
)
