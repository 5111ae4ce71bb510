"""γ (or another cosine) along the path with its per-epoch band: Figures 1, 4, 6 and 16 of the paper."""

from __future__ import annotations

import altair as alt
import polars as pl

from pathgeo.figures import BAND, COLOR, FACET, METRIC, Plot
from pathgeo.figures.style import (
    FACET_WIDTH,
    PANEL_HEIGHT,
    PANEL_WIDTH,
    RUN_KEYS,
    Figure,
    band_and_mean,
    distinct_runs,
    factor_color,
    factor_levels,
    factor_title,
    finish,
    inline_values,
    metric_symbol,
    metric_title,
    over_seeds,
    require_columns,
    unique_columns,
    width_note,
    with_series,
    zero_rule,
)


def gamma_band(
    epochs: pl.DataFrame, color: str, facet: str | None = None, metric: str = "gamma", band: str = "steps"
) -> Figure:
    """Per-epoch mean of `metric` with its band, coloured by a run factor.

    `band="steps"`: one line per (run, reference point), the band min–max over the epoch's steps. `band="seeds"`:
    one line per group of runs that differ only in their seed, the mean of their epoch means, the band its range
    over the seeds. `facet` splits the runs into columns. Paper Figures 1, 4, 6 and 16 (γ by optimizer, batch size,
    architecture, seed, epoch budget).
    """
    mean, low, high = f"{metric}_mean", f"{metric}_min", f"{metric}_max"
    require_columns(epochs, "epochs", unique_columns([*RUN_KEYS, "epoch", color, facet, mean, low, high]))
    notes = width_note(epochs) if "width" in (color, facet) or color == "label" else []
    if band == "seeds":
        if color == "seed" or facet == "seed":
            raise ValueError("band 'seeds' spans the seeds: colour and facet by another factor")
        data = over_seeds(epochs, metric)
        low, high = f"{metric}_seed_min", f"{metric}_seed_max"
        seeds = sorted(set(data.get_column("seeds").to_list()))
        what = (
            f"mean over {'/'.join(map(str, seeds))} seeds of the epoch means (line), their min–max over the "
            "seeds (band)"
        )
    else:
        budget = "budget" if "budget" in epochs.columns else None
        columns = unique_columns([*RUN_KEYS, "epoch", color, facet, mean, low, high, budget])
        data = distinct_runs(with_series(epochs.select(columns)))
        what = "per-epoch mean (line) and min–max over the epoch's steps (band)"
    facet_levels = factor_levels(data, facet) if facet is not None else []
    data, color_encoding = factor_color(data, color)
    layers = [
        zero_rule(),
        *band_and_mean(
            metric, low, high, color_encoding, metric_title(metric), band_name="seed" if band == "seeds" else "band"
        ),
    ]
    title = f"{metric_symbol(metric)} along the optimization path, by {factor_title(color)}"
    # Faceted by width, the header says what width counts; the subtitle need not say it again.
    in_header = facet == "width" and bool(notes)
    subtitle = [what] if in_header else [what, *notes]
    if color == "budget" and epochs.get_column("run_id").n_unique() == 1:
        budgets = ", ".join(factor_levels(data, "budget"))
        subtitle.append(
            f"the budgets {budgets} are reference points of one run: w* is its weights at each of these epochs"
        )
    if facet is None:
        chart: Figure = alt.layer(*layers, data=inline_values(data)).properties(width=PANEL_WIDTH, height=PANEL_HEIGHT)
    else:
        data = data.with_columns(pl.col(facet).cast(pl.String))
        chart = (
            alt.layer(*layers)
            .properties(width=FACET_WIDTH, height=PANEL_HEIGHT)
            .facet(
                column=alt.Column(
                    f"{facet}:N",
                    title=notes[0] if in_header else factor_title(facet),
                    sort=facet_levels,
                ),
                data=inline_values(data),
            )
        )
    return finish(chart, title, subtitle)


def caption(color: str, facet: str | None = None, metric: str = "gamma", band: str = "steps") -> str:
    spans = {
        "steps": "its minimum to maximum over the epoch's steps, one line per run",
        "seeds": "the minimum to maximum over runs that differ only in their seed, the line their mean",
    }[band]
    split = f", one panel per {factor_title(facet)}" if facet else ""
    return (
        f"{metric_title(metric)} along the optimization path, by {factor_title(color)}{split}: the mean over each "
        f"epoch's steps, with a band of {spans}. The dashed line is 0: below it the sampled gradient points away "
        "from the reference point w*."
    )


PLOT = Plot(
    "gamma_band",
    gamma_band,
    "epochs",
    {"color": COLOR, "facet": FACET, "metric": METRIC, "band": BAND},
    caption=caption,
)
