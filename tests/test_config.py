"""Config validation and the plan: bad input gives clear messages naming the key; runs are planned once.

Errors are checked twice: in-process (fast: `build_plan` for the checks that need two keys at once,
`schema_errors` for the JSON schema's types, enums, ranges and required keys, every violation at once) and through
`snakemake -n` on a config file, which is what a user sees: the check of pathgeo.planning.config_check, with the file.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from workflow_runner import run_snakemake

from pathgeo.analysis.figures import plots
from pathgeo.planning.config import build_plan
from pathgeo.planning.config_errors import ConfigError, ConfigErrors, schema_error, schema_errors
from pathgeo.planning.schema import STRUCTURE, config_schema
from pathgeo.plugins import PATTERN
from pathgeo.training.data import kinds
from pathgeo.training.models import models
from pathgeo.training.optimizers import OPTIMIZERS, UNSUPPORTED
from pathgeo.training.spec import DataSpec, RunSpec

REPO = Path(__file__).resolve().parents[1]
SNAKEFILE = REPO / "Snakefile"
TINY = REPO / "tests" / "configs" / "tiny.yaml"
DEFAULT_CONFIG = REPO / "config" / "config.yaml"


def tiny() -> dict:
    return yaml.safe_load(TINY.read_text())


@pytest.fixture(scope="module")
def schema() -> dict:
    """The config's schema as the workflow validates against it: the schema file completed by the registries."""
    return config_schema()


def snakemake_dry_run(config: dict, tmp_path: Path) -> subprocess.CompletedProcess:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return run_snakemake(tmp_path / "work", "-n", configfile=path)


def names_key(text: str, key: str) -> bool:
    return f"config key '{key}'" in text


# ---------------------------------------------------------------------------------------------------------
# Bad configs: (name, how to break the tiny config, the key the message must name)
# ---------------------------------------------------------------------------------------------------------


def _set(*path_and_value):
    *path, value = path_and_value

    def edit(config):
        target = config
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = value

    return edit


def _drop(*path):
    def edit(config):
        target = config
        for part in path[:-1]:
            target = target[part]
        del target[path[-1]]

    return edit


def _multi_reference_warmup_cosine(config):
    config["experiments"]["budgets"]["set"] = {"schedule": "warmup_cosine", "warmup_epochs": 1}


def _reference_between_checkpoints(config):
    config["segment_epochs"] = 2
    config["experiments"]["budgets"]["set"] = {"epochs": 4}
    config["experiments"]["budgets"]["references"] = [1, "final"]


SCHEMA_ERRORS = [
    (
        "unknown optimizer",
        _set("experiments", "optimizers", "cases", 0, "optimizer", "adamx"),
        "experiments.optimizers.cases[0].optimizer",
    ),
    ("negative lr", _set("defaults", "lr", -0.1), "defaults.lr"),
    (
        "zero lr in a grid",
        _set("experiments", "batch_sizes", "grid", "lr", [0.01, 0.0]),
        "experiments.batch_sizes.grid.lr[1]",
    ),
    ("missing experiments", _drop("experiments"), "experiments"),
    ("unknown device", _set("device", "tpu"), "device"),
]

