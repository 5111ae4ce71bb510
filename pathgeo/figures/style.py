"""What every figure shares: sizes, colour schemes, titles of metrics, factors and runs, and the encodings and
layers the plots are built from (epoch and step axes with whole-number ticks, scales fitted to the data, lines whose
tooltip is the hovered datum, per-epoch band and mean, colour by factor or run, zero rule, inline data)."""

from __future__ import annotations

import itertools
import re
from typing import TypeAlias

import altair as alt
import polars as pl
import polars.selectors as cs

from pathgeo.aggregate import DESCRIPTORS
from pathgeo.columns import FACTORS

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
    "full_batch": "full batch",
}
# Factor values that read better in words (a legend or facet title says "GAWU", not "gawu").
VALUE_WORDS = {
    "gawu": "GAWU",
    "exp_warmup_cosine": "exponential warm-up, cosine decay",
    "warmup_cosine": "linear warm-up, cosine decay",
    "final_drop": "LR ÷ 10 in the last epoch",
    "constant": "constant LR",
    "momentum": "SGD with momentum",
    "sgd": "SGD",
    "adam": "Adam",
}
# Factors whose values name themselves: a label shows "mlp", not "architecture mlp".
NAMED_FACTORS = frozenset({"dataset", "model", "optimizer", "schedule"})
# A run label's "factor=value" pairs (pathgeo.labels).
LABEL_PAIR = re.compile(r"([a-z_]+)=(\S+)")

# Legends show the mean lines, not the faint bands that also carry the colour.
LINE_LEGEND = alt.Legend(symbolType="stroke", symbolStrokeWidth=3, symbolOpacity=1)

RUN_KEYS = ["run_id", "label", "reference"]
HOVER_POINT_SIZE = 45
# Each hover selection has its own name: Altair merges identical unnamed ones across the views of a figure, and a
# shared one would light up the point of the same row in every view.
_HOVER_NAMES = itertools.count()
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


def value_words(value: object) -> str:
    return VALUE_WORDS.get(str(value), str(value))


def readable(label: str) -> str:
    """A run label in words: "peak_lr=0.05" reads "peak learning rate 0.05", "model=mlp width=32" reads
    "mlp, width 32". A label without factor=value pairs (a run's description) is kept as it is."""
    pairs = LABEL_PAIR.findall(label)
    if not pairs or LABEL_PAIR.sub("", label).strip():
        return label
    return ", ".join(
        value_words(value) if factor in NAMED_FACTORS else f"{factor_title(factor)} {value_words(value)}"
        for factor, value in pairs
    )


def without_seed(label: str) -> str:
    """A run label without its seed: the label of the runs that differ from it only in their seed."""
    rest = re.sub(r"\s*\bseed=\S+", "", label).strip()
    return rest or "all seeds"


def width_note(table: pl.DataFrame) -> list[str]:
    """What "width" counts for the runs drawn (hidden units, channels: the model's), where their widths differ
    or a label names one; nothing where no run has a width."""
    if "width_unit" not in table.columns or "width" not in table.columns:
        return []
    units = table.select("model", "width_unit").drop_nulls().unique().sort("model")
    if units.is_empty():
        return []
    if table.get_column("width").n_unique() < 2 and not table.get_column("label").str.contains("width=").any():
        return []
    meanings = ", ".join(f"{unit} of {model}" for model, unit in units.iter_rows())
    return [f"width: {meanings}"]


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
    return table.with_columns(pl.concat_str([pl.col("run_id"), pl.col("reference")], separator=" · ").alias(SERIES))


def factor_levels(table: pl.DataFrame, factor: str) -> list[str]:
    """The factor's levels as legend strings, in their natural order, so that
    numeric factors (batch size 64 < 128 < 1024) do not sort as text."""
    levels = table.get_column(factor).drop_nulls().unique().sort()
    return [str(level) for level in levels.to_list()]


