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

from pathgeo import datasets
from pathgeo.models import MNIST1D_CLASSES, build_model
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

    num_classes = 0

    def __init__(self, spec: RunSpec, data: Any, device: torch.device, dtype: torch.dtype):
        self.spec = spec
        self.device = device
        self.dtype = dtype
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
    num_classes = MNIST1D_CLASSES

    def loss(self, batch: Batch) -> StepLoss:
        x, y = batch
        logits = self.model(x)
        return StepLoss(F.cross_entropy(logits, y), (logits.argmax(1) == y).sum(), len(y))


class Cifar10(Classification):
    """CIFAR-10 resident on the device as uint8; each minibatch is cropped (and flipped) there, with offsets
    drawn from (seed, epoch, step), then normalized (airbench's data path, torchvision's augmentation)."""

    num_classes = 10

    def load(self, tensors: dict[str, torch.Tensor]) -> None:
        self.x_train = tensors["x_train"].to(self.device)
        self.y_train = tensors["y_train"].to(self.device)
        # Validation is the held-out 20% of the training set, as in the paper; the test set stays untouched.
        self.x_test = tensors["x_val"].to(self.device)
        self.y_test = tensors["y_val"].to(self.device)

    def batches(self, epoch: int) -> Iterator[Batch]:
        for step, (x, y) in enumerate(super().batches(epoch)):
            augmented = datasets.augment_batch(
                x, generator(self.spec.seed, "cifar10-augment", epoch, step), flip=self.spec.data.params["flip"]
            )
            yield datasets.normalize(augmented).to(self.dtype), y

    def full_batch_chunks(self) -> Iterator[Batch]:
        for x, y in super().full_batch_chunks():
            yield datasets.normalize(x).to(self.dtype), y

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        return self._evaluate_batches((datasets.normalize(x).to(self.dtype), y) for x, y in self._test_batches())


class ImageNet(Classification):
    """ImageNet from its folders through DataLoader workers; every item's augmentation is seeded by
    (seed, epoch, index), so batches are the same for any number of workers."""

    def load(self, splits) -> None:
        self.train_split, self.val_split = splits
        self.num_classes = len(self.train_split.classes)
        self.workers = self.spec.data.params.get("workers", 0)

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(len(self.train_split) / self.spec.batch_size)

    def batches(self, epoch: int) -> Iterator[Batch]:
        order = torch.randperm(len(self.train_split), generator=generator(self.spec.data_order_seed, "data-order", epoch))
        loader = datasets.imagenet_batches(
            self.train_split, order, self.spec.batch_size, epoch, self.spec.seed, self.workers,
            pin_memory=self.device.type == "cuda",
        )
        for x, y in loader:
            yield x.to(self.device, self.dtype, non_blocking=True), y.to(self.device, non_blocking=True)

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        order = torch.arange(len(self.val_split))
        loader = datasets.imagenet_batches(self.val_split, order, self.spec.batch_size, 0, self.spec.seed, self.workers)
        return self._evaluate_batches((x.to(self.device, self.dtype), y.to(self.device)) for x, y in loader)


class LanguageModel(Task):
    """Next-token prediction on a word corpus, batch-first: the training tokens are cut into batch_size
    contiguous streams (rows), and each step reads the next seq_len columns, as pytorch/examples does
    (in its transposed, time-first layout)."""

    def load(self, corpus) -> None:
        self.num_classes = len(corpus)
        seq_len = self.spec.data.params["seq_len"]
        self.seq_len = seq_len
        self.train_source = datasets.batchify(corpus.train, self.spec.batch_size).to(self.device)
        self.val_source = datasets.batchify(corpus.valid, self.spec.batch_size).to(self.device)

    @property
    def steps_per_epoch(self) -> int:
        return datasets.num_sequence_batches(self.train_source, self.seq_len)

    def batches(self, epoch: int) -> Iterator[Batch]:
        return datasets.sequence_batches(self.train_source, self.seq_len)

    def loss(self, batch: Batch) -> StepLoss:
        x, y = batch
        logits = self.model(x)
        return StepLoss(
            F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1)),
            (logits.argmax(-1) == y).sum(),
            y.numel(),
        )

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        metrics = self._evaluate_batches(datasets.sequence_batches(self.val_source, self.seq_len))
        metrics["val_perplexity"] = math.exp(metrics["val_loss"])
        return metrics


class Segmentation(Task):
    """Vaihingen: random patches of the training tiles each epoch (positions and flips from (seed, epoch)),
    fixed patches of the validation tiles; the metric is pixel accuracy."""

    num_classes = len(datasets.VAIHINGEN_CLASSES)

    def load(self, tiles) -> None:
        self.train_tiles, self.val_tiles = tiles
        params = self.spec.data.params
        self.patch_size = params["patch_size"]
        self.patches = params["patches_per_epoch"]
        self.val_plan = datasets.vaihingen_val_plan(
            self.val_tiles, self.spec.seed, n=params.get("val_patches", 1000), size=self.patch_size
        )

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(self.patches / self.spec.batch_size)

    def _patch_batches(self, tiles, plan) -> Iterator[Batch]:
        for index in torch.arange(len(plan)).split(self.spec.batch_size):
            x, y = datasets.extract_patches(tiles, plan, index)
            yield x.to(self.device, self.dtype), y.to(self.device)

    def batches(self, epoch: int) -> Iterator[Batch]:
        plan = datasets.vaihingen_train_plan(self.train_tiles, self.spec.seed, epoch, self.patches, self.patch_size)
        return self._patch_batches(self.train_tiles, plan)

    def loss(self, batch: Batch) -> StepLoss:
        x, y = batch
        logits = self.model(x)
        labelled = y != datasets.IGNORE_INDEX
        correct = ((logits.argmax(1) == y) & labelled).sum()
        return StepLoss(F.cross_entropy(logits, y, ignore_index=datasets.IGNORE_INDEX), correct, int(labelled.sum()))

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        metrics = self._evaluate_batches(self._patch_batches(self.val_tiles, self.val_plan))
        metrics["val_pixel_accuracy"] = metrics.pop("val_accuracy")
        return metrics


class AsymmetricLinear(Task):
    """ALM: minibatch RMSE of the one-sided hinge max(0, w·x − y): convex, but very noisy."""

    def loss(self, batch: Batch) -> StepLoss:
        x, y = batch
        residual = torch.relu(self.model(x).squeeze(1) - y)
        return StepLoss(torch.sqrt(torch.mean(residual**2)), None, len(y))


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


TASKS = {
    "mnist1d": Classification,
    "alm": AsymmetricLinear,
    "sm": SinusoidalMixture,
    "random_walk": RandomWalk,
    "cifar10": Cifar10,
    "imagenet": ImageNet,
    "corpus": LanguageModel,
    "vaihingen": Segmentation,
}


def build_task(spec: RunSpec, data: Any, device: torch.device) -> Task:
    """`data` is what pathgeo.data.load_for_run returns for the run's dataset kind."""
    dtype = {"float32": torch.float32, "float64": torch.float64}[spec.precision]
    return TASKS[spec.data.kind](spec, data, device, dtype)


def parameters(model: nn.Module) -> list[nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]
