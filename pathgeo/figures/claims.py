"""Which of the paper's Section 4.1 properties hold, run by run: the claims table as a grid."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import altair as alt
import polars as pl

from pathgeo.figures import Plot
from pathgeo.figures.style import Figure, distinct_runs, finish, inline_values, require_columns

HOLDS, FAILS, UNDETERMINED = "holds", "fails", "n/a"


def _percent(value: float | None) -> str:
    return UNDETERMINED if value is None or value != value else f"{100 * value:.1f}%"


def _number(value: float | None, sign: bool = False) -> str:
    if value is None or value != value:
        return UNDETERMINED
    return f"{value:+.2f}" if sign else f"{value:.2f}"


def _verdict(holds: bool | None) -> str:
    return UNDETERMINED if holds is None else HOLDS if holds else FAILS


# (column header, verdict column, how the measured value reads in the cell)
CLAIM_CELLS: list[tuple[str, str, Callable[[dict[str, Any]], str]]] = [
    (
        "γ > 0 · share of steps",
        "holds_gamma_positive",
        lambda run: _percent(run["frac_steps_gamma_positive"]),
    ),
    (
        "γ stable · CV of epoch means",
        "holds_gamma_stable",
        lambda run: _number(run["gamma_epoch_cv"]),
    ),
    (
        "min γ > 0 · share of epochs",
        "holds_min_gamma_positive",
        lambda run: _percent(run["frac_epochs_min_gamma_positive"]),
    ),
    (
        "RSI / EB trend · Spearman ρ",
        "holds_trend",
        lambda run: f"{_number(run['rsi_trend'], sign=True)} / {_number(run['eb_trend'], sign=True)}",
    ),
]


def claims(claims: pl.DataFrame) -> Figure:
    """Which of the paper's properties hold for each run: measured value per cell,
    green where the property holds, red where it fails."""
    measured = [
        "frac_steps_gamma_positive",
        "gamma_epoch_cv",
        "frac_epochs_min_gamma_positive",
        "rsi_trend",
        "eb_trend",
    ]
    order = ["dataset", "model", "optimizer", "batch_size", "seed", "label"]
    require_columns(claims, "claims", ["run_id", *order, *measured, *(cell[1] for cell in CLAIM_CELLS)])
    runs = distinct_runs(claims.sort(order, nulls_last=True))
    cells = pl.DataFrame(
        [
            {"run": run["run"], "property": header, "value": text(run), "verdict": _verdict(run[verdict])}
            for run in runs.to_dicts()
            for header, verdict, text in CLAIM_CELLS
        ]
    )
    base = alt.Chart().encode(
        x=alt.X(
            "property:N",
            title=None,
            sort=[cell[0] for cell in CLAIM_CELLS],
            axis=alt.Axis(orient="top", labelAngle=0, labelLimit=200, domain=False, ticks=False),
        ),
        y=alt.Y(
            "run:N",
            title=None,
            sort=runs.get_column("run").to_list(),
            axis=alt.Axis(labelLimit=420, domain=False, ticks=False),
        ),
    )
    cell = base.mark_rect(stroke="white", strokeWidth=2).encode(
        color=alt.Color(
            "verdict:N",
            title="verdict",
            scale=alt.Scale(
                domain=[HOLDS, FAILS, UNDETERMINED], range=["#a6dba0", "#f4a582", "#dddddd"]
            ),
        ),
        tooltip=[
            alt.Tooltip("run:N", title="run"),
            alt.Tooltip("property:N", title="property"),
            alt.Tooltip("value:N", title="measured"),
            alt.Tooltip("verdict:N", title="verdict"),
        ],
    )
    text = base.mark_text(fontSize=11, color="black").encode(text="value:N")
    chart = alt.layer(cell, text, data=inline_values(cells)).properties(
        width=alt.Step(190), height=alt.Step(22)
    )
    return finish(
        chart,
        "Do the paper's properties hold?",
        "one row per run; cell text is the measured value, colour the verdict",
    )


PLOT = Plot("claims", claims, "claims")
