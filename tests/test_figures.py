"""Tests of pathgeo.figures, the plot registry and its plots, on small synthetic tables shaped like the real ones."""

from __future__ import annotations

import inspect
import math
import os
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from pathgeo.figures import TABLES, plot, plots
from pathgeo.figures.claims import CLAIM_CELLS, FAILS, HOLDS, UNDETERMINED, claims
from pathgeo.figures.correlation_matrices import correlation_matrices
from pathgeo.figures.distance import distance
from pathgeo.figures.fixed_batch_spread import fixed_batch_spread
from pathgeo.figures.full_batch_geometry import full_batch_geometry
from pathgeo.figures.gamma_band import gamma_band
from pathgeo.figures.gamma_correlation import CORRELATION_SERIES, GAMMA_SERIES, gamma_correlation
from pathgeo.figures.grad_correlation import grad_correlation
from pathgeo.figures.lolr import lolr
from pathgeo.figures.random_walk import ANALYTIC, MEASURED, random_walk
from pathgeo.figures.rsi_eb_gamma import rsi_eb_gamma
from pathgeo.figures.save import save
from pathgeo.figures.sign_flip import RANDOM_SIGN_FLIPS, sign_flip
from pathgeo.figures.style import BAND_OPACITY, SERIES, Figure, metric_title
from pathgeo.figures.synthetic import synthetic
from pathgeo.figures.warmup import warmup

EPOCH_METRICS = [
    "rsi", "eb", "gamma", "lolr", "grad_norm", "dist", "loss", "lr",
    "rsi_wd", "eb_wd", "gamma_wd", "lolr_wd", "upd_norm", "upd_rsi", "upd_gamma",
    "grad_corr", "mean_grad_corr", "sign_flip",
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
        "weight_decay": 0.0, "schedule": "constant", "epochs": N_EPOCHS, "warmup_epochs": 0,
    }


