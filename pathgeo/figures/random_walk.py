"""γ of the random walk against the steps left to its endpoint, with the law of equation (8)."""

from __future__ import annotations

import altair as alt
import polars as pl

from pathgeo.figures import Plot
from pathgeo.figures.style import (
    PANEL_HEIGHT,
    PANEL_WIDTH,
    Figure,
    finish,
    inline_values,
    require_columns,
)

MEASURED = "measured γ"
ANALYTIC = "analytic (T − t)^(−1/2)"


def random_walk(steps: pl.DataFrame) -> Figure:
    """Measured γ against the steps left to the reference, with the random-walk law.

    For an isotropic random walk in high dimension γ(x_t) ≈ (T − t)^(−1/2)
    (paper eq. 8): choosing w* on the path itself makes γ positive and rise at the end.
    """
    require_columns(steps, "steps", ["steps_to_reference", "gamma"])
    drawable = pl.col("steps_to_reference").gt(0) & pl.col("gamma").is_finite() & pl.col("gamma").gt(0)
    measured = steps.select("steps_to_reference", "gamma").filter(drawable)
    hidden = steps.height - measured.height
    analytic = (
        steps.select(pl.col("steps_to_reference").unique().sort())
        .filter(pl.col("steps_to_reference") > 0)
        .with_columns(gamma=pl.col("steps_to_reference").cast(pl.Float64).pow(-0.5))
    )
    data = pl.concat(
        [
            measured.with_columns(source=pl.lit(MEASURED)),
            analytic.with_columns(source=pl.lit(ANALYTIC)),
        ],
        how="vertical_relaxed",
    )
    x = alt.X(
        "steps_to_reference:Q",
        title="steps remaining to the reference point, T − t (log)",
        # Without nice=False the axis would run on to the next power of ten.
        scale=alt.Scale(type="log", nice=False),
    )
    y = alt.Y("gamma:Q", title="γ = cos(G, w − w*) (log)", scale=alt.Scale(type="log"))
    color = alt.Color(
        "source:N",
        title=None,
        scale=alt.Scale(domain=[MEASURED, ANALYTIC], range=["#4c78a8", "#e45756"]),
        legend=alt.Legend(symbolOpacity=1),
    )
    points = (
        alt.Chart()
        .transform_filter(alt.datum.source == MEASURED)
        .mark_circle(size=12, opacity=0.45)
        .encode(x=x, y=y, color=color)
    )
    curve = (
        alt.Chart()
        .transform_filter(alt.datum.source == ANALYTIC)
        .mark_line(strokeWidth=2.2)
        .encode(x=x, y=y, color=color)
    )
    chart = alt.layer(points, curve, data=inline_values(data)).properties(
        width=PANEL_WIDTH, height=PANEL_HEIGHT + 60
    )
    subtitle = ["isotropic random walk with the endpoint as reference: γ(x_t) ≈ (T − t)^(−1/2) (eq. 8)"]
    if hidden:
        subtitle.append(f"log scale: {hidden} step(s) with γ ≤ 0 or undefined are not drawn")
    return finish(chart, "Cosine to the endpoint of a random walk", subtitle)


PLOT = Plot("random_walk", random_walk, "steps")
