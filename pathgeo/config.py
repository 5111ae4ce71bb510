"""From a validated config to a plan: which runs exist, which experiments use them, which reference points.

The JSON schema (config/schema/config.schema.yaml, completed by the registries: pathgeo.schema) checks types,
enums and ranges. The checks here are the ones a schema cannot express: they need two keys at once (a batch
size against its dataset's size, a model against its dataset's kind, a reference epoch against the schedule).
Every error names the config key to fix.
"""

from __future__ import annotations

import dataclasses
import difflib
import itertools
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jsonschema

from pathgeo.config_defaults import config_defaults, with_defaults
from pathgeo.config_files import KeyPath, dotted
from pathgeo.data import kinds
from pathgeo.figures import plot, plots
from pathgeo.models import Model, Width, for_input, model
from pathgeo.optimizers import Optimizer, optimizer
from pathgeo.plugins import PluginError
from pathgeo.schedules import EXPONENTIAL, NO_WARMUP, schedule
from pathgeo.schema import config_schema
from pathgeo.spec import DataSpec, RunSpec, scaled_lr

# The fields a config's `defaults`, an experiment's `set`, its cases and its grid may give a run: the run spec's, with
# its dataset by name, and the batch size the LR is scaled from (base_batch_size, pathgeo.spec.scaled_lr).
RUN_FIELDS = (
    "dataset",
    "base_batch_size",
    *(field.name for field in dataclasses.fields(RunSpec) if field.name != "data"),
)

# Measurements an experiment may ask the replays of its runs for (pathgeo.point_geometry).
POINT_MEASUREMENTS = ("full_batch_geometry", "fixed_batch_geometry")

# The probe's correlation settings where the config leaves them out (config/defaults.yaml).
CORRELATION_DEFAULTS = config_defaults()["correlations"]
# The longest time limit of a job when the config does not set max_job_minutes (48 hours, a common partition limit).
DEFAULT_MAX_JOB_MINUTES = config_defaults()["max_job_minutes"]


class ConfigError(ValueError):
    """A config value that is well-typed but wrong in context. The message starts with the key."""

    def __init__(self, key: str, message: str):
        super().__init__(f"config key '{key}': {message}")
        self.key = key


def schema_errors(config: dict[str, Any], schema: dict[str, Any] | None = None) -> list[ConfigError]:
    """Every violation of the schema (by default the config's, `config_schema()`), one ConfigError each naming its
    key, in the config's order. An unknown key gets the known key closest to it, or the keys known there."""
    schema = config_schema() if schema is None else schema
    validator = jsonschema.validators.validator_for(schema)(schema)
    found = [
        violation
        for error in validator.iter_errors(config)
        for violation in _violations(jsonschema.exceptions.best_match([error]))
    ]
    return [error for _, error in sorted(found, key=lambda pair: _document_order(config, pair[0]))]


def schema_error(config: dict[str, Any], schema: dict[str, Any] | None = None) -> ConfigError | None:
    """The schema's violations (`schema_errors`) as one ConfigError, one line each, or None."""
    errors = schema_errors(config, schema)
    if len(errors) > 1:
        return ConfigErrors(errors)
    return errors[0] if errors else None


class ConfigErrors(ConfigError):
    """Several ConfigErrors at once, one line each; `key` is the first's."""

    def __init__(self, errors: list[ConfigError]):
        ValueError.__init__(self, "\n".join(map(str, errors)))
        self.key = errors[0].key
        self.errors = tuple(errors)


def _violations(error: jsonschema.exceptions.ValidationError) -> list[tuple[KeyPath, ConfigError]]:
    """One schema error as ConfigErrors with their places: an error of unknown keys is one per key."""
    path: KeyPath = tuple(error.absolute_path)
    if error.validator == "additionalProperties" and error.validator_value is False:
        known = list(error.schema.get("properties", {}))
        patterns = list(error.schema.get("patternProperties", {}))
        unknown = [key for key in error.instance if key not in known and not any(re.search(p, key) for p in patterns)]
        return [
            ((*path, key), ConfigError(dotted((*path, key)), "is not a known key" + _suggestion(key, known)))
            for key in unknown
        ]
    if error.validator == "required":
        named = re.search(r"'([^']+)' is a required property", error.message)
        missing = (*path, named.group(1)) if named else path
        return [(missing, ConfigError(dotted(missing), "is missing"))]
    if error.validator in ("anyOf", "oneOf"):
        # Say what each alternative expects (the valid values of an enum, a registry name or a plug-in), rather
        # than jsonschema's "is not valid under any of the given schemas".
        expected = [_expected(alternative) for alternative in error.validator_value]
        return [(path, ConfigError(dotted(path), f"{error.instance!r} is not " + ", nor ".join(expected)))]
    message = error.message
    if error.validator == "type" and isinstance(error.instance, str) and _number(error.instance):
        message += "; YAML read it as text: write a number without quotes and without `_` (0.001, 1e-3)"
    return [(path, ConfigError(dotted(path), message))]


