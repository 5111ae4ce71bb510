"""The distance to the reference point per epoch: Figures 12 and 13 of the paper."""

from __future__ import annotations

import polars as pl

from pathgeo.analysis.figures import BAND, COLOR, MIN_MAX, Plot
from pathgeo.analysis.figures.style import (
    Band,
    Figure,
    band_clause,
    band_grid,
    band_subtitle,
    epoch_domain,
    finish,
    lines,
    log_scale,
    panel_word,
    split_by_level,
    width_note,
)
from pathgeo.analysis.figures.tables import epoch_lines
from pathgeo.analysis.figures.words import factor_title


def distance(epochs: pl.DataFrame, color: str, band: str = MIN_MAX) -> Figure:
    """Mean distance |w_t − w*| to the reference point per epoch, with its band (min–max over the epoch's steps), on
    a log scale fitted to the data, one line per run and reference point (runs of one colour that differ in their
    seed dashed apart; a panel per colour level where more than two bands would overlap; `band` none: the lines
    alone). Paper Figures 12 and 13."""
    stats = ["dist_mean", "dist_min", "dist_max"]
    data = epoch_lines(epochs, [color, *stats])
    drawn = lines(data, color)
    quantity = Band("dist", *stats, "|w − w*| (L2, log)", log_scale(data, stats), "|w − w*|")
    chart = band_grid(drawn, [quantity], epoch_domain(data), band=band)
    subtitle = [
        f"distance from the iterate w to w*: line: each run's mean over the epoch's steps; {band_subtitle(band)}"
    ]
    if band == MIN_MAX and split_by_level(drawn):
        subtitle.append(f"a panel per {panel_word(color)}: its lines in colour, the others' in grey")
    return finish(chart, f"Distance to the reference point, by {factor_title(color)}", subtitle + width_note(epochs))


def caption(color: str, band: str = MIN_MAX) -> str:
    overlap = "; where more than two bands would overlap, each level has its panel, the others' lines in grey"
    return (
        f"The distance |w − w*| from the iterate to the reference point per epoch, by {factor_title(color)}: each "
        f"run's mean over the epoch's steps {band_clause(band)}, on a log scale fitted to the data (runs of one "
        f"colour that differ in their seed are dashed apart{overlap if band == MIN_MAX else ''}). Epochs count from "
        "1; the last epoch before w* is not drawn. A "
        "longer way to w* at the same γ means the optimizer travels further in directions that do not lead to w*."
    )


PLOT = Plot("distance", distance, "epochs", {"color": COLOR, "band": BAND}, caption=caption)
