"""The claims table: one row per run, in one total order however often it is computed."""

from __future__ import annotations

import math

import polars as pl
from run_factors import factors as run_factors

from pathgeo.analysis.claims import claims_table
from pathgeo.columns import FACTORS

THRESHOLDS = {
    "min_frac_steps_gamma_positive": 0.95,
    "max_gamma_epoch_cv": 0.5,
    "min_frac_epochs_min_gamma_positive": 0.9,
    "min_abs_trend": 0.7,
}


def factors(schedule: str, warmup_epochs: int) -> dict:
    return run_factors(width=64, lr=0.001, batch_size=1000, schedule=schedule, warmup_epochs=warmup_epochs, epochs=4)


def step_row(run_id: str, budget: int, epoch: int, step: int, gamma: float, rsi: float, eb: float) -> dict:
    """A step of a replay's table, measured against the final weights."""
    return dict(run_id=run_id, reference="final", budget=budget, epoch=epoch, step=step, gamma=gamma, rsi=rsi, eb=eb)


def replay_file(path, run_id: str, offset: float) -> str:
    rows = [
        step_row(run_id, 4, epoch, 3 * epoch + i, 0.1 + offset + 0.01 * i, 1.0 + epoch, 2.0 + epoch)
        for epoch in range(4)
        for i in range(3)
    ]
    pl.DataFrame(rows).write_parquet(path)
    return str(path)


def test_runs_that_tie_on_the_leading_factors_come_out_in_one_total_order(tmp_path):
    # The default's GAWU experiment: four runs that differ only in schedule and warm-up epochs. Their ids
    # are listed in an order that is neither sorted by id nor by factors.
    cases = [
        ("gawu", 25),
        ("exp_warmup_cosine", 20),
        ("exp_warmup_cosine", 10),
        ("exp_warmup_cosine", 15),
        ("constant", 0),
        ("warmup_cosine", 2),
    ]
    runs, paths = {}, []
    for i, (schedule, warmup) in enumerate(cases):
        run_id = f"run-{(7 * i) % len(cases)}"
        runs[run_id] = {"factors": factors(schedule, warmup), "label": f"{schedule} {warmup}"}
        paths.append(replay_file(tmp_path / f"{run_id}.parquet", run_id, 0.01 * i))

    tables = [claims_table(paths, runs, THRESHOLDS) for _ in range(30)]
    assert all(table.equals(tables[0]) for table in tables[1:])
    expected = sorted(runs, key=lambda run_id: (*(runs[run_id]["factors"][f] for f in FACTORS), run_id))
    assert tables[0]["run_id"].to_list() == expected


def test_the_table_carries_the_thresholds_it_was_decided_with(tmp_path):
    runs = {"run-0": {"factors": factors("constant", 0), "label": "baseline"}}
    table = claims_table([replay_file(tmp_path / "run-0.parquet", "run-0", 0.0)], runs, THRESHOLDS)
    assert table.select(list(THRESHOLDS)).row(0, named=True) == THRESHOLDS
    assert table.schema["width_unit"] == pl.String and table["width_unit"].to_list() == [None]


def test_a_config_without_a_replayed_run_has_an_empty_claims_table():
    """Every experiment measuring during training only (measure: w_star_free): no run to judge, an empty table
    with the usual columns (it was `ValueError: no replay files to aggregate`)."""
    thresholds = {
        "min_frac_steps_gamma_positive": 0.9,
        "max_gamma_epoch_cv": 0.5,
        "min_frac_epochs_min_gamma_positive": 0.9,
        "min_abs_trend": 0.7,
    }
    table = claims_table([], {}, thresholds)
    assert table.is_empty()
    assert {"run_id", "label", "holds_gamma_positive", "holds_trend", *thresholds} <= set(table.columns)


def test_a_run_of_many_epochs_gives_the_same_bytes_every_time(tmp_path):
    """Its per-epoch means add up to the coefficients of variation in one order (epoch by epoch), whatever order
    the per-epoch group-by hands them out in: sums of the same floats in another order differ in the last bits."""
    rows = [
        step_row(
            run_id,
            400,
            epoch,
            5 * epoch + i,
            gamma=math.sin(epoch * 0.37 + i + r) / 3 + 0.5,
            rsi=math.exp(math.cos(epoch * 1.3 + i) + r),
            eb=1 / (1.1 + math.sin(epoch * 0.71 - i)),
        )
        for r, run_id in enumerate(("run-0", "run-1"))
        for epoch in range(400)
        for i in range(5)
    ]
    path = tmp_path / "replay.parquet"
    pl.DataFrame(rows).write_parquet(path)
    runs = {run_id: {"factors": factors("constant", 0), "label": run_id} for run_id in ("run-0", "run-1")}
    written = set()
    for attempt in range(20):
        claims_table([str(path)], runs, THRESHOLDS).write_csv(tmp_path / f"{attempt}.csv")
        written.add((tmp_path / f"{attempt}.csv").read_bytes())
    assert len(written) == 1
