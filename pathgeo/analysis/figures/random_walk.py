"""γ of the random walk against the steps left to its endpoint, with the law of equation (8)."""

from __future__ import annotations

import altair as alt
import polars as pl

from pathgeo.analysis.figures import Plot
from pathgeo.analysis.figures.style import (
    FULL_WIDTH,
    PANEL_HEIGHT,
    Figure,
    finish,
    legend,
    line_key,
    log_axis,
    log_scale,
)
from pathgeo.analysis.figures.tables import inline_values, require_columns

MEASURED = "measured γ, one point per step"
ANALYTIC = "analytic (T − t)^(−1/2)"
MEASURED_COLOR, ANALYTIC_COLOR = "#0072B2", "#D55E00"


def random_walk(steps: pl.DataFrame) -> Figure:
    """Measured γ against the steps left to the reference, with the random-walk law.

    For an isotropic random walk in high dimension γ(x_t) ≈ (T − t)^(−1/2) (paper eq. 8): choosing w* on the path
    itself makes γ positive and rise at the end. This figure is about that effect of w*, so unlike the others it
    draws the last epoch before w*. Both axes are log scales fitted to the data (no empty decades); the measured
    points are drawn over the analytic line.
    """
    require_columns(steps, "steps", ["steps_to_reference", "gamma"])
    drawable = pl.col("steps_to_reference").gt(0) & pl.col("gamma").is_finite() & pl.col("gamma").gt(0)
    measured = steps.select("steps_to_reference", "gamma").filter(drawable).with_columns(source=pl.lit(MEASURED))
    hidden = steps.height - measured.height
    analytic = (
        steps.select(pl.col("steps_to_reference").unique().sort())
        .filter(pl.col("steps_to_reference") > 0)
        .with_columns(gamma=pl.col("steps_to_reference").cast(pl.Float64).pow(-0.5), source=pl.lit(ANALYTIC))
    )
    both = pl.concat([measured, analytic], how="vertical_relaxed")
    x = alt.X(
        "steps_to_reference:Q",
        scale=log_scale(both, ["steps_to_reference"], pad=1.05),
        axis=log_axis("steps remaining to the reference point, T − t (log)"),
    )
    y = alt.Y("gamma:Q", scale=log_scale(both, ["gamma"], pad=1.1), axis=log_axis("γ = cos(G, w − w*) (log)"))
    curve = alt.Chart(inline_values(analytic)).mark_line(strokeWidth=2, color=ANALYTIC_COLOR).encode(x=x, y=y)
    points = (
        alt.Chart(inline_values(measured))
        .mark_circle(size=14, opacity=0.6)
        .encode(
            x=x,
            y=y,
            color=alt.Color(
                "source:N",
                scale=alt.Scale(domain=[MEASURED], range=[MEASURED_COLOR]),
                legend=legend(None, symbolOpacity=1),
            ),
            tooltip=[
                alt.Tooltip("steps_to_reference:Q", title="steps remaining, T − t"),
                alt.Tooltip("gamma:Q", title="γ", format=".3f"),
            ],
        )
    )
    key = line_key(ANALYTIC, [1, 0], ANALYTIC_COLOR)
    chart = alt.layer(curve, points, key.properties(data=inline_values(analytic.head(1)))).properties(
        width=FULL_WIDTH, height=PANEL_HEIGHT + 40
    )
    subtitle = [
        "isotropic random walk with the endpoint as reference: γ(x_t) ≈ (T − t)^(−1/2) (eq. 8)",
        "every step is drawn, the last epoch too: this figure shows the effect of w* that the others leave out",
    ]
    if hidden:
        subtitle.append(f"log scale: {hidden} step(s) with γ ≤ 0 or undefined are not drawn")
    return finish(chart, "Cosine to the endpoint of a random walk", subtitle)


PLOT = Plot(
    "random_walk",
    random_walk,
    "steps",
    caption=(
        "γ at every step of an isotropic random walk in high dimension, with its own endpoint as the reference point, "
        "against the number of steps left to it (both axes log). The line is the first paper's equation (8), γ ≈ "
        "(T − t)^(−1/2): picking w* on the path makes γ positive and rise at the end without any structure in the "
        "landscape, an effect of the choice of w* that shows in the last epochs of every run. That is why every other "
        "figure leaves the last epoch before w* out, and this one, which is about that effect, draws it."
    ),
)
