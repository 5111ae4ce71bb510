"""Tests of pathgeo.figures on small synthetic tables shaped like the real ones."""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from pathgeo import figures

EPOCH_METRICS = [
    "rsi", "eb", "gamma", "lolr", "grad_norm", "dist", "loss", "lr",
    "rsi_wd", "eb_wd", "gamma_wd", "lolr_wd", "upd_norm", "upd_rsi", "upd_gamma",
]
STATS = ["mean", "min", "max", "q05", "q25", "median", "q75", "q95", "std"]
STEP_METRICS = [
    "lr", "loss", "rsi", "eb", "gamma", "lolr", "grad_norm", "dist", "rsi_wd", "eb_wd",
    "gamma_wd", "lolr_wd", "grad_norm_wd", "upd_norm", "upd_rsi", "upd_gamma",
]
# Batch sizes chosen so that text order (1024 < 128 < 64) differs from numeric order.
RUNS = [
    {"run_id": "r1", "label": "mlp sgd bs64", "optimizer": "sgd", "batch_size": 64, "seed": 0},
    {"run_id": "r2", "label": "mlp momentum bs128", "optimizer": "momentum", "batch_size": 128, "seed": 0},
    {"run_id": "r3", "label": "mlp adam bs1024", "optimizer": "adam", "batch_size": 1024, "seed": 1},
]
N_EPOCHS = 6
STEPS_PER_EPOCH = 20


def run_factors(run: dict[str, Any], dataset: str = "mnist") -> dict[str, Any]:
    return {
        "dataset": dataset, "model": "mlp", "width": 64, "optimizer": run["optimizer"],
        "lr": 0.1, "batch_size": run["batch_size"], "seed": run["seed"],
        "weight_decay": 0.0, "schedule": "constant", "epochs": N_EPOCHS,
    }


def epoch_values(epoch: int, rng: random.Random) -> dict[str, float]:
    """Plausible per-epoch metric means: small positive γ, EB and RSI spanning decades."""
    gamma = 0.02 + 0.005 * rng.random()
    eb = 10.0 ** (0.2 * epoch)
    rsi = gamma * eb
    return {
        "rsi": rsi, "eb": eb, "gamma": gamma, "lolr": rsi / eb**2, "grad_norm": 1.0 / (epoch + 1),
        "dist": 10.0 / (epoch + 1), "loss": 2.0 / (epoch + 1), "lr": 0.1,
        "rsi_wd": rsi, "eb_wd": eb, "gamma_wd": gamma, "lolr_wd": rsi / eb**2,
        "upd_norm": 0.1, "upd_rsi": rsi, "upd_gamma": gamma,
    }


def make_epochs(runs: list[dict[str, Any]] = RUNS, references: tuple[str, ...] = ("final",)) -> pl.DataFrame:
    rng = random.Random(0)
    rows = []
    for run in runs:
        for reference in references:
            budget = N_EPOCHS if reference == "final" else int(reference.removeprefix("epoch"))
            for epoch in range(budget):
                row: dict[str, Any] = {
                    "experiment": "test", "run_id": run["run_id"], "label": run["label"],
                    "reference": reference, "budget": budget, "epoch": epoch, **run_factors(run),
                }
                for metric, mean in epoch_values(epoch, rng).items():
                    spread = abs(mean) * 0.5
                    row |= {
                        f"{metric}_mean": mean, f"{metric}_min": mean - spread,
                        f"{metric}_max": mean + spread, f"{metric}_q05": mean - 0.9 * spread,
                        f"{metric}_q25": mean - 0.4 * spread, f"{metric}_median": mean,
                        f"{metric}_q75": mean + 0.4 * spread, f"{metric}_q95": mean + 0.9 * spread,
                        f"{metric}_std": spread / 2,
                    }
                rows.append(row)
    epochs = pl.DataFrame(rows)
    # Real tables contain undefined statistics and negative loLR quantiles.
    return epochs.with_columns(
        pl.when(pl.col("epoch") == 1).then(float("nan")).otherwise(pl.col("gamma_max")).alias("gamma_max"),
        pl.when(pl.col("epoch") == 2).then(-1.0).otherwise(pl.col("lolr_q25")).alias("lolr_q25"),
    )


