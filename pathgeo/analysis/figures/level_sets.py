"""Level sets of the objective on a plane around the optimization path: Figures 14 and 15 of the paper."""

from __future__ import annotations

import math

import altair as alt
import polars as pl

from pathgeo.analysis.figures import Plot
from pathgeo.analysis.figures.style import FULL_WIDTH, SPACING, Figure, Tip, finish, hover_line, legend
from pathgeo.analysis.figures.tables import EPOCH, STEP, inline_values, require_columns
from pathgeo.analysis.figures.words import value_words

LEVELS = 10  # bands of equal share of the grid: each one a level set
# A panel is as wide as the report allows and as high as its axes' ratio makes it, within these heights: beyond them
# the shorter axis is extended (its scale stays that of the other).
MIN_HEIGHT, MAX_HEIGHT = 120, 420
# The viridis colours of the LEVELS bands, dark (low objective) to light; explicit, so that the legend and the path's
# points share them.
LEVEL_SCHEME = alt.SchemeParams("viridis", count=LEVELS)
OVERLAP = 0.02  # of a grid cell, on each side


def thresholds(values: pl.Series, levels: int = LEVELS) -> list[float]:
    """The boundaries of `levels` bands holding an equal share of the values (the grid's quantiles)."""
    return [float(values.quantile(k / levels, interpolation="linear")) for k in range(1, levels)]


def decimals(bounds: list[float]) -> int:
    """The fewest decimals (at least as many as the bounds' magnitude asks for three significant digits) at which
    all the bounds read differently: a legend prints every bound with the same precision."""
    largest = max(abs(b) for b in bounds) or 1.0
    places = max(0, 2 - math.floor(math.log10(largest)))
    while len({f"{b:.{places}f}" for b in bounds}) < len(bounds) and places < 12:
        places += 1
    return places


def to_scale(a_span: float, b_span: float) -> tuple[int, int, float]:
    """A panel's width and height in pixels and the span of its b axis, so that a unit of a and of b have one length:
    the width the report allows, the height the ratio makes it (within MIN_HEIGHT and MAX_HEIGHT: beyond, the b axis
    spans more than the grid, or the panel narrows)."""
    ratio = b_span / a_span if a_span > 0 else 1.0
    height = FULL_WIDTH * ratio
    if height > MAX_HEIGHT:
        return round(MAX_HEIGHT / ratio), MAX_HEIGHT, b_span
    if height < MIN_HEIGHT:
        return FULL_WIDTH, MIN_HEIGHT, a_span * MIN_HEIGHT / FULL_WIDTH
    return FULL_WIDTH, round(height), b_span


