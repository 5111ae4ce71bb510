"""The config keys of the measurement engine: the lag protocol and, from the plan, which measurements each
run's replay (or reference training) takes."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from pathgeo.planning.config import build_plan, correlation_settings
from pathgeo.planning.config_errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
TINY = yaml.safe_load((REPO / "tests" / "configs" / "tiny.yaml").read_text())


def with_correlations(**settings) -> dict:
    config = copy.deepcopy(TINY)
    config["correlations"] = {**TINY.get("correlations", {}), **settings}
    return config


def test_lag_protocols_and_their_spellings():
    assert correlation_settings(TINY)["lagged"] == "anchored"
    for value in ("anchored", "every_step", "off"):
        assert correlation_settings(with_correlations(lagged=value))["lagged"] == value
        build_plan(with_correlations(lagged=value))
    # YAML reads an unquoted off as false: both mean off.
    assert yaml.safe_load("lagged: off") == {"lagged": False}
    assert correlation_settings(with_correlations(lagged=False))["lagged"] == "off"
    with pytest.raises(
        ConfigError, match=r"config key 'correlations.lagged': true is no longer a value: write anchored"
    ):
        build_plan(with_correlations(lagged=True))
    with pytest.raises(ConfigError, match=r"correlations.lagged"):
        build_plan(with_correlations(lagged="sometimes"))


def with_experiment(name: str, **keys) -> dict:
    config = copy.deepcopy(TINY)
    config["experiments"][name] = {**config["experiments"][name], **keys}
    return config


def test_point_measurements_join_per_run_and_conflicts_are_refused():
    plan = build_plan(TINY)
    baseline = plan.experiments["baseline"][0]
    assert plan.measurements(baseline) == {
        "full_batch_geometry": {"every_epochs": 1},
        "fixed_batch_geometry": {"every_steps": 3, "batches": 2},
    }
    # The baseline run is shared: another experiment asking for the same settings agrees with it ...
    agreeing = with_experiment("budgets", full_batch_geometry={"every_epochs": 1})
    assert build_plan(agreeing).measurements(baseline)["full_batch_geometry"] == {"every_epochs": 1}
    # ... one asking for other settings is refused, naming its key.
    with pytest.raises(
        ConfigError,
        match=r"'experiments.budgets.full_batch_geometry': run .* is shared with an experiment that measures it with \{'every_epochs': 1\}",
    ):
        build_plan(with_experiment("budgets", full_batch_geometry={"every_epochs": 2}))
    # A run no experiment asks anything of measures nothing.
    alm = plan.experiments["alm"][0]
    assert plan.measurements(alm) == {}


def test_full_batch_geometry_needs_a_finite_training_set():
    with pytest.raises(
        ConfigError, match=r"'experiments.walk.full_batch_geometry': the full-batch gradient needs a finite"
    ):
        build_plan(with_experiment("walk", full_batch_geometry={"every_epochs": 1}))
    build_plan(
        with_experiment(
            "alm", full_batch_geometry={"every_epochs": 1}, fixed_batch_geometry={"every_steps": 2, "batches": 1}
        )
    )
    with pytest.raises(ConfigError, match=r"fixed_batch_geometry"):
        build_plan(with_experiment("alm", fixed_batch_geometry={"every_steps": 0, "batches": 1}))


def test_w_star_free_experiments_plan_no_replay_and_refuse_what_needs_w_star():
    plan = build_plan(TINY)
    full_batch = plan.experiments["full_batch"][0]
    assert not plan.replayed(full_batch) and plan.segments(full_batch) == ()
    assert plan.checkpoint_segments(full_batch) == ((0, 6), (6, 12))  # training still restarts its probe there
    assert plan.replayed(plan.experiments["baseline"][0])
    # A run that another experiment replays is replayed, once, for both.
    shared = with_experiment("optimizers", measure="w_star_free")
    shared_plan = build_plan(shared)
    assert all(
        shared_plan.replayed(run)
        for run in shared_plan.experiments["optimizers"]
        if run in shared_plan.experiments["baseline"]
    )
    sgd = [run for run in shared_plan.experiments["optimizers"] if run not in shared_plan.experiments["baseline"]]
    assert sgd and not any(shared_plan.replayed(run) for run in sgd)

    figures = copy.deepcopy(TINY)
    figures["figures"]["gamma_correlation"]["experiment"] = "full_batch"
    with pytest.raises(
        ConfigError,
        match=r"'figures.gamma_correlation.experiment': plot 'gamma_correlation' needs measurements against w\*",
    ):
        build_plan(figures)
    with pytest.raises(
        ConfigError, match=r"'experiments.full_batch.references': an experiment with measure: w_star_free"
    ):
        build_plan(with_experiment("full_batch", references=[6, "final"]))
    with pytest.raises(
        ConfigError, match=r"'experiments.full_batch.fixed_batch_geometry': fixed_batch_geometry measures against w\*"
    ):
        build_plan(with_experiment("full_batch", fixed_batch_geometry={"every_steps": 2, "batches": 1}))
    with pytest.raises(ConfigError, match=r"experiments.full_batch.measure"):
        build_plan(with_experiment("full_batch", measure="some"))
