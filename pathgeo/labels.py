"""How runs are named in tables and figures: a run's one-line description, and within an experiment, labels that
name only the factors in which its runs differ.

Labels are made when the workflow is planned (a description needs the model registry, for what a model's width
means) and handed to aggregation and the claims table with each run's factors, which keeps those stages free of
torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pathgeo.columns import FACTORS
from pathgeo.models import Width, model
from pathgeo.spec import RunSpec


def format_value(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def describe(spec: RunSpec) -> str:
    """A run in one line, e.g. 'mnist1d mlp64 momentum lr=0.01 bs=64 seed=0'; the width is named where it is a size
    (hidden units, channels)."""
    name = spec.model
    if model(spec.model).width in (Width.HIDDEN, Width.CHANNELS):
        name = f"{spec.model}{spec.width}"
    return f"{spec.data.name} {name} {spec.optimizer} lr={format_value(spec.lr)} bs={spec.batch_size} seed={spec.seed}"


def run_labels(specs: Mapping[str, RunSpec]) -> dict[str, str]:
    """Short labels naming only what differs between the runs (e.g. 'optimizer=adam'); each run's description
    where nothing does."""
    factors = {run_id: spec.factors() for run_id, spec in specs.items()}
    varying = [f for f in FACTORS if len({str(v[f]) for v in factors.values()}) > 1]
    if not varying:
        return {run_id: describe(spec) for run_id, spec in specs.items()}
    return {run_id: " ".join(f"{k}={format_value(f[k])}" for k in varying) for run_id, f in factors.items()}