PLAN_ERRORS = [
    (
        "batch larger than the dataset",
        _set("experiments", "batch_sizes", "grid", "batch_size", [25, 1000]),
        "experiments.batch_sizes.grid.batch_size",
    ),
    ("multi-reference with warmup_cosine", _multi_reference_warmup_cosine, "experiments.budgets.references"),
    ("reference between checkpoints", _reference_between_checkpoints, "experiments.budgets.references"),
    (
        "reference past the end",
        _set("experiments", "budgets", "references", [5, "final"]),
        "experiments.budgets.references",
    ),
    (
        "model that cannot train on the data",
        _set("experiments", "alm", "set", "model", "mlp"),
        "experiments.alm.set.model",
    ),
    (
        "figure of an unknown experiment",
        _set("figures", "x", {"plot": "gamma_band", "experiment": "nope"}),
        "figures.x.experiment",
    ),
    (
        "figure of unknown experiments in a list",
        _set("figures", "synthetic", "experiment", ["alm", "nope"]),
        "figures.synthetic.experiment",
    ),
    ("unknown dataset", _set("experiments", "alm", "set", "dataset", "nope"), "experiments.alm.set.dataset"),
    (
        "warm-up as long as the run",
        _set("experiments", "baseline", "set", {"schedule": "warmup_cosine", "warmup_epochs": 2}),
        "experiments.baseline.set.warmup_epochs",
    ),
    (
        "full batch on a dataset without a training set",
        _set("experiments", "sm", "set", "full_batch", True),
        "experiments.sm.set.full_batch",
    ),
    (
        "gawu without a growth rate",
        _set("experiments", "gawu", "set", "warmup_growth", 0.0),
        "experiments.gawu.set.warmup_growth",
    ),
    (
        "exponential warm-up without a switch epoch",
        _set("experiments", "gawu", "set", "warmup_epochs", 0),
        "experiments.gawu.set.warmup_epochs",
    ),
    (
        "one run with two checkpoint spacings",
        _set("experiments", "optimizers", "segment_epochs", 2),
        "experiments.optimizers.segment_epochs",
    ),
    (
        "reference at epoch 0",
        _set("experiments", "budgets", "references", [0, "final"]),
        "experiments.budgets.references",
    ),
    ("a window longer than every segment", _set("correlations", {"window": 5}), "correlations.window"),
    (
        "matrix epochs past every run's end",
        _set("correlations", {"window": 2, "matrix_epochs": [0, 3, 40]}),
        "correlations.matrix_epochs",
    ),
    (
        "figure epochs past the end of its runs",
        _set("figures", "correlation_matrices", "epochs", [0, 40]),
        "figures.correlation_matrices.epochs",
    ),
    (
        "figure epochs without a matrix",
        _set("correlations", {"window": 2, "matrix_epochs": [0]}),
        "figures.correlation_matrices.epochs",
    ),
    (
        "a torchvision model torchvision lacks",
        _set("experiments", "architectures", "grid", "model", ["torchvision:resnet19"]),
        "experiments.architectures.grid.model",
    ),
    (
        "a model module that cannot be imported",
        _set("experiments", "baseline", "set", {"model": "no_such_module:build"}),
        "experiments.baseline.set.model",
    ),
    (
        "an optimizer module that cannot be imported",
        _set("defaults", "optimizer", "no_such_module:Lion"),
        "defaults.optimizer",
    ),
    (
        "an option the optimizer does not take",
        _set("experiments", "baseline", "set", {"optimizer": "adamw", "optimizer_options": {"beta": 0.9}}),
        "experiments.baseline.set.optimizer_options",
    ),
    (
        "weight decay for an optimizer without",
        _set("experiments", "baseline", "set", {"optimizer": "rprop"}),
        "defaults.weight_decay",
    ),
    (
        "an optimizer the loop cannot drive",
        _set("experiments", "baseline", "set", {"optimizer": "lbfgs"}),
        "experiments.baseline.set.optimizer",
    ),
]


def test_reference_epoch_0_gets_the_plan_s_message_not_the_schema_s():
    with pytest.raises(ConfigError, match="reference epoch 0 is not ahead of the starting point"):
        build_plan(broken(_set("experiments", "budgets", "references", [0, "final"])))


def test_two_spacings_name_both_experiments_and_their_keys_in_any_order():
    config = broken(_set("experiments", "optimizers", "segment_epochs", 2))
    messages = []
    for order in (list(config["experiments"]), list(reversed(config["experiments"]))):
        shuffled = copy.deepcopy(config)
        shuffled["experiments"] = {name: config["experiments"][name] for name in order}
        with pytest.raises(ConfigError) as error:
            build_plan(shuffled)
        messages.append(str(error.value))
    assert messages[0] == messages[1]
    assert messages[0].startswith("config key 'experiments.optimizers.segment_epochs': run ")
    assert "experiment baseline: 1 (from segment_epochs)" in messages[0]
    assert "experiment optimizers: 2 (from experiments.optimizers.segment_epochs)" in messages[0]
    assert "give these experiments the same segment_epochs" in messages[0]


