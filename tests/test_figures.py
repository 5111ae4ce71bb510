"""Tests of pathgeo.analysis.figures, the plot registry and its plots, on small synthetic tables shaped like the real ones."""

from __future__ import annotations

import dataclasses
import functools
import inspect
import json
import math
import operator
import os
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from pathgeo.analysis.figures import TABLES, plot, plots
from pathgeo.analysis.figures.accuracy import accuracy
from pathgeo.analysis.figures.claims import CLAIM_CELLS, FAILS, HOLDS, VERDICT_COLORS, claims
from pathgeo.analysis.figures.correlation_matrices import correlation_matrices
from pathgeo.analysis.figures.distance import distance
from pathgeo.analysis.figures.fixed_batch_spread import fixed_batch_spread
from pathgeo.analysis.figures.full_batch_geometry import full_batch_geometry
from pathgeo.analysis.figures.gamma_band import gamma_band
from pathgeo.analysis.figures.gamma_correlation import CORRELATION_SERIES, GAMMA_SERIES, gamma_correlation
from pathgeo.analysis.figures.grad_correlation import grad_correlation
from pathgeo.analysis.figures.level_sets import level_sets
from pathgeo.analysis.figures.lolr import TAKEN, TAKEN_BY_ALL, TAKEN_DASH, lolr
from pathgeo.analysis.figures.mu_lr import mu_lr
from pathgeo.analysis.figures.random_walk import ANALYTIC, MEASURED, random_walk
from pathgeo.analysis.figures.rsi_eb_gamma import rsi_eb_gamma
from pathgeo.analysis.figures.save import save
from pathgeo.analysis.figures.sign_flip import RANDOM_SIGN_FLIPS, sign_flip
from pathgeo.analysis.figures.style import BAND_OPACITY, COLOR_LEVEL, CONTEXT_COLOR, DASH_LEVEL, NEUTRAL_COLOR, Figure
from pathgeo.analysis.figures.synthetic import synthetic
from pathgeo.analysis.figures.tables import EPOCH, SERIES
from pathgeo.analysis.figures.tables import RUN as RUN_COLUMN
from pathgeo.analysis.figures.warmup import warmup
from pathgeo.analysis.figures.words import metric_title, run_name
from pathgeo.analysis.figures.zigzag_onset import ONSET, zigzag_onset
from pathgeo.analysis.figures.zigzag_phases import GEOMETRY_COLORS, zigzag_phases
from pathgeo.analysis.zigzag import run_findings
from pathgeo.columns import POINT_METRICS

EPOCH_METRICS = [
    "rsi",
    "eb",
    "gamma",
    "lolr",
    "grad_norm",
    "dist",
    "loss",
    "lr",
    "rsi_wd",
    "eb_wd",
    "gamma_wd",
    "lolr_wd",
    "upd_norm",
    "upd_rsi",
    "upd_gamma",
    "grad_corr",
    "mean_grad_corr",
    "sign_flip",
]
STATS = ["mean", "min", "max", "q05", "q25", "median", "q75", "q95", "std"]
STEP_METRICS = [
    "lr",
    "loss",
    "rsi",
    "eb",
    "gamma",
    "lolr",
    "grad_norm",
    "dist",
    "rsi_wd",
    "eb_wd",
    "gamma_wd",
    "lolr_wd",
    "grad_norm_wd",
    "upd_norm",
    "upd_rsi",
    "upd_gamma",
]
# Batch sizes chosen so that text order (1024 < 128 < 64) differs from numeric order.
RUNS = [
    {"run_id": "r1", "label": "mlp sgd bs64", "optimizer": "sgd", "batch_size": 64, "seed": 0},
    {"run_id": "r2", "label": "mlp momentum bs128", "optimizer": "momentum", "batch_size": 128, "seed": 0},
    {"run_id": "r3", "label": "mlp adam bs1024", "optimizer": "adam", "batch_size": 1024, "seed": 1},
]
# What pathgeo.training.optimizers says of each: the steady-state step over lr x G (None: no single factor).
STEP_SCALES = {"sgd": 1.0, "momentum": 10.0, "adam": None}
N_EPOCHS = 6
STEPS_PER_EPOCH = 20


def run_factors(run: dict[str, Any], dataset: str = "mnist") -> dict[str, Any]:
    return {
        "dataset": dataset,
        "model": run.get("model", "mlp"),
        "width": run.get("width", 64),
        "optimizer": run["optimizer"],
        "peak_lr": 0.1,
        "batch_size": run["batch_size"],
        "seed": run["seed"],
        "weight_decay": 0.0,
        "schedule": run.get("schedule", "constant"),
        "epochs": N_EPOCHS,
        "warmup_epochs": run.get("warmup_epochs", 0),
        "full_batch": False,
        "width_unit": "channels" if run.get("model") == "resnet1d" else "hidden units",
        "step_scale": STEP_SCALES[run["optimizer"]],
    }


def epoch_values(epoch: int, rng: random.Random) -> dict[str, float]:
    """Plausible per-epoch metric means: small positive γ, EB and RSI spanning decades,
    gradient correlation turning from smooth (positive) to zigzag (negative)."""
    gamma = 0.02 + 0.005 * rng.random()
    eb = 10.0 ** (0.2 * epoch)
    rsi = gamma * eb
    grad_corr = 0.8 - 0.3 * epoch
    return {
        "rsi": rsi,
        "eb": eb,
        "gamma": gamma,
        "lolr": rsi / eb**2,
        "grad_norm": 1.0 / (epoch + 1),
        "dist": 10.0 / (epoch + 1),
        "loss": 2.0 / (epoch + 1),
        "lr": 0.1,
        "rsi_wd": rsi,
        "eb_wd": eb,
        "gamma_wd": gamma,
        "lolr_wd": rsi / eb**2,
        "upd_norm": 0.1,
        "upd_rsi": rsi,
        "upd_gamma": gamma,
        "grad_corr": grad_corr,
        "mean_grad_corr": grad_corr + 0.05,
        "sign_flip": 0.3 + 0.05 * epoch,
    }


def make_epochs(
    runs: list[dict[str, Any]] = RUNS, references: tuple[str, ...] = ("final",), steps: int = STEPS_PER_EPOCH
) -> pl.DataFrame:
    rng = random.Random(0)
    rows = []
    for run in runs:
        for reference in references:
            budget = N_EPOCHS if reference == "final" else int(reference.removeprefix("epoch"))
            for epoch in range(budget):
                row: dict[str, Any] = {
                    "experiment": "test",
                    "run_id": run["run_id"],
                    "label": run["label"],
                    "reference": reference,
                    "budget": budget,
                    "epoch": epoch,
                    "steps": steps,
                    **run_factors(run),
                }
                values = epoch_values(epoch, rng)
                values = {metric: value * run.get("scale", 1.0) for metric, value in values.items()}
                for metric, mean in values.items():
                    spread = abs(mean) * 0.5
                    row |= {
                        f"{metric}_mean": mean,
                        f"{metric}_min": mean - spread,
                        f"{metric}_max": mean + spread,
                        f"{metric}_q05": mean - 0.9 * spread,
                        f"{metric}_q25": mean - 0.4 * spread,
                        f"{metric}_median": mean,
                        f"{metric}_q75": mean + 0.4 * spread,
                        f"{metric}_q95": mean + 0.9 * spread,
                        f"{metric}_std": spread / 2,
                    }
                rows.append(row)
    epochs = pl.DataFrame(rows, schema_overrides={"step_scale": pl.Float64})
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
                "experiment": "test",
                "run_id": run["run_id"],
                "label": run["label"],
                "reference": "final",
                "budget": total // 10,
                "epoch": step // 10,
                "step": step,
                "steps_to_reference": remaining,
                **run_factors(run, dataset),
            }
            row |= {metric: rng.uniform(0.1, 1.0) for metric in STEP_METRICS}
            row |= {"gamma": gamma, "rsi": 2.0 * gamma}
            rows.append(row)
    return pl.DataFrame(rows)


def make_run_steps(
    runs: list[dict[str, Any]] = RUNS, references: tuple[str, ...] = ("final",), steps: int = STEPS_PER_EPOCH
) -> pl.DataFrame:
    """Per-step rows of these runs as the steps table holds them: every metric, each epoch's values around the
    epoch means of `make_epochs` (μ(t) undefined for the first 4 steps, as before its window is full)."""
    rng = random.Random(3)
    rows = []
    for run in runs:
        for reference in references:
            budget = N_EPOCHS if reference == "final" else int(reference.removeprefix("epoch"))
            for epoch in range(budget):
                means = epoch_values(epoch, rng)
                for k in range(steps):
                    step = epoch * steps + k
                    row: dict[str, Any] = {
                        "experiment": "test",
                        "run_id": run["run_id"],
                        "label": run["label"],
                        "reference": reference,
                        "budget": budget,
                        "epoch": epoch,
                        "step": step,
                        "steps_to_reference": budget * steps - step,
                        **run_factors(run),
                    }
                    row |= {m: v * (1 + 0.2 * (k / max(steps - 1, 1) - 0.5)) for m, v in means.items()}
                    if step < 4:
                        row["mean_grad_corr"] = None
                    rows.append(row)
    return pl.DataFrame(rows, schema_overrides={"step_scale": pl.Float64}, infer_schema_length=None)


def make_matrices(runs: list[dict[str, Any]] = RUNS[:2], h: int = 5) -> pl.DataFrame:
    """Zigzag windows at every other epoch: correlation (−0.9)^|i − j|, most signs
    flipping at odd lags."""
    rows = []
    for run in runs:
        for epoch in range(0, N_EPOCHS, 2):
            for i in range(h):
                for j in range(h):
                    lag = abs(i - j)
                    rows.append(
                        {
                            "experiment": "test",
                            "run_id": run["run_id"],
                            "label": run["label"],
                            **run_factors(run),
                            "epoch": epoch,
                            "start_step": epoch * STEPS_PER_EPOCH,
                            "i": i,
                            "j": j,
                            "corr": (-0.9) ** lag,
                            "sign_flip": 0.0 if lag == 0 else 0.9 if lag % 2 else 0.1,
                        }
                    )
    return pl.DataFrame(rows)


# run_id → the step where its warm-up ends (None: constant learning rate).
SWITCHES = {"gawu": 22, "wu10": 20, "wu5": 10, "const": None}


def make_warmup_steps(total: int = 60, references: tuple[str, ...] = ("final", "epoch2")) -> pl.DataFrame:
    """Exponential warm-up to a switch point, then cosine decay, as in GAWU vs WU."""
    rows = []
    for run_id, switch in SWITCHES.items():
        run = {
            "run_id": run_id,
            "label": f"schedule={run_id}",
            "optimizer": "sgd",
            "batch_size": 5000,
            "seed": 0,
            "schedule": "gawu" if run_id == "gawu" else "exp_warmup_cosine",
            "warmup_epochs": 25,
        }
        for reference in references:
            budget = N_EPOCHS if reference == "final" else int(reference.removeprefix("epoch"))
            for step in range(total):
                if switch is None:
                    lr = 0.1
                elif step <= switch:
                    lr = 0.001 * math.exp(0.1 * step)
                else:
                    lr = (
                        0.001
                        * math.exp(0.1 * switch)
                        * 0.5
                        * (1 + math.cos(math.pi * (step - switch) / (total - switch)))
                    )
                rows.append(
                    {
                        "experiment": "test",
                        "run_id": run_id,
                        "label": run["label"],
                        "reference": reference,
                        "budget": budget,
                        "epoch": step // 10,
                        "step": step,
                        "steps_to_reference": total - step,
                        **run_factors(run),
                        "loss": 2.0 / (step + 1),
                        "lr": lr,
                        # Positive until the switch, then negative: what GAWU watches.
                        "mean_grad_corr": None if step < 4 else (0.5 if switch is None or step < switch else -0.5),
                    }
                )
    return pl.DataFrame(rows)


