"""The optimizer registry: each entry builds the torch optimizer a run names, with the run's LR and weight decay."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from pathgeo.optimizers import OPTIMIZERS, build_optimizer, optimizer
from pathgeo.spec import DataSpec, RunSpec

# What each name has meant since the first runs (their checkpoints hold these settings).
EXPECTED = {
    "sgd": lambda params: torch.optim.SGD(params, lr=0.05, weight_decay=1e-4),
    "momentum": lambda params: torch.optim.SGD(params, lr=0.05, momentum=0.9, weight_decay=1e-4),
    "adam": lambda params: torch.optim.Adam(params, lr=0.05, betas=(0.9, 0.999), weight_decay=1e-4),
}


def spec(name: str) -> RunSpec:
    return RunSpec(
        data=DataSpec("walk", "random_walk", {"dim": 3, "steps_per_epoch": 1}), model="walk", width=0, optimizer=name,
        lr=0.05, weight_decay=1e-4, schedule="constant", warmup_epochs=0, batch_size=1, epochs=1, seed=0,
        data_order_seed=0, precision="float32",
    )


def test_every_optimizer_is_tested():
    assert set(OPTIMIZERS) == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_builds_the_torch_optimizer_of_the_run(name):
    params = [torch.nn.Parameter(torch.ones(3))]
    built = build_optimizer(spec(name), params)
    expected = EXPECTED[name]([torch.nn.Parameter(torch.ones(3))])
    assert type(built) is type(expected)
    assert built.state_dict()["param_groups"] == expected.state_dict()["param_groups"]
    assert built.param_groups[0]["params"] == params


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_steps_like_the_torch_optimizer(name):
    torch.manual_seed(0)
    start, grads = torch.randn(4), torch.randn(3, 4)
    ours, theirs = torch.nn.Parameter(start.clone()), torch.nn.Parameter(start.clone())
    a, b = build_optimizer(spec(name), [ours]), EXPECTED[name]([theirs])
    for grad in grads:
        ours.grad, theirs.grad = grad.clone(), grad.clone()
        a.step()
        b.step()
    assert torch.equal(ours, theirs)


def test_unknown_optimizer_names_the_known_ones():
    with pytest.raises(KeyError, match=r"unknown optimizer 'adamw'; known: \['adam', 'momentum', 'sgd'\]"):
        optimizer("adamw")


def test_step_scale_is_the_steady_state_step_over_lr_times_g():
    assert optimizer("sgd").step_scale == 1.0
    assert optimizer("momentum").step_scale == pytest.approx(10.0)
    assert optimizer("adam").step_scale is None
    # Heavy-ball momentum under a constant gradient: the step tends to lr x G x step_scale.
    w = torch.nn.Parameter(torch.zeros(1))
    sgd = build_optimizer(dataclasses.replace(spec("momentum"), weight_decay=0.0), [w])
    for _ in range(400):
        before = w.detach().clone()
        w.grad = torch.ones(1)
        sgd.step()
    step = (before - w.detach()).item()
    assert step == pytest.approx(0.05 * optimizer("momentum").step_scale, rel=1e-6)
