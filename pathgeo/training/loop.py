"""The one training loop. Reference training and replay both call `train_epoch`; replay only passes an
observer, which reads parameters and gradients after backward and before the optimizer step.

On several devices (`spec.devices`, one process per rank: pathgeo.training.distributed) every rank runs this loop on its
part of each global minibatch; `task.model` is then the DistributedDataParallel wrapper, whose backward leaves
the mean gradient over ranks in every rank's flat buffer, and `Trainer.module` is the model itself. Each rank's
loss is weighted by its share of the minibatch's samples, so the gradient is that of the global minibatch's
mean loss even when the ranks' parts differ in size. The loss and accuracy the loop reports (and the observer
reads) are the global minibatch's.
"""

from __future__ import annotations

import copy
import logging
import math
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import nn

from pathgeo.training.data.task import StepLoss, Task, build_task, parameters
from pathgeo.training.distributed import SINGLE, Shard, gather, replicate, sum_across
from pathgeo.training.flat import FlatParameters
from pathgeo.training.optimizers import build_optimizer, decay_in_gradient
from pathgeo.training.precision import forward_context, numerics
from pathgeo.training.randomness import capture_rng_state, restore_rng_state, seed_global_generators
from pathgeo.training.schedules import Schedule, schedule, schedule_for
from pathgeo.training.spec import RunSpec
from pathgeo.training.warmup import GeometrySwitch

log = logging.getLogger("pathgeo")


PROGRESS_SECONDS = 60.0


class DivergenceError(RuntimeError):
    """The loss became NaN or infinite. Nothing after this point is a valid result."""


class Observer(Protocol):
    def after_backward(self, loss: torch.Tensor, lr: float, weight_decay: float) -> None:
        """`weight_decay` is the λ of the gradient the optimizer is fed, G + λw: the step's weight decay under
        coupled decay, 0 under decoupled decay (pathgeo.training.optimizers)."""


@dataclass
class EpochStats:
    epoch: int
    train_loss: float
    train_accuracy: float | None
    seconds: float
    # Rows of the epoch's minibatches over all ranks: images, token sequences, patches (a synthetic objective's
    # step counts as one).
    samples: int

    @property
    def samples_per_second(self) -> float:
        return self.samples / self.seconds if self.seconds > 0 else float("inf")


