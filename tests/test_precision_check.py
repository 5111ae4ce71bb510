"""The prepared device script (python -m pathgeo.tools.precision_check) on a tiny CPU problem, with the packages a
bare GPU machine lacks made unimportable: it must run on torch, numpy and pathgeo's training code alone."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ABSENT_ON_THE_DEVICE = ("polars", "altair", "snakemake", "yaml", "jsonschema")

RUN_WITHOUT = f"""
import importlib.abc, runpy, sys

class Absent(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in {ABSENT_ON_THE_DEVICE!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}} (absent on the device machine)")

sys.meta_path.insert(0, Absent())
sys.argv = ["pathgeo.tools.precision_check", "--device", "cpu", "--images", "64", "--batch-size", "32", "--width", "0.125"]
runpy.run_module("pathgeo.tools.precision_check", run_name="__main__")
"""


def test_precision_check_runs_without_the_workflow_packages():
    result = subprocess.run([sys.executable, "-c", RUN_WITHOUT], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    rows = {
        line.split()[0]: line.split()
        for line in result.stdout.splitlines()
        if line.split() and line.split()[0] in ("float32", "tf32", "bf16", "float64")
    }
    assert set(rows) == {"float32", "tf32", "bf16", "float64"}, result.stdout
    for precision, row in rows.items():
        assert float(row[1]) > 0, precision  # img/s
        assert float(row[4]) == 0.0, precision  # the replay's drift
    assert "every replay exact: True" in result.stdout


def test_the_blocker_blocks():
    probe = RUN_WITHOUT.split("sys.argv")[0] + "import polars\n"
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "absent on the device machine" in result.stderr
