"""Figures of the path-geometry study.

Every figure is a pure function from one of the pathgeo tables (polars DataFrames,
columns selected by name) to an Altair chart; `save` is the only function that
touches the file system.  `FIGURES` maps the plot names used in the workflow
configuration to the figure functions.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeAlias

import altair as alt
import polars as pl
import polars.selectors as cs

from pathgeo.atomic import atomic_path

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
MEASURED = "measured γ"
ANALYTIC = "analytic (T − t)^(−1/2)"
GAMMA_SERIES = "γ (RSI/EB)"
CORRELATION_SERIES = "adjacent gradient correlation"
# Independent gradients with symmetric entries flip the sign of half of them (percent).
RANDOM_SIGN_FLIPS = 50.0
HOLDS, FAILS, UNDETERMINED = "holds", "fails", "n/a"
# Any <script src=...> would make the HTML depend on the network.
EXTERNAL_SCRIPT = re.compile(r"<script[^>]*\bsrc\s*=", re.IGNORECASE)


def metric_title(metric: str) -> str:
    """Axis title for a metric column stem such as "gamma", "eb_wd" or "upd_rsi"."""
    if metric.endswith("_wd"):
        return f"{metric_title(metric[:-3])}, G incl. weight decay"
    if metric.startswith("upd_") and metric not in METRIC_TITLES:
        return f"{metric_title(metric[4:])}, update Δw in place of G"
    if lag := PERP_CORR.fullmatch(metric):
        return f"cos(G(t−{lag[1]}), G(t)), components orthogonal to w − w*"
    return METRIC_TITLES.get(metric, metric)


def _metric_symbol(metric: str) -> str:
    if lag := PERP_CORR.fullmatch(metric):
        return f"lag-{lag[1]} orthogonal gradient correlation"
    return METRIC_SYMBOLS.get(metric, metric)


def _factor_title(factor: str) -> str:
    return FACTOR_TITLES.get(factor, factor.replace("_", " "))


def _check(table: pl.DataFrame, name: str, columns: list[str]) -> None:
    if table.is_empty():
        raise ValueError(f"the {name} table is empty: there is nothing to plot")
    missing = [column for column in columns if column not in table.columns]
    if missing:
        raise ValueError(f"the {name} table lacks the columns {missing}")


def _unique(columns: list[str | None]) -> list[str]:
    return list(dict.fromkeys(column for column in columns if column is not None))


def _values(table: pl.DataFrame) -> alt.InlineData:
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


def _with_series(table: pl.DataFrame) -> pl.DataFrame:
    """Add the key of one line: a run measured against one reference point."""
    return table.with_columns(
        pl.concat_str([pl.col("run_id"), pl.col("reference")], separator=" · ").alias(SERIES)
    )


def _levels(table: pl.DataFrame, factor: str) -> list[str]:
    """The factor's levels as legend strings, in their natural order, so that
    numeric factors (batch size 64 < 128 < 1024) do not sort as text."""
    levels = table.get_column(factor).drop_nulls().unique().sort()
    return [str(level) for level in levels.to_list()]


def _factor_color(table: pl.DataFrame, factor: str) -> tuple[pl.DataFrame, alt.Color]:
    ordered = table.schema[factor].is_numeric() and factor not in UNORDERED_NUMERIC_FACTORS
    levels = _levels(table, factor)
    table = table.with_columns(pl.col(factor).cast(pl.String))
    color = alt.Color(
        f"{factor}:{'O' if ordered else 'N'}",
        title=_factor_title(factor),
        sort=levels,
        scale=alt.Scale(domain=levels, scheme=ORDERED_SCHEME if ordered else CATEGORY_SCHEME),
        legend=LINE_LEGEND,
    )
    return table, color


def _run_color(table: pl.DataFrame) -> tuple[pl.DataFrame, alt.Color]:
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


def _positive(*fields: str) -> str:
    """Vega expression keeping rows whose fields can be drawn on a log axis."""
    return " && ".join(f"isValid(datum['{field}']) && datum['{field}'] > 0" for field in fields)


def _rule_at(y: float) -> alt.Chart:
    """Dashed horizontal line at a reference level of the y axis."""
    # One aggregated row per view (or facet cell), so the rule is drawn once.
    return (
        alt.Chart()
        .transform_aggregate(rows="count()")
        .mark_rule(color=ZERO_RULE_COLOR, strokeDash=[2, 2], strokeWidth=1)
        .encode(y=alt.datum(y))
    )


def _zero_rule() -> alt.Chart:
    """Horizontal line at 0 so that the sign of a metric can be read at a glance."""
    return _rule_at(0)


def _one_reference(table: pl.DataFrame) -> pl.DataFrame:
    """Each run's rows for its largest-budget reference point only.

    Quantities of the gradient alone (loss, learning rate, gradient correlations,
    sign flips) repeat identically for every reference point of a run; drawing each
    copy would stack duplicate points.
    """
    return table.filter(pl.col("budget") == pl.col("budget").max().over("run_id"))


def _distinct_runs(table: pl.DataFrame) -> pl.DataFrame:
    """Add "run": the label, with the run id where one label names several runs
    (labels are unique within an experiment, not across experiments)."""
    shared = pl.col("run_id").n_unique().over("label") > 1
    return table.with_columns(
        pl.when(shared)
        .then(pl.concat_str([pl.col("label"), pl.col("run_id")], separator=" · "))
        .otherwise(pl.col("label"))
        .alias("run")
    )


def _band_and_mean(
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
            alt.Tooltip(f"{mean}:Q", title=f"mean {_metric_symbol(metric)}", format=".4g"),
            alt.Tooltip(f"{low}:Q", title="band low", format=".4g"),
            alt.Tooltip(f"{high}:Q", title="band high", format=".4g"),
        ],
    )
    if log:
        band = band.transform_filter(_positive(low, high))
        line = line.transform_filter(_positive(mean))
    return [band, line]


def _finish(chart: Figure, title: str, subtitle: str | list[str]) -> Figure:
    """Title and shared styling, applied once to the top-level chart."""
    return (
        chart.properties(title=alt.TitleParams(title, subtitle=subtitle, anchor="start"))
        .configure_axis(labelFontSize=11, titleFontSize=12, gridOpacity=0.5)
        .configure_legend(labelFontSize=11, titleFontSize=12, labelLimit=260)
        .configure_header(labelFontSize=12, titleFontSize=12)
        .configure_title(fontSize=15, subtitleFontSize=11, subtitleColor="#444444")
        .configure_view(stroke="#bbbbbb")
    )


def gamma_band(
    epochs: pl.DataFrame, color: str, facet: str | None = None, metric: str = "gamma"
) -> Figure:
    """Per-epoch mean of `metric` with its min–max band, coloured by a run factor.

    One line per (run, reference point); `facet` splits the runs into columns.
    Paper Figures 1, 4, 6 and 16 (γ by optimizer, batch size, architecture, seed,
    epoch budget).
    """
    mean, low, high = f"{metric}_mean", f"{metric}_min", f"{metric}_max"
    columns = _unique([*RUN_KEYS, "epoch", color, facet, mean, low, high])
    _check(epochs, "epochs", columns)
    data = _with_series(epochs.select(columns))
    facet_levels = _levels(data, facet) if facet is not None else []
    data, color_encoding = _factor_color(data, color)
    layers = [_zero_rule(), *_band_and_mean(metric, low, high, color_encoding, metric_title(metric))]
    title = f"{_metric_symbol(metric)} along the optimization path, by {_factor_title(color)}"
    if facet is None:
        chart: Figure = alt.layer(*layers, data=_values(data)).properties(
            width=PANEL_WIDTH, height=PANEL_HEIGHT
        )
    else:
        data = data.with_columns(pl.col(facet).cast(pl.String))
        chart = (
            alt.layer(*layers)
            .properties(width=FACET_WIDTH, height=PANEL_HEIGHT)
            .facet(
                column=alt.Column(f"{facet}:N", title=_factor_title(facet), sort=facet_levels),
                data=_values(data),
            )
        )
    return _finish(
        chart, title, "per-epoch mean (line) and min–max over the epoch's steps (band)"
    )


def rsi_eb_gamma(epochs: pl.DataFrame) -> Figure:
    """RSI, EB and γ per epoch (mean with min–max band), stacked.  Paper Figure 2."""
    panels = [("rsi", False), ("eb", True), ("gamma", False)]
    stats = [f"{metric}_{stat}" for metric, _ in panels for stat in ("mean", "min", "max")]
    _check(epochs, "epochs", [*RUN_KEYS, "epoch", *stats])
    data, color = _run_color(_with_series(epochs.select([*RUN_KEYS, "epoch", *stats])))
    charts = []
    for position, (metric, log) in enumerate(panels):
        bottom = position == len(panels) - 1
        # Only the bottom panel carries the epoch axis title; the x scale is shared.
        x_axis = alt.Axis() if bottom else alt.Axis(title=None)
        layers = _band_and_mean(
            metric,
            f"{metric}_min",
            f"{metric}_max",
            color,
            metric_title(metric) + (" (log)" if log else ""),
            log=log,
            x_axis=x_axis,
        )
        if not log:
            layers.insert(0, _zero_rule())
        charts.append(alt.layer(*layers).properties(width=PANEL_WIDTH, height=170))
    chart = (
        alt.vconcat(*charts, data=_values(data), spacing=12)
        .resolve_scale(x="shared", y="independent", color="shared")
    )
    return _finish(
        chart,
        "RSI, EB and γ along the optimization path",
        "per-epoch mean (line) and min–max over the epoch's steps (band); EB on a log scale",
    )


def lolr(epochs: pl.DataFrame, color: str) -> Figure:
    """Locally optimal learning rate per epoch against the learning rate used.

    Mean η* = RSI/EB² with its interquartile band over the epoch's steps, and the
    run's mean learning rate as a dashed line of the same colour.  Paper Figure 3.
    """
    columns = _unique([*RUN_KEYS, "epoch", color, "lolr_mean", "lolr_q25", "lolr_q75", "lr_mean"])
    _check(epochs, "epochs", columns)
    data, color_encoding = _factor_color(_with_series(epochs.select(columns)), color)
    scale = alt.Scale(type="log")
    y_title = "learning rate (log)"
    x = alt.X("epoch:Q", title="epoch")
    dash = alt.StrokeDash(
        "quantity:N",
        title="line",
        scale=alt.Scale(domain=["loLR η* = RSI / EB²", "LR used"], range=[[1, 0], [6, 4]]),
        legend=alt.Legend(symbolType="stroke", symbolSize=500, symbolStrokeWidth=2),
    )
    tooltip = [
        alt.Tooltip("label:N", title="run"),
        alt.Tooltip("epoch:Q", title="epoch"),
        alt.Tooltip("lolr_mean:Q", title="mean η*", format=".3g"),
        alt.Tooltip("lr_mean:Q", title="LR used", format=".3g"),
    ]
    band = (
        alt.Chart()
        .transform_filter(_positive("lolr_q25", "lolr_q75"))
        .mark_area(opacity=BAND_OPACITY)
        .encode(
            x=x,
            y=alt.Y("lolr_q25:Q", title=y_title, scale=scale),
            y2="lolr_q75:Q",
            color=color_encoding,
            detail=alt.Detail(f"{SERIES}:N"),
        )
    )
    def line(field: str, quantity: str, stroke_width: float) -> alt.Chart:
        return (
            alt.Chart()
            .transform_filter(_positive(field))
            .transform_calculate(quantity=f"'{quantity}'")
            .mark_line(strokeWidth=stroke_width)
            .encode(
                x=x,
                y=alt.Y(f"{field}:Q", title=y_title, scale=scale),
                color=color_encoding,
                strokeDash=dash,
                detail=alt.Detail(f"{SERIES}:N"),
                tooltip=tooltip,
            )
        )

    optimal = line("lolr_mean", "loLR η* = RSI / EB²", 1.8)
    used = line("lr_mean", "LR used", 1.4)
    chart = alt.layer(band, optimal, used, data=_values(data)).properties(
        width=PANEL_WIDTH, height=PANEL_HEIGHT + 40
    )
    return _finish(
        chart,
        f"Locally optimal learning rate vs the learning rate used, by {_factor_title(color)}",
        [
            "η* minimizes ‖w − ηG − w*‖; mean (solid) with interquartile band over the epoch's steps",
            "log scale: epochs where η* ≤ 0 (G pointing away from w*) are not drawn",
        ],
    )


def distance(epochs: pl.DataFrame, color: str) -> Figure:
    """Mean distance ‖w_t − w*‖ to the reference point per epoch.  Paper Figures 12/13."""
    columns = _unique([*RUN_KEYS, "epoch", color, "dist_mean"])
    _check(epochs, "epochs", columns)
    data, color_encoding = _factor_color(_with_series(epochs.select(columns)), color)
    chart = (
        alt.Chart(_values(data))
        .transform_filter(_positive("dist_mean"))
        .mark_line(strokeWidth=1.8, point=alt.OverlayMarkDef(size=18))
        .encode(
            x=alt.X("epoch:Q", title="epoch"),
            y=alt.Y("dist_mean:Q", title="‖w − w*‖ (L2, log)", scale=alt.Scale(type="log")),
            color=color_encoding,
            detail=alt.Detail(f"{SERIES}:N"),
            tooltip=[
                alt.Tooltip("label:N", title="run"),
                alt.Tooltip("reference:N", title="reference"),
                alt.Tooltip("epoch:Q", title="epoch"),
                alt.Tooltip("dist_mean:Q", title="mean distance", format=".4g"),
            ],
        )
        .properties(width=PANEL_WIDTH, height=PANEL_HEIGHT)
    )
    return _finish(
        chart,
        f"Distance to the reference point, by {_factor_title(color)}",
        "per-epoch mean over the epoch's steps of the distance from the iterate w to w*",
    )


def synthetic(steps: pl.DataFrame) -> Figure:
    """Per-step RSI and γ on the synthetic objectives (ALM, SM).  Paper Figure 5.

    One column per objective (`dataset`), rows RSI and γ, each panel on its own
    scales, with a zero line so that negative values stand out.
    """
    metrics = {"rsi": "RSI", "gamma": "γ"}
    _check(steps, "steps", [*RUN_KEYS, "dataset", "step", *metrics])
    data, color = _run_color(_with_series(steps.select([*RUN_KEYS, "dataset", "step", *metrics])))
    long = data.unpivot(
        index=[*RUN_KEYS, "run", SERIES, "dataset", "step"],
        on=list(metrics),
        variable_name="quantity",
        value_name="value",
    ).with_columns(pl.col("quantity").replace_strict(metrics))
    line = alt.Chart().mark_line(strokeWidth=1.2).encode(
        x=alt.X("step:Q", title="step"),
        y=alt.Y("value:Q", title=None, scale=alt.Scale(zero=False)),
        color=color,
        detail=alt.Detail(f"{SERIES}:N"),
        tooltip=[
            alt.Tooltip("run:N", title="run"),
            alt.Tooltip("step:Q", title="step"),
            alt.Tooltip("quantity:N", title="quantity"),
            alt.Tooltip("value:Q", title="value", format=".4g"),
        ],
    )
    objectives = _levels(data, "dataset")
    chart = (
        alt.layer(_zero_rule(), line)
        .properties(width=300, height=180)
        .facet(
            row=alt.Row(
                "quantity:N",
                title=None,
                sort=list(metrics.values()),
                header=alt.Header(labelAngle=0, labelFontSize=16, labelAlign="right"),
            ),
            column=alt.Column("dataset:N", title="objective", sort=objectives),
            data=_values(long),
        )
        .resolve_scale(x="independent", y="independent")
    )
    return _finish(
        chart,
        "RSI and γ on synthetic objectives",
        [
            "RSI = G·(w − w*) / ‖w − w*‖², γ = cos(G, w − w*), per step; dashed line at 0",
            "negative values: the step moves away from the final iterate w*",
        ],
    )


def random_walk(steps: pl.DataFrame) -> Figure:
    """Measured γ against the steps left to the reference, with the random-walk law.

    For an isotropic random walk in high dimension γ(x_t) ≈ (T − t)^(−1/2)
    (paper eq. 8): choosing w* on the path itself makes γ positive and rise at the end.
    """
    _check(steps, "steps", ["steps_to_reference", "gamma"])
    drawable = pl.col("steps_to_reference").gt(0) & pl.col("gamma").is_finite() & pl.col("gamma").gt(0)
    measured = steps.select("steps_to_reference", "gamma").filter(drawable)
    hidden = steps.height - measured.height
    analytic = (
        steps.select(pl.col("steps_to_reference").unique().sort())
        .filter(pl.col("steps_to_reference") > 0)
        .with_columns(gamma=pl.col("steps_to_reference").cast(pl.Float64).pow(-0.5))
    )
    data = pl.concat(
        [
            measured.with_columns(source=pl.lit(MEASURED)),
            analytic.with_columns(source=pl.lit(ANALYTIC)),
        ],
        how="vertical_relaxed",
    )
    x = alt.X(
        "steps_to_reference:Q",
        title="steps remaining to the reference point, T − t (log)",
        # Without nice=False the axis would run on to the next power of ten.
        scale=alt.Scale(type="log", nice=False),
    )
    y = alt.Y("gamma:Q", title="γ = cos(G, w − w*) (log)", scale=alt.Scale(type="log"))
    color = alt.Color(
        "source:N",
        title=None,
        scale=alt.Scale(domain=[MEASURED, ANALYTIC], range=["#4c78a8", "#e45756"]),
        legend=alt.Legend(symbolOpacity=1),
    )
    points = (
        alt.Chart()
        .transform_filter(alt.datum.source == MEASURED)
        .mark_circle(size=12, opacity=0.45)
        .encode(x=x, y=y, color=color)
    )
    curve = (
        alt.Chart()
        .transform_filter(alt.datum.source == ANALYTIC)
        .mark_line(strokeWidth=2.2)
        .encode(x=x, y=y, color=color)
    )
    chart = alt.layer(points, curve, data=_values(data)).properties(
        width=PANEL_WIDTH, height=PANEL_HEIGHT + 60
    )
    subtitle = ["isotropic random walk with the endpoint as reference: γ(x_t) ≈ (T − t)^(−1/2) (eq. 8)"]
    if hidden:
        subtitle.append(f"log scale: {hidden} step(s) with γ ≤ 0 or undefined are not drawn")
    return _finish(chart, "Cosine to the endpoint of a random walk", subtitle)


def _percent(value: float | None) -> str:
    return UNDETERMINED if value is None or value != value else f"{100 * value:.1f}%"


def _number(value: float | None, sign: bool = False) -> str:
    if value is None or value != value:
        return UNDETERMINED
    return f"{value:+.2f}" if sign else f"{value:.2f}"


def _verdict(holds: bool | None) -> str:
    return UNDETERMINED if holds is None else HOLDS if holds else FAILS


# (column header, verdict column, how the measured value reads in the cell)
CLAIM_CELLS: list[tuple[str, str, Callable[[dict[str, Any]], str]]] = [
    (
        "γ > 0 · share of steps",
        "holds_gamma_positive",
        lambda run: _percent(run["frac_steps_gamma_positive"]),
    ),
    (
        "γ stable · CV of epoch means",
        "holds_gamma_stable",
        lambda run: _number(run["gamma_epoch_cv"]),
    ),
    (
        "min γ > 0 · share of epochs",
        "holds_min_gamma_positive",
        lambda run: _percent(run["frac_epochs_min_gamma_positive"]),
    ),
    (
        "RSI / EB trend · Spearman ρ",
        "holds_trend",
        lambda run: f"{_number(run['rsi_trend'], sign=True)} / {_number(run['eb_trend'], sign=True)}",
    ),
]


def claims(claims: pl.DataFrame) -> Figure:
    """Which of the paper's properties hold for each run: measured value per cell,
    green where the property holds, red where it fails."""
    measured = [
        "frac_steps_gamma_positive",
        "gamma_epoch_cv",
        "frac_epochs_min_gamma_positive",
        "rsi_trend",
        "eb_trend",
    ]
    order = ["dataset", "model", "optimizer", "batch_size", "seed", "label"]
    _check(claims, "claims", ["run_id", *order, *measured, *(cell[1] for cell in CLAIM_CELLS)])
    runs = _distinct_runs(claims.sort(order, nulls_last=True))
    cells = pl.DataFrame(
        [
            {"run": run["run"], "property": header, "value": text(run), "verdict": _verdict(run[verdict])}
            for run in runs.to_dicts()
            for header, verdict, text in CLAIM_CELLS
        ]
    )
    base = alt.Chart().encode(
        x=alt.X(
            "property:N",
            title=None,
            sort=[cell[0] for cell in CLAIM_CELLS],
            axis=alt.Axis(orient="top", labelAngle=0, labelLimit=200, domain=False, ticks=False),
        ),
        y=alt.Y(
            "run:N",
            title=None,
            sort=runs.get_column("run").to_list(),
            axis=alt.Axis(labelLimit=420, domain=False, ticks=False),
        ),
    )
    cell = base.mark_rect(stroke="white", strokeWidth=2).encode(
        color=alt.Color(
            "verdict:N",
            title="verdict",
            scale=alt.Scale(
                domain=[HOLDS, FAILS, UNDETERMINED], range=["#a6dba0", "#f4a582", "#dddddd"]
            ),
        ),
        tooltip=[
            alt.Tooltip("run:N", title="run"),
            alt.Tooltip("property:N", title="property"),
            alt.Tooltip("value:N", title="measured"),
            alt.Tooltip("verdict:N", title="verdict"),
        ],
    )
    text = base.mark_text(fontSize=11, color="black").encode(text="value:N")
    chart = alt.layer(cell, text, data=_values(cells)).properties(
        width=alt.Step(190), height=alt.Step(22)
    )
    return _finish(
        chart,
        "Do the paper's properties hold?",
        "one row per run; cell text is the measured value, colour the verdict",
    )


def grad_correlation(epochs: pl.DataFrame, color: str = "label") -> Figure:
    """Training loss beside the mean adjacent-gradient correlation, per epoch.

    One line per run, one reference point per run (both quantities depend on the
    gradients only).  Second paper, Figure 1 (top row).
    """
    correlation = "mean_grad_corr_mean"
    columns = _unique([*RUN_KEYS, "budget", "epoch", color, "loss_mean", correlation])
    _check(epochs, "epochs", columns)
    data = _with_series(_one_reference(epochs.select(columns)))
    data, color_encoding = _factor_color(data, color)
    x = alt.X("epoch:Q", title="epoch")
    tooltip = [
        alt.Tooltip("label:N", title="run"),
        alt.Tooltip("epoch:Q", title="epoch"),
        alt.Tooltip("loss_mean:Q", title="mean loss", format=".4g"),
        alt.Tooltip(f"{correlation}:Q", title="mean μ(t)", format=".3f"),
    ]
    loss = (
        alt.Chart()
        .transform_filter(_positive("loss_mean"))
        .mark_line(strokeWidth=1.8)
        .encode(
            x=x,
            y=alt.Y("loss_mean:Q", title="training loss (epoch mean, log)", scale=alt.Scale(type="log")),
            color=color_encoding,
            detail=alt.Detail(f"{SERIES}:N"),
            tooltip=tooltip,
        )
        .properties(width=PANEL_WIDTH, height=PANEL_HEIGHT)
    )
    correlation_line = alt.Chart().mark_line(strokeWidth=1.8).encode(
        x=x,
        y=alt.Y(
            f"{correlation}:Q",
            title="gradient correlation μ (eq. 3), epoch mean",
            scale=alt.Scale(domain=[-1, 1]),
        ),
        color=color_encoding,
        detail=alt.Detail(f"{SERIES}:N"),
        tooltip=tooltip,
    )
    chart = alt.hconcat(
        loss,
        alt.layer(_zero_rule(), correlation_line).properties(width=PANEL_WIDTH, height=PANEL_HEIGHT),
        data=_values(data),
    ).resolve_scale(color="shared")
    return _finish(
        chart,
        f"Training loss and gradient correlation, by {_factor_title(color)}",
        [
            (
                "μ(t) = mean of cos(G(s−1), G(s)) over the h − 1 adjacent pairs of the window ending at step t"
                " (eq. 3), averaged over the epoch's steps"
            ),
            "μ > 0: successive gradients agree (smooth geometry); μ < 0: they point back and forth (zigzag)",
        ],
    )


def _nearest_epochs(available: list[int], requested: Sequence[int] | None) -> dict[int, list[int]]:
    """Each epoch to draw, mapped to the requested epochs it stands in for because
    they have no matrix (empty when it was itself requested or chosen by default)."""
    if requested is None:
        requested = [available[0], available[len(available) // 2], available[-1]]
    chosen: dict[int, list[int]] = {}
    for wanted in requested:
        # Ties go to the earlier epoch.
        epoch = min(available, key=lambda candidate: (abs(candidate - wanted), candidate))
        stand_in_for = chosen.setdefault(epoch, [])
        if wanted != epoch and wanted not in stand_in_for:
            stand_in_for.append(wanted)
    return dict(sorted(chosen.items()))


def correlation_matrices(matrices: pl.DataFrame, epochs: Sequence[int] | None = None) -> Figure:
    """Pairwise gradient-correlation matrices of an h-step window, one row of panels per run.

    `epochs` picks the windows (the epoch whose first step starts each); by default
    each run's first, middle and last.  A requested epoch without a matrix is replaced
    by the nearest one, and the panel title says so.  Second paper, Figures 1 and 8.
    """
    columns = ["run_id", "label", "epoch", "start_step", "i", "j", "corr", "sign_flip"]
    _check(matrices, "matrices", columns)
    if epochs is not None and len(epochs) == 0:
        raise ValueError("epochs is empty: name the epochs to draw, or leave it out for the first, middle and last")
    data = _distinct_runs(matrices.select(columns)).with_columns(
        step_i=pl.col("start_step") + pl.col("i"), step_j=pl.col("start_step") + pl.col("j")
    )
    base = alt.Chart().encode(
        x=alt.X("j:O", title="step j in window", axis=alt.Axis(labelAngle=0)),
        y=alt.Y("i:O", title="step i in window"),
    )
    cells = base.mark_rect(stroke="white", strokeWidth=1).encode(
        color=alt.Color(
            "corr:Q",
            title=["gradient", "correlation"],
            # Red for aligned, blue for opposed gradients; fixed so panels compare.
            scale=alt.Scale(domain=[-1, 1], scheme="redblue", reverse=True),
        ),
        tooltip=[
            alt.Tooltip("run:N", title="run"),
            alt.Tooltip("epoch:Q", title="epoch"),
            alt.Tooltip("step_i:Q", title="step i"),
            alt.Tooltip("step_j:Q", title="step j"),
            alt.Tooltip("corr:Q", title="cos(G(i), G(j))", format=".3f"),
            alt.Tooltip("sign_flip:Q", title="entries of opposite sign", format=".1%"),
        ],
    )
    # Dark text would vanish on the saturated ends of the colour scale.
    text_color = alt.when(alt.expr.abs(alt.datum.corr) > 0.6).then(alt.value("white")).otherwise(alt.value("black"))
    values = base.mark_text(fontSize=10).encode(text=alt.Text("corr:Q", format=".2f"), color=text_color)
    rows = []
    for run in data.get_column("run").unique().sort().to_list():
        windows = data.filter(pl.col("run") == run)
        available = windows.get_column("epoch").unique().sort().to_list()
        panels = []
        for epoch, stand_in_for in _nearest_epochs(available, epochs).items():
            title = f"epoch {epoch}"
            if stand_in_for:
                title += f" (nearest to {', '.join(str(wanted) for wanted in stand_in_for)})"
            panels.append(
                alt.layer(cells, values, data=_values(windows.filter(pl.col("epoch") == epoch))).properties(
                    title=alt.TitleParams(title, fontSize=12, fontWeight="normal"),
                    width=alt.Step(28),
                    height=alt.Step(28),
                )
            )
        rows.append(alt.hconcat(*panels, title=alt.TitleParams(run, fontSize=13, anchor="start")))
    chart = alt.vconcat(*rows, spacing=18).resolve_scale(color="shared")
    return _finish(
        chart,
        "Pairwise gradient correlation within a window of steps",
        [
            "cell (i, j): cos(G(i), G(j)) of the i-th and j-th gradient of the window starting at the epoch's first step",
            "hover a cell for the share of gradient entries with opposite sign",
        ],
    )


def sign_flip(epochs: pl.DataFrame, color: str = "label") -> Figure:
    """Share of gradient entries whose sign flips between adjacent steps, per epoch:
    mean line with the 5–95 % band over the epoch's steps.  Second paper, Figure 8."""
    stats = ["sign_flip_mean", "sign_flip_q05", "sign_flip_q95"]
    columns = _unique([*RUN_KEYS, "budget", "epoch", color, *stats])
    _check(epochs, "epochs", columns)
    data = _with_series(_one_reference(epochs.select(columns))).with_columns(pl.col(stats) * 100)
    data, color_encoding = _factor_color(data, color)
    layers = _band_and_mean(
        "sign_flip",
        "sign_flip_q05",
        "sign_flip_q95",
        color_encoding,
        "gradient entries flipping sign (%)",
    )
    chart = alt.layer(_rule_at(RANDOM_SIGN_FLIPS), *layers, data=_values(data)).properties(
        width=PANEL_WIDTH, height=PANEL_HEIGHT
    )
    return _finish(
        chart,
        f"Sign flips of gradient entries between adjacent steps, by {_factor_title(color)}",
        [
            "share of entries of G with opposite sign at steps t − 1 and t: epoch mean (line), 5–95 % quantiles (band)",
            f"dashed line: {RANDOM_SIGN_FLIPS:.0f} %, what independent gradients would give",
        ],
    )


