"""Pairwise gradient-correlation matrices of h-step windows, or the share of entries of opposite sign in each pair:
the second paper's Figures 1 (bottom row) and 8."""

from __future__ import annotations

from collections.abc import Sequence

import altair as alt
import polars as pl

from pathgeo.analysis.figures import EPOCHS, Plot
from pathgeo.analysis.figures.style import SPACING, Figure, finish
from pathgeo.analysis.figures.tables import NAME_FACTORS, RUN, inline_values, require_columns, with_run_names


def _nearest_epochs(available: list[int], requested: Sequence[int] | None) -> dict[int, list[int]]:
    """Each epoch to draw, mapped to the requested epochs it stands in for because
    they have no matrix (empty when it was itself requested or chosen by default)."""
    if requested is None:
        requested = [available[0], available[len(available) // 2], available[-1]]
    chosen: dict[int, list[int]] = {}
    for wanted in requested:
        # Ties go to the earlier epoch.
        epoch = min(available, key=lambda candidate: (abs(candidate - wanted), candidate))
        stand_in_for = chosen.setdefault(epoch, [])
        if wanted != epoch and wanted not in stand_in_for:
            stand_in_for.append(wanted)
    return dict(sorted(chosen.items()))


CELL = {
    "description": (
        "what each cell shows: the gradient correlation cos(G(i), G(j)) (corr, default) or the share of gradient "
        "entries of opposite sign at steps i and j (sign_flip)"
    ),
    "enum": ["corr", "sign_flip"],
}


def correlation_matrices(matrices: pl.DataFrame, epochs: Sequence[int] | None = None, cell: str = "corr") -> Figure:
    """Pairwise gradient-correlation matrices of an h-step window, one row of panels per run.

    `epochs` picks the windows (the epoch whose first step starts each); by default
    each run's first, middle and last.  A requested epoch without a matrix is replaced
    by the nearest one, and the panel title says so.  `cell="sign_flip"` shows in each
    cell the share of gradient entries whose sign differs between the two steps.
    Second paper, Figures 1 (bottom) and 8.
    """
    columns = ["run_id", "label", "epoch", "start_step", "i", "j", "corr", "sign_flip"]
    require_columns(matrices, "matrices", columns)
    if epochs is not None and len(epochs) == 0:
        raise ValueError("epochs is empty: name the epochs to draw, or leave it out for the first, middle and last")
    factors = [c for c in ("experiment", *NAME_FACTORS) if c in matrices.columns]
    # Steps and epochs count from 1 on the figure (the tables and the `epochs` option count from 0).
    data = with_run_names(matrices.select(*columns, *factors)).with_columns(
        step_i=pl.col("start_step") + pl.col("i") + 1, step_j=pl.col("start_step") + pl.col("j") + 1
    )
    base = alt.Chart().encode(
        x=alt.X("j:O", title="step j in window", axis=alt.Axis(labelAngle=0)),
        y=alt.Y("i:O", title="step i in window"),
    )
    if cell == "sign_flip":
        data = data.with_columns((pl.col("sign_flip") * 100).alias("flip_percent"))
        # 0 % (no entry flips) to 100 %, fixed so that panels compare; 50 % is what independent gradients give.
        color = alt.Color(
            "flip_percent:Q",
            title="entries of opposite sign (%)",
            scale=alt.Scale(domain=[0, 100], scheme="purples"),
            legend=alt.Legend(orient="bottom", direction="horizontal", gradientLength=240),
        )
        value = alt.Text("flip_percent:Q", format=".0f")
        saturated = alt.datum.flip_percent > 60
    else:
        # Red for aligned, blue for opposed gradients; fixed so panels compare.
        color = alt.Color(
            "corr:Q",
            title="gradient correlation",
            scale=alt.Scale(domain=[-1, 1], scheme="redblue", reverse=True),
            legend=alt.Legend(orient="bottom", direction="horizontal", gradientLength=240),
        )
        value = alt.Text("corr:Q", format=".2f")
        saturated = alt.expr.abs(alt.datum.corr) > 0.6
    tooltip = [
        alt.Tooltip(f"{RUN}:N", title="run"),
        alt.Tooltip("epoch_number:Q", title="epoch"),
        alt.Tooltip("step_i:Q", title="step i"),
        alt.Tooltip("step_j:Q", title="step j"),
        alt.Tooltip("corr:Q", title="cos(G(i), G(j))", format=".3f"),
        alt.Tooltip("sign_flip:Q", title="entries of opposite sign", format=".1%"),
    ]
    cells = base.mark_rect(stroke="white", strokeWidth=1).encode(color=color, tooltip=tooltip)
    # Dark text would vanish on the saturated ends of the colour scale; the number carries its cell's tooltip, so that
    # hovering it shows the cell's values.
    text_color = alt.when(saturated).then(alt.value("white")).otherwise(alt.value("black"))
    values = base.mark_text(fontSize=10).encode(text=value, color=text_color, tooltip=tooltip)
    data = data.with_columns((pl.col("epoch") + 1).alias("epoch_number"))
    rows = []
    for run in data.get_column(RUN).unique().sort().to_list():
        windows = data.filter(pl.col(RUN) == run)
        available = windows.get_column("epoch").unique().sort().to_list()
        panels = []
        for epoch, stand_in_for in _nearest_epochs(available, epochs).items():
            title = f"epoch {epoch + 1}"
            if stand_in_for:
                title += f" (nearest to {', '.join(str(wanted + 1) for wanted in stand_in_for)})"
            panels.append(
                alt.layer(cells, values, data=inline_values(windows.filter(pl.col("epoch") == epoch))).properties(
                    title=alt.TitleParams(title, fontSize=12, fontWeight="normal"),
                    width=alt.Step(28),
                    height=alt.Step(28),
                )
            )
        rows.append(alt.hconcat(*panels, spacing=SPACING, title=alt.TitleParams(run, fontSize=13, anchor="start")))
    chart = alt.vconcat(*rows, spacing=18).resolve_scale(color="shared")
    if cell == "sign_flip":
        return finish(
            chart,
            "Share of gradient entries of opposite sign within a window of steps",
            [
                "cell (i, j): % of the entries of G(i) and G(j) with opposite sign, for the i-th and j-th gradient",
                "of the window that starts at the epoch's first step (an entry that is 0 at either step is no flip)",
                "hover a cell for the gradient correlation cos(G(i), G(j)) of the same pair",
            ],
        )
    return finish(
        chart,
        "Pairwise gradient correlation within a window of steps",
        [
            (
                "cell (i, j): cos(G(i), G(j)) of the i-th and j-th gradient of the window that starts at the epoch's "
                "first step"
            ),
            "hover a cell for the share of gradient entries with opposite sign",
        ],
    )


def caption(epochs: Sequence[int] | None = None, cell: str = "corr") -> str:
    which = (
        f"at epochs {', '.join(str(epoch + 1) for epoch in epochs)} (counted from 1, as on every figure; the "
        "option `epochs` counts from 0 as the tables do) or the nearest measured"
        if epochs
        else "at each run's first, middle and last epoch"
    )
    shown = (
        "the percentage of gradient entries whose sign differs between steps i and j (50% is what independent "
        "gradients would give)"
        if cell == "sign_flip"
        else "the gradient correlation cos(G(i), G(j)), red where aligned and blue where opposed"
    )
    return (
        f"Pairwise matrices of the h steps of a window that starts at an epoch's first step, {which}, one row of "
        f"panels per run. Cell (i, j) shows {shown}; the tooltip adds the other quantity of the same pair. A zigzag "
        "geometry shows as a checkerboard: adjacent gradients opposed, gradients two steps apart aligned."
    )


PLOT = Plot(
    "correlation_matrices",
    correlation_matrices,
    "matrices",
    {"epochs": EPOCHS, "cell": CELL},
    caption=caption,
    needs_w_star=False,
)