def test_a_case_sets_its_own_spacing_and_validation_interval():
    """A long run among short ones in one experiment: its own segment_epochs and validate_every (issue 22)."""
    config = tiny()
    config["experiments"] = {
        "lengths": {
            "description": "two lengths",
            "measure": "w_star_free",
            "segment_epochs": 6,
            "set": {"full_batch": True, "batch_size": 100, "optimizer": "sgd", "lr": 0.5, "weight_decay": 0.0},
            "cases": [{"epochs": 6}, {"epochs": 12, "segment_epochs": 12, "validate_every": 4}],
        }
    }
    config["figures"] = {}
    plan = build_plan(config)
    by_epochs = {spec.epochs: run_id for run_id, spec in plan.runs.items()}
    assert plan.checkpoint_epochs(by_epochs[6]) == (0, 6) and plan.checkpoint_epochs(by_epochs[12]) == (0, 12)
    assert plan.run_validate_every == {by_epochs[6]: 1, by_epochs[12]: 4}
    # The settings are no run fields: the run ids are those of runs without them.
    config["experiments"]["lengths"]["cases"][1] = {"epochs": 12}
    assert set(build_plan(config).runs) == set(plan.runs)
    config["experiments"]["lengths"]["cases"][1]["segment_epochs"] = "x"
    assert (
        str(schema_error(config))
        == "config key 'experiments.lengths.cases[1].segment_epochs': 'x' is not of type 'integer'"
    )


def broken(edit) -> dict:
    config = tiny()
    edit(config)
    return config


def test_the_tiny_and_default_configs_are_valid(schema):
    for path in (TINY, DEFAULT_CONFIG):
        config = yaml.safe_load(path.read_text())
        assert schema_errors(config, schema) == []
        build_plan(config)


@pytest.mark.parametrize("name,edit,key", SCHEMA_ERRORS, ids=[c[0] for c in SCHEMA_ERRORS])
def test_schema_rejects(schema, name, edit, key):
    errors = schema_errors(broken(edit), schema)
    assert [error.key for error in errors] == [key], errors


@pytest.mark.parametrize("name,edit,key", PLAN_ERRORS, ids=[c[0] for c in PLAN_ERRORS])
def test_plan_rejects(schema, name, edit, key):
    config = broken(edit)
    assert schema_errors(config, schema) == []  # well-typed: only the plan can tell it is wrong
    with pytest.raises(ConfigError) as error:
        build_plan(config)
    assert error.value.key == key
    assert str(error.value).startswith(f"config key '{key}': ")


@pytest.mark.parametrize(
    "name,edit,key",
    SCHEMA_ERRORS[:2] + SCHEMA_ERRORS[3:5] + PLAN_ERRORS[:6],
    ids=[c[0] for c in SCHEMA_ERRORS[:2] + SCHEMA_ERRORS[3:5] + PLAN_ERRORS[:6]],
)
def test_snakemake_names_the_key(tmp_path, name, edit, key):
    result = snakemake_dry_run(broken(edit), tmp_path)
    text = result.stdout + result.stderr
    assert result.returncode != 0
    assert names_key(text, key), text[-3000:]
    assert "Traceback" not in text, text[-3000:]
    assert not (tmp_path / "work" / "results").exists()


def test_every_violation_is_named_in_the_config_s_order():
    """Issue 21: a grid of two quoted numbers named only the last; now every violation, top to bottom, with why a
    number is text."""
    config = tiny()
    config["experiments"]["batch_sizes"]["grid"]["lr"] = [0.01, "1e-4", "1e-3"]
    config["defaults"]["lr"] = -1
    errors = schema_errors(config)
    assert [error.key for error in errors] == [
        "defaults.lr",
        "experiments.batch_sizes.grid.lr[1]",
        "experiments.batch_sizes.grid.lr[2]",
    ]
    assert str(errors[1]) == (
        "config key 'experiments.batch_sizes.grid.lr[1]': '1e-4' is not of type 'number'; YAML "
        "read it as text: write a number without quotes and without `_` (0.001, 1e-3)"
    )
    combined = schema_error(config)
    assert isinstance(combined, ConfigErrors) and combined.key == "defaults.lr"
    assert str(combined).splitlines() == [str(error) for error in errors]
    with pytest.raises(ConfigErrors):
        build_plan(config)


