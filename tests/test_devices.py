"""Device selection and the deterministic settings; a job in a GPU allocation refuses the CPU."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import yaml
from workflow_runner import run_snakemake

from pathgeo.training import devices
from pathgeo.training.devices import NoCudaError, configure_determinism, select_device

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")

REPO = Path(__file__).resolve().parents[1]
# What SLURM sets in a job that asked for one GPU (--gpus=1).
SLURM_ONE_GPU = {"SLURM_JOB_ID": "4242", "SLURM_JOB_GPUS": "0", "SLURM_GPUS_ON_NODE": "1", "CUDA_VISIBLE_DEVICES": "0"}
SLURM_VARIABLES = ("SLURM_JOB_ID", *devices.SLURM_GPU_LISTS, *devices.SLURM_GPU_COUNTS, devices.FAKE_GPUS)


@pytest.fixture
def no_job(monkeypatch):
    """This process outside any SLURM job (the tests may run inside one)."""
    for name in SLURM_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def one_gpu_job(monkeypatch, no_job):
    for name, value in SLURM_ONE_GPU.items():
        monkeypatch.setenv(name, value)


def fake_nvidia_smi(folder: Path, driver: str) -> dict[str, str]:
    """An environment whose PATH starts with an nvidia-smi that reports `driver` (as the real one's
    --query-gpu=driver_version --format=csv,noheader does)."""
    folder.mkdir(parents=True, exist_ok=True)
    program = folder / "nvidia-smi"
    program.write_text(f"#!/bin/sh\necho {driver}\n")
    program.chmod(0o755)
    return {"PATH": f"{folder}{os.pathsep}{os.environ['PATH']}"}


@pytest.fixture(autouse=True)
def global_torch_state():
    """Every test here changes process-wide settings; put them back afterwards."""
    saved = {
        "deterministic": torch.are_deterministic_algorithms_enabled(),
        "warn_only": torch.is_deterministic_algorithms_warn_only_enabled(),
        "cudnn_deterministic": torch.backends.cudnn.deterministic,
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
        "matmul_tf32": torch.backends.cuda.matmul.allow_tf32,
        "cudnn_tf32": torch.backends.cudnn.allow_tf32,
        "cublas": os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
    }
    yield
    torch.use_deterministic_algorithms(saved["deterministic"], warn_only=saved["warn_only"])
    torch.backends.cudnn.deterministic = saved["cudnn_deterministic"]
    torch.backends.cudnn.benchmark = saved["cudnn_benchmark"]
    torch.backends.cuda.matmul.allow_tf32 = saved["matmul_tf32"]
    torch.backends.cudnn.allow_tf32 = saved["cudnn_tf32"]
    if saved["cublas"] is None:
        os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)
    else:
        os.environ["CUBLAS_WORKSPACE_CONFIG"] = saved["cublas"]


def test_auto_picks_cuda_only_when_present():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert select_device("auto").type == expected


def test_cpu_is_always_available():
    assert select_device("cpu") == torch.device("cpu")


@no_cuda
def test_auto_is_cpu_without_cuda(no_job):
    assert select_device("auto") == torch.device("cpu")


@pytest.mark.parametrize(
    "environ, held, count",
    [
        (SLURM_ONE_GPU, {"SLURM_JOB_GPUS": "0", "SLURM_GPUS_ON_NODE": "1", "CUDA_VISIBLE_DEVICES": "0"}, 1),
        ({"SLURM_JOB_ID": "7", "SLURM_STEP_GPUS": "2,3"}, {"SLURM_STEP_GPUS": "2,3"}, 2),
        ({"SLURM_JOB_ID": "7", "SLURM_GPUS": "a100:4"}, {"SLURM_GPUS": "a100:4"}, 4),
        ({"SLURM_JOB_ID": "7", "CUDA_VISIBLE_DEVICES": "1"}, {"CUDA_VISIBLE_DEVICES": "1"}, 1),
        # A SLURM job without GPUs, as some sites describe it.
        ({"SLURM_JOB_ID": "7", "SLURM_GPUS_ON_NODE": "0", "CUDA_VISIBLE_DEVICES": "NoDevFiles"}, {}, None),
        ({"SLURM_JOB_ID": "7", "CUDA_VISIBLE_DEVICES": "-1"}, {}, None),
        # A workstation that hides or picks GPUs is not in a job.
        ({"CUDA_VISIBLE_DEVICES": "0", "SLURM_JOB_GPUS": "0"}, {}, None),
        # The tests' local SLURM, whose GPUs are plain files.
        ({**SLURM_ONE_GPU, devices.FAKE_GPUS: "1"}, {}, None),
    ],
)
def test_a_gpu_allocation_is_read_from_slurms_variables(environ, held, count):
    allocation = devices.gpu_allocation(environ)
    assert allocation == held
    assert (devices.allocated_gpu_count(allocation) if allocation else None) == count


@no_cuda
def test_auto_refuses_the_cpu_in_a_gpu_allocation(monkeypatch, one_gpu_job):
    """The pinned wheel's CUDA 13 needs driver 580: on a node with 535 torch sees no GPU. The error names both
    versions and both ways out."""
    monkeypatch.setattr(devices, "driver_version", lambda: "535.104.05")
    monkeypatch.setattr(torch.version, "cuda", "13.2")
    with pytest.raises(NoCudaError) as raised:
        select_device("auto")
    message = str(raised.value)
    assert "'auto' would train on the CPU in a job that holds GPUs (SLURM_JOB_GPUS=0" in message
    assert "NVIDIA driver 535.104.05" in message
    assert "built for CUDA 13.2, which needs driver >= 580" in message
    assert "update the NVIDIA driver to >= 580" in message
    assert "torch built for CUDA 12.x, which driver 535.104.05 runs" in message
    assert "https://download.pytorch.org/whl/cu12X" in message


@no_cuda
def test_auto_still_picks_the_cpu_outside_a_gpu_allocation(monkeypatch, no_job):
    monkeypatch.setattr(devices, "driver_version", lambda: "535.104.05")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")  # a laptop's, not a scheduler's
    assert select_device("auto") == torch.device("cpu")
    monkeypatch.setenv("SLURM_JOB_ID", "7")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "NoDevFiles")
    assert select_device("auto") == torch.device("cpu")
    assert select_device("cpu") == torch.device("cpu")


@pytest.mark.parametrize(
    "driver, cuda, facts, fix",
    [
        (None, "13.2", "NVIDIA driver: none found", "this node shows no NVIDIA driver"),
        ("535.104.05", None, "built for no CUDA (CPU only)", "install a CUDA build of torch"),
        ("580.65.06", "13.2", "NVIDIA driver 580.65.06", "driver 580.65.06 is new enough, yet torch sees no GPU"),
        ("470.82.01", "13.0", "which needs driver >= 580", "torch built for CUDA 11.x, which driver 470.82.01 runs"),
        ("418.40", "12.4", "which needs driver >= 525.60.13", "update the NVIDIA driver to >= 525.60.13"),
    ],
)
def test_the_diagnosis_follows_the_driver_and_torchs_cuda(driver, cuda, facts, fix):
    found, todo = devices.cuda_diagnosis(driver, cuda)
    assert facts in found and fix in todo
    if driver == "418.40":
        assert "torch built for" not in todo  # no CUDA of the table runs on it


def test_the_driver_is_read_from_the_kernel_module_then_nvidia_smi(monkeypatch, tmp_path):
    version_file = tmp_path / "version"
    version_file.write_text(
        "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  580.65.06  Release Build  (dvs-builder@U16)\n"
        "GCC version:  gcc version 12.2.0\n"
    )
    monkeypatch.setattr(devices, "DRIVER_FILE", version_file)
    assert devices.driver_version() == "580.65.06"
    version_file.write_text(
        "NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.104.05  Sat Aug 19 01:15:15 UTC 2023\n"
    )
    assert devices.driver_version() == "535.104.05"
    monkeypatch.setattr(devices, "DRIVER_FILE", tmp_path / "absent")
    monkeypatch.setenv("PATH", fake_nvidia_smi(tmp_path / "bin", "550.54.15")["PATH"])
    assert devices.driver_version() == "550.54.15"
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert devices.driver_version() is None


@no_cuda
def test_a_reference_job_in_a_gpu_allocation_fails_instead_of_training_on_the_cpu(tmp_path):
    """Acceptance of issue 18: tests/configs/tiny.yaml with device=auto under SLURM's GPU variables on this
    CPU-only machine; the reference job exits non-zero and its log names the driver and CUDA versions."""
    from pathgeo.planning.config import build_plan

    tiny = REPO / "tests" / "configs" / "tiny.yaml"
    run = min(build_plan(yaml.safe_load(tiny.read_text())).runs)
    outside = {key: value for key, value in os.environ.items() if key not in SLURM_VARIABLES}
    env = {**outside, **SLURM_ONE_GPU, **fake_nvidia_smi(tmp_path / "bin", "535.104.05")}
    done = run_snakemake(
        tmp_path / "work",
        "--config",
        "device=auto",
        "--cores",
        "1",
        f"results/runs/{run}/spec.json",
        configfile=tiny,
        cwd=tmp_path,
        env=env,
        timeout=600,
    )
    assert done.returncode != 0
    assert "Error in rule reference" in done.stdout + done.stderr
    log = (tmp_path / "work" / "logs" / "reference" / f"{run}.log").read_text()
    assert "would train on the CPU in a job that holds GPUs" in log
    assert "NVIDIA driver 535.104.05" in log
    assert f"built for CUDA {torch.version.cuda}" in log
    assert not (tmp_path / "work" / "results" / "runs" / run / "spec.json").exists()


@no_cuda
def test_asking_for_cuda_without_cuda_is_an_error():
    with pytest.raises(RuntimeError, match=r"config key 'device'.*'cuda'.*no CUDA device"):
        select_device("cuda")


@pytest.mark.parametrize("name", ["tpu", "gpu", "CUDA", ""])
def test_unknown_device_is_an_error(name):
    with pytest.raises(ValueError, match=rf"config key 'device': unknown device '{name}'"):
        select_device(name)


def test_deterministic_settings_on(monkeypatch):
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    torch.use_deterministic_algorithms(False)
    torch.backends.cudnn.deterministic = False
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True

    settings = configure_determinism(True)

    assert torch.are_deterministic_algorithms_enabled()
    # Operations without a deterministic kernel warn (and are recorded) rather than fail.
    assert torch.is_deterministic_algorithms_warn_only_enabled()
    assert torch.backends.cudnn.deterministic is True
    assert torch.backends.cudnn.benchmark is False
    assert torch.backends.cuda.matmul.allow_tf32 is False
    assert torch.backends.cudnn.allow_tf32 is False
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] in (":4096:8", ":16:8")
    assert settings == {
        "deterministic_algorithms": True,
        "cudnn_deterministic": True,
        "cudnn_benchmark": False,
        "allow_tf32": False,
        "cublas_workspace_config": os.environ["CUBLAS_WORKSPACE_CONFIG"],
    }


def test_deterministic_settings_keep_a_users_cublas_config(monkeypatch):
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":16:8")
    assert configure_determinism(True)["cublas_workspace_config"] == ":16:8"
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":16:8"


def test_deterministic_settings_off(monkeypatch):
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    configure_determinism(True)
    settings = configure_determinism(False)

    assert not torch.are_deterministic_algorithms_enabled()
    assert torch.backends.cudnn.deterministic is False
    assert torch.backends.cudnn.benchmark is True
    # TF32 stays off either way: the measured geometry is of the float32 trajectory.
    assert torch.backends.cuda.matmul.allow_tf32 is False
    assert torch.backends.cudnn.allow_tf32 is False
    assert settings["deterministic_algorithms"] is False
    assert settings["cudnn_deterministic"] is False
    assert settings["cudnn_benchmark"] is True


def test_settings_are_json_serialisable():
    import json

    json.dumps(configure_determinism(True))
    json.dumps(configure_determinism(False))
