"""The node's checks (pathgeo.planning.preflight) that GPU jobs run before they train and `pathgeo doctor` shows, on this
CPU-only machine: a GPU, SLURM's variables, a driver, a missing compiler or header and a full device are
simulated."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pathgeo.jobs import runner
from pathgeo.planning import preflight, sizing
from pathgeo.tools import doctor
from pathgeo.training import devices, distributed
from pathgeo.training.spec import DataSpec, RunSpec

REPO = Path(__file__).resolve().parents[1]
no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
SLURM_ONE_GPU = {"SLURM_JOB_ID": "4242", "SLURM_JOB_GPUS": "0", "SLURM_GPUS_ON_NODE": "1", "CUDA_VISIBLE_DEVICES": "0"}
SLURM_VARIABLES = ("SLURM_JOB_ID", *devices.SLURM_GPU_LISTS, *devices.SLURM_GPU_COUNTS, devices.FAKE_GPUS)
MNIST1D = DataSpec("mnist1d", "mnist1d", {"n_train": 200, "n_test": 50, "seed": 42})
# A replay with the default correlation settings and two reference points.
REPLAY_CORRELATIONS = {"window": 5, "lagged": "anchored", "matrix_epochs": "all"}


def spec(optimizer: str = "momentum", devices_: int = 1) -> RunSpec:
    return RunSpec(
        data=MNIST1D,
        model="mlp",
        width=64,
        optimizer=optimizer,
        lr=0.01,
        weight_decay=0.0,
        schedule="constant",
        warmup_epochs=0,
        batch_size=50,
        epochs=2,
        seed=0,
        data_order_seed=0,
        precision="float32",
        devices=devices_,
    )


@pytest.fixture
def no_job(monkeypatch):
    for name in SLURM_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def gpu(monkeypatch):
    """A node where torch sees one GPU with `gpu.free` bytes free of 80 GiB."""

    class Memory:
        free = 70 << 30

    # Counted on a real CPU optimizer step, which a torch that believes in a GPU would try to run on one.
    for name in ("sgd", "momentum", "adam"):
        sizing.optimizer_slots(name)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: None)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA A100-SXM4-80GB")
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (Memory.free, 80 << 30))
    return Memory


@pytest.fixture
def torch_settings():
    """A job's start sets torch's threads and deterministic settings for the process; put them back."""
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    yield
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(deterministic, warn_only=True)


def fake_nvidia_smi(folder: Path, driver: str) -> str:
    """A PATH whose nvidia-smi reports `driver`."""
    folder.mkdir(parents=True, exist_ok=True)
    program = folder / "nvidia-smi"
    program.write_text(f"#!/bin/sh\necho {driver}\n")
    program.chmod(0o755)
    return f"{folder}{os.pathsep}{os.environ['PATH']}"


# ------------------------------------------------------------------------------------------------------------
# pathgeo doctor as a user runs it


# A GPU node may have only PyTorch, NumPy, numba and Triton: their imports fail under this.
BLOCKER = """
import runpy, sys

class Missing:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("polars", "altair", "snakemake", "yaml", "jsonschema"):
            raise ImportError(f"{name} is not installed here")

