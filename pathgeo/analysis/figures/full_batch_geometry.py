"""The geometry of the full-batch gradient at the end of every N-th epoch (pathgeo.measurements.point_geometry), one of the first
paper's two other measurements."""

from __future__ import annotations

import altair as alt
import polars as pl

from pathgeo.analysis.figures import COLOR, Plot
from pathgeo.analysis.figures.style import (
    BY_RUN,
    Band,
    Figure,
    Tip,
    band_grid,
    band_log_scale,
    epoch_domain,
    finish,
    line_key,
    linear_scale,
    lines,
    positive_filter,
    valid_filter,
    y_axis,
)
from pathgeo.analysis.figures.tables import (
    RUN,
    RUN_KEYS,
    SERIES,
    before_final_epoch,
    require_columns,
    unique_columns,
    with_epoch_number,
    with_series,
)
from pathgeo.analysis.figures.words import factor_title, metric_symbol, metric_title

# (metric, on a log scale) per panel, top to bottom.
PANELS = [("gamma", False), ("rsi", False), ("eb", True)]
DECAY_DASH = [5, 3]
# Below this relative difference at every point, G + λw is G on the figure: a dashed line would lie under the solid one.
SAME = 1e-3


def decay_difference(data: pl.DataFrame) -> float:
    """The largest relative difference between each metric of G and of G + λw (the weight-decay term's effect)."""
    differences = [
        ((pl.col(f"{m}_wd") - pl.col(m)).abs() / pl.col(m).abs().clip(lower_bound=1e-30)).max().alias(m)
        for m, _ in PANELS
    ]
    return max((value or 0.0) for value in data.select(differences).row(0))


def full_batch_geometry(full_batch: pl.DataFrame, color: str = BY_RUN) -> Figure:
    """γ, RSI and EB of the full-batch gradient at the end of each measured epoch (drawn at the epochs trained by
    then), one line per run and reference point, without the last epoch before w*; dashed, the same with the
    weight-decay term (G + λw), where it differs from G by more than SAME anywhere (else the subtitle says by how
    little). The first paper's code (`get_fullbatch_gradient`), along the minibatch trajectory."""
    fields = [f"{m}{suffix}" for m, _ in PANELS for suffix in ("", "_wd")]
    columns = unique_columns(
        [
            *RUN_KEYS,
            "experiment",
            "budget",
            "epoch",
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
    require_columns(full_batch, "full_batch", [*RUN_KEYS, "budget", "epoch", *fields])
    data = with_series(
        with_epoch_number(before_final_epoch(full_batch.select([c for c in columns if c in full_batch.columns])))
    )
    drawn = lines(data, color)
    differs = decay_difference(data)
    bands = []
    for metric, log in PANELS:
        scale = (
            band_log_scale(data, metric, metric, f"{metric}_wd")
            if log
            else linear_scale(data, [metric, f"{metric}_wd"], zero=True)
        )
        title = metric_title(metric).split(" =")[0] + (" (log)" if log else "")
        bands.append(
            Band(
                metric,
                metric,
                None,
                None,
                title,
                scale,
                metric_symbol(metric),
                zero=not log,
                mean_title=f"{metric_symbol(metric)} of G",
            )
        )

    def decayed(band: Band, where: str | None, x: alt.X, first: bool) -> list[alt.Chart]:
        if differs <= SAME:
            return []
        field = f"{band.metric}_wd"
        base = alt.Chart().transform_filter(where) if where else alt.Chart()
        keep = positive_filter(field) if band.scale.to_dict().get("type") == "log" else valid_filter(field)
        line = (
            base.transform_filter(keep)
            .mark_line(strokeWidth=1.4, strokeDash=DECAY_DASH)
            .encode(
                x=x,
                y=alt.Y(f"{field}:Q", scale=band.scale, axis=y_axis(band.title, band.scale)),
                color=drawn.color,
                detail=alt.Detail(f"{SERIES}:N"),
            )
        )
        return [line, line_key("G + λw (with the weight-decay term)", DECAY_DASH)] if first else [line]

    tips = [Tip(f"{m}_wd", f"{metric_symbol(m)} of G + λw", ".4g") for m, _ in PANELS]
    chart = band_grid(drawn, bands, epoch_domain(data), key=None, extra_tips=tips, also=decayed)
    decay = (
        "solid: G; dashed: G + λw (with the weight-decay term)"
        if differs > SAME
        else f"G + λw (with the weight-decay term) differs from G by at most {100 * differs:.2g}% here: one line for "
        "both"
    )
    runs = drawn.data.get_column(RUN).unique().sort().to_list()
    return finish(
        chart,
        "Geometry of the full-batch gradient along the minibatch path"
        + ("" if color == BY_RUN else f", by {factor_title(color)}"),
        [
            (
                "the gradient of the mean loss over the whole training set, at the weights each measured epoch ends "
                "with; EB on a log scale"
            ),
            decay + "; the last epoch before w* is not drawn",
            *([f"run: {runs[0]}"] if len(runs) == 1 else []),
        ],
    )


def caption(color: str = BY_RUN) -> str:
    by = "run" if color == BY_RUN else factor_title(color)
    return (
        f"By {by}, one line per run and reference point: γ, RSI and EB (log scale) of the full-batch gradient, the "
        "gradient of the mean loss over the whole training set, at the weights each measured epoch ends with (drawn at "
        "that epoch, counted from 1), along the minibatch trajectory; dashed, the same with the weight-decay term "
        "(G + λw), where it differs visibly from G (the subtitle says by how much otherwise). The last epoch before w* "
        "is not drawn. The first paper's code measures it (get_fullbatch_gradient); its figures show the minibatch "
        "gradients, which this sets beside."
    )


PLOT = Plot("full_batch_geometry", full_batch_geometry, "full_batch", {"color": COLOR}, caption=caption)