UNKNOWN_KEYS = [
    (
        "an experiment's key",
        _set("experiments", "baseline", "gird", {"lr": [0.1]}),
        "experiments.baseline.gird",
        "did you mean 'grid'?",
    ),
    ("a top-level key", _set("segment_epoch", 2), "segment_epoch", "did you mean 'segment_epochs'?"),
    (
        "a plot's option",
        _set("figures", "gamma_by_budget", "colr", "seed"),
        "figures.gamma_by_budget.colr",
        "did you mean 'color'?",
    ),
    ("a run field", _set("defaults", "weight_decy", 0.1), "defaults.weight_decy", "did you mean 'weight_decay'?"),
    (
        "nothing close",
        _set("experiments", "baseline", "zzz", 1),
        "experiments.baseline.zzz",
        "the keys known here are description, segment_epochs, validate_every, measure, set, cases, grid, ",
    ),
]


@pytest.mark.parametrize("name,edit,key,hint", UNKNOWN_KEYS, ids=[c[0] for c in UNKNOWN_KEYS])
def test_an_unknown_key_gets_the_known_key_closest_to_it(schema, name, edit, key, hint):
    errors = schema_errors(broken(edit), schema)
    assert [error.key for error in errors] == [key]
    assert str(errors[0]).startswith(f"config key '{key}': is not a known key; {hint}"), str(errors[0])


def test_two_unknown_keys_in_one_mapping_are_two_errors(schema):
    config = tiny()
    config["experiments"]["baseline"].update(gird={"lr": [0.1]}, sett={"lr": 0.1})
    assert [str(error) for error in schema_errors(config, schema)] == [
        "config key 'experiments.baseline.gird': is not a known key; did you mean 'grid'?",
        "config key 'experiments.baseline.sett': is not a known key; did you mean 'set'?",
    ]


# The registries' parts of the schema: (name, how to break the tiny config, the key, the start of the message)
REGISTRY_ERRORS = [
    (
        "unknown model",
        _set("experiments", "architectures", "grid", "model", ["mlp", "resnet9"]),
        "experiments.architectures.grid.model[1]",
        "'resnet9' is not one of ['cifar_cnn', 'cifar_mobilenet_v2', ",
    ),
    ("unknown dataset kind", _set("datasets", "alm", "kind", "alms"), "datasets.alm.kind", "'alms' is not one of"),
    (
        "a parameter another kind has",
        _set("datasets", "mnist1d", "dim", 5),
        "datasets.mnist1d.dim",
        "is not a known key",
    ),
    ("a kind's parameter out of range", _set("datasets", "walk", "dim", 1), "datasets.walk.dim", "1 is less than"),
    (
        "unknown plot",
        _set("figures", "rsi_eb_gamma", "plot", "rsi"),
        "figures.rsi_eb_gamma.plot",
        "'rsi' is not one of",
    ),
    (
        "an option another plot has",
        _set("figures", "rsi_eb_gamma", "facet", "width"),
        "figures.rsi_eb_gamma.facet",
        "is not a known key",
    ),
    (
        "a plot option's value",
        _set("figures", "gamma_by_budget", "metric", "rsi"),
        "figures.gamma_by_budget.metric",
        "'rsi' is not one of",
    ),
]


@pytest.mark.parametrize("name,edit,key,message", REGISTRY_ERRORS, ids=[c[0] for c in REGISTRY_ERRORS])
def test_registry_schema_errors_name_the_key(schema, name, edit, key, message):
    config = broken(edit)
    assert schema_errors(config, schema)
    error = schema_error(config)
    assert error.key == key, str(error)
    assert str(error).startswith(f"config key '{key}': {message}"), str(error)


