"""The `pathgeo` console script (pathgeo.cli): its commands are the modules' `python -m` entry points."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from pathgeo import cli

REPO = Path(__file__).resolve().parents[1]


def pathgeo(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pathgeo.cli", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=300, check=False)


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
        [sys.executable, "-c", "import sys\nfrom pathgeo import cli\ncli.parser()\nprint('torch' in sys.modules)"],
        cwd=REPO, capture_output=True, text=True, check=True,
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
    from pathgeo import bench

    monkeypatch.setattr(bench, "main", lambda argv: None)
    assert cli.main(["bench", "overhead"]) == 0


def test_the_commands_give_what_python_m_gives():
    schema = pathgeo("schema")
    assert schema.returncode == 0
    assert schema.stdout == subprocess.run([sys.executable, "-m", "pathgeo.schema"], cwd=REPO, capture_output=True,
                                           text=True, check=True).stdout
    checked = pathgeo("check-config", "config/config.yaml")
    assert checked.returncode == 0 and checked.stdout == "config/config.yaml: ok\n"
    assert pathgeo("check-config", "--help").stdout.startswith("usage: python -m pathgeo.config_files")
    assert pathgeo("doctor", "--memory-table").stdout.startswith("The largest model (float32 parameters)")
