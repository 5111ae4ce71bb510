"""Polars aggregation: per-step replay files and train logs to tidy per-experiment tables with each run's factors,
label and descriptors as columns.

An experiment's tables: `epochs` (statistics of every metric over each epoch's steps), `steps` (the per-step rows),
`matrices` (the gradient correlation matrices) and `train` (the runs' train logs: loss and accuracy per epoch).
Everything is a lazy scan until the one collect, so an experiment of thousands of steps per epoch and many
runs never holds more than the aggregated table in memory.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import polars as pl

from pathgeo.columns import FACTORS, METRICS, POINT_METRICS

STATS = {
    "mean": lambda c: c.mean(),
    "min": lambda c: c.min(),
    "max": lambda c: c.max(),
    "q05": lambda c: c.quantile(0.05, interpolation="linear"),
    "q25": lambda c: c.quantile(0.25, interpolation="linear"),
    "median": lambda c: c.median(),
    "q75": lambda c: c.quantile(0.75, interpolation="linear"),
    "q95": lambda c: c.quantile(0.95, interpolation="linear"),
    "std": lambda c: c.std(),
}


# What the plan knows about a run besides its factors, from the registries (so that this stage needs no torch):
# what its width counts (pathgeo.training.models.Width: "hidden units", "channels", ...; null for models of one size) and
# the factor by which its optimizer's steady-state step exceeds lr x G (pathgeo.training.optimizers: 1/(1 - beta) under
# heavy-ball momentum; null where no single factor exists, as for Adam).
DESCRIPTORS = {"width_unit": pl.String, "step_scale": pl.Float64}


def factor_frame(runs: dict[str, dict[str, Any]]) -> pl.LazyFrame:
    """Each run's factors, label (pathgeo.planning.labels, made with the plan) and descriptors (null where not given)."""
    rows = [
        {"run_id": run_id, "label": run["label"], **{d: run.get(d) for d in DESCRIPTORS}, **run["factors"]}
        for run_id, run in runs.items()
    ]
    if not rows:
        return pl.LazyFrame(schema={"run_id": pl.String, "label": pl.String, **DESCRIPTORS, **dict.fromkeys(FACTORS)})
    # A factor no run sets (no clipping) is null: typed, so that tables of experiments with and without it concatenate.
    typed = {**DESCRIPTORS, "grad_clip": pl.Float64}
    return pl.LazyFrame(rows, schema_overrides=typed).select("run_id", "label", *DESCRIPTORS, *FACTORS)


def scan_steps(paths: Sequence[str | Path]) -> pl.LazyFrame:
    if not paths:
        raise ValueError("no replay files to aggregate")
    return pl.scan_parquet([str(p) for p in paths])


def experiment_steps(experiment: str, paths: Sequence[str | Path], runs: dict[str, dict[str, Any]]) -> pl.LazyFrame:
    """Per-step rows of an experiment's runs at the references it looks at, with factors joined on."""
    wanted = pl.LazyFrame(
        [{"run_id": run_id, "budget": budget} for run_id, run in runs.items() for budget in run["references"]],
        schema={"run_id": pl.String, "budget": pl.Int64},
    )
    return (
        scan_steps(paths)
        .join(wanted, on=["run_id", "budget"], how="semi")
        .join(factor_frame(runs), on="run_id", how="left")
        .with_columns(pl.lit(experiment).alias("experiment"))
    )


def per_epoch(steps: pl.LazyFrame, exclude_final_epoch: bool) -> pl.LazyFrame:
    """Statistics of every metric over each epoch's steps, one row per run, reference and epoch."""
    if exclude_final_epoch:
        steps = steps.filter(pl.col("epoch") < pl.col("budget") - 1)
    keys = ["experiment", "run_id", "label", *DESCRIPTORS, "reference", "budget", "epoch", *FACTORS]
    # `steps`: how many steps an epoch's statistics are over (1 in full batch: no spread to draw).
    aggs = [pl.len().alias("steps")]
    aggs += [fn(pl.col(m)).alias(f"{m}_{name}") for m in METRICS for name, fn in STATS.items()]
    return steps.group_by(keys).agg(aggs).sort("run_id", "budget", "epoch")


def experiment_matrices(experiment: str, paths: Sequence[str | Path], runs: dict[str, dict[str, Any]]) -> pl.LazyFrame:
    """The gradient correlation matrices of an experiment's runs (one row per entry), factors joined on."""
    return (
        scan_steps(paths)
        .join(factor_frame(runs), on="run_id", how="left")
        .select(
            pl.lit(experiment).alias("experiment"),
            "run_id",
            "label",
            *DESCRIPTORS,
            *FACTORS,
            "epoch",
            "start_step",
            "i",
            "j",
            "corr",
            "sign_flip",
        )
        .sort("run_id", "epoch", "i", "j")
    )