def make_train(
    experiments: tuple[str, ...] = ("optimizers", "batch_sizes"), runs: list[dict[str, Any]] = RUNS
) -> pl.DataFrame:
    """Train logs as pathgeo.analysis.aggregate.experiment_train writes them: accuracy after every epoch, the last one too."""
    rows = []
    for experiment in experiments:
        for index, run in enumerate(runs):
            for epoch in range(N_EPOCHS):
                rows.append(
                    {
                        "experiment": experiment,
                        "run_id": run["run_id"],
                        "label": run["label"],
                        **run_factors(run),
                        "epoch": epoch,
                        "train_loss": 2.0 / (epoch + 1),
                        "val_loss": 2.2 / (epoch + 1),
                        "train_accuracy": 0.1 + 0.1 * epoch + 0.01 * index,
                        "val_accuracy": 0.1 + 0.09 * epoch,
                        "lr": 0.1,
                    }
                )
    return pl.DataFrame(rows, schema_overrides={"step_scale": pl.Float64})


def make_landscape(datasets: tuple[str, ...] = ("alm", "sm"), points: int = 5, steps: int = 8) -> pl.DataFrame:
    """A landscape table as pathgeo.jobs.landscape writes it: a bowl on the grid, a path spiralling into w*."""
    rows = []
    for dataset in datasets:
        run = {"run_id": f"{dataset}-0", "optimizer": "sgd", "batch_size": 1, "seed": 0}
        factors = {k: v for k, v in run_factors(run, dataset).items() if k not in ("width_unit", "step_scale")}
        common = {"run_id": run["run_id"], "explained_a": 0.8, "explained_b": 0.15, **factors}
        for i in range(points):
            for j in range(points):
                a, b = -1 + 2 * i / (points - 1), -1 + 2 * j / (points - 1)
                rows.append({**common, "source": "grid", "a": a, "b": b, "loss": a * a + 4 * b * b})
        for t in range(steps + 1):
            r = 1 - t / steps
            rows.append(
                {
                    **common,
                    "source": "path",
                    "step": t,
                    "epoch": t // 4,
                    "a": r * math.cos(t),
                    "b": r * math.sin(t) / 2,
                    "loss": r * r,
                    "off_plane": 0.1 * r,
                }
            )
    return pl.DataFrame(rows, infer_schema_length=None)


def landscape_train(datasets: tuple[str, ...] = ("alm", "sm")) -> pl.DataFrame:
    """The train logs of `make_landscape`'s runs: an objective that falls from epoch to epoch."""
    return pl.DataFrame(
        [
            {
                "run_id": f"{dataset}-0",
                "epoch": epoch,
                "train_loss": 100.0 / (epoch + 1),
                "val_loss": 90.0 / (epoch + 1),
            }
            for dataset in datasets
            for epoch in range(2)
        ]
    )


def make_claims() -> pl.DataFrame:
    rows = []
    for index, run in enumerate(RUNS):
        rows.append(
            {
                "run_id": run["run_id"],
                "label": run["label"],
                "dataset": "mnist",
                "model": "mlp",
                "width": 64,
                "optimizer": run["optimizer"],
                "batch_size": run["batch_size"],
                "seed": run["seed"],
                "frac_steps_gamma_positive": 0.99 - 0.3 * index,
                "gamma_epoch_cv": 0.2 * (index + 1),
                "frac_epochs_min_gamma_positive": 1.0 - 0.4 * index,
                "rsi_trend": 0.9 - index,
                "eb_trend": 0.8,
                "holds_gamma_positive": index < 2,
                "holds_gamma_stable": index != 1,
                "holds_min_gamma_positive": index == 0,
                "holds_trend": index != 2,
                "min_frac_steps_gamma_positive": 0.95,
                "max_gamma_epoch_cv": 0.5,
                "min_frac_epochs_min_gamma_positive": 0.9,
                "min_abs_trend": 0.7,
            }
        )
    return pl.DataFrame(rows)


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
        "claims": claims(make_claims(), make_train()),
        "grad_correlation": grad_correlation(make_run_steps()),
        "correlation_matrices": correlation_matrices(make_matrices()),
        "sign_flip": sign_flip(make_run_steps()),
        "gamma_correlation": gamma_correlation(make_run_steps()),
        "warmup": warmup(make_warmup_steps(), make_train(runs=WARMUP_RUNS)),
        "accuracy": accuracy(make_train()),
        "level_sets": level_sets(make_landscape(), landscape_train()),
        "mu_lr": mu_lr(make_warmup_steps()),
        "full_batch_geometry": full_batch_geometry(make_point_table(fixed=False)),
        "fixed_batch_spread": fixed_batch_spread(make_point_table(fixed=True)),
        "zigzag_onset": zigzag_onset(make_zigzag()[0], make_train()),
        "zigzag_phases": zigzag_phases(make_zigzag()[1], make_zigzag()[0], make_train()),
    }
    assert set(built) == set(plots())
    for name, chart in built.items():
        spec = chart.to_dict(validate=True)
        assert spec["title"]["text"], name
        assert "config" in spec, name


def test_every_plot_declares_itself_completely() -> None:
    for name, entry in plots().items():
        assert entry.name == name and set(entry.tables) <= set(TABLES)
        parameters = inspect.signature(entry.draw).parameters
        # Its tables are draw's positional arguments, its options the keyword arguments after them.
        assert set(entry.options) == set(list(parameters)[len(entry.tables) :]), name
        assert entry.describe(**{option: option_example(entry, option) for option in required_options(entry)}), name
        assert entry.modules[-1] == f"analysis/figures/{name}.py"
        assert all((Path(__file__).parents[1] / "pathgeo" / module).is_file() for module in entry.modules)


def required_options(entry: Any) -> list[str]:
    parameters = list(inspect.signature(entry.draw).parameters.values())[len(entry.tables) :]
    return [p.name for p in parameters if p.default is inspect.Parameter.empty]


def option_example(entry: Any, option: str) -> Any:
    return {"color": "optimizer"}[option]


