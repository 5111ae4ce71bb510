"""A config holds only what it changes (pathgeo.planning.config_defaults), and its outputs are its own (pathgeo.planning.outputs):
issue 21's user config of ten lines, the layering of the defaults, and the names of the output folders."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from workflow_runner import run_snakemake

from pathgeo.planning.config_check import ConfigCheckError, check_config, main
from pathgeo.planning.config_defaults import config_defaults, with_defaults
from pathgeo.planning.outputs import (
    DEFAULT_NAME,
    OutputsError,
    config_name,
    config_sources,
    output_folder,
    owner_problem,
    record_owner,
)

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = REPO / "config" / "config.yaml"
# The README's example of one's own experiment.
WEIGHT_DECAY = """\
experiments:
  momentum:
    set: {epochs: 10}
    grid: {weight_decay: [0.0, 1e-4, 1e-3]}
  adam:
    set: {epochs: 10, optimizer: adam, lr: 0.001}
    grid: {weight_decay: [0.0, 1e-4, 1e-3]}
figures:
  gamma_by_weight_decay:
    {plot: gamma_band, experiment: [momentum, adam], color: weight_decay, facet: optimizer, reproduces: "none"}
"""


def test_a_config_of_experiments_and_figures_alone_is_complete(tmp_path):
    """A file with only experiments: and figures: was refused key by key (`config key 'device': is missing`)."""
    path = tmp_path / "my_sweep.yaml"
    path.write_text(WEIGHT_DECAY)
    checked = check_config([path])
    assert sorted((spec.optimizer, spec.weight_decay) for spec in checked.plan.runs.values()) == [
        (optimizer, wd) for optimizer in ("adam", "momentum") for wd in (0.0, 1e-4, 1e-3)
    ]
    assert {spec.epochs for spec in checked.plan.runs.values()} == {10}
    # Every other setting is its default; the default's own experiments are not planned.
    defaults = config_defaults()
    given = ("datasets", "figures")
    assert {key: checked.config[key] for key in defaults if key not in given} == {
        key: value for key, value in defaults.items() if key not in given
    }
    assert list(checked.plan.experiments) == ["momentum", "adam"]


def test_a_file_changes_single_keys_of_a_section_and_a_dataset_with_a_kind_replaces_the_default_entry():
    layered = with_defaults(
        {
            "correlations": {"window": 7},
            "claims": {"min_abs_trend": 0.5},
            "datasets": {"mnist1d": {"n_train": 100}, "sm": {"kind": "tensors", "path": "sm.pt"}},
            "defaults": {"lr": 0.1},
        }
    )
    defaults = config_defaults()
    assert layered["correlations"] == {**defaults["correlations"], "window": 7}
    assert layered["claims"]["max_gamma_epoch_cv"] == defaults["claims"]["max_gamma_epoch_cv"]
    assert layered["datasets"]["mnist1d"] == {**defaults["datasets"]["mnist1d"], "n_train": 100}
    assert layered["datasets"]["sm"] == {"kind": "tensors", "path": "sm.pt"}
    assert layered["defaults"] == {**defaults["defaults"], "lr": 0.1}
    assert with_defaults(layered) == layered


def test_a_misspelt_key_of_a_short_config_gets_did_you_mean_with_its_file(tmp_path):
    path = tmp_path / "my_sweep.yaml"
    path.write_text(WEIGHT_DECAY.replace("    grid:", "    gird:", 1))
    with pytest.raises(ConfigCheckError) as error:
        check_config([path])
    assert f"{path}, line 4:" in str(error.value) and "did you mean 'grid'" in str(error.value)


def test_check_config_says_where_the_outputs_go(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("my_sweep.yaml").write_text(WEIGHT_DECAY)
    assert main(["my_sweep.yaml"]) == 0
    assert "2 experiments, 6 runs, 1 figure; its tables and figures go to results/my_sweep/" in capsys.readouterr().out


def test_each_config_has_its_own_folder_named_after_its_file():
    assert config_name([], DEFAULT_CONFIG) == DEFAULT_NAME == config_name([DEFAULT_CONFIG], DEFAULT_CONFIG)
    assert config_name(["sweeps/my_sweep.yaml"], DEFAULT_CONFIG) == "my_sweep"
    # A config laid over another never writes into the other's folder.
    assert config_name(["config/presets/cifar10.yaml", "site.yaml"], DEFAULT_CONFIG) == "cifar10+site"
    assert config_name([DEFAULT_CONFIG, "more.yaml"], DEFAULT_CONFIG) == "default+more"
    assert output_folder("my_sweep") == Path("results/my_sweep")


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("elsewhere/default.yaml", "the embedded default's"),
        ("runs.yaml", "a folder that every config shares"),
        ("my sweep.yaml", "letters, digits"),
        ("a+b.yaml", "letters, digits"),
    ],
)
def test_a_name_that_would_take_another_folder_is_refused_with_what_to_do(name, says):
    with pytest.raises(OutputsError) as error:
        config_name([name], DEFAULT_CONFIG)
    assert str(error.value).startswith(f"{name}: its outputs would go to results/")
    assert says in str(error.value) and "rename the file" in str(error.value)


def test_a_second_file_of_the_same_name_may_not_write_into_the_first_s_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    first = config_sources(["a/sweep.yaml"], DEFAULT_CONFIG)
    assert owner_problem("sweep", first) is None
    record_owner("sweep", first, {"experiments": {}})
    assert json.loads(Path("results/sweep/config.json").read_text())["config_files"] == ["a/sweep.yaml"]
    assert owner_problem("sweep", first) is None
    problem = owner_problem("sweep", config_sources(["b/sweep.yaml"], DEFAULT_CONFIG))
    assert problem is not None
    assert "results/sweep/ holds the outputs of config a/sweep.yaml" in problem and "b/sweep.yaml" in problem
    assert "rename one of the files" in problem and "delete results/sweep/config.json" in problem
    assert config_sources([], DEFAULT_CONFIG) == config_sources([DEFAULT_CONFIG], DEFAULT_CONFIG)


def test_the_workflow_runs_in_another_folder_without_a_configfile(tmp_path):
    """`--directory` worked only with a --configfile (FileNotFoundError: 'config/config.yaml')."""
    result = run_snakemake(tmp_path, "-n")
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    assert "results/default/tables/claims.csv" in result.stdout
