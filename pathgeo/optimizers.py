"""The optimizer registry: every optimizer a run can name, each a torch.optim class with its fixed settings.

Adding one touches this module and its test (tests/test_optimizers.py); the config schema's `optimizer` enum
comes from `OPTIMIZERS`. A run's LR and weight decay are the optimizer's `lr` and `weight_decay`; the trainer
sets both on every parameter group before each step, from the schedule.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from pathgeo.registry import lookup
from pathgeo.spec import RunSpec


@dataclass(frozen=True)
class Optimizer:
    name: str
    cls: type[torch.optim.Optimizer]
    settings: Mapping[str, Any] = field(default_factory=dict)

    def build(self, spec: RunSpec, params: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
        return self.cls(params, lr=spec.lr, weight_decay=spec.weight_decay, **self.settings)

    @property
    def step_scale(self) -> float | None:
        """How much longer than lr x G a step is in the steady state of constant gradients: 1/(1 - beta) under
        heavy-ball momentum beta, 1 for plain SGD; None where no single factor exists (Adam's step is per
        coordinate). The step to compare with the locally optimal LR is lr x step_scale."""
        if self.cls is not torch.optim.SGD:
            return None
        return 1 / (1 - self.settings.get("momentum", 0.0))


OPTIMIZERS = {
    entry.name: entry
    for entry in (
        Optimizer("sgd", torch.optim.SGD),
        Optimizer("momentum", torch.optim.SGD, {"momentum": 0.9}),
        Optimizer("adam", torch.optim.Adam, {"betas": (0.9, 0.999)}),
    )
}


def optimizer(name: str) -> Optimizer:
    return lookup(OPTIMIZERS, name, "optimizer")


def build_optimizer(spec: RunSpec, params: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
    return optimizer(spec.optimizer).build(spec, params)