def experiment_train(
    experiment: str, train_logs: Sequence[str | Path], runs: dict[str, dict[str, Any]]
) -> pl.LazyFrame:
    """The train logs of an experiment's runs (results/runs/<run_id>/train_log.parquet: loss and, for classifiers,
    accuracy per epoch, the final epoch included), factors joined on. Columns a kind of task does not log (the
    synthetic objectives have no accuracy) are null."""
    logs = [
        pl.scan_parquet(str(path)).with_columns(pl.lit(Path(path).parent.name).alias("run_id")) for path in train_logs
    ]
    if not logs:
        raise ValueError(f"experiment {experiment}: no train logs to aggregate")
    return (
        pl.concat(logs, how="diagonal_relaxed")
        .join(factor_frame(runs), on="run_id", how="left")
        .with_columns(pl.lit(experiment).alias("experiment"))
        .sort("run_id", "epoch")
    )


def experiment_points(
    experiment: str, paths: Sequence[str | Path], runs: dict[str, dict[str, Any]], keys: Sequence[str]
) -> pl.LazyFrame:
    """Rows of a point measurement (pathgeo.measurements.point_geometry) of an experiment's runs at the references it
    looks at, factors joined on; none where the experiment's runs are not replayed."""
    leading = ["experiment", "run_id", "label", *DESCRIPTORS, "reference", "budget", *keys]
    if not paths:
        typed = [pl.lit(None, dtype=pl.String).alias("reference"), pl.lit(None, dtype=pl.Int64).alias("budget")]
        typed += [pl.lit(None, dtype=pl.Int64).alias(k) for k in keys]
        typed += [pl.lit(None, dtype=pl.Float64).alias(m) for m in POINT_METRICS]
        return (
            factor_frame(runs)
            .head(0)
            .select(pl.lit(experiment).alias("experiment"), "run_id", "label", *DESCRIPTORS, *typed, *FACTORS)
            .select(*leading, *FACTORS, *POINT_METRICS)
        )
    return (
        experiment_steps(experiment, paths, runs)
        .select(*leading, *FACTORS, *POINT_METRICS)
        .sort("run_id", "budget", *keys)
    )


def fixed_batch_spread(points: pl.LazyFrame) -> pl.LazyFrame:
    """Per run, reference and measured step: how each metric spreads over the fixed minibatches."""
    keys = ["experiment", "run_id", "label", *DESCRIPTORS, "reference", "budget", "epoch", "step", *FACTORS]
    aggs = [fn(pl.col(m)).alias(f"{m}_{name}") for m in POINT_METRICS for name, fn in SPREAD.items()]
    return points.group_by(keys).agg(pl.len().cast(pl.Int64).alias("batches"), *aggs).sort("run_id", "budget", "step")


SPREAD = {name: STATS[name] for name in ("mean", "min", "max", "std")}


def mean_corr_from_start(window: int) -> list[pl.Expr]:
    """`mean_corr_from_start` and `corr_pairs` over each run's steps in order (per reference point): the probe's
    `mean_grad_corr` (μ(t), eq. 3) where it has one, and where it has none (the first h − 1 steps of the run or of a
    segment) the mean of the adjacent correlations of the window that exist, so that a run that starts zigzag shows
    it from its second step. `corr_pairs` is how many pairs the mean is over: h − 1 once the window is full, fewer
    before (a mean of fewer pairs is marked so), 0 where there is none."""
    partition = {"partition_by": ["run_id", "reference"], "order_by": "step"}
    known = pl.col("grad_corr").is_not_null()
    pairs = known.cast(pl.Int64).rolling_sum(window - 1, min_samples=1).over(**partition)
    total = pl.col("grad_corr").fill_null(0.0).rolling_sum(window - 1, min_samples=1).over(**partition)
    mean = pl.coalesce(pl.col("mean_grad_corr"), pl.when(pairs > 0).then(total / pairs))
    return [mean.alias("mean_corr_from_start"), pairs.fill_null(0).alias("corr_pairs")]


def experiment_tables(
    experiment: str,
    paths: Sequence[str | Path],
    matrix_paths: Sequence[str | Path],
    train_logs: Sequence[str | Path],
    runs: dict[str, dict[str, Any]],
    exclude_final_epoch: bool,
    full_batch_paths: Sequence[str | Path] = (),
    fixed_batch_paths: Sequence[str | Path] = (),
    window: int = 5,
) -> dict[str, pl.DataFrame]:
    """The tables of an experiment: per epoch, per step (with μ(t) from the start, `mean_corr_from_start`, for the
    correlation window h = `window`), the matrices, and (where its replays measured them) the full-batch geometry
    per epoch and the fixed-batch spread per measured step."""
    steps = experiment_steps(experiment, paths, runs)
    epochs = per_epoch(steps, exclude_final_epoch)
    leading = [
        "experiment",
        "run_id",
        "label",
        *DESCRIPTORS,
        "reference",
        "budget",
        "epoch",
        "step",
        "steps_to_reference",
    ]
    steps_table = (
        steps.select(*leading, *FACTORS, *METRICS)
        .with_columns(mean_corr_from_start(window))
        .sort("run_id", "budget", "step")
    )
    tables = {
        "epochs": epochs,
        "steps": steps_table,
        "matrices": experiment_matrices(experiment, matrix_paths, runs),
        "train": experiment_train(experiment, train_logs, runs),
        "full_batch": experiment_points(experiment, full_batch_paths, runs, ["epoch", "step"]),
        "fixed_batches": fixed_batch_spread(
            experiment_points(experiment, fixed_batch_paths, runs, ["epoch", "step", "batch"])
        ),
    }
    return dict(zip(tables, pl.collect_all(list(tables.values()))))
