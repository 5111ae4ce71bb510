"""Warm-up switch points with what triggered them, and what they led to: the second paper's Figure 10 and Table 1."""

from __future__ import annotations

import altair as alt
import polars as pl

from pathgeo.figures import Plot
from pathgeo.figures.style import (
    PANEL_HEIGHT,
    PANEL_WIDTH,
    Figure,
    epoch_x,
    finish,
    hover_line,
    inline_values,
    log_axis,
    log_scale,
    one_reference,
    positive_filter,
    require_columns,
    run_names,
    run_order,
    switch_points,
    with_series,
    zero_rule,
)

RUN_NAME = "run"


def warmup(steps: pl.DataFrame, train: pl.DataFrame) -> Figure:
    """Per step: training loss, learning rate and μ(t) (the mean adjacent-gradient correlation GAWU watches), and
    per epoch the validation accuracy, one colour per run, each named by its schedule and its switch point as the
    data show it. The x axis is in epochs (a step's epoch is step / steps per epoch). Second paper, Figure 10 and
    Table 1."""
    columns = ["run_id", "label", "reference", "budget", "epoch", "step", "schedule", "loss", "lr", "mean_grad_corr"]
    require_columns(steps, "steps", columns)
    require_columns(train, "train", ["run_id", "epoch", "val_accuracy"])
    data = with_series(one_reference(steps.select(columns)))
    per_epoch = pl.col("step").count().over("run_id", "epoch")
    data = data.with_columns(at=pl.col("step") / per_epoch)
    switches = switch_points(data)
    names = run_names(data)
    data = data.with_columns(pl.col("run_id").replace_strict(names).alias(RUN_NAME))
    switches = switches.with_columns(pl.col("run_id").replace_strict(names).alias(RUN_NAME))
    accuracy = (
        train.filter(pl.col("run_id").is_in(list(names)))
        .select("run_id", "epoch", "val_accuracy")
        .with_columns(
            pl.col("run_id").replace_strict(names).alias(RUN_NAME),
            after=pl.col("epoch") + 1,
            percent=pl.col("val_accuracy") * 100,
        )
    )
    order = run_order(names)
    color = alt.Color(
        f"{RUN_NAME}:N",
        title="run",
        sort=order,
        scale=alt.Scale(domain=order, scheme="tableau10"),
        legend=alt.Legend(symbolType="stroke", symbolStrokeWidth=3, orient="bottom", columns=2),
    )
    # Every panel from the first step to the end of the last epoch, so that they line up.
    span = [0, float(data.get_column("epoch").max() + 1)]
    x = epoch_x("at", "epoch (steps / steps per epoch)", span)
    step_tooltip = [
        alt.Tooltip(f"{RUN_NAME}:N", title="run"),
        alt.Tooltip("step:Q", title="step"),
        alt.Tooltip("epoch:Q", title="epoch"),
        alt.Tooltip("loss:Q", title="training loss", format=".4g"),
        alt.Tooltip("lr:Q", title="learning rate", format=".3g"),
        alt.Tooltip("mean_grad_corr:Q", title="μ(t)", format=".3f"),
    ]
    loss = hover_line(
        alt.Chart().transform_filter(positive_filter("loss")),
        x,
        alt.Y("loss:Q", scale=log_scale(data, ["loss"], pad=1.05), axis=log_axis("training loss (log)")),
        color,
        step_tooltip,
        stroke_width=1.2,
    )
    lr_y = alt.Y("lr:Q", scale=log_scale(data, ["lr"]), axis=log_axis("learning rate (log)"))
    learning_rate = hover_line(
        alt.Chart().transform_filter(positive_filter("lr")), x, lr_y, color, step_tooltip, stroke_width=1.2
    )
    mu_y = alt.Y("mean_grad_corr:Q", title="μ(t), mean adjacent-gradient correlation", scale=alt.Scale(domain=[-1, 1]))
    mu = hover_line(
        alt.Chart().transform_filter("isValid(datum.mean_grad_corr)"), x, mu_y, color, step_tooltip, stroke_width=1.2
    )
    switch_tooltip = [
        alt.Tooltip(f"{RUN_NAME}:N", title="run"),
        alt.Tooltip("step:Q", title="switch step"),
        alt.Tooltip("epoch:Q", title="epoch"),
        alt.Tooltip("lr:Q", title="largest learning rate", format=".3g"),
        alt.Tooltip("mean_grad_corr:Q", title="μ(t) at the switch", format=".3f"),
    ]
    switch_rule = (
        alt.Chart(inline_values(switches))
        .mark_rule(strokeDash=[4, 3], strokeWidth=1, opacity=0.7)
        .encode(x=x, color=color, tooltip=switch_tooltip)
    )
    switch_point = (
        alt.Chart(inline_values(switches))
        .mark_point(filled=True, size=70, opacity=1, stroke="white", strokeWidth=1)
        .encode(x=x, y=lr_y, color=color, tooltip=switch_tooltip)
    )
    switch_mu = switch_point.encode(y=mu_y)
    accuracy_panel = hover_line(
        alt.Chart(inline_values(accuracy)),
        epoch_x("after", "epochs trained", span),
        alt.Y("percent:Q", title="validation accuracy (%)", scale=alt.Scale(zero=False)),
        color,
        [
            alt.Tooltip(f"{RUN_NAME}:N", title="run"),
            alt.Tooltip("after:Q", title="after epoch"),
            alt.Tooltip("percent:Q", title="validation accuracy (%)", format=".1f"),
        ],
        detail=None,
    )
    size = {"width": PANEL_WIDTH, "height": PANEL_HEIGHT - 40}
    chart = alt.vconcat(
        alt.hconcat(
            alt.layer(*loss, data=inline_values(data)).properties(**size),
            alt.layer(*learning_rate, switch_rule, switch_point, data=inline_values(data)).properties(**size),
        ),
        alt.hconcat(
            alt.layer(zero_rule(), *mu, switch_rule, switch_mu, data=inline_values(data)).properties(**size),
            alt.layer(*accuracy_panel).properties(**size),
        ),
    ).resolve_scale(color="shared")
    return finish(
        chart,
        "Warm-up switch points: what triggered them and what they led to",
        [
            "per step: training loss, learning rate and μ(t) (mean of the last h − 1 adjacent-gradient cosines); "
            "per epoch: validation accuracy",
            "dot and dashed line: the run's switch point as the data show it, the first step of its largest "
            "learning rate",
            "GAWU switches where μ(t) first turns from positive to negative; its warmup_epochs is only the "
            "latest switch it allows",
        ],
    )


PLOT = Plot(
    "warmup",
    warmup,
    "steps",
    also=("train",),
    needs_w_star=False,
    caption=(
        "Warm-up runs side by side: per step, the training loss, the learning rate and μ(t), the mean "
        "adjacent-gradient "
        "correlation that the geometry-adapted warm-up (GAWU) watches; per epoch, the validation accuracy. Each run is "
        "named by its schedule and its switch point as the data show it (the first step of its largest learning "
        "rate), marked by a dot and a dashed line: GAWU ends its warm-up at the first step where μ(t) turns from "
        "positive to negative, the others at a fixed epoch."
    ),
)
