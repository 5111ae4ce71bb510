"""From a validated config to a plan: which runs exist, which experiments use them, which reference points.

The JSON schema (config/schema/config.schema.yaml) checks types, enums and ranges. The checks here are the
ones a schema cannot express: they need two keys at once (a batch size against its dataset's size, a
reference epoch against the schedule). Every error names the config key to fix.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from pathgeo.schedules import EXPONENTIAL_WARMUPS
from pathgeo.spec import MULTIPLIER_MODELS, WIDTH_MODELS, DataSpec, RunSpec, scaled_lr

RUN_FIELDS = (
    "dataset",
    "model",
    "width",
    "optimizer",
    "lr",
    "base_batch_size",
    "weight_decay",
    "schedule",
    "warmup_epochs",
    "batch_size",
    "epochs",
    "seed",
    "data_order_seed",
    "precision",
    "grad_clip",
    "model_options",
    "full_batch",
    "warmup_growth",
    "gawu_window",
)

# Which models can train on which kind of data; synthetic objectives come with their own "model".
MODELS_FOR_KIND = {
    "mnist1d": ("mlp", "resnet1d"),
    "alm": ("linear",),
    "sm": ("sinusoid",),
    "random_walk": ("walk",),
    "cifar10": (
        "cifar_resnet18", "cifar_resnet34", "medium_mlp", "cifar_cnn", "cifar_vgg11", "cifar_vgg16", "cifar_vgg19",
        "cifar_mobilenet_v2",
    ),
    "imagenet": ("imagenet_resnet18", "imagenet_resnet50", "imagenet_resnet152", "imagenet_mobilenet_v2"),
    "corpus": ("transformer_lm",),
    "vaihingen": ("unet", "segnet"),
}
KINDS_WITH_SAMPLES = ("mnist1d", "alm")
# Datasets resident as one finite training set, whose full-batch gradient is a sum over chunks.
FULL_BATCH_KINDS = ("mnist1d", "alm", "cifar10")

# Which table each plot draws from: per-epoch aggregates, per-step rows, or the claims of every run.
PLOT_TABLES = {
    "gamma_band": "epochs",
    "rsi_eb_gamma": "epochs",
    "lolr": "epochs",
    "distance": "epochs",
    "synthetic": "steps",
    "random_walk": "steps",
    "claims": "claims",
    "grad_correlation": "epochs",
    "correlation_matrices": "matrices",
    "sign_flip": "epochs",
    "gamma_correlation": "epochs",
    "warmup": "steps",
    "full_batch_geometry": "full_batch",
    "fixed_batch_spread": "fixed_batches",
}
# Measurements an experiment may ask the replays of its runs for (pathgeo.point_geometry).
POINT_MEASUREMENTS = ("full_batch_geometry", "fixed_batch_geometry")
# What an experiment measures: everything (its runs are replayed against w*), or only what needs no w*,
# which reference training takes itself (pathgeo.w_star_free); such an experiment plans no replay.
MEASURES = ("all", "w_star_free")
# The plots an experiment that measures only w*-free quantities can draw.
W_STAR_FREE_PLOTS = ("grad_correlation", "correlation_matrices", "sign_flip", "warmup")

# The probe's correlation settings when the config has no `correlations` section.
CORRELATION_DEFAULTS = {"window": 5, "lagged": "anchored", "matrix_epochs": "all"}


class ConfigError(ValueError):
    """A config value that is well-typed but wrong in context. The message starts with the key."""

    def __init__(self, key: str, message: str):
        super().__init__(f"config key '{key}': {message}")
        self.key = key


SCHEMA = Path(__file__).resolve().parent.parent / "config" / "schema" / "config.schema.yaml"


def schema_error(config: dict[str, Any], schema_path: Path = SCHEMA) -> ConfigError | None:
    """The most relevant JSON-schema violation as a one-line ConfigError naming the key, or None."""
    schema = yaml.safe_load(Path(schema_path).read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(config))
    if error is None:
        return None
    path = [f"[{p}]" if isinstance(p, int) else p for p in error.absolute_path]
    named = re.search(r"'([^']+)' (is a required property|was unexpected)", error.message)
    if named:
        path.append(named.group(1))
    key = ".".join(path).replace(".[", "[") or "(top level)"
    if error.validator == "required":
        return ConfigError(key, "is missing")
    if error.validator == "additionalProperties":
        return ConfigError(key, "is not a known key")
    return ConfigError(key, error.message)


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

    def replayed(self, run_id: str) -> bool:
        """Whether some experiment needs the run's replay (one that measures against w*)."""
        return run_id in self.replayed_runs

    def measurements(self, run_id: str) -> dict[str, dict]:
        """The point measurements the replays of a run take, over every experiment that uses it."""
        return self.run_measurements.get(run_id, {})

    def references(self, run_id: str) -> tuple[Reference, ...]:
        """All reference points of a run over every experiment that uses it: one replay measures them all."""
        final = self.runs[run_id].epochs
        epochs = sorted(
            {e for (_, rid), refs in self.experiment_references.items() if rid == run_id for e in refs}
        )
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
    allowed = MODELS_FOR_KIND[data.kind]
    if fields["model"] not in allowed:
        raise ConfigError(
            where("model"),
            f"model '{fields['model']}' cannot train on dataset '{data.name}' (kind {data.kind}); use one of {list(allowed)}",
        )
    if data.kind in KINDS_WITH_SAMPLES and fields["batch_size"] > data.params["n_train"]:
        raise ConfigError(
            where("batch_size"),
            f"batch size {fields['batch_size']} is larger than dataset '{data.name}' "
            f"({data.params['n_train']} training samples)",
        )
    if fields.get("full_batch") and data.kind not in FULL_BATCH_KINDS:
        raise ConfigError(
            where("full_batch"),
            f"full-batch training needs a finite resident training set ({', '.join(FULL_BATCH_KINDS)}), "
            f"not dataset '{data.name}' (kind {data.kind})",
        )
    if fields["schedule"] in ("warmup_cosine", *EXPONENTIAL_WARMUPS) and fields["warmup_epochs"] >= fields["epochs"]:
        raise ConfigError(
            where("warmup_epochs"),
            f"warm-up of {fields['warmup_epochs']} epochs leaves nothing of a {fields['epochs']}-epoch run",
        )
    if fields["schedule"] in EXPONENTIAL_WARMUPS and not (fields["warmup_epochs"] and fields.get("warmup_growth")):
        raise ConfigError(
            where("warmup_growth" if fields["warmup_epochs"] else "warmup_epochs"),
            f"schedule '{fields['schedule']}' needs warmup_growth (omega > 0) and warmup_epochs > 0 (the switch "
            "epoch" + (", the latest one for gawu)" if fields["schedule"] == "gawu" else ")"),
        )
    if fields["model"] not in WIDTH_MODELS + MULTIPLIER_MODELS:
        fields["width"] = 0  # so that a change of the networks' default width does not rename these runs
    elif float(fields["width"]).is_integer():
        fields["width"] = int(fields["width"])  # 2 and 2.0 are the same run
    base = fields.pop("base_batch_size")
    fields["lr"] = scaled_lr(fields["lr"], fields["batch_size"], base)
    fields.pop("dataset")
    return RunSpec(data=data, **fields)


