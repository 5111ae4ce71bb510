"""RSI and γ per step on the synthetic objectives (ALM, SM): Figure 5 of the paper."""

from __future__ import annotations

import altair as alt
import polars as pl

from pathgeo.figures import Plot
from pathgeo.figures.style import (
    RUN_KEYS,
    Figure,
    distinct_runs,
    factor_levels,
    finish,
    hover_line,
    inline_values,
    require_columns,
    step_x,
    symlog_scale,
    value_words,
    zero_rule,
)

PANEL_WIDTH, PANEL_HEIGHT = 300, 180
COLOR = "#4c78a8"


def synthetic(steps: pl.DataFrame) -> Figure:
    """Per-step RSI and γ on the synthetic objectives (ALM, SM).  Paper Figure 5.

    One column per objective (`dataset`), rows RSI and γ, each panel on its own scale, with a zero line so that
    negative values stand out. RSI is on a symmetric log scale (linear within its median magnitude around 0): the
    SM's spikes reach thousands, and on a linear axis they would flatten the negative values the figure is for.
    """
    metrics = {"rsi": "RSI (symmetric log)", "gamma": "γ = cos(G, w − w*)"}
    require_columns(steps, "steps", [*RUN_KEYS, "dataset", "epoch", "step", *metrics])
    data = distinct_runs(steps.select([*RUN_KEYS, "dataset", "epoch", "step", *metrics]))
    objectives = factor_levels(data, "dataset")
    rows = []
    for metric, title in metrics.items():
        panels = []
        for objective in objectives:
            values = data.filter(pl.col("dataset") == objective)
            scale = symlog_scale(values, metric) if metric == "rsi" else alt.Scale(zero=False)
            tooltip = [
                alt.Tooltip("run:N", title="run"),
                alt.Tooltip("step:Q", title="step"),
                alt.Tooltip("epoch:Q", title="epoch"),
                alt.Tooltip("rsi:Q", title="RSI", format=".4g"),
                alt.Tooltip("gamma:Q", title="γ", format=".3f"),
            ]
            layers = hover_line(
                alt.Chart().transform_filter(f"isValid(datum['{metric}'])"),
                step_x("step" if metric == "gamma" else None),
                alt.Y(f"{metric}:Q", title=title, scale=scale),
                alt.value(COLOR),
                tooltip,
                detail=None,
                stroke_width=1.0,
            )
            header = value_words(objective) if metric == "rsi" else None
            panels.append(
                alt.layer(zero_rule(), *layers, data=inline_values(values)).properties(
                    width=PANEL_WIDTH,
                    height=PANEL_HEIGHT,
                    title=alt.TitleParams(f"objective: {header}", fontSize=13) if header else alt.TitleParams(""),
                )
            )
        rows.append(alt.hconcat(*panels).resolve_scale(y="independent", x="independent"))
    chart = alt.vconcat(*rows, spacing=10)
    runs = "; ".join(
        f"{objective}: {run}" for objective, run in data.select("dataset", "run").unique().sort("dataset").iter_rows()
    )
    return finish(
        chart,
        "RSI and γ on synthetic objectives",
        [
            "RSI = G·(w − w*) / ‖w − w*‖² and γ = cos(G, w − w*), per step; dashed line at 0",
            "negative values: the step moves away from the final iterate w*; RSI on a symmetric log axis (linear "
            "near 0)",
            runs,
        ],
    )


PLOT = Plot(
    "synthetic",
    synthetic,
    "steps",
    caption=(
        "RSI and γ per step on the synthetic objectives, one column per objective: the Asymmetric Linear Model "
        "(convex, but its minibatch gradients are very noisy) and the Sinusoidal Mixture (deterministic, but strongly "
        "non-convex). RSI is on a symmetric log axis, linear within its typical magnitude around 0 and logarithmic "
        "beyond, so that both its spikes and its negative values show. Unlike the networks', their γ is often "
        "negative: the step moves away from the final iterate."
    ),
)
