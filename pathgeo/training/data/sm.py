"""The Sinusoidal Mixture of Section 6: coefficients a_i ~ N(0, 1) of a full-batch, deterministic and strongly
non-convex objective on w."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from pathgeo.training.data import DatasetKind
from pathgeo.training.data.task import Batch, StepLoss, Task


def build(params: dict) -> dict[str, torch.Tensor]:
    rng = np.random.default_rng(params["seed"])
    return {"a": torch.from_numpy(rng.standard_normal(params["dim"])).float()}


class SinusoidalMixture(Task):
    """SM: ||w||^2 + 100 Σ sin(a_i w_i)^2, full-batch and deterministic, strongly non-convex."""

    def load(self, tensors: dict[str, torch.Tensor]) -> None:
        self.a = tensors["a"].to(device=self.device, dtype=self.dtype)

    @property
    def steps_per_epoch(self) -> int:
        return self.spec.data.params["steps_per_epoch"]

    def batches(self, epoch: int) -> Iterator[Batch]:
        return iter([None] * self.steps_per_epoch)

    def loss(self, batch: Batch) -> StepLoss:
        w = self.model.w
        return StepLoss(w.square().sum() + 100 * torch.sin(self.a * w).square().sum(), None, 1)

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        return {"val_loss": self.loss(None).loss.item()}


KIND = DatasetKind(
    name="sm",
    task=SinusoidalMixture,
    input="sm",
    params={
        "dim": {"type": "integer", "minimum": 1},
        "init_scale": {"type": "number", "exclusiveMinimum": 0},
        "steps_per_epoch": {"type": "integer", "minimum": 1},
        "seed": {"type": "integer", "minimum": 0},
    },
    required=("dim", "init_scale", "steps_per_epoch", "seed"),
    build=build,
)
