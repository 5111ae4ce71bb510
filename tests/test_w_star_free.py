"""The measurements that need no w*, taken by reference training itself (pathgeo.measurements.w_star_free), equal those
of a replay: every value and every null of loss, lr, grad_norm, grad_corr, mean_grad_corr and sign_flip,
and every matrix entry, bit for bit; and a reference job resumed from a checkpoint ends with the same tables.
"""

from __future__ import annotations

import copy

import polars as pl
import pytest
import torch
from polars.testing import assert_frame_equal

from pathgeo.columns import METRICS, W_STAR_FREE
from pathgeo.jobs.reference import train_reference
from pathgeo.jobs.replay import replay_segment
from pathgeo.measurements.w_star_free import STATE_KEY, tables
from pathgeo.training import data
from pathgeo.training.spec import DataSpec, RunSpec

CPU = torch.device("cpu")
MNIST1D = DataSpec("mnist1d", "mnist1d", {"n_train": 200, "n_test": 50, "seed": 0})
SETTINGS = {"window": 3, "matrix_epochs": "all"}
CHECKPOINTS = (0, 2, 6, 7)

pytestmark = pytest.mark.usefixtures("deterministic_single_thread")


@pytest.fixture(scope="module")
def mnist() -> dict[str, torch.Tensor]:
    return data.build(MNIST1D)


SPECS = {
    # Minibatches (7 steps an epoch), momentum, weight decay, a schedule; the windows start each epoch.
    "minibatch": dict(
        model="mlp",
        optimizer="momentum",
        lr=0.05,
        weight_decay=1e-3,
        schedule="warmup_cosine",
        warmup_epochs=1,
        batch_size=32,
    ),
    # Full batch with batch norm: one step an epoch, so the h-step windows span epochs and overlap.
    "full_batch": dict(
        model="resnet1d",
        optimizer="sgd",
        lr=0.5,
        weight_decay=0.0,
        schedule="constant",
        warmup_epochs=0,
        batch_size=100,
        full_batch=True,
    ),
}


def spec_of(kind: str) -> RunSpec:
    return RunSpec(
        data=MNIST1D, width=8, epochs=CHECKPOINTS[-1], seed=0, data_order_seed=1, precision="float32", **SPECS[kind]
    )


def trained(spec: RunSpec, mnist, resume_at: int | None = None) -> dict[int, dict]:
    """The checkpoints of reference training with the w*-free measurements; with `resume_at`, a job that
    stopped after that checkpoint and a second one resumed from it."""
    saved: dict[int, dict] = {}
    train_reference(
        spec, mnist, CPU, CHECKPOINTS, lambda e, s: saved.__setitem__(e, copy.deepcopy(s)), correlations=SETTINGS
    )
    if resume_at is None:
        return saved
    resumed = {e: s for e, s in saved.items() if e <= resume_at}
    train_reference(
        spec,
        mnist,
        CPU,
        CHECKPOINTS,
        lambda e, s: resumed.__setitem__(e, copy.deepcopy(s)),
        resume=copy.deepcopy(saved[resume_at]),
        correlations=SETTINGS,
    )
    return resumed


@pytest.mark.parametrize("kind", SPECS)
def test_training_measures_what_a_replay_measures(mnist, kind):
    spec = spec_of(kind)
    ck = trained(spec, mnist)
    final = ck[CHECKPOINTS[-1]]
    steps, matrices = tables(final, spec.run_id, spec.epochs)
    segments = list(zip(CHECKPOINTS[:-1], CHECKPOINTS[1:]))
    replayed = [
        replay_segment(
            spec,
            mnist,
            CPU,
            copy.deepcopy(ck[a]),
            copy.deepcopy(ck[b]),
            {"final": (spec.epochs, copy.deepcopy(final))},
            0.0,
            correlations=SETTINGS,
        )
        for a, b in segments
    ]
    replay_steps = pl.concat([table for table, _, _ in replayed])
    replay_matrices = pl.concat([m for _, m, _ in replayed])

    # The same columns in the same order as a replay's, so an experiment can aggregate both.
    assert steps.columns == replay_steps.columns
    assert steps.schema == replay_steps.schema
    assert steps["step"].to_list() == replay_steps["step"].to_list()
    # Equal bit for bit, nulls included (each segment starts without G_{t−1}, as a replay does).
    assert_frame_equal(
        steps.select("reference", "epoch", "step", *W_STAR_FREE, "run_id", "budget", "steps_to_reference"),
        replay_steps.select("reference", "epoch", "step", *W_STAR_FREE, "run_id", "budget", "steps_to_reference"),
        check_exact=True,
    )
    assert steps["grad_corr"].null_count() == len(segments)
    assert steps["grad_corr"].drop_nulls().n_unique() == steps.height - len(segments)  # a real signal, not a constant
    # Everything that needs w* is null in the training's table.
    for column in set(METRICS) - set(W_STAR_FREE):
        assert steps[column].null_count() == steps.height, column
    assert_frame_equal(matrices, replay_matrices, check_exact=True)
    assert matrices.height > 0
    if kind == "full_batch":
        # One step an epoch: the 3-step windows that fit a segment start at epochs 2 and 3 (in 2..5).
        assert sorted(matrices["epoch"].unique().to_list()) == [2, 3]


def test_a_resumed_reference_job_ends_with_the_same_tables(mnist):
    spec = spec_of("minibatch")
    whole = trained(spec, mnist)
    resumed = trained(spec, mnist, resume_at=2)
    last = CHECKPOINTS[-1]
    for got, want in zip(
        tables(resumed[last], spec.run_id, spec.epochs), tables(whole[last], spec.run_id, spec.epochs)
    ):
        assert_frame_equal(got, want, check_exact=True)
    assert torch.equal(resumed[last]["model"]["net.1.weight"], whole[last]["model"]["net.1.weight"])
    # Each checkpoint carries the tables of the segments before it.
    assert tables(whole[2], spec.run_id, spec.epochs)[0]["epoch"].max() == 1
    assert STATE_KEY not in train_reference_without_measurements(spec, mnist)


def train_reference_without_measurements(spec: RunSpec, mnist) -> dict:
    saved: dict[int, dict] = {}
    train_reference(spec, mnist, CPU, (0, spec.epochs), lambda e, s: saved.__setitem__(e, s))
    return saved[spec.epochs]


def test_a_replayed_run_writes_empty_training_tables():
    steps, matrices = tables(None, "run", 3)
    assert steps.height == matrices.height == 0
    assert steps.columns[:3] == ["reference", "epoch", "step"] and "steps_to_reference" in steps.columns
