"""RSI and γ per step on the synthetic objectives (ALM, SM): Figure 5 of the paper."""

from __future__ import annotations

import altair as alt
import polars as pl

from pathgeo.analysis.figures import Plot
from pathgeo.analysis.figures.style import (
    HALF_WIDTH,
    NEUTRAL_COLOR,
    SMALL_HEIGHT,
    SPACING,
    Figure,
    Tip,
    epoch_x,
    finish,
    hover_line,
    levels_of,
    symlog_scale,
    valid_filter,
    zero_rule,
)
from pathgeo.analysis.figures.tables import (
    AT,
    EPOCH,
    NAME_FACTORS,
    RUN,
    RUN_KEYS,
    STEP,
    before_final_epoch,
    inline_values,
    require_columns,
    with_run_names,
    with_step_position,
)
from pathgeo.analysis.figures.words import describe, value_words

METRICS = {"rsi": "RSI (symmetric log)", "gamma": "γ = cos(G, w − w*)"}


def synthetic(steps: pl.DataFrame) -> Figure:
    """Per-step RSI and γ on the synthetic objectives (ALM, SM), without the last epoch before w*. Paper Figure 5.

    One column per objective (`dataset`), rows RSI and γ, each panel on its own scale, with a zero line so that
    negative values stand out. RSI is on a symmetric log scale (linear within its median magnitude around 0): its
    spikes can reach thousands, and on a linear axis they would flatten the negative values the figure is for.
    """
    columns = [*RUN_KEYS, "budget", "dataset", "epoch", "step", *METRICS]
    require_columns(steps, "steps", columns)
    factors = [c for c in ("experiment", *NAME_FACTORS) if c in steps.columns and c not in columns]
    data = with_run_names(with_step_position(before_final_epoch(steps.select(*columns, *factors))))
    objectives = levels_of(data, "dataset")
    tips = [Tip(RUN, "run"), Tip(STEP, "step"), Tip(EPOCH, "epoch"), Tip("rsi", "RSI", ".4g"), Tip("gamma", "γ", ".3f")]
    columns_of_panels = []
    for objective in objectives:
        values = data.filter(pl.col("dataset") == objective)
        span = [0.0, float(values.get_column("epoch").max() + 1)]
        panels = []
        for position, (metric, title) in enumerate(METRICS.items()):
            scale = symlog_scale(values, metric) if metric == "rsi" else alt.Scale(zero=False)
            layers = hover_line(
                alt.Chart().transform_filter(valid_filter(metric)),
                epoch_x(AT, "epoch" if position == len(METRICS) - 1 else None, span),
                alt.Y(f"{metric}:Q", title=title, scale=scale),
                {"color": alt.value(NEUTRAL_COLOR)},
                tips,
                stroke_width=0.9,
            )
            panel = alt.layer(zero_rule(), *layers).properties(width=HALF_WIDTH, height=SMALL_HEIGHT)
            if position == 0:
                panel = panel.properties(title=alt.TitleParams(value_words("dataset", objective), fontSize=13))
            panels.append(panel)
        columns_of_panels.append(alt.vconcat(*panels, data=inline_values(values), spacing=8))
    chart = alt.hconcat(*columns_of_panels, spacing=SPACING)
    negative = dict(data.group_by("dataset").agg((pl.col("gamma") < 0).mean()).iter_rows())
    # Each column names its objective: the runs are said without it.
    runs = [
        f"{value_words('dataset', row['dataset'])}: {describe(row, brief=True)}; γ < 0 on "
        f"{100 * negative[row['dataset']]:.1f}% of the steps drawn"
        for row in data.select("dataset", *factors).unique().sort("dataset").iter_rows(named=True)
    ]
    return finish(
        chart,
        "RSI and γ on synthetic objectives",
        [
            "per step, dashed line at 0: below it the step moves away from the final iterate w*",
            "RSI on a symmetric log axis (linear near 0); the last epoch before w* is not drawn",
            *runs,
        ],
    )


PLOT = Plot(
    "synthetic",
    synthetic,
    "steps",
    caption=(
        "RSI and γ per step on the synthetic objectives, one column per objective: the Asymmetric Linear Model "
        "(convex, but its minibatch gradients are very noisy) and the Sinusoidal Mixture (deterministic, full batch, "
        "but strongly non-convex). RSI is on a symmetric log axis, linear within its typical magnitude around 0 and "
        "logarithmic beyond, so that both its spikes and its negative values show. The subtitle gives the share of "
        "steps on which γ is negative, where the step moves away from the final iterate. Epochs count from 1; the "
        "last epoch before w* is not drawn, as in the paper."
    ),
)