def gamma_correlation(epochs: pl.DataFrame) -> Figure:
    """γ beside the adjacent-gradient correlation, per epoch, one panel per run.

    Both are epoch means of per-step cosines: γ = cos(G, w − w*) against the run's
    largest-budget reference point, and cos(G(t−1), G(t)) (the `grad_corr_mean`
    column rather than the window mean μ(t), so that neither curve is smoothed more).
    """
    columns = [*RUN_KEYS, "budget", "epoch", "gamma_mean", "grad_corr_mean"]
    _check(epochs, "epochs", columns)
    data = _distinct_runs(_one_reference(epochs.select(columns)))
    long = data.unpivot(
        index=["run", "reference", "epoch"],
        on=["gamma_mean", "grad_corr_mean"],
        variable_name="quantity",
        value_name="value",
    ).with_columns(
        pl.col("quantity").replace_strict({"gamma_mean": GAMMA_SERIES, "grad_corr_mean": CORRELATION_SERIES})
    )
    line = alt.Chart().mark_line(strokeWidth=1.8).encode(
        x=alt.X("epoch:Q", title="epoch"),
        y=alt.Y("value:Q", title="cosine (epoch mean)", scale=alt.Scale(domain=[-1, 1])),
        color=alt.Color(
            "quantity:N",
            title=None,
            scale=alt.Scale(domain=[GAMMA_SERIES, CORRELATION_SERIES], range=["#4c78a8", "#e45756"]),
            legend=LINE_LEGEND,
        ),
        tooltip=[
            alt.Tooltip("run:N", title="run"),
            alt.Tooltip("reference:N", title="reference"),
            alt.Tooltip("epoch:Q", title="epoch"),
            alt.Tooltip("quantity:N", title="quantity"),
            alt.Tooltip("value:Q", title="value", format=".3f"),
        ],
    )
    runs = data.get_column("run").unique().sort().to_list()
    subtitle = [
        (
            "γ = cos(G, w − w*) against each run's largest-budget reference point;"
            " adjacent gradient correlation = cos(G(t−1), G(t))"
        ),
        "both: mean over the epoch's steps (not the window mean μ(t) of eq. 3)",
    ]
    if len(runs) == 1:
        chart: Figure = alt.layer(_zero_rule(), line, data=_values(long)).properties(
            width=PANEL_WIDTH, height=PANEL_HEIGHT
        )
        subtitle.append(f"run: {runs[0]}")
    else:
        chart = alt.layer(_zero_rule(), line).properties(width=FACET_WIDTH, height=PANEL_HEIGHT).facet(
            facet=alt.Facet("run:N", title=None, sort=runs),
            columns=3,
            data=_values(long),
        )
    return _finish(chart, "γ and adjacent gradient correlation along the optimization path", subtitle)


