"""Which of the paper's Section 4.1 properties hold, run by run: the claims table as a grid."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import altair as alt
import polars as pl

from pathgeo.figures import Plot
from pathgeo.figures.style import Figure, distinct_runs, finish, inline_values, require_columns

HOLDS, FAILS = "holds", "fails"
UNDETERMINED = "n/a"
# Blue and orange, told apart with any colour vision; a failing cell's text is also marked (× is in every font,
# ✓ and ✗ are not in the renderer's).
VERDICT_COLORS = {HOLDS: "#9ecae1", FAILS: "#fdae6b"}
VERDICT_MARKS = {HOLDS: "", FAILS: "× "}


def _percent(value: float | None) -> str:
    return UNDETERMINED if value is None or value != value else f"{100 * value:.1f}%"


def _number(value: float | None, sign: bool = False) -> str:
    if value is None or value != value:
        return UNDETERMINED
    return f"{value:+.2f}" if sign else f"{value:.2f}"


def _share(threshold: float) -> str:
    return f"{100 * threshold:g}%"


# (column header from the run's thresholds, verdict column, how the measured value reads in the cell)
CLAIM_CELLS: list[tuple[Callable[[dict[str, Any]], str], str, Callable[[dict[str, Any]], str]]] = [
    (
        lambda t: f"γ > 0 on ≥ {_share(t['min_frac_steps_gamma_positive'])} of steps",
        "holds_gamma_positive",
        lambda run: _percent(run["frac_steps_gamma_positive"]),
    ),
    (
        lambda t: f"γ stable: CV of epoch means ≤ {t['max_gamma_epoch_cv']:g}",
        "holds_gamma_stable",
        lambda run: _number(run["gamma_epoch_cv"]),
    ),
    (
        lambda t: f"min γ > 0 on ≥ {_share(t['min_frac_epochs_min_gamma_positive'])} of epochs",
        "holds_min_gamma_positive",
        lambda run: _percent(run["frac_epochs_min_gamma_positive"]),
    ),
    (
        lambda t: f"RSI / EB trend: |ρ| ≥ {t['min_abs_trend']:g} or CV ≤ {t['max_gamma_epoch_cv']:g}",
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


def claims(claims: pl.DataFrame) -> Figure:
    """Which of the paper's properties hold for each run: the measured value per cell, its colour and mark the
    verdict against the threshold in the column header (the table's threshold columns)."""
    measured = [
        "frac_steps_gamma_positive",
        "gamma_epoch_cv",
        "frac_epochs_min_gamma_positive",
        "rsi_trend",
        "eb_trend",
    ]
    order = ["dataset", "model", "optimizer", "batch_size", "seed", "label"]
    require_columns(claims, "claims", ["run_id", *order, *measured, *THRESHOLDS, *(cell[1] for cell in CLAIM_CELLS)])
    thresholds = claims.select(THRESHOLDS).unique()
    if thresholds.height != 1:
        raise ValueError(f"the claims table holds runs decided with different thresholds: {thresholds.to_dicts()}")
    t = thresholds.row(0, named=True)
    headers = [header(t) for header, _, _ in CLAIM_CELLS]
    runs = distinct_runs(claims.sort(order, nulls_last=True))
    cells = pl.DataFrame(
        [
            {
                "run": run["run"],
                "property": header,
                "value": text(run),
                "verdict": HOLDS if run[verdict] else FAILS,
            }
            for run in runs.to_dicts()
            for header, (_, verdict, text) in zip(headers, CLAIM_CELLS)
        ]
    ).with_columns((pl.col("verdict").replace_strict(VERDICT_MARKS) + pl.col("value")).alias("text"))
    verdicts = [verdict for verdict in VERDICT_COLORS if verdict in set(cells.get_column("verdict"))]
    base = alt.Chart().encode(
        x=alt.X(
            "property:N",
            title=None,
            sort=headers,
            axis=alt.Axis(orient="top", labelAngle=0, labelLimit=0, domain=False, ticks=False),
        ),
        y=alt.Y(
            "run:N",
            title=None,
            sort=runs.get_column("run").to_list(),
            axis=alt.Axis(labelLimit=0, domain=False, ticks=False),
        ),
    )
    cell = base.mark_rect(stroke="white", strokeWidth=2).encode(
        color=alt.Color(
            "verdict:N",
            title="verdict",
            scale=alt.Scale(domain=verdicts, range=[VERDICT_COLORS[v] for v in verdicts]),
        ),
        tooltip=[
            alt.Tooltip("run:N", title="run"),
            alt.Tooltip("property:N", title="property"),
            alt.Tooltip("value:N", title="measured"),
            alt.Tooltip("verdict:N", title="verdict"),
        ],
    )
    text = base.mark_text(fontSize=11, color="black").encode(text="text:N")
    chart = alt.layer(cell, text, data=inline_values(cells)).properties(width=alt.Step(250), height=alt.Step(22))
    return finish(
        chart,
        "Do the paper's properties hold?",
        [
            "one row per run; each cell: the measured value against the threshold in the column header, marked × "
            "where it misses it",
            "measured against the final weights w*, without the last epoch before w*",
        ],
    )


PLOT = Plot(
    "claims",
    claims,
    "claims",
    caption=(
        "The first paper's Section 4.1 properties, run by run: γ > 0 on almost every step, γ stable across epochs "
        "(coefficient of variation of the epoch means), every epoch's smallest γ > 0, and RSI and EB following "
        "predictable trends (monotone, |Spearman ρ| of the epoch means with the epoch, or stable). Each cell holds the "
        "measured value, blue where it meets the threshold in its column header, orange and marked × where it does "
        "not; the thresholds are the config's, fixed before any run."
    ),
)
