"""The chart pieces every figure is built from, so that they follow one written style (docs/figures.md): sizes that fit
the report, one colour per factor level in every figure (colour-blind safe), seeds and widths as dashes, bands of one
meaning named in the legend, small multiples where bands would overlap, epoch axes counted from 1, log scales fitted to
the data, tooltips that name the series and never show a missing value, and the shared title and configuration."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TypeAlias

import altair as alt
import polars as pl

from pathgeo.analysis.figures import MIN_MAX, NO_BAND
from pathgeo.analysis.figures.tables import EPOCH, RUN, SERIES, inline_values, with_run_names
from pathgeo.analysis.figures.words import factor_title, factor_value, value_words

Figure: TypeAlias = alt.Chart | alt.LayerChart | alt.FacetChart | alt.VConcatChart | alt.HConcatChart | alt.ConcatChart

# The Snakemake report shows a figure in a frame about 700 px wide: no figure is wider, legends included.
REPORT_WIDTH = 700
# The plotting area of a figure of one panel, and of each of two side by side: with the y axes, their titles and the
# spacing they add up to at most REPORT_WIDTH.
FULL_WIDTH = 540
HALF_WIDTH = 245
PANEL_HEIGHT = 220
SMALL_HEIGHT = 140
SPACING = 16
BAND_OPACITY = 0.2
LINE_WIDTH = 1.8
# Grey: what a panel shows for comparison (the other levels' lines), the zero rule, neutral marks.
CONTEXT_COLOR = "#c4c4c4"
RULE_COLOR = "#555555"
NEUTRAL_COLOR = "#333333"

# Okabe and Ito's palette, told apart with every common colour vision (yellow left out: it vanishes on white).
CATEGORICAL = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#D55E00", "#56B4E9", "#000000"]
# A colour for each level of the factors figures colour by, the same in every figure.
FACTOR_COLORS: dict[str, dict[str, str]] = {
    "optimizer": {"sgd": "#0072B2", "momentum": "#E69F00", "adam": "#009E73", "adamw": "#CC79A7"},
    "model": {"mlp": "#0072B2", "resnet1d": "#D55E00"},
    "dataset": {"alm": "#0072B2", "sm": "#D55E00", "walk": "#009E73", "mnist1d": "#000000"},
    "schedule": {"gawu": "#0072B2", "exp_warmup_cosine": "#E69F00", "constant": "#000000"},
    # Seeds where the seed is what a figure compares: colours no named level above has first.
    "seed": {"0": "#000000", "1": "#CC79A7", "2": "#56B4E9", "3": "#D55E00"},
}
# Ordered factors (batch size, budget, learning rate) get a sequential palette, so that their levels read in order;
# the pale end of viridis is cut off because it vanishes on white.
ORDERED_SCHEME = alt.SchemeParams(name="viridis", extent=[0.0, 0.85])
# Seeds are numbers, but their order means nothing.
UNORDERED_NUMERIC_FACTORS = frozenset({"seed", "data_order_seed"})
# Factors that tell apart the runs of one colour, as stroke dashes: solid, dashed, dotted, dash-dot.
DASH_FACTORS = ("seed", "width", "data_order_seed")
DASHES = [[1, 0], [6, 3], [2, 2], [8, 3, 2, 3]]

# Each hover selection has its own name: Altair merges identical unnamed ones across the views of a figure, and a
# shared one would light up the point of the same row in every view.
_HOVER_NAMES = itertools.count()
HOVER_POINT_SIZE = 45
LINE_LEGEND = {"symbolType": "stroke", "symbolStrokeWidth": 3, "symbolOpacity": 1}
# Legends stack below the panels, each on a row of its own, so that none makes a figure wider (Vega's legend layout,
# which Vega-Lite passes on but Altair's schema does not know: pathgeo.analysis.figures.save adds it).
LEGEND_LAYOUT = {"bottom": {"anchor": "start", "direction": "vertical", "margin": 8}}


def legend(title: str | None, **options: object) -> alt.Legend:
    """A legend below the panels (a legend to the right takes width the report does not have)."""
    return alt.Legend(
        title=title, orient="bottom", direction="horizontal", columns=options.pop("columns", 4), **options
    )


@dataclass(frozen=True)
class Lines:
    """How a figure tells its lines apart: `data` with the run names ("run") and the level of each row in words
    (`COLOR_LEVEL` and, where runs of one colour differ in a seed or width, `DASH_LEVEL`), the colour and dash
    encodings, and the colour levels in order."""

    data: pl.DataFrame
    color: alt.Color
    dash: alt.StrokeDash | None
    levels: list[str]
    factor: str
    dash_factor: str | None

    @property
    def series(self) -> int:
        return self.data.get_column(SERIES).n_unique() if SERIES in self.data.columns else len(self.levels)


COLOR_LEVEL, DASH_LEVEL = "color_level", "dash_level"
# The colour option that colours by run (its name in words) rather than by a factor.
BY_RUN = "label"


def constant_lr(table: pl.DataFrame) -> bool:
    """Whether every run of the table keeps its learning rate constant (its LR is no peak)."""
    return "schedule" in table.columns and set(table.get_column("schedule").drop_nulls()) <= {"constant"}


def ordered(table: pl.DataFrame, factor: str) -> bool:
    return table.schema[factor].is_numeric() and factor not in UNORDERED_NUMERIC_FACTORS


def levels_of(table: pl.DataFrame, factor: str) -> list:
    """A factor's levels in their natural order: numbers as numbers (64 < 128 < 1024), named levels in the order of
    FACTOR_COLORS (SGD, momentum, Adam), then the others alphabetically."""
    levels = table.get_column(factor).drop_nulls().unique().sort().to_list()
    known = list(FACTOR_COLORS.get(factor, {}))
    return sorted(levels, key=lambda level: (known.index(str(level)) if str(level) in known else len(known),))


def sorted_by_levels(table: pl.DataFrame, factors: Sequence[str]) -> pl.DataFrame:
    """The rows in the order of their factors' levels (`levels_of`: SGD before momentum before Adam, 32 before 64)."""
    keys = []
    for factor in factors:
        known = list(FACTOR_COLORS.get(factor, {}))
        column = pl.col(factor)
        if known and factor not in UNORDERED_NUMERIC_FACTORS:
            keys.append(column.cast(pl.String).replace_strict(known, list(range(len(known))), default=len(known)))
        keys.append(column)
    return table.sort(keys, nulls_last=True) if keys else table