def _reference_epochs(exp_name: str, exp: dict[str, Any], spec: RunSpec, segment_epochs: int) -> tuple[int, ...]:
    key = f"experiments.{exp_name}.references"
    epochs = []
    for ref in exp.get("references", ["final"]):
        epoch = spec.epochs if ref == "final" else ref
        if epoch > spec.epochs:
            raise ConfigError(key, f"reference epoch {epoch} is past the run's end (epochs = {spec.epochs})")
        if epoch < spec.epochs and epoch % segment_epochs:
            raise ConfigError(
                key,
                f"reference epoch {epoch} is not a checkpoint; reference epochs must be multiples of "
                f"segment_epochs ({segment_epochs}) or the final epoch",
            )
        if epoch == 0:
            raise ConfigError(key, "reference epoch 0 is the starting point; a reference must lie ahead")
        epochs.append(epoch)
    if spec.budget_dependent and any(e != spec.epochs for e in epochs):
        raise ConfigError(
            key,
            f"schedule '{spec.schedule}' depends on the epoch budget, so a checkpoint at an earlier epoch is "
            "not the end of a shorter run; use only 'final' or a budget-independent schedule (constant)",
        )
    return tuple(sorted(set(epochs)))


def build_plan(config: dict[str, Any]) -> Plan:
    error = schema_error(config)
    if error is not None:
        raise error
    runs: dict[str, RunSpec] = {}
    run_segment_epochs: dict[str, int] = {}
    run_measurements: dict[str, dict[str, dict]] = {}
    replayed_runs: set[str] = set()
    experiments: dict[str, tuple[str, ...]] = {}
    experiment_references: dict[tuple[str, str], tuple[int, ...]] = {}
    for exp_name, exp in config["experiments"].items():
        run_ids = []
        segment_epochs = exp.get("segment_epochs", config["segment_epochs"])
        for case_index, overrides in _expand(exp):
            spec = _run_spec(config, exp_name, exp, case_index, overrides)
            runs[spec.run_id] = spec
            if run_segment_epochs.setdefault(spec.run_id, segment_epochs) != segment_epochs:
                raise ConfigError(
                    f"experiments.{exp_name}.segment_epochs",
                    f"run {spec.run_id} is shared with an experiment that checkpoints it every "
                    f"{run_segment_epochs[spec.run_id]} epochs, not {segment_epochs}; a run has one checkpoint spacing",
                )
            if spec.run_id not in run_ids:
                run_ids.append(spec.run_id)
            _add_measurements(run_measurements, exp_name, exp, spec)
            if exp.get("measure", "all") == "all":
                replayed_runs.add(spec.run_id)
            experiment_references[(exp_name, spec.run_id)] = _reference_epochs(exp_name, exp, spec, segment_epochs)
        experiments[exp_name] = tuple(run_ids)
        _check_w_star_free(exp_name, exp)
    correlation_settings(config)
    for fig_name, fig in config.get("figures", {}).items():
        needs_experiment = PLOT_TABLES[fig["plot"]] != "claims"
        if needs_experiment != ("experiment" in fig):
            raise ConfigError(
                f"figures.{fig_name}.experiment",
                f"plot '{fig['plot']}' " + ("draws an experiment: name one" if needs_experiment else "draws every run: remove it"),
            )
        for exp_name in figure_experiments(fig):
            if exp_name not in experiments:
                raise ConfigError(
                    f"figures.{fig_name}.experiment", f"unknown experiment '{exp_name}'; defined: {sorted(experiments)}"
                )
            if config["experiments"][exp_name].get("measure") == "w_star_free" and fig["plot"] not in W_STAR_FREE_PLOTS:
                raise ConfigError(
                    f"figures.{fig_name}.experiment",
                    f"plot '{fig['plot']}' needs measurements against w*, but experiment '{exp_name}' has measure: "
                    f"w_star_free (no replay); draw it from an experiment that measures all, or plot one of "
                    f"{list(W_STAR_FREE_PLOTS)}",
                )
    return Plan(runs, experiments, experiment_references, run_segment_epochs, run_measurements, frozenset(replayed_runs))


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


