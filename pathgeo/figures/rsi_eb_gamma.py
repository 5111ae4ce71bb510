"""RSI, EB and γ per epoch, stacked: Figure 2 of the paper, and by factor its Appendix Figures 7–11."""

from __future__ import annotations

from collections.abc import Sequence

import altair as alt
import polars as pl

from pathgeo.figures import BAND, COLOR, Plot
from pathgeo.figures.style import (
    PANEL_WIDTH,
    RUN_KEYS,
    Figure,
    band_and_mean,
    band_log_scale,
    distinct_runs,
    factor_color,
    factor_title,
    finish,
    inline_values,
    metric_title,
    over_seeds,
    require_columns,
    unique_columns,
    width_note,
    with_series,
    zero_rule,
)

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
    epochs: pl.DataFrame,
    color: str = "label",
    panels: Sequence[str] = ("rsi", "eb", "gamma"),
    band: str = "steps",
) -> Figure:
    """RSI, EB and γ per epoch (mean with a band), stacked on a shared epoch axis, coloured by run or by a factor.

    RSI and EB are on log scales fitted to the data; a band reaching 0 or below (a step with negative RSI) runs to
    the bottom of its panel. `band` as in gamma_band: the epoch's steps, or the seeds of runs that differ only in
    their seed. Paper Figure 2 (one run), Appendix Figures 7–11 (by batch size, optimizer, architecture, seed).
    """
    stats = [f"{metric}_{stat}" for metric in panels for stat in ("mean", "min", "max")]
    require_columns(epochs, "epochs", unique_columns([*RUN_KEYS, "epoch", color, *stats]))
    notes = width_note(epochs)
    if band == "seeds":
        data = pl.concat([over_seeds(epochs, metric) for metric in panels], how="align")
    else:
        data = distinct_runs(with_series(epochs.select(unique_columns([*RUN_KEYS, "epoch", color, *stats]))))
    data, color_encoding = factor_color(data, color)
    charts = []
    clipped = []
    for position, metric in enumerate(panels):
        bottom = position == len(panels) - 1
        low, high = (
            (f"{metric}_seed_min", f"{metric}_seed_max") if band == "seeds" else (f"{metric}_min", f"{metric}_max")
        )
        log = metric in LOG_METRICS
        scale = band_log_scale(data, f"{metric}_mean", low, high) if log else None
        if log and (data.get_column(low) <= scale.to_dict()["domain"][0]).any():
            clipped.append(metric.upper())
        layers = band_and_mean(
            metric,
            low,
            high,
            color_encoding,
            metric_title(metric) + (" (log)" if log else ""),
            scale=scale,
            # Only the bottom panel carries the epoch axis title; the x scale is shared.
            x_axis_title="epoch" if bottom else None,
            band_name="seed" if band == "seeds" else "band",
        )
        if not log:
            layers.insert(0, zero_rule())
        charts.append(alt.layer(*layers).properties(width=PANEL_WIDTH, height=170))
    chart = alt.vconcat(*charts, data=inline_values(data), spacing=12).resolve_scale(
        x="shared", y="independent", color="shared"
    )
    spread = (
        "min–max over the seeds of the epoch means (band), their mean (line)"
        if band == "seeds"
        else ("per-epoch mean (line) and min–max over the epoch's steps (band)")
    )
    subtitle = [
        spread + "; " + " and ".join(m.upper() for m in panels if m in LOG_METRICS) + " on log scales"
        if any(m in LOG_METRICS for m in panels)
        else spread
    ]
    if clipped:
        subtitle.append(
            f"{' and '.join(clipped)}: where a band reaches below the axis (to 0 or under), it runs to the "
            "panel's bottom edge"
        )
    names = [metric_title(m).split(" =")[0] for m in panels]
    title = f"{', '.join(names[:-1])} and {names[-1]}" if len(names) > 1 else names[0]
    title += " along the optimization path" + ("" if color == "label" else f", by {factor_title(color)}")
    return finish(chart, title, subtitle + notes)


def caption(color: str = "label", panels: Sequence[str] = ("rsi", "eb", "gamma"), band: str = "steps") -> str:
    names = ", ".join(metric_title(m) for m in panels)
    by = factor_title(color)
    spread = (
        "its minimum to maximum over the runs that differ only in their seed (the line their mean)"
        if band == "seeds"
        else ("its minimum to maximum over the epoch's steps")
    )
    return (
        f"{names}, per epoch along the optimization path, by {by}: the mean over each epoch's steps with a band of "
        f"{spread}. RSI and EB are on log scales fitted to the lines (a band that reaches further down, to 0 or "
        "below, is drawn to the bottom of its panel); γ has a dashed line at 0."
    )


PLOT = Plot(
    "rsi_eb_gamma",
    rsi_eb_gamma,
    "epochs",
    {"color": COLOR, "panels": PANELS, "band": BAND},
    caption=caption,
)