def level_words(table: pl.DataFrame, factor: str, value: object) -> str:
    """A level as a legend says it: "SGD", "64"; a run by its name."""
    return str(value) if factor == RUN else value_words(factor, value)


def panel_title(lines: Lines, level: str) -> str:
    """A panel of one colour level names it as a run's name would: "SGD", "batch size 64"."""
    if lines.factor == RUN:
        return level
    value = lines.data.filter(pl.col(COLOR_LEVEL) == level).get_column(lines.factor)[0]
    return factor_value(lines.factor, value, constant_lr(lines.data))


def palette(table: pl.DataFrame, factor: str, levels: list) -> list[str] | None:
    """The colours of these levels, or None for an ordered factor (its scheme colours them)."""
    if factor != RUN and ordered(table, factor):
        return None
    fixed = FACTOR_COLORS.get(factor, {})
    spare = iter(c for c in CATEGORICAL if c not in {fixed[str(level)] for level in levels if str(level) in fixed})
    return [fixed.get(str(level)) or next(spare) for level in levels]


def lines(
    table: pl.DataFrame, factor: str, legend_title: str | None = None, order: Sequence[str] | None = None
) -> Lines:
    """Name the runs and colour them by `factor` ("run": by run): fixed colours for named levels, viridis for ordered
    numbers. Runs of one colour that differ in a seed or a width get a dash each, with its own legend."""
    factor = RUN if factor == BY_RUN else factor
    data = table if RUN in table.columns else with_run_names(table)
    values = list(order) if order is not None else levels_of(data, factor)
    words = [level_words(data, factor, value) for value in values]
    data = data.with_columns(
        pl.col(factor).cast(pl.String).replace_strict([str(v) for v in values], words, default=None).alias(COLOR_LEVEL)
    )
    colors = palette(data, factor, values)
    scale = alt.Scale(domain=words, scheme=ORDERED_SCHEME) if colors is None else alt.Scale(domain=words, range=colors)
    title = legend_title if legend_title is not None else _legend_title(data, factor)
    # One level needs no legend: the subtitle names a figure's only run.
    color = alt.Color(
        f"{COLOR_LEVEL}:N",
        title=title,
        sort=words,
        scale=scale,
        legend=legend(title, **LINE_LEGEND) if len(words) > 1 else None,
    )
    dash_factor = next(
        (
            f
            for f in DASH_FACTORS
            if f != factor
            and f in data.columns
            and (data.group_by(COLOR_LEVEL).agg(pl.col(f).n_unique()).get_column(f).max() or 0) > 1
        ),
        None,
    )
    dash = None
    if dash_factor is not None:
        dash_values = levels_of(data, dash_factor)
        dash_words = [value_words(dash_factor, value) for value in dash_values]
        data = data.with_columns(
            pl.col(dash_factor)
            .cast(pl.String)
            .replace_strict([str(v) for v in dash_values], dash_words)
            .alias(DASH_LEVEL)
        )
        dash = alt.StrokeDash(
            f"{DASH_LEVEL}:N",
            title=factor_title(dash_factor),
            sort=dash_words,
            scale=alt.Scale(domain=dash_words, range=DASHES[: len(dash_words)]),
            legend=legend(factor_title(dash_factor), symbolType="stroke", symbolStrokeWidth=2, symbolSize=400),
        )
    return Lines(data, color, dash, words, factor, dash_factor)