def make_steps(datasets: tuple[str, ...] = ("alm", "sm"), total: int = 60) -> pl.DataFrame:
    rng = random.Random(1)
    rows = []
    for dataset in datasets:
        run = {"run_id": f"{dataset}-0", "label": f"{dataset} sgd", "optimizer": "sgd", "batch_size": 32, "seed": 0}
        for step in range(total):
            remaining = total - step
            gamma = remaining**-0.5 * (1 + 0.2 * rng.uniform(-1, 1))
            if step % 17 == 3:
                gamma = -0.1  # synthetic objectives do take wrong turns
            row: dict[str, Any] = {
                "experiment": "test", "run_id": run["run_id"], "label": run["label"], "reference": "final",
                "budget": 1, "epoch": 0, "step": step, "steps_to_reference": remaining,
                **run_factors(run, dataset),
            }
            row |= {metric: rng.uniform(0.1, 1.0) for metric in STEP_METRICS}
            row |= {"gamma": gamma, "rsi": 2.0 * gamma}
            rows.append(row)
    return pl.DataFrame(rows)


def make_claims() -> pl.DataFrame:
    rows = []
    for index, run in enumerate(RUNS):
        rows.append({
            "run_id": run["run_id"], "label": run["label"], "dataset": "mnist", "model": "mlp",
            "width": 64, "optimizer": run["optimizer"], "batch_size": run["batch_size"], "seed": run["seed"],
            "frac_steps_gamma_positive": 0.99 - 0.3 * index, "gamma_epoch_cv": 0.2 * (index + 1),
            "frac_epochs_min_gamma_positive": 1.0 - 0.4 * index, "rsi_trend": 0.9 - index, "eb_trend": 0.8,
            "holds_gamma_positive": index < 2, "holds_gamma_stable": index != 1,
            "holds_min_gamma_positive": index == 0, "holds_trend": None if index == 2 else True,
        })
    return pl.DataFrame(rows, schema_overrides={"holds_trend": pl.Boolean})


def walk(spec: Any):
    """Every dict nested in a Vega-Lite spec."""
    if isinstance(spec, dict):
        yield spec
        for value in spec.values():
            yield from walk(value)
    elif isinstance(spec, list):
        for value in spec:
            yield from walk(value)


def encodings(spec: dict[str, Any], channel: str) -> list[dict[str, Any]]:
    return [node["encoding"][channel] for node in walk(spec) if channel in node.get("encoding", {})]


def fields(spec: dict[str, Any], channel: str) -> set[str]:
    return {encoding["field"] for encoding in encodings(spec, channel) if "field" in encoding}