def factor_color(table: pl.DataFrame, factor: str) -> tuple[pl.DataFrame, alt.Color]:
    """Colour by a factor (sequential for ordered numbers, categorical otherwise); "label" colours by run."""
    if factor == "label":
        return run_color(table)
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
    """Colour by run, naming the reference point too when there are several."""
    table = distinct_runs(table)
    if "reference" in table.columns and table.get_column("reference").n_unique() > 1:
        table = table.with_columns(pl.concat_str([pl.col("run"), pl.col("reference")], separator=" vs "))
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
    """Add "run": the label in words, with the run id where one label names several runs
    (labels are unique within an experiment, not across experiments)."""
    shared = pl.col("run_id").n_unique().over("label") > 1
    words = pl.col("label").map_elements(readable, return_dtype=pl.String)
    return table.with_columns(
        pl.when(shared).then(pl.concat_str([words, pl.col("run_id")], separator=" · ")).otherwise(words).alias("run")
    )


def switch_points(steps: pl.DataFrame) -> pl.DataFrame:
    """Each run's switch point as the data show it: the first step of its largest learning rate, where the warm-up
    ends (whether fixed in advance or found by GAWU), with its epoch and the step's μ(t). Runs whose learning rate
    never changes have none."""
    largest = pl.col("lr").max().over("run_id")
    return (
        steps.filter((pl.col("lr") == largest) & (largest > pl.col("lr").min().over("run_id")))
        .sort("step")
        .group_by("run_id", maintain_order=True)
        .first()
    )


def run_names(steps: pl.DataFrame) -> dict[str, str]:
    """A name for each run from its schedule and its switch point in the data (`switch_points`), e.g. "GAWU:
    switched at epoch 19 (step 76)" (its warmup_epochs is only the latest switch it allows) or "exponential warm-up,
    cosine decay: switch at epoch 10 (step 40)"; where two runs would read the same, each name adds its label."""
    at = {row["run_id"]: row for row in switch_points(steps).iter_rows(named=True)}
    names = {}
    for run_id, schedule in steps.select("run_id", "schedule").unique().sort("run_id").iter_rows():
        switch = at.get(run_id)
        if switch is None:
            names[run_id] = f"{value_words(schedule)}: no warm-up"
        else:
            verb = "switched" if schedule == "gawu" else "switch"
            names[run_id] = f"{value_words(schedule)}: {verb} at epoch {switch['epoch']} (step {switch['step']})"
    shared = {name for name in names.values() if list(names.values()).count(name) > 1}
    labels = dict(steps.select("run_id", "label").unique().iter_rows())
    return {run_id: f"{name} · {readable(labels[run_id])}" if name in shared else name for run_id, name in names.items()}


def run_order(names: dict[str, str]) -> list[str]:
    """The runs' names, GAWU's first."""
    return sorted(set(names.values()), key=lambda name: (not name.startswith("GAWU"), name))


def epoch_x(field: str = "epoch", title: str | None = "epoch", domain: list[float] | None = None) -> alt.X:
    """An epoch (or step) axis: whole-number ticks only (a run of three epochs has no tick at 0.5), and a
    domain that ends at the data (or `domain`), so that the last label does not run into one past the end."""
    return alt.X(
        f"{field}:Q",
        title=title,
        scale=alt.Scale(nice=False, **({"domain": domain} if domain is not None else {})),
        axis=alt.Axis(format="d", tickMinStep=1, labelOverlap=True, labelFlush=True),
    )


def step_x(title: str | None = "optimizer step") -> alt.X:
    return epoch_x("step", title)


def positive_range(table: pl.DataFrame, columns: list[str]) -> tuple[float, float] | None:
    """The smallest and largest positive finite value of these columns (None if there is none)."""
    values = pl.concat([table.get_column(column).cast(pl.Float64) for column in columns])
    values = values.filter(values.is_finite() & (values > 0))
    if values.is_empty():
        return None
    return float(values.min()), float(values.max())