def _suggestion(key: str, known: list[str]) -> str:
    """The known key a misspelt one is closest to, else the keys known at its place."""
    close = difflib.get_close_matches(key, known, n=1)
    if close:
        return f"; did you mean '{close[0]}'?"
    return f"; the keys known here are {', '.join(known)}" if known else ""


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _document_order(config: Any, path: KeyPath) -> tuple[int, ...]:
    """Where `path` comes in the config read top to bottom; a key the config lacks comes after its siblings."""
    order, node = [], config
    for part in path:
        if isinstance(node, dict) and part in node:
            order.append(list(node).index(part))
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            order.append(part)
            node = node[part]
        else:
            order.append(len(node) if isinstance(node, (dict, list)) else 0)
            break
    return tuple(order)


def _expected(schema: dict[str, Any]) -> str:
    """What a value valid under `schema` is, in words."""
    if "enum" in schema:
        return f"one of {schema['enum']}"
    if "const" in schema:
        return repr(schema["const"])
    if "description" in schema:
        return schema["description"]
    kind = schema.get("type")
    words = {
        "null": "null",
        "boolean": "true or false",
        "integer": "an integer",
        "array": "a list",
        "object": "a mapping",
    }
    return words.get(kind, f"a {kind}" if kind else "valid here")


@dataclass(frozen=True)
class Reference:
    """A reference point w*: the weights of a run at `epoch` (the run's end is called 'final')."""

    name: str
    epoch: int


def reference_name(epoch: int, final_epoch: int) -> str:
    return "final" if epoch == final_epoch else f"epoch{epoch}"


@dataclass(frozen=True)
class Plan:
    runs: dict[str, RunSpec]
    experiments: dict[str, tuple[str, ...]]
    experiment_references: dict[tuple[str, str], tuple[int, ...]]
    run_segment_epochs: dict[str, int]
    run_measurements: dict[str, dict[str, dict]]
    replayed_runs: frozenset[str]
    # Epochs between validations of a run's reference training (the train log's validation columns are null
    # in between); it does not change the trajectory.
    run_validate_every: dict[str, int] = dataclasses.field(default_factory=dict)

    def replayed(self, run_id: str) -> bool:
        """Whether some experiment needs the run's replay (one that measures against w*)."""
        return run_id in self.replayed_runs

    def measurements(self, run_id: str) -> dict[str, dict]:
        """The point measurements the replays of a run take, over every experiment that uses it."""
        return self.run_measurements.get(run_id, {})

    def references(self, run_id: str) -> tuple[Reference, ...]:
        """All reference points of a run over every experiment that uses it: one replay measures them all."""
        final = self.runs[run_id].epochs
        epochs = sorted({e for (_, rid), refs in self.experiment_references.items() if rid == run_id for e in refs})
        return tuple(Reference(reference_name(e, final), e) for e in epochs)

    def checkpoint_epochs(self, run_id: str) -> tuple[int, ...]:
        final = self.runs[run_id].epochs
        return tuple(sorted({*range(0, final, self.run_segment_epochs[run_id]), final}))

    def segments(self, run_id: str) -> tuple[tuple[int, int], ...]:
        """The replay jobs of a run, one per pair of adjacent checkpoints; none if no experiment needs its
        replay (its w*-free measurements come from reference training, in the same segments)."""
        if not self.replayed(run_id):
            return ()
        return self.checkpoint_segments(run_id)

    def checkpoint_segments(self, run_id: str) -> tuple[tuple[int, int], ...]:
        bounds = self.checkpoint_epochs(run_id)
        return tuple(zip(bounds[:-1], bounds[1:]))


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


def _expand(exp: dict[str, Any]) -> list[tuple[int | None, dict[str, Any]]]:
    grid = exp.get("grid", {})
    combos = [dict(zip(grid, values)) for values in itertools.product(*grid.values())]
    cases = list(enumerate(exp["cases"])) if exp.get("cases") else [(None, {})]
    return [(i, {**case, **combo}) for i, case in cases for combo in combos]


def _run_spec(config: dict[str, Any], exp_name: str, exp: dict[str, Any], case_index, overrides) -> RunSpec:
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


