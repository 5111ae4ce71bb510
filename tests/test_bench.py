"""The prepared device check runs where polars, altair, snakemake, PyYAML and jsonschema are missing (GPU
nodes may have only PyTorch, NumPy, numba and Triton): `python -m pathgeo.tools.bench device`, in a subprocess
whose imports of those packages fail, on the CPU with small models, with the Triton kernels under the
interpreter."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
BLOCKED = ("polars", "altair", "snakemake", "yaml", "jsonschema")

BLOCKER = f"""
import runpy, sys

class Missing:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {BLOCKED!r}:
            raise ImportError(f"{{name}} is not installed here")

sys.meta_path.insert(0, Missing())
sys.argv = ["pathgeo.tools.bench", *sys.argv[1:]]
runpy.run_module("pathgeo.tools.bench", run_name="__main__")
"""


def test_device_check_runs_without_the_workflow_packages():
    env = {**os.environ, "PYTHONPATH": str(REPO), "TRITON_INTERPRET": "1"}
    args = [
        "device",
        "--device",
        "cpu",
        "--models",
        "mlp",
        "--steps",
        "3",
        "--rounds",
        "1",
        "--kernel-parameters",
        "3000",
        "--replay",
        "mlp",
        "--replay-epochs",
        "2",
        "--replay-samples",
        "96",
    ]
    result = subprocess.run(
        [sys.executable, "-c", BLOCKER, *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
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
    blocked = subprocess.run(
        [
            sys.executable,
            "-c",
            BLOCKER.replace(
                'runpy.run_module("pathgeo.tools.bench", run_name="__main__")', "import pathgeo.analysis.aggregate"
            ),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert blocked.returncode != 0 and "polars is not installed here" in blocked.stderr


def test_timings_pair_each_round_and_run_until_the_time_is_spent():
    """The ratios are medians of per-round ratios (the plain mode's own is exactly 1), every mode gets every
    round, and `seconds` adds rounds beyond the minimum."""
    from pathgeo.tools import bench

    setup = bench.Setup(bench.MODELS["mlp"], steps=4)
    counted = bench.timings(setup, rounds=2, block=3)
    assert counted.rounds == 2 and counted.ratios["plain"] == 1.0
    assert set(counted.seconds) == set(counted.ratios) == set(bench.MODES)
    assert all(value > 0 for value in counted.seconds.values())
    # Rounds take what the machine allows: ask for three times what the minimum took.
    start = time.perf_counter()
    assert bench.timings(setup, rounds=1).rounds == 1
    timed = bench.timings(setup, rounds=1, seconds=3 * (time.perf_counter() - start))
    assert timed.rounds > 1


def test_the_device_check_times_under_the_runs_deterministic_settings(monkeypatch):
    """Every timing of `device` runs with the settings of pathgeo.training.devices.configure_determinism, as the runs do,
    not with whatever the process had before (here: everything off, cuDNN benchmarking on)."""
    from pathgeo.tools import bench
    from pathgeo.training import devices

    saved = torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark
    seen = []
    timings = bench.timings

    def spy(setup, rounds, *args, **kwargs):
        seen.append(
            (
                torch.are_deterministic_algorithms_enabled(),
                torch.backends.cudnn.deterministic,
                torch.backends.cudnn.benchmark,
                torch.backends.cuda.matmul.allow_tf32,
            )
        )
        return timings(setup, rounds, *args, **kwargs)

    monkeypatch.setattr(bench, "timings", spy)
    try:
        devices.configure_determinism(False)
        torch.backends.cuda.matmul.allow_tf32 = True
        lines = bench.device_check(
            torch.device("cpu"),
            ["mlp"],
            steps=2,
            rounds=1,
            kernel_parameters=3000,
            replay="mlp",
            replay_epochs=1,
            replay_samples=64,
        )
    finally:
        torch.use_deterministic_algorithms(saved[0], warn_only=True)
        torch.backends.cudnn.benchmark = saved[1]
    assert seen == [(True, True, False, False)]
    assert "deterministic settings {'deterministic_algorithms': True" in lines[0]


def test_the_kernel_check_says_why_it_skips_without_numba():
    """A GPU node without numba: the check it cannot make is skipped with the reason, not a crash."""
    script = (
        "import sys\n"
        "sys.modules['numba'] = None\n"
        "import torch\n"
        "from pathgeo.tools import bench\n"
        "print(bench.kernel_check(torch.device('cpu'), 3000, 3))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO), "TRITON_INTERPRET": "1"}
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert done.stdout.startswith("kernel check: skipped (the fused CPU pass it compares against needs numba")
    assert "import of numba halted" in done.stdout