def test_schema_enums_are_the_registries():
    completed = config_schema()
    run_fields = completed["$defs"]["run_fields"]["properties"]
    assert run_fields["model"]["anyOf"][0]["enum"] == list(models())
    assert run_fields["optimizer"]["anyOf"][0]["enum"] == sorted({*OPTIMIZERS, *UNSUPPORTED})
    assert run_fields["model"]["anyOf"][1]["pattern"] == run_fields["optimizer"]["anyOf"][1]["pattern"] == PATTERN
    dataset = completed["properties"]["datasets"]["additionalProperties"]
    assert dataset["properties"]["kind"]["enum"] == list(kinds())
    assert [clause["if"]["properties"]["kind"]["const"] for clause in dataset["allOf"]] == list(kinds())
    figure = completed["properties"]["figures"]["additionalProperties"]
    assert figure["properties"]["plot"]["enum"] == list(plots())
    # The schema file keeps no list of its own: those parts live in the registries only.
    structure = yaml.safe_load(STRUCTURE.read_text())
    run_fields = structure["$defs"]["run_fields"]["properties"]
    dataset = structure["properties"]["datasets"]["additionalProperties"]
    figure = structure["properties"]["figures"]["additionalProperties"]
    for owned in (
        run_fields["model"],
        run_fields["optimizer"],
        dataset["properties"]["kind"],
        figure["properties"]["plot"],
    ):
        assert "enum" not in owned and "anyOf" not in owned
    assert "allOf" not in dataset and "allOf" not in figure


def test_plan_errors_are_reported_once(tmp_path):
    result = snakemake_dry_run(broken(PLAN_ERRORS[0][1]), tmp_path)
    text = result.stdout + result.stderr
    assert text.count("config key 'experiments.batch_sizes.grid.batch_size'") == 1, text


# ---------------------------------------------------------------------------------------------------------
# The plan
# ---------------------------------------------------------------------------------------------------------


def test_runs_shared_between_experiments_are_planned_once():
    config = tiny()
    plan = build_plan(config)
    baseline = plan.experiments["baseline"]
    assert len(baseline) == 1
    (run,) = baseline
    for exp in ("optimizers", "batch_sizes", "architectures", "budgets"):
        assert run in plan.experiments[exp], exp
    listed = [r for runs in plan.experiments.values() for r in runs]
    assert set(listed) == set(plan.runs)
    assert len(plan.runs) < len(listed)
    for runs in plan.experiments.values():
        assert len(runs) == len(set(runs))


def test_references_of_a_shared_run_are_the_union_over_experiments():
    plan = build_plan(tiny())
    (run,) = plan.experiments["baseline"]
    epochs = plan.runs[run].epochs
    assert [(r.name, r.epoch) for r in plan.references(run)] == [("epoch1", 1), ("final", epochs)]
    assert plan.experiment_references[("baseline", run)] == (epochs,)
    assert plan.experiment_references[("budgets", run)] == (1, epochs)


def test_checkpoints_and_segments():
    config = tiny()
    config["segment_epochs"] = 2
    config["defaults"]["epochs"] = 5
    config["experiments"]["budgets"]["references"] = [2, 4, "final"]
    plan = build_plan(config)
    (run,) = plan.experiments["baseline"]
    assert plan.checkpoint_epochs(run) == (0, 2, 4, 5)
    assert plan.segments(run) == ((0, 2), (2, 4), (4, 5))


def test_lr_is_scaled_by_the_square_root_of_the_batch_size():
    config = tiny()
    config["experiments"]["batch_sizes"]["grid"]["batch_size"] = [25, 50, 100]
    plan = build_plan(config)
    base_lr = config["defaults"]["lr"]
    base = config["experiments"]["batch_sizes"]["set"]["base_batch_size"]
    lrs = {plan.runs[r].batch_size: plan.runs[r].lr for r in plan.experiments["batch_sizes"]}
    assert lrs.keys() == {25, 50, 100}
    for batch, lr in lrs.items():
        assert math.isclose(lr, base_lr * math.sqrt(batch / base), rel_tol=1e-12), (batch, lr)
    assert lrs[50] == base_lr
    # Without a base batch size the LR is taken as given.
    (baseline,) = plan.experiments["baseline"]
    assert plan.runs[baseline].lr == base_lr


def test_experiment_expansion_crosses_cases_with_grid():
    config = tiny()
    config["experiments"]["optimizers"]["grid"] = {"seed": [0, 1, 2]}
    plan = build_plan(config)
    runs = [plan.runs[r] for r in plan.experiments["optimizers"]]
    assert sorted((s.optimizer, s.seed) for s in runs) == sorted(
        (opt, seed) for opt in ("sgd", "momentum") for seed in (0, 1, 2)
    )


