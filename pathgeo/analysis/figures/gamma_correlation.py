"""γ beside the adjacent-gradient correlation of the same runs, on shared axes."""

from __future__ import annotations

import altair as alt
import polars as pl

from pathgeo.analysis.figures import Plot
from pathgeo.analysis.figures.style import (
    BAND_OPACITY,
    FULL_WIDTH,
    HALF_WIDTH,
    PANEL_HEIGHT,
    SPACING,
    Figure,
    Tip,
    band_key,
    epoch_x,
    finish,
    legend,
    tooltip,
    zero_rule,
)
from pathgeo.analysis.figures.tables import (
    EPOCH,
    NAME_FACTORS,
    RUN,
    RUN_KEYS,
    before_final_epoch,
    epoch_statistics,
    inline_values,
    one_reference,
    require_columns,
    thinning_note,
    with_epoch_number,
    with_run_names,
)

GAMMA_SERIES = "γ = cos(G, w − w*)"
CORRELATION_SERIES = "adjacent gradient correlation cos(G(t−1), G(t))"
SERIES_COLORS = ["#0072B2", "#D55E00"]
# Epochs on each side of an epoch that its band spans: a value that alternates from one epoch to the next (full batch
# under zigzag geometry) has its two tracks inside the band, and the band moves with the data, not ahead of it.
NEIGHBOURS = 1
BAND = f"min–max over {2 * NEIGHBOURS + 1} consecutive epochs"
# The last epochs before w*, where γ reflects how w* was picked more than the landscape (the random walk's
# (T − t)^(−1/2)): shaded, as a share of the run's epochs.
FINAL_SHARE = 0.05