def _reference_epochs(exp_name: str, exp: dict[str, Any], spec: RunSpec, segment_epochs: int) -> tuple[int, ...]:
    key = f"experiments.{exp_name}.references"
    epochs = []
    for ref in exp.get("references", ["final"]):
        epoch = spec.epochs if ref == "final" else ref
        if epoch <= 0:
            raise ConfigError(
                key, f"reference epoch {epoch} is not ahead of the starting point (epoch 0); a reference must lie ahead"
            )
        if epoch > spec.epochs:
            raise ConfigError(key, f"reference epoch {epoch} is past the run's end (epochs = {spec.epochs})")
        if epoch < spec.epochs and epoch % segment_epochs:
            raise ConfigError(
                key,
                f"reference epoch {epoch} is not a checkpoint; reference epochs must be multiples of "
                f"segment_epochs ({segment_epochs}) or the final epoch",
            )
        epochs.append(epoch)
    if spec.budget_dependent and any(e != spec.epochs for e in epochs):
        raise ConfigError(
            key,
            f"schedule '{spec.schedule}' depends on the epoch budget, so a checkpoint at an earlier epoch is "
            "not the end of a shorter run; use only 'final' or a budget-independent schedule (constant)",
        )
    return tuple(sorted(set(epochs)))


def build_plan(config: dict[str, Any]) -> Plan:
    """The plan of a config laid over the defaults (config/defaults.yaml), checked: the schema's violations at once
    (ConfigErrors), then the checks that need two keys at once (a ConfigError naming the key)."""
    config = with_defaults(config)
    error = schema_error(config)
    if error is not None:
        raise error
    runs: dict[str, RunSpec] = {}
    # run id: {setting: {experiment: (value, the key that set it)}}, for the RUN_SETTINGS
    settings: dict[str, dict[str, dict[str, tuple[int, str]]]] = {}
    run_measurements: dict[str, dict[str, dict]] = {}
    replayed_runs: set[str] = set()
    experiments: dict[str, tuple[str, ...]] = {}
    experiment_references: dict[tuple[str, str], tuple[int, ...]] = {}
    for exp_name, exp in config["experiments"].items():
        run_ids = []
        for case_index, overrides in _expand(exp):
            # A case may set its own checkpoint spacing (a long run among short ones), an experiment its runs'.
            chosen = {name: _run_setting(config, exp_name, case_index, overrides, name) for name in RUN_SETTINGS}
            segment_epochs = chosen["segment_epochs"][0]
            spec = _run_spec(config, exp_name, exp, case_index, overrides)
            runs[spec.run_id] = spec
            for name, value in chosen.items():
                settings.setdefault(spec.run_id, {}).setdefault(name, {})[exp_name] = value
            if spec.run_id not in run_ids:
                run_ids.append(spec.run_id)
            _add_measurements(run_measurements, exp_name, exp, spec)
            if exp.get("measure", "all") == "all":
                replayed_runs.add(spec.run_id)
            experiment_references[(exp_name, spec.run_id)] = _reference_epochs(exp_name, exp, spec, segment_epochs)
        experiments[exp_name] = tuple(run_ids)
        _check_w_star_free(exp_name, exp)
    agreed = {
        name: {run_id: _agreed(run_id, name, by_run[name]) for run_id, by_run in settings.items()}
        for name in RUN_SETTINGS
    }
    for fig_name, fig in config.get("figures", {}).items():
        # A claims figure draws every run; the experiments it may name only group its rows.
        if plot(fig["plot"]).table != "claims" and "experiment" not in fig:
            raise ConfigError(f"figures.{fig_name}.experiment", f"plot '{fig['plot']}' draws an experiment: name one")
        for exp_name in figure_experiments(fig):
            if exp_name not in experiments:
                raise ConfigError(
                    f"figures.{fig_name}.experiment", f"unknown experiment '{exp_name}'; defined: {sorted(experiments)}"
                )
            if config["experiments"][exp_name].get("measure") == "w_star_free" and plot(fig["plot"]).needs_w_star:
                drawable = sorted(name for name, entry in plots().items() if not entry.needs_w_star)
                raise ConfigError(
                    f"figures.{fig_name}.experiment",
                    f"plot '{fig['plot']}' needs measurements against w*, but experiment '{exp_name}' has measure: "
                    f"w_star_free (no replay); draw it from an experiment that measures all, or plot one of "
                    f"{drawable}",
                )
    plan = Plan(
        runs,
        experiments,
        experiment_references,
        agreed["segment_epochs"],
        run_measurements,
        frozenset(replayed_runs),
        agreed["validate_every"],
    )
    _check_correlations(config, plan)
    return plan


