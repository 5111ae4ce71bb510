"""RSI, EB and γ per epoch, stacked: Figure 2 of the paper, and by factor its Appendix Figures 7–11."""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from pathgeo.analysis.figures import BAND, COLOR, MIN_MAX, Plot
from pathgeo.analysis.figures.style import (
    BY_RUN,
    Band,
    Figure,
    band_clause,
    band_grid,
    band_log_scale,
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
from pathgeo.analysis.figures.words import factor_title, metric_symbol, metric_title

# RSI and EB span decades along a run (EB grows as w approaches w*); γ is a cosine.
LOG_METRICS = frozenset({"rsi", "eb"})
PANELS = {
    "description": "the quantities stacked, top to bottom (default RSI, EB and γ)",
    "type": "array",
    "minItems": 1,
    "uniqueItems": True,
    "items": {"enum": ["rsi", "eb", "gamma"]},
}


def rsi_eb_gamma(
    epochs: pl.DataFrame, color: str = BY_RUN, panels: Sequence[str] = ("rsi", "eb", "gamma"), band: str = MIN_MAX
) -> Figure:
    """RSI, EB and γ per epoch (mean with its band, min–max over the epoch's steps), one line per run and reference
    point, coloured by run or by a factor. RSI and EB are on log scales fitted to the lines; a band reaching 0 or
    below (a step with negative RSI) runs to the bottom of its panel. Where more than two bands would overlap, each
    colour level has a row of panels; `band` none draws the lines alone. Paper Figure 2 (one run), Appendix Figures 7–11 (by batch size, optimizer,
    architecture, seed)."""
    stats = [f"{metric}_{stat}" for metric in panels for stat in ("mean", "min", "max")]
    factor = None if color == BY_RUN else color
    data = epoch_lines(epochs, [factor, *stats])
    drawn = lines(data, color)
    bands, clipped = [], []
    for metric in panels:
        mean, low, high = f"{metric}_mean", f"{metric}_min", f"{metric}_max"
        log = metric in LOG_METRICS
        scale = band_log_scale(data, mean, low, high) if log else linear_scale(data, [mean, low, high], zero=True)
        if band == MIN_MAX and log and (data.get_column(low) <= scale.to_dict()["domain"][0]).any():
            clipped.append(metric_symbol(metric))
        title = metric_title(metric).split(" =")[0] + (" (log)" if log else "")
        bands.append(Band(metric, mean, low, high, title, scale, metric_symbol(metric), zero=not log))
    chart = band_grid(drawn, bands, epoch_domain(data), band=band)
    logs = [metric_symbol(m) for m in panels if m in LOG_METRICS]
    subtitle = [
        f"line: each run's mean over the epoch's steps; {band_subtitle(band)}"
        + (f"; {' and '.join(logs)} on log scales" if logs else "")
    ]
    subtitle += [f"{metric_title(m)}" for m in panels]
    if clipped:
        subtitle.append(
            f"{' and '.join(clipped)}: a band reaching below the axis (to 0 or under) runs to the panel's bottom edge"
        )
    if band == MIN_MAX and split_by_level(drawn):
        subtitle.append(f"a row per {panel_word(color)}: its lines in colour, the others' in grey")
    names = [metric_symbol(m) for m in panels]
    title = f"{', '.join(names[:-1])} and {names[-1]}" if len(names) > 1 else names[0]
    title += " along the optimization path" + ("" if color == BY_RUN else f", by {factor_title(color)}")
    if color == BY_RUN:
        subtitle.append("run: " + ", ".join(drawn.levels))
    return finish(chart, title, subtitle + width_note(epochs))


def caption(color: str = BY_RUN, panels: Sequence[str] = ("rsi", "eb", "gamma"), band: str = MIN_MAX) -> str:
    names = ", ".join(metric_title(m) for m in panels)
    by = "" if color == BY_RUN else f", by {factor_title(color)}"
    bands = (
        " (a band that reaches further down, to 0 or below, is drawn to the bottom of its panel); γ has a dashed line "
        "at 0. Where more than two bands would overlap, each level has its row of panels, the other levels' lines in "
        "grey."
        if band == MIN_MAX
        else "; γ has a dashed line at 0."
    )
    return (
        f"{names}, per epoch along the optimization path{by}: each run's mean over each epoch's steps "
        f"{band_clause(band)} (one line per run and reference point; runs of one colour that differ in their seed or "
        f"width are dashed apart). RSI and EB are on log scales fitted to the lines{bands} Epochs count from 1; the "
        "last epoch before w* is not drawn."
    )


PLOT = Plot("rsi_eb_gamma", rsi_eb_gamma, "epochs", {"color": COLOR, "panels": PANELS, "band": BAND}, caption=caption)
