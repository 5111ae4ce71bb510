"""γ (or another cosine) along the path with its per-epoch band: Figures 1, 4, 6 and 16 of the paper."""

from __future__ import annotations

import polars as pl

from pathgeo.analysis.figures import BAND, COLOR, FACET, METRIC, MIN_MAX, Plot
from pathgeo.analysis.figures.style import (
    BY_RUN,
    Band,
    Figure,
    band_clause,
    band_grid,
    band_subtitle,
    epoch_domain,
    finish,
    linear_scale,
    lines,
    panel_word,
    split_by_level,
    width_note,
)
from pathgeo.analysis.figures.tables import epoch_lines
from pathgeo.analysis.figures.words import factor_title, factor_value, metric_symbol, metric_title


def gamma_band(
    epochs: pl.DataFrame, color: str, facet: str | None = None, metric: str = "gamma", band: str = MIN_MAX
) -> Figure:
    """Per-epoch mean of `metric` with its band (min–max over the epoch's steps), one line per run and reference
    point, coloured by a run factor; runs of one colour that differ in their seed or width dashed apart. More than two
    bands get a panel per colour level; `facet` splits the runs into panels by another factor. The last epoch before
    w* is not drawn; `band` none draws the lines alone. Paper Figures 1, 4, 6 and 16 (γ by optimizer, batch size,
    architecture, seed, epoch budget)."""
    mean, low, high = f"{metric}_mean", f"{metric}_min", f"{metric}_max"
    data = epoch_lines(epochs, [color, facet, mean, low, high])
    drawn = lines(data, color)
    notes = width_note(epochs) if "width" in (color, facet, drawn.dash_factor) or color == BY_RUN else []
    quantity = Band(
        metric,
        mean,
        low,
        high,
        metric_title(metric),
        linear_scale(data, [mean, low, high], zero=True),
        metric_symbol(metric),
        zero=True,
    )
    titles = {str(v): factor_value(facet, v) for v in data.get_column(facet).unique()} if facet else None
    chart = band_grid(drawn, [quantity], epoch_domain(data), facet=facet, facet_titles=titles, band=band)
    subtitle = [f"line: each run's mean over the epoch's steps; {band_subtitle(band)}; dashed at 0"]
    if band == MIN_MAX and facet is None and split_by_level(drawn):
        subtitle.append(f"a panel per {panel_word(color)}: its lines in colour, the others' in grey")
    if color == "budget" and epochs.get_column("run_id").n_unique() == 1:
        budgets = ", ".join(str(b) for b in sorted(epochs.get_column("budget").unique()))
        subtitle.append(
            f"the budgets {budgets} are reference points of one run: w* is its weights after that many epochs"
        )
    title = f"{metric_symbol(metric)} along the optimization path, by {factor_title(color)}"
    return finish(chart, title, subtitle + notes)


def caption(color: str, facet: str | None = None, metric: str = "gamma", band: str = MIN_MAX) -> str:
    split = f", one panel per {factor_title(facet)}" if facet else ""
    overlap = (
        "Where more than two bands would overlap, each level has its panel, the other levels' lines in grey. "
        if band == MIN_MAX
        else ""
    )
    return (
        f"{metric_title(metric)} along the optimization path, by {factor_title(color)}{split}: each run's mean over "
        f"each epoch's steps (line), {band_clause(band)} (one line per run and reference point; runs of one colour "
        f"that differ in their seed or width are dashed apart). {overlap}Epochs count from 1; the last epoch before the "
        "reference point w* is not drawn, as in the paper. The dashed line is 0: below it the sampled gradient points "
        "away from w*."
    )


PLOT = Plot(
    "gamma_band",
    gamma_band,
    "epochs",
    {"color": COLOR, "facet": FACET, "metric": METRIC, "band": BAND},
    caption=caption,
)