sys.meta_path.insert(0, Missing())
sys.argv = ["pathgeo", *sys.argv[1:]]
runpy.run_module("pathgeo.tools.cli", run_name="__main__")
"""


def run_doctor(env: dict[str, str], *args: str, blocked: bool = False) -> subprocess.CompletedProcess:
    outside = {key: value for key, value in os.environ.items() if key not in SLURM_VARIABLES}
    outside.pop("TRITON_INTERPRET", None)  # the CPU here runs no Triton kernel outside the interpreter
    command = ["-c", BLOCKER] if blocked else ["-m", "pathgeo.tools.cli"]
    return subprocess.run(
        [sys.executable, *command, "doctor", *args],
        cwd=REPO,
        env={**outside, **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@no_cuda
def test_doctor_fails_in_a_gpu_allocation_without_cuda_and_names_the_versions(tmp_path):
    """Acceptance of issue 18: SLURM's GPU variables on this CPU-only machine; the doctor exits non-zero and
    names the driver (reported by nvidia-smi) and the CUDA version torch was built for."""
    done = run_doctor({**SLURM_ONE_GPU, "PATH": fake_nvidia_smi(tmp_path, "535.104.05")})
    assert done.returncode == 1, done.stdout + done.stderr
    rows = {line.split("  ")[0].strip(): line for line in done.stdout.splitlines()}
    assert " FAIL " in rows["CUDA"] and " FAIL " in rows["driver"] and " FAIL " in rows["GPUs of the allocation"]
    assert "NVIDIA driver 535.104.05" in rows["driver"]
    assert f"built for CUDA {torch.version.cuda}" in rows["driver"]
    assert (
        "SLURM: SLURM_JOB_GPUS=0" in rows["GPUs of the allocation"] and "torch sees 0" in rows["GPUs of the allocation"]
    )
    assert "fix: update the NVIDIA driver to >= 580" in done.stdout
    assert done.stdout.rstrip().endswith("3 checks failed: CUDA, driver, GPUs of the allocation")


@no_cuda
@pytest.mark.parametrize("blocked", [False, True])
def test_doctor_passes_on_a_laptop(blocked):
    """Without the workflow's packages too: only --configfile needs them."""
    done = run_doctor({}, "--configfile", "config/config.yaml", blocked=blocked)
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"^CUDA +SKIP +no CUDA device and no GPU allocation", done.stdout, re.MULTILINE)
    assert re.search(r"^deterministic settings +OK +deterministic_algorithms=True", done.stdout, re.MULTILINE)
    assert done.stdout.rstrip().endswith("0 checks failed")


# ------------------------------------------------------------------------------------------------------------
# The checks one by one


@no_cuda
def test_cuda_and_driver_rows(monkeypatch, no_job):
    monkeypatch.setattr(devices, "driver_version", lambda: "535.104.05")
    monkeypatch.setattr(torch.version, "cuda", "13.2")
    # A laptop: no CUDA is no failure.
    assert preflight.cuda_check().status == preflight.SKIP
    assert preflight.allocation_check().status == preflight.SKIP
    # The driver is too old for torch's CUDA anyway.
    assert preflight.driver_check().status == preflight.FAIL
    monkeypatch.setattr(devices, "driver_version", lambda: "580.65.06")
    assert preflight.driver_check().status == preflight.OK
    for name, value in SLURM_ONE_GPU.items():
        monkeypatch.setenv(name, value)
    cuda = preflight.cuda_check()
    assert cuda.status == preflight.FAIL and "no CUDA device in a job that holds GPUs" in cuda.result
    assert "580.65.06 is new enough, yet torch sees no GPU" in cuda.fix


def test_allocation_row_compares_slurm_with_torch(monkeypatch, no_job, gpu):
    monkeypatch.setenv("SLURM_JOB_ID", "7")
    monkeypatch.setenv("SLURM_GPUS_ON_NODE", "4")
    check = preflight.allocation_check()
    assert check.status == preflight.FAIL and check.result == "SLURM: SLURM_GPUS_ON_NODE=4; torch sees 1"
    monkeypatch.setenv("SLURM_GPUS_ON_NODE", "1")
    assert preflight.allocation_check().status == preflight.OK


def test_triton_build_needs_a_compiler_and_pythons_headers(monkeypatch, tmp_path):
    monkeypatch.delenv("CC", raising=False)
    assert preflight.triton_build_check().status == preflight.OK  # this machine has both
    monkeypatch.setattr(preflight.shutil, "which", lambda name: None)
    check = preflight.triton_build_check()
    assert check.status == preflight.FAIL and "C compiler missing (gcc or clang on PATH)" in check.result
    assert "module load gcc" in check.fix and "conda install -c conda-forge gcc" in check.fix
    monkeypatch.undo()
    monkeypatch.setenv("CC", "no-such-cc")
    assert "missing ($CC=no-such-cc on PATH)" in preflight.triton_build_check().result
    monkeypatch.delenv("CC")
    monkeypatch.setattr(preflight, "python_header", lambda: tmp_path / "include" / "Python.h")
    check = preflight.triton_build_check()
    assert check.status == preflight.FAIL and f"{tmp_path / 'include' / 'Python.h'} missing" in check.result
    assert f"python{sys.version_info.major}.{sys.version_info.minor}-dev" in check.fix