def _legend_title(table: pl.DataFrame, factor: str) -> str | None:
    return None if factor == RUN else factor_title(factor, constant_lr(table))


def line_encoding(lines: Lines) -> dict:
    """The colour, dash and line key of a mark of one line per series."""
    encoding: dict = {"color": lines.color, "detail": alt.Detail(f"{SERIES}:N")}
    if lines.dash is not None:
        encoding["strokeDash"] = lines.dash
    return encoding


def epoch_x(field: str = EPOCH, title: str | None = "epoch", domain: Sequence[float] | None = None) -> alt.X:
    """An epoch axis, epochs counted from 1: whole-number ticks only (a run of three epochs has no tick at 0.5), and a
    domain that ends at the data (or `domain`), so that the last label does not run into one past the end."""
    return alt.X(
        f"{field}:Q",
        title=title,
        scale=alt.Scale(nice=False, zero=False, **({"domain": list(domain)} if domain is not None else {})),
        axis=alt.Axis(format="d", tickMinStep=1, labelOverlap=True, labelFlush=True),
    )


def epoch_domain(table: pl.DataFrame, field: str = EPOCH, start: float | None = None) -> list[float]:
    """The epochs a figure spans: from its first (or `start`) to its last."""
    values = table.get_column(field)
    return [float(values.min() if start is None else start), float(values.max())]


def positive_range(table: pl.DataFrame, columns: list[str]) -> tuple[float, float] | None:
    """The smallest and largest positive finite value of these columns (None if there is none)."""
    values = pl.concat([table.get_column(column).cast(pl.Float64) for column in columns])
    values = values.filter(values.is_finite() & (values > 0))
    if values.is_empty():
        return None
    return float(values.min()), float(values.max())


def log_scale(table: pl.DataFrame, columns: list[str], pad: float = 1.2) -> alt.Scale:
    """A log scale over the positive values of these columns and no further: without a fitted domain the axis runs on
    to whole decades, and data in 1.1–3 sits in an axis from 1 to 10."""
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


def linear_scale(table: pl.DataFrame, columns: list[str], pad: float = 0.04, zero: bool = False) -> alt.Scale:
    """A linear scale over these columns' finite values (all of them, so that panels of one quantity compare), and
    over 0 too where `zero` (a quantity whose sign matters, with its rule at 0)."""
    values = pl.concat([table.get_column(column).cast(pl.Float64) for column in columns])
    values = values.filter(values.is_finite())
    if values.is_empty():
        return alt.Scale(zero=zero)
    low, high = float(values.min()), float(values.max())
    if zero:
        low, high = min(low, 0.0), max(high, 0.0)
    margin = pad * (high - low or abs(high) or 1.0)
    return alt.Scale(domain=[low - margin, high + margin], nice=False, zero=False)


