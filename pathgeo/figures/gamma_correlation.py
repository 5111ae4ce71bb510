"""γ beside the adjacent-gradient correlation of the same runs, on shared axes."""

from __future__ import annotations

import altair as alt
import polars as pl

from pathgeo.figures import Plot
from pathgeo.figures.style import (
    FACET_WIDTH,
    LINE_LEGEND,
    PANEL_HEIGHT,
    PANEL_WIDTH,
    RUN_KEYS,
    Figure,
    distinct_runs,
    epoch_x,
    finish,
    hover_line,
    inline_values,
    one_reference,
    require_columns,
    zero_rule,
)

GAMMA_SERIES = "γ (RSI/EB)"
CORRELATION_SERIES = "adjacent gradient correlation"
# Epochs of the centred moving average drawn through the per-epoch values (a zigzag alternates step to step).
SMOOTHING = 10
# Over SMOOTHING + 1 epochs with the two ends at half weight (a mean over SMOOTHING epochs, then over two), so that
# odd and even epochs weigh the same in every window. A plain mean over SMOOTHING epochs, moved by one, trades an
# epoch for one of the same phase, so its steps follow the two phases of an alternation in turn: a sawtooth
# wherever the phases drift apart.

# The last epochs before w*, where γ reflects how w* was picked more than the landscape (the random walk's
# (T − t)^(−1/2)): shaded, as a share of the run's epochs.
FINAL_SHARE = 0.05


def gamma_correlation(epochs: pl.DataFrame) -> Figure:
    """γ beside the adjacent-gradient correlation, per epoch, one panel per run.

    Both are epoch means of per-step cosines: γ = cos(G, w − w*) against the run's
    largest-budget reference point, and cos(G(t−1), G(t)) (the `grad_corr_mean`
    column rather than the window mean μ(t), so that neither curve is smoothed more).
    Each epoch is a dot; the line is their centred moving average over SMOOTHING
    epochs, its ends at half weight, so that a value alternating step to step (full batch under zigzag geometry)
    shows as dots above and below a line rather than a solid block. The last
    FINAL_SHARE of each run's epochs is shaded.
    """
    columns = [*RUN_KEYS, "budget", "epoch", "gamma_mean", "grad_corr_mean"]
    require_columns(epochs, "epochs", columns)
    data = distinct_runs(one_reference(epochs.select(columns)))
    long = (
        data.unpivot(
            index=["run", "reference", "budget", "epoch"],
            on=["gamma_mean", "grad_corr_mean"],
            variable_name="quantity",
            value_name="value",
        )
        .with_columns(
            pl.col("quantity").replace_strict({"gamma_mean": GAMMA_SERIES, "grad_corr_mean": CORRELATION_SERIES})
        )
        .sort("run", "quantity", "epoch")
    )
    # The average only where its whole window lies in the run (the dots carry the ends); a run too short for one
    # is drawn unsmoothed.
    window = SMOOTHING if data.get_column("epoch").n_unique() >= 2 * SMOOTHING else 1
    smoothed = pl.col("value")
    if window > 1:
        smoothed = smoothed.rolling_mean(window).rolling_mean(2).shift(-(window // 2))
    long = long.with_columns(smoothed.over("run", "quantity").alias("smoothed"))
    shaded = (
        data.group_by("run")
        .agg(pl.col("budget").first(), pl.col("epoch").max().alias("last"))
        .with_columns(
            (pl.col("budget") - (FINAL_SHARE * pl.col("budget")).ceil().clip(lower_bound=1)).alias("from"),
            (pl.col("last") + 0.5).alias("to"),
        )
    )
    color = alt.Color(
        "quantity:N",
        title=None,
        scale=alt.Scale(domain=[GAMMA_SERIES, CORRELATION_SERIES], range=["#4c78a8", "#e45756"]),
        legend=LINE_LEGEND,
    )
    x = epoch_x()
    y = alt.Y("value:Q", title="cosine (epoch mean)", scale=alt.Scale(domain=[-1, 1]))
    dots = alt.Chart().mark_circle(size=9, opacity=0.45).encode(x=x, y=y, color=color)
    tooltip = [
        alt.Tooltip("run:N", title="run"),
        alt.Tooltip("reference:N", title="reference"),
        alt.Tooltip("epoch:Q", title="epoch"),
        alt.Tooltip("quantity:N", title="quantity"),
        alt.Tooltip("value:Q", title="epoch mean", format=".3f"),
        alt.Tooltip("smoothed:Q", title=f"moving average over {window} epochs", format=".3f"),
    ]
    runs = data.get_column("run").unique().sort().to_list()
    subtitle = [
        (
            "γ = cos(G, w − w*) against each run's largest-budget reference point;"
            " adjacent gradient correlation = cos(G(t−1), G(t))"
        ),
        "dots: each epoch's mean over its steps (not the window mean μ(t) of eq. 3)"
        + (f"; line: their moving average over {window} epochs" if window > 1 else ""),
        f"shaded: the last {FINAL_SHARE:.0%} of epochs before w*, where γ says more about how w* was picked than "
        "about the"
        " landscape (as for the random walk's (T − t)^(−1/2))",
    ]

    def panel(values: pl.DataFrame, band: pl.DataFrame, width: int, title: str | None) -> alt.LayerChart:
        final = (
            alt.Chart(inline_values(band))
            .mark_rect(color="#999999", opacity=0.15)
            .encode(x=alt.X("from:Q", title="epoch"), x2="to:Q")
        )
        # A hover selection of its own per panel (pathgeo.figures.style.hover_line).
        line = hover_line(
            alt.Chart(),
            x,
            alt.Y("smoothed:Q", title="cosine (epoch mean)", scale=alt.Scale(domain=[-1, 1])),
            color,
            tooltip,
            detail="quantity",
        )
        layered = alt.layer(final, zero_rule(), dots, *line, data=inline_values(values))
        return layered.properties(width=width, height=PANEL_HEIGHT, **({"title": title} if title else {}))

    if len(runs) == 1:
        chart: Figure = panel(long, shaded, PANEL_WIDTH, None)
        subtitle.append(f"run: {runs[0]}")
    else:
        chart = alt.concat(
            *(
                panel(long.filter(pl.col("run") == run), shaded.filter(pl.col("run") == run), FACET_WIDTH, run)
                for run in runs
            ),
            columns=3,
        ).resolve_scale(x="shared", y="shared")
    return finish(chart, "γ and adjacent gradient correlation along the optimization path", subtitle)


PLOT = Plot(
    "gamma_correlation",
    gamma_correlation,
    "epochs",
    caption=(
        "For each run, per epoch on one cosine axis: γ = cos(G, w − w*) (blue) and the adjacent gradient correlation "
        "cos(G(t−1), G(t)) (red), each epoch's mean as a dot and a moving average over ten epochs as a line, so that "
        "a value alternating from step to step (full-batch descent under zigzag geometry) shows as two rows of dots "
        "around a line. The last 5% of epochs before w* are shaded: there γ depends on how w* was picked (the random "
        "walk's effect). pathgeo's own figure: it puts the two papers' cosines side by side."
    ),
)
