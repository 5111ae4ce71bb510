"""The one training loop. Reference training and replay both call `train_epoch`; replay only passes an
observer, which reads parameters and gradients after backward and before the optimizer step."""

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

from pathgeo.data.task import StepLoss, Task, build_task, parameters
from pathgeo.flat import FlatParameters
from pathgeo.optimizers import build_optimizer, decay_in_gradient
from pathgeo.randomness import capture_rng_state, restore_rng_state, seed_global_generators
from pathgeo.schedules import Schedule, schedule_for
from pathgeo.spec import RunSpec
from pathgeo.warmup import GeometrySwitch

log = logging.getLogger("pathgeo")


PROGRESS_SECONDS = 60.0


class DivergenceError(RuntimeError):
    """The loss became NaN or infinite. Nothing after this point is a valid result."""


class Observer(Protocol):
    def after_backward(self, loss: torch.Tensor, lr: float, weight_decay: float) -> None:
        """`weight_decay` is the λ of the gradient the optimizer is fed, G + λw: the step's weight decay under
        coupled decay, 0 under decoupled decay (pathgeo.optimizers)."""


@dataclass
class EpochStats:
    epoch: int
    train_loss: float
    train_accuracy: float | None
    seconds: float


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

    @property
    def run_id(self) -> str:
        return self.spec.run_id

    def state(self) -> dict:
        """Checkpoint contents: a snapshot that later steps do not change. Parameters are cloned so a saved
        file holds each one once rather than the whole flat buffer."""
        return {
            "run_id": self.run_id,
            "spec": self.spec.canonical(),
            "epoch": self.epoch,
            "step": self.step,
            "model": {k: v.detach().clone() for k, v in self.task.model.state_dict().items()},
            "optimizer": copy.deepcopy(self.optimizer.state_dict()),
            "rng": capture_rng_state(),
            **({"warmup": self.switch.state()} if self.switch is not None else {}),
        }

    def load_state(self, state: dict) -> None:
        if state["run_id"] != self.run_id:
            raise ValueError(f"checkpoint belongs to run {state['run_id']}, not {self.run_id}")
        # load_state_dict copies in place, so parameters stay views of the flat buffer.
        self.task.model.load_state_dict(state["model"])
        # torch keeps state tensors of the right device and dtype by reference; without the copy the
        # replay would advance the caller's checkpoint in place.
        self.optimizer.load_state_dict(copy.deepcopy(state["optimizer"]))
        restore_rng_state(state["rng"])
        if self.switch is not None:
            self.switch.load_state(state["warmup"])
        self.epoch, self.step = state["epoch"], state["step"]
        self.flat.check_views()

    def train_epoch(self, observer: Observer | None = None) -> EpochStats:
        start = time.perf_counter()
        task, model = self.task, self.task.model
        # Running sums stay on the device: one host synchronisation per epoch, not per step.
        loss_sum = torch.zeros((), dtype=torch.float64, device=task.device)
        correct = torch.zeros((), dtype=torch.float64, device=task.device)
        count = 0
        has_accuracy = False
        model.train()
        last_report = start
        coupled = decay_in_gradient(self.optimizer)
        with _recording_nondeterminism(self.nondeterministic_ops):
            for i, batches in enumerate(self._steps()):
                if time.perf_counter() - last_report > PROGRESS_SECONDS:
                    # Long epochs (ImageNet: thousands of steps) show that they move; no device sync needed.
                    last_report = time.perf_counter()
                    log.info("run %s epoch %d: step %d/%d", self.run_id, self.epoch, i, task.steps_per_epoch)
                self.flat.zero_grad()
                out = self._backward(batches)
                if self.switch is not None:
                    self.switch.observe(self.flat.grads, self.step)
                    if self.switch.switch_step == self.step:
                        log.info("run %s: GAWU ends the warm-up at step %d (epoch %d)", self.run_id, self.step, self.epoch)
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
                if out.correct is not None:
                    correct += out.correct
                    has_accuracy = True
        train_loss = loss_sum.item() / count
        if not math.isfinite(train_loss):
            raise DivergenceError(
                f"run {self.run_id} diverged in epoch {self.epoch}: mean training loss is {train_loss} "
                f"(epochs count from 0: this is epoch {self.epoch + 1} of {self.spec.epochs})"
            )
        stats = EpochStats(
            epoch=self.epoch,
            train_loss=train_loss,
            train_accuracy=correct.item() / count if has_accuracy else None,
            seconds=time.perf_counter() - start,
        )
        self.epoch += 1
        return stats

    def _steps(self) -> Iterator[Iterator]:
        """Each step's batches: one minibatch, or in full-batch mode the whole training set in chunks."""
        if self.spec.full_batch:
            return iter([self.task.full_batch_chunks()])
        return (iter([batch]) for batch in self.task.batches(self.epoch))

    def _backward(self, batches: Iterator) -> StepLoss:
        """Backward of one step's loss. Full batch: each chunk's mean loss is weighted by its share of the
        training set, so the accumulated gradient is that of the mean loss over all samples."""
        if not self.spec.full_batch:
            out = self.task.loss(next(batches))
            out.loss.backward()
            return out
        total = self.task.train_size
        loss = torch.zeros((), dtype=torch.float64, device=self.task.device)
        correct = torch.zeros((), dtype=torch.float64, device=self.task.device)
        for batch in batches:
            out = self.task.loss(batch)
            (out.loss * (out.count / total)).backward()
            loss += out.loss.detach().double() * (out.count / total)
            if out.correct is not None:
                correct += out.correct
        return StepLoss(loss, correct, total)


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


def build_trainer(spec: RunSpec, data: Any, device: torch.device) -> Trainer:
    """A trainer at epoch 0; a replay then loads a checkpoint's state, RNG states included."""
    seed_global_generators(spec.seed)
    task = build_task(spec, data, device)
    flat = FlatParameters(parameters(task.model))
    optimizer = build_optimizer(spec, flat.params)
    switch = None
    if spec.schedule == "gawu":
        switch = GeometrySwitch(flat.numel, spec.gawu_window, flat.buffer.device, flat.buffer.dtype)
    return Trainer(spec, task, flat, optimizer, schedule_for(spec, task.steps_per_epoch), switch)
