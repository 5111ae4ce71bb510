"""Warm-up switch points with what triggered them, and what they led to: the second paper's Figure 10 and Table 1."""

from __future__ import annotations

import altair as alt
import polars as pl

from pathgeo.analysis.figures import Plot
from pathgeo.analysis.figures.style import (
    CATEGORICAL,
    HALF_WIDTH,
    LINE_LEGEND,
    SMALL_HEIGHT,
    SPACING,
    Figure,
    Tip,
    epoch_x,
    finish,
    hover_line,
    legend,
    linear_scale,
    log_axis,
    log_scale,
    positive_filter,
    tooltip,
    valid_filter,
    zero_rule,
)
from pathgeo.analysis.figures.tables import (
    AT,
    EPOCH,
    RUN,
    SERIES,
    STEP,
    inline_values,
    one_reference,
    require_columns,
    schedule_names,
    schedule_order,
    switch_points,
    with_epoch_number,
    with_series,
    with_step_position,
)


def warmup(steps: pl.DataFrame, train: pl.DataFrame) -> Figure:
    """Per step: training loss, learning rate and μ(t) (the mean adjacent-gradient correlation GAWU watches), and
    per epoch the validation accuracy, one colour per run, each named by its schedule and its switch point as the
    data show it. One epoch axis for all: a step sits at the epochs trained before it, an accuracy after epoch n at n.
    Second paper, Figure 10 and Table 1."""
    columns = ["run_id", "label", "reference", "budget", "epoch", "step", "schedule", "loss", "lr", "mean_grad_corr"]
    require_columns(steps, "steps", columns)
    require_columns(train, "train", ["run_id", "epoch", "val_accuracy"])
    data = with_series(with_step_position(one_reference(steps.select(columns))))
    names = schedule_names(data)
    data = data.with_columns(pl.col("run_id").replace_strict(names).alias(RUN))
    switches = switch_points(data)
    accuracy = with_epoch_number(
        train.filter(pl.col("run_id").is_in(list(names))).select("run_id", "epoch", "val_accuracy")
    ).with_columns(
        pl.col("run_id").replace_strict(names).alias(RUN),
        pl.col("run_id").alias(SERIES),
        (pl.col("val_accuracy") * 100).alias("percent"),
    )
    order = schedule_order(names)
    color = alt.Color(
        f"{RUN}:N",
        title="run",
        sort=order,
        scale=alt.Scale(domain=order, range=[CATEGORICAL[k % len(CATEGORICAL)] for k in range(len(order))]),
        legend=legend("run", columns=1, **LINE_LEGEND),
    )
    encoding = {"color": color, "detail": alt.Detail(f"{SERIES}:N")}
    span = [0.0, float(data.get_column("epoch").max() + 1)]
    step_tips = [
        Tip(RUN, "run"),
        Tip(STEP, "step"),
        Tip(EPOCH, "epoch"),
        Tip("loss", "training loss", ".4g"),
        Tip("lr", "learning rate", ".3g"),
        Tip("mean_grad_corr", "μ(t)", ".3f", missing="not yet: the window of h steps is not full"),
    ]

    def x(title: str | None = None) -> alt.X:
        return epoch_x(AT, title, span)

    loss = hover_line(
        alt.Chart().transform_filter(valid_filter("loss")),
        x(),
        alt.Y("loss:Q", title="training loss", scale=linear_scale(data, ["loss"])),
        encoding,
        step_tips,
        stroke_width=1.2,
    )
    lr_y = alt.Y("lr:Q", scale=log_scale(data, ["lr"]), axis=log_axis("learning rate (log)"))
    learning_rate = hover_line(
        alt.Chart().transform_filter(positive_filter("lr")), x(), lr_y, encoding, step_tips, stroke_width=1.2
    )
    mu_y = alt.Y(
        "mean_grad_corr:Q",
        scale=alt.Scale(domain=[-1.05, 1.05], nice=False),
        axis=alt.Axis(title="μ(t)", values=[-1, -0.5, 0, 0.5, 1]),
    )
    mu = hover_line(
        alt.Chart().transform_filter(valid_filter("mean_grad_corr")),
        x("epoch"),
        mu_y,
        encoding,
        step_tips,
        stroke_width=1.2,
    )
    switch_tips, calculate = tooltip(
        [
            Tip(RUN, "run"),
            Tip(STEP, "switch step"),
            Tip(EPOCH, "epoch"),
            Tip("lr", "largest learning rate", ".3g"),
            Tip("mean_grad_corr", "μ(t) at the switch", ".3f", missing="not yet: the window of h steps is not full"),
        ]
    )
    switch_data = inline_values(switches)
    switch_rule = (
        alt.Chart(switch_data)
        .transform_calculate(**calculate)
        .mark_rule(strokeDash=[4, 3], strokeWidth=1, opacity=0.7)
        .encode(x=x(), color=color, tooltip=switch_tips)
    )
    switch_point = (
        alt.Chart(switch_data)
        .transform_calculate(**calculate)
        .mark_point(filled=True, size=70, opacity=1, stroke="white", strokeWidth=1)
        .encode(x=x(), y=lr_y, color=color, tooltip=switch_tips)
    )
    switch_mu = switch_point.transform_filter(valid_filter("mean_grad_corr")).encode(y=mu_y)
    accuracy_panel = hover_line(
        alt.Chart(inline_values(accuracy)),
        epoch_x(EPOCH, "epoch", span),
        alt.Y("percent:Q", title="validation accuracy (%)", scale=linear_scale(accuracy, ["percent"])),
        encoding,
        [Tip(RUN, "run"), Tip(EPOCH, "after epoch"), Tip("percent", "validation accuracy (%)", ".1f")],
    )
    size = {"width": HALF_WIDTH, "height": SMALL_HEIGHT}
    chart = alt.vconcat(
        alt.hconcat(
            alt.layer(*loss, data=inline_values(data)).properties(**size),
            alt.layer(*learning_rate, switch_rule, switch_point, data=inline_values(data)).properties(**size),
            spacing=SPACING,
        ),
        alt.hconcat(
            alt.layer(zero_rule(), *mu, switch_rule, switch_mu, data=inline_values(data)).properties(**size),
            alt.layer(*accuracy_panel).properties(**size),
            spacing=SPACING,
        ),
        spacing=SPACING,
    ).resolve_scale(color="shared")
    return finish(
        chart,
        "Warm-up switch points: what triggered them and what they led to",
        [
            (
                "per step: training loss, learning rate (log) and μ(t) (mean of the last h − 1 adjacent-gradient "
                "cosines); per epoch: accuracy"
            ),
            (
                "dot and dashed line: the run's switch point as the data show it, the first step of its largest "
                "learning rate"
            ),
            (
                "GAWU switches where μ(t) first turns from positive to negative; its warmup_epochs is only the latest "
                "switch it allows"
            ),
        ],
    )


PLOT = Plot(
    "warmup",
    warmup,
    "steps",
    also=("train",),
    needs_w_star=False,
    caption=(
        "Warm-up runs side by side on one axis of epochs: per step, the training loss, the learning rate and μ(t), the "
        "mean adjacent-gradient correlation that the geometry-adapted warm-up (GAWU) watches; per epoch, the "
        "validation accuracy after it. Each run is named by its schedule and its switch point as the data show it "
        "(the first step of its largest learning rate, counted from 1, and the epochs trained before it), marked by a "
        "dot and a dashed line: GAWU ends its warm-up at the first step where μ(t) turns from positive to negative, "
        "the others at a fixed epoch."
    ),
)
