"""The optimizer registry: every optimizer a run can name, and how each applies weight decay.

A run's `optimizer` is
- any torch.optim optimizer by its lower-case class name: sgd, adam, adamw, rmsprop, nadam, radam, adagrad,
  adadelta, adamax, asgd, rprop, adafactor (all of `OPTIMIZERS` but the aliases);
- an alias (`ALIASES`): `momentum`, SGD with momentum 0.9, the papers' name for it;
- `<module>:<Class>`: the user's own torch.optim.Optimizer subclass, importable from the working directory
  (pathgeo.plugins).
Its `optimizer_options` are the class's keyword arguments (betas, eps, nesterov, momentum, ...). The run's LR and
weight decay are the optimizer's `lr` and `weight_decay`; the trainer sets both on every parameter group before
each step, from the schedule, so they are run fields and never options. Adding an alias touches `ALIASES` and
its test (tests/test_optimizers.py); the config schema's `optimizer` enum comes from `OPTIMIZERS`.

Weight decay, and what the probe's `*_wd` columns measure. Coupled (L2) decay feeds the optimizer G + λw: SGD,
momentum, Adam, RMSprop, Adagrad, Adadelta, Adamax, ASGD, NAdam and RAdam step on the gradient of the loss plus
λ/2 ‖w‖². Decoupled decay feeds the optimizer G alone and shrinks the weights by ηλw beside its step (AdamW;
Adam, NAdam and RAdam with `decoupled_weight_decay: true`; Adafactor), so G + λw is not what it follows.
`decay_in_gradient` tells the two apart: the `*_wd` columns are the geometry of the gradient the optimizer is fed
(G + λw under coupled decay, G itself under decoupled decay, where they equal the plain columns), and the
`upd_*` columns that of the step actually taken, decay included. A user's class counts as decoupled when its
parameter groups carry `decoupled_weight_decay: True` (torch's own convention), as coupled otherwise.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import torch

from pathgeo import plugins
from pathgeo.registry import lookup
from pathgeo.training.spec import RunSpec

# torch.optim's optimizers that this training loop cannot drive, and why.
UNSUPPORTED = {
    "lbfgs": "its step re-evaluates the loss through a closure, so one step is not one gradient",
    "sparseadam": "it takes sparse gradients only, and pathgeo's gradients are one dense buffer",
    "muon": "it takes 2-D parameters only, and pathgeo hands every parameter to one optimizer",
}

# Optimizers with decoupled decay whose parameter groups do not say so (AdamW's and Adam's do).
DECOUPLED = (torch.optim.Adafactor,)

# Set by the run, not by optimizer_options.
RUN_ARGUMENTS = ("params", "lr", "weight_decay")


@dataclass(frozen=True)
class Optimizer:
    name: str
    cls: type[torch.optim.Optimizer]
    settings: Mapping[str, Any] = field(default_factory=dict)

    @property
    def _parameters(self) -> Mapping[str, inspect.Parameter]:
        return inspect.signature(self.cls).parameters

    @property
    def takes_weight_decay(self) -> bool:
        return "weight_decay" in self._parameters or self._takes_any_keyword

    @property
    def _takes_any_keyword(self) -> bool:
        return any(p.kind is inspect.Parameter.VAR_KEYWORD for p in self._parameters.values())

    @property
    def options(self) -> list[str]:
        """The keyword arguments `optimizer_options` may set."""
        keyword = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        return sorted(n for n, p in self._parameters.items() if n not in RUN_ARGUMENTS and p.kind in keyword)

    def option_error(self, options: Mapping[str, Any]) -> str | None:
        """What is wrong with these `optimizer_options`, or None."""
        run_set = sorted(set(options) & set(RUN_ARGUMENTS))
        if run_set:
            return f"{run_set} are run fields (the schedule sets lr and weight_decay each step): set them there"
        unknown = sorted(set(options) - set(self.options))
        if unknown and not self._takes_any_keyword:
            return f"{self.cls.__module__}.{self.cls.__qualname__} takes no option {unknown}; its options are {self.options}"
        return None

    def build(self, spec: RunSpec, params: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
        arguments = {"lr": spec.lr, **self.settings, **spec.optimizer_options}
        if self.takes_weight_decay:
            arguments["weight_decay"] = spec.weight_decay
        return self.cls(params, **arguments)

    def step_scale(self, options: Mapping[str, Any] | None = None) -> float | None:
        """How much longer than lr x G a step is in the steady state of constant gradients, under the run's
        `optimizer_options`: (1 - dampening)/(1 - beta) under heavy-ball momentum beta, Nesterov's too (torch allows
        it no dampening), 1 for plain SGD; None where no single factor exists (Adam's step is per coordinate, a
        user's class is unknown). The step to compare with the locally optimal LR is lr x step_scale."""
        if self.cls is not torch.optim.SGD:
            return None
        settings = {**self.settings, **(options or {})}
        return (1 - settings.get("dampening", 0.0)) / (1 - settings.get("momentum", 0.0))


def _torch_optimizers() -> dict[str, Optimizer]:
    classes = {
        name.lower(): cls
        for name, cls in vars(torch.optim).items()
        if isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer) and cls is not torch.optim.Optimizer
    }
    return {name: Optimizer(name, cls) for name, cls in classes.items() if name not in UNSUPPORTED}


ALIASES = (Optimizer("momentum", torch.optim.SGD, {"momentum": 0.9}),)

OPTIMIZERS = dict(sorted({**_torch_optimizers(), **{entry.name: entry for entry in ALIASES}}.items()))


def optimizer(name: str) -> Optimizer:
    """The optimizer a run names; an unknown or unusable one is a KeyError or a PluginError that says why."""
    if plugins.is_plugin(name):
        return _user_optimizer(name)
    if name in UNSUPPORTED:
        raise KeyError(f"optimizer '{name}' cannot drive pathgeo's training loop: {UNSUPPORTED[name]}")
    return lookup(OPTIMIZERS, name, "optimizer")


@cache
def _user_optimizer(reference: str) -> Optimizer:
    cls = plugins.resolve(reference)
    if not (isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer)):
        raise plugins.PluginError(f"'{reference}' is not a torch.optim.Optimizer subclass")
    return Optimizer(reference, cls)


def build_optimizer(spec: RunSpec, params: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
    return optimizer(spec.optimizer).build(spec, params)


def decay_in_gradient(built: torch.optim.Optimizer) -> bool:
    """Whether the optimizer is fed G + λw (coupled decay) rather than G with the decay applied to the weights."""
    if isinstance(built, DECOUPLED):
        return False
    return not any(group.get("decoupled_weight_decay", False) for group in built.param_groups)