def warmup(steps: pl.DataFrame, color: str = "label") -> Figure:
    """Training loss and learning rate per step, with each run's warm-up switch point.

    The switch point is the step of the run's largest learning rate: where the
    warm-up ends, whether fixed in advance or found by GAWU.  Runs whose learning
    rate never changes have none.  Second paper, Figure 10.
    """
    columns = _unique([*RUN_KEYS, "budget", "epoch", "step", color, "loss", "lr"])
    _check(steps, "steps", columns)
    data, color_encoding = _factor_color(_with_series(_one_reference(steps.select(columns))), color)
    largest = pl.col("lr").max().over(SERIES)
    switches = (
        data.filter((pl.col("lr") == largest) & (largest > pl.col("lr").min().over(SERIES)))
        .sort("step")
        .group_by(SERIES, maintain_order=True)
        .first()
    )
    x = alt.X("step:Q", title="optimizer step")
    lr_y = alt.Y("lr:Q", title="learning rate (log)", scale=alt.Scale(type="log"))
    tooltip = [
        alt.Tooltip("label:N", title="run"),
        alt.Tooltip("step:Q", title="step"),
        alt.Tooltip("epoch:Q", title="epoch"),
        alt.Tooltip("loss:Q", title="loss", format=".4g"),
        alt.Tooltip("lr:Q", title="learning rate", format=".3g"),
    ]

    def line(field: str, y: alt.Y) -> alt.Chart:
        return (
            alt.Chart()
            .transform_filter(_positive(field))
            .mark_line(strokeWidth=1.2)
            .encode(x=x, y=y, color=color_encoding, detail=alt.Detail(f"{SERIES}:N"), tooltip=tooltip)
        )

    switch_tooltip = [
        alt.Tooltip("label:N", title="run"),
        alt.Tooltip("step:Q", title="switch step"),
        alt.Tooltip("epoch:Q", title="epoch"),
        alt.Tooltip("lr:Q", title="largest learning rate", format=".3g"),
    ]
    switch_rule = (
        alt.Chart(_values(switches))
        .mark_rule(strokeDash=[4, 3], strokeWidth=1, opacity=0.7)
        .encode(x=x, color=color_encoding, tooltip=switch_tooltip)
    )
    switch_point = (
        alt.Chart(_values(switches))
        .mark_point(filled=True, size=70, opacity=1, stroke="white", strokeWidth=1)
        .encode(x=x, y=lr_y, color=color_encoding, tooltip=switch_tooltip)
    )
    loss = line("loss", alt.Y("loss:Q", title="training loss (log)", scale=alt.Scale(type="log")))
    chart = alt.hconcat(
        loss.properties(width=PANEL_WIDTH, height=PANEL_HEIGHT),
        alt.layer(line("lr", lr_y), switch_rule, switch_point).properties(width=PANEL_WIDTH, height=PANEL_HEIGHT),
        data=_values(data),
    ).resolve_scale(color="shared")
    return _finish(
        chart,
        f"Warm-up switch points: training loss and learning rate, by {_factor_title(color)}",
        [
            "per step: training loss (left) and learning rate (right), both on log scales",
            "dot and dashed line: the run's switch point, the step of its largest learning rate (end of warm-up)",
            "gawu finds its switch point from the gradients; its warmup_epochs is only the latest one allowed",
        ],
    )


