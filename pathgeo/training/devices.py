"""Device selection and deterministic settings, the same code path on CPU and CUDA.

`device: auto` falls back to the CPU where there is no CUDA, except inside a scheduler's GPU allocation: a job
that holds GPUs and trains on the CPU would hold them for days and never finish (and a run on several GPUs
would start its ranks on the CPU), so there it is an error that names the NVIDIA driver found, the CUDA version
torch was built for and what to do.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Mapping
from pathlib import Path

import torch

# The oldest Linux driver that runs an application built with each CUDA major version (minor-version
# compatibility): NVIDIA's CUDA Compatibility guide, "Minor Version Compatibility", and the table of minimum
# driver versions in the CUDA Toolkit release notes.
MIN_DRIVER = {13: "580", 12: "525.60.13", 11: "450.80.02"}
# PyTorch's wheels built for one CUDA version, e.g. cu126 for CUDA 12.6.
WHEEL_INDEX = "https://download.pytorch.org/whl/cu{version}"
DRIVER_FILE = Path("/proc/driver/nvidia/version")

# SLURM's variables that name or count a job's GPUs; SLURM_JOB_ID says that there is a job at all.
SLURM_GPU_LISTS = ("SLURM_JOB_GPUS", "SLURM_STEP_GPUS", "CUDA_VISIBLE_DEVICES")
SLURM_GPU_COUNTS = ("SLURM_GPUS_ON_NODE", "SLURM_GPUS")
# A list that names no GPU: some sites write NoDevFiles into CUDA_VISIBLE_DEVICES of a job without GPUs.
NO_GPU_LISTS = ("", "-1", "NoDevFiles")
# Set to 1 where a job's GPUs are stand-ins that no CUDA can use (the tests' local SLURM declares plain files as
# GPUs): the job then counts as one without GPUs, and `device: auto` trains on the CPU.
FAKE_GPUS = "PATHGEO_FAKE_GPUS"


class NoCudaError(RuntimeError):
    """CUDA was asked for, or the job holds GPUs, but torch sees no CUDA device."""


def gpu_allocation(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The variables by which the scheduler says that this process's job holds GPUs (empty outside one)."""
    environ = os.environ if environ is None else environ
    if not environ.get("SLURM_JOB_ID") or environ.get(FAKE_GPUS) == "1":
        return {}
    found = {}
    for name in SLURM_GPU_LISTS + SLURM_GPU_COUNTS:
        value = environ.get(name, "").strip()
        empty = value in NO_GPU_LISTS if name in SLURM_GPU_LISTS else value in ("", "0")
        if not empty:
            found[name] = value
    return found


def allocated_gpu_count(allocation: Mapping[str, str]) -> int | None:
    """How many GPUs the allocation holds on this node (None where its variables do not say)."""
    count = allocation.get("SLURM_GPUS_ON_NODE", "")
    if count.isdigit():
        return int(count)
    for name in SLURM_GPU_LISTS:
        if name in allocation:
            return len(allocation[name].split(","))
    # SLURM_GPUS is "N" or "type:N".
    total = allocation.get("SLURM_GPUS", "").rsplit(":", 1)[-1]
    return int(total) if total.isdigit() else None


def driver_version() -> str | None:
    """The NVIDIA driver's version, read without CUDA: from the kernel module, else from nvidia-smi."""
    try:
        # "NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.104.05  ..." (or "Open Kernel Module for x86_64").
        found = re.search(r"\s(\d{3,}\.\d+(?:\.\d+)?)\s", DRIVER_FILE.read_text().splitlines()[0] + " ")
        if found:
            return found.group(1)
    except (OSError, IndexError):
        pass
    try:
        done = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    lines = done.stdout.split()
    return lines[0] if done.returncode == 0 and lines else None


def version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text))


def required_driver(cuda: str | None) -> str | None:
    """The oldest driver that runs torch's CUDA version `cuda` ("13.2"); None for a CPU-only torch or a CUDA
    major version this table does not know."""
    return MIN_DRIVER.get(version_tuple(cuda)[0]) if cuda else None


