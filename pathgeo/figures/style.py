"""What every figure shares: sizes, colour schemes, titles of metrics and factors, and the encodings and layers
the plots are built from (per-epoch band and mean, colour by factor or run, zero rule, inline data)."""

from __future__ import annotations

import re
from typing import TypeAlias

import altair as alt
import polars as pl
import polars.selectors as cs

Figure: TypeAlias = alt.Chart | alt.LayerChart | alt.FacetChart | alt.VConcatChart | alt.HConcatChart

PANEL_WIDTH = 420
PANEL_HEIGHT = 240
FACET_WIDTH = 280
BAND_OPACITY = 0.18
CATEGORY_SCHEME = "tableau10"
# Ordered factors (batch size, budget, ...) get a sequential palette so that "more"
# reads as "darker"; the pale end of viridis is cut off because it vanishes on white.
ORDERED_SCHEME = alt.SchemeParams(name="viridis", extent=[0.0, 0.85])
# Seeds are numbers, but their order means nothing.
UNORDERED_NUMERIC_FACTORS = frozenset({"seed"})

METRIC_SYMBOLS = {
    "gamma": "γ",
    "rsi": "RSI",
    "eb": "EB",
    "lolr": "loLR η*",
    "grad_norm": "‖G‖",
    "dist": "‖w − w*‖",
    "loss": "loss",
    "lr": "learning rate",
    "upd_norm": "‖Δw‖",
    "grad_corr": "cos(G(t−1), G(t))",
    "mean_grad_corr": "μ(t)",
    "sign_flip": "sign flips",
}
METRIC_TITLES = {
    "gamma": "γ = cos(G, w − w*)",
    "rsi": "RSI = G·(w − w*) / ‖w − w*‖²",
    "eb": "EB = ‖G‖ / ‖w − w*‖",
    "lolr": "loLR η* = RSI / EB²",
    "grad_norm": "‖G‖ (minibatch gradient norm)",
    "dist": "‖w − w*‖ (parameter-space distance)",
    "loss": "training loss",
    "lr": "learning rate",
    "upd_norm": "‖Δw‖ (optimizer update norm)",
    "grad_corr": "cos(G(t−1), G(t)) (adjacent gradient correlation)",
    "mean_grad_corr": "μ(t) (adjacent gradient correlation, window mean, eq. 3)",
    "sign_flip": "share of gradient entries flipping sign",
}
# cos(G(t−k), G(t)) of the components orthogonal to w − w*: one column per lag k, so matched
# rather than listed.
PERP_CORR = re.compile(r"perp_corr_lag(\d+)")
FACTOR_TITLES = {
    "batch_size": "batch size",
    "budget": "epoch budget",
    "model": "architecture",
    "peak_lr": "peak learning rate",
    "weight_decay": "weight decay",
    "schedule": "LR schedule",
    "epochs": "epochs trained",
    "label": "run",
    "reference": "reference point",
    "run_id": "run",
    "warmup_epochs": "warm-up epochs",
}

# Legends show the mean lines, not the faint bands that also carry the colour.
LINE_LEGEND = alt.Legend(symbolType="stroke", symbolStrokeWidth=3, symbolOpacity=1)

RUN_KEYS = ["run_id", "label", "reference"]
SERIES = "series"
ZERO_RULE_COLOR = "#555555"


def metric_title(metric: str) -> str:
    """Axis title for a metric column stem such as "gamma", "eb_wd" or "upd_rsi"."""
    if metric.endswith("_wd"):
        return f"{metric_title(metric[:-3])}, G incl. weight decay"
    if metric.startswith("upd_") and metric not in METRIC_TITLES:
        return f"{metric_title(metric[4:])}, update Δw in place of G"
    if lag := PERP_CORR.fullmatch(metric):
        return f"cos(G(t−{lag[1]}), G(t)), components orthogonal to w − w*"
    return METRIC_TITLES.get(metric, metric)


def metric_symbol(metric: str) -> str:
    if lag := PERP_CORR.fullmatch(metric):
        return f"lag-{lag[1]} orthogonal gradient correlation"
    return METRIC_SYMBOLS.get(metric, metric)


def factor_title(factor: str) -> str:
    return FACTOR_TITLES.get(factor, factor.replace("_", " "))


def require_columns(table: pl.DataFrame, name: str, columns: list[str]) -> None:
    if table.is_empty():
        raise ValueError(f"the {name} table is empty: there is nothing to plot")
    missing = [column for column in columns if column not in table.columns]
    if missing:
        raise ValueError(f"the {name} table lacks the columns {missing}")


def unique_columns(columns: list[str | None]) -> list[str]:
    return list(dict.fromkeys(column for column in columns if column is not None))


def inline_values(table: pl.DataFrame) -> alt.InlineData:
    """Inline the table into the spec.

    NaN and ±inf are not valid JSON and would break the renderer; as null they make
    Vega-Lite skip the point instead.  Inline values also bypass Altair's 5000-row
    guard without switching data transformers globally.
    """
    finite = [
        pl.when(pl.col(column).is_finite()).then(pl.col(column)).alias(column)
        for column in table.select(cs.float()).columns
    ]
    return alt.InlineData(values=table.with_columns(finite).to_dicts())


def with_series(table: pl.DataFrame) -> pl.DataFrame:
    """Add the key of one line: a run measured against one reference point."""
    return table.with_columns(
        pl.concat_str([pl.col("run_id"), pl.col("reference")], separator=" · ").alias(SERIES)
    )