@dataclass
class Trainer:
    spec: RunSpec
    task: Task
    flat: FlatParameters
    optimizer: torch.optim.Optimizer
    schedule: Schedule
    switch: GeometrySwitch | None = None
    epoch: int = 0
    step: int = 0
    nondeterministic_ops: set[str] = field(default_factory=set)
    shard: Shard = SINGLE

    @property
    def run_id(self) -> str:
        return self.spec.run_id

    @property
    def module(self) -> nn.Module:
        """The model itself (`task.model` is its DistributedDataParallel wrapper on several devices)."""
        model = self.task.model
        return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model

    def state(self) -> dict | None:
        """Checkpoint contents: a snapshot that later steps do not change. Parameters are cloned so a saved
        file holds each one once rather than the whole flat buffer. On several devices every rank calls it (the
        checkpoint holds each rank's RNG state, for dropout) and rank 0 alone gets the contents; the others get
        None. Buffers are rank 0's."""
        rng = capture_rng_state()
        ranks = gather(rng, self.shard)
        if not self.shard.lead:
            return None
        return {
            "run_id": self.run_id,
            "spec": self.spec.canonical(),
            "epoch": self.epoch,
            "step": self.step,
            "model": {k: v.detach().clone() for k, v in self.module.state_dict().items()},
            "optimizer": copy.deepcopy(self.optimizer.state_dict()),
            "rng": rng,
            **({"rank_rng": ranks} if self.shard.world > 1 else {}),
            **({"warmup": self.switch.state()} if self.switch is not None else {}),
        }

    def load_state(self, state: dict) -> None:
        if state["run_id"] != self.run_id:
            raise ValueError(f"checkpoint belongs to run {state['run_id']}, not {self.run_id}")
        # load_state_dict copies in place, so parameters stay views of the flat buffer.
        self.module.load_state_dict(state["model"])
        # torch keeps state tensors of the right device and dtype by reference; without the copy the
        # replay would advance the caller's checkpoint in place.
        self.optimizer.load_state_dict(copy.deepcopy(state["optimizer"]))
        restore_rng_state(state["rank_rng"][self.shard.rank] if self.shard.world > 1 else state["rng"])
        if self.switch is not None:
            self.switch.load_state(state["warmup"])
        self.epoch, self.step = state["epoch"], state["step"]
        self.flat.check_views()

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """The task's validation metrics, computed in the run's precision."""
        with numerics(self.spec.precision), forward_context(self.spec.precision, self.task.device):
            return self.task.evaluate()

    def train_epoch(self, observer: Observer | None = None) -> EpochStats:
        start = time.perf_counter()
        task, model = self.task, self.task.model
        # Running sums stay on the device: one host synchronisation per epoch, not per step.
        loss_sum, correct, count, samples = torch.zeros(4, dtype=torch.float64, device=task.device).unbind()
        has_accuracy = False
        model.train()
        last_report = start
        coupled = decay_in_gradient(self.optimizer)
        with _recording_nondeterminism(self.nondeterministic_ops), numerics(self.spec.precision):
            for i, batches in enumerate(self._steps()):
                if time.perf_counter() - last_report > PROGRESS_SECONDS:
                    # Long epochs (ImageNet: thousands of steps) show that they move; no device sync needed.
                    last_report = time.perf_counter()
                    log.info("run %s epoch %d: step %d/%d", self.run_id, self.epoch, i, task.steps_per_epoch)
                self.flat.zero_grad()
                out, rows = self._backward(batches)
                if self.switch is not None:
                    self.switch.observe(self.flat.grads, self.step)
                    if self.switch.switch_step == self.step:
                        log.info(
                            "run %s: GAWU ends the warm-up at step %d (epoch %d)", self.run_id, self.step, self.epoch
                        )
                switch_step = self.switch.switch_step if self.switch is not None else None
                lr = self.spec.lr * self.schedule.lr_factor(self.step, switch_step)
                weight_decay = self.spec.weight_decay * self.schedule.wd_factor(self.step)
                for group in self.optimizer.param_groups:
                    group["lr"], group["weight_decay"] = lr, weight_decay
                if observer is not None:
                    observer.after_backward(out.loss, lr, weight_decay if coupled else 0.0)
                if self.spec.grad_clip is not None:
                    # After the observer: the probe measures the gradient before clipping, and the update
                    # actually taken through w_prev.
                    torch.nn.utils.clip_grad_norm_(self.flat.params, self.spec.grad_clip)
                self.optimizer.step()
                self.step += 1
                loss_sum += out.loss.detach() * out.count
                count += out.count
                samples += rows
                if out.correct is not None:
                    correct += out.correct
                    has_accuracy = True
        total = count.item()
        train_loss = loss_sum.item() / total
        if not math.isfinite(train_loss):
            raise DivergenceError(
                f"run {self.run_id} diverged in epoch {self.epoch}: mean training loss is {train_loss} "
                f"(epochs count from 0: this is epoch {self.epoch + 1} of {self.spec.epochs})"
            )
        stats = EpochStats(
            epoch=self.epoch,
            train_loss=train_loss,
            train_accuracy=correct.item() / total if has_accuracy else None,
            seconds=time.perf_counter() - start,
            samples=int(samples.item()),
        )
        self.epoch += 1
        return stats

    def _steps(self) -> Iterator[Iterator]:
        """Each step's batches: one minibatch, or in full-batch mode the whole training set in chunks."""
        if self.spec.full_batch:
            return iter([self.task.full_batch_chunks()])
        return (iter([batch]) for batch in self.task.batches(self.epoch))

    def _forward(self, batch: Any) -> StepLoss:
        with forward_context(self.spec.precision, self.task.device):
            return self.task.loss(batch)

    def _backward(self, batches: Iterator) -> tuple[StepLoss, int | torch.Tensor]:
        """Backward of one step's loss, and the step's rows. Full batch: each chunk's mean loss is weighted by its
        share of the training set, so the accumulated gradient is that of the mean loss over all samples."""
        if not self.spec.full_batch:
            batch = next(batches)
            out = self._forward(batch)
            if self.shard.world > 1:
                return self._backward_shared(out, _rows(batch))
            out.loss.backward()
            return out, _rows(batch)
        total = self.task.train_size
        loss = torch.zeros((), dtype=torch.float64, device=self.task.device)
        correct = torch.zeros((), dtype=torch.float64, device=self.task.device)
        for batch in batches:
            out = self._forward(batch)
            (out.loss * (out.count / total)).backward()
            loss += out.loss.detach().double() * (out.count / total)
            if out.correct is not None:
                correct += out.correct
        return StepLoss(loss, correct, total), total

    def _backward_shared(self, out: StepLoss, rows: int) -> tuple[StepLoss, torch.Tensor]:
        """One rank's backward: its mean loss weighted by world x its share of the global minibatch's samples,
        which DDP's mean over ranks turns into the gradient of the global mean loss. Ranks with equal parts get
        a weight of exactly 1. One all-reduce of four numbers gives the global loss, counts and rows."""
        device = self.task.device
        local = torch.stack(
            [
                out.loss.detach().double() * out.count,
                _number(out.count, device),
                out.correct.double() if out.correct is not None else _number(0, device),
                _number(rows, device),
            ]
        )
        loss_total, count, correct, all_rows = sum_across(local, self.shard).unbind()
        weight = (self.shard.world * out.count / count).to(out.loss.dtype)
        (out.loss * weight).backward()
        return StepLoss(loss_total / count, correct if out.correct is not None else None, count), all_rows


