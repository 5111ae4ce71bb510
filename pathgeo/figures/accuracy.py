"""The accuracy of the runs per epoch, from their train logs: what the first paper's Appendix A tables report."""

from __future__ import annotations

import altair as alt
import polars as pl

from pathgeo.aggregate import DESCRIPTORS
from pathgeo.columns import FACTORS
from pathgeo.figures import BAND, COLOR, Plot
from pathgeo.figures.style import (
    BAND_OPACITY,
    PANEL_HEIGHT,
    PANEL_WIDTH,
    Figure,
    distinct_runs,
    epoch_x,
    factor_color,
    factor_title,
    finish,
    hover_line,
    inline_values,
    require_columns,
    width_note,
    without_seed,
)

TRAIN, VALIDATION = "training", "validation"


def accuracy(train: pl.DataFrame, color: str = "label", band: str = "steps") -> Figure:
    """Validation accuracy (solid) and training accuracy (dashed) after each epoch, one panel per experiment, each
    with its own legend; runs without an accuracy (the synthetic objectives) are left out.

    `band="seeds"`: runs that differ only in their seed are one line, their mean, with a band of their range (a
    label loses its seed: "optimizer=adam seed=1" is drawn as "Adam"). With `steps` (the default) every run is a
    line: a train log has one value per epoch, there is no spread over steps to draw."""
    require_columns(train, "train", ["experiment", "run_id", "label", "epoch", "train_accuracy", "val_accuracy"])
    measured = train.filter(pl.col("val_accuracy").is_not_null())
    if measured.is_empty():
        raise ValueError("the train table has no accuracy: its runs are not classifiers")
    if band == "seeds":
        measured = seed_groups(measured)
    long = measured.unpivot(
        index=[c for c in measured.columns if c not in ("train_accuracy", "val_accuracy")],
        on=["train_accuracy", "val_accuracy"],
        variable_name="split",
        value_name="accuracy",
    ).with_columns(
        pl.col("split").replace_strict({"train_accuracy": TRAIN, "val_accuracy": VALIDATION}),
        (pl.col("accuracy") * 100).alias("percent"),
        (pl.col("epoch") + 1).alias("after"),
        pl.concat_str([pl.col("run_id"), pl.col("split")], separator=" · ").alias("series"),
    )
    if band == "seeds":
        keys = ["experiment", "label", "split", "epoch", "after", *(f for f in FACTORS if f != "seed"), *DESCRIPTORS]
        long = (
            long.group_by([key for key in keys if key in long.columns], maintain_order=True)
            .agg(
                pl.col("percent").mean(),
                pl.col("percent").min().alias("low"),
                pl.col("percent").max().alias("high"),
                pl.col("seed").n_unique().alias("seeds"),
                pl.col("run_id").first(),
            )
            .with_columns(pl.concat_str([pl.col("label"), pl.col("split")], separator=" · ").alias("series"))
        )
    panels = []
    for experiment in long.get_column("experiment").unique(maintain_order=True).to_list():
        data, color_encoding = factor_color(distinct_runs(long.filter(pl.col("experiment") == experiment)), color)
        dash = alt.StrokeDash(
            "split:N",
            title="accuracy on",
            scale=alt.Scale(domain=[VALIDATION, TRAIN], range=[[1, 0], [5, 3]]),
            legend=alt.Legend(symbolType="stroke", symbolStrokeWidth=2),
        )
        tooltip = [
            alt.Tooltip("run:N", title="run"),
            alt.Tooltip("split:N", title="accuracy on"),
            alt.Tooltip("after:Q", title="after epoch"),
            alt.Tooltip("percent:Q", title="accuracy (%)", format=".1f"),
        ]
        x, y = epoch_x("after", "epochs trained"), alt.Y("percent:Q", title="accuracy (%)", scale=alt.Scale(zero=False))
        layers = []
        if band == "seeds":
            tooltip += [
                alt.Tooltip("seeds:Q", title="seeds"),
                alt.Tooltip("low:Q", title="lowest seed (%)", format=".1f"),
                alt.Tooltip("high:Q", title="highest seed (%)", format=".1f"),
            ]
            layers.append(
                alt.Chart()
                .mark_area(opacity=BAND_OPACITY)
                .encode(x=x, y="low:Q", y2="high:Q", color=color_encoding, detail=alt.Detail("series:N"))
            )
        layers += hover_line(alt.Chart(), x, y, color_encoding, tooltip, detail="series", stroke_dash=dash)
        panels.append(
            alt.layer(*layers, data=inline_values(data)).properties(
                width=PANEL_WIDTH,
                height=PANEL_HEIGHT - 40,
                title=alt.TitleParams(f"experiment {experiment}", fontSize=13, anchor="start"),
            )
        )
    chart = alt.vconcat(*panels, spacing=24).resolve_scale(color="independent", strokeDash="shared")
    spread = ["runs that differ only in their seed: their mean (line) and range (band)"] if band == "seeds" else []
    return finish(
        chart,
        "Accuracy of the runs" + ("" if color == "label" else f", by {factor_title(color)}"),
        [
            "after each epoch: on the validation set (solid) and over the epoch's training minibatches (dashed)",
            *spread,
            *width_note(train),
        ],
    )


def seed_groups(train: pl.DataFrame) -> pl.DataFrame:
    """The train rows with each run's label without its seed, so that runs that differ only in their seed share
    one (a label of the seed alone becomes "all seeds")."""
    return train.with_columns(pl.col("label").map_elements(without_seed, return_dtype=pl.String).alias("label"))


def caption(color: str = "label", band: str = "steps") -> str:
    by = factor_title(color)
    seeds = (
        " Runs that differ only in their seed are drawn as their mean with a band of their range."
        if band == "seeds"
        else ""
    )
    return (
        f"The accuracy after each epoch, by {by}, from the runs' train logs: on the validation set (solid; the "
        "held-out "
        "split of the dataset) and over the epoch's training minibatches as they were trained (dashed). One panel per "
        f"experiment with its own legend.{seeds} The geometry figures describe these same runs: this says how well "
        "each one trained."
    )


PLOT = Plot("accuracy", accuracy, "train", {"color": COLOR, "band": BAND}, caption=caption, needs_w_star=False)