def factor_levels(table: pl.DataFrame, factor: str) -> list[str]:
    """The factor's levels as legend strings, in their natural order, so that
    numeric factors (batch size 64 < 128 < 1024) do not sort as text."""
    levels = table.get_column(factor).drop_nulls().unique().sort()
    return [str(level) for level in levels.to_list()]


def factor_color(table: pl.DataFrame, factor: str) -> tuple[pl.DataFrame, alt.Color]:
    ordered = table.schema[factor].is_numeric() and factor not in UNORDERED_NUMERIC_FACTORS
    levels = factor_levels(table, factor)
    table = table.with_columns(pl.col(factor).cast(pl.String))
    color = alt.Color(
        f"{factor}:{'O' if ordered else 'N'}",
        title=factor_title(factor),
        sort=levels,
        scale=alt.Scale(domain=levels, scheme=ORDERED_SCHEME if ordered else CATEGORY_SCHEME),
        legend=LINE_LEGEND,
    )
    return table, color


def run_color(table: pl.DataFrame) -> tuple[pl.DataFrame, alt.Color]:
    """Colour by run label, naming the reference point too when there are several."""
    if table.get_column("reference").n_unique() > 1:
        table = table.with_columns(
            pl.concat_str([pl.col("label"), pl.col("reference")], separator=" vs ").alias("run")
        )
    else:
        table = table.with_columns(pl.col("label").alias("run"))
    levels = table.get_column("run").unique().sort().to_list()
    color = alt.Color(
        "run:N",
        title="run",
        sort=levels,
        scale=alt.Scale(domain=levels, scheme=CATEGORY_SCHEME),
        legend=LINE_LEGEND,
    )
    return table, color


def positive_filter(*fields: str) -> str:
    """Vega expression keeping rows whose fields can be drawn on a log axis."""
    return " && ".join(f"isValid(datum['{field}']) && datum['{field}'] > 0" for field in fields)


def rule_at(y: float) -> alt.Chart:
    """Dashed horizontal line at a reference level of the y axis."""
    # One aggregated row per view (or facet cell), so the rule is drawn once.
    return (
        alt.Chart()
        .transform_aggregate(rows="count()")
        .mark_rule(color=ZERO_RULE_COLOR, strokeDash=[2, 2], strokeWidth=1)
        .encode(y=alt.datum(y))
    )


def zero_rule() -> alt.Chart:
    """Horizontal line at 0 so that the sign of a metric can be read at a glance."""
    return rule_at(0)


def one_reference(table: pl.DataFrame) -> pl.DataFrame:
    """Each run's rows for its largest-budget reference point only.

    Quantities of the gradient alone (loss, learning rate, gradient correlations,
    sign flips) repeat identically for every reference point of a run; drawing each
    copy would stack duplicate points.
    """
    return table.filter(pl.col("budget") == pl.col("budget").max().over("run_id"))


def distinct_runs(table: pl.DataFrame) -> pl.DataFrame:
    """Add "run": the label, with the run id where one label names several runs
    (labels are unique within an experiment, not across experiments)."""
    shared = pl.col("run_id").n_unique().over("label") > 1
    return table.with_columns(
        pl.when(shared)
        .then(pl.concat_str([pl.col("label"), pl.col("run_id")], separator=" · "))
        .otherwise(pl.col("label"))
        .alias("run")
    )


def band_and_mean(
    metric: str,
    low: str,
    high: str,
    color: alt.Color,
    y_title: str,
    log: bool = False,
    x_axis: alt.Axis | None = None,
) -> list[alt.Chart]:
    """Layers of a per-epoch band (low–high over the epoch's steps) and mean line."""
    mean = f"{metric}_mean"
    scale = alt.Scale(type="log") if log else alt.Scale(zero=False)
    x = alt.X("epoch:Q", title="epoch", axis=x_axis or alt.Axis())
    band = alt.Chart().mark_area(opacity=BAND_OPACITY).encode(
        x=x,
        y=alt.Y(f"{low}:Q", title=y_title, scale=scale),
        y2=alt.Y2(f"{high}:Q"),
        color=color,
        detail=alt.Detail(f"{SERIES}:N"),
    )
    line = alt.Chart().mark_line(strokeWidth=1.8).encode(
        x=x,
        y=alt.Y(f"{mean}:Q", title=y_title, scale=scale),
        color=color,
        detail=alt.Detail(f"{SERIES}:N"),
        tooltip=[
            alt.Tooltip("label:N", title="run"),
            alt.Tooltip("reference:N", title="reference"),
            alt.Tooltip("epoch:Q", title="epoch"),
            alt.Tooltip(f"{mean}:Q", title=f"mean {metric_symbol(metric)}", format=".4g"),
            alt.Tooltip(f"{low}:Q", title="band low", format=".4g"),
            alt.Tooltip(f"{high}:Q", title="band high", format=".4g"),
        ],
    )
    if log:
        band = band.transform_filter(positive_filter(low, high))
        line = line.transform_filter(positive_filter(mean))
    return [band, line]


def finish(chart: Figure, title: str, subtitle: str | list[str]) -> Figure:
    """Title and shared styling, applied once to the top-level chart."""
    return (
        chart.properties(title=alt.TitleParams(title, subtitle=subtitle, anchor="start"))
        .configure_axis(labelFontSize=11, titleFontSize=12, gridOpacity=0.5)
        .configure_legend(labelFontSize=11, titleFontSize=12, labelLimit=260)
        .configure_header(labelFontSize=12, titleFontSize=12)
        .configure_title(fontSize=15, subtitleFontSize=11, subtitleColor="#444444")
        .configure_view(stroke="#bbbbbb")
    )