# The first paper's two other measurements (pathgeo.point_geometry): the full-batch gradient every N
# epochs, and K fixed minibatches every N steps.

POINT_PANELS = [("gamma", False), ("rsi", False), ("eb", True)]


def _point_axes(metric: str, log: bool, x: tuple[str, str | None]) -> tuple[alt.X, str, alt.Scale]:
    """The x encoding ((field, title); a None title for all panels but the bottom one), y title and scale."""
    scale = alt.Scale(type="log") if log else alt.Scale(zero=False)
    return alt.X(f"{x[0]}:Q", title=x[1]), metric_title(metric) + (" (log)" if log else ""), scale


def _point_panel(metric: str, log: bool, x: tuple[str, str | None], color: alt.Color, y_field: str,
                 dashed: bool = False) -> alt.Chart:
    """A line with points of `y_field` against the x field."""
    x_encoding, y_title, scale = _point_axes(metric, log, x)
    chart = (
        alt.Chart()
        .mark_line(strokeWidth=1.6, point=alt.OverlayMarkDef(size=18), strokeDash=[5, 3] if dashed else [1, 0])
        .encode(
            x=x_encoding,
            y=alt.Y(f"{y_field}:Q", title=y_title, scale=scale),
            color=color,
            detail=alt.Detail(f"{SERIES}:N"),
            tooltip=[
                alt.Tooltip("label:N", title="run"),
                alt.Tooltip("reference:N", title="reference"),
                alt.Tooltip(f"{x[0]}:Q", title=x[0]),
                alt.Tooltip(f"{y_field}:Q", title=y_field, format=".4g"),
            ],
        )
    )
    return chart.transform_filter(_positive(y_field)) if log else chart