def test_pythons_header_is_where_triton_looks():
    import sysconfig

    scheme = sysconfig.get_default_scheme()
    expected = sysconfig.get_paths(scheme="posix_prefix" if scheme == "posix_local" else scheme)["include"]
    assert preflight.python_header() == Path(expected) / "Python.h"


def test_memory_row_names_every_part_and_the_free_memory(gpu):
    run = spec("adam")
    vectors = preflight.probe_vectors(REPLAY_CORRELATIONS, 2)
    assert vectors == sizing.probe_copies(REPLAY_CORRELATIONS, 2) == 1 + 2 + 5 + 1 + 1
    parts = sizing.model_state_parts_mb(run, vectors)
    assert sum(parts.values()) == pytest.approx(sizing.model_state_mb(run, vectors))
    assert parts["optimizer"] == 2 * parts["weights"] and parts["probe"] == 10 * parts["weights"]
    assert preflight.memory_check(run, torch.device("cuda", 0), vectors).status == preflight.OK
    gpu.free = int(sum(parts.values()) * sizing.MB) - 1
    check = preflight.memory_check(run, torch.device("cuda", 0), vectors)
    assert check.status == preflight.FAIL
    assert f"run {run.run_id}: {sum(parts.values()):.0f} MB before activations" in check.result
    assert f"probe {parts['probe']:.0f}" in check.result and "of 81920 MB" in check.result
    assert "lagged: anchored} or off" in check.fix


def test_a_reference_jobs_probe_has_no_lags():
    # Its w*-free probe: the rolling gradients only, whatever the replays' protocol.
    assert preflight.probe_vectors({"window": 5, "matrix_epochs": "all"}, 0) == 5
    assert preflight.probe_vectors(None, 0) is None


def request(values: dict) -> runner.Request:
    return runner.Request(
        spec=json.dumps(spec().canonical()),
        device="auto",
        deterministic=True,
        threads=1,
        manifest="unused",
        values=values,
    )


@pytest.mark.parametrize(
    "values, probe",
    [
        ({"correlations": REPLAY_CORRELATIONS, "references": {"final": 2, "e1": 1}}, True),
        ({"correlations": None}, False),  # a reference job that measures nothing itself
        ({}, False),  # a landscape job
    ],
)
def test_a_gpu_job_checks_the_node_before_it_loads_its_data(monkeypatch, gpu, torch_settings, values, probe):
    """start_job runs the job checks on its device: memory always, Triton's build where rank 0 runs the probe;
    a failure stops it before its data is loaded."""
    monkeypatch.setattr(runner, "select_device", lambda name: torch.device("cuda"))
    monkeypatch.setattr(runner.data, "load_for_run", lambda *args: pytest.fail("loaded the data of a doomed job"))
    monkeypatch.setattr(preflight.shutil, "which", lambda name: None)
    monkeypatch.delenv("CC", raising=False)
    gpu.free = 1000
    with pytest.raises(preflight.PreflightError) as raised:
        runner.start_job(request(values))
    message = str(raised.value)
    assert message.startswith(f"run {spec().run_id} cannot train on cuda:0: ")
    assert "device memory: " in message and "cuda:0 has 0 MB free of 81920 MB" in message
    assert ("module load gcc" in message) == probe
    assert ("probe " in message) == probe


def test_a_cpu_job_runs_no_gpu_check(monkeypatch):
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: pytest.fail("asked a GPU's memory"))
    assert preflight.job_checks(spec(), torch.device("cpu"), 7) == []