def log_scale(table: pl.DataFrame, columns: list[str], pad: float = 1.2) -> alt.Scale:
    """A log scale over the positive values of these columns and no further: without a fitted domain the axis
    runs on to whole decades, and data in 1.1–3 sits in an axis from 1 to 10."""
    span = positive_range(table, columns)
    if span is None:
        return alt.Scale(type="log")
    low, high = span
    return alt.Scale(type="log", domain=[low / pad, high * pad], nice=False)


def band_log_scale(table: pl.DataFrame, mean: str, low: str, high: str, pad: float = 1.2) -> alt.Scale:
    """A log scale for a line with a band: fitted to the line and the band's top, and reaching down to the band's
    lowest values only as far as a quarter of the line's lowest value. A band whose low nears 0 (a step that barely
    moves toward w*) would otherwise stretch the axis over decades that hold no line; below that it is clipped."""
    means, lows = positive_range(table, [mean]), positive_range(table, [low])
    top = positive_range(table, [mean, high])
    if means is None or top is None:
        return alt.Scale(type="log")
    bottom = max(lows[0], means[0] / 4) if lows is not None else means[0]
    return alt.Scale(type="log", domain=[min(bottom, means[0]) / pad, top[1] * pad], nice=False)


def log_axis(title: str | None) -> alt.Axis:
    """Labels of a log axis: small values in powers of ten ("1e-6", not "0.000001")."""
    return alt.Axis(
        title=title,
        labelExpr="datum.label == '' ? '' : datum.value < 0.001 ? format(datum.value, '.0e') : datum.label",
    )


def symlog_scale(table: pl.DataFrame, column: str) -> alt.Scale:
    """A symmetric log scale for a signed quantity whose spikes span decades: linear within the typical magnitude
    (the median of |value|) around 0, logarithmic beyond, so that neither the spikes nor the sign changes hide."""
    magnitude = table.get_column(column).abs().drop_nulls().drop_nans().median()
    return alt.Scale(type="symlog", constant=float(magnitude or 1.0))


def hover_line(
    base: alt.Chart,
    x: alt.X,
    y: alt.Y,
    color: alt.Color | alt.ColorValue,
    tooltip: list[alt.Tooltip],
    detail: str | None = SERIES,
    stroke_width: float = 1.8,
    stroke_dash: alt.StrokeDash | None = None,
) -> list[alt.Chart]:
    """A line and the points that make the tooltip the hovered datum's.

    A line mark binds the tooltip of its first datum only (it is one mark), so wherever one hovers it would show
    epoch 0. The points carry each datum's tooltip and show only while the pointer is nearest to them (Vega-Lite's
    nearest selection: a Voronoi cell around every point), so that hovering anywhere in the view names the datum
    under the pointer. One such layer per view: the topmost Voronoi cells would hide the others'.
    """
    encoding: dict = {"x": x, "y": y, "color": color}
    if detail is not None:
        encoding["detail"] = alt.Detail(f"{detail}:N")
    line = base.mark_line(strokeWidth=stroke_width).encode(
        **encoding, **({"strokeDash": stroke_dash} if stroke_dash is not None else {})
    )
    nearest = alt.selection_point(
        name=f"hover{next(_HOVER_NAMES)}", nearest=True, on="pointerover", clear="pointerout", empty=False
    )
    points = (
        base.mark_point(filled=True, size=HOVER_POINT_SIZE)
        .encode(**encoding, tooltip=tooltip, opacity=alt.when(nearest).then(alt.value(1)).otherwise(alt.value(0)))
        .add_params(nearest)
    )
    return [line, points]