def epoch_values(epoch: int, rng: random.Random) -> dict[str, float]:
    """Plausible per-epoch metric means: small positive γ, EB and RSI spanning decades,
    gradient correlation turning from smooth (positive) to zigzag (negative)."""
    gamma = 0.02 + 0.005 * rng.random()
    eb = 10.0 ** (0.2 * epoch)
    rsi = gamma * eb
    grad_corr = 0.8 - 0.3 * epoch
    return {
        "rsi": rsi, "eb": eb, "gamma": gamma, "lolr": rsi / eb**2, "grad_norm": 1.0 / (epoch + 1),
        "dist": 10.0 / (epoch + 1), "loss": 2.0 / (epoch + 1), "lr": 0.1,
        "rsi_wd": rsi, "eb_wd": eb, "gamma_wd": gamma, "lolr_wd": rsi / eb**2,
        "upd_norm": 0.1, "upd_rsi": rsi, "upd_gamma": gamma,
        "grad_corr": grad_corr, "mean_grad_corr": grad_corr + 0.05, "sign_flip": 0.3 + 0.05 * epoch,
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


def make_matrices(runs: list[dict[str, Any]] = RUNS[:2], h: int = 5) -> pl.DataFrame:
    """Zigzag windows at every other epoch: correlation (−0.9)^|i − j|, most signs
    flipping at odd lags."""
    rows = []
    for run in runs:
        for epoch in range(0, N_EPOCHS, 2):
            for i in range(h):
                for j in range(h):
                    lag = abs(i - j)
                    rows.append({
                        "experiment": "test", "run_id": run["run_id"], "label": run["label"], **run_factors(run),
                        "epoch": epoch, "start_step": epoch * STEPS_PER_EPOCH, "i": i, "j": j,
                        "corr": (-0.9) ** lag, "sign_flip": 0.0 if lag == 0 else 0.9 if lag % 2 else 0.1,
                    })
    return pl.DataFrame(rows)


# run_id → the step where its warm-up ends (None: constant learning rate).
SWITCHES = {"gawu": 22, "wu10": 20, "wu5": 10, "const": None}


def make_warmup_steps(total: int = 60, references: tuple[str, ...] = ("final", "epoch2")) -> pl.DataFrame:
    """Exponential warm-up to a switch point, then cosine decay, as in GAWU vs WU."""
    rows = []
    for run_id, switch in SWITCHES.items():
        run = {"run_id": run_id, "label": f"schedule={run_id}", "optimizer": "sgd", "batch_size": 5000, "seed": 0}
        for reference in references:
            budget = N_EPOCHS if reference == "final" else int(reference.removeprefix("epoch"))
            for step in range(total):
                if switch is None:
                    lr = 0.1
                elif step <= switch:
                    lr = 0.001 * math.exp(0.1 * step)
                else:
                    lr = 0.001 * math.exp(0.1 * switch) * 0.5 * (1 + math.cos(math.pi * (step - switch) / (total - switch)))
                rows.append({
                    "experiment": "test", "run_id": run_id, "label": run["label"], "reference": reference,
                    "budget": budget, "epoch": step // 10, "step": step, "steps_to_reference": total - step,
                    **run_factors(run), "loss": 2.0 / (step + 1), "lr": lr,
                })
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


def y_scales(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [encoding["scale"] for encoding in encodings(spec, "y") if "field" in encoding]


@pytest.fixture(scope="module")
def epochs() -> pl.DataFrame:
    return make_epochs()


@pytest.fixture(scope="module")
def steps() -> pl.DataFrame:
    return make_steps()


def test_every_figure_builds_a_valid_titled_spec(epochs: pl.DataFrame, steps: pl.DataFrame) -> None:
    built = {
        "gamma_band": gamma_band(epochs, color="optimizer"),
        "rsi_eb_gamma": rsi_eb_gamma(epochs.filter(pl.col("run_id") == "r1")),
        "lolr": lolr(epochs, color="batch_size"),
        "distance": distance(epochs, color="optimizer"),
        "synthetic": synthetic(steps),
        "random_walk": random_walk(steps),
        "claims": claims(make_claims()),
        "grad_correlation": grad_correlation(epochs),
        "correlation_matrices": correlation_matrices(make_matrices()),
        "sign_flip": sign_flip(epochs),
        "gamma_correlation": gamma_correlation(epochs),
        "warmup": warmup(make_warmup_steps()),
        "full_batch_geometry": full_batch_geometry(make_point_table(fixed=False)),
        "fixed_batch_spread": fixed_batch_spread(make_point_table(fixed=True)),
    }
    assert set(built) == set(plots())
    for name, chart in built.items():
        spec = chart.to_dict(validate=True)
        assert spec["title"]["text"], name
        assert "config" in spec, name


def test_every_plot_declares_itself_completely() -> None:
    for name, entry in plots().items():
        assert entry.name == name and entry.table in TABLES
        parameters = inspect.signature(entry.draw).parameters
        assert set(entry.options) == set(list(parameters)[1:]), name  # its options are draw's keyword arguments
        assert entry.modules[-1] == f"figures/{name}.py"
        assert all((Path(__file__).parents[1] / "pathgeo" / module).is_file() for module in entry.modules)


def test_gamma_band_colours_by_factor_and_bands_min_max(epochs: pl.DataFrame) -> None:
    spec = gamma_band(epochs, color="optimizer").to_dict()
    assert fields(spec, "color") == {"optimizer"}
    assert "gamma_min" in fields(spec, "y") and fields(spec, "y2") == {"gamma_max"}
    assert "gamma_mean" in fields(spec, "y")
    assert fields(spec, "detail") == {SERIES}
    area = [node for node in walk(spec) if node.get("mark", {}) == {"type": "area", "opacity": BAND_OPACITY}]
    assert area, "the min–max band is an area mark"
    # NaN is not JSON: it must reach the spec as null.
    assert any(row["gamma_max"] is None for row in dataset_rows(spec))


def test_gamma_band_numeric_factor_sorts_numerically_and_facets(epochs: pl.DataFrame) -> None:
    spec = gamma_band(epochs, color="batch_size", facet="optimizer", metric="gamma_wd").to_dict()
    assert fields(spec, "color") == {"batch_size"}
    assert all(color["sort"] == ["64", "128", "1024"] for color in encodings(spec, "color"))
    assert {row["batch_size"] for row in dataset_rows(spec)} == {"64", "128", "1024"}
    assert spec["facet"]["column"]["field"] == "optimizer"
    assert fields(spec, "y2") == {"gamma_wd_max"}


def test_gamma_band_seed_is_unordered_and_numeric_facet_sorts_numerically(epochs: pl.DataFrame) -> None:
    widths = epochs.with_columns(pl.col("batch_size").alias("width"))
    spec = gamma_band(widths, color="seed", facet="width").to_dict()
    assert {color["type"] for color in encodings(spec, "color")} == {"nominal"}
    assert spec["facet"]["column"]["sort"] == ["64", "128", "1024"]
    ordered = gamma_band(epochs, color="batch_size").to_dict()
    assert {color["type"] for color in encodings(ordered, "color")} == {"ordinal"}


def test_gamma_band_one_line_per_run_and_reference() -> None:
    epochs = make_epochs(RUNS[:1], references=("final", "epoch3"))
    spec = gamma_band(epochs, color="budget").to_dict()
    assert {row[SERIES] for row in dataset_rows(spec)} == {"r1 · final", "r1 · epoch3"}
    assert all(color["sort"] == ["3", str(N_EPOCHS)] for color in encodings(spec, "color"))


def test_rsi_eb_gamma_stacks_three_panels_with_log_eb(epochs: pl.DataFrame) -> None:
    spec = rsi_eb_gamma(epochs.filter(pl.col("run_id") == "r1")).to_dict()
    assert len(spec["vconcat"]) == 3
    y_fields = [fields(panel, "y") for panel in spec["vconcat"]]
    assert y_fields == [{"rsi_min", "rsi_mean"}, {"eb_min", "eb_mean"}, {"gamma_min", "gamma_mean"}]
    log_panels = [
        any(encoding.get("scale", {}).get("type") == "log" for encoding in encodings(panel, "y"))
        for panel in spec["vconcat"]
    ]
    assert log_panels == [False, True, False]


def test_lolr_log_scale_and_actual_lr(epochs: pl.DataFrame) -> None:
    spec = lolr(epochs, color="optimizer").to_dict()
    assert {"lolr_mean", "lolr_q25", "lr_mean"} <= fields(spec, "y")
    assert all(encoding["scale"]["type"] == "log" for encoding in encodings(spec, "y"))
    assert fields(spec, "strokeDash") == {"quantity"}
    assert fields(spec, "color") == {"optimizer"}
    # Non-positive quantiles cannot sit on a log axis: the band filters them.
    filters = [node["filter"] for node in walk(spec) if "filter" in node]
    assert any("lolr_q25" in str(f) and "> 0" in str(f) for f in filters)


def test_distance_log_scale(epochs: pl.DataFrame) -> None:
    spec = distance(epochs, color="batch_size").to_dict()
    (y,) = encodings(spec, "y")
    assert y["field"] == "dist_mean" and y["scale"]["type"] == "log"


def test_synthetic_grid_has_rsi_and_gamma_rows_per_objective(steps: pl.DataFrame) -> None:
    spec = synthetic(steps).to_dict()
    assert spec["facet"]["row"]["field"] == "quantity"
    assert spec["facet"]["column"]["field"] == "dataset"
    assert spec["resolve"]["scale"]["y"] == "independent"
    rows = dataset_rows(spec)
    assert {row["quantity"] for row in rows} == {"RSI", "γ"}
    assert {row["dataset"] for row in rows} == {"alm", "sm"}
    assert any(row["value"] < 0 for row in rows)
    assert any(encoding.get("datum") == 0 for encoding in encodings(spec, "y"))


def test_random_walk_analytic_curve_is_inverse_square_root(steps: pl.DataFrame) -> None:
    spec = random_walk(steps).to_dict()
    rows = dataset_rows(spec)
    analytic = {row["steps_to_reference"]: row["gamma"] for row in rows if row["source"] == ANALYTIC}
    assert set(analytic) == set(steps.get_column("steps_to_reference").to_list())
    for remaining, gamma in analytic.items():
        assert gamma == pytest.approx(remaining**-0.5)
    measured = [row for row in rows if row["source"] == MEASURED]
    assert measured and all(row["gamma"] > 0 for row in measured)
    assert all(encoding["scale"]["type"] == "log" for encoding in encodings(spec, "x") + encodings(spec, "y"))
    (color_scale,) = {str(encoding["scale"]["domain"]) for encoding in encodings(spec, "color")}
    assert MEASURED in color_scale and ANALYTIC in color_scale
    # The negative γ of the test steps cannot be drawn on a log axis, and the figure says so.
    assert "not drawn" in str(spec["title"]["subtitle"])


def test_random_walk_handles_more_rows_than_altairs_default_limit() -> None:
    steps = make_steps(datasets=("random_walk",), total=6000)
    spec = random_walk(steps).to_dict()
    assert len(dataset_rows(spec)) > 5000


def test_claims_cells_show_value_and_verdict() -> None:
    spec = claims(make_claims()).to_dict()
    rows = dataset_rows(spec)
    assert len(rows) == len(RUNS) * len(CLAIM_CELLS)
    cell = {(row["run"], row["property"]): row for row in rows}
    first = cell[("mlp sgd bs64", "γ > 0 · share of steps")]
    assert first["value"] == "99.0%" and first["verdict"] == HOLDS
    assert cell[("mlp adam bs1024", "RSI / EB trend · Spearman ρ")]["verdict"] == UNDETERMINED
    assert cell[("mlp momentum bs128", "γ stable · CV of epoch means")]["verdict"] == FAILS
    assert fields(spec, "color") == {"verdict"}
    assert fields(spec, "text") == {"value"}


def test_new_metrics_have_titles() -> None:
    assert metric_title("grad_corr").startswith("cos(G(t−1), G(t))")
    assert metric_title("perp_corr_lag20") == "cos(G(t−20), G(t)), components orthogonal to w − w*"
    assert metric_title("perp_corr_lag") == "perp_corr_lag"


def test_grad_correlation_loss_beside_correlation_once_per_run() -> None:
    epochs = make_epochs(RUNS[:2], references=("final", "epoch3"))
    spec = grad_correlation(epochs).to_dict()
    loss, correlation = spec["hconcat"]
    assert fields(loss, "y") == {"loss_mean"} and y_scales(loss) == [{"type": "log"}]
    assert fields(correlation, "y") == {"mean_grad_corr_mean"}
    assert y_scales(correlation) == [{"domain": [-1, 1]}]
    assert any(encoding.get("datum") == 0 for encoding in encodings(correlation, "y"))
    assert fields(spec, "color") == {"label"}
    rows = dataset_rows(spec)
    # The G-only columns repeat for every reference: one copy per run and epoch.
    assert {row["reference"] for row in rows} == {"final"}
    assert sorted((row["run_id"], row["epoch"]) for row in rows) == [
        (run["run_id"], epoch) for run in RUNS[:2] for epoch in range(N_EPOCHS)
    ]
    by_optimizer = grad_correlation(epochs, color="batch_size").to_dict()
    assert fields(by_optimizer, "color") == {"batch_size"}
    assert "batch size" in by_optimizer["title"]["text"]


def matrix_panels(spec: dict[str, Any]) -> list[list[dict[str, Any]]]:
    return [row["hconcat"] for row in spec["vconcat"]]


def test_correlation_matrices_default_first_middle_last_per_run() -> None:
    spec = correlation_matrices(make_matrices()).to_dict()
    assert [row["title"]["text"] for row in spec["vconcat"]] == sorted(run["label"] for run in RUNS[:2])
    for row, run in zip(matrix_panels(spec), sorted(RUNS[:2], key=lambda run: run["label"])):
        assert [panel["title"]["text"] for panel in row] == ["epoch 0", "epoch 2", "epoch 4"]
        for panel, epoch in zip(row, (0, 2, 4)):
            cells = spec["datasets"][panel["data"]["name"]]
            assert len(cells) == 25
            assert {(cell["run_id"], cell["epoch"]) for cell in cells} == {(run["run_id"], epoch)}
            first_off_diagonal = next(cell for cell in cells if (cell["i"], cell["j"]) == (0, 1))
            assert first_off_diagonal["corr"] == pytest.approx(-0.9)
            assert first_off_diagonal["step_j"] == epoch * STEPS_PER_EPOCH + 1
    colors = [encoding for encoding in encodings(spec, "color") if "field" in encoding]
    assert len(colors) == 6 and all(color == colors[0] for color in colors)
    assert colors[0]["field"] == "corr" and colors[0]["title"]
    assert colors[0]["scale"] == {"domain": [-1, 1], "scheme": "redblue", "reverse": True}
    assert spec["resolve"]["scale"]["color"] == "shared"
    assert all(
        text == {"field": "corr", "format": ".2f", "type": "quantitative"} for text in encodings(spec, "text")
    )
    assert {encoding["title"] for encoding in encodings(spec, "x")} == {"step j in window"}
    assert {encoding["title"] for encoding in encodings(spec, "y")} == {"step i in window"}
    tooltips = [tip for tips in encodings(spec, "tooltip") for tip in tips]
    assert {"field": "sign_flip", "format": ".1%", "title": "entries of opposite sign", "type": "quantitative"} in tooltips


def test_correlation_matrices_replace_missing_epochs_by_the_nearest() -> None:
    spec = correlation_matrices(make_matrices(RUNS[:1]), epochs=[1, 4, 10]).to_dict()
    (row,) = matrix_panels(spec)
    # 1 lies between 0 and 2 (ties go to the earlier); 10 lies beyond the last, 4.
    assert [panel["title"]["text"] for panel in row] == ["epoch 0 (nearest to 1)", "epoch 4 (nearest to 10)"]
    assert [{cell["epoch"] for cell in spec["datasets"][panel["data"]["name"]]} for panel in row] == [{0}, {4}]
    with pytest.raises(ValueError, match="epochs is empty"):
        correlation_matrices(make_matrices(), epochs=[])


def test_correlation_matrices_keep_runs_sharing_a_label_apart() -> None:
    matrices = make_matrices().with_columns(pl.lit("same label").alias("label"))
    spec = correlation_matrices(matrices).to_dict()
    assert [row["title"]["text"] for row in spec["vconcat"]] == ["same label · r1", "same label · r2"]


def test_sign_flip_band_in_percent_once_per_run() -> None:
    epochs = make_epochs(RUNS[:2], references=("final", "epoch3"))
    spec = sign_flip(epochs, color="optimizer").to_dict()
    assert fields(spec, "y") == {"sign_flip_q05", "sign_flip_mean"}
    assert fields(spec, "y2") == {"sign_flip_q95"}
    assert fields(spec, "color") == {"optimizer"}
    assert any(encoding.get("datum") == RANDOM_SIGN_FLIPS for encoding in encodings(spec, "y"))
    assert {encoding["title"] for encoding in encodings(spec, "y") if "field" in encoding} == {
        "gradient entries flipping sign (%)"
    }
    rows = dataset_rows(spec)
    assert len(rows) == 2 * N_EPOCHS and {row["reference"] for row in rows} == {"final"}
    first = next(row for row in rows if row["run_id"] == "r1" and row["epoch"] == 0)
    assert first["sign_flip_mean"] == pytest.approx(30.0)
    assert first["sign_flip_q95"] == pytest.approx(100 * (0.3 + 0.9 * 0.15))


def test_gamma_correlation_two_series_per_run_panel() -> None:
    epochs = make_epochs(RUNS[:2], references=("final", "epoch3"))
    spec = gamma_correlation(epochs).to_dict()
    assert spec["facet"]["field"] == "run" and spec["columns"] == 3
    rows = dataset_rows(spec)
    assert {row["run"] for row in rows} == {run["label"] for run in RUNS[:2]}
    assert {row["quantity"] for row in rows} == {GAMMA_SERIES, CORRELATION_SERIES}
    assert {row["reference"] for row in rows} == {"final"}
    assert len(rows) == 2 * 2 * N_EPOCHS
    correlation = {
        (row["run"], row["epoch"]): row["value"] for row in rows if row["quantity"] == CORRELATION_SERIES
    }
    # The per-epoch mean of grad_corr, not that of the window mean mean_grad_corr.
    assert correlation[(RUNS[0]["label"], 0)] == pytest.approx(0.8)
    (color,) = [encoding for encoding in encodings(spec, "color") if "field" in encoding]
    assert color["field"] == "quantity"
    assert color["scale"]["domain"] == [GAMMA_SERIES, CORRELATION_SERIES]
    assert y_scales(spec) == [{"domain": [-1, 1]}]
    assert any(encoding.get("datum") == 0 for encoding in encodings(spec, "y"))
    assert "not the window mean" in str(spec["title"]["subtitle"])


def test_gamma_correlation_single_run_is_one_panel_naming_the_run(epochs: pl.DataFrame) -> None:
    spec = gamma_correlation(epochs.filter(pl.col("run_id") == "r2")).to_dict()
    assert "facet" not in spec and "layer" in spec
    assert f"run: {RUNS[1]['label']}" in spec["title"]["subtitle"]


def test_warmup_loss_and_lr_with_switch_points() -> None:
    spec = warmup(make_warmup_steps()).to_dict()
    loss, lr = spec["hconcat"]
    assert fields(loss, "y") == {"loss"} and fields(lr, "y") == {"lr"}
    assert all(scale == {"type": "log"} for scale in y_scales(spec))
    assert fields(spec, "color") == {"label"}
    steps_rows = spec["datasets"][spec["data"]["name"]]
    assert {row["reference"] for row in steps_rows} == {"final"}
    assert len(steps_rows) == 60 * len(SWITCHES)
    switch_layers = [layer for layer in lr["layer"] if "data" in layer]
    assert {layer["mark"]["type"] for layer in switch_layers} == {"rule", "point"}
    for layer in switch_layers:
        switches = {row["run_id"]: row["step"] for row in spec["datasets"][layer["data"]["name"]]}
        assert switches == {run_id: step for run_id, step in SWITCHES.items() if step is not None}
    assert "layer" not in loss, "switch points are marked on the learning-rate panel only"


@pytest.mark.parametrize(
    ("name", "table", "kwargs"),
    [
        ("grad_correlation", "epochs", {}),
        ("correlation_matrices", "matrices", {}),
        ("sign_flip", "epochs", {}),
        ("gamma_correlation", "epochs", {}),
        ("warmup", "warmup", {}),
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
    full = {
        "epochs": make_epochs(), "steps": make_steps(), "claims": make_claims(),
        "matrices": make_matrices(), "warmup": make_warmup_steps(),
    }[table]
    with pytest.raises(ValueError, match=f"{table.replace('warmup', 'steps')} table is empty"):
        plot(name).draw(full.clear(), **kwargs)


def test_missing_column_is_named(epochs: pl.DataFrame) -> None:
    with pytest.raises(ValueError, match="gamma_max"):
        gamma_band(epochs.drop("gamma_max"), color="optimizer")


@pytest.mark.parametrize(
    ("name", "table", "column"),
    [
        ("grad_correlation", "epochs", "mean_grad_corr_mean"),
        ("grad_correlation", "epochs", "budget"),
        ("correlation_matrices", "matrices", "sign_flip"),
        ("correlation_matrices", "matrices", "start_step"),
        ("sign_flip", "epochs", "sign_flip_q95"),
        ("gamma_correlation", "epochs", "grad_corr_mean"),
        ("gamma_correlation", "epochs", "gamma_mean"),
        ("warmup", "steps", "lr"),
    ],
)
def test_gradient_correlation_figures_name_a_missing_column(name: str, table: str, column: str) -> None:
    full = {"epochs": make_epochs(), "matrices": make_matrices(), "steps": make_warmup_steps()}[table]
    with pytest.raises(ValueError, match=f"the {table} table lacks the columns \\['{column}'\\]"):
        plot(name).draw(full.drop(column))


def test_save_writes_offline_html_and_svg(tmp_path: Path, epochs: pl.DataFrame) -> None:
    html, svg = tmp_path / "out" / "fig.html", tmp_path / "out" / "fig.svg"
    save(gamma_band(epochs, color="optimizer"), html, svg)
    text = html.read_text()
    assert "https://cdn" not in text and "<script src" not in text.replace(" ", "")
    assert "vegaEmbed" in text
    assert svg.read_text().startswith("<svg")
    assert sorted(path.name for path in html.parent.iterdir()) == ["fig.html", "fig.svg"]


@pytest.mark.parametrize(
    "build",
    [
        lambda: grad_correlation(make_epochs()),
        lambda: correlation_matrices(make_matrices(), epochs=[1, 4]),
        lambda: sign_flip(make_epochs()),
        lambda: gamma_correlation(make_epochs()),
        lambda: warmup(make_warmup_steps()),
    ],
    ids=["grad_correlation", "correlation_matrices", "sign_flip", "gamma_correlation", "warmup"],
)
def test_save_writes_gradient_correlation_figures(tmp_path: Path, build: Callable[[], Figure]) -> None:
    html, svg = tmp_path / "fig.html", tmp_path / "fig.svg"
    chart = build()
    save(chart, html, svg)
    assert "vegaEmbed" in html.read_text()
    image = svg.read_text()
    assert image.startswith("<svg")
    assert chart.to_dict()["title"]["text"] in image
    assert sorted(path.name for path in tmp_path.iterdir()) == ["fig.html", "fig.svg"]


def test_save_writes_png(tmp_path: Path, epochs: pl.DataFrame) -> None:
    png = tmp_path / "fig.png"
    save(distance(epochs, color="optimizer"), tmp_path / "fig.html", png)
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_failing_save_leaves_no_file(tmp_path: Path, epochs: pl.DataFrame, monkeypatch: pytest.MonkeyPatch) -> None:
    import vl_convert

    def broken(*args: Any, **kwargs: Any) -> str:
        raise RuntimeError("renderer crashed")

    monkeypatch.setattr(vl_convert, "vegalite_to_svg", broken)
    with pytest.raises(RuntimeError, match="renderer crashed"):
        save(gamma_band(epochs, color="optimizer"), tmp_path / "fig.html", tmp_path / "fig.svg")
    assert list(tmp_path.iterdir()) == []


def test_failing_write_keeps_previous_figure(tmp_path: Path, epochs: pl.DataFrame, monkeypatch: pytest.MonkeyPatch) -> None:
    html, svg = tmp_path / "fig.html", tmp_path / "fig.svg"
    html.write_text("old html")
    svg.write_text("old svg")

    def broken_replace(source: str, target: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        save(gamma_band(epochs, color="optimizer"), html, svg)
    assert html.read_text() == "old html" and svg.read_text() == "old svg"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["fig.html", "fig.svg"]


def test_save_rejects_unknown_image_format(tmp_path: Path, epochs: pl.DataFrame) -> None:
    with pytest.raises(ValueError, match="svg or .png"):
        save(distance(epochs, color="optimizer"), tmp_path / "fig.html", tmp_path / "fig.pdf")
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------------------------------
# The full-batch geometry and the fixed-batch spread (pathgeo.point_geometry's aggregated tables)
# ---------------------------------------------------------------------------------------------------------

POINT_METRICS = ("loss", "grad_norm", "dist", "rsi", "eb", "gamma", "lolr", "grad_norm_wd", "rsi_wd", "eb_wd",
                 "gamma_wd", "lolr_wd")


def make_point_table(fixed: bool) -> pl.DataFrame:
    """The aggregated full_batch table (one row per run, reference, measured epoch) or fixed_batches table
    (one row per run, reference, measured step, with mean/min/max/std over 4 batches)."""
    rng = random.Random(2)
    rows = []
    for run in RUNS[:2]:
        for reference, budget in (("final", N_EPOCHS), ("epoch3", 3)):
            for point in range(1, budget + 1):
                row: dict[str, Any] = {
                    "experiment": "test", "run_id": run["run_id"], "label": run["label"], "reference": reference,
                    "budget": budget, "epoch": point - 1, "step": STEPS_PER_EPOCH * point, **run_factors(run),
                }
                values = {m: rng.uniform(0.01, 1.0) for m in POINT_METRICS}
                if fixed:
                    row["batches"] = 4
                    for m, v in values.items():
                        row |= {f"{m}_mean": v, f"{m}_min": 0.5 * v, f"{m}_max": 1.5 * v, f"{m}_std": 0.2 * v}
                else:
                    row |= values
                rows.append(row)
    return pl.DataFrame(rows)


def test_full_batch_geometry_panels_and_weight_decay_dashes() -> None:
    spec = full_batch_geometry(make_point_table(fixed=False)).to_dict()
    assert fields(spec, "y") == {"gamma", "gamma_wd", "rsi", "rsi_wd", "eb", "eb_wd"}
    assert {s.get("type") for s in y_scales(spec)} == {"log", None}
    assert any(node.get("mark", {}).get("strokeDash") == [5, 3] for node in walk(spec) if isinstance(node.get("mark"), dict))
    # One line per run and reference point.
    assert {row["series"] for row in dataset_rows(spec)} == {f"{r} · {ref}" for r in ("r1", "r2") for ref in ("final", "epoch3")}


def test_fixed_batch_spread_bands_min_max_over_batches() -> None:
    table = make_point_table(fixed=True)
    spec = fixed_batch_spread(table).to_dict()
    assert {"gamma_min", "rsi_min", "eb_min"} <= fields(spec, "y")
    assert {"gamma_max", "rsi_max", "eb_max"} <= fields(spec, "y2")
    assert "4 fixed minibatches" in " ".join(spec["title"]["subtitle"])
    with pytest.raises(ValueError, match="fixed_batches table is empty"):
        fixed_batch_spread(table.clear())
    with pytest.raises(ValueError, match=r"full_batch table lacks the columns \['gamma_wd'\]"):
        full_batch_geometry(make_point_table(fixed=False).drop("gamma_wd"))


def test_save_writes_point_figures(tmp_path: Path) -> None:
    for name, chart in (("full", full_batch_geometry(make_point_table(fixed=False))),
                        ("fixed", fixed_batch_spread(make_point_table(fixed=True)))):
        save(chart, tmp_path / f"{name}.html", tmp_path / f"{name}.svg")
        assert (tmp_path / f"{name}.svg").read_text().startswith("<svg")