def full_batch_geometry(full_batch: pl.DataFrame, color: str = "label") -> Figure:
    """γ, RSI and EB of the full-batch gradient at the end of each measured epoch, one line per run and
    reference point; dashed, the same with the weight-decay term (G + λw).  The first paper's code
    (`get_fullbatch_gradient`), along the minibatch trajectory."""
    fields = [f"{m}{suffix}" for m, _ in POINT_PANELS for suffix in ("", "_wd")]
    columns = _unique([*RUN_KEYS, "budget", "epoch", color, *fields])
    _check(full_batch, "full_batch", columns)
    data, color_encoding = _factor_color(_with_series(full_batch.select(columns)), color)
    charts = []
    for position, (metric, log) in enumerate(POINT_PANELS):
        x = ("epoch", "epoch (full-batch gradient at its end)" if position == len(POINT_PANELS) - 1 else None)
        layers = [_point_panel(metric, log, x, color_encoding, metric),
                  _point_panel(metric, log, x, color_encoding, f"{metric}_wd", dashed=True)]
        if not log:
            layers.insert(0, _zero_rule())
        charts.append(alt.layer(*layers).properties(width=PANEL_WIDTH, height=150))
    chart = alt.vconcat(*charts, data=_values(data), spacing=12).resolve_scale(x="shared", y="independent", color="shared")
    return _finish(
        chart,
        f"Geometry of the full-batch gradient along the minibatch path, by {_factor_title(color)}",
        ["the gradient of the mean loss over the whole training set, at the weights each measured epoch ends with",
         "solid: G; dashed: G + λw (with the weight-decay term); EB on a log scale"],
    )


