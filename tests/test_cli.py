"""The `pathgeo` console script (pathgeo.tools.cli): its commands are the modules' `python -m` entry points."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pathgeo.planning import schema
from pathgeo.tools import cli

REPO = Path(__file__).resolve().parents[1]


def pathgeo(*args: str, cache: Path | None = None) -> subprocess.CompletedProcess:
    """The command; `cache`: the folder of the completed schema's cache (XDG_CACHE_HOME)."""
    env = {**os.environ, **({"XDG_CACHE_HOME": str(cache)} if cache else {})}
    return subprocess.run(
        [sys.executable, "-m", "pathgeo.tools.cli", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=env,
    )


def test_pyproject_installs_the_script():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11's
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    module, function = scripts["pathgeo"].split(":")
    assert getattr(importlib.import_module(module), function) is cli.main


def test_help_lists_every_command_without_importing_torch():
    done = pathgeo("--help")
    assert done.returncode == 0
    for name, command in cli.COMMANDS.items():
        assert name in done.stdout and command.module in done.stdout
    imported = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys\nfrom pathgeo.tools import cli\ncli.parser()\nprint('torch' in sys.modules)",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    assert imported.stdout.strip() == "False"


@pytest.mark.parametrize("args", [[], ["no-such-command"]])
def test_a_missing_or_unknown_command_names_the_commands(args):
    done = pathgeo(*args)
    assert done.returncode == 2
    assert "doctor" in done.stderr and "precision-check" in done.stderr


@pytest.mark.parametrize("name", list(cli.COMMANDS))
def test_each_command_hands_its_arguments_to_its_modules_main(monkeypatch, name):
    module = importlib.import_module(cli.COMMANDS[name].module)
    calls = []
    monkeypatch.setattr(module, "main", lambda argv: calls.append(argv) or 3)
    assert cli.main([name, "--configfile", "x.yaml", "more"]) == 3
    assert calls == [["--configfile", "x.yaml", "more"]]


def test_a_main_that_returns_nothing_is_success(monkeypatch):
    from pathgeo.tools import bench

    monkeypatch.setattr(bench, "main", lambda argv: None)
    assert cli.main(["bench", "overhead"]) == 0


def test_the_commands_give_what_python_m_gives(tmp_path):
    overview = pathgeo("schema", cache=tmp_path)
    assert overview.returncode == 0
    assert (
        overview.stdout
        == subprocess.run(
            [sys.executable, "-m", "pathgeo.planning.schema"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "XDG_CACHE_HOME": str(tmp_path)},
        ).stdout
    )
    checked = pathgeo("check-config", "config/config.yaml")
    experiments = len(yaml.safe_load((REPO / "config" / "config.yaml").read_text())["experiments"])
    assert checked.returncode == 0, checked
    assert checked.stdout.startswith(f"config/config.yaml: ok ({experiments} experiments, "), checked
    assert pathgeo("check-config", "--help").stdout.startswith("usage: pathgeo check-config [-h] FILE [FILE ...]")
    assert pathgeo("doctor", "--memory-table").stdout.startswith("The largest model (float32 parameters)")


# ---------------------------------------------------------------------------------------------------------
# pathgeo schema: one section for a person, quick


def test_schema_prints_one_section_without_anchors(tmp_path):
    """Issue 21: `python -m pathgeo.planning.schema` ignored its arguments and printed 1,072 lines with `color: *id002`."""
    done = pathgeo("schema", "figures.gamma_band", cache=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("# figures.gamma_band\n")
    assert "*id" not in done.stdout and "&id" not in done.stdout
    shown = yaml.safe_load(done.stdout)
    assert shown["properties"]["plot"] == {"const": "gamma_band"}
    assert {"experiment", "color", "facet"} <= set(shown["properties"]) and shown["additionalProperties"] is False
    assert len(done.stdout.splitlines()) < 80


def test_schema_points_to_the_sections_it_shares(tmp_path):
    shown = yaml.safe_load(pathgeo("schema", "experiments", cache=tmp_path).stdout)
    experiment = shown["additionalProperties"]["properties"]
    assert experiment["set"] == {"see": "pathgeo schema defaults"}
    assert experiment["grid"]["properties"]["weight_decay"]["items"] == {"see": "pathgeo schema defaults.weight_decay"}
    assert experiment["cases"]["items"]["properties"]["lr"] == {"see": "pathgeo schema defaults.lr"}
    assert experiment["cases"]["items"]["properties"]["segment_epochs"]["description"] == "this case's segment_epochs"
    lr = yaml.safe_load(pathgeo("schema", "defaults.lr", cache=tmp_path).stdout)
    # With its default (config/defaults.yaml): a config holds only what it changes.
    assert lr == {"type": "number", "exclusiveMinimum": 0, "default": 0.01}
    figures = yaml.safe_load(pathgeo("schema", "figures", cache=tmp_path).stdout)
    assert figures["additionalProperties"]["keys by plot"].startswith("pathgeo schema figures.<plot> (accuracy, ")


def test_schema_lists_the_sections_and_refuses_an_unknown_one(tmp_path):
    overview = pathgeo("schema", cache=tmp_path).stdout
    assert "  * experiments " in overview and "datasets.KIND: an entry of that kind; kinds: alm, " in overview
    assert max(map(len, overview.splitlines())) <= 120
    unknown = pathgeo("schema", "experiments.x.gird", cache=tmp_path)
    assert unknown.returncode == 2
    assert unknown.stderr.startswith(
        "pathgeo schema: no section 'experiments.x.gird': section 'experiments.x' has description, segment_epochs, "
    )
    helped = pathgeo("schema", "--help", cache=tmp_path)
    assert helped.returncode == 0 and helped.stdout.startswith("usage: pathgeo schema [-h] [--json] [section]")


def test_schema_json_is_the_completed_schema(tmp_path):
    assert json.loads(pathgeo("schema", "--json", cache=tmp_path).stdout) == json.loads(
        json.dumps(schema.config_schema())
    )


def test_schema_from_its_cache_imports_no_torch(tmp_path):
    """The registries import torch and Altair (seconds); the second call reads the completed schema from the cache."""
    program = (
        "import sys\nfrom pathgeo.planning import schema\nschema.main(['experiments'])\n"
        "print('torch' in sys.modules, 'altair' in sys.modules, file=sys.stderr)"
    )
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path)}
    runs = [
        subprocess.run([sys.executable, "-c", program], cwd=REPO, capture_output=True, text=True, check=True, env=env)
        for _ in range(2)
    ]
    assert [run.stderr.strip() for run in runs] == ["True True", "False False"]
    assert runs[0].stdout == runs[1].stdout
    assert [path.name for path in (tmp_path / "pathgeo").iterdir()] == [f"schema-{schema.source_key()}.json"]


def test_the_cache_key_follows_the_source(tmp_path):
    package, structure = tmp_path / "pathgeo", tmp_path / "config.schema.yaml"
    (package / "figures").mkdir(parents=True)
    (package / "figures" / "lolr.py").write_text("PLOT = 1\n")
    structure.write_text("type: object\n")
    key = schema.source_key(package, structure)
    assert schema.source_key(package, structure) == key
    (package / "figures" / "lolr.py").write_text("PLOT = 2\n")
    assert schema.source_key(package, structure) != key
    key = schema.source_key(package, structure)
    structure.write_text("type: object\nrequired: [device]\n")
    assert schema.source_key(package, structure) != key
