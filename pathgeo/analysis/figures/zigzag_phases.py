"""The second paper's findings run by run: each run's smooth and zigzag phases along its epochs, with its verdict."""

from __future__ import annotations

import altair as alt
import polars as pl

from pathgeo.analysis.figures import Plot
from pathgeo.analysis.figures.style import FULL_WIDTH, Figure, Tip, epoch_x, finish, legend, sorted_by_levels, tooltip
from pathgeo.analysis.figures.tables import RUN, inline_values, require_columns, with_run_names

# Blue and orange, told apart with any colour vision (the claims figure's pair).
GEOMETRY_COLORS = {"smooth": "#56B4E9", "zigzag": "#E69F00"}
ROW_HEIGHT = 22
ORDER = ["dataset", "model", "width", "optimizer", "batch_size", "full_batch", "peak_lr", "seed"]


def zigzag_phases(phases: pl.DataFrame, zigzag: pl.DataFrame, train: pl.DataFrame) -> Figure:
    """A row per run of the experiment: its phases (pathgeo.analysis.zigzag) as bars over the epochs (a phase from its first
    step to the end of its last, on the figures' epoch axis), smooth in blue and zigzag in orange, with the run's
    verdict and zigzag onset in the tooltip and at the end of the row."""
    require_columns(phases, "zigzag_phases", ["run_id", "geometry", "first_step", "last_step", "mean_corr"])
    require_columns(zigzag, "zigzag", ["run_id", "label", "verdict", "steps_measured", "epochs"])
    runs = zigzag.filter(pl.col("run_id").is_in(train.get_column("run_id").unique().implode()))
    runs = with_run_names(sorted_by_levels(runs, [f for f in ORDER if f in runs.columns]), brief=True)
    per_epoch = (pl.col("steps_measured") / pl.col("epochs")).alias("steps_per_epoch")
    bars = phases.join(runs.select("run_id", RUN, "verdict", "zigzag_onset_step", per_epoch), on="run_id").with_columns(
        start=pl.col("first_step") / pl.col("steps_per_epoch"),
        end=(pl.col("last_step") + 1) / pl.col("steps_per_epoch"),
        first_step_number=pl.col("first_step") + 1,
        last_step_number=pl.col("last_step") + 1,
    )
    order = runs.get_column(RUN).to_list()
    tips, calculate = tooltip(
        [
            Tip(RUN, "run"),
            Tip("geometry", "geometry"),
            Tip("first_step_number", "from step", ".0f"),
            Tip("last_step_number", "to step", ".0f"),
            Tip("mean_corr", "mean μ(t)", ".3f"),
            Tip("verdict", "verdict"),
        ]
    )
    x = epoch_x("start", "epoch", domain=[0, float(bars.get_column("end").max() or 1)])
    y = alt.Y(f"{RUN}:N", sort=order, title=None, axis=alt.Axis(labelLimit=260))
    chart = (
        alt.Chart(
            inline_values(
                bars.select(
                    RUN, "geometry", "start", "end", "first_step_number", "last_step_number", "mean_corr", "verdict"
                )
            )
        )
        .transform_calculate(**calculate)
        .mark_bar(height=ROW_HEIGHT - 6)
        .encode(
            x=x,
            x2="end:Q",
            y=y,
            color=alt.Color(
                "geometry:N",
                scale=alt.Scale(domain=list(GEOMETRY_COLORS), range=list(GEOMETRY_COLORS.values())),
                legend=legend("geometry"),
            ),
            tooltip=tips,
        )
        .properties(width=FULL_WIDTH - 160, height=ROW_HEIGHT * max(len(order), 1))
    )
    verdicts = runs.group_by("verdict").len().sort("verdict")
    counts = ", ".join(f"{verdict}: {count}" for verdict, count in verdicts.iter_rows())
    subtitle = [
        "smooth: the mean correlation of adjacent gradients, μ(t), above the threshold; zigzag: below minus it",
        f"verdicts, over the runs drawn: {counts}",
    ]
    return finish(chart, "Smooth and zigzag phases, run by run", subtitle)


PLOT = Plot(
    "zigzag_phases",
    zigzag_phases,
    "zigzag_phases",
    also=("zigzag", "train"),
    needs_w_star=False,
    caption=(
        "The second paper's findings run by run (the zigzag table): each run's phases along its epochs, smooth where "
        "the mean correlation of its adjacent gradients μ(t) is above the config's zigzag threshold and zigzag where "
        "it is below minus it, a stretch shorter than the config's min_phase_steps counted to the phase before it. "
        "The tooltip gives each phase's steps and mean μ(t) and the run's verdict: smooth → zigzag (the paper's "
        "convolutional networks), zigzag → smooth (its residual networks) or neither."
    ),
)