def dataset_rows(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [row for rows in spec["datasets"].values() for row in rows]


@pytest.fixture(scope="module")
def epochs() -> pl.DataFrame:
    return make_epochs()


@pytest.fixture(scope="module")
def steps() -> pl.DataFrame:
    return make_steps()


def test_every_figure_builds_a_valid_titled_spec(epochs: pl.DataFrame, steps: pl.DataFrame) -> None:
    built = {
        "gamma_band": figures.gamma_band(epochs, color="optimizer"),
        "rsi_eb_gamma": figures.rsi_eb_gamma(epochs.filter(pl.col("run_id") == "r1")),
        "lolr": figures.lolr(epochs, color="batch_size"),
        "distance": figures.distance(epochs, color="optimizer"),
        "synthetic": figures.synthetic(steps),
        "random_walk": figures.random_walk(steps),
        "claims": figures.claims(make_claims()),
    }
    assert set(built) == set(figures.FIGURES)
    for name, chart in built.items():
        spec = chart.to_dict(validate=True)
        assert spec["title"]["text"], name
        assert "config" in spec, name


def test_gamma_band_colours_by_factor_and_bands_min_max(epochs: pl.DataFrame) -> None:
    spec = figures.gamma_band(epochs, color="optimizer").to_dict()
    assert fields(spec, "color") == {"optimizer"}
    assert "gamma_min" in fields(spec, "y") and fields(spec, "y2") == {"gamma_max"}
    assert "gamma_mean" in fields(spec, "y")
    assert fields(spec, "detail") == {figures.SERIES}
    area = [node for node in walk(spec) if node.get("mark", {}) == {"type": "area", "opacity": figures.BAND_OPACITY}]
    assert area, "the min–max band is an area mark"
    # NaN is not JSON: it must reach the spec as null.
    assert any(row["gamma_max"] is None for row in dataset_rows(spec))


def test_gamma_band_numeric_factor_sorts_numerically_and_facets(epochs: pl.DataFrame) -> None:
    spec = figures.gamma_band(epochs, color="batch_size", facet="optimizer", metric="gamma_wd").to_dict()
    assert fields(spec, "color") == {"batch_size"}
    assert all(color["sort"] == ["64", "128", "1024"] for color in encodings(spec, "color"))
    assert {row["batch_size"] for row in dataset_rows(spec)} == {"64", "128", "1024"}
    assert spec["facet"]["column"]["field"] == "optimizer"
    assert fields(spec, "y2") == {"gamma_wd_max"}


def test_gamma_band_seed_is_unordered_and_numeric_facet_sorts_numerically(epochs: pl.DataFrame) -> None:
    widths = epochs.with_columns(pl.col("batch_size").alias("width"))
    spec = figures.gamma_band(widths, color="seed", facet="width").to_dict()
    assert {color["type"] for color in encodings(spec, "color")} == {"nominal"}
    assert spec["facet"]["column"]["sort"] == ["64", "128", "1024"]
    ordered = figures.gamma_band(epochs, color="batch_size").to_dict()
    assert {color["type"] for color in encodings(ordered, "color")} == {"ordinal"}


def test_gamma_band_one_line_per_run_and_reference() -> None:
    epochs = make_epochs(RUNS[:1], references=("final", "epoch3"))
    spec = figures.gamma_band(epochs, color="budget").to_dict()
    assert {row[figures.SERIES] for row in dataset_rows(spec)} == {"r1 · final", "r1 · epoch3"}
    assert all(color["sort"] == ["3", str(N_EPOCHS)] for color in encodings(spec, "color"))


def test_rsi_eb_gamma_stacks_three_panels_with_log_eb(epochs: pl.DataFrame) -> None:
    spec = figures.rsi_eb_gamma(epochs.filter(pl.col("run_id") == "r1")).to_dict()
    assert len(spec["vconcat"]) == 3
    y_fields = [fields(panel, "y") for panel in spec["vconcat"]]
    assert y_fields == [{"rsi_min", "rsi_mean"}, {"eb_min", "eb_mean"}, {"gamma_min", "gamma_mean"}]
    log_panels = [
        any(encoding.get("scale", {}).get("type") == "log" for encoding in encodings(panel, "y"))
        for panel in spec["vconcat"]
    ]
    assert log_panels == [False, True, False]


def test_lolr_log_scale_and_actual_lr(epochs: pl.DataFrame) -> None:
    spec = figures.lolr(epochs, color="optimizer").to_dict()
    assert {"lolr_mean", "lolr_q25", "lr_mean"} <= fields(spec, "y")
    assert all(encoding["scale"]["type"] == "log" for encoding in encodings(spec, "y"))
    assert fields(spec, "strokeDash") == {"quantity"}
    assert fields(spec, "color") == {"optimizer"}
    # Non-positive quantiles cannot sit on a log axis: the band filters them.
    filters = [node["filter"] for node in walk(spec) if "filter" in node]
    assert any("lolr_q25" in str(f) and "> 0" in str(f) for f in filters)


def test_distance_log_scale(epochs: pl.DataFrame) -> None:
    spec = figures.distance(epochs, color="batch_size").to_dict()
    (y,) = encodings(spec, "y")
    assert y["field"] == "dist_mean" and y["scale"]["type"] == "log"


def test_synthetic_grid_has_rsi_and_gamma_rows_per_objective(steps: pl.DataFrame) -> None:
    spec = figures.synthetic(steps).to_dict()
    assert spec["facet"]["row"]["field"] == "quantity"
    assert spec["facet"]["column"]["field"] == "dataset"
    assert spec["resolve"]["scale"]["y"] == "independent"
    rows = dataset_rows(spec)
    assert {row["quantity"] for row in rows} == {"RSI", "γ"}
    assert {row["dataset"] for row in rows} == {"alm", "sm"}
    assert any(row["value"] < 0 for row in rows)
    assert any(encoding.get("datum") == 0 for encoding in encodings(spec, "y"))


def test_random_walk_analytic_curve_is_inverse_square_root(steps: pl.DataFrame) -> None:
    spec = figures.random_walk(steps).to_dict()
    rows = dataset_rows(spec)
    analytic = {row["steps_to_reference"]: row["gamma"] for row in rows if row["source"] == figures.ANALYTIC}
    assert set(analytic) == set(steps.get_column("steps_to_reference").to_list())
    for remaining, gamma in analytic.items():
        assert gamma == pytest.approx(remaining**-0.5)
    measured = [row for row in rows if row["source"] == figures.MEASURED]
    assert measured and all(row["gamma"] > 0 for row in measured)
    assert all(encoding["scale"]["type"] == "log" for encoding in encodings(spec, "x") + encodings(spec, "y"))
    (color_scale,) = {str(encoding["scale"]["domain"]) for encoding in encodings(spec, "color")}
    assert figures.MEASURED in color_scale and figures.ANALYTIC in color_scale
    # The negative γ of the test steps cannot be drawn on a log axis, and the figure says so.
    assert "not drawn" in str(spec["title"]["subtitle"])


def test_random_walk_handles_more_rows_than_altairs_default_limit() -> None:
    steps = make_steps(datasets=("random_walk",), total=6000)
    spec = figures.random_walk(steps).to_dict()
    assert len(dataset_rows(spec)) > 5000


def test_claims_cells_show_value_and_verdict() -> None:
    spec = figures.claims(make_claims()).to_dict()
    rows = dataset_rows(spec)
    assert len(rows) == len(RUNS) * len(figures.CLAIM_CELLS)
    cell = {(row["run"], row["property"]): row for row in rows}
    first = cell[("mlp sgd bs64", "γ > 0 · share of steps")]
    assert first["value"] == "99.0%" and first["verdict"] == figures.HOLDS
    assert cell[("mlp adam bs1024", "RSI / EB trend · Spearman ρ")]["verdict"] == figures.UNDETERMINED
    assert cell[("mlp momentum bs128", "γ stable · CV of epoch means")]["verdict"] == figures.FAILS
    assert fields(spec, "color") == {"verdict"}
    assert fields(spec, "text") == {"value"}


@pytest.mark.parametrize(
    ("name", "table", "kwargs"),
    [
        ("gamma_band", "epochs", {"color": "optimizer"}),
        ("rsi_eb_gamma", "epochs", {}),
        ("lolr", "epochs", {"color": "optimizer"}),
        ("distance", "epochs", {"color": "optimizer"}),
        ("synthetic", "steps", {}),
        ("random_walk", "steps", {}),
        ("claims", "claims", {}),
    ],
)
def test_empty_table_raises(name: str, table: str, kwargs: dict[str, Any]) -> None:
    full = {"epochs": make_epochs(), "steps": make_steps(), "claims": make_claims()}[table]
    with pytest.raises(ValueError, match=f"{table} table is empty"):
        figures.FIGURES[name](full.clear(), **kwargs)


def test_missing_column_is_named(epochs: pl.DataFrame) -> None:
    with pytest.raises(ValueError, match="gamma_max"):
        figures.gamma_band(epochs.drop("gamma_max"), color="optimizer")


def test_save_writes_offline_html_and_svg(tmp_path: Path, epochs: pl.DataFrame) -> None:
    html, svg = tmp_path / "out" / "fig.html", tmp_path / "out" / "fig.svg"
    figures.save(figures.gamma_band(epochs, color="optimizer"), html, svg)
    text = html.read_text()
    assert "https://cdn" not in text and "<script src" not in text.replace(" ", "")
    assert "vegaEmbed" in text
    assert svg.read_text().startswith("<svg")
    assert sorted(path.name for path in html.parent.iterdir()) == ["fig.html", "fig.svg"]


def test_save_writes_png(tmp_path: Path, epochs: pl.DataFrame) -> None:
    png = tmp_path / "fig.png"
    figures.save(figures.distance(epochs, color="optimizer"), tmp_path / "fig.html", png)
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_failing_save_leaves_no_file(tmp_path: Path, epochs: pl.DataFrame, monkeypatch: pytest.MonkeyPatch) -> None:
    import vl_convert

    def broken(*args: Any, **kwargs: Any) -> str:
        raise RuntimeError("renderer crashed")

    monkeypatch.setattr(vl_convert, "vegalite_to_svg", broken)
    with pytest.raises(RuntimeError, match="renderer crashed"):
        figures.save(figures.gamma_band(epochs, color="optimizer"), tmp_path / "fig.html", tmp_path / "fig.svg")
    assert list(tmp_path.iterdir()) == []


def test_failing_write_keeps_previous_figure(tmp_path: Path, epochs: pl.DataFrame, monkeypatch: pytest.MonkeyPatch) -> None:
    html, svg = tmp_path / "fig.html", tmp_path / "fig.svg"
    html.write_text("old html")
    svg.write_text("old svg")

    def broken_replace(source: str, target: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        figures.save(figures.gamma_band(epochs, color="optimizer"), html, svg)
    assert html.read_text() == "old html" and svg.read_text() == "old svg"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["fig.html", "fig.svg"]


def test_save_rejects_unknown_image_format(tmp_path: Path, epochs: pl.DataFrame) -> None:
    with pytest.raises(ValueError, match="svg or .png"):
        figures.save(figures.distance(epochs, color="optimizer"), tmp_path / "fig.html", tmp_path / "fig.pdf")
    assert list(tmp_path.iterdir()) == []