def level_sets(landscape: pl.DataFrame, train: pl.DataFrame) -> Figure:
    """The objective on the plane through w* spanned by the path's two principal directions (bands of equal share
    of the grid), with the path projected on it, one panel per run, axes to scale. The path leaves the plane where
    it has components in other directions: the subtitle says how far, and each point of the path is filled with the
    objective at w_t itself in the grid's colours, so that a point whose colour differs from the ground under it
    shows where the plane's objective is not the path's. The runs' train logs say how far the objective fell from
    the first epoch to the last. Paper Figures 14 (ALM) and 15 (SM)."""
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
    require_columns(train, "train", ["run_id", "epoch", "train_loss"])
    panels, notes = [], []
    for run_id in landscape.get_column("run_id").unique().sort().to_list():
        run = landscape.filter(pl.col("run_id") == run_id)
        dataset = value_words("dataset", run.get_column("dataset")[0])
        grid = run.filter(pl.col("source") == "grid").select("a", "b", "loss")
        path = (
            run.filter(pl.col("source") == "path")
            .select("step", "epoch", "a", "b", "loss", "off_plane")
            .sort("step")
            .with_columns((pl.col("step") + 1).alias(STEP), (pl.col("epoch") + 1).alias(EPOCH))
        )
        a_values, b_values = grid.get_column("a").unique().sort(), grid.get_column("b").unique().sort()
        cell_a = (a_values[-1] - a_values[0]) / (len(a_values) - 1)
        cell_b = (b_values[-1] - b_values[0]) / (len(b_values) - 1)
        # Each cell a little larger than its share of the grid: cells that only touch leave light seams when drawn.
        half_a, half_b = cell_a * (0.5 + OVERLAP), cell_b * (0.5 + OVERLAP)
        grid = grid.with_columns(
            a2=pl.col("a") + half_a, b2=pl.col("b") + half_b, a=pl.col("a") - half_a, b=pl.col("b") - half_b
        )
        a_domain = [a_values[0] - cell_a / 2, a_values[-1] + cell_a / 2]
        b_low, b_high = b_values[0] - cell_b / 2, b_values[-1] + cell_b / 2
        width, height, b_span = to_scale(a_domain[1] - a_domain[0], b_high - b_low)
        middle = (b_low + b_high) / 2
        b_domain = [middle - b_span / 2, middle + b_span / 2]
        bounds = thresholds(grid.get_column("loss"))
        level_scale = alt.Scale(type="threshold", domain=bounds, scheme=LEVEL_SCHEME)
        places = decimals(bounds)
        explained_a, explained_b = run.select("explained_a", "explained_b").row(0)
        x = alt.X(
            "a:Q",
            title=f"first principal direction ({100 * explained_a:.0f}% of the path)",
            scale=alt.Scale(domain=a_domain, nice=False, zero=False),
        )
        y = alt.Y(
            "b:Q", title=f"second ({100 * explained_b:.0f}%)", scale=alt.Scale(domain=b_domain, nice=False, zero=False)
        )
        color = alt.Color(
            "loss:Q",
            title=f"objective on the plane, {LEVELS} bands of equal area",
            scale=level_scale,
            legend=legend("objective on the plane", format=f",.{places}f"),
        )
        # No ARIA label per cell: 1,681 cells a panel, each labelled with every field, made the SVG 2.5 MB.
        heat = alt.Chart(inline_values(grid)).mark_rect(aria=False).encode(x=x, x2="a2:Q", y=y, y2="b2:Q", color=color)
        tips = [
            Tip(STEP, "step"),
            Tip(EPOCH, "epoch"),
            Tip("loss", "objective at w_t", ".4g"),
            Tip("off_plane", "distance of w_t from the plane", ".3g"),
        ]
        line = hover_line(
            alt.Chart(inline_values(path)),
            x,
            y,
            {"color": alt.value("black"), "order": "step:Q"},
            tips,
            stroke_width=1.0,
        )
        at_w = (
            alt.Chart(inline_values(path))
            .mark_circle(size=12, stroke="black", strokeWidth=0.3, opacity=1)
            .encode(x=x, y=y, color=alt.Color("loss:Q", scale=level_scale, legend=None))
        )
        ends = path.filter((pl.col("step") == pl.col("step").min()) | (pl.col("step") == pl.col("step").max()))
        ends = ends.with_columns(
            pl.when(pl.col("step") == pl.col("step").min())
            .then(pl.lit("start w0"))
            .otherwise(pl.lit("end w*"))
            .alias("point")
        )
        marks = (
            alt.Chart(inline_values(ends))
            .mark_point(filled=True, size=110, stroke="black", strokeWidth=1.2, fill="white")
            .encode(
                x=x,
                y=y,
                shape=alt.Shape(
                    "point:N",
                    title=None,
                    scale=alt.Scale(domain=["start w0", "end w*"], range=["circle", "diamond"]),
                    legend=legend(None),
                ),
            )
        )
        panels.append(
            alt.layer(heat, line[0], at_w, line[1], marks)
            .resolve_scale(color="shared")
            .properties(width=width, height=height, title=alt.TitleParams(dataset, fontSize=13, anchor="start"))
        )
        off = path.get_column("off_plane")
        extent = math.hypot(a_domain[1] - a_domain[0], b_high - b_low)
        log = train.filter(pl.col("run_id") == run_id).sort("epoch").get_column("train_loss")
        if log.len():
            notes.append(
                f"{dataset}: objective {log[0]:.4g} in epoch 1, {log[-1]:.4g} in epoch {log.len()} (epoch means)"
            )
        notes.append(
            f"{dataset}: the path lies up to {off.max():.3g} (median {off.median():.3g}) off the plane, "
            f"{100 * off.max() / extent:.0f}% of its diagonal"
        )
    chart = alt.vconcat(*panels, spacing=SPACING + 12).resolve_scale(color="independent", shape="shared")
    return finish(
        chart,
        "Level sets of the objective around the optimization path",
        [
            (
                "ground: the objective on the plane through w* along the path's two principal directions, in "
                f"{LEVELS} bands of equal area"
            ),
            (
                "line: the path w0 … w* projected on the plane, each point filled with the objective at w_t itself; "
                "axes to scale"
            ),
            *notes,
        ],
    )


PLOT = Plot(
    "level_sets",
    level_sets,
    "landscape",
    also=("train",),
    caption=(
        "Level sets of the objective on a plane around the optimization path, one panel per run, its axes to scale. "
        "The plane passes through the final weights w* and is spanned by the two principal directions of the path's "
        "offsets w_t − w* (each axis says what share of the path it carries); the ground's colour is the training loss "
        "on the plane (the mean of one epoch's minibatch losses), in ten bands holding a tenth of the plane each, so "
        "that each band boundary is a level line. The black line is the path projected on the plane, from w0 (circle) "
        "to w* (diamond); the path has components off the plane (the subtitle says how far), so each of its points is "
        "filled with the objective at w_t itself in the same colours: where a point's colour differs from the ground "
        "under it, the plane does not show the objective the path met. The tooltip gives the objective at w_t and its "
        "distance from the plane; the subtitle gives each run's objective in its first and last epoch (the mean over "
        "the epoch's steps, from its train log)."
    ),
)
