"""Which of the paper's Section 4.1 properties hold, run by run: the claims table as a grid."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import altair as alt
import polars as pl

from pathgeo.analysis.figures import Plot
from pathgeo.analysis.figures.style import SPACING, Figure, finish, legend, sorted_by_levels
from pathgeo.analysis.figures.tables import RUN, inline_values, require_columns, with_run_names
from pathgeo.analysis.figures.words import experiment_title

HOLDS, FAILS = "holds", "fails"
UNDETERMINED = "n/a"
# Blue and orange, told apart with any colour vision; a failing cell's text is also marked (× is in every font,
# ✓ and ✗ are not in the renderer's).
VERDICT_COLORS = {HOLDS: "#9ecae1", FAILS: "#fdae6b"}
VERDICT_MARKS = {HOLDS: "", FAILS: "× "}
CELL_WIDTH, ROW_HEIGHT = 92, 19
# The group of the runs of no experiment the figure names, and the one group of a figure that names none.
OTHER_RUNS, ALL_RUNS = "other runs", "all runs"
# Factors a group's rows are sorted by, so that levels read in order (batch size 32, 64, 128, 256).
ROW_ORDER = ["dataset", "model", "width", "optimizer", "batch_size", "schedule", "warmup_epochs", "peak_lr", "seed"]


def _percent(value: float | None) -> str:
    return UNDETERMINED if value is None or math.isnan(value) else f"{100 * value:.1f}%"


def _number(value: float | None, sign: bool = False) -> str:
    if value is None or math.isnan(value):
        return UNDETERMINED
    return f"{value:+.2f}" if sign else f"{value:.2f}"


def _share(threshold: float) -> str:
    return f"{100 * threshold:g}%"


# (column header from the run's thresholds, in lines, verdict column, how the measured value reads)
CLAIM_CELLS: list[tuple[Callable[[dict[str, Any]], str], str, Callable[[dict[str, Any]], str]]] = [
    (
        lambda t: f"γ > 0 on\n≥ {_share(t['min_frac_steps_gamma_positive'])} of steps",
        "holds_gamma_positive",
        lambda run: _percent(run["frac_steps_gamma_positive"]),
    ),
    (
        lambda t: f"γ stable: CV of\nepoch means ≤ {t['max_gamma_epoch_cv']:g}",
        "holds_gamma_stable",
        lambda run: _number(run["gamma_epoch_cv"]),
    ),
    (
        lambda t: f"min γ > 0 on ≥\n{_share(t['min_frac_epochs_min_gamma_positive'])} of epochs",
        "holds_min_gamma_positive",
        lambda run: _percent(run["frac_epochs_min_gamma_positive"]),
    ),
    (
        lambda t: f"RSI / EB trend: |ρ| ≥\n{t['min_abs_trend']:g} or CV ≤ {t['max_gamma_epoch_cv']:g}",
        "holds_trend",
        lambda run: f"{_number(run['rsi_trend'], sign=True)} / {_number(run['eb_trend'], sign=True)}",
    ),
]
THRESHOLDS = [
    "min_frac_steps_gamma_positive",
    "max_gamma_epoch_cv",
    "min_frac_epochs_min_gamma_positive",
    "min_abs_trend",
]
MEASURED = ["frac_steps_gamma_positive", "gamma_epoch_cv", "frac_epochs_min_gamma_positive", "rsi_trend", "eb_trend"]


def header_text(header: str) -> str:
    """A column header on one line, for its tooltip."""
    return header.replace("\n", " ")


def grouped(claims: pl.DataFrame, train: pl.DataFrame) -> pl.DataFrame:
    """The claims rows of each experiment of the train tables, in their order (a run in several experiments is a row
    of each, named as there), then the runs of none (OTHER_RUNS), each group sorted by factor. A run whose label is a
    description is named briefly: its group heading says what it is a run of."""
    # A claims figure that names no experiments reads no train table: its runs are one group.
    named = "experiment" in train.columns
    members = (
        train.select("experiment", "run_id", "label").unique(["experiment", "run_id"], maintain_order=True)
        if named
        else pl.DataFrame(schema={"experiment": pl.String, "run_id": pl.String, "label": pl.String})
    )
    experiments = members.get_column("experiment").unique(maintain_order=True).to_list()
    groups = [(experiment, members.filter(pl.col("experiment") == experiment)) for experiment in experiments]
    rest = claims.filter(~pl.col("run_id").is_in(members.get_column("run_id").to_list()))
    groups.append((OTHER_RUNS if named else ALL_RUNS, rest.select("run_id", "label")))
    order = [c for c in ROW_ORDER if c in claims.columns]
    parts = [
        sorted_by_levels(
            with_run_names(claims.drop("label").join(runs.select("run_id", "label"), on="run_id"), brief=True), order
        ).with_columns(pl.lit(experiment).alias("experiment"))
        for experiment, runs in groups
        if not runs.is_empty()
    ]
    return pl.concat(parts, how="diagonal_relaxed")


def claims(claims: pl.DataFrame, train: pl.DataFrame) -> Figure:
    """Which of the paper's properties hold for each run: the measured value per cell, its colour and mark the
    verdict against the threshold in the column header (the table's threshold columns). Rows are grouped by the
    experiments of the figure (the train tables say which runs each has), in their order: a run in several is a row
    of each, named as there, so that each group is its experiment whole; runs of none follow."""
    require_columns(claims, "claims", ["run_id", "label", *MEASURED, *THRESHOLDS, *(cell[1] for cell in CLAIM_CELLS)])
    thresholds = claims.select(THRESHOLDS).unique()
    if thresholds.height != 1:
        raise ValueError(f"the claims table holds runs decided with different thresholds: {thresholds.to_dicts()}")
    t = thresholds.row(0, named=True)
    headers = [header(t) for header, _, _ in CLAIM_CELLS]
    runs = grouped(claims, train)
    cells = pl.DataFrame(
        [
            {
                "experiment": experiment_title(run["experiment"]),
                RUN: run[RUN],
                "property": header,
                "property_text": header_text(header),
                "value": text(run),
                "verdict": HOLDS if run[verdict] else FAILS,
            }
            for run in runs.to_dicts()
            for header, (_, verdict, text) in zip(headers, CLAIM_CELLS)
        ]
    ).with_columns((pl.col("verdict").replace_strict(VERDICT_MARKS) + pl.col("value")).alias("text"))
    verdicts = [verdict for verdict in VERDICT_COLORS if verdict in set(cells.get_column("verdict"))]
    color = alt.Color(
        "verdict:N",
        title="verdict",
        scale=alt.Scale(domain=verdicts, range=[VERDICT_COLORS[v] for v in verdicts]),
        legend=legend("verdict"),
    )
    tip = [
        alt.Tooltip(f"{RUN}:N", title="run"),
        alt.Tooltip("experiment:N", title="experiment"),
        alt.Tooltip("property_text:N", title="property"),
        alt.Tooltip("value:N", title="measured"),
        alt.Tooltip("verdict:N", title="verdict"),
    ]
    header = (
        alt.Chart(
            inline_values(
                pl.DataFrame(
                    [{"property": h, "line": k, "text": line} for h in headers for k, line in enumerate(h.split("\n"))]
                )
            )
        )
        .mark_text(fontSize=11, fontWeight="bold", baseline="middle")
        .encode(
            x=alt.X("property:N", title=None, sort=headers, axis=None),
            y=alt.Y("line:O", title=None, axis=None),
            text="text:N",
        )
        .properties(width=CELL_WIDTH * len(headers), height=alt.Step(14), view=alt.ViewBackground(stroke=None))
    )
    groups = [header]
    for experiment in cells.get_column("experiment").unique(maintain_order=True).to_list():
        rows = cells.filter(pl.col("experiment") == experiment)
        base = alt.Chart().encode(
            x=alt.X("property:N", title=None, sort=headers, axis=None),
            y=alt.Y(
                f"{RUN}:N",
                title=None,
                sort=rows.get_column(RUN).unique(maintain_order=True).to_list(),
                axis=alt.Axis(labelLimit=0, domain=False, ticks=False),
            ),
            tooltip=tip,
        )
        cell = base.mark_rect(stroke="white", strokeWidth=2).encode(color=color)
        # The value is text over its cell, with the cell's tooltip: hovering the number shows it too.
        value = base.mark_text(fontSize=11, color="black").encode(text="text:N")
        groups.append(
            alt.layer(cell, value, data=inline_values(rows)).properties(
                width=CELL_WIDTH * len(headers),
                height=alt.Step(ROW_HEIGHT),
                # Anchored at the cells' left edge, not at the row labels' (whose widths differ from group to group).
                title=alt.TitleParams(experiment, fontSize=12, anchor="start", frame="group"),
            )
        )
    chart = alt.vconcat(*groups, spacing=SPACING - 6)
    return finish(
        chart,
        "Do the paper's properties hold?",
        [
            (
                "one row per run, grouped by experiment: the measured value against the threshold in the column's "
                "header, × where it misses"
            ),
            "measured against the final weights w*, without the last epoch before w*",
        ],
    )


PLOT = Plot(
    "claims",
    claims,
    "claims",
    also=("train",),
    caption=(
        "The first paper's Section 4.1 properties, run by run: γ > 0 on almost every step, γ stable across epochs "
        "(coefficient of variation of the epoch means), every epoch's smallest γ > 0, and RSI and EB following "
        "predictable trends (monotone, |Spearman ρ| of the epoch means with the epoch, or stable). Rows are grouped by "
        "the figure's experiments (a run in several is a row of each). Each cell holds the measured value, blue "
        "where it meets the threshold in its column header, orange and marked × where it does not; the thresholds are "
        "the config's, fixed before any run."
    ),
)
