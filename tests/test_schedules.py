"""Schedules are pure functions of the step; a replay under them (and under gradient clipping) is exact."""

import math

import pytest
import torch

from pathgeo.jobs.reference import train_reference
from pathgeo.jobs.replay import replay_segment
from pathgeo.training import data
from pathgeo.training.devices import configure_determinism
from pathgeo.training.schedules import Schedule
from pathgeo.training.spec import DataSpec, RunSpec

CPU = torch.device("cpu")


def test_constant_and_warmup_cosine_factors():
    constant = Schedule("constant", total_steps=100, warmup_steps=0, steps_per_epoch=10)
    assert all(constant.lr_factor(s) == 1.0 and constant.wd_factor(s) == 1.0 for s in range(100))
    cosine = Schedule("warmup_cosine", total_steps=100, warmup_steps=10, steps_per_epoch=10)
    assert cosine.lr_factor(0) == pytest.approx(0.1)
    assert cosine.lr_factor(9) == pytest.approx(1.0)
    assert cosine.lr_factor(10) == pytest.approx(1.0)
    assert cosine.lr_factor(55) == pytest.approx(0.5)
    assert cosine.lr_factor(99) == pytest.approx(0.5 * (1 + math.cos(math.pi * 89 / 90)))
    assert all(cosine.wd_factor(s) == 1.0 for s in range(100))


def test_final_drop_divides_lr_and_weight_decay_by_ten_in_the_last_epoch_only():
    schedule = Schedule("final_drop", total_steps=30, warmup_steps=0, steps_per_epoch=10)
    assert [schedule.lr_factor(s) for s in (0, 19, 20, 29)] == [1.0, 1.0, 0.1, 0.1]
    assert [schedule.wd_factor(s) for s in (0, 19, 20, 29)] == [1.0, 1.0, 0.1, 0.1]


@pytest.fixture(scope="module")
def mnist():
    configure_determinism(True)
    return data.build(DataSpec("mnist1d", "mnist1d", {"n_train": 200, "n_test": 50, "seed": 0}))


def _spec(**overrides):
    fields = dict(
        data=DataSpec("mnist1d", "mnist1d", {"n_train": 200, "n_test": 50, "seed": 0}),
        model="mlp",
        width=16,
        optimizer="momentum",
        lr=0.05,
        weight_decay=1e-3,
        schedule="final_drop",
        warmup_epochs=0,
        batch_size=50,
        epochs=3,
        seed=0,
        data_order_seed=0,
        precision="float32",
    )
    return RunSpec(**{**fields, **overrides})


@pytest.mark.parametrize(
    "overrides", [{}, {"grad_clip": 1e-3, "schedule": "constant", "weight_decay": 0.0}], ids=["final_drop", "clip"]
)
def test_replay_is_exact_and_records_the_schedule(mnist, overrides):
    spec = _spec(**overrides)
    checkpoints = {}
    train_reference(spec, mnist, CPU, (0, 3), lambda e, s: checkpoints.__setitem__(e, s))
    table, _, fidelity = replay_segment(
        spec, mnist, CPU, checkpoints[0], checkpoints[3], {"final": (3, checkpoints[3])}, 0.0
    )
    assert fidelity.relative_drift == 0.0
    last = table.filter(table["epoch"] == 2)
    first = table.filter(table["epoch"] == 0)
    if spec.schedule == "final_drop":
        assert last["lr"].unique().to_list() == [pytest.approx(0.005)]
        assert first["lr"].unique().to_list() == [0.05]
        # With the per-step weight decay, the *_wd columns use λ/10 in the last epoch.
        g_wd = (last["grad_norm_wd"] ** 2 - last["grad_norm"] ** 2).abs()
        assert (g_wd < (first["grad_norm_wd"] ** 2 - first["grad_norm"] ** 2).abs().max()).all()
    else:
        # The probe sees the gradient before clipping: its norm is far above the clip value, while the
        # update actually taken is at most lr * clip times the momentum's geometric sum 1 / (1 - 0.9).
        assert (table["grad_norm"] > 10 * spec.grad_clip).all()
        assert (table["upd_norm"] <= spec.lr * spec.grad_clip / (1 - 0.9) * 1.0001).all()


def test_global_generators_start_from_the_seed(mnist):
    """Two runs of one spec start with the same global RNG states (dropout draws from them)."""
    from pathgeo.training.loop import build_trainer

    states = [build_trainer(_spec(), mnist, CPU).state()["rng"] for _ in range(2)]
    assert torch.equal(states[0]["torch"], states[1]["torch"])
    assert torch.equal(states[0]["numpy"][1], states[1]["numpy"][1])
    assert states[0]["python"] == states[1]["python"]
    other = build_trainer(_spec(seed=1), mnist, CPU).state()["rng"]
    assert not torch.equal(states[0]["torch"], other["torch"])


def test_the_schedules_are_a_registry_that_the_schema_and_the_run_ids_read():
    """Schedules were spelled in five places (issue 23): now each is one module of pathgeo/training/schedules/."""
    from pathgeo.planning.schema import config_schema
    from pathgeo.training.schedules import EXPONENTIAL, LINEAR, NO_WARMUP, schedules

    kinds = schedules()
    assert set(kinds) == {"constant", "warmup_cosine", "final_drop", "exp_warmup_cosine", "gawu"}
    assert config_schema()["$defs"]["run_fields"]["properties"]["schedule"]["enum"] == list(kinds)
    slugs = [kind.slug for kind in kinds.values() if kind.slug]
    assert len(slugs) == len(set(slugs)) == len(kinds) - 1  # the constant LR goes unnamed
    assert all(kind.warmup in (NO_WARMUP, LINEAR, EXPONENTIAL) for kind in kinds.values())
    assert [name for name, kind in kinds.items() if not kind.budget_dependent] == ["constant"]
    assert [name for name, kind in kinds.items() if kind.adaptive] == ["gawu"]
    assert _spec(schedule="gawu", warmup_epochs=1, warmup_growth=0.1).slug.split("-").count("gawu") == 1