@contextmanager
def _recording_nondeterminism(found: set[str]) -> Iterator[None]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for w in caught:
        message = str(w.message)
        if "deterministic" in message:
            found.add(message.splitlines()[0])
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


def _number(value: int, device: torch.device) -> torch.Tensor:
    """A float64 scalar on `device` without host synchronisation: a fill kernel takes the value as its argument,
    where torch.tensor(value, device=cuda) copies it from the host and waits for the copy."""
    return torch.full((), value, dtype=torch.float64, device=device)


def _rows(batch: Any) -> int:
    """Rows of a minibatch (x, y): images, sequences, patches; a synthetic objective's step is one."""
    return len(batch[0]) if isinstance(batch, (tuple, list)) else 1


def build_trainer(spec: RunSpec, data: Any, device: torch.device, shard: Shard = SINGLE) -> Trainer:
    """A trainer at epoch 0; a replay then loads a checkpoint's state, RNG states included. `shard` is this
    process's rank of a run on several devices (its process group already joined)."""
    seed_global_generators(spec.seed, shard.rank)
    if spec.precision == "tf32" and device.type != "cuda":
        log.warning(
            "run %s: tf32 changes only CUDA matmuls and convolutions; on %s it computes in float32", spec.run_id, device
        )
    task = build_task(spec, data, device, shard)
    if spec.sync_batchnorm:
        if device.type != "cuda":
            raise ValueError(
                f"run {spec.run_id}: sync_batchnorm needs CUDA devices (torch's SyncBatchNorm has no CPU kernel); "
                f"this job trains on {device}"
            )
        task.model = nn.SyncBatchNorm.convert_sync_batchnorm(task.model)
    flat = FlatParameters(parameters(task.model))
    optimizer = build_optimizer(spec, flat.params)
    switch = None
    if schedule(spec.schedule).adaptive:
        switch = GeometrySwitch(flat.numel, spec.gawu_window, flat.buffer.device, flat.buffer.dtype)
    if shard.world > 1:
        task.model = replicate(task.model, device)
        flat.check_views()
    return Trainer(spec, task, flat, optimizer, schedule_for(spec, task.steps_per_epoch), switch, shard=shard)
