"""What is trained: a model, its minibatches per epoch, its loss, its evaluation. Each dataset kind's Task
extends `Task` (or `Classification`) in the kind's module; `build_task` picks the run's.

Data lives on the training device for the whole run (as in airbench): an epoch's order is a permutation
drawn on the CPU from a generator seeded by (data-order seed, epoch), so it is the same on every device and
any epoch can be replayed on its own. On several devices each rank builds the same task with its `shard` and
trains on its part of every global minibatch (`Shard.part`); evaluation sees the whole validation set.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from pathgeo.training.data import kind
from pathgeo.training.distributed import SINGLE, Shard
from pathgeo.training.models import build_model
from pathgeo.training.precision import parameter_dtype
from pathgeo.training.randomness import generator
from pathgeo.training.spec import RunSpec

Batch = Any


@dataclass
class StepLoss:
    loss: torch.Tensor
    correct: torch.Tensor | None
    # Samples the loss averages over (a tensor when summed over ranks on the device).
    count: int | torch.Tensor


class Task:
    """Base: minibatches of a resident dataset, drawn without replacement each epoch."""

    num_classes = 0

    def __init__(self, spec: RunSpec, data: Any, device: torch.device, dtype: torch.dtype, shard: Shard = SINGLE):
        self.spec = spec
        self.device = device
        self.dtype = dtype
        self.shard = shard
        self.load(data)
        self.model = build_model(
            spec.model, spec.width, spec.data.params, spec.seed, self.num_classes, spec.model_options
        ).to(device=device, dtype=dtype)

    def load(self, tensors: dict[str, torch.Tensor]) -> None:
        device, dtype = self.device, self.dtype
        self.x_train = tensors.get("x_train", torch.empty(0)).to(device=device, dtype=dtype)
        self.y_train = tensors.get("y_train", torch.empty(0)).to(device)
        self.x_test = tensors.get("x_test", torch.empty(0)).to(device=device, dtype=dtype)
        self.y_test = tensors.get("y_test", torch.empty(0)).to(device)
        if self.y_train.is_floating_point():
            self.y_train, self.y_test = self.y_train.to(dtype), self.y_test.to(dtype)

    @property
    def steps_per_epoch(self) -> int:
        if self.spec.full_batch:
            return 1
        return math.ceil(len(self.x_train) / self.spec.batch_size)

    @property
    def train_size(self) -> int:
        return len(self.x_train)

    def full_batch_chunks(self) -> Iterator[Batch]:
        """The training set in its stored order, `batch_size` samples at a time and without augmentation:
        the chunks of one full-batch gradient (noiseless, as in the paper's gradient descent)."""
        for start in range(0, len(self.x_train), self.spec.batch_size):
            yield self.x_train[start : start + self.spec.batch_size], self.y_train[start : start + self.spec.batch_size]

    def batches(self, epoch: int) -> Iterator[Batch]:
        for index in self.index_batches(epoch, len(self.x_train), self.device):
            yield self.x_train[index], self.y_train[index]

    def index_batches(self, epoch: int, samples: int, device: torch.device) -> Iterator[torch.Tensor]:
        """This rank's part of each of the epoch's minibatches, as indices (on `device`) into `samples` training
        samples: the epoch's permutation cut into `batch_size` pieces, each split by rank."""
        order = torch.randperm(samples, generator=generator(self.spec.data_order_seed, "data-order", epoch)).to(device)
        for index in order.split(self.spec.batch_size):
            yield self.shard.part(index)

    def loss(self, batch: Batch) -> StepLoss:
        raise NotImplementedError

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Validation metrics; the model is put in eval mode and back, no RNG is drawn."""
        if len(self.x_test) == 0:
            return {}
        return self._evaluate_batches(self._test_batches())

    def _test_batches(self) -> Iterator[Batch]:
        for start in range(0, len(self.x_test), 1024):
            yield self.x_test[start : start + 1024], self.y_test[start : start + 1024]

    @torch.no_grad()
    def _evaluate_batches(self, batches: Iterator[Batch]) -> dict[str, float]:
        self.model.eval()
        try:
            total_loss = torch.zeros((), dtype=torch.float64, device=self.device)
            total_correct = torch.zeros((), dtype=torch.float64, device=self.device)
            count, has_accuracy = 0, False
            for batch in batches:
                out = self.loss(batch)
                total_loss += out.loss.double() * out.count
                count += out.count
                if out.correct is not None:
                    total_correct += out.correct
                    has_accuracy = True
            metrics = {"val_loss": total_loss.item() / max(count, 1)}
            if has_accuracy:
                metrics["val_accuracy"] = total_correct.item() / max(count, 1)
            return metrics
        finally:
            self.model.train()


class Classification(Task):
    """Cross-entropy on class logits; the metric is accuracy."""

    def loss(self, batch: Batch) -> StepLoss:
        x, y = batch
        logits = self.model(x)
        return StepLoss(F.cross_entropy(logits, y), (logits.argmax(1) == y).sum(), len(y))


def build_task(spec: RunSpec, data: Any, device: torch.device, shard: Shard = SINGLE) -> Task:
    """`data` is what pathgeo.training.data.load_for_run returns for the run's dataset kind; `shard` is this process's rank
    of a run on several devices."""
    return kind(spec.data.kind).task(spec, data, device, parameter_dtype(spec.precision), shard)


def parameters(model: nn.Module) -> list[nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]
