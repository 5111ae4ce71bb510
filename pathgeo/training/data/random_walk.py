"""The isotropic random walk of equation (8) as an objective; it needs no stored data beyond its dimension."""

from __future__ import annotations

from collections.abc import Iterator

import torch

from pathgeo.training.data import DatasetKind
from pathgeo.training.data.task import Batch, StepLoss, Task
from pathgeo.training.randomness import generator


def build(params: dict) -> dict[str, torch.Tensor]:
    return {}


class RandomWalk(Task):
    """The isotropic random walk of equation (8) as an objective: loss_t(w) = w·ξ_t with ξ_t a uniformly
    random unit vector, so SGD with LR s takes the walk's step of length s and the probe sees G = ξ_t."""

    @property
    def steps_per_epoch(self) -> int:
        return self.spec.data.params["steps_per_epoch"]

    def batches(self, epoch: int) -> Iterator[Batch]:
        dim = self.spec.data.params["dim"]
        w = self.model.w
        for step in range(self.steps_per_epoch):
            xi = torch.randn(dim, generator=generator(self.spec.seed, "walk", epoch, step), dtype=torch.float64)
            yield (xi / xi.norm()).to(device=w.device, dtype=w.dtype)

    def loss(self, batch: Batch) -> StepLoss:
        return StepLoss(torch.dot(self.model.w, batch), None, 1)

    def evaluate(self) -> dict[str, float]:
        return {}


KIND = DatasetKind(
    name="random_walk",
    task=RandomWalk,
    input="random_walk",
    params={"dim": {"type": "integer", "minimum": 2}, "steps_per_epoch": {"type": "integer", "minimum": 1}},
    required=("dim", "steps_per_epoch"),
    build=build,
)