def is_log(scale: alt.Scale) -> bool:
    return scale.to_dict().get("type") == "log"


def log_axis(title: str | None, **options: object) -> alt.Axis:
    """Labels of a log axis: small values in powers of ten ("1e-6", not "0.000001")."""
    return alt.Axis(
        title=title,
        labelExpr="datum.label == '' ? '' : datum.value < 0.001 ? format(datum.value, '.0e') : datum.label",
        **options,
    )


def y_axis(title: str | None, scale: alt.Scale) -> alt.Axis:
    return log_axis(title) if is_log(scale) else alt.Axis(title=title)


def symlog_scale(table: pl.DataFrame, column: str) -> alt.Scale:
    """A symmetric log scale for a signed quantity whose spikes span decades: linear within the typical magnitude
    (the median of |value|) around 0, logarithmic beyond, so that neither the spikes nor the sign changes hide."""
    magnitude = table.get_column(column).abs().drop_nulls().drop_nans().median()
    return alt.Scale(type="symlog", constant=float(magnitude or 1.0))


def literal(text: str) -> str:
    """Text as a string literal of a Vega expression (quotes and backslashes escaped)."""
    return json.dumps(text, ensure_ascii=False)


def positive_filter(*fields: str) -> str:
    """Vega expression keeping rows whose fields can be drawn on a log axis."""
    return " && ".join(f"isValid(datum['{field}']) && datum['{field}'] > 0" for field in fields)


def valid_filter(*fields: str) -> str:
    return " && ".join(f"isValid(datum['{field}']) && isFinite(datum['{field}'])" for field in fields)


def rule_at(y: float) -> alt.Chart:
    """Dashed horizontal line at a reference level of the y axis."""
    # One aggregated row per view, so the rule is drawn once; it carries no tooltip and covers nothing it sits on.
    return (
        alt.Chart()
        .transform_aggregate(rows="count()")
        .mark_rule(color=RULE_COLOR, strokeDash=[2, 2], strokeWidth=1, clip=True)
        .encode(y=alt.datum(y))
    )


def zero_rule() -> alt.Chart:
    """Horizontal line at 0 so that the sign of a metric can be read at a glance."""
    return rule_at(0)


@dataclass(frozen=True)
class Tip:
    """One line of a tooltip: a column, its title and number format. A number may be missing (μ(t) before its window
    is full): the tooltip then says `missing` rather than "null", "undefined" or a wrong 0."""

    field: str
    title: str
    format: str | None = None
    missing: str = "not measured"


def tooltip(tips: Sequence[Tip]) -> tuple[list[alt.Tooltip], dict[str, str]]:
    """The tooltip encoding and the calculations it needs: each number as text, in its format, or `missing`."""
    encoding, calculate = [], {}
    for tip in tips:
        if tip.format is None:
            encoding.append(alt.Tooltip(f"{tip.field}:N", title=tip.title))
            continue
        text = f"{tip.field}_text"
        value = f"datum['{tip.field}']"
        calculate[text] = (
            f"isValid({value}) && isFinite({value}) ? format({value}, {literal(tip.format)}) : {literal(tip.missing)}"
        )
        encoding.append(alt.Tooltip(f"{text}:N", title=tip.title))
    return encoding, calculate


def series_tips(lines: Lines | None = None) -> list[Tip]:
    """The tooltip lines that name a row's series: its run in words (with its reference point where there are
    several)."""
    return [Tip(RUN, "run")]


