"""Level sets of the objective on a plane around the optimization path: Figures 14 and 15 of the paper."""

from __future__ import annotations

import altair as alt
import polars as pl

from pathgeo.figures import Plot
from pathgeo.figures.style import (
    Figure,
    finish,
    hover_line,
    inline_values,
    require_columns,
    value_words,
)

PANEL_SIZE = 300
LEVELS = 10  # bands of equal share of the grid: each one a level set


def level_sets(landscape: pl.DataFrame) -> Figure:
    """The objective on the plane through w* spanned by the path's two principal directions (bands of equal share
    of the grid), with the path projected on it, one panel per run. Paper Figures 14 (ALM) and 15 (SM)."""
    columns = [
        "run_id",
        "dataset",
        "source",
        "a",
        "b",
        "loss",
        "step",
        "epoch",
        "off_plane",
        "explained_a",
        "explained_b",
    ]
    require_columns(landscape, "landscape", columns)
    panels = []
    for run_id in landscape.get_column("run_id").unique().sort().to_list():
        run = landscape.filter(pl.col("run_id") == run_id)
        dataset = value_words(run.get_column("dataset")[0])
        # Only the columns drawn: the spec inlines (and validates) every value it is given.
        grid = run.filter(pl.col("source") == "grid").select("a", "b", "loss")
        path = run.filter(pl.col("source") == "path").select("source", "step", "epoch", "a", "b", "loss", "off_plane")
        cell_a = (grid.get_column("a").max() - grid.get_column("a").min()) / (grid.get_column("a").n_unique() - 1)
        cell_b = (grid.get_column("b").max() - grid.get_column("b").min()) / (grid.get_column("b").n_unique() - 1)
        grid = grid.with_columns(
            a2=pl.col("a") + cell_a / 2,
            b2=pl.col("b") + cell_b / 2,
            a=pl.col("a") - cell_a / 2,
            b=pl.col("b") - cell_b / 2,
        )
        explained = run.select("explained_a", "explained_b").row(0)
        x = alt.X(
            "a:Q",
            title=f"first principal direction of w − w* ({100 * explained[0]:.0f}% of the path)",
            scale=alt.Scale(nice=False, zero=False),
        )
        y = alt.Y(
            "b:Q",
            title=f"second principal direction ({100 * explained[1]:.0f}%)",
            scale=alt.Scale(nice=False, zero=False),
        )
        level_scale = alt.Scale(type="quantile", scheme=alt.SchemeParams("viridis", count=LEVELS))
        level_color = alt.Color(
            "loss:Q", title=["objective", f"({dataset})"], scale=level_scale, legend=alt.Legend(format=".4~g")
        )
        heat = (
            alt.Chart(inline_values(grid))
            .mark_rect(strokeWidth=0.5)
            .encode(
                x=x,
                x2="a2:Q",
                y=y,
                y2="b2:Q",
                color=level_color,
                # The cell's own colour as its outline: no seams between cells.
                stroke=alt.Stroke("loss:Q", scale=level_scale, legend=None),
            )
        )
        tooltip = [
            alt.Tooltip("step:Q", title="step"),
            alt.Tooltip("epoch:Q", title="epoch"),
            alt.Tooltip("loss:Q", title="objective at w_t", format=".4g"),
            alt.Tooltip("off_plane:Q", title="distance of w_t from the plane", format=".3g"),
        ]
        ends = path.filter((pl.col("step") == pl.col("step").min()) | (pl.col("step") == pl.col("step").max()))
        ends = ends.with_columns(
            pl.when(pl.col("step") == pl.col("step").min())
            .then(pl.lit("start w0"))
            .otherwise(pl.lit("end w*"))
            .alias("point")
        )
        marks = (
            alt.Chart(inline_values(ends))
            .mark_point(filled=True, size=90, stroke="black", strokeWidth=1)
            .encode(
                x=x,
                y=y,
                shape=alt.Shape(
                    "point:N", title=None, scale=alt.Scale(domain=["start w0", "end w*"], range=["circle", "diamond"])
                ),
                fill=alt.value("white"),
            )
        )
        line = hover_line(
            alt.Chart(inline_values(path.sort("step"))),
            x,
            y,
            alt.value("black"),
            tooltip,
            detail=None,
            stroke_width=1.1,
        )
        line[0] = line[0].encode(order="step:Q", opacity=alt.value(0.75))
        panels.append(
            alt.layer(heat, *line, marks).properties(
                width=PANEL_SIZE, height=PANEL_SIZE, title=alt.TitleParams(f"objective: {dataset}", fontSize=13)
            )
        )
    chart = alt.hconcat(*panels, spacing=40).resolve_scale(color="independent", stroke="independent", shape="shared")
    return finish(
        chart,
        "Level sets of the objective around the optimization path",
        [
            "colour: the objective on the plane through w* spanned by the path's two principal directions, in "
            f"{LEVELS} bands "
            "of equal share of the plane (each band a level set)",
            "black: the path w0 … w*, projected on the plane (hover for the objective at w_t and its distance "
            "from the plane);"
            " the axes are not to the same scale",
        ],
    )


PLOT = Plot(
    "level_sets",
    level_sets,
    "landscape",
    caption=(
        "Level sets of the objective on a plane around the optimization path, one panel per run. The plane passes "
        "through the final weights w* and is spanned by the two principal directions of the path's offsets w_t − w* "
        "(each axis says what share of the path it carries); the colour is the training loss there (the mean of one "
        "epoch's minibatch losses), in ten bands holding a tenth of the plane each, so that each band boundary is a "
        "level line. The black line is the path projected on the plane, from w0 (circle) to w* (diamond); the "
        "tooltip gives the objective at w_t itself and its distance from the plane."
    ),
)