def _check_w_star_free(exp_name: str, exp: dict[str, Any]) -> None:
    """An experiment without replays has no reference points beyond the run's end, nor point measurements."""
    if exp.get("measure") != "w_star_free":
        return
    if exp.get("references", ["final"]) != ["final"]:
        raise ConfigError(
            f"experiments.{exp_name}.references",
            "an experiment with measure: w_star_free measures nothing against w*; remove its references",
        )
    for kind in POINT_MEASUREMENTS:
        if kind in exp:
            raise ConfigError(
                f"experiments.{exp_name}.{kind}",
                f"{kind} measures against w*, which an experiment with measure: w_star_free does not replay",
            )


def training_correlations(plan: Plan, run_id: str, config: dict[str, Any]) -> dict[str, Any] | None:
    """What reference training measures of a run itself: the w*-free correlation settings when no
    experiment replays it (its w*-free experiments then read the training's tables), else nothing."""
    if plan.replayed(run_id):
        return None
    settings = correlation_settings(config)
    return {"window": settings["window"], "matrix_epochs": settings["matrix_epochs"]}


def _add_measurements(
    run_measurements: dict[str, dict[str, dict]], exp_name: str, exp: dict[str, Any], spec: RunSpec
) -> None:
    """The experiment's point measurements join those its run already has; two experiments asking for the
    same measurement of one run with different settings are refused."""
    for kind in POINT_MEASUREMENTS:
        if kind not in exp:
            continue
        key = f"experiments.{exp_name}.{kind}"
        if kind == "full_batch_geometry" and not kinds()[spec.data.kind].full_batch:
            resident = sorted(name for name, entry in kinds().items() if entry.full_batch)
            raise ConfigError(
                key,
                f"the full-batch gradient needs a finite resident training set ({', '.join(resident)}), "
                f"not dataset '{spec.data.name}' (kind {spec.data.kind})",
            )
        if spec.devices > 1:
            raise ConfigError(
                key,
                f"{kind} runs passes of its own on one device, but run {spec.run_id} trains on {spec.devices}; "
                "measure it in an experiment whose runs have devices: 1",
            )
        settings = run_measurements.setdefault(spec.run_id, {})
        if settings.setdefault(kind, exp[kind]) != exp[kind]:
            raise ConfigError(
                key,
                f"run {spec.run_id} is shared with an experiment that measures it with {settings[kind]}, not "
                f"{exp[kind]}; a run has one setting per measurement",
            )


# Settings of a run that do not change its trajectory, given at the top level, by an experiment or by a case:
# checkpoint spacing (a replay job per segment) and epochs between validations. A run shared by experiments must
# have one of each.
RUN_SETTINGS = ("segment_epochs", "validate_every")


def _run_setting(
    config: dict[str, Any], exp_name: str, case_index: int | None, overrides: dict[str, Any], name: str
) -> tuple[int, str]:
    """The value of a run setting for one case of an experiment, and the key that set it; the case's is taken out
    of `overrides` (it is no run field)."""
    exp = config["experiments"][exp_name]
    if name in overrides:
        return overrides.pop(name), f"experiments.{exp_name}.cases[{case_index}].{name}"
    if name in exp:
        return exp[name], f"experiments.{exp_name}.{name}"
    return config[name], name


def _agreed(run_id: str, name: str, by_experiment: dict[str, tuple[int, str]]) -> int:
    """A run shared by experiments is trained once, so they must agree on its settings. The message names every
    experiment and the key each takes the value from, in the same words whatever their order."""
    if len({value for value, _ in by_experiment.values()}) == 1:
        return next(iter(by_experiment.values()))[0]
    names = sorted(by_experiment)
    keys = [by_experiment[exp][1] for exp in names]
    own = [key for key in keys if key != name]
    listed = "; ".join(f"experiment {exp}: {by_experiment[exp][0]} (from {key})" for exp, key in zip(names, keys))
    raise ConfigError(
        own[0] if len(own) == 1 else ", ".join(keys),
        f"run {run_id} is planned by experiments that give it different {name} ({listed}); a run is trained once: "
        f"give these experiments the same {name}",
    )


def planned_steps_per_epoch(spec: RunSpec) -> int | None:
    """Steps per epoch as far as the config tells (None for external datasets, whose size is not known
    before they are read)."""
    if spec.full_batch:
        return 1
    params = spec.data.params
    if "steps_per_epoch" in params:
        return params["steps_per_epoch"]
    train_size = kinds()[spec.data.kind].train_size
    if train_size is not None:
        return math.ceil(train_size(params) / spec.batch_size)
    return None