def test_the_kernel_row_launches_the_kernels_under_the_interpreter(monkeypatch):
    """conftest sets TRITON_INTERPRET=1: the row compares the Triton probe with the fused CPU pass on the CPU."""
    check = doctor.kernel_launch_check(numel=3000, steps=3)
    assert check.status == preflight.OK, check
    assert check.result.startswith("cpu, 3,000 parameters, 3 steps: largest scaled difference")
    assert "NaN pattern equal" in check.result


def test_the_all_reduce_row_runs_one_process_per_rank():
    """The NCCL row's code path with gloo on the CPU: distributed.launch, join, an exact float64 sum."""
    check = doctor.all_reduce_check("cpu", 2)
    assert check == preflight.Check("gloo all-reduce", "2 ranks on cpu: exact", preflight.OK)


def test_the_all_reduce_row_fails_when_a_rank_does(monkeypatch):
    def failing(target, request, world, environment):
        raise distributed.RankFailed("rank 1 of 2 ended with exit status 1")

    monkeypatch.setattr(distributed, "launch", failing)
    check = doctor.all_reduce_check("cuda", 2)
    assert check.status == preflight.FAIL and check.name == "nccl all-reduce" and "NCCL_DEBUG=INFO" in check.fix


def test_the_planned_memory_row_takes_the_configs_largest_run(gpu):
    tiny = str(REPO / "tests" / "configs" / "tiny.yaml")
    assert doctor.planned_memory_check(None).status == preflight.SKIP
    check = doctor.planned_memory_check(tiny)
    assert check.status == preflight.OK and check.result.startswith(f"{tiny}, largest run ")
    gpu.free = 0
    assert doctor.planned_memory_check(tiny).status == preflight.FAIL


def test_the_planned_memory_row_names_what_the_config_needs(monkeypatch, gpu):
    monkeypatch.setitem(sys.modules, "yaml", None)
    monkeypatch.setitem(sys.modules, "pathgeo.planning.config_files", None)  # the config reader, which imports yaml
    check = doctor.planned_memory_check(str(REPO / "tests" / "configs" / "tiny.yaml"))
    assert check.status == preflight.FAIL and "--configfile needs the workflow's packages" in check.result
    assert "pip install -r requirements.txt" in check.fix


def test_the_determinism_row_applies_the_runs_settings(monkeypatch, torch_settings):
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    torch.use_deterministic_algorithms(False)
    assert doctor.determinism_check().status == preflight.OK
    assert torch.are_deterministic_algorithms_enabled()
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":0:0")
    assert doctor.determinism_check().status == preflight.FAIL


# ------------------------------------------------------------------------------------------------------------
# The largest model each lag protocol fits


def test_the_largest_model_is_the_memory_checks_formula():
    """Its model state and probe copies (what memory_check compares with the free memory) fit; one more
    parameter does not."""
    for lagged in ("off", "anchored", "every_step"):
        for name in ("momentum", "adam"):
            fits = sizing.largest_model(40 << 30, name, lagged)
            vectors = sum(
                sizing.state_vectors(name, 1, sizing.probe_copies({"window": 5, "lagged": lagged}, 1)).values()
            )
            assert fits * vectors * 4 <= 40 << 30 < (fits + 1) * vectors * 4
    assert sizing.largest_model(80 << 30, "momentum", "off") == (80 << 30) // (4 * (2 + 1 + 2 + 5))


def test_the_table_uses_the_configs_default_window():
    from pathgeo.planning.config import CORRELATION_DEFAULTS

    assert sizing.DEFAULT_WINDOW == CORRELATION_DEFAULTS["window"]


def test_the_docs_table_is_the_functions_output():
    """docs/gpu.md's table of the largest model each lag protocol fits."""
    page = (REPO / "docs" / "gpu.md").read_text()
    printed = doctor.format_memory_table().splitlines()
    for lagged, name, fits in sizing.largest_models():
        row = f"| `{lagged}` | {name} | {fits[40]:,} | {fits[80]:,} |"
        assert row in page, row
        assert any(line.split() == [lagged, name, f"{fits[40]:,}", f"{fits[80]:,}"] for line in printed)
    assert "pathgeo doctor --memory-table" in page
