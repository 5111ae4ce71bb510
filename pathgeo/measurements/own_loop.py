"""Measure a training loop of your own: `pathgeo.measure`.

    import pathgeo

    def run(observe):
        torch.manual_seed(0)                       # every generator the loop uses, seeded inside run
        model, optimizer, loader = ...
        for epoch in range(epochs):
            for x, y in loader:
                optimizer.zero_grad()
                loss = F.cross_entropy(model(x), y)
                loss.backward()
                observe(model, loss, optimizer)     # after backward, before the step
                optimizer.step()
            observe.end_epoch()
        return model

    result = pathgeo.measure(run, references=["final", 10])
    result.steps        # polars: one row per step and reference point (docs/measure.md lists the columns)
    result.matrices     # the h x h gradient correlation matrices, one row per entry

`measure` calls `run` twice. The first pass trains without the probe and keeps the reference points: the
trained weights at the end ("final") and after each epoch asked for by number. The second pass trains again,
with the probe, which needs w* from its first step. It must end bit-identical to the first (weights, buffers
and optimizer state), or the measurements would be of another path; if it does not, PassesDiffer gives the
drift and the usual causes. Without reference points there is one pass, which measures what needs no w*.

At its first call in a pass, `observe` makes the trained parameters (those of the model with requires_grad
that the optimizer holds) views of one flat buffer (pathgeo.training.flat), in both passes alike, so that both compute
on the same memory layout. A step of the second pass then costs the probe's fused pass, plus one copy of the
gradient where the loop sets gradients to None (optimizer.zero_grad()'s default); no other copy of the model
is made. The λ of the *_wd columns is read from the optimizer at every step as the workflow reads it
(pathgeo.training.optimizers.decay_in_gradient): the parameter groups' weight decay under coupled decay, 0 under
decoupled decay (AdamW), NaN (the columns null) where the groups' coupled decays differ.
"""

from __future__ import annotations

import copy
import math
import numbers
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from pathgeo.columns import LAGS
from pathgeo.engine.probe import Probe
from pathgeo.training.flat import FlatParameters, relative_drift
from pathgeo.training.optimizers import decay_in_gradient

if TYPE_CHECKING:
    import polars as pl

FINAL = "final"

CAUSES = (
    "measure needs run to repeat itself bit for bit. The usual causes: a generator not seeded inside run "
    "(torch.manual_seed, numpy, random; a DataLoader that shuffles needs generator=torch.Generator().manual_seed(...) "
    "built inside run), a non-deterministic kernel (call torch.use_deterministic_algorithms(True); on a GPU also "
    "set CUBLAS_WORKSPACE_CONFIG=:4096:8), DataLoader workers (num_workers > 0: seed each in worker_init_fn, or "
    "use num_workers=0), and state that outlives a pass (a model, optimizer, scheduler or iterator built outside run)"
)


class PassesDiffer(RuntimeError):
    """The second pass of `run` did not repeat the first, so its measurements would be of another path."""


@dataclass(frozen=True)
class Measurement:
    """What `measure` returns: `steps`, one row per step and reference point; `matrices`, the h x h gradient
    correlation matrices (docs/measure.md lists both tables' columns); `model`, the model the measured pass
    trained; `references`, each reference point's name and the epoch it was taken after."""

    steps: pl.DataFrame
    matrices: pl.DataFrame
    model: nn.Module
    references: dict[str, int]


def reference_epochs(references: Iterable[str | int] | str) -> dict[str, int | None]:
    """Each reference point's name (the table's `reference` column, named as the workflow names them) and
    epoch; None for "final", the end of run."""
    if isinstance(references, str):
        references = [references]
    named: dict[str, int | None] = {}
    for ref in references:
        if ref == FINAL:
            named[FINAL] = None
        elif isinstance(ref, numbers.Integral) and not isinstance(ref, bool) and ref >= 1:
            named[f"epoch{ref}"] = int(ref)
        else:
            raise ValueError(
                f"a reference point is 'final' or an epoch ≥ 1 (the weights after that many epochs), not {ref!r}"
            )
    return named


def learning_rate(optimizer: torch.optim.Optimizer) -> float:
    """The table's `lr`: the first parameter group's."""
    return float(optimizer.param_groups[0].get("lr", math.nan))


def gradient_decay(optimizer: torch.optim.Optimizer, groups: list[dict]) -> float:
    """The λ of the gradient G + λw that the optimizer is fed: the weight decay of the parameter `groups` that
    hold measured parameters under coupled decay, 0 under decoupled decay, NaN where those groups differ."""
    if not decay_in_gradient(optimizer):
        return 0.0
    decays = {float(group.get("weight_decay", 0.0)) for group in groups}
    return decays.pop() if len(decays) == 1 else math.nan