def _check_correlations(config: dict[str, Any], plan: Plan) -> None:
    """Refuse correlation settings and figure epochs that would yield no value at all: a window longer than
    every segment of a run (a window must lie inside one segment), matrix or figure epochs past the end."""
    settings = correlation_settings(config)
    window = settings["window"]
    for run_id, spec in plan.runs.items():
        per_epoch = planned_steps_per_epoch(spec)
        if per_epoch is None:
            continue
        longest = max(end - start for start, end in plan.checkpoint_segments(run_id)) * per_epoch
        if window > longest:
            raise ConfigError(
                "correlations.window",
                f"a window of {window} steps does not fit in any replay segment of run {run_id} (at most {longest} "
                f"steps: segment_epochs {plan.run_segment_epochs[run_id]} x {per_epoch} steps per epoch), so it would "
                "measure no window mean and no matrix: make the window shorter or the run's segment_epochs larger",
            )
    longest_run = max(plan.runs.values(), key=lambda spec: (spec.epochs, spec.run_id))
    if settings["matrix_epochs"] != "all":
        past = [e for e in settings["matrix_epochs"] if e >= longest_run.epochs]
        if past:
            raise ConfigError(
                "correlations.matrix_epochs",
                f"epoch {past[0]} is past the end of every run (epochs count from 0; the longest run, "
                f"{longest_run.run_id}, has {longest_run.epochs}), so no matrix would start there",
            )
    for fig_name, fig in config.get("figures", {}).items():
        wanted = fig.get("epochs")
        if wanted is None:
            continue
        drawn = [plan.runs[run_id] for exp in figure_experiments(fig) for run_id in plan.experiments[exp]]
        last = max(spec.epochs for spec in drawn)
        past = [e for e in wanted if e >= last]
        if past:
            raise ConfigError(
                f"figures.{fig_name}.epochs",
                f"epoch {past[0]} is past the end of the runs drawn (epochs count from 0; the longest has {last})",
            )
        if settings["matrix_epochs"] != "all":
            unmeasured = [e for e in wanted if e not in settings["matrix_epochs"]]
            if unmeasured:
                raise ConfigError(
                    f"figures.{fig_name}.epochs",
                    f"epoch {unmeasured[0]} has no matrix: correlations.matrix_epochs lists "
                    f"{settings['matrix_epochs']}; add it there or draw another epoch",
                )


def correlation_settings(config: dict[str, Any]) -> dict[str, Any]:
    """The probe's correlation settings: window h, the protocol of the lagged measure, the matrix epochs.
    YAML reads an unquoted `off` as false, so false means off; true, which meant every step before the
    anchored protocol existed, is refused rather than silently reinterpreted."""
    settings = with_defaults(config)["correlations"]
    if settings["lagged"] is True:
        raise ConfigError(
            "correlations.lagged",
            "true is no longer a value: write anchored (the authors' protocol: a base every 51 steps, six "
            "lags from it, the default) or every_step (every lag at every step, 102 copies of the model)",
        )
    if settings["lagged"] is False:
        settings["lagged"] = "off"
    return settings


def figure_experiments(fig: dict[str, Any]) -> list[str]:
    """A figure draws one experiment, several, or (claims) every run."""
    exp = fig.get("experiment")
    if exp is None:
        return []
    return [exp] if isinstance(exp, str) else list(exp)


def max_job_minutes(config: dict[str, Any]) -> int | None:
    """The site's time limit of one job in minutes (config key max_job_minutes; None: no limit)."""
    return with_defaults(config)["max_job_minutes"]


def zigzag_thresholds(config: dict[str, Any]) -> dict[str, float]:
    """The thresholds of the second paper's findings (pathgeo.zigzag): the config's `zigzag`, else the defaults."""
    return with_defaults(config)["zigzag"]


def extended_run(
    spec: RunSpec, checkpoints: tuple[int, ...], candidates: dict[str, tuple[RunSpec, tuple[int, ...]]]
) -> str | None:
    """The run of `candidates` (run id: its spec and checkpoint epochs) whose reference training `spec`'s goes on
    from: the same run but for fewer epochs, the longest such, under a schedule that does not depend on the budget
    (a constant LR's epoch k is the same whatever the budget; a cosine's is not), with a checkpoint at each of the
    run's own up to its end. None where the run trains from its seed."""
    if spec.budget_dependent:
        return None
    best: str | None = None
    for run_id, (other, have) in candidates.items():
        if other.epochs >= spec.epochs or dataclasses.replace(other, epochs=spec.epochs) != spec:
            continue
        if not {epoch for epoch in checkpoints if epoch <= other.epochs} <= set(have):
            continue
        if best is None or other.epochs > candidates[best][0].epochs:
            best = run_id
    return best
