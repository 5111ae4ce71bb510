"""The written style of the figures (docs/figures.md), checked on every figure the default config draws, from tables
shaped like the default run's (tests/plan_tables.py): the plan's runs, labels, factors, epochs and references.

Each rule is one test over all figures: what a reviewer of the default run's figures objected to (issue 19).
"""

from __future__ import annotations

import copy
import re
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import plan_tables
import polars as pl
import pytest
import vl_convert
import yaml

from pathgeo.analysis.figures import figure_options, plot
from pathgeo.analysis.figures.save import vega_spec
from pathgeo.analysis.figures.style import REPORT_WIDTH, Figure
from pathgeo.analysis.figures.tables import AT, EPOCH
from pathgeo.analysis.figures.tables import uses_w_star as measured_against_w_star

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
FIGURES = list(DEFAULT["figures"])
# The figures that draw the last epoch before w* on purpose (docs/figures.md, "Where w* is used").
DRAW_THE_LAST_EPOCH = {"random_walk", "level_sets"}


@pytest.fixture(scope="module")
def tables(tmp_path_factory) -> plan_tables.PlanTables:
    return plan_tables.PlanTables(DEFAULT, tmp_path_factory.mktemp("default-tables"))


_charts: dict[str, Figure] = {}


def chart_of(tables: plan_tables.PlanTables, name: str) -> Figure:
    if name not in _charts:
        figure = DEFAULT["figures"][name]
        _charts[name] = plot(figure["plot"]).draw(*tables.figure_tables(name), **figure_options(figure))
    return _charts[name]


_specs: dict[str, dict[str, Any]] = {}


def spec_of(tables: plan_tables.PlanTables, name: str) -> dict[str, Any]:
    """The figure's Vega-Lite spec, validated once for the module's tests (each reads its own copy)."""
    if name not in _specs:
        _specs[name] = chart_of(tables, name).to_dict()
    return copy.deepcopy(_specs[name])


def views(spec: dict[str, Any], data: list[dict] | None = None, datasets: dict | None = None) -> Iterator[tuple]:
    """Every unit view of a Vega-Lite spec with the rows it draws from (its own data, else its parent's) and the
    fields its transforms calculate."""
    datasets = datasets if datasets is not None else spec.get("datasets", {})
    own = spec.get("data")
    if isinstance(own, dict) and "name" in own:
        data = datasets[own["name"]]
    elif isinstance(own, dict) and "values" in own:
        data = own["values"]
    calculated = {t["as"] for t in spec.get("transform", []) if "calculate" in t}
    if "mark" in spec:
        yield spec, data or [], calculated
    for key in ("layer", "hconcat", "vconcat", "concat"):
        for child in spec.get(key, []):
            for view, rows, more in views(child, data, datasets):
                yield view, rows, calculated | more
    if "spec" in spec:
        for view, rows, more in views(spec["spec"], data, datasets):
            yield view, rows, calculated | more


def encoding_fields(view: dict[str, Any], channel: str) -> list[str]:
    encoding = view.get("encoding", {}).get(channel)
    items = encoding if isinstance(encoding, list) else [encoding] if encoding else []
    return [item["field"] for item in items if isinstance(item, dict) and "field" in item]


def texts(spec: Any) -> Iterator[str]:
    """Every string a figure draws that is not data: titles, subtitles, axis and legend titles, headers."""
    if isinstance(spec, dict):
        for key, value in spec.items():
            if key in (
                "datasets",
                "data",
                "values",
                "transform",
                "filter",
                "calculate",
                "labelExpr",
                "field",
                "param",
                "name",
                "params",
                "views",
            ):
                continue
            if key in ("title", "text", "subtitle") and isinstance(value, str):
                yield value
            elif key in ("title", "subtitle") and isinstance(value, list):
                yield from (item for item in value if isinstance(item, str))
            else:
                yield from texts(value)
    elif isinstance(spec, list):
        for item in spec:
            yield from texts(item)


@pytest.mark.parametrize("name", FIGURES)
def test_every_tooltip_field_of_every_layer_is_in_that_layers_data(tables, name: str) -> None:
    """On main, 23 of the 28 figures had tooltips naming fields their layer's rows lack ("run: undefined")."""
    spec = spec_of(tables, name)
    checked = 0
    for view, rows, calculated in views(spec):
        for field in encoding_fields(view, "tooltip"):
            checked += 1
            if field in calculated:
                continue
            missing = [row for row in rows if row.get(field) is None]
            assert rows and not missing, f"{name}: tooltip field {field!r} is missing or null in {len(missing)} rows"
    assert checked, f"{name}: no tooltip at all"


