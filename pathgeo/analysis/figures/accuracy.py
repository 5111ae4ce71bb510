"""The accuracy of the runs per epoch, from their train logs: what the first paper's Appendix A tables report."""

from __future__ import annotations

import altair as alt
import polars as pl

from pathgeo.analysis.figures import COLOR, Plot
from pathgeo.analysis.figures.style import (
    BY_RUN,
    HALF_WIDTH,
    SMALL_HEIGHT,
    SPACING,
    Figure,
    Tip,
    epoch_domain,
    epoch_x,
    finish,
    hover_line,
    level_filter,
    line_encoding,
    linear_scale,
    lines,
    varying_factor,
    width_note,
)
from pathgeo.analysis.figures.tables import EPOCH, inline_values, require_columns, with_epoch_number, with_series
from pathgeo.analysis.figures.words import experiment_title, factor_title

SPLITS = {"val_accuracy": "validation", "train_accuracy": "training"}


def accuracy(train: pl.DataFrame, color: str = BY_RUN) -> Figure:
    """Validation and training accuracy after each epoch: a row of two panels (validation, training) per experiment,
    on one accuracy axis (each experiment over its own epochs), each run a line coloured by the experiment's factor
    (by `color` where given: one colour per factor level, as in every figure; runs of one colour that differ in their
    seed or width dashed apart); runs without an accuracy (the synthetic objectives) are left out."""
    require_columns(train, "train", ["experiment", "run_id", "label", "epoch", "train_accuracy", "val_accuracy"])
    measured = train.filter(pl.col("val_accuracy").is_not_null())
    if measured.is_empty():
        raise ValueError("the train table has no accuracy: its runs are not classifiers")
    long = (
        with_epoch_number(measured.with_columns(pl.lit("final").alias("reference")))
        .unpivot(
            index=[c for c in measured.columns if c not in SPLITS] + ["reference", EPOCH],
            on=list(SPLITS),
            variable_name="split",
            value_name="accuracy",
        )
        .with_columns(pl.col("split").replace_strict(SPLITS), (pl.col("accuracy") * 100).alias("percent"))
    )
    scale = linear_scale(long, ["percent"], pad=0.02)
    rows = []
    for experiment in long.get_column("experiment").unique(maintain_order=True).to_list():
        runs = with_series(long.filter(pl.col("experiment") == experiment))
        factor = color if color != BY_RUN else varying_factor(runs)
        drawn = lines(runs, factor)
        panels = []
        for split in SPLITS.values():
            tips = [
                Tip("run", "run"),
                Tip("split", "accuracy on"),
                Tip(EPOCH, "after epoch"),
                Tip("percent", "accuracy (%)", ".1f"),
            ]
            layers = hover_line(
                alt.Chart().transform_filter(level_filter("split", split)),
                # Each experiment over its own epochs (15 of the architectures beside 30: no empty half).
                epoch_x(domain=epoch_domain(runs)),
                alt.Y("percent:Q", title=f"{split} accuracy (%)", scale=scale),
                line_encoding(drawn),
                tips,
            )
            panels.append(alt.layer(*layers).properties(width=HALF_WIDTH, height=SMALL_HEIGHT))
        title = alt.TitleParams(experiment_title(experiment), fontSize=13, anchor="start")
        rows.append(alt.hconcat(*panels, data=inline_values(drawn.data), spacing=SPACING, title=title))
    chart = alt.vconcat(*rows, spacing=SPACING + 8).resolve_scale(color="independent", strokeDash="independent")
    return finish(
        chart,
        "Accuracy of the runs" + ("" if color == BY_RUN else f", by {factor_title(color)}"),
        [
            (
                "after each epoch: on the validation set (left) and over the epoch's training minibatches (right); "
                "epochs count from 1"
            ),
            *width_note(train),
        ],
    )


def caption(color: str = BY_RUN) -> str:
    by = "the factor its runs differ in" if color == BY_RUN else factor_title(color)
    return (
        "The accuracy after each epoch, from the runs' train logs: on the validation set (the held-out split of the "
        "dataset, left) and over the epoch's training minibatches as they were trained (right), one row per "
        f"experiment, coloured by {by} (the same colours as in the other figures; runs that differ in their seed or "
        "width dashed apart), all panels on one accuracy axis. The geometry figures describe these same runs: this "
        "says how well each one trained."
    )


PLOT = Plot("accuracy", accuracy, "train", {"color": COLOR}, caption=caption, needs_w_star=False)