def gamma_correlation(steps: pl.DataFrame) -> Figure:
    """γ beside the adjacent-gradient correlation, per epoch, one panel per run.

    Both are epoch means of per-step cosines: γ = cos(G, w − w*) against the run's largest-budget reference point
    (without the last epoch before w*), and cos(G(t−1), G(t)) (the `grad_corr` column rather than the window mean
    μ(t), so that neither curve is smoothed more; it needs no reference point, so its every epoch is drawn). Each
    epoch is a dot; the band spans the values of the epoch and its NEIGHBOURS on each side, so that a value
    alternating from step to step (full batch under zigzag geometry) shows as two rows of dots inside one band, where
    a moving average would draw a line between them, where no value is. The last FINAL_SHARE of each run's epochs is
    shaded.
    """
    columns = [*RUN_KEYS, "budget", "epoch", "step", "gamma", "grad_corr"]
    require_columns(steps, "steps", columns)
    factors = [c for c in ("experiment", *NAME_FACTORS) if c in steps.columns and c not in columns]
    chosen = one_reference(steps.select(*columns, *factors))
    gamma = epoch_statistics(before_final_epoch(chosen).drop("grad_corr"), ["gamma"], ("mean",))
    correlation = epoch_statistics(chosen.drop("gamma"), ["grad_corr"], ("mean",))
    long = with_run_names(
        with_epoch_number(
            pl.concat(
                [
                    gamma.rename({"gamma_mean": "value"}).with_columns(pl.lit(GAMMA_SERIES).alias("quantity")),
                    correlation.rename({"grad_corr_mean": "value"}).with_columns(
                        pl.lit(CORRELATION_SERIES).alias("quantity")
                    ),
                ],
                how="diagonal_relaxed",
            )
        )
    ).sort(RUN, "quantity", "epoch")
    window = 2 * NEIGHBOURS + 1
    long = long.with_columns(
        pl.col("value").rolling_min(window, center=True, min_samples=1).over(RUN, "quantity").alias("low"),
        pl.col("value").rolling_max(window, center=True, min_samples=1).over(RUN, "quantity").alias("high"),
    )
    shaded = (
        long.group_by(RUN)
        .agg(pl.col("budget").first(), pl.col(EPOCH).max().alias("last"))
        .with_columns(
            (pl.col("budget") - (FINAL_SHARE * pl.col("budget")).ceil().clip(lower_bound=1) + 0.5).alias("from"),
            (pl.col("last") + 0.5).alias("to"),
        )
    )
    color = alt.Color(
        "quantity:N",
        title=None,
        scale=alt.Scale(domain=[GAMMA_SERIES, CORRELATION_SERIES], range=SERIES_COLORS),
        legend=legend(None, columns=1, symbolType="circle", symbolOpacity=1),
    )
    y_scale = alt.Scale(domain=[-1.05, 1.05], nice=False)
    y_axis = alt.Axis(title="cosine (epoch mean)", values=[-1, -0.5, 0, 0.5, 1])
    y = alt.Y("value:Q", scale=y_scale, axis=y_axis)
    tips, calculate = tooltip(
        [
            Tip(RUN, "run"),
            Tip("quantity", "quantity"),
            Tip(EPOCH, "epoch"),
            Tip("value", "epoch mean", ".3f"),
            Tip("low", f"lowest of {window} epochs", ".3f"),
            Tip("high", f"highest of {window} epochs", ".3f"),
        ]
    )
    runs = long.get_column(RUN).unique().sort().to_list()
    span = [float(long.get_column(EPOCH).min()), float(long.get_column(EPOCH).max())]

    def panel(values: pl.DataFrame, band: pl.DataFrame, width: int, title: str | None, first: bool) -> alt.LayerChart:
        x = epoch_x(domain=span)
        final = (
            alt.Chart(inline_values(band))
            .mark_rect(color="#999999", opacity=0.15)
            .encode(x=alt.X("from:Q", title="epoch", scale=alt.Scale(domain=span, nice=False)), x2="to:Q")
        )
        ranges = (
            alt.Chart()
            .mark_area(opacity=BAND_OPACITY)
            .encode(
                x=x,
                y=alt.Y("low:Q", scale=y_scale, axis=y_axis),
                y2="high:Q",
                color=color,
                detail="quantity:N",
            )
        )
        dots = (
            alt.Chart()
            .transform_calculate(**calculate)
            .mark_circle(size=14, opacity=0.9)
            .encode(x=x, y=y, color=color, tooltip=tips)
        )
        layers = [final, zero_rule(), ranges, dots, *([band_key(BAND)] if first else [])]
        layered = alt.layer(*layers, data=inline_values(values))
        return layered.properties(width=width, height=PANEL_HEIGHT, **({"title": title} if title else {}))

    subtitle = [
        (f"dots: each epoch's mean over its steps (not the window mean μ(t) of eq. 3); band: their {BAND}"),
        (
            "γ against each run's largest-budget reference point, without the last epoch before w*; the correlation "
            "needs no w*"
        ),
        (
            f"shaded: the last {FINAL_SHARE:.0%} of epochs before w*, where γ says more about how w* was picked than "
            "about the landscape"
        ),
    ]
    subtitle += thinning_note(correlation)
    if len(runs) == 1:
        chart: Figure = panel(long, shaded, FULL_WIDTH, None, True)
        subtitle.append(f"run: {runs[0]}")
    else:
        chart = alt.concat(
            *(
                panel(long.filter(pl.col(RUN) == run), shaded.filter(pl.col(RUN) == run), HALF_WIDTH, run, i == 0)
                for i, run in enumerate(runs)
            ),
            columns=2,
            spacing=SPACING,
        )
    return finish(chart, "γ and adjacent gradient correlation along the optimization path", subtitle)


PLOT = Plot(
    "gamma_correlation",
    gamma_correlation,
    "steps",
    caption=(
        "For each run, per epoch on one cosine axis: γ = cos(G, w − w*) (blue) and the adjacent gradient correlation "
        f"cos(G(t−1), G(t)) (vermillion), each epoch's mean as a dot, with a band of their {BAND}, so that a value "
        "alternating from step to step (full-batch descent under zigzag geometry) shows as two rows of dots inside "
        "one band rather than as a line between them. γ leaves out the last epoch before w*, the correlation, which "
        "needs no reference point, does not. The last 5% of epochs before w* are shaded: there γ depends on how w* "
        "was picked (the random walk's effect). pathgeo's own figure: it puts the two papers' cosines side by side."
    ),
)
