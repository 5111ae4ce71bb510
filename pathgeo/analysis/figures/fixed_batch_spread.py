"""How the geometry spreads over K fixed minibatches at every N-th step (pathgeo.measurements.point_geometry), the first paper's
other point measurement."""

from __future__ import annotations

import polars as pl

from pathgeo.analysis.figures import COLOR, Plot
from pathgeo.analysis.figures.full_batch_geometry import PANELS
from pathgeo.analysis.figures.style import (
    BY_RUN,
    Band,
    Figure,
    Tip,
    band_grid,
    band_log_scale,
    finish,
    linear_scale,
    lines,
)
from pathgeo.analysis.figures.tables import (
    AT,
    RUN,
    RUN_KEYS,
    STEP,
    before_final_epoch,
    require_columns,
    unique_columns,
    with_measured_position,
    with_series,
)
from pathgeo.analysis.figures.words import factor_title, metric_symbol, metric_title


def fixed_batch_spread(fixed_batches: pl.DataFrame, color: str = BY_RUN) -> Figure:
    """How γ, RSI and EB spread over K fixed minibatches at one point: at each measured step, the mean over the
    batches (line) and their min–max (band, which the legend names: it is not the epoch's steps), one line per run
    and reference point, without the last epoch before w*. The first paper's code (`get_batch_list_grads`)."""
    fields = [f"{m}_{stat}" for m, _ in PANELS for stat in ("mean", "min", "max")]
    columns = unique_columns(
        [
            *RUN_KEYS,
            "experiment",
            "budget",
            "epoch",
            "step",
            "batches",
            "schedule",
            None if color == BY_RUN else color,
            "seed",
            "width",
            "model",
            "width_unit",
            "dataset",
            "optimizer",
            "peak_lr",
            "batch_size",
            "full_batch",
            "epochs",
            *fields,
        ]
    )
    require_columns(fixed_batches, "fixed_batches", [*RUN_KEYS, "budget", "epoch", "step", "batches", *fields])
    data = with_series(
        with_measured_position(
            before_final_epoch(fixed_batches.select([c for c in columns if c in fixed_batches.columns]))
        )
    )
    drawn = lines(data, color)
    batches = ", ".join(map(str, sorted(set(fixed_batches.get_column("batches").to_list()))))
    bands = []
    for metric, log in PANELS:
        mean, low, high = f"{metric}_mean", f"{metric}_min", f"{metric}_max"
        scale = band_log_scale(data, mean, low, high) if log else linear_scale(data, [mean, low, high], zero=True)
        title = metric_title(metric).split(" =")[0] + (" (log)" if log else "")
        bands.append(Band(metric, mean, low, high, title, scale, metric_symbol(metric), zero=not log))
    span = [0.0, float(data.get_column(AT).max())]
    chart = band_grid(
        drawn,
        bands,
        span,
        key=f"min–max over the {batches} fixed minibatches",
        extra_tips=[Tip(STEP, "step")],
        x_field=AT,
    )
    runs = drawn.data.get_column(RUN).unique().sort().to_list()
    return finish(
        chart,
        "Spread of the geometry over fixed minibatches at one point"
        + ("" if color == BY_RUN else f", by {factor_title(color)}"),
        [
            f"at each measured step: the gradients of the same {batches} fixed minibatches at that step's weights",
            (
                "line: their mean; band: their min–max (not the epoch's steps); EB on a log scale; the last epoch "
                "before w* is not drawn"
            ),
            *([f"run: {runs[0]}"] if len(runs) == 1 else []),
        ],
    )


def caption(color: str = BY_RUN) -> str:
    by = "run" if color == BY_RUN else factor_title(color)
    return (
        f"By {by}, one line per run and reference point: at each measured step (on an axis of epochs), γ, RSI and EB "
        "(log scale) of the gradients of the same K fixed minibatches at that step's weights, their mean (line) and "
        "min–max over the batches (band, as its legend says, not over the epoch's steps): how much the geometry of one "
        "point depends on the minibatch. The last epoch before w* is not drawn. The first paper's code measures it "
        "(get_batch_list_grads)."
    )


PLOT = Plot("fixed_batch_spread", fixed_batch_spread, "fixed_batches", {"color": COLOR}, caption=caption)
