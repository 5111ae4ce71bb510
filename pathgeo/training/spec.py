"""Run specifications and their identities.

A run is fully described by a `RunSpec`. Its id is a readable slug plus a short hash of the canonical JSON,
so two experiments that ask for the same run share one directory under results/runs/.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from pathgeo import plugins
from pathgeo.training import models
from pathgeo.training.schedules import schedule

# Run fields added after the first runs existed: at these values they are left out of the canonical JSON.
OPTIONAL_DEFAULTS = {
    "grad_clip": None,
    "model_options": {},
    "full_batch": False,
    "warmup_growth": 0.0,
    "gawu_window": 5,
    "devices": 1,
    "sync_batchnorm": False,
    "optimizer_options": {},
}

# The usual value of each field that a run's name (its slug, its description) leaves out where it has it.
USUAL_VALUES = {
    **OPTIONAL_DEFAULTS,
    "weight_decay": 0.0,
    "schedule": "constant",
    "warmup_epochs": 0,
    "data_order_seed": 0,
    "precision": "float32",
}

# A slug is a directory name: it is cut here (the hash still tells runs apart).
MAX_SLUG = 160


@dataclass(frozen=True)
class DataSpec:
    """A prepared dataset: its name in the config, its kind (which generator or loader) and parameters."""

    name: str
    kind: str
    params: dict[str, Any] = field(default_factory=dict)

    def canonical(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "params": dict(sorted(self.params.items()))}


@dataclass(frozen=True)
class RunSpec:
    """Everything that determines a training trajectory; nothing that does not."""

    data: DataSpec
    model: str
    width: float
    optimizer: str
    lr: float
    weight_decay: float
    schedule: str
    warmup_epochs: int
    batch_size: int
    epochs: int
    seed: int
    data_order_seed: int
    precision: str
    grad_clip: float | None = None
    model_options: dict[str, Any] = field(default_factory=dict)
    # Full-batch gradient descent: one step per epoch on the gradient of the whole training set, summed
    # over chunks of `batch_size` samples (the chunk size stays in the identity: batch norm sees chunks).
    full_batch: bool = False
    # The exponential warm-up's omega: the LR grows by exp(omega) every step (exp_warmup_cosine, gawu).
    warmup_growth: float = 0.0
    # gawu: the window h of the mean gradient correlation whose turn from positive to negative ends the warm-up.
    gawu_window: int = 5
    # Devices of one node the run trains on (DistributedDataParallel, one process each); `batch_size` stays the
    # global minibatch, split by rank. Batch norm normalises each rank's part unless `sync_batchnorm`.
    devices: int = 1
    sync_batchnorm: bool = False
    # The optimizer's keyword arguments besides lr and weight_decay (betas, eps, nesterov, ...).
    optimizer_options: dict[str, Any] = field(default_factory=dict)

    def canonical(self) -> dict[str, Any]:
        spec = asdict(self)
        spec["data"] = self.data.canonical()
        spec["model_options"] = dict(sorted(self.model_options.items()))
        spec["optimizer_options"] = dict(sorted(self.optimizer_options.items()))
        # Optional fields at their default are left out, so adding one does not rename existing runs.
        for optional, default in OPTIONAL_DEFAULTS.items():
            if spec[optional] == default:
                del spec[optional]
        return spec

    def canonical_json(self) -> str:
        return json.dumps(self.canonical(), sort_keys=True, separators=(",", ":"))

    @property
    def run_id(self) -> str:
        digest = hashlib.sha256(self.canonical_json().encode()).hexdigest()[:8]
        return f"{self.slug}-{digest}"

    @property
    def slug(self) -> str:
        """The run's fields in a name, leaving out those at their usual value (no weight decay, constant LR,
        float32, one device, no options, data order seed 0), so that runs shown side by side differ in their names wherever
        they differ: `mnist1d-mlp64-momentum-lr0.01-wd1e-05-bs64-e30-s0`,
        `mnist1d-mlp64-sgd-lr0.001-bs1000-gawu-wu25-g0.1-e40-s0`, `mnist1d-mlp64-sgd-lr0.5-full-chunk1000-e300-s0`."""
        optimizer = plugins.slug(self.optimizer) if plugins.is_plugin(self.optimizer) else self.optimizer
        parts = [self.data.name, models.slug(self.model, self.width), optimizer, *_option_slugs(self.optimizer_options)]
        parts.append(f"lr{self.lr:.3g}")
        if self.weight_decay:
            parts.append(f"wd{self.weight_decay:.3g}")
        parts += ["full", f"chunk{self.batch_size}"] if self.full_batch else [f"bs{self.batch_size}"]
        if schedule(self.schedule).slug:
            parts.append(schedule(self.schedule).slug)
        if self.warmup_epochs:
            parts.append(f"wu{self.warmup_epochs}")
        if self.warmup_growth:
            parts.append(f"g{self.warmup_growth:.3g}")
        if self.gawu_window != USUAL_VALUES["gawu_window"]:
            parts.append(f"h{self.gawu_window}")
        parts += [f"e{self.epochs}", f"s{self.seed}"]
        if self.data_order_seed:
            parts.append(f"o{self.data_order_seed}")
        if self.precision != USUAL_VALUES["precision"]:
            parts.append(self.precision)
        if self.devices != USUAL_VALUES["devices"]:
            parts.append(f"dev{self.devices}")
        if self.sync_batchnorm:
            parts.append("syncbn")
        if self.grad_clip is not None:
            parts.append(f"clip{self.grad_clip:.3g}")
        parts += _option_slugs(self.model_options)
        return re.sub(r"[^A-Za-z0-9_.+-]", "_", "-".join(parts))[:MAX_SLUG]

    @property
    def budget_dependent(self) -> bool:
        return schedule(self.schedule).budget_dependent

    def factors(self) -> dict[str, Any]:
        """The columns figures facet and colour by: every field an experiment can vary (pathgeo.columns.FACTORS).
        The LR is `peak_lr` here because `lr` is the per-step column of the measurements (it differs under a
        schedule); options are text (`options_text`), one level per set of options."""
        return {
            "dataset": self.data.name,
            "model": self.model,
            "width": self.width,
            "optimizer": self.optimizer,
            "peak_lr": self.lr,
            "batch_size": self.batch_size,
            "seed": self.seed,
            "weight_decay": self.weight_decay,
            "schedule": self.schedule,
            "warmup_epochs": self.warmup_epochs,
            "full_batch": self.full_batch,
            "epochs": self.epochs,
            "precision": self.precision,
            "devices": self.devices,
            "data_order_seed": self.data_order_seed,
            "grad_clip": self.grad_clip,
            "warmup_growth": self.warmup_growth,
            "gawu_window": self.gawu_window,
            "sync_batchnorm": self.sync_batchnorm,
            "model_options": options_text(self.model_options),
            "optimizer_options": options_text(self.optimizer_options),
        }

    @classmethod
    def from_canonical(cls, spec: dict[str, Any]) -> RunSpec:
        fields = dict(spec)
        fields["data"] = DataSpec(**fields["data"])
        return cls(**fields)


def options_text(options: dict[str, Any]) -> str:
    """Options as a figure's legend names them: `betas=[0.9, 0.95], eps=1e-06`; `none` where there are none."""
    if not options:
        return "none"
    return ", ".join(f"{key}={json.dumps(value)}" for key, value in sorted(options.items()))


def _option_slugs(options: dict[str, Any]) -> list[str]:
    """Options as slug parts: `nesterov`, `nonesterov`, `betas0.9_0.95`, `heads4`."""
    return [_option_slug(key, value) for key, value in sorted(options.items())]


def _option_slug(key: str, value: Any) -> str:
    if isinstance(value, bool):
        return key if value else f"no{key}"
    if isinstance(value, (list, tuple)):
        return key + "_".join(_option_slug("", v) for v in value)
    return f"{key}{value:.3g}" if isinstance(value, float) else f"{key}{value}"


def scaled_lr(lr: float, batch_size: int, base_batch_size: int | None) -> float:
    """The paper's square-root scaling: `lr` is the LR at `base_batch_size`."""
    if base_batch_size is None:
        return lr
    return lr * math.sqrt(batch_size / base_batch_size)