def hover_line(
    base: alt.Chart,
    x: alt.X,
    y: alt.Y,
    encoding: dict,
    tips: Sequence[Tip],
    stroke_width: float = LINE_WIDTH,
) -> list[alt.Chart]:
    """A line and the points that make the tooltip the hovered datum's.

    A line mark binds the tooltip of its first datum only (it is one mark), so wherever one hovers it would show the
    first epoch. The points carry each datum's tooltip and show only while the pointer is nearest to them (Vega-Lite's
    nearest selection: a Voronoi cell around every point), so that hovering anywhere in the view names the datum
    under the pointer. One such layer per view: the topmost Voronoi cells would hide the others'.
    """
    line = base.mark_line(strokeWidth=stroke_width).encode(x=x, y=y, **encoding)
    nearest = alt.selection_point(
        name=f"hover{next(_HOVER_NAMES)}", nearest=True, on="pointerover", clear="pointerout", empty=False
    )
    tip_encoding, calculate = tooltip(tips)
    point_encoding = {k: v for k, v in encoding.items() if k in ("color", "detail")}
    points = base.transform_calculate(**calculate) if calculate else base
    points = (
        points.mark_point(filled=True, size=HOVER_POINT_SIZE)
        .encode(
            x=x,
            y=y,
            **point_encoding,
            tooltip=tip_encoding,
            opacity=alt.when(nearest).then(alt.value(1)).otherwise(alt.value(0)),
        )
        .add_params(nearest)
    )
    return [line, points]


def band_key(text: str) -> alt.Chart:
    """The legend entry that says what a figure's bands are (docs/figures.md: one meaning unless the legend says
    otherwise): an invisible mark whose fill legend reads `text`."""
    return (
        alt.Chart()
        .transform_aggregate(rows="count()")
        .transform_calculate(band=literal(text))
        .mark_square(opacity=0)
        .encode(
            fill=alt.Fill(
                "band:N",
                scale=alt.Scale(domain=[text], range=[NEUTRAL_COLOR]),
                legend=legend("band", symbolOpacity=BAND_OPACITY + 0.1, symbolSize=200, symbolStrokeWidth=0),
            )
        )
    )


# What a band is, as its legend says it.
STEPS_BAND = "min–max over the epoch's steps"


def band_clause(band: str) -> str:
    """How a caption says what is drawn around each run's line."""
    return f"with a band of {STEPS_BAND}" if band == MIN_MAX else "without a band (the figure's band: none)"


def band_subtitle(band: str) -> str:
    """How a subtitle says it."""
    return "band: their min–max" if band == MIN_MAX else "no band (the figure's band: none)"


@dataclass(frozen=True)
class Band:
    """A quantity drawn as a line with a band: its mean column, the band's low and high columns (None: no band), the
    y axis title and scale, and what its tooltip says of the band."""

    metric: str
    mean: str
    low: str | None
    high: str | None
    title: str
    scale: alt.Scale
    symbol: str
    zero: bool = False
    mean_title: str | None = None


def band_layers(band: Band, lines: Lines, x: alt.X, extra_tips: Sequence[Tip] = (), where: str | None = None) -> list:
    """The band (an area per series) and the mean line with its hover points, for the rows `where` keeps (a Vega
    filter).

    On a log `scale` with a fitted domain, the mean is drawn where it is positive and a band that reaches below the
    axis (0 or less, or below its domain) is drawn down to the bottom of the axis (its true low is in the tooltip)."""
    log = is_log(band.scale)
    axis = y_axis(band.title, band.scale)
    encoding = line_encoding(lines)
    layers: list = []

    def chart() -> alt.Chart:
        return alt.Chart().transform_filter(where) if where else alt.Chart()

    if band.low is not None and band.high is not None:
        area = chart()
        low = band.low
        if log:
            domain = band.scale.to_dict().get("domain")
            floor = domain[0] if domain else 1e-300
            low = f"{band.low}_drawn"
            area = area.transform_filter(positive_filter(band.high)).transform_calculate(
                **{
                    low: f"isValid(datum['{band.low}']) && datum['{band.low}'] > {floor!r} ? datum['{band.low}'] : "
                    f"{floor!r}"
                }
            )
        else:
            area = area.transform_filter(valid_filter(band.low, band.high))
        layers.append(
            area.mark_area(opacity=BAND_OPACITY).encode(
                x=x,
                y=alt.Y(f"{low}:Q", scale=band.scale, axis=axis),
                y2=alt.Y2(f"{band.high}:Q"),
                color=lines.color,
                detail=alt.Detail(f"{SERIES}:N"),
            )
        )
    tips = [*series_tips(lines), Tip(EPOCH, "epoch"), Tip(band.mean, band.mean_title or f"mean {band.symbol}", ".4g")]
    if band.low is not None and band.high is not None:
        tips += [Tip(band.low, f"lowest {band.symbol}", ".4g"), Tip(band.high, f"highest {band.symbol}", ".4g")]
    tips += list(extra_tips)
    base = chart().transform_filter(positive_filter(band.mean) if log else valid_filter(band.mean))
    layers += hover_line(base, x, alt.Y(f"{band.mean}:Q", scale=band.scale, axis=axis), encoding, tips)
    return layers