def over_seeds(table: pl.DataFrame, metric: str) -> pl.DataFrame:
    """Seed bands: per epoch and group of runs that differ only in their seed, the mean over the seeds of each
    run's epoch mean (`{metric}_mean`) and its range over them (`{metric}_seed_min`, `{metric}_seed_max`), with
    the number of seeds. The rows keep the factors, so they colour and facet as a run's would."""
    mean = f"{metric}_mean"
    keys = [f for f in FACTORS if f != "seed" and f in table.columns] + ["reference", "epoch"]
    keys += [c for c in ("budget", *DESCRIPTORS) if c in table.columns]
    grouped = table.group_by(keys, maintain_order=True).agg(
        pl.col(mean).mean(),
        pl.col(mean).min().alias(f"{metric}_seed_min"),
        pl.col(mean).max().alias(f"{metric}_seed_max"),
        pl.col("seed").n_unique().alias("seeds"),
        pl.col("seed").sort().cast(pl.String).str.join(", ").alias("seed_list"),
    )
    series = [f for f in keys if f != "epoch"]
    return grouped.with_columns(
        pl.concat_str([pl.col(f).cast(pl.String) for f in series], separator=" · ", ignore_nulls=True).alias(SERIES),
        pl.concat_str([pl.lit("runs of seeds "), pl.col("seed_list")]).alias("run"),
    )


def band_and_mean(
    metric: str,
    low: str,
    high: str,
    color: alt.Color,
    y_title: str,
    scale: alt.Scale | None = None,
    x_axis_title: str | None = "epoch",
    band: bool = True,
    band_name: str = "band",
) -> list[alt.Chart]:
    """Layers of a per-epoch band (low–high over the epoch's steps) and mean line, with a tooltip per epoch.

    On a log `scale` with a fitted domain, the mean is drawn where it is positive and a band that reaches below the
    axis (0 or less, or below its domain) is drawn down to the bottom of the axis (its true low is in the tooltip)."""
    mean = f"{metric}_mean"
    scale = scale or alt.Scale(zero=False)
    log = scale.to_dict().get("type") == "log"
    x = epoch_x(title=x_axis_title)
    axis = log_axis(y_title) if log else alt.Axis(title=y_title)
    layers = []
    if band:
        area = alt.Chart()
        band_low = low
        if log:
            domain = scale.to_dict().get("domain")
            floor = domain[0] if domain else 1e-300
            band_low = f"{low}_drawn"
            area = area.transform_filter(positive_filter(high)).transform_calculate(
                **{band_low: f"isValid(datum['{low}']) && datum['{low}'] > {floor!r} ? datum['{low}'] : {floor!r}"}
            )
        layers.append(
            area.mark_area(opacity=BAND_OPACITY).encode(
                x=x,
                y=alt.Y(f"{band_low}:Q", scale=scale, axis=axis),
                y2=alt.Y2(f"{high}:Q"),
                color=color,
                detail=alt.Detail(f"{SERIES}:N"),
            )
        )
    tooltip = [
        alt.Tooltip("run:N", title="run"),
        alt.Tooltip("reference:N", title="reference"),
        alt.Tooltip("epoch:Q", title="epoch"),
        alt.Tooltip(f"{mean}:Q", title=f"mean {metric_symbol(metric)}", format=".4g"),
    ]
    if band:
        tooltip += [
            alt.Tooltip(f"{low}:Q", title=f"{band_name} low", format=".4g"),
            alt.Tooltip(f"{high}:Q", title=f"{band_name} high", format=".4g"),
        ]
    base = alt.Chart().transform_filter(positive_filter(mean)) if log else alt.Chart()
    layers += hover_line(base, x, alt.Y(f"{mean}:Q", scale=scale, axis=axis), color, tooltip)
    return layers


def finish(chart: Figure, title: str, subtitle: str | list[str]) -> Figure:
    """Title and shared styling, applied once to the top-level chart."""
    return (
        chart.properties(title=alt.TitleParams(title, subtitle=subtitle, anchor="start"))
        .configure_axis(labelFontSize=11, titleFontSize=12, gridOpacity=0.5)
        # No label limit: a legend that cuts "model=resnet1d width=…" off names no run.
        .configure_legend(labelFontSize=11, titleFontSize=12, labelLimit=0)
        .configure_header(labelFontSize=12, titleFontSize=12)
        .configure_title(fontSize=15, subtitleFontSize=11, subtitleColor="#444444")
        .configure_view(stroke="#bbbbbb")
    )
