"""Aggregation: an experiment's tables from its replay files and train logs, each run's factors, label and
descriptors joined on."""

from __future__ import annotations

import polars as pl
import pytest
from run_factors import factors

from pathgeo.analysis.aggregate import DESCRIPTORS, experiment_tables
from pathgeo.columns import FACTORS, METRICS

RUNS = {
    "run-sgd": {
        "factors": factors(optimizer="sgd"),
        "label": "optimizer=sgd",
        "width_unit": "hidden units",
        "step_scale": 1.0,
        "references": [2],
    },
    "run-adam": {
        "factors": factors(optimizer="adam"),
        "label": "optimizer=adam",
        "width_unit": "hidden units",
        "step_scale": None,
        "references": [2],
    },
}


def write_run(root, run_id: str, steps_per_epoch: int) -> tuple[str, str, str]:
    folder = root / "runs" / run_id
    (folder / "replay").mkdir(parents=True)
    rows = [
        {
            "run_id": run_id,
            "reference": "final",
            "budget": 2,
            "epoch": epoch,
            "step": epoch * steps_per_epoch + i,
            "steps_to_reference": 2 * steps_per_epoch - epoch * steps_per_epoch - i,
            **{metric: float(epoch * 10 + i) for metric in METRICS},
        }
        for epoch in range(2)
        for i in range(steps_per_epoch)
    ]
    steps = folder / "replay" / "0000-0002.parquet"
    pl.DataFrame(rows).write_parquet(steps)
    matrices = folder / "replay" / "0000-0002.matrices.parquet"
    pl.DataFrame(
        {"run_id": [run_id], "epoch": [0], "start_step": [0], "i": [0], "j": [0], "corr": [1.0], "sign_flip": [0.0]}
    ).write_parquet(matrices)
    train_log = folder / "train_log.parquet"
    pl.DataFrame(
        {
            "epoch": [0, 1],
            "train_loss": [2.0, 1.5],
            "train_accuracy": [0.2, 0.4],
            "val_loss": [2.1, 1.6],
            "val_accuracy": [0.25, 0.35],
            "lr": [0.1, 0.1],
        }
    ).write_parquet(train_log)
    return str(steps), str(matrices), str(train_log)


@pytest.fixture
def tables(tmp_path):
    files = [write_run(tmp_path, "run-sgd", 3), write_run(tmp_path, "run-adam", 1)]
    steps, matrices, logs = (list(column) for column in zip(*files))
    return experiment_tables("optimizers", steps, matrices, logs, RUNS, exclude_final_epoch=False)


def test_every_table_has_each_runs_factors_label_and_descriptors(tables):
    assert set(tables) == {"epochs", "steps", "matrices", "train", "full_batch", "fixed_batches"}
    for name, table in tables.items():
        assert {"run_id", "label", *DESCRIPTORS, *FACTORS} <= set(table.columns), name
        # No point measurements were asked for: their tables are empty, with the columns.
        if name in ("full_batch", "fixed_batches"):
            assert table.is_empty() and table.schema["step_scale"] == pl.Float64, name
            continue
        by_run = {row["run_id"]: row for row in table.iter_rows(named=True)}
        assert by_run["run-sgd"]["step_scale"] == 1.0 and by_run["run-adam"]["step_scale"] is None, name
        assert by_run["run-adam"]["optimizer"] == "adam" and by_run["run-adam"]["label"] == "optimizer=adam", name
        assert table.schema["step_scale"] == pl.Float64, name


def test_train_table_is_each_runs_log_with_its_final_epoch(tables):
    train = tables["train"]
    # The run id comes from the log's folder (results/runs/<run_id>/train_log.parquet).
    assert train.select("run_id", "epoch").rows() == [("run-adam", 0), ("run-adam", 1), ("run-sgd", 0), ("run-sgd", 1)]
    assert train["val_accuracy"].to_list() == [0.25, 0.35, 0.25, 0.35]
    assert set(train["experiment"]) == {"optimizers"}


def test_epochs_say_how_many_steps_each_statistic_is_over(tables):
    epochs = tables["epochs"]
    steps = {(row["run_id"], row["epoch"]): row["steps"] for row in epochs.iter_rows(named=True)}
    assert steps == {("run-sgd", 0): 3, ("run-sgd", 1): 3, ("run-adam", 0): 1, ("run-adam", 1): 1}
    sgd = epochs.filter((pl.col("run_id") == "run-sgd") & (pl.col("epoch") == 1)).row(0, named=True)
    assert sgd["gamma_mean"] == pytest.approx(11.0) and sgd["gamma_min"] == 10.0 and sgd["gamma_max"] == 12.0


def test_the_steps_table_has_the_mean_correlation_from_the_start(tmp_path):
    """Issue 22: μ(t) is null for a segment's first h − 1 steps; `mean_corr_from_start` has a value from the second
    step on, over the pairs there are (`corr_pairs`), and is μ(t) itself where the window is full."""
    steps, matrices, logs = write_run(tmp_path, "run-sgd", 4)
    grad_corr = [None, -0.5, -0.7, -0.6, -0.8, -0.9, -0.4, -0.5]
    mean = [None, None, None, None, -0.65, -0.75, -0.675, -0.65]
    pl.read_parquet(steps).with_columns(grad_corr=pl.Series(grad_corr), mean_grad_corr=pl.Series(mean)).write_parquet(
        steps
    )
    table = experiment_tables("optimizers", [steps], [matrices], [logs], {"run-sgd": RUNS["run-sgd"]}, False, window=5)[
        "steps"
    ]
    assert table["corr_pairs"].to_list() == [0, 1, 2, 3, 4, 4, 4, 4]
    assert table["mean_corr_from_start"].to_list()[:4] == [None, -0.5, pytest.approx(-0.6), pytest.approx(-0.6)]
    assert table["mean_corr_from_start"].to_list()[4:] == mean[4:]