def context_lines(band: Band, x: alt.X, where: str) -> alt.Chart:
    """The other levels' mean lines in grey, behind a panel's own, for comparison."""
    base = alt.Chart().transform_filter(where)
    base = base.transform_filter(positive_filter(band.mean) if is_log(band.scale) else valid_filter(band.mean))
    return base.mark_line(strokeWidth=1, color=CONTEXT_COLOR).encode(
        x=x,
        y=alt.Y(f"{band.mean}:Q", scale=band.scale, axis=y_axis(band.title, band.scale)),
        detail=alt.Detail(f"{SERIES}:N"),
    )


def level_filter(field: str, value: str, equal: bool = True) -> str:
    return f"datum['{field}'] {'===' if equal else '!=='} {literal(value)}"


def panel_word(factor: str) -> str:
    """What a panel of one colour level shows: a run, or a level of the factor."""
    return "run" if factor in (BY_RUN, RUN) else factor_title(factor)


def split_by_level(lines: Lines) -> bool:
    """Whether a figure gives each colour level a panel of its own: where more than two bands would overlap in one
    (docs/figures.md, "Bands")."""
    return lines.series > 2 and len(lines.levels) > 1


def band_grid(
    lines: Lines,
    bands: Sequence[Band],
    x_domain: Sequence[float],
    key: str = STEPS_BAND,
    facet: str | None = None,
    facet_titles: dict[str, str] | None = None,
    extra_tips: Sequence[Tip] = (),
    also: Callable[[Band, str | None, alt.X, bool], list[alt.Chart]] | None = None,
    x_field: str = EPOCH,
    band: str = MIN_MAX,
) -> alt.VConcatChart | alt.LayerChart | alt.ConcatChart | alt.HConcatChart:
    """A figure of lines with bands: one panel per quantity (`bands`) and per group, the groups being the colour
    levels where more than two bands would overlap (each panel its level's lines in colour, the others' in grey),
    else the values of `facet`, else one. Every panel of a quantity shares its y scale; the legend says what the
    bands are (`key`; None: no band). `band` NO_BAND draws the lines alone, in one panel per quantity and facet."""
    data = lines.data
    if band == NO_BAND:
        bands, key = [replace(b, low=None, high=None) for b in bands], None
    if facet is not None:
        groups = [
            (str(v), facet_titles.get(str(v), str(v)) if facet_titles else str(v)) for v in levels_of(data, facet)
        ]
        field, split = facet, False
        data = data.with_columns(pl.col(facet).cast(pl.String))
    elif band == MIN_MAX and split_by_level(lines):
        groups, field, split = [(level, panel_title(lines, level)) for level in lines.levels], COLOR_LEVEL, True
    else:
        groups, field, split = [("", "")], None, False
    single = len(groups) == 1 and len(bands) == 1
    values = inline_values(data)
    width = FULL_WIDTH if len(groups) == 1 else HALF_WIDTH
    height = PANEL_HEIGHT if single else SMALL_HEIGHT
    cells = {}
    # Rows of panels, one per group and quantity (several groups and quantities), take the epoch title and the group's
    # name once each: on the bottom row, and on the row's first panel.
    rows = len(groups) > 1 and len(bands) > 1
    for g, (value, title) in enumerate(groups):
        for b, quantity in enumerate(bands):
            bottom = g == len(groups) - 1 if rows else b == len(bands) - 1
            x = epoch_x(x_field, "epoch" if bottom else None, x_domain)
            where = level_filter(field, value) if field else None
            layers: list = []
            if quantity.zero and not is_log(quantity.scale):
                layers.append(zero_rule())
            if split:
                layers.append(context_lines(quantity, x, level_filter(field, value, equal=False)))
            layers += band_layers(quantity, lines, x, extra_tips, where)
            if also is not None:
                layers += also(quantity, where, x, g == 0 and b == 0)
            if key is not None and g == 0 and b == 0:
                layers.append(band_key(key))
            named = title and (b == 0 or not rows)
            # Each property at construction: Altair rebuilds a layered or concatenated chart, copying its panels,
            # at each `properties`.
            cells[(g, b)] = alt.layer(
                *layers,
                width=width,
                height=height,
                **({"title": alt.TitleParams(title, fontSize=12, anchor="start")} if named else {}),
                **({"data": values} if single else {}),
            )
    if single:
        return cells[(0, 0)]
    if len(groups) == 1:
        return alt.vconcat(*(cells[(0, b)] for b in range(len(bands))), spacing=SPACING, data=values)
    if len(bands) == 1:
        return alt.concat(*(cells[(g, 0)] for g in range(len(groups))), columns=2, spacing=SPACING, data=values)
    return alt.vconcat(
        *(alt.hconcat(*(cells[(g, b)] for b in range(len(bands))), spacing=SPACING) for g in range(len(groups))),
        spacing=SPACING,
        data=values,
    )