@pytest.mark.parametrize("name", FIGURES)
def test_every_voronoi_cell_reads_its_points_fields(tables, name: str) -> None:
    """Vega-Lite's Voronoi cells of a nearest selection read names from their own datum, which has none: the
    compiled figure reads every field of the point (datum.datum), so a hovered cell names its run."""
    vega = vega_spec(chart_of(tables, name))
    marks = [mark for mark in walk_marks(vega) if mark.get("name", "").endswith("_voronoi")]
    for mark in marks:
        signal = mark["encode"]["update"]["tooltip"]["signal"]
        assert not re.search(r'(?<![.\w])datum\["', signal), f"{name}: {signal[:200]}"


def walk_marks(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for mark in node.get("marks", []):
        yield mark
        yield from walk_marks(mark)


@pytest.mark.parametrize("name", FIGURES)
def test_no_figure_is_wider_than_the_report_shows(tables, name: str) -> None:
    """`claims` was 1708 px wide and `grad_correlation` 1089 px: their right panels and legends left the report's
    700 px frame."""
    svg = vl_convert.vega_to_svg(vega_spec(chart_of(tables, name)))
    width = float(re.search(r'<svg[^>]*\bwidth="([\d.]+)"', svg).group(1))
    assert width <= REPORT_WIDTH, f"{name} is {width:.0f} px wide"


def drawn_rows(spec: dict[str, Any]) -> Iterator[tuple[dict, list[dict], list[str]]]:
    """Each view with its rows and the fields it puts on the x or y axis."""
    for view, rows, _ in views(spec):
        fields = [f for channel in ("y", "y2", "x") for f in encoding_fields(view, channel)]
        yield view, rows, fields


def stem(field: str) -> str:
    return re.sub(r"_(mean|min|max|q\d\d|median|std|drawn|seed_min|seed_max)$", "", field)


@pytest.mark.parametrize("name", sorted(set(FIGURES) - DRAW_THE_LAST_EPOCH))
def test_no_step_of_the_last_epoch_before_w_star_is_drawn_where_w_star_is_used(tables, name: str) -> None:
    """`synthetic` drew steps 567–629 (ALM) ending in γ = 1, `fixed_batch_spread` step 1850, and
    `full_batch_geometry`'s axis reached epoch 29: all inside the epoch the paper and the tables leave out."""
    for view, rows, fields in drawn_rows(spec_of(tables, name)):
        against = [f for f in fields if measured_against_w_star(stem(f)) and stem(f) in METRIC_STEMS]
        if not against:
            continue
        # Rows that cannot say their epoch and reference point cannot show that they leave the last epoch out.
        assert all("budget" in row and "epoch" in row for row in rows), f"{name}: {against} drawn without their epochs"
        late = [
            row
            for row in rows
            if row["epoch"] >= row["budget"] - 1
            and any(row.get(f) is not None for f in against)
            and against_w_star(row)
        ]
        assert not late, f"{name}: {against} drawn in the last epoch before w*, e.g. {late[0]}"


METRIC_STEMS = {
    "rsi",
    "eb",
    "gamma",
    "lolr",
    "dist",
    "rsi_wd",
    "eb_wd",
    "gamma_wd",
    "lolr_wd",
    "upd_rsi",
    "upd_gamma",
    "value",
}


def against_w_star(row: dict[str, Any]) -> bool:
    """Whether a row's value is measured against w*: a row of a long table (`gamma_correlation`'s "value") says
    which quantity it holds."""
    return str(row.get("quantity", "γ")).startswith("γ")


@pytest.mark.parametrize("name", ["grad_correlation", "grad_correlation_by_batch_size", "sign_flip"])
def test_quantities_that_need_no_w_star_keep_their_last_epoch(tables, name: str) -> None:
    """`grad_correlation_by_batch_size` stopped the loss and μ(t) at epoch 18 of 20."""
    figure = DEFAULT["figures"][name]
    epochs = {
        spec.epochs
        for exp in [figure["experiment"]]
        for spec in (tables.plan.runs[run] for run in tables.plan.experiments[exp])
    }
    drawn = {row[EPOCH] for _, rows, fields in drawn_rows(spec_of(tables, name)) for row in rows if EPOCH in row}
    assert max(drawn) == max(epochs), f"{name} ends at epoch {max(drawn)} of {max(epochs)}"


def run_ids(tables: plan_tables.PlanTables) -> set[str]:
    return set(tables.plan.runs)


LABEL_PAIR = re.compile(r"\b[a-z_]+=\S")
CONFIG_KEYS = re.compile(r"\b(sgd|adam|mlp|resnet1d|mnist1d|alm|sm|batch_sizes|gawu)\b")


@pytest.mark.parametrize("name", FIGURES)
def test_legends_labels_and_titles_carry_no_run_id_and_no_raw_name(tables, name: str) -> None:
    """Legends read `rsi_eb_gamma`'s run id, panels "objective: alm" and "experiment batch_sizes", legends lower-case
    `sgd` and `mlp`, the claims rows "walk walk sgd lr=1 …"."""
    spec = spec_of(tables, name)
    ids = run_ids(tables)
    shown = set(texts(spec))
    for view, rows, _ in views(spec):
        for channel in ("color", "strokeDash", "shape", "row", "column", "facet", "text", "tooltip", "y", "x"):
            for field in encoding_fields(view, channel):
                shown |= {row[field] for row in rows if isinstance(row.get(field), str)}
    for text in shown:
        assert not any(run in text for run in ids), f"{name}: a run id in {text!r}"
        assert not LABEL_PAIR.search(text), f"{name}: a raw label in {text!r}"
        assert not CONFIG_KEYS.search(text), f"{name}: a config key in {text!r}"


@pytest.mark.parametrize("name", FIGURES)
def test_drawn_text_has_no_character_the_static_renderer_lacks(tables, name: str) -> None:
    """A line with a double bar (‖G‖) fell back to a serif font in the PNG and SVG renderings."""
    assert not [text for text in texts(spec_of(tables, name)) if "‖" in text or "∥" in text]


@pytest.mark.parametrize("name", FIGURES)
def test_epochs_count_from_1_on_every_axis(tables, name: str) -> None:
    """`gawu` mixed 0-based and 1-based epochs; `mu_lr` drew the same runs over steps."""
    for view, rows, _ in views(spec_of(tables, name)):
        for field in encoding_fields(view, "x"):
            assert field not in ("epoch", "step", "after"), f"{name}: an x axis of raw {field!r}"
            if field == EPOCH and rows:
                assert min(row[EPOCH] for row in rows if row.get(EPOCH) is not None) >= 1, name
            if field == AT and rows:
                assert min(row[AT] for row in rows if row.get(AT) is not None) >= 0, name


def color_scales(spec: dict[str, Any]) -> Iterator[tuple[str, dict[str, str]]]:
    """Each categorical colour scale with a title: its level → colour."""
    for view, _, _ in views(spec):
        color = view.get("encoding", {}).get("color")
        if isinstance(color, dict) and "range" in color.get("scale", {}) and color.get("title"):
            scale = color["scale"]
            yield color["title"], dict(zip(scale["domain"], scale["range"]))


def test_one_colour_per_factor_level_across_figures(tables) -> None:
    """Orange was ResNet-1D in one architecture figure and "MLP, width 32" in another."""
    seen: dict[tuple[str, str], set[str]] = defaultdict(set)
    for name in FIGURES:
        for title, mapping in color_scales(spec_of(tables, name)):
            for level, color in mapping.items():
                seen[(title, level)].add(color)
    assert seen
    assert {key: colors for key, colors in seen.items() if len(colors) > 1} == {}
    optimizer = {level: colors.pop() for (title, level), colors in seen.items() if title == "optimizer"}
    assert optimizer == {"SGD": "#0072B2", "SGD with momentum": "#E69F00", "Adam": "#009E73"}


def test_no_pair_of_lines_is_red_and_green(tables) -> None:
    """`mu_lr`'s red μ(t) and green learning rate are the pair that colour-blind readers confuse."""
    reds, greens = {"#d62728", "#e45756", "red"}, {"#2ca02c", "#54a24b", "green"}
    for name in FIGURES:
        colors = set(re.findall(r'"(#[0-9a-fA-F]{6}|red|green)"', str(spec_of(tables, name)).replace("'", '"')))
        colors = {c.lower() for c in colors}
        assert not (colors & reds and colors & greens), name


def test_the_band_of_every_figure_is_named_in_its_legend(tables) -> None:
    """Bands meant min–max over steps in most figures, over seeds in three, interquartile in `lolr`: a figure's
    band says what it is."""
    for name in FIGURES:
        spec = spec_of(tables, name)
        areas = [view for view, _, _ in views(spec) if view.get("mark", {}).get("type") == "area"]
        if not areas:
            continue
        keys = [view for view, _, _ in views(spec) if "band" in encoding_fields(view, "fill")]
        assert keys, f"{name} draws bands without a legend entry saying what they are"
        texts_of = {t["calculate"] for view in keys for t in view.get("transform", []) if "calculate" in t}
        assert any("min–max over" in text for text in texts_of), name


def test_figures_are_drawn_from_the_default_plans_runs(tables) -> None:
    """The fixture is the default run's shape: every experiment's runs, at their epochs."""
    epochs = tables.experiment_tables["large_batches"]["steps"].group_by("run_id").agg(pl.col("epoch").max())
    assert set(epochs.get_column("epoch")) == {19}
    assert set(tables.claims.get_column("run_id")) == set(tables.plan.replayed_runs)


def test_the_sm_figures_name_its_run_in_words(tables) -> None:
    subtitle = " ".join(spec_of(tables, "synthetic")["title"]["subtitle"])
    assert "Sinusoidal Mixture (SM): SGD, learning rate 0.001" in subtitle