def fixed_batch_spread(fixed_batches: pl.DataFrame, color: str = "label") -> Figure:
    """How γ, RSI and EB spread over K fixed minibatches at one point: at each measured step, the mean over
    the batches (line) and their min–max (band), one line per run and reference point.  The first
    paper's code (`get_batch_list_grads`)."""
    fields = [f"{m}_{stat}" for m, _ in POINT_PANELS for stat in ("mean", "min", "max")]
    columns = _unique([*RUN_KEYS, "budget", "step", "batches", color, *fields])
    _check(fixed_batches, "fixed_batches", columns)
    data, color_encoding = _factor_color(_with_series(fixed_batches.select(columns)), color)
    charts = []
    for position, (metric, log) in enumerate(POINT_PANELS):
        x = ("step", "optimizer step (all batches at that step's weights)" if position == len(POINT_PANELS) - 1 else None)
        x_encoding, y_title, scale = _point_axes(metric, log, x)
        low, high = f"{metric}_min", f"{metric}_max"
        band = alt.Chart().mark_area(opacity=BAND_OPACITY).encode(
            x=x_encoding, y=alt.Y(f"{low}:Q", title=y_title, scale=scale), y2=alt.Y2(f"{high}:Q"),
            color=color_encoding, detail=alt.Detail(f"{SERIES}:N"),
        )
        if log:
            band = band.transform_filter(_positive(low, high))
        layers = [band, _point_panel(metric, log, x, color_encoding, f"{metric}_mean")]
        if not log:
            layers.insert(0, _zero_rule())
        charts.append(alt.layer(*layers).properties(width=PANEL_WIDTH, height=150))
    chart = alt.vconcat(*charts, data=_values(data), spacing=12).resolve_scale(x="shared", y="independent", color="shared")
    batches = sorted(set(fixed_batches.get_column("batches").to_list()))
    return _finish(
        chart,
        f"Spread of the geometry over fixed minibatches at one point, by {_factor_title(color)}",
        [f"at each measured step: the gradients of the same {', '.join(map(str, batches))} fixed minibatches at that step's weights",
         "line: their mean; band: min–max over the batches; EB on a log scale"],
    )