def newest_cuda_for(driver: str) -> int | None:
    """The newest CUDA major version that `driver` runs."""
    majors = [major for major, oldest in MIN_DRIVER.items() if version_tuple(driver) >= version_tuple(oldest)]
    return max(majors, default=None)


def cuda_diagnosis(driver: str | None, cuda: str | None) -> tuple[str, str]:
    """What a node where torch sees no CUDA device has (the driver, torch's CUDA, the driver that CUDA needs), and
    what to do."""
    needed = required_driver(cuda)
    found = f"NVIDIA driver {driver}" if driver else f"NVIDIA driver: none found ({DRIVER_FILE}, nvidia-smi)"
    built = (
        f"CUDA {cuda}, which needs driver >= {needed}" if needed else f"CUDA {cuda}" if cuda else "no CUDA (CPU only)"
    )
    facts = f"{found}; torch {torch.__version__} built for {built}"
    if cuda is None:
        fix = f"install a CUDA build of torch (the README's setup, or PyTorch's wheel index {WHEEL_INDEX.format(version='XY')})"
    elif driver is None:
        fix = (
            "this node shows no NVIDIA driver: check that the job runs on a GPU node of the partition (nvidia-smi "
            "there), or ask the cluster's admins to load the driver"
        )
    elif needed and version_tuple(driver) < version_tuple(needed):
        fix = f"update the NVIDIA driver to >= {needed}"
        supported = newest_cuda_for(driver)
        if supported:
            fix += (
                f", or install a torch built for CUDA {supported}.x, which driver {driver} runs, from PyTorch's wheel "
                f"index {WHEEL_INDEX.format(version=f'{supported}X')} (README, 'On a GPU')"
            )
    else:
        fix = (
            f"driver {driver} is new enough, yet torch sees no GPU: check CUDA_VISIBLE_DEVICES="
            f"{os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')} and nvidia-smi on the node"
        )
    return facts, fix


def no_cuda_message(what: str) -> str:
    """`what` was asked for where torch sees no CUDA device: the error, with the driver, torch's CUDA and the fix."""
    facts, fix = cuda_diagnosis(driver_version(), torch.version.cuda)
    return f"{what}: no CUDA device is available here. {facts}. To do: {fix}"


def select_device(name: str) -> torch.device:
    """`auto` picks CUDA when present and otherwise the CPU, except in a job that holds GPUs; asking for CUDA where
    there is none is an error, not a silent CPU run."""
    if name not in ("auto", "cpu", "cuda"):
        raise ValueError(f"config key 'device': unknown device '{name}' (auto, cpu or cuda)")
    if name == "cpu" or torch.cuda.is_available():
        return torch.device("cpu" if name == "cpu" else "cuda")
    if name == "cuda":
        raise NoCudaError(no_cuda_message("config key 'device': 'cuda' was requested"))
    allocation = gpu_allocation()
    if allocation:
        held = ", ".join(f"{key}={value}" for key, value in allocation.items())
        raise NoCudaError(
            no_cuda_message(
                f"config key 'device': 'auto' would train on the CPU in a job that holds GPUs ({held}; device: cpu trains "
                "there on purpose)"
            )
        )
    return torch.device("cpu")


def configure_determinism(enabled: bool) -> dict[str, object]:
    """Make every step reproducible bit for bit; returns the settings so runs can record them.

    With warn_only, an operation that has no deterministic kernel warns instead of failing; the training
    loop records those warnings and the fidelity check measures the drift they cause.
    """
    if enabled:
        # cuBLAS reads this when its handle is created, so it must be set before the first CUDA matmul.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(enabled, warn_only=True)
    torch.backends.cudnn.deterministic = enabled
    torch.backends.cudnn.benchmark = not enabled
    # TF32 silently rounds float32 matmuls on A100s; the measured geometry is of the float32 trajectory.
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    return {
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "cudnn_deterministic": torch.backends.cudnn.deterministic,
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
        "allow_tf32": torch.backends.cuda.matmul.allow_tf32,
        "cublas_workspace_config": os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
    }
