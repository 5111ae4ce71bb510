"""How runs are named in tables and figures: a run's one-line description, and within an experiment, labels that
name only the factors in which its runs differ. Both name every field of the run specs that tells them apart
(its options, the schedule and warm-up, full batch, precision, ...), not only the factors figures facet by.

Labels are made when the workflow is planned (a description needs the model registry, for what a model's width
means) and handed to aggregation and the claims table with each run's factors, which keeps those stages free of
torch.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

from pathgeo.training.models import Width, model, slug
from pathgeo.training.spec import USUAL_VALUES, RunSpec


def format_value(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "(" + ", ".join(format_value(v) for v in value) + ")"
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def facets(spec: RunSpec) -> dict[str, str]:
    """Every field of the run by the name labels give it (`peak_lr` for the LR, each option by its own name), as
    labels show it. A model of one size has no width."""
    shown: dict[str, Any] = {"dataset": spec.data.name, "model": spec.model}
    if model(spec.model).width is not Width.NONE:
        shown["width"] = spec.width
    shown["optimizer"] = spec.optimizer
    shown |= spec.optimizer_options
    shown |= {
        "peak_lr": spec.lr,
        "weight_decay": spec.weight_decay,
        "batch_size": spec.batch_size,
        "full_batch": spec.full_batch,
        "schedule": spec.schedule,
        "warmup_epochs": spec.warmup_epochs,
        "warmup_growth": spec.warmup_growth,
        "gawu_window": spec.gawu_window,
        "epochs": spec.epochs,
        "seed": spec.seed,
        "data_order_seed": spec.data_order_seed,
        "precision": spec.precision,
        "devices": spec.devices,
        "sync_batchnorm": spec.sync_batchnorm,
        "grad_clip": spec.grad_clip,
    }
    shown |= spec.model_options
    return {name: format_value(value) for name, value in shown.items()}


# Named in every description (the rest only where they are not at their usual value).
_DESCRIBED = ("dataset", "model", "width", "optimizer", "peak_lr", "batch_size", "full_batch", "epochs", "seed")


def describe(spec: RunSpec) -> str:
    """A run in one line: 'mnist1d mlp64 momentum lr=0.01 bs=64 30 epochs seed=0 weight_decay=1e-05', then every
    other field that is not at its usual value, e.g. 'schedule=gawu warmup_epochs=25 warmup_growth=0.1' or
    'betas=(0.9, 0.95)'. The width is named where the model has one (mlp64, cifar_resnet18x2); a full-batch run
    reads 'full batch (chunks of 1000)'."""
    shown = facets(spec)
    batch = f"full batch (chunks of {spec.batch_size})" if spec.full_batch else f"bs={spec.batch_size}"
    words = [
        spec.data.name,
        slug(spec.model, spec.width),
        spec.optimizer,
        f"lr={shown['peak_lr']}",
        batch,
        f"{spec.epochs} epochs",
        f"seed={spec.seed}",
    ]
    usual = {name: format_value(value) for name, value in USUAL_VALUES.items()}
    words += [f"{name}={value}" for name, value in shown.items() if name not in _DESCRIBED and usual.get(name) != value]
    return " ".join(words)


def run_descriptions(specs: Mapping[str, RunSpec]) -> dict[str, str]:
    """Each run's description; where two runs would read the same (an LR equal to 3 digits), with its run id."""
    described = {run_id: describe(spec) for run_id, spec in specs.items()}
    count = Counter(described.values())
    return {run_id: text if count[text] == 1 else f"{text} · {run_id}" for run_id, text in described.items()}


def run_labels(specs: Mapping[str, RunSpec]) -> dict[str, str]:
    """Short labels naming only what differs between the runs (e.g. 'optimizer=adam peak_lr=0.001'); each run's
    description where nothing does."""
    shown = {run_id: facets(spec) for run_id, spec in specs.items()}
    names = list(dict.fromkeys(name for run in shown.values() for name in run))
    varying = [name for name in names if len({run.get(name) for run in shown.values()}) > 1]
    if not varying:
        return run_descriptions(specs)
    return {run_id: " ".join(f"{name}={run[name]}" for name in varying if name in run) for run_id, run in shown.items()}
