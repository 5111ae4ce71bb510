"""The locally optimal learning rate against the step actually taken: Figure 3 of the paper."""

from __future__ import annotations

import altair as alt
import polars as pl

from pathgeo.analysis.figures import COLOR, Plot
from pathgeo.analysis.figures.style import (
    NEUTRAL_COLOR,
    STEPS_BAND,
    Band,
    Figure,
    Tip,
    band_grid,
    band_log_scale,
    epoch_domain,
    finish,
    line_key,
    lines,
    log_axis,
    panel_word,
    positive_filter,
    split_by_level,
    width_note,
)
from pathgeo.analysis.figures.tables import SERIES, epoch_lines
from pathgeo.analysis.figures.words import factor_title

TAKEN = "step taken: lr / (1 − β) under momentum β, lr without"
TAKEN_BY_ALL = "step taken by every run: lr / (1 − β) under momentum β, lr without"
TAKEN_DASH = [8, 4]


def lolr(epochs: pl.DataFrame, color: str) -> Figure:
    """Locally optimal learning rate η* = RSI/EB² per epoch (each run's mean with its band, min–max over the epoch's
    steps) against the step size actually taken: the run's mean LR times its optimizer's step scale (`step_scale`:
    1/(1 − β) under heavy-ball momentum, so that a momentum run at lr 0.01 compares at 0.1), dashed, in the run's
    colour, or once in grey where every run takes the same step. Runs whose optimizer has no single step scale (Adam)
    get no dashed line. The log axis is fitted to both. Paper Figure 3."""
    stats = ["lolr_mean", "lolr_min", "lolr_max"]
    data = epoch_lines(epochs, [color, "lr_mean", "step_scale", *stats])
    data = data.with_columns((pl.col("lr_mean") * pl.col("step_scale")).alias("step_lr"))
    drawn = lines(data, color)
    # One axis for η* and the step taken: fitted to both lines, the band reaching above them.
    lines_and_band = data.with_columns(
        pl.min_horizontal("lolr_mean", "step_lr").alias("lowest_line"),
        pl.max_horizontal("lolr_max", "step_lr").alias("top"),
    )
    scale = band_log_scale(lines_and_band, "lowest_line", "lolr_min", "top")
    band = Band("lolr", *stats, "learning rate (log)", scale, "η*")
    shared = data.get_column("step_lr").drop_nulls().round(12).n_unique() == 1
    key = line_key(TAKEN_BY_ALL if shared else TAKEN, TAKEN_DASH)

    def taken(band: Band, where: str | None, x: alt.X, first: bool) -> list[alt.Chart]:
        base = alt.Chart().transform_filter(where) if where else alt.Chart()
        line = (
            base.transform_filter(positive_filter("step_lr"))
            .mark_line(strokeWidth=1.4, strokeDash=TAKEN_DASH, **({"color": NEUTRAL_COLOR} if shared else {}))
            .encode(
                x=x,
                y=alt.Y("step_lr:Q", scale=scale, axis=log_axis(band.title)),
                **({} if shared else {"color": drawn.color}),
                detail=alt.Detail(f"{SERIES}:N"),
            )
        )
        return [line, key] if first else [line]

    taken_tip = Tip(
        "step_lr", "step taken, lr × step scale", ".3g", missing="no single scale (Adam's is per coordinate)"
    )
    chart = band_grid(
        drawn, [band], epoch_domain(data), extra_tips=[Tip("lr_mean", "mean lr", ".3g"), taken_tip], also=taken
    )
    subtitle = [
        (
            "η* minimizes |w − ηG − w*|: the step along −G that would land closest to w*; line: each run's mean over "
            "the epoch's steps"
        ),
        (
            "band: min–max over the epoch's steps, on a log scale: where it reaches 0 or below (G pointing away from "
            "w*), it runs to the bottom"
        ),
    ]
    without = drawn.data.filter(pl.col("step_scale").is_null()).get_column("run").unique().sort().to_list()
    if without:
        subtitle.append(
            f"no dashed line for {', '.join(without)}: its step has no single scale (Adam's is per coordinate)"
        )
    if split_by_level(drawn):
        subtitle.append(f"a panel per {panel_word(color)}: its lines in colour, the others' in grey")
    return finish(
        chart,
        f"Locally optimal learning rate vs the step taken, by {factor_title(color)}",
        subtitle + width_note(epochs),
    )


def caption(color: str) -> str:
    return (
        f"The locally optimal learning rate η* = RSI / EB², the step size along −G that would bring w closest to w*, "
        f"per epoch by {factor_title(color)}: each run's mean over the epoch's steps with a band of {STEPS_BAND}, on a "
        "log scale (a band reaching 0 or below runs to the bottom of the axis). Dashed: the step actually taken, the "
        "learning rate times 1/(1 − β) under heavy-ball momentum β (0.1 for lr 0.01 at β = 0.9), the learning rate "
        "itself under plain SGD, in the run's colour, or once in grey where every run takes the same step; Adam's step "
        "has no single scale and gets no dashed line. Epochs count from 1; the last epoch before w* is not drawn."
    )


PLOT = Plot("lolr", lolr, "epochs", {"color": COLOR}, caption=caption)