class Observer:
    """What `run` receives as `observe`: call `observe(model, loss, optimizer)` after `loss.backward()` and
    before `optimizer.step()`, and `observe.end_epoch()` after every epoch. `snapshot_epochs` are the epochs
    after which the trained weights are kept (the first pass's reference points); `probe` builds the probe
    at the first step (the second pass), from the flat parameters and the epoch the step is in."""

    def __init__(
        self, snapshot_epochs: Collection[int] = (), probe: Callable[[FlatParameters, int], Probe] | None = None
    ):
        self._snapshot_epochs = frozenset(snapshot_epochs)
        self._make_probe = probe
        self.model: nn.Module | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self.flat: FlatParameters | None = None
        self.probe: Probe | None = None
        self.snapshots: dict[int, torch.Tensor] = {}
        self._epoch_lengths: list[int] = []
        self._steps = 0
        self._groups: list[dict] = []

    def __call__(self, model: nn.Module, loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
        if self.flat is None:
            self._start(model, optimizer)
        elif model is not self.model or optimizer is not self.optimizer:
            raise ValueError(
                "observe was called with another model or optimizer than at its first call: a pass follows one "
                "model and its optimizer (build them once inside run)"
            )
        if self.probe is not None:
            self.probe.after_backward(loss, learning_rate(optimizer), gradient_decay(optimizer, self._groups))
        self._steps += 1

    def end_epoch(self) -> None:
        self._epoch_lengths.append(self._steps)
        self._steps = 0
        epochs = len(self._epoch_lengths)
        if epochs in self._snapshot_epochs:
            if self.flat is None:
                raise RuntimeError(
                    f"observe.end_epoch() ended epoch {epochs}, a reference point, before any "
                    f"observe(model, loss, optimizer): call observe at every step"
                )
            self.snapshots[epochs] = self.flat.weights.detach().clone()
        if self.probe is not None:
            self.probe.end_epoch()

    @property
    def steps_per_epoch(self) -> list[int]:
        """The steps of each epoch so far, the unfinished one's too if it has begun."""
        return self._epoch_lengths + ([self._steps] if self._steps else [])

    def _start(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(
                f"observe(model, loss, optimizer): model must be a torch.nn.Module, not {type(model).__name__}"
            )
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(
                f"observe(model, loss, optimizer): optimizer must be a torch.optim.Optimizer, not "
                f"{type(optimizer).__name__}"
            )
        in_model = {id(p) for p in model.parameters()}
        held = [p for group in optimizer.param_groups for p in group["params"]]
        foreign = sum(p.requires_grad and id(p) not in in_model for p in held)
        if foreign:
            raise ValueError(
                f"the optimizer trains {foreign} parameter tensor(s) that are not the model's: pass observe the "
                f"module that holds every trained parameter"
            )
        trained = {id(p) for p in held}
        named = [(name, p) for name, p in model.named_parameters() if p.requires_grad and id(p) in trained]
        if not named:
            raise ValueError("the optimizer trains none of the model's parameters (with requires_grad)")
        self.model, self.optimizer = model, optimizer
        self.flat = FlatParameters([p for _, p in named], [name for name, _ in named], zero_missing=False)
        measured = {id(p) for _, p in named}
        self._groups = [g for g in optimizer.param_groups if any(id(p) in measured for p in g["params"])]
        if self._make_probe is not None:
            self.probe = self._make_probe(self.flat, len(self._epoch_lengths))


def measure(
    run: Callable[[Observer], nn.Module],
    references: Iterable[str | int] | str = (FINAL,),
    *,
    window: int = 5,
    lags: tuple[int, ...] = LAGS,
    lagged: str = "anchored",
    matrix_epochs: Collection[int] | None = None,
    backend: str = "auto",
) -> Measurement:
    """Measure the training loop `run` (see the module's docstring). `references`: "final" (the end of run)
    and epochs (the weights after that many epochs); none: one pass, only what needs no w*. `window`, `lags`,
    `lagged`, `matrix_epochs` and `backend` are the probe's (pathgeo.engine.probe.Probe)."""
    wanted = reference_epochs(references)
    settings: dict[str, Any] = {
        "window": window,
        "lags": lags,
        "lagged": lagged if wanted else "off",
        "matrix_epochs": matrix_epochs,
        "backend": backend,
    }
    if not wanted:
        only = Observer(probe=lambda flat, epoch: Probe(flat, {}, start_epoch=epoch, **settings))
        model = _run(run, only)
        return Measurement(only.probe.finish(), only.probe.correlation_matrices(), model, {})

    first = Observer(snapshot_epochs={e for e in wanted.values() if e is not None})
    first_model = _run(run, first)
    first_lengths = first.steps_per_epoch
    epochs = len(first_lengths)
    missing = {name: e for name, e in wanted.items() if e is not None and e not in first.snapshots}
    if missing:
        raise ValueError(
            f"reference points {missing} lie past the run's end: run called observe.end_epoch() {epochs} time(s); "
            f"call it after every epoch"
        )
    points = {
        name: first.flat.weights.detach().clone() if e is None else first.snapshots[e] for name, e in wanted.items()
    }
    names = first.flat.names
    # The end of the first pass, on the host: the second pass then has the device's memory to itself.
    end_weights = first.flat.weights.detach().to("cpu", copy=True)
    end_state = _snapshot(first_model, first.optimizer)
    del first, first_model

    def probe(flat: FlatParameters, epoch: int) -> Probe:
        if flat.names != names:
            raise PassesDiffer(
                f"the two passes differ: the first trained parameters {_listed(names)}, the second "
                f"{_listed(flat.names)}. {CAUSES}"
            )
        built = Probe(flat, points, start_epoch=epoch, **settings)
        points.clear()  # the probe holds its own copy of each
        return built

    second = Observer(probe=probe)
    model = _run(run, second)
    _check_identical(first_lengths, end_weights, end_state, second, model)
    steps, matrices = second.probe.finish(), second.probe.correlation_matrices()
    return Measurement(steps, matrices, model, {name: epochs if e is None else e for name, e in wanted.items()})


def _run(run: Callable[[Observer], nn.Module], observer: Observer) -> nn.Module:
    model = run(observer)
    if observer.flat is None:
        raise RuntimeError(
            "run never called observe(model, loss, optimizer): call it in the loop after loss.backward() and "
            "before optimizer.step()"
        )
    if not isinstance(model, nn.Module):
        raise TypeError(f"run must return the trained torch.nn.Module; it returned {type(model).__name__}")
    return model


def _snapshot(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """The model's state and the optimizer's, copied to the host (the second pass then has the device)."""
    return {"model": _to_host(model.state_dict()), "optimizer": _to_host(optimizer.state_dict())}


def _to_host(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, Mapping):
        return {k: _to_host(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_to_host(v) for v in value)
    return copy.deepcopy(value)


@dataclass
class Difference:
    """Entries compared, entries that differ, and the largest absolute difference of a floating tensor."""

    entries: int = 0
    differ: int = 0
    largest: float = 0.0

    def add(self, first: Any, second: Any) -> None:
        if isinstance(first, Mapping) and isinstance(second, Mapping) and first.keys() == second.keys():
            for key in first:
                self.add(first[key], second[key])
            return
        if isinstance(first, (list, tuple)) and isinstance(second, (list, tuple)) and len(first) == len(second):
            for a, b in zip(first, second, strict=True):
                self.add(a, b)
            return
        self.entries += 1
        if not _same(first, second):
            self.differ += 1
            if (
                isinstance(first, torch.Tensor)
                and isinstance(second, torch.Tensor)
                and first.shape == second.shape
                and first.is_floating_point()
                and second.is_floating_point()
            ):
                self.largest = max(self.largest, (first.double() - second.cpu().double()).abs().max().item())

    def __str__(self) -> str:
        return f"{self.differ} of {self.entries} entries differ (largest difference {self.largest:.3g})"


def _same(first: Any, second: Any) -> bool:
    """Bit for bit, NaN equal to NaN (a run that diverged in both passes alike is the same run)."""
    if isinstance(first, torch.Tensor) or isinstance(second, torch.Tensor):
        if not (isinstance(first, torch.Tensor) and isinstance(second, torch.Tensor)):
            return False
        second = second.detach().cpu()
        if first.shape != second.shape or first.dtype != second.dtype:
            return False
        if first.is_floating_point() or first.is_complex():
            return bool(((first == second) | (first.isnan() & second.isnan())).all())
        return torch.equal(first, second)
    if isinstance(first, float) and isinstance(second, float) and math.isnan(first) and math.isnan(second):
        return True
    if isinstance(first, (Mapping, list, tuple)) or isinstance(second, (Mapping, list, tuple)):
        return False
    return first == second


def _check_identical(
    first_lengths: list[int], end_weights: torch.Tensor, end_state: dict[str, Any], second: Observer, model: nn.Module
) -> None:
    """Raise PassesDiffer unless the second pass took the first one's steps and ended in its exact state."""
    if second.steps_per_epoch != first_lengths:
        raise PassesDiffer(
            f"the two passes differ: the first made {_listed(first_lengths)} steps per epoch, the second "
            f"{_listed(second.steps_per_epoch)}. {CAUSES}"
        )
    weights, states = Difference(), Difference()
    weights.add(end_weights, second.flat.weights)
    states.add(end_state, _snapshot(model, second.optimizer))
    if weights.differ or states.differ:
        drift = relative_drift(second.flat.weights, end_weights)
        raise PassesDiffer(
            f"the two passes differ: the second ended at a relative drift of {drift:.3g} from the first's trained "
            f"weights; of the model's state (weights and buffers) and the optimizer's, {states}. {CAUSES}"
        )


def _listed(values: list) -> str:
    return str(values) if len(values) <= 8 else f"[{', '.join(map(str, values[:8]))}, ... ({len(values)} in all)]"
