"""γ beside the adjacent-gradient correlation of the same runs, on shared axes."""

from __future__ import annotations

import altair as alt
import polars as pl

from pathgeo.figures import Plot
from pathgeo.figures.style import (
    FACET_WIDTH,
    LINE_LEGEND,
    PANEL_HEIGHT,
    PANEL_WIDTH,
    RUN_KEYS,
    Figure,
    distinct_runs,
    finish,
    inline_values,
    one_reference,
    require_columns,
    zero_rule,
)

GAMMA_SERIES = "γ (RSI/EB)"
CORRELATION_SERIES = "adjacent gradient correlation"


def gamma_correlation(epochs: pl.DataFrame) -> Figure:
    """γ beside the adjacent-gradient correlation, per epoch, one panel per run.

    Both are epoch means of per-step cosines: γ = cos(G, w − w*) against the run's
    largest-budget reference point, and cos(G(t−1), G(t)) (the `grad_corr_mean`
    column rather than the window mean μ(t), so that neither curve is smoothed more).
    """
    columns = [*RUN_KEYS, "budget", "epoch", "gamma_mean", "grad_corr_mean"]
    require_columns(epochs, "epochs", columns)
    data = distinct_runs(one_reference(epochs.select(columns)))
    long = data.unpivot(
        index=["run", "reference", "epoch"],
        on=["gamma_mean", "grad_corr_mean"],
        variable_name="quantity",
        value_name="value",
    ).with_columns(
        pl.col("quantity").replace_strict({"gamma_mean": GAMMA_SERIES, "grad_corr_mean": CORRELATION_SERIES})
    )
    line = alt.Chart().mark_line(strokeWidth=1.8).encode(
        x=alt.X("epoch:Q", title="epoch"),
        y=alt.Y("value:Q", title="cosine (epoch mean)", scale=alt.Scale(domain=[-1, 1])),
        color=alt.Color(
            "quantity:N",
            title=None,
            scale=alt.Scale(domain=[GAMMA_SERIES, CORRELATION_SERIES], range=["#4c78a8", "#e45756"]),
            legend=LINE_LEGEND,
        ),
        tooltip=[
            alt.Tooltip("run:N", title="run"),
            alt.Tooltip("reference:N", title="reference"),
            alt.Tooltip("epoch:Q", title="epoch"),
            alt.Tooltip("quantity:N", title="quantity"),
            alt.Tooltip("value:Q", title="value", format=".3f"),
        ],
    )
    runs = data.get_column("run").unique().sort().to_list()
    subtitle = [
        (
            "γ = cos(G, w − w*) against each run's largest-budget reference point;"
            " adjacent gradient correlation = cos(G(t−1), G(t))"
        ),
        "both: mean over the epoch's steps (not the window mean μ(t) of eq. 3)",
    ]
    if len(runs) == 1:
        chart: Figure = alt.layer(zero_rule(), line, data=inline_values(long)).properties(
            width=PANEL_WIDTH, height=PANEL_HEIGHT
        )
        subtitle.append(f"run: {runs[0]}")
    else:
        chart = alt.layer(zero_rule(), line).properties(width=FACET_WIDTH, height=PANEL_HEIGHT).facet(
            facet=alt.Facet("run:N", title=None, sort=runs),
            columns=3,
            data=inline_values(long),
        )
    return finish(chart, "γ and adjacent gradient correlation along the optimization path", subtitle)


PLOT = Plot("gamma_correlation", gamma_correlation, "epochs")