# ---------------------------------------------------------------------------------------------------------
# Run identity
# ---------------------------------------------------------------------------------------------------------


def _baseline_spec() -> RunSpec:
    plan = build_plan(tiny())
    (run,) = plan.experiments["baseline"]
    return plan.runs[run]


CHANGES = {
    "model": "resnet1d",
    "width": 16,
    "optimizer": "adam",
    "lr": 0.02,
    "weight_decay": 0.0,
    "schedule": "warmup_cosine",
    "warmup_epochs": 1,
    "batch_size": 25,
    "epochs": 3,
    "seed": 1,
    "data_order_seed": 1,
    "precision": "float64",
    "grad_clip": 0.25,
    "model_options": {"hidden_layers": 3},
    "full_batch": True,
    "warmup_growth": 0.1,
    "gawu_window": 3,
    "devices": 2,
    "sync_batchnorm": True,
    "optimizer_options": {"nesterov": True},
}


def test_every_field_is_covered_by_the_id_test():
    assert set(CHANGES) | {"data"} == {f.name for f in dataclasses.fields(RunSpec)}


@pytest.mark.parametrize("field", sorted(CHANGES))
def test_changing_any_field_changes_the_run_id(field):
    spec = _baseline_spec()
    changed = dataclasses.replace(spec, **{field: CHANGES[field]})
    assert getattr(changed, field) != getattr(spec, field)
    assert changed.run_id != spec.run_id


@pytest.mark.parametrize("field", sorted(CHANGES))
def test_the_slug_names_every_field(field):
    """Not only the hash: runs that differ in any field read differently in results/runs/ (issue 10, item 3)."""
    spec = _baseline_spec()
    assert dataclasses.replace(spec, **{field: CHANGES[field]}).slug != spec.slug


def test_slugs_of_the_schedules_and_options():
    spec = _baseline_spec()
    gawu = dataclasses.replace(spec, schedule="gawu", warmup_epochs=25, warmup_growth=0.1, weight_decay=0.0)
    assert gawu.slug == "mnist1d-mlp8-momentum-lr0.01-bs50-gawu-wu25-g0.1-e2-s0"
    full = dataclasses.replace(spec, full_batch=True, batch_size=100, precision="float64")
    assert full.slug == "mnist1d-mlp8-momentum-lr0.01-wd1e-05-full-chunk100-e2-s0-float64"
    adamw = dataclasses.replace(spec, optimizer="adamw", optimizer_options={"betas": [0.9, 0.95], "amsgrad": False})
    assert adamw.slug == "mnist1d-mlp8-adamw-noamsgrad-betas0.9_0.95-lr0.01-wd1e-05-bs50-e2-s0"
    own = dataclasses.replace(spec, model="lab.nets:tiny", width=0, optimizer="lab.optim:Lion")
    assert own.slug == "mnist1d-nets.tiny-optim.Lion-lr0.01-wd1e-05-bs50-e2-s0"
    assert re.fullmatch(r"[A-Za-z0-9_.+-]+", own.run_id)


@pytest.mark.parametrize(
    "data",
    [
        DataSpec("mnist1d", "mnist1d", {"n_train": 201, "n_test": 50, "seed": 42}),
        DataSpec("mnist1d", "mnist1d", {"n_train": 200, "n_test": 50, "seed": 43}),
        DataSpec("other", "mnist1d", {"n_train": 200, "n_test": 50, "seed": 42}),
    ],
)
def test_changing_the_data_changes_the_run_id(data):
    spec = _baseline_spec()
    assert dataclasses.replace(spec, data=data).run_id != spec.run_id


def test_run_id_is_a_readable_slug_and_a_hash():
    spec = _baseline_spec()
    assert spec.run_id.startswith(spec.slug + "-")
    assert re.fullmatch(r"[0-9a-f]{8}", spec.run_id.rsplit("-", 1)[1])
    assert re.fullmatch(r"[A-Za-z0-9_.+-]+", spec.run_id)  # the workflow's wildcard constraint


def test_canonical_json_round_trips():
    for spec in build_plan(tiny()).runs.values():
        again = RunSpec.from_canonical(json.loads(spec.canonical_json()))
        assert again == spec
        assert again.run_id == spec.run_id
        assert again.canonical_json() == spec.canonical_json()


