"""What is trained: a model, its minibatches per epoch, its loss, its evaluation.

Data lives on the training device for the whole run (as in airbench): an epoch's order is a permutation
drawn on the CPU from a generator seeded by (data-order seed, epoch), so it is the same on every device and
any epoch can be replayed on its own.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from pathgeo.models import build_model
from pathgeo.randomness import generator
from pathgeo.spec import RunSpec

Batch = Any


@dataclass
class StepLoss:
    loss: torch.Tensor
    correct: torch.Tensor | None
    count: int


class Task:
    """Base: minibatches of a resident dataset, drawn without replacement each epoch."""

    def __init__(self, spec: RunSpec, tensors: dict[str, torch.Tensor], device: torch.device, dtype: torch.dtype):
        self.spec = spec
        self.device = device
        self.model = build_model(spec.model, spec.width, spec.data.params, spec.seed).to(device=device, dtype=dtype)
        self.x_train = tensors.get("x_train", torch.empty(0)).to(device=device, dtype=dtype)
        self.y_train = tensors.get("y_train", torch.empty(0)).to(device)
        self.x_test = tensors.get("x_test", torch.empty(0)).to(device=device, dtype=dtype)
        self.y_test = tensors.get("y_test", torch.empty(0)).to(device)
        if self.y_train.is_floating_point():
            self.y_train, self.y_test = self.y_train.to(dtype), self.y_test.to(dtype)

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(len(self.x_train) / self.spec.batch_size)

    def batches(self, epoch: int) -> Iterator[Batch]:
        order = torch.randperm(
            len(self.x_train), generator=generator(self.spec.data_order_seed, "data-order", epoch)
        ).to(self.device)
        for index in order.split(self.spec.batch_size):
            yield self.x_train[index], self.y_train[index]

    def loss(self, batch: Batch) -> StepLoss:
        raise NotImplementedError

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Validation metrics; the model is put in eval mode and back, no RNG is drawn."""
        if len(self.x_test) == 0:
            return {}
        self.model.eval()
        try:
            total_loss = torch.zeros((), dtype=torch.float64, device=self.device)
            total_correct = torch.zeros((), dtype=torch.float64, device=self.device)
            for start in range(0, len(self.x_test), 1024):
                batch = self.x_test[start : start + 1024], self.y_test[start : start + 1024]
                out = self.loss(batch)
                total_loss += out.loss.double() * out.count
                if out.correct is not None:
                    total_correct += out.correct
            n = max(len(self.x_test), 1)
            metrics = {"val_loss": total_loss.item() / n}
            if out.correct is not None:
                metrics["val_accuracy"] = total_correct.item() / n
            return metrics
        finally:
            self.model.train()


class Classification(Task):
    def loss(self, batch: Batch) -> StepLoss:
        x, y = batch
        logits = self.model(x)
        return StepLoss(F.cross_entropy(logits, y), (logits.argmax(1) == y).sum(), len(y))


class AsymmetricLinear(Task):
    """ALM: minibatch RMSE of the one-sided hinge max(0, w·x − y): convex, but very noisy."""

    def loss(self, batch: Batch) -> StepLoss:
        x, y = batch
        residual = torch.relu(self.model(x).squeeze(1) - y)
        return StepLoss(torch.sqrt(torch.mean(residual**2)), None, len(y))


class SinusoidalMixture(Task):
    """SM: ||w||^2 + 100 Σ sin(a_i w_i)^2, full-batch and deterministic, strongly non-convex."""

    def __init__(self, spec, tensors, device, dtype):
        super().__init__(spec, tensors, device, dtype)
        self.a = tensors["a"].to(device=device, dtype=dtype)

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


TASKS = {"mnist1d": Classification, "alm": AsymmetricLinear, "sm": SinusoidalMixture, "random_walk": RandomWalk}


def build_task(spec: RunSpec, tensors: dict[str, torch.Tensor], device: torch.device) -> Task:
    dtype = {"float32": torch.float32, "float64": torch.float64}[spec.precision]
    return TASKS[spec.data.kind](spec, tensors, device, dtype)


def parameters(model: nn.Module) -> list[nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]