def finish(chart: Figure, title: str, subtitle: str | list[str]) -> Figure:
    """Title and shared styling, applied once to the top-level chart; colour, dash and band legends resolve
    independently (each has its own title), below the panels."""
    # In one step: Altair rebuilds a layered or concatenated chart, copying every panel, at each `configure_*`.
    return chart.properties(
        title=alt.TitleParams(title, subtitle=subtitle, anchor="start"),
        config=alt.Config(
            axis=alt.AxisConfig(labelFontSize=11, titleFontSize=12, gridOpacity=0.5),
            # No label limit: a legend that cuts a run's name off names no run.
            legend=alt.LegendConfig(labelFontSize=11, titleFontSize=12, labelLimit=0, titleLimit=0, orient="bottom"),
            header=alt.HeaderConfig(labelFontSize=12, titleFontSize=12),
            title=alt.TitleConfig(fontSize=15, subtitleFontSize=11, subtitleColor="#444444"),
            view=alt.ViewConfig(stroke="#bbbbbb"),
            concat=alt.CompositionConfig(spacing=SPACING),
        ),
    )


def width_note(table: pl.DataFrame) -> list[str]:
    """What "width" counts for the runs drawn (hidden units, channels: the model's), where their widths differ or a
    label names one; nothing where no run has a width."""
    if "width_unit" not in table.columns or "width" not in table.columns:
        return []
    units = table.select("model", "width_unit").drop_nulls().unique().sort("model")
    if units.is_empty():
        return []
    if table.get_column("width").n_unique() < 2 and not table.get_column("label").str.contains("width=").any():
        return []
    meanings = ", ".join(f"{unit} of {value_words('model', model)}" for model, unit in units.iter_rows())
    return [f"width: {meanings}"]


def line_key(text: str, dash: list[int], color: str = NEUTRAL_COLOR) -> alt.Chart:
    """A legend entry for a line of a fixed style (the step taken, an analytic law): an invisible mark whose stroke
    legend shows the line and reads `text`."""
    return (
        alt.Chart()
        .transform_aggregate(rows="count()")
        .transform_calculate(line=literal(text))
        .mark_point(opacity=0)
        .encode(
            stroke=alt.Stroke(
                "line:N",
                scale=alt.Scale(domain=[text], range=[color]),
                legend=legend(None, symbolType="stroke", symbolDash=dash, symbolStrokeWidth=2, symbolSize=400),
            )
        )
    )


# The factor a figure colours an experiment's runs by where it names none: the first of these in which they differ
# (the seed or width then dashes the runs of one colour apart).
COLOR_ORDER = (
    "optimizer",
    "model",
    "batch_size",
    "schedule",
    "warmup_epochs",
    "peak_lr",
    "dataset",
    "budget",
    "seed",
    "width",
)


def varying_factor(table: pl.DataFrame) -> str:
    """The factor in which a table's runs differ, by COLOR_ORDER; by run where they differ in none of them."""
    runs = table.unique("run_id")
    return next((f for f in COLOR_ORDER if f in runs.columns and runs.get_column(f).n_unique() > 1), BY_RUN)