FIGURES: dict[str, Callable[..., Figure]] = {
    "gamma_band": gamma_band,
    "rsi_eb_gamma": rsi_eb_gamma,
    "lolr": lolr,
    "distance": distance,
    "synthetic": synthetic,
    "random_walk": random_walk,
    "claims": claims,
    "grad_correlation": grad_correlation,
    "correlation_matrices": correlation_matrices,
    "sign_flip": sign_flip,
    "gamma_correlation": gamma_correlation,
    "warmup": warmup,
    "full_batch_geometry": full_batch_geometry,
    "fixed_batch_spread": fixed_batch_spread,
}


def _render_image(chart: Figure, image_path: Path) -> bytes:
    suffix = image_path.suffix.lower()
    if suffix == ".png":
        buffer = io.BytesIO()
        # Twice the CSS pixel size so the PNG stays sharp in a paper or on a slide.
        chart.save(buffer, format="png", scale_factor=2)
        return buffer.getvalue()
    if suffix == ".svg":
        text = io.StringIO()
        chart.save(text, format="svg")
        return text.getvalue().encode("utf-8")
    raise ValueError(f"image path must end in .svg or .png, got {image_path}")


def save(chart: Figure, html_path: Path, image_path: Path) -> None:
    """Write the chart as self-contained HTML (opens offline) and as SVG or PNG.

    Both renderings are produced before anything is written, so a rendering
    failure leaves no file behind.
    """
    html = chart.to_html(inline=True)
    if EXTERNAL_SCRIPT.search(html):
        raise RuntimeError("the HTML rendering loads scripts from the network; it must be self-contained")
    image = _render_image(chart, Path(image_path))
    # Each file appears complete or not at all (temporary file + rename).
    with atomic_path(html_path) as temporary:
        temporary.write_text(html, encoding="utf-8")
    with atomic_path(image_path) as temporary:
        temporary.write_bytes(image)
