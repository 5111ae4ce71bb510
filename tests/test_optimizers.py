"""The optimizer registry: each entry builds the torch optimizer a run names, with the run's LR and weight decay."""

from __future__ import annotations

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
