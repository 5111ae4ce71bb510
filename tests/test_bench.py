"""The prepared device check runs where polars, altair, snakemake, PyYAML and jsonschema are missing (GPU
nodes may have only PyTorch, NumPy, numba and Triton): `python -m pathgeo.bench device`, in a subprocess
whose imports of those packages fail, on the CPU with small models, with the Triton kernels under the
interpreter."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BLOCKED = ("polars", "altair", "snakemake", "yaml", "jsonschema")

BLOCKER = f"""
import runpy, sys

class Missing:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {BLOCKED!r}:
            raise ImportError(f"{{name}} is not installed here")

sys.meta_path.insert(0, Missing())
sys.argv = ["pathgeo.bench", *sys.argv[1:]]
runpy.run_module("pathgeo.bench", run_name="__main__")
"""


def test_device_check_runs_without_the_workflow_packages():
    env = {**os.environ, "PYTHONPATH": str(REPO), "TRITON_INTERPRET": "1"}
    args = ["device", "--device", "cpu", "--models", "mlp", "--steps", "3", "--rounds", "1",
            "--kernel-parameters", "3000", "--replay", "mlp", "--replay-epochs", "2", "--replay-samples", "96"]
    result = subprocess.run([sys.executable, "-c", BLOCKER, *args], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    lines = result.stdout.splitlines()
    assert lines[0].startswith("cpu, ")
    assert lines[2].split()[:2] == ["mlp", "32"]  # model, batch; then three timings and two ratios
    kernel = next(line for line in lines if line.startswith("kernel check:"))
    assert "NaN pattern equal" in kernel
    assert float(kernel.split("largest scaled difference ")[1].split(",")[0]) < 1e-12
    replay = next(line for line in lines if line.startswith("replay:"))
    assert "relative drift 0;" in replay and "probe backend fused" in replay

    # The blocker really blocks: the workflow's own modules fail to import under it.
    blocked = subprocess.run([sys.executable, "-c", BLOCKER.replace('runpy.run_module("pathgeo.bench", run_name="__main__")', "import pathgeo.aggregate")],
                             cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert blocked.returncode != 0 and "polars is not installed here" in blocked.stderr


def test_timings_pair_each_round_and_run_until_the_time_is_spent():
    """The ratios are medians of per-round ratios (the plain mode's own is exactly 1), every mode gets every
    round, and `seconds` adds rounds beyond the minimum."""
    from pathgeo import bench

    setup = bench.Setup(bench.MODELS["mlp"], steps=4)
    counted = bench.timings(setup, rounds=2, block=3)
    assert counted.rounds == 2 and counted.ratios["plain"] == 1.0
    assert set(counted.seconds) == set(counted.ratios) == set(bench.MODES)
    assert all(value > 0 for value in counted.seconds.values())
    timed = bench.timings(setup, rounds=1, seconds=1.0)
    assert timed.rounds > 1