def panels_of(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """The panels of a figure of small multiples (pathgeo.analysis.figures.style.band_grid), in order."""
    for key in ("concat", "hconcat", "vconcat"):
        if key in spec:
            return [panel for child in spec[key] for panel in (panels_of(child) if "layer" not in child else [child])]
    return [spec]


def test_gamma_band_colours_by_factor_and_bands_min_max(epochs: pl.DataFrame) -> None:
    spec = gamma_band(epochs, color="optimizer").to_dict()
    assert fields(spec, "color") == {COLOR_LEVEL}
    assert {row[COLOR_LEVEL] for row in dataset_rows(spec)} == {"SGD", "SGD with momentum", "Adam"}
    assert "gamma_min" in fields(spec, "y") and fields(spec, "y2") == {"gamma_max"}
    assert "gamma_mean" in fields(spec, "y")
    assert fields(spec, "detail") == {SERIES}
    area = [node for node in walk(spec) if node.get("mark", {}) == {"type": "area", "opacity": BAND_OPACITY}]
    assert area, "the min–max band is an area mark"
    # NaN is not JSON: it must reach the spec as null.
    assert any(row["gamma_max"] is None for row in dataset_rows(spec))


def test_gamma_band_numeric_factor_sorts_numerically_and_facets(epochs: pl.DataFrame) -> None:
    spec = gamma_band(epochs, color="batch_size", facet="optimizer", metric="gamma_wd").to_dict()
    assert fields(spec, "color") == {COLOR_LEVEL}
    assert all(color["sort"] == ["64", "128", "1024"] for color in encodings(spec, "color"))
    assert {row[COLOR_LEVEL] for row in dataset_rows(spec)} == {"64", "128", "1024"}
    # One panel per optimizer, named in words, in the order of every figure (SGD, momentum, Adam).
    assert [panel["title"]["text"] for panel in panels_of(spec)] == ["SGD", "SGD with momentum", "Adam"]
    assert fields(spec, "y2") == {"gamma_wd_max"}


def test_gamma_band_seed_is_unordered_and_numeric_facet_sorts_numerically(epochs: pl.DataFrame) -> None:
    widths = epochs.with_columns(pl.col("batch_size").alias("width"))
    spec = gamma_band(widths, color="seed", facet="width").to_dict()
    (scale,) = {json_key(color["scale"]) for color in encodings(spec, "color") if "field" in color}
    assert "range" in json.loads(scale) and "scheme" not in json.loads(scale)
    assert [panel["title"]["text"] for panel in panels_of(spec)] == ["width 64", "width 128", "width 1024"]
    ordered = gamma_band(epochs, color="batch_size").to_dict()
    (scale,) = {json_key(color["scale"]) for color in encodings(ordered, "color") if "field" in color}
    assert json.loads(scale)["scheme"]["name"] == "viridis"


def test_gamma_band_one_line_per_run_and_reference() -> None:
    epochs = make_epochs(RUNS[:1], references=("final", "epoch3"))
    spec = gamma_band(epochs, color="budget").to_dict()
    assert {row[SERIES] for row in dataset_rows(spec)} == {"r1 · final", "r1 · epoch3"}
    assert all(color["sort"] == ["3", str(N_EPOCHS)] for color in encodings(spec, "color") if "field" in color)


def test_rsi_eb_gamma_stacks_three_panels_with_log_eb(epochs: pl.DataFrame) -> None:
    spec = rsi_eb_gamma(epochs.filter(pl.col("run_id") == "r1")).to_dict()
    assert len(spec["vconcat"]) == 3
    y_fields = [fields(panel, "y") for panel in spec["vconcat"]]
    # On a log axis the band's low is drawn clipped to the axis (rsi_min_drawn); the tooltip keeps rsi_min.
    assert y_fields == [{"rsi_min_drawn", "rsi_mean"}, {"eb_min_drawn", "eb_mean"}, {"gamma_min", "gamma_mean"}]
    log_panels = [
        any(encoding.get("scale", {}).get("type") == "log" for encoding in encodings(panel, "y"))
        for panel in spec["vconcat"]
    ]
    # RSI spans decades too (issue 12): log like EB, fitted to the data.
    assert log_panels == [True, True, False]


def test_lolr_log_scale_and_actual_lr(epochs: pl.DataFrame) -> None:
    spec = lolr(epochs, color="optimizer").to_dict()
    # The band is min–max over the epoch's steps, as in every figure (it was interquartile, issue 19).
    assert {"lolr_mean", "lolr_min_drawn", "step_lr"} <= fields(spec, "y") and fields(spec, "y2") == {"lolr_max"}
    assert all(encoding["scale"]["type"] == "log" for encoding in encodings(spec, "y") if "field" in encoding)
    marks = [node["mark"] for node in walk(spec) if isinstance(node.get("mark"), dict)]
    assert any(mark.get("strokeDash") == TAKEN_DASH for mark in marks)
    assert fields(spec, "color") == {COLOR_LEVEL}
    # A band whose low is 0 or less cannot sit on a log axis: it is drawn down to the axis's bottom.
    calculations = [node["calculate"] for node in walk(spec) if "calculate" in node]
    assert any("lolr_min" in c and "?" in c for c in calculations)


def test_distance_log_scale_without_empty_decades(epochs: pl.DataFrame) -> None:
    spec = distance(epochs, color="batch_size").to_dict()
    scales = y_scales(spec)
    assert "dist_mean" in fields(spec, "y")
    assert all(scale["type"] == "log" and scale["nice"] is False for scale in scales)
    low, high = scales[0]["domain"]
    drawn = [
        row[c] for row in dataset_rows(spec) for c in ("dist_mean", "dist_min", "dist_max") if row[c] and row[c] > 0
    ]
    # The axis ends near the data: within 25 % of the extreme values, not at the next power of ten.
    assert min(drawn) / 1.25 <= low < min(drawn) and max(drawn) < high <= max(drawn) * 1.25


def test_synthetic_grid_has_rsi_and_gamma_rows_per_objective(steps: pl.DataFrame) -> None:
    spiky = steps.with_columns(pl.when(pl.col("step") % 20 == 7).then(2800.0).otherwise(pl.col("rsi")).alias("rsi"))
    spec = synthetic(spiky).to_dict()
    alm, sm = (column["vconcat"] for column in spec["hconcat"])
    # The objectives named in words (issue 19: "objective: alm").
    assert [column[0]["title"]["text"] for column in (alm, sm)] == [
        "Asymmetric Linear Model (ALM)",
        "Sinusoidal Mixture (SM)",
    ]
    for column, objective, data in zip((alm, sm), ("alm", "sm"), spec["hconcat"]):
        rsi_panel, gamma_panel = column
        assert fields(rsi_panel, "y") == {"rsi"} and fields(gamma_panel, "y") == {"gamma"}
        rows = spec["datasets"][data["data"]["name"]]
        # Symmetric log (issue 12: SM's spikes up to 2,800 hid the negative values on a linear axis), linear within
        # the median magnitude around 0 of the steps drawn.
        (scale,) = {json_key(s) for s in y_scales(rsi_panel)}
        drawn = pl.DataFrame(rows).get_column("rsi")
        assert json.loads(scale) == {"type": "symlog", "constant": pytest.approx(drawn.abs().median())}
        assert {row["dataset"] for row in rows} == {objective}
        assert any(row["rsi"] < 0 for row in rows)
        # The last epoch before w* is left out (issue 19: SM's last steps read γ = 1 and RSI = 50).
        assert max(row["epoch"] for row in rows) == rows[0]["budget"] - 2
        assert all(scale == {"zero": False} for scale in y_scales(gamma_panel))
        assert all(any(encoding.get("datum") == 0 for encoding in encodings(panel, "y")) for panel in column)
    assert any("γ < 0 on" in line for line in spec["title"]["subtitle"])


def test_random_walk_analytic_curve_is_inverse_square_root(steps: pl.DataFrame) -> None:
    spec = random_walk(steps).to_dict()
    rows = dataset_rows(spec)
    analytic = {row["steps_to_reference"]: row["gamma"] for row in rows if row["source"] == ANALYTIC}
    assert set(analytic) == set(steps.get_column("steps_to_reference").to_list())
    for remaining, gamma in analytic.items():
        assert gamma == pytest.approx(remaining**-0.5)
    measured = [row for row in rows if row["source"] == MEASURED]
    assert measured and all(row["gamma"] > 0 for row in measured)
    assert all(
        encoding["scale"]["type"] == "log"
        for encoding in encodings(spec, "x") + encodings(spec, "y")
        if "field" in encoding
    )
    # The measured points are drawn over the analytic line (issue 19: it covered them), and the legend shows a point
    # for the points and a line for the line.
    layers = [mark_type(layer) for layer in spec["layer"]]
    assert layers.index("line") < layers.index("circle")
    assert [e["scale"]["domain"] for e in encodings(spec, "color") if "field" in e] == [[MEASURED]]
    assert [e["scale"]["domain"] for e in encodings(spec, "stroke") if "field" in e] == [[ANALYTIC]]
    # The negative γ of the test steps cannot be drawn on a log axis, and the figure says so.
    assert "not drawn" in str(spec["title"]["subtitle"])


def test_random_walk_handles_more_rows_than_altairs_default_limit() -> None:
    steps = make_steps(datasets=("random_walk",), total=6000)
    spec = random_walk(steps).to_dict()
    assert len(dataset_rows(spec)) > 5000


def claims_train(experiments: tuple[str, ...] = ("optimizers",)) -> pl.DataFrame:
    """Train tables of the claims' runs, labelled within their experiment by optimizer."""
    return make_train(experiments, [{**run, "label": f"optimizer={run['optimizer']}"} for run in RUNS])


def claim_cells(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [row for row in dataset_rows(spec) if "verdict" in row]


def test_claims_cells_show_value_and_verdict() -> None:
    spec = claims(make_claims(), claims_train()).to_dict()
    rows = claim_cells(spec)
    assert len(rows) == len(RUNS) * len(CLAIM_CELLS)
    cell = {(row["run"], row["property_text"]): row for row in rows}
    first = cell[("SGD", "γ > 0 on ≥ 95% of steps")]
    assert first["value"] == "99.0%" and first["verdict"] == HOLDS and first["text"] == "99.0%"
    assert cell[("Adam", "RSI / EB trend: |ρ| ≥ 0.7 or CV ≤ 0.5")]["verdict"] == FAILS
    assert cell[("SGD with momentum", "γ stable: CV of epoch means ≤ 0.5")]["text"] == "× 0.40"
    assert fields(spec, "color") == {"verdict"}
    assert fields(spec, "text") == {"text"}
    # The printed value carries its cell's tooltip: it covered the cell and blocked it (issue 19).
    texts = [node for node in walk(spec) if mark_type(node) == "text" and "tooltip" in node.get("encoding", {})]
    assert texts


def test_claims_rows_are_grouped_by_experiment_in_their_order_and_named_in_words() -> None:
    """The rows read "walk walk sgd lr=1 …", sorted alphabetically (issue 19)."""
    train = pl.concat([claims_train(("seeds",)), claims_train(("optimizers",))], how="diagonal_relaxed")
    spec = claims(make_claims(), train).to_dict()
    groups = [panel["title"]["text"] for panel in spec["vconcat"] if "title" in panel]
    assert groups == ["seeds", "optimizers"]
    first = [row["run"] for row in claim_cells(spec) if row["experiment"] == "optimizers"][:: len(CLAIM_CELLS)]
    assert first == ["SGD", "SGD with momentum", "Adam"]
    # A run of no experiment the figure names comes last, named by its factors.
    alone = claims(make_claims(), claims_train().filter(pl.col("run_id") != "r3")).to_dict()
    last = claim_cells(alone)[-1]
    assert last["experiment"] == "other runs" and last["run"] == "Adam, batch size 1024, seed 1"
    # A claims figure that names no experiments reads no train table (workflow_scripts/figure.py: an empty one).
    alone = claims(make_claims(), pl.DataFrame()).to_dict()
    assert {row["experiment"] for row in claim_cells(alone)} == {"all runs"}


def test_claims_headers_name_thresholds_colours_are_colour_blind_safe_and_nothing_is_cut() -> None:
    table = make_claims().with_columns(pl.lit(0.99).alias("min_frac_steps_gamma_positive"))
    spec = claims(table, claims_train()).to_dict()
    x = encodings(spec, "x")[0]
    assert x["sort"][0] == "γ > 0 on\n≥ 99% of steps"  # the threshold comes from the table
    assert all(y["axis"]["labelLimit"] == 0 for y in encodings(spec, "y") if "field" in y and y.get("axis"))
    (color,) = {json_key(c) for c in encodings(spec, "color") if "field" in c}
    # Blue and orange, not a red-green pair; only the verdicts that occur are in the legend.
    expected = {"domain": [HOLDS, FAILS], "range": [VERDICT_COLORS[HOLDS], VERDICT_COLORS[FAILS]]}
    assert json.loads(color)["scale"] == expected
    all_hold = make_claims().with_columns(pl.col("^holds_.*$").replace_strict({False: True}, default=True))
    (color,) = {json_key(c) for c in encodings(claims(all_hold, claims_train()).to_dict(), "color") if "field" in c}
    assert json.loads(color)["scale"]["domain"] == [HOLDS]
    mixed = make_claims().with_columns(
        pl.when(pl.col("run_id") == "r1").then(0.8).otherwise(0.5).alias("max_gamma_epoch_cv")
    )
    with pytest.raises(ValueError, match="different thresholds"):
        claims(mixed, claims_train())


def test_new_metrics_have_titles() -> None:
    assert metric_title("grad_corr").startswith("cos(G(t−1), G(t))")
    assert metric_title("perp_corr_lag20") == "cos(G(t−20), G(t)), components orthogonal to w − w*"
    assert metric_title("perp_corr_lag") == "perp_corr_lag"


def test_grad_correlation_loss_above_correlation_once_per_run() -> None:
    steps = make_run_steps(RUNS[:2], references=("final", "epoch3"))
    spec = grad_correlation(steps).to_dict()
    loss, correlation = spec["vconcat"]
    assert fields(loss, "y") == {"loss_mean"}
    # Fitted to the data, linear (issue 19: a log scale over 1.1–2.4 added nothing).
    losses = [row["loss_mean"] for row in dataset_rows(spec)]
    for scale in y_scales(loss):
        assert "type" not in scale and scale["nice"] is False
        assert scale["domain"][0] < min(losses) and max(losses) < scale["domain"][1]
    assert fields(correlation, "y") == {"mean_grad_corr_mean"}
    # μ = 1 sat on the top frame and vanished (issue 19): the axis has a margin beyond ±1.
    assert all(scale["domain"] == [-1.05, 1.05] for scale in y_scales(correlation))
    # Every epoch, the last one too: loss and μ(t) need no w* (issue 19: they stopped at epoch 18 of 20).
    (x_domain,) = {tuple(encoding["scale"]["domain"]) for encoding in encodings(spec, "x")}
    assert x_domain == (1, N_EPOCHS)
    assert any(encoding.get("datum") == 0 for encoding in encodings(correlation, "y"))
    assert fields(spec, "color") == {COLOR_LEVEL}
    rows = dataset_rows(spec)
    # The G-only columns repeat for every reference: one copy per run and epoch, the epoch's mean over its steps.
    assert {row["reference"] for row in rows} == {"final"}
    assert sorted((row["run_id"], row["epoch"]) for row in rows) == [
        (run["run_id"], epoch) for run in RUNS[:2] for epoch in range(N_EPOCHS)
    ]
    first = next(row for row in rows if row["run_id"] == "r1" and row["epoch"] == 0)
    expected = steps.filter((pl.col("run_id") == "r1") & (pl.col("epoch") == 0) & (pl.col("reference") == "final"))
    assert first["loss_mean"] == pytest.approx(expected.get_column("loss").mean())
    by_batch = grad_correlation(steps, color="batch_size").to_dict()
    assert "batch size" in by_batch["title"]["text"]


def test_grad_correlation_says_where_a_window_starts_late() -> None:
    """At batch 2000 an epoch is two steps: μ(t), a mean over h steps, starts in epoch 3, and the figure says why
    (issue 19)."""
    spec = grad_correlation(make_run_steps(RUNS[:1], steps=2), color="batch_size").to_dict()
    assert any("starts in epoch 3 at batch size 64" in line for line in spec["title"]["subtitle"])


def test_grad_correlation_names_the_late_starts_of_one_epoch_in_one_order() -> None:
    """Two batch sizes whose windows both start in epoch 3 are listed smaller first, whatever the rows' order."""
    steps = make_run_steps(RUNS[:2], steps=2)
    captions = {
        tuple(grad_correlation(rows, color="batch_size").to_dict()["title"]["subtitle"])
        for rows in (steps, steps.reverse(), steps.sample(fraction=1.0, shuffle=True, seed=5))
        for _ in range(5)
    }
    assert len(captions) == 1
    assert any("starts in epoch 3 at batch size 64, epoch 3 at batch size 128" in line for line in captions.pop())


def matrix_panels(spec: dict[str, Any]) -> list[list[dict[str, Any]]]:
    return [row["hconcat"] for row in spec["vconcat"]]


def labelled_matrices() -> pl.DataFrame:
    return make_matrices().with_columns(pl.format("optimizer={}", pl.col("optimizer")).alias("label"))


def test_correlation_matrices_default_first_middle_last_per_run() -> None:
    spec = correlation_matrices(labelled_matrices()).to_dict()
    # Runs named in words, epochs and steps counted from 1 (issue 19).
    assert [row["title"]["text"] for row in spec["vconcat"]] == ["SGD", "SGD with momentum"]
    for row, run in zip(matrix_panels(spec), RUNS[:2]):
        assert [panel["title"]["text"] for panel in row] == ["epoch 1", "epoch 3", "epoch 5"]
        for panel, epoch in zip(row, (0, 2, 4)):
            cells = spec["datasets"][panel["data"]["name"]]
            assert len(cells) == 25
            assert {(cell["run_id"], cell["epoch"]) for cell in cells} == {(run["run_id"], epoch)}
            first_off_diagonal = next(cell for cell in cells if (cell["i"], cell["j"]) == (0, 1))
            assert first_off_diagonal["corr"] == pytest.approx(-0.9)
            assert first_off_diagonal["step_j"] == epoch * STEPS_PER_EPOCH + 2
    colors = [encoding for encoding in encodings(spec, "color") if "field" in encoding]
    assert len(colors) == 6 and all(color == colors[0] for color in colors)
    assert colors[0]["field"] == "corr" and colors[0]["title"]
    assert colors[0]["scale"] == {"domain": [-1, 1], "scheme": "redblue", "reverse": True}
    assert spec["resolve"]["scale"]["color"] == "shared"
    assert all(text == {"field": "corr", "format": ".2f", "type": "quantitative"} for text in encodings(spec, "text"))
    assert {encoding["title"] for encoding in encodings(spec, "x")} == {"step j in window"}
    assert {encoding["title"] for encoding in encodings(spec, "y")} == {"step i in window"}
    tooltips = [tip for tips in encodings(spec, "tooltip") for tip in tips]
    assert {
        "field": "sign_flip",
        "format": ".1%",
        "title": "entries of opposite sign",
        "type": "quantitative",
    } in tooltips
    # The printed value carries its cell's tooltip: it covered the cell and blocked it (issue 19).
    assert all("tooltip" in node["encoding"] for node in walk(spec) if mark_type(node) == "text")


def test_correlation_matrices_replace_missing_epochs_by_the_nearest() -> None:
    spec = correlation_matrices(make_matrices(RUNS[:1]), epochs=[1, 4, 10]).to_dict()
    (row,) = matrix_panels(spec)
    # 1 lies between 0 and 2 (ties go to the earlier); 10 lies beyond the last, 4. The option counts from 0 as the
    # tables do; the figure counts from 1.
    assert [panel["title"]["text"] for panel in row] == ["epoch 1 (nearest to 2)", "epoch 5 (nearest to 11)"]
    assert [{cell["epoch"] for cell in spec["datasets"][panel["data"]["name"]]} for panel in row] == [{0}, {4}]
    with pytest.raises(ValueError, match="epochs is empty"):
        correlation_matrices(make_matrices(), epochs=[])


def test_correlation_matrices_tell_runs_sharing_a_label_apart_by_their_experiment() -> None:
    """Labels are unique within an experiment; runs of two experiments may share one."""
    matrices = labelled_matrices().with_columns(
        pl.lit("optimizer=sgd").alias("label"),
        pl.when(pl.col("run_id") == "r1")
        .then(pl.lit("optimizers"))
        .otherwise(pl.lit("batch_sizes"))
        .alias("experiment"),
    )
    spec = correlation_matrices(matrices).to_dict()
    assert [row["title"]["text"] for row in spec["vconcat"]] == ["SGD (batch sizes)", "SGD (optimizers)"]


def test_sign_flip_band_in_percent_once_per_run() -> None:
    steps = make_run_steps(RUNS[:2], references=("final", "epoch3"))
    spec = sign_flip(steps, color="optimizer").to_dict()
    # The band is the epoch's min–max, as in every figure (it was 5–95 %, issue 19).
    assert fields(spec, "y") == {"sign_flip_min", "sign_flip_mean"}
    assert fields(spec, "y2") == {"sign_flip_max"}
    assert fields(spec, "color") == {COLOR_LEVEL}
    assert any(encoding.get("datum") == RANDOM_SIGN_FLIPS for encoding in encodings(spec, "y"))
    assert {encoding["axis"]["title"] for encoding in encodings(spec, "y") if "field" in encoding} == {
        "gradient entries flipping sign (%)"
    }
    rows = dataset_rows(spec)
    # Every epoch, the last one too: sign flips need no w*.
    assert len(rows) == 2 * N_EPOCHS and {row["reference"] for row in rows} == {"final"}
    first = next(row for row in rows if row["run_id"] == "r1" and row["epoch"] == 0)
    expected = steps.filter((pl.col("run_id") == "r1") & (pl.col("epoch") == 0) & (pl.col("reference") == "final"))
    assert first["sign_flip_mean"] == pytest.approx(100 * expected.get_column("sign_flip").mean())
    assert first["sign_flip_max"] == pytest.approx(100 * expected.get_column("sign_flip").max())


def test_gamma_correlation_two_series_per_run_panel() -> None:
    steps = make_run_steps(RUNS[:2], references=("final", "epoch3"))
    spec = gamma_correlation(steps).to_dict()
    assert spec["columns"] == 2 and len(spec["concat"]) == 2
    rows = [row for rows in spec["datasets"].values() for row in rows if "quantity" in row]
    assert [panel["title"] for panel in spec["concat"]] == sorted({row["run"] for row in rows})
    assert {row["quantity"] for row in rows} == {GAMMA_SERIES, CORRELATION_SERIES}
    assert {row["reference"] for row in rows} == {"final"}
    # γ leaves the last epoch before w* out; the correlation, which needs no w*, keeps it.
    assert len(rows) == 2 * (N_EPOCHS - 1) + 2 * N_EPOCHS
    correlation = {(row["run_id"], row["epoch"]): row["value"] for row in rows if row["quantity"] == CORRELATION_SERIES}
    # The per-epoch mean of grad_corr, not that of the window mean mean_grad_corr.
    first = steps.filter((pl.col("run_id") == "r1") & (pl.col("epoch") == 0) & (pl.col("reference") == "final"))
    assert correlation[("r1", 0)] == pytest.approx(first.get_column("grad_corr").mean())
    (color,) = {json_key(encoding) for encoding in encodings(spec, "color") if "field" in encoding}
    assert json.loads(color)["scale"]["domain"] == [GAMMA_SERIES, CORRELATION_SERIES]
    assert all(scale == {"domain": [-1.05, 1.05], "nice": False} for scale in y_scales(spec))
    assert any(encoding.get("datum") == 0 for encoding in encodings(spec, "y"))
    assert "not the window mean" in str(spec["title"]["subtitle"])


def json_key(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def alternating_steps(epochs: int = 40) -> pl.DataFrame:
    """A full-batch run (one step per epoch) whose γ alternates from one step to the next."""
    return pl.DataFrame(
        {
            "run_id": "r1",
            "label": "full batch",
            "reference": "final",
            "budget": epochs,
            "epoch": range(epochs),
            "step": range(epochs),
            "gamma": [0.9 if epoch % 2 == 0 else -0.1 for epoch in range(epochs)],
            "grad_corr": -0.99,
        }
    )


def test_gamma_correlation_alternation_is_dots_inside_a_band_over_both_tracks() -> None:
    """Issue 12: a value alternating step to step drew as a solid block; issue 19: the moving average drawn instead
    ran between the two tracks, where no value is, and moved the transition early."""
    spec = gamma_correlation(alternating_steps()).to_dict()
    marks = {mark_type(node) for node in walk(spec) if "mark" in node}
    assert {"circle", "area", "rect"} <= marks and "line" not in marks
    (dots,) = [node for node in walk(spec) if mark_type(node) == "circle"]
    assert dots["encoding"]["y"]["field"] == "value"
    (band,) = [node for node in walk(spec) if mark_type(node) == "area"]
    assert band["encoding"]["y"]["field"] == "low" and band["encoding"]["y2"]["field"] == "high"
    rows = [row for rows in spec["datasets"].values() for row in rows if row.get("quantity") == GAMMA_SERIES]
    # Each epoch's band spans it and its neighbours: both tracks, and nothing between them that is not a value.
    assert all((row["low"], row["high"]) == (pytest.approx(-0.1), pytest.approx(0.9)) for row in rows)
    # A change shows in the band the epoch it happens, not five epochs early.
    step = alternating_steps().with_columns(pl.when(pl.col("epoch") < 20).then(0.5).otherwise(-0.5).alias("gamma"))
    rows = [
        row
        for rows in gamma_correlation(step).to_dict()["datasets"].values()
        for row in rows
        if row.get("quantity") == GAMMA_SERIES
    ]
    low = {row["epoch"]: row["low"] for row in rows}
    assert low[18] == 0.5 and low[19] == -0.5
    # The final epochs before w* (5 %: two of 40) are shaded, and the subtitle says why.
    (shade,) = [rows for rows in spec["datasets"].values() if rows and "from" in rows[0]]
    assert shade[0]["from"] == 38.5 and shade[0]["to"] == 40.5
    assert "how w* was picked" in str(spec["title"]["subtitle"])
    keys = [node for node in walk(spec) if "band" in fields(node, "fill")]
    assert keys, "the legend says what the band is"


def test_gamma_correlation_facet_titles_in_words() -> None:
    steps = make_run_steps(RUNS[:2]).with_columns(
        pl.when(pl.col("run_id") == "r1").then(pl.lit("peak_lr=0.05")).otherwise(pl.lit("peak_lr=0.5")).alias("label")
    )
    spec = gamma_correlation(steps).to_dict()
    # A constant learning rate is no peak (issue 19).
    assert [panel["title"] for panel in spec["concat"]] == ["learning rate 0.05", "learning rate 0.5"]


def test_gamma_correlation_single_run_is_one_panel_naming_the_run() -> None:
    spec = gamma_correlation(make_run_steps(RUNS[1:2])).to_dict()
    assert "concat" not in spec and "layer" in spec
    subtitle = spec["title"]["subtitle"]
    assert any(line.startswith("run: MLP of width 64 on mnist, SGD with momentum") for line in subtitle)


WARMUP_RUNS = [
    {"run_id": run_id, "label": f"schedule={run_id}", "optimizer": "sgd", "batch_size": 5000, "seed": 0}
    for run_id in SWITCHES
]


def warmup_panels(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [panel for row in spec["vconcat"] for panel in row["hconcat"]]


def test_warmup_loss_lr_mu_and_accuracy_with_switch_points_from_the_data() -> None:
    spec = warmup(make_warmup_steps(), make_train(("gawu",), WARMUP_RUNS)).to_dict()
    loss, lr, mu, accuracy_panel = warmup_panels(spec)
    assert fields(loss, "y") == {"loss"} and fields(lr, "y") == {"lr"}
    # μ(t), what triggered GAWU's switch, and the accuracy the switch led to (issue 12).
    assert fields(mu, "y") == {"mean_grad_corr"}
    assert fields(accuracy_panel, "y") == {"percent"}
    assert any(encoding.get("datum") == 0 for encoding in encodings(mu, "y"))
    # The learning rate spans decades: log; the loss does not: linear, fitted to the data.
    assert all(scale["type"] == "log" and scale["nice"] is False for scale in y_scales(lr))
    assert all("type" not in scale and scale["nice"] is False for scale in y_scales(loss))
    # LR ticks in powers of ten below 1e-3, not "0.000001".
    assert all("'.0e'" in encoding["axis"]["labelExpr"] for encoding in encodings(lr, "y") if "field" in encoding)
    steps_rows = spec["datasets"][lr["data"]["name"]]
    assert {row["reference"] for row in steps_rows} == {"final"}
    assert len(steps_rows) == 60 * len(SWITCHES)
    switch_layers = [layer for layer in lr["layer"] if "data" in layer]
    assert {layer["mark"]["type"] for layer in switch_layers} == {"rule", "point"}
    for layer in switch_layers:
        switches = {row["run_id"]: row["step"] for row in spec["datasets"][layer["data"]["name"]]}
        assert switches == {run_id: step for run_id, step in SWITCHES.items() if step is not None}
    # Runs are named by their switch point as the data show it, not by their warmup_epochs.
    # Epochs and steps count from 1, and the switch sits where the epoch axis puts it (issue 19: `gawu` mixed 0- and
    # 1-based epochs).
    names = {row["run_id"]: row["run"] for row in steps_rows}
    assert names["gawu"] == "GAWU: switch after 2.2 epochs (step 23)"
    assert names["wu5"] == "exponential warm-up, cosine decay: switch after 1 epoch (step 11)"
    assert names["const"].endswith("no warm-up")
    assert not any("warmup_epochs" in name or "25" in name for name in names.values())
    (color,) = {json_key(encoding["scale"]) for encoding in encodings(spec, "color") if "field" in encoding}
    assert "GAWU: switch after 2.2 epochs" in color
    # The accuracy after epoch n is drawn at n, on the axis the steps share.
    accuracy_rows = [row for row in dataset_rows(spec) if "percent" in row]
    assert {row[EPOCH] for row in accuracy_rows} == set(range(1, N_EPOCHS + 1))
    assert {e["field"] for e in encodings(spec, "x") if "field" in e} == {"at", EPOCH}


@pytest.mark.parametrize(
    ("name", "table", "kwargs"),
    [
        ("grad_correlation", "run_steps", {}),
        ("correlation_matrices", "matrices", {}),
        ("sign_flip", "run_steps", {}),
        ("gamma_correlation", "run_steps", {}),
        ("gamma_band", "epochs", {"color": "optimizer"}),
        ("rsi_eb_gamma", "epochs", {}),
        ("lolr", "epochs", {"color": "optimizer"}),
        ("distance", "epochs", {"color": "optimizer"}),
        ("synthetic", "steps", {}),
        ("random_walk", "steps", {}),
        ("claims", "claims", {"train": make_train()}),
        ("accuracy", "train", {}),
        ("level_sets", "landscape", {"train": landscape_train()}),
        ("mu_lr", "warmup", {}),
    ],
)
def test_empty_table_raises(name: str, table: str, kwargs: dict[str, Any]) -> None:
    full = {
        "epochs": make_epochs(),
        "steps": make_steps(),
        "claims": make_claims(),
        "train": make_train(),
        "matrices": make_matrices(),
        "warmup": make_warmup_steps(),
        "landscape": make_landscape(),
        "run_steps": make_run_steps(),
    }[table]
    also = [kwargs.pop(kind) for kind in plot(name).also]
    kind = {"warmup": "steps", "run_steps": "steps"}.get(table, table)
    with pytest.raises(ValueError, match=f"{kind} table is empty"):
        plot(name).draw(full.clear(), *also, **kwargs)


def test_warmup_names_an_empty_table() -> None:
    with pytest.raises(ValueError, match="steps table is empty"):
        warmup(make_warmup_steps().clear(), make_train())
    with pytest.raises(ValueError, match="train table is empty"):
        warmup(make_warmup_steps(), make_train().clear())


def test_missing_column_is_named(epochs: pl.DataFrame) -> None:
    with pytest.raises(ValueError, match="gamma_max"):
        gamma_band(epochs.drop("gamma_max"), color="optimizer")


@pytest.mark.parametrize(
    ("name", "table", "column"),
    [
        ("grad_correlation", "run_steps", "mean_grad_corr"),
        ("grad_correlation", "run_steps", "budget"),
        ("correlation_matrices", "matrices", "sign_flip"),
        ("correlation_matrices", "matrices", "start_step"),
        ("sign_flip", "run_steps", "sign_flip"),
        ("gamma_correlation", "run_steps", "grad_corr"),
        ("gamma_correlation", "run_steps", "gamma"),
        ("mu_lr", "steps", "mean_grad_corr"),
        ("sign_flip", "run_steps", "step"),
        ("accuracy", "train", "val_accuracy"),
        ("level_sets", "landscape", "off_plane"),
        ("lolr", "epochs", "step_scale"),
    ],
)
def test_gradient_correlation_figures_name_a_missing_column(name: str, table: str, column: str) -> None:
    full = {
        "epochs": make_epochs(),
        "matrices": make_matrices(),
        "steps": make_warmup_steps(),
        "train": make_train(),
        "landscape": make_landscape(),
        "run_steps": make_run_steps(),
    }[table]
    kwargs = {"color": "optimizer"} if name == "lolr" else {}
    kind = "steps" if table == "run_steps" else table
    with pytest.raises(ValueError, match=f"the {kind} table lacks the columns \\['{column}'\\]"):
        plot(name).draw(full.drop(column), *([landscape_train()] if name == "level_sets" else []), **kwargs)


def test_warmup_names_a_missing_column() -> None:
    with pytest.raises(ValueError, match="the steps table lacks the columns \\['mean_grad_corr'\\]"):
        warmup(make_warmup_steps().drop("mean_grad_corr"), make_train())
    with pytest.raises(ValueError, match="the train table lacks the columns \\['val_accuracy'\\]"):
        warmup(make_warmup_steps(), make_train().drop("val_accuracy"))


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
        lambda: grad_correlation(make_run_steps()),
        lambda: correlation_matrices(make_matrices(), epochs=[1, 4]),
        lambda: sign_flip(make_run_steps()),
        lambda: gamma_correlation(make_run_steps()),
        lambda: warmup(make_warmup_steps(), make_train(runs=WARMUP_RUNS)),
        lambda: level_sets(make_landscape(), landscape_train()),
        lambda: mu_lr(make_warmup_steps()),
        lambda: accuracy(make_train()),
    ],
    ids=[
        "grad_correlation",
        "correlation_matrices",
        "sign_flip",
        "gamma_correlation",
        "warmup",
        "level_sets",
        "mu_lr",
        "accuracy",
    ],
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

    monkeypatch.setattr(vl_convert, "vega_to_svg", broken)
    with pytest.raises(RuntimeError, match="renderer crashed"):
        save(gamma_band(epochs, color="optimizer"), tmp_path / "fig.html", tmp_path / "fig.svg")
    assert list(tmp_path.iterdir()) == []


def test_failing_write_keeps_previous_figure(
    tmp_path: Path, epochs: pl.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
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
# Issue 12: what a reviewer objected to, one test per encoding behind it
# ---------------------------------------------------------------------------------------------------------


def seeded_epochs() -> pl.DataFrame:
    """Two optimizers with three seeds each; seed s scales every metric by 1 + s / 10."""
    runs = [
        {
            "run_id": f"{optimizer}-s{seed}",
            "label": f"optimizer={optimizer} seed={seed}",
            "optimizer": optimizer,
            "batch_size": 64,
            "seed": seed,
            "scale": 1 + seed / 10,
        }
        for optimizer in ("sgd", "adam")
        for seed in range(3)
    ]
    return make_epochs(runs)


@functools.cache
def every_figure() -> dict[str, Figure]:
    epochs = make_epochs()
    return {
        "gamma_band": gamma_band(epochs, color="optimizer"),
        "gamma_band seeds": gamma_band(seeded_epochs(), color="optimizer"),
        "rsi_eb_gamma": rsi_eb_gamma(epochs.filter(pl.col("run_id") == "r1")),
        "lolr": lolr(epochs, color="batch_size"),
        "distance": distance(epochs, color="optimizer"),
        "synthetic": synthetic(make_steps()),
        "random_walk": random_walk(make_steps()),
        "grad_correlation": grad_correlation(make_run_steps()),
        "sign_flip": sign_flip(make_run_steps()),
        "gamma_correlation": gamma_correlation(make_run_steps()),
        "warmup": warmup(make_warmup_steps(), make_train(("gawu",), WARMUP_RUNS)),
        "accuracy": accuracy(make_train()),
        "level_sets": level_sets(make_landscape(), landscape_train()),
        "mu_lr": mu_lr(make_warmup_steps()),
        "full_batch_geometry": full_batch_geometry(make_point_table(fixed=False)),
        "fixed_batch_spread": fixed_batch_spread(make_point_table(fixed=True)),
        "zigzag_onset": zigzag_onset(make_zigzag()[0], make_train()),
        "zigzag_phases": zigzag_phases(make_zigzag()[1], make_zigzag()[0], make_train()),
    }


def mark_type(node: dict[str, Any]) -> str | None:
    mark = node.get("mark")
    return mark.get("type") if isinstance(mark, dict) else mark


FIGURES = [
    "gamma_band",
    "gamma_band seeds",
    "rsi_eb_gamma",
    "lolr",
    "distance",
    "synthetic",
    "random_walk",
    "grad_correlation",
    "sign_flip",
    "warmup",
    "accuracy",
    "level_sets",
    "mu_lr",
    "full_batch_geometry",
    "fixed_batch_spread",
    "zigzag_onset",
]


def test_every_plot_with_lines_is_in_the_tooltip_test() -> None:
    assert set(every_figure()) == set(FIGURES) | {"gamma_correlation", "zigzag_phases"}
    # gamma_correlation draws dots with a band, no line (issue 19): its dots carry the tooltip themselves; so do
    # zigzag_phases's bars.
    without_lines = {"claims", "correlation_matrices", "gamma_correlation", "zigzag_phases"}
    assert {name.split()[0] for name in FIGURES} == set(plots()) - without_lines


@pytest.mark.parametrize("name", FIGURES)
def test_line_tooltips_name_the_hovered_datum(name: str) -> None:
    """A line mark binds the tooltip of its first datum: every line carries none, and a layer of points beside it
    (shown only where the pointer is nearest) carries each datum's."""
    spec = every_figure()[name].to_dict()
    lines = [node for node in walk(spec) if mark_type(node) == "line"]
    assert lines, name
    assert all("tooltip" not in node.get("encoding", {}) for node in lines), name
    # Altair lifts a view's selection to the top of the spec, naming the views it belongs to.
    params = [param for node in walk(spec) for param in node.get("params", []) if "select" in param]
    by_view = {view: param for param in params for view in param.get("views", [])}
    for node in walk(spec):
        if not any(mark_type(layer) == "line" for layer in node.get("layer", [])):
            continue
        marks = [m for m in walk(node) if mark_type(m) in ("point", "circle") and "tooltip" in m.get("encoding", {})]
        assert marks, f"{name}: a layer with a line has no points carrying the tooltip"
        # Visible points (the random walk's measurements, the switch points) are each their own datum.
        for layer in (m for m in marks if "opacity" in m["encoding"] and "condition" in m["encoding"]["opacity"]):
            param = by_view[layer["name"]]
            assert param["select"]["nearest"] is True and param["select"]["on"] == "pointerover"
            opacity = layer["encoding"]["opacity"]
            (shown,) = opacity["condition"] if isinstance(opacity["condition"], list) else [opacity["condition"]]
            assert shown == {"param": param["name"], "value": 1, "empty": False} and opacity["value"] == 0
    names = [param["name"] for param in params]
    assert len(names) == len(set(names)), f"{name}: one hover selection shared by several views"


@pytest.mark.parametrize("name", ["gamma_band", "lolr", "distance", "grad_correlation", "sign_flip", "accuracy"])
def test_epoch_axes_have_whole_ticks_and_end_at_the_data(name: str) -> None:
    """Short runs got ticks at 0.5; "280" and "300" collided past the last epoch."""
    spec = every_figure()[name].to_dict()
    # Epochs count from 1 on every figure (issue 19): the axis is the epoch number, or a step's place among them.
    axes = [enc for enc in encodings(spec, "x") if enc.get("field") in (EPOCH, "at")]
    assert axes and not [enc for enc in encodings(spec, "x") if enc.get("field") in ("epoch", "after")], name
    for x in axes:
        assert x["axis"]["format"] == "d" and x["axis"]["tickMinStep"] == 1
        assert x["axis"]["labelOverlap"] is True and x["scale"]["nice"] is False


def test_legends_do_not_truncate_labels() -> None:
    for name, chart in every_figure().items():
        assert chart.to_dict()["config"]["legend"]["labelLimit"] == 0, name


def test_labels_read_in_words() -> None:
    assert run_name("peak_lr=0.05") == "peak learning rate 0.05"
    # A constant learning rate is no peak (issue 19).
    assert run_name("peak_lr=0.05", "constant") == "learning rate 0.05"
    # Factor values in words, as in every legend (issue 19: lower-case `mlp`, `resnet1d`).
    assert run_name("model=resnet1d width=32") == "ResNet-1D, width 32"
    assert run_name("schedule=gawu warmup_epochs=25") == "GAWU, warm-up epochs 25"
    assert run_name("optimizer=momentum seed=2") == "SGD with momentum, seed 2"
    # A description without factor=value pairs alone is kept as it is.
    assert run_name("mnist1d mlp64 sgd lr=0.05 bs=64 seed=0") == "mnist1d mlp64 sgd lr=0.05 bs=64 seed=0"


def width_runs() -> list[dict[str, Any]]:
    return [
        {
            "run_id": "m32",
            "label": "model=mlp width=32",
            "optimizer": "momentum",
            "batch_size": 64,
            "seed": 0,
            "width": 32,
        },
        {
            "run_id": "r32",
            "label": "model=resnet1d width=32",
            "optimizer": "momentum",
            "batch_size": 64,
            "seed": 0,
            "width": 32,
            "model": "resnet1d",
        },
        {
            "run_id": "m64",
            "label": "model=mlp width=64",
            "optimizer": "momentum",
            "batch_size": 64,
            "seed": 0,
            "width": 64,
        },
    ]


def test_width_says_what_it_counts() -> None:
    epochs = make_epochs(width_runs())
    note = "width: hidden units of MLP, channels of ResNet-1D"
    for chart in (
        gamma_band(epochs, color="label"),
        lolr(epochs, color="label"),
        rsi_eb_gamma(epochs, panels=["rsi", "eb"]),
    ):
        assert note in chart.to_dict()["title"]["subtitle"]
    faceted = gamma_band(epochs, color="model", facet="width").to_dict()
    assert [panel["title"]["text"] for panel in panels_of(faceted)] == ["width 32", "width 64"]
    assert faceted["title"]["subtitle"].count(note) == 1
    # One width, no label naming one: nothing to explain.
    assert not any(
        "width" in line for line in gamma_band(make_epochs(), color="optimizer").to_dict()["title"]["subtitle"]
    )


def test_gamma_by_budget_says_its_budgets_are_reference_points_of_one_run() -> None:
    spec = gamma_band(make_epochs(RUNS[:1], references=("final", "epoch3")), color="budget").to_dict()
    assert any("reference points of one run" in line for line in spec["title"]["subtitle"])
    two_runs = gamma_band(make_epochs(RUNS[:2], references=("final", "epoch3")), color="budget").to_dict()
    assert not any("one run" in line for line in two_runs["title"]["subtitle"])


def test_lolr_compares_with_the_step_taken_and_keeps_it_in_view(epochs: pl.DataFrame) -> None:
    """Under momentum 0.9 the step to compare with η* is lr / (1 − β) = 10 lr; the dashed line sat on the axis's
    edge."""
    spec = lolr(epochs, color="optimizer").to_dict()
    rows = dataset_rows(spec)
    for row in rows:
        scale = STEP_SCALES[row["optimizer"]]
        assert row["step_lr"] == (None if scale is None else pytest.approx(row["lr_mean"] * scale))
    (domain,) = {tuple(scale["domain"]) for scale in y_scales(spec)}
    taken = [row["step_lr"] for row in rows if row["step_lr"] is not None]
    # Inside the axis, not on its edge.
    assert domain[0] < min(taken) and max(taken) < domain[1]
    keys = [encoding for encoding in encodings(spec, "stroke") if "field" in encoding]
    assert keys[0]["scale"]["domain"] == [TAKEN]
    adam = next(row["run"] for row in rows if row["optimizer"] == "adam")
    assert any(adam in line and "no dashed line" in line for line in spec["title"]["subtitle"])


def test_lolr_draws_a_step_every_run_takes_once() -> None:
    """`lolr_by_architecture` drew four identical "step taken" lines at 0.1: only the last colour showed."""
    same = make_epochs(RUNS[:2]).with_columns(pl.lit(0.1).alias("lr_mean"), pl.lit(1.0).alias("step_scale"))
    spec = lolr(same, color="optimizer").to_dict()
    taken = [node for node in walk(spec) if "step_lr" in fields(node, "y") and mark_type(node) == "line"]
    assert taken and all("color" not in node["encoding"] and node["mark"]["color"] for node in taken)
    keys = [encoding for encoding in encodings(spec, "stroke") if "field" in encoding]
    assert keys[0]["scale"]["domain"] == [TAKEN_BY_ALL]
    differing = lolr(make_epochs(RUNS[:2]), color="optimizer").to_dict()
    taken = [node for node in walk(differing) if "step_lr" in fields(node, "y") and mark_type(node) == "line"]
    assert all(node["encoding"]["color"]["field"] == COLOR_LEVEL for node in taken)


def test_rsi_is_on_a_log_scale_fitted_to_its_line() -> None:
    epochs = make_epochs(RUNS[:1]).with_columns(pl.lit(1e-9).alias("rsi_min"))
    spec = rsi_eb_gamma(epochs).to_dict()
    rsi_panel = spec["vconcat"][0]
    (domain,) = {tuple(scale["domain"]) for scale in y_scales(rsi_panel)}
    means = [row["rsi_mean"] for row in dataset_rows(spec)]
    # A band reaching 1e-9 does not stretch the axis: it ends a quarter below the line's lowest value.
    assert domain[0] == pytest.approx(min(means) / 4 / 1.2)
    assert any("runs to the panel's bottom edge" in line for line in spec["title"]["subtitle"])


def test_rsi_eb_by_factor_draws_the_chosen_panels() -> None:
    spec = rsi_eb_gamma(make_epochs(), color="batch_size", panels=["rsi", "eb"]).to_dict()
    # Three runs' bands would overlap: a row of panels per batch size (issue 19: overlapping bands were one smear).
    assert [[fields(panel, "y") for panel in row["hconcat"]] for row in spec["vconcat"]] == [
        [{"rsi_min_drawn", "rsi_mean"}, {"eb_min_drawn", "eb_mean"}]
    ] * 3
    assert fields(spec, "color") == {COLOR_LEVEL}
    assert spec["title"]["text"] == "RSI and EB along the optimization path, by batch size"


def test_seeds_are_runs_dashed_apart_in_the_colour_of_their_level() -> None:
    """The band over two seeds' epoch means was a hairline that hid SGD's negative steps (issue 19): each seed is a
    run, with its own line and its band over the epoch's steps."""
    epochs = seeded_epochs()
    for chart in (
        gamma_band(epochs, color="optimizer"),
        distance(epochs, color="optimizer"),
        rsi_eb_gamma(epochs, color="optimizer", panels=["rsi", "eb"]),
    ):
        spec = chart.to_dict()
        rows = dataset_rows(spec)
        assert {row[SERIES] for row in rows} == {f"{run} · final" for run in epochs.get_column("run_id").unique()}
        assert {row[DASH_LEVEL] for row in rows} == {"0", "1", "2"}
        (dash,) = {json_key(e) for e in encodings(spec, "strokeDash") if "field" in e}
        assert json.loads(dash)["scale"]["domain"] == ["0", "1", "2"] and json.loads(dash)["title"] == "seed"
        (color,) = {json_key(e["scale"]) for e in encodings(spec, "color") if "field" in e}
        assert json.loads(color)["domain"] == ["SGD", "Adam"]
        assert not any("seed" in str(field) for field in fields(spec, "y2"))
    spec = gamma_band(epochs, color="optimizer").to_dict()
    assert fields(spec, "y2") == {"gamma_max"}
    # Six bands: a panel per optimizer, its three seeds in colour, the other's lines in grey.
    assert [panel["title"]["text"] for panel in panels_of(spec)] == ["SGD", "Adam"]
    marks = [node["mark"] for node in walk(spec) if isinstance(node.get("mark"), dict)]
    grey = [mark for mark in marks if mark.get("color") == CONTEXT_COLOR]
    assert len(grey) == 2


def test_scales_fitted_to_the_data_have_no_empty_decades() -> None:
    steps = make_steps(datasets=("random_walk",), total=300)
    spec = random_walk(steps).to_dict()
    for channel, column in (("x", "steps_to_reference"), ("y", "gamma")):
        values = [row[column] for row in dataset_rows(spec) if row[column] and row[column] > 0]
        for encoding in encodings(spec, channel):
            low, high = encoding["scale"]["domain"]
            assert encoding["scale"]["nice"] is False
            assert min(values) / 1.1 <= low <= min(values) and max(values) <= high <= max(values) * 1.1


def test_sign_flip_has_no_band_when_an_epoch_is_one_step() -> None:
    """The subtitle promised a band that cannot exist for one-step epochs."""
    full_batch = sign_flip(make_run_steps(RUNS[:2], steps=1)).to_dict()
    assert not [node for node in walk(full_batch) if mark_type(node) == "area"]
    assert "min–max" not in str(full_batch["title"]["subtitle"]) and "one step per epoch" in str(
        full_batch["title"]["subtitle"]
    )
    minibatch = sign_flip(make_run_steps(RUNS[:2])).to_dict()
    assert [node for node in walk(minibatch) if mark_type(node) == "area"]
    assert "min–max" in str(minibatch["title"]["subtitle"])


def test_sign_flip_matrices_show_the_share_per_cell() -> None:
    """The second paper's Figure 8: each cell the % of entries of opposite sign."""
    spec = correlation_matrices(make_matrices(), cell="sign_flip").to_dict()
    colors = [encoding for encoding in encodings(spec, "color") if "field" in encoding]
    assert {color["field"] for color in colors} == {"flip_percent"}
    assert colors[0]["scale"] == {"domain": [0, 100], "scheme": "purples"}
    texts = encodings(spec, "text")
    assert all(text == {"field": "flip_percent", "format": ".0f", "type": "quantitative"} for text in texts)
    cells = [row for row in dataset_rows(spec) if (row["i"], row["j"]) == (0, 1)]
    assert all(row["flip_percent"] == pytest.approx(90.0) for row in cells)
    assert "opposite sign" in spec["title"]["text"]


def test_accuracy_one_row_per_experiment_validation_and_training() -> None:
    spec = accuracy(make_train()).to_dict()
    # Experiments in words (issue 19: "experiment batch_sizes"), each a row: validation, training.
    assert [row["title"]["text"] for row in spec["vconcat"]] == ["optimizers", "batch sizes"]
    assert spec["resolve"]["scale"]["color"] == "independent"
    rows = dataset_rows(spec)
    assert {row["split"] for row in rows} == {"training", "validation"}
    first = next(row for row in rows if row["run_id"] == "r1" and row["split"] == "validation" and row["epoch"] == 0)
    assert first[EPOCH] == 1 and first["percent"] == pytest.approx(10.0)
    # One axis for every panel (issue 19: independent ranges), coloured by what each experiment varies.
    assert len({json_key(scale) for scale in y_scales(spec)}) == 1
    optimizers = {row[COLOR_LEVEL] for row in rows if row["experiment"] == "optimizers"}
    assert optimizers == {"SGD", "SGD with momentum", "Adam"}
    with pytest.raises(ValueError, match="not classifiers"):
        accuracy(make_train().with_columns(pl.lit(None, dtype=pl.Float64).alias("val_accuracy")))


def test_accuracy_seeds_are_runs() -> None:
    """Runs that differ only in their seed were averaged into a band; they are runs, and where only the seed differs
    it is their colour (docs/figures.md, "Seeds")."""
    runs = [
        {
            "run_id": f"s{seed}",
            "label": f"optimizer=sgd seed={seed}",
            "optimizer": "sgd",
            "batch_size": 64,
            "seed": seed,
        }
        for seed in range(3)
    ]
    spec = accuracy(make_train(("seeds",), runs)).to_dict()
    rows = dataset_rows(spec)
    assert {row["run"] for row in rows} == {"SGD, seed 0", "SGD, seed 1", "SGD, seed 2"}
    assert {row[COLOR_LEVEL] for row in rows} == {"0", "1", "2"}
    assert not [node for node in walk(spec) if mark_type(node) == "area"]
    with_optimizers = make_train(("optimizers",), [*runs, {**runs[0], "run_id": "a0", "optimizer": "adam"}])
    spec = accuracy(with_optimizers).to_dict()
    assert fields(spec, "strokeDash") == {DASH_LEVEL} and fields(spec, "color") == {COLOR_LEVEL}


def test_level_sets_draw_the_grid_in_bands_and_the_path_on_top() -> None:
    landscape = make_landscape()
    spec = level_sets(landscape, landscape_train()).to_dict()
    # One panel above the other: side by side they were 1032 px wide (issue 19).
    assert len(spec["vconcat"]) == 2 and spec["resolve"]["scale"]["color"] == "independent"
    for panel, dataset in zip(spec["vconcat"], ("Asymmetric Linear Model (ALM)", "Sinusoidal Mixture (SM)")):
        heat, line, at_w, _, ends = panel["layer"]
        assert mark_type(heat) == "rect" and heat["encoding"]["color"]["field"] == "loss"
        # Bands of equal share of the grid, each boundary a level line, printed with one precision (issue 19: 0.6668
        # beside 0.67).
        scale = heat["encoding"]["color"]["scale"]
        assert scale["type"] == "threshold" and len(scale["domain"]) == 9
        labels = [format(bound, heat["encoding"]["color"]["legend"]["format"].lstrip(",")) for bound in scale["domain"]]
        assert len({len(label.split(".")[-1]) for label in labels}) == 1
        cells = spec["datasets"][heat["data"]["name"]]
        assert len(cells) == 25 and all(cell["a2"] > cell["a"] and cell["b2"] > cell["b"] for cell in cells)
        path = spec["datasets"][line["data"]["name"]]
        assert [row["step"] for row in path] == list(range(9))
        assert line["encoding"]["order"]["field"] == "step"
        # Each point of the path in the colour of the objective at w_t itself: the plane is not the path's.
        assert mark_type(at_w) == "circle" and at_w["encoding"]["color"]["field"] == "loss"
        assert {row["point"] for row in spec["datasets"][ends["data"]["name"]]} == {"start w0", "end w*"}
        assert panel["title"]["text"] == dataset
        assert "80%" in heat["encoding"]["x"]["title"]
        # Axes to scale (issue 19: about 5× apart on SM): a unit of a and of b are as long on the screen.
        a_span = operator.sub(*reversed(heat["encoding"]["x"]["scale"]["domain"]))
        b_span = operator.sub(*reversed(heat["encoding"]["y"]["scale"]["domain"]))
        assert panel["width"] / a_span == pytest.approx(panel["height"] / b_span, rel=0.02)
    # What the plane shows: how far off it the path lies; and how far the objective fell, from the train log.
    assert sum("off the plane" in line for line in spec["title"]["subtitle"]) == 2
    assert any("objective 100 in epoch 1, 50 in epoch 2" in line for line in spec["title"]["subtitle"])


def test_mu_lr_puts_mu_and_the_learning_rate_on_two_axes_per_run() -> None:
    spec = mu_lr(make_warmup_steps()).to_dict()
    assert len(spec["vconcat"]) == len(SWITCHES)
    for index, panel in enumerate(spec["vconcat"]):
        mu_layers, lr, *key = panel["layer"]
        assert panel["resolve"]["scale"]["y"] == "independent"
        assert fields(mu_layers, "y") == {"mean_grad_corr"} and fields(lr, "y") == {"lr"}
        assert lr["encoding"]["y"]["axis"]["orient"] == "right"
        assert lr["encoding"]["y"]["scale"]["type"] == "log"
        # μ in the run's colour (as in the gawu figure), the learning rate dashed grey: not red and green (issue 19).
        assert lr["mark"]["strokeDash"] and lr["mark"]["color"] == NEUTRAL_COLOR
        assert len(key) == (index == 0)
        rows = spec["datasets"][panel["data"]["name"]]
        assert {row["reference"] for row in rows} == {"final"} and len({row["run_id"] for row in rows}) == 1
        # An axis of epochs, as the gawu figure draws the same runs (issue 19: steps here, epochs there).
        assert fields(mu_layers, "x") == {"at"}
    # Named by the switch point in the data, as in the gawu figure, not by warmup_epochs (issue 12), GAWU first,
    # then by switch point.
    titles = [panel["title"]["text"] for panel in spec["vconcat"]]
    assert titles == [
        "GAWU: switch after 2.2 epochs (step 23)",
        "exponential warm-up, cosine decay: switch after 1 epoch (step 11)",
        "exponential warm-up, cosine decay: switch after 2 epochs (step 21)",
        "exponential warm-up, cosine decay: no warm-up",
    ]


def test_runs_with_the_same_switch_are_told_apart_by_their_label() -> None:
    """Two runs of one schedule switching at the same step (say at two batch sizes) would read the same."""
    steps = make_warmup_steps().filter(pl.col("run_id").is_in(["wu10", "wu5"]))
    twin = steps.filter(pl.col("run_id") == "wu10").with_columns(
        run_id=pl.lit("wu10-bs2"), label=pl.lit("batch_size=2")
    )
    twins = pl.concat([steps, twin])
    titles = [panel["title"]["text"] for panel in mu_lr(twins).to_dict()["vconcat"]]
    assert sorted(titles) == [
        "exponential warm-up, cosine decay: switch after 1 epoch (step 11)",
        "exponential warm-up, cosine decay: switch after 2 epochs (step 21) · batch size 2",
        "exponential warm-up, cosine decay: switch after 2 epochs (step 21) · wu10",
    ]


def test_every_plot_has_a_caption_naming_what_it_shows() -> None:
    assert "with a band of min–max over the epoch's steps" in plot("gamma_band").describe(color="optimizer")
    assert "differ in their seed or width are dashed apart" in plot("gamma_band").describe(color="optimizer")
    assert "sign" in plot("correlation_matrices").describe(cell="sign_flip")
    assert "1/(1 − β)" in plot("lolr").describe(color="model")
    for name, entry in plots().items():
        assert (
            len(entry.describe(**{option: option_example(entry, option) for option in required_options(entry)})) > 80
        ), name


@pytest.mark.parametrize("name", ["distance", "warmup", "mu_lr"])
def test_compiled_hover_layers_give_each_voronoi_cell_its_datums_tooltip(name: str) -> None:
    """What the HTML runs: Vega-Lite compiles each nearest selection to a Voronoi layer over its points, and the
    cell under the pointer shows that point's tooltip (not the line's first datum)."""
    import vl_convert

    vega = vl_convert.vegalite_to_vega(every_figure()[name].to_dict())
    marks = [node for node in walk(vega) if isinstance(node.get("name"), str) and "type" in node and "encode" in node]
    voronoi = [mark for mark in marks if mark["name"].endswith("_voronoi")]
    assert voronoi, name
    for mark in voronoi:
        assert mark["type"] == "path" and mark["interactive"] is True
        assert "tooltip" in mark["encode"]["update"]
    assert not [mark for mark in marks if mark["type"] == "line" and "tooltip" in mark["encode"].get("update", {})]


def test_save_inlines_the_bundle_it_is_given(tmp_path: Path, epochs: pl.DataFrame) -> None:
    """The workflow builds the Vega script once (rule vega_bundle) and every figure inlines that one."""
    bundle = "/* the workflow's bundle */ function vegaEmbed() {}"
    save(gamma_band(epochs, color="optimizer"), tmp_path / "fig.html", tmp_path / "fig.svg", bundle)
    html = (tmp_path / "fig.html").read_text()
    assert bundle in html and "vegaEmbed('#vis', spec, embedOpt)" in html
    # The figure's Vega spec, compiled once (pathgeo.analysis.figures.save.vega_spec), not Vega-Lite compiled in the browser.
    assert '"mode": "vega"' in html


def test_the_keys_every_figure_has_are_the_schemas() -> None:
    import yaml

    from pathgeo.analysis.figures import FIGURE_KEYS
    from pathgeo.planning.schema import STRUCTURE

    figure = yaml.safe_load(STRUCTURE.read_text())["properties"]["figures"]["additionalProperties"]
    assert tuple(figure["properties"]) == FIGURE_KEYS


# ---------------------------------------------------------------------------------------------------------
# The full-batch geometry and the fixed-batch spread (pathgeo.measurements.point_geometry's aggregated tables)
# ---------------------------------------------------------------------------------------------------------


def make_point_table(fixed: bool) -> pl.DataFrame:
    """The aggregated full_batch table (one row per run, reference, measured epoch) or fixed_batches table
    (one row per run, reference, measured step, with mean/min/max/std over 4 batches)."""
    rng = random.Random(2)
    rows = []
    for run in RUNS[:2]:
        for reference, budget in (("final", N_EPOCHS), ("epoch3", 3)):
            for point in range(1, budget + 1):
                row: dict[str, Any] = {
                    "experiment": "test",
                    "run_id": run["run_id"],
                    "label": run["label"],
                    "reference": reference,
                    "budget": budget,
                    "epoch": point - 1,
                    "step": STEPS_PER_EPOCH * point,
                    **run_factors(run),
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
    marks = [node["mark"] for node in walk(spec) if isinstance(node.get("mark"), dict)]
    assert any(mark.get("strokeDash") == [5, 3] for mark in marks)
    # One line per run and reference point, without the last epoch before w* (issue 19: the axis reached it).
    rows = dataset_rows(spec)
    assert {row["series"] for row in rows} == {f"{r} · {ref}" for r in ("r1", "r2") for ref in ("final", "epoch3")}
    assert all(row["epoch"] < row["budget"] - 1 for row in rows if "budget" in row)
    # The tooltip names G + λw's γ as such (issue 19: it read "γ = cos(G, w − w*)").
    titles = {tip["title"] for tips in encodings(spec, "tooltip") for tip in tips}
    assert "γ of G + λw" in titles and "γ of G" in titles


def test_full_batch_geometry_draws_no_dashed_line_under_a_solid_one() -> None:
    """With λ = 1e-5 the dashed G + λw lines lay on the solid ones, although the subtitle promised them."""
    table = make_point_table(fixed=False)
    same = table.with_columns(*(pl.col(m).alias(f"{m}_wd") for m in ("gamma", "rsi", "eb")))
    spec = full_batch_geometry(same).to_dict()
    assert not [node for node in walk(spec) if mark_type(node) == "line" and node["mark"].get("strokeDash")]
    assert any("one line for both" in line for line in spec["title"]["subtitle"])


def test_fixed_batch_spread_bands_min_max_over_batches() -> None:
    table = make_point_table(fixed=True)
    spec = fixed_batch_spread(table).to_dict()
    assert {"gamma_min", "rsi_min", "eb_min_drawn"} <= fields(spec, "y")
    assert {"gamma_max", "rsi_max", "eb_max"} <= fields(spec, "y2")
    assert "4 fixed minibatches" in " ".join(spec["title"]["subtitle"])
    # The band is over the batches, not the epoch's steps: its legend says so (issue 19).
    keys = [e["scale"]["domain"] for e in encodings(spec, "fill") if "field" in e]
    assert keys == [["min–max over the 4 fixed minibatches"]]
    # No measured step inside the last epoch before w* (issue 19: step 1850 of 1890 was drawn).
    assert all(row["epoch"] < row["budget"] - 1 for row in dataset_rows(spec))
    with pytest.raises(ValueError, match="fixed_batches table is empty"):
        fixed_batch_spread(table.clear())
    with pytest.raises(ValueError, match=r"full_batch table lacks the columns \['gamma_wd'\]"):
        full_batch_geometry(make_point_table(fixed=False).drop("gamma_wd"))


def test_save_writes_point_figures(tmp_path: Path) -> None:
    for name, chart in (
        ("full", full_batch_geometry(make_point_table(fixed=False))),
        ("fixed", fixed_batch_spread(make_point_table(fixed=True))),
    ):
        save(chart, tmp_path / f"{name}.html", tmp_path / f"{name}.svg")
        assert (tmp_path / f"{name}.svg").read_text().startswith("<svg")


# ---------------------------------------------------------------------------------------------------------
# Any run field as colour or facet; bands off (issue 21)
# ---------------------------------------------------------------------------------------------------------


def test_any_field_an_experiment_varies_colours_a_figure_with_its_name_in_words() -> None:
    """`color: weight_decay` was refused: only a fixed list of factors could colour a figure."""
    weight_decays = [0.0, 1e-4, 1e-3]
    epochs = pl.concat(
        make_epochs(RUNS[:1]).with_columns(pl.lit(f"r{i}").alias("run_id"), pl.lit(wd).alias("weight_decay"))
        for i, wd in enumerate(weight_decays)
    )
    assert "weight_decay" in plot("gamma_band").options["color"]["enum"]
    spec = gamma_band(epochs, color="weight_decay").to_dict()
    colors = [enc for enc in encodings(spec, "color") if enc.get("field") == COLOR_LEVEL]
    assert colors and all(c["title"] == "weight decay" and c["sort"] == ["0.0", "0.0001", "0.001"] for c in colors)
    assert "by weight decay" in spec["title"]["text"]
    options = make_epochs(RUNS[:2]).with_columns(
        pl.Series("optimizer_options", ["none"] * N_EPOCHS + ["nesterov=true"] * N_EPOCHS)
    )
    spec = gamma_band(options, color="optimizer", facet="optimizer_options").to_dict()
    assert [panel["title"]["text"] for panel in panels_of(spec)] == [
        "optimizer options nesterov=true",
        "optimizer options none",
    ]


def test_every_run_field_is_a_factor_column_and_a_colour() -> None:
    from pathgeo.columns import FACTORS
    from pathgeo.training.spec import RunSpec

    fields = {f.name for f in dataclasses.fields(RunSpec)} - {"data", "lr"}
    assert fields | {"dataset", "peak_lr"} == set(FACTORS)
    assert set(FACTORS) <= set(plot("gamma_band").options["color"]["enum"])
    assert set(FACTORS) <= set(plot("gamma_band").options["facet"]["enum"])


@pytest.mark.parametrize("name", ["gamma_band", "distance", "rsi_eb_gamma"])
def test_band_none_draws_the_lines_alone_in_one_panel(name: str) -> None:
    """Bands could not be turned off for a figure whose bands overlap (issue 21)."""
    many = [{**RUNS[i % 3], "run_id": f"r{i}", "seed": i} for i in range(4)]
    epochs = make_epochs(many)
    draw = {"gamma_band": gamma_band, "distance": distance, "rsi_eb_gamma": rsi_eb_gamma}[name]
    banded = draw(epochs, color="optimizer").to_dict()
    bare = draw(epochs, color="optimizer", band="none").to_dict()
    areas = [node for node in walk(banded) if mark_type(node) == "area"]
    assert areas and not [node for node in walk(bare) if mark_type(node) == "area"]
    # Four runs in three colours split into a panel per colour with bands; without them they share one per quantity.
    assert len(panels_of(banded)) > len(panels_of(bare)) == (3 if name == "rsi_eb_gamma" else 1)
    assert "no band" in " ".join(bare["title"]["subtitle"])
    assert "without a band" in plot(name).describe(color="optimizer", band="none")
    assert "min–max" in plot(name).describe(color="optimizer")


# ---------------------------------------------------------------------------------------------------------
# The second paper's findings: zigzag onset and phases
# ---------------------------------------------------------------------------------------------------------

# r3's μ(t) never turns negative; r1 and r2 turn at step 2 / lr.
ZIGZAG_LRS = {"r1": 0.5, "r2": 0.25, "r3": 0.05}


@functools.cache
def make_zigzag() -> tuple[pl.DataFrame, pl.DataFrame]:
    """The zigzag and zigzag_phases tables of RUNS as pathgeo.analysis.zigzag makes them, from full-batch μ(t) that is 0.5
    until the run's onset and −0.5 from it."""
    rows, phase_rows = [], []
    steps = N_EPOCHS * STEPS_PER_EPOCH
    for run in RUNS:
        lr = ZIGZAG_LRS[run["run_id"]]
        onset = round(2 / lr) if lr > 0.1 else steps
        frame = pl.DataFrame(
            {
                "step": list(range(steps)),
                "epoch": [step // STEPS_PER_EPOCH for step in range(steps)],
                "loss": [10.0 - 0.01 * step for step in range(steps)],
                "mean_corr_from_start": [None] + [0.5 if step < onset else -0.5 for step in range(1, steps)],
            }
        )
        row, found = run_findings(frame, 0.0, 3)
        rows.append({"run_id": run["run_id"], "label": run["label"], **run_factors(run), "peak_lr": lr, **row})
        phase_rows += [
            {
                "run_id": run["run_id"],
                "phase": i,
                "geometry": p.geometry,
                "first_step": p.first_step,
                "last_step": p.last_step,
                "steps": p.steps,
                "mean_corr": p.mean_corr,
            }
            for i, p in enumerate(found)
        ]
    return pl.DataFrame(rows, infer_schema_length=None), pl.DataFrame(phase_rows)


def test_zigzag_onset_plots_each_turning_run_on_log_axes_with_the_fitted_slope() -> None:
    spec = zigzag_onset(make_zigzag()[0], make_train()).to_dict()
    points = [row for row in dataset_rows(spec) if ONSET in row and "verdict" in row]
    # Onsets are counted from 1: steps 4 and 8 are the 5th and 9th.
    assert sorted((row["peak_lr"], row[ONSET]) for row in points) == [(0.25, 9.0), (0.5, 5.0)]
    assert all(enc["scale"]["type"] == "log" for enc in encodings(spec, "x") + encodings(spec, "y") if "scale" in enc)
    slope = math.log(9 / 5) / math.log(0.25 / 0.5)
    subtitle = " ".join(spec["title"]["subtitle"])
    assert f"slope {slope:.2f}" in subtitle
    assert "1 run not zigzag by its last step, at η = 0.05" in subtitle


def test_zigzag_phases_draws_each_runs_phases_over_its_epochs_with_the_verdicts() -> None:
    zigzag, phases = make_zigzag()
    spec = zigzag_phases(phases, zigzag, make_train()).to_dict()
    bars = dataset_rows(spec)
    by_run = {}
    for row in bars:
        by_run.setdefault(row[RUN_COLUMN], []).append((row["geometry"], row["start"], row["end"]))
    assert len(by_run) == 3
    # r1 is smooth for its steps 1..3 (step 0 has no μ, so no phase) and zigzag from step 4 on; r2 from step 8; r3
    # never.
    first = 1 / STEPS_PER_EPOCH
    assert sorted(by_run.values()) == [
        [("smooth", first, 4 / STEPS_PER_EPOCH), ("zigzag", 4 / STEPS_PER_EPOCH, N_EPOCHS)],
        [("smooth", first, 8 / STEPS_PER_EPOCH), ("zigzag", 8 / STEPS_PER_EPOCH, N_EPOCHS)],
        [("smooth", first, N_EPOCHS)],
    ]
    (color,) = [enc for enc in encodings(spec, "color") if enc.get("field") == "geometry"]
    assert color["scale"]["range"] == list(GEOMETRY_COLORS.values())
    assert "smooth → zigzag: 2" in " ".join(spec["title"]["subtitle"]) and "neither: 1" in spec["title"]["subtitle"][1]


def test_zigzag_onset_of_runs_that_never_turn_says_so() -> None:
    """The tiny config's one full-batch run stays smooth: no point, no fit, and the subtitle names the run."""
    zigzag = make_zigzag()[0].filter(pl.col("run_id") == "r3")
    spec = zigzag_onset(zigzag, make_train()).to_dict()
    assert not [row for row in dataset_rows(spec) if ONSET in row]
    subtitle = " ".join(spec["title"]["subtitle"])
    assert "none: no run turns zigzag" in subtitle and "1 run not zigzag by its last step, at η = 0.05" in subtitle
