"""A config's experiments expanded into run specs, each checked against the keys that set it: a model against its
dataset's kind, an optimizer's options and weight decay, a batch size against the dataset's size, full batch,
devices, the schedule's warm-up. Every error names the most specific key that set the field."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable
from typing import Any

from pathgeo.planning.config_errors import ConfigError
from pathgeo.plugins import PluginError
from pathgeo.training.data import kinds
from pathgeo.training.models import Model, Width, for_input, model
from pathgeo.training.optimizers import Optimizer, optimizer
from pathgeo.training.schedules import EXPONENTIAL, NO_WARMUP, schedule
from pathgeo.training.spec import DataSpec, RunSpec, scaled_lr

# The fields a config's `defaults`, an experiment's `set`, its cases and its grid may give a run: the run spec's, with
# its dataset by name, and the batch size the LR is scaled from (base_batch_size, pathgeo.training.spec.scaled_lr).
RUN_FIELDS = (
    "dataset",
    "base_batch_size",
    *(field.name for field in dataclasses.fields(RunSpec) if field.name != "data"),
)


def data_spec(config: dict[str, Any], name: str, key: str) -> DataSpec:
    datasets = config["datasets"]
    if name not in datasets:
        raise ConfigError(key, f"unknown dataset '{name}'; defined under 'datasets': {sorted(datasets)}")
    params = {k: v for k, v in datasets[name].items() if k != "kind"}
    return DataSpec(name=name, kind=datasets[name]["kind"], params=params)


def _field_source(exp_name: str, exp: dict[str, Any], case_index: int | None, field: str) -> str:
    """The most specific config key that set `field` for a run of this experiment."""
    if field in exp.get("grid", {}):
        return f"experiments.{exp_name}.grid.{field}"
    if case_index is not None and field in exp["cases"][case_index]:
        return f"experiments.{exp_name}.cases[{case_index}].{field}"
    if field in exp.get("set", {}):
        return f"experiments.{exp_name}.set.{field}"
    return f"defaults.{field}"


def expand(exp: dict[str, Any]) -> list[tuple[int | None, dict[str, Any]]]:
    grid = exp.get("grid", {})
    combos = [dict(zip(grid, values)) for values in itertools.product(*grid.values())]
    cases = list(enumerate(exp["cases"])) if exp.get("cases") else [(None, {})]
    return [(i, {**case, **combo}) for i, case in cases for combo in combos]


def run_spec(config: dict[str, Any], exp_name: str, exp: dict[str, Any], case_index, overrides) -> RunSpec:
    fields = {**config["defaults"], **exp.get("set", {}), **overrides}
    unknown = set(fields) - set(RUN_FIELDS)
    if unknown:
        field = sorted(unknown)[0]
        raise ConfigError(_field_source(exp_name, exp, case_index, field), f"unknown run field '{field}'")

    def where(field: str) -> str:
        return _field_source(exp_name, exp, case_index, field)

    data = data_spec(config, fields["dataset"], where("dataset"))
    kind = kinds()[data.kind]
    entry: Model = _resolved(model, fields["model"], where("model"))
    provided = kind.provides(data.params)
    if entry.input is not None and entry.input != provided:
        allowed = for_input(provided)
        raise ConfigError(
            where("model"),
            f"model '{fields['model']}' cannot train on dataset '{data.name}' (kind {data.kind}); use one of "
            f"{list(allowed)}, torchvision:<name> or a builder of your own (<module>:<callable>)",
        )
    chosen: Optimizer = _resolved(optimizer, fields["optimizer"], where("optimizer"))
    problem = chosen.option_error(fields.get("optimizer_options", {}))
    if problem:
        raise ConfigError(where("optimizer_options"), f"optimizer '{fields['optimizer']}': {problem}")
    if fields["weight_decay"] and not chosen.takes_weight_decay:
        raise ConfigError(
            where("weight_decay"), f"optimizer '{fields['optimizer']}' has no weight decay: set weight_decay to 0"
        )
    if kind.train_size is not None and fields["batch_size"] > kind.train_size(data.params):
        raise ConfigError(
            where("batch_size"),
            f"batch size {fields['batch_size']} is larger than dataset '{data.name}' "
            f"({kind.train_size(data.params)} training samples)",
        )
    if fields.get("full_batch") and not kind.full_batch:
        full_batch_kinds = [name for name, entry in kinds().items() if entry.full_batch]
        raise ConfigError(
            where("full_batch"),
            f"full-batch training needs a finite resident training set ({', '.join(full_batch_kinds)}), "
            f"not dataset '{data.name}' (kind {data.kind})",
        )
    _check_devices(fields, data, where)
    kind = schedule(fields["schedule"])
    if kind.warmup != NO_WARMUP and fields["warmup_epochs"] >= fields["epochs"]:
        raise ConfigError(
            where("warmup_epochs"),
            f"warm-up of {fields['warmup_epochs']} epochs leaves nothing of a {fields['epochs']}-epoch run",
        )
    if kind.warmup == EXPONENTIAL and not (fields["warmup_epochs"] and fields.get("warmup_growth")):
        raise ConfigError(
            where("warmup_growth" if fields["warmup_epochs"] else "warmup_epochs"),
            f"schedule '{fields['schedule']}' needs warmup_growth (omega > 0) and warmup_epochs > 0 (the switch "
            "epoch" + (f", the latest one for {kind.name})" if kind.adaptive else ")"),
        )
    if entry.width is Width.NONE:
        fields["width"] = 0  # so that a change of the networks' default width does not rename these runs
    elif float(fields["width"]).is_integer():
        fields["width"] = int(fields["width"])  # 2 and 2.0 are the same run
    base = fields.pop("base_batch_size")
    fields["lr"] = scaled_lr(fields["lr"], fields["batch_size"], base)
    fields.pop("dataset")
    return RunSpec(data=data, **fields)


def _check_devices(fields: dict[str, Any], data: DataSpec, where) -> None:
    """A run on several devices splits every minibatch by rank: its dataset kind must support that, each rank
    needs a sample of every minibatch, and full batch (an accumulation over chunks) stays on one device."""
    devices = fields.get("devices", 1)
    if fields.get("sync_batchnorm") and devices == 1:
        raise ConfigError(where("sync_batchnorm"), "synchronises batch norm across devices, but the run has devices: 1")
    if devices == 1:
        return
    kind = kinds()[data.kind]
    if not kind.data_parallel:
        splittable = [name for name, entry in kinds().items() if entry.data_parallel]
        raise ConfigError(
            where("devices"),
            f"dataset '{data.name}' (kind {data.kind}) has no minibatches to split across devices; runs on "
            f"{devices} devices need one of the kinds {', '.join(splittable)}, or devices: 1",
        )
    if fields.get("full_batch"):
        raise ConfigError(where("devices"), "full-batch runs train on one device; use devices: 1")
    batch = fields["batch_size"]
    last = kind.train_size(data.params) % batch if kind.train_size is not None else 0
    smallest = min(batch, last) if last else batch
    if smallest < devices:
        raise ConfigError(
            where("devices"),
            f"every rank needs a sample of each minibatch, but the smallest minibatch of dataset '{data.name}' holds "
            f"{smallest} samples (batch_size {batch}) for {devices} devices",
        )


def _resolved(lookup: Callable[[str], Any], name: str, key: str) -> Any:
    """A model or optimizer by name; an unknown name or an unusable plug-in is a ConfigError naming the key."""
    try:
        return lookup(name)
    except (KeyError, PluginError) as error:
        raise ConfigError(key, error.args[0]) from None