def _add_measurements(run_measurements: dict[str, dict[str, dict]], exp_name: str, exp: dict[str, Any], spec: RunSpec) -> None:
    """The experiment's point measurements join those its run already has; two experiments asking for the
    same measurement of one run with different settings are refused."""
    for kind in POINT_MEASUREMENTS:
        if kind not in exp:
            continue
        key = f"experiments.{exp_name}.{kind}"
        if kind == "full_batch_geometry" and spec.data.kind not in FULL_BATCH_KINDS:
            raise ConfigError(
                key,
                f"the full-batch gradient needs a finite resident training set ({', '.join(FULL_BATCH_KINDS)}), "
                f"not dataset '{spec.data.name}' (kind {spec.data.kind})",
            )
        settings = run_measurements.setdefault(spec.run_id, {})
        if settings.setdefault(kind, exp[kind]) != exp[kind]:
            raise ConfigError(
                key,
                f"run {spec.run_id} is shared with an experiment that measures it with {settings[kind]}, not "
                f"{exp[kind]}; a run has one setting per measurement",
            )


def correlation_settings(config: dict[str, Any]) -> dict[str, Any]:
    """The probe's correlation settings: window h, the protocol of the lagged measure, the matrix epochs.
    YAML reads an unquoted `off` as false, so false means off; true, which meant every step before the
    anchored protocol existed, is refused rather than silently reinterpreted."""
    settings = {**CORRELATION_DEFAULTS, **config.get("correlations", {})}
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
