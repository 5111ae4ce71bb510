"""Run specifications and their identities.

A run is fully described by a `RunSpec`. Its id is a readable slug plus a short hash of the canonical JSON,
so two experiments that ask for the same run share one directory under results/runs/.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

from pathgeo.models import model as model_entry

SCHEDULES = ("constant", "warmup_cosine", "final_drop", "exp_warmup_cosine", "gawu")

# Schedules whose LR at a given step depends on the total number of epochs: a checkpoint of such a run
# before the end is not the end point of a shorter run, so it cannot stand for another epoch budget.
BUDGET_DEPENDENT_SCHEDULES = frozenset({"warmup_cosine", "final_drop", "exp_warmup_cosine", "gawu"})


# Run fields added after the first runs existed: at these values they are left out of the canonical JSON.
OPTIONAL_DEFAULTS = {
    "grad_clip": None,
    "model_options": {},
    "full_batch": False,
    "warmup_growth": 0.0,
    "gawu_window": 5,
    "devices": 1,
    "sync_batchnorm": False,
}


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

    def canonical(self) -> dict[str, Any]:
        spec = asdict(self)
        spec["data"] = self.data.canonical()
        spec["model_options"] = dict(sorted(self.model_options.items()))
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
        model = model_entry(self.model).slug(self.width)
        batch = "full" if self.full_batch else f"bs{self.batch_size}"
        return f"{self.data.name}-{model}-{self.optimizer}-lr{self.lr:.3g}-{batch}-e{self.epochs}-s{self.seed}"

    @property
    def budget_dependent(self) -> bool:
        return self.schedule in BUDGET_DEPENDENT_SCHEDULES

    def factors(self) -> dict[str, Any]:
        """The columns figures facet and colour by. The LR is `peak_lr` here because `lr` is the per-step
        column of the measurements (it differs under a schedule)."""
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
        }

    @classmethod
    def from_canonical(cls, spec: dict[str, Any]) -> RunSpec:
        fields = dict(spec)
        fields["data"] = DataSpec(**fields["data"])
        return cls(**fields)


def scaled_lr(lr: float, batch_size: int, base_batch_size: int | None) -> float:
    """The paper's square-root scaling: `lr` is the LR at `base_batch_size`."""
    if base_batch_size is None:
        return lr
    return lr * math.sqrt(batch_size / base_batch_size)