def test_run_ids_do_not_depend_on_key_order():
    config = tiny()
    shuffled = copy.deepcopy(config)
    shuffled["defaults"] = dict(reversed(list(config["defaults"].items())))
    shuffled["datasets"] = {
        name: dict(reversed(list(params.items()))) for name, params in reversed(list(config["datasets"].items()))
    }
    assert set(build_plan(shuffled).runs) == set(build_plan(config).runs)


def test_run_ids_are_stable_across_plans():
    assert list(build_plan(tiny()).runs) == list(build_plan(tiny()).runs)


# ---------------------------------------------------------------------------------------------------------
# Plug-ins: models and optimizers that pathgeo does not hold
# ---------------------------------------------------------------------------------------------------------


def test_plug_ins_plan_with_options_of_any_type(schema, tmp_path, monkeypatch):
    (tmp_path / "lab_models.py").write_text(
        "from torch import nn\n"
        "def mlp(num_classes, sizes=(8,), activation='relu'):\n"
        "    return nn.Sequential(nn.Linear(40, sizes[0]), nn.ReLU(), nn.Linear(sizes[0], num_classes))\n"
    )
    monkeypatch.chdir(tmp_path)
    config = tiny()
    config["experiments"] = {
        "own": {
            "set": {
                "model": "lab_models:mlp",
                "model_options": {"sizes": [16], "activation": "gelu"},
                "optimizer": "adamw",
                "optimizer_options": {"betas": [0.9, 0.95], "amsgrad": True},
            }
        },
        "vision": {"set": {"model": "torchvision:resnet18", "optimizer": "nadam"}},
    }
    config["figures"] = {}
    assert schema_errors(config, schema) == []
    plan = build_plan(config)
    own, vision = (plan.runs[plan.experiments[name][0]] for name in ("own", "vision"))
    assert (own.model, own.width, own.model_options) == ("lab_models:mlp", 0, {"sizes": [16], "activation": "gelu"})
    assert own.optimizer_options == {"betas": [0.9, 0.95], "amsgrad": True}
    assert own.canonical()["optimizer_options"] == {"amsgrad": True, "betas": [0.9, 0.95]}
    assert (vision.model, vision.width, vision.optimizer) == ("torchvision:resnet18", 0, "nadam")
    assert "optimizer_options" not in vision.canonical()  # at its default: existing run ids stay


def test_snakemake_names_the_key_of_a_module_it_cannot_import(tmp_path):
    result = snakemake_dry_run(broken(_set("experiments", "baseline", "set", {"model": "my_nets:tiny"})), tmp_path)
    text = result.stdout + result.stderr
    assert result.returncode != 0
    assert (
        "config key 'experiments.baseline.set.model': cannot import module 'my_nets' of 'my_nets:tiny': put "
        "my_nets.py in the working directory" in text
    ), text[-3000:]
    assert "Traceback" not in text, text[-3000:]


# A misspelt value where the schema offers alternatives (oneOf / anyOf): the message lists what each expects.
ENUM_ERRORS = [
    (
        "lagged",
        _set("correlations", "lagged", "every"),
        "correlations.lagged",
        "'every' is not one of ['anchored', 'every_step', 'off'], nor true or false",
    ),
    (
        "matrix_epochs",
        _set("correlations", "matrix_epochs", "some"),
        "correlations.matrix_epochs",
        "'some' is not 'all', nor a list",
    ),
    ("max_job_minutes", _set("max_job_minutes", "2 days"), "max_job_minutes", "'2 days' is not null, nor an integer"),
    (
        "schedule",
        _set("defaults", "schedule", "cosine"),
        "defaults.schedule",
        "'cosine' is not one of ['constant', 'exp_warmup_cosine', 'final_drop', 'gawu', 'warmup_cosine']",
    ),
]


@pytest.mark.parametrize("name,edit,key,message", ENUM_ERRORS, ids=[c[0] for c in ENUM_ERRORS])
def test_a_misspelt_value_gets_the_valid_values(schema, name, edit, key, message):
    config = broken(edit)
    assert str(schema_error(config, schema)) == f"config key '{key}': {message}"
