"""Checks of the node before a job trains on it, each a `Check` with its result and, where it fails, the fix.

A GPU job runs the cheap ones itself before it trains (`before_training`, from pathgeo.jobs.runner.start_job): Triton's
C compiler and Python headers where the process runs the probe on the GPU, and the device's free memory against
the run's model state and the probe's copies. Whether CUDA works at all, with the driver against the CUDA torch
was built for, is settled before that, when the job picks its device (pathgeo.training.devices.select_device). `pathgeo
doctor` (pathgeo.tools.doctor) shows these and the costlier ones in one table.

It imports neither the config's machinery nor polars, altair or snakemake: a GPU node may lack them.
"""

from __future__ import annotations

import os
import shutil
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import torch

from pathgeo.planning import sizing
from pathgeo.training import devices
from pathgeo.training.spec import RunSpec

OK, FAIL, SKIP = "OK", "FAIL", "SKIP"
MB = sizing.MB


@dataclass(frozen=True)
class Check:
    name: str
    result: str
    status: str  # OK, FAIL or SKIP
    fix: str = ""


class PreflightError(RuntimeError):
    """A job's node cannot run it; the message names each failed check and its fix."""


def cuda_check() -> Check:
    """Whether torch sees CUDA; without it, a failure only inside a job that holds GPUs."""
    if torch.cuda.is_available():
        count = torch.cuda.device_count()
        names = ", ".join(torch.cuda.get_device_name(i) for i in range(count))
        return Check("CUDA", f"torch {torch.__version__} sees {count} GPU{'s' if count > 1 else ''}: {names}", OK)
    facts, fix = devices.cuda_diagnosis(devices.driver_version(), torch.version.cuda)
    allocation = devices.gpu_allocation()
    if allocation:
        held = ", ".join(f"{key}={value}" for key, value in allocation.items())
        return Check("CUDA", f"no CUDA device in a job that holds GPUs ({held}); {facts}", FAIL, fix)
    return Check("CUDA", f"no CUDA device and no GPU allocation: device auto trains on the CPU; {facts}", SKIP)


def driver_check() -> Check:
    """The NVIDIA driver against the one torch's CUDA needs (read without CUDA)."""
    driver, cuda = devices.driver_version(), torch.version.cuda
    needed = devices.required_driver(cuda)
    facts, fix = devices.cuda_diagnosis(driver, cuda)
    if driver is None or cuda is None:
        expected = bool(devices.gpu_allocation()) or torch.cuda.is_available()
        return Check("driver", facts, FAIL if expected else SKIP, fix if expected else "")
    if needed and devices.version_tuple(driver) < devices.version_tuple(needed):
        return Check("driver", facts, FAIL, fix)
    return Check("driver", facts, OK)


def allocation_check() -> Check:
    """The GPUs SLURM gave the job against those torch sees."""
    allocation = devices.gpu_allocation()
    visible = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if not allocation:
        return Check("GPUs of the allocation", f"not in a SLURM job that holds GPUs; torch sees {visible}", SKIP)
    held = ", ".join(f"{key}={value}" for key, value in allocation.items())
    count = devices.allocated_gpu_count(allocation)
    result = f"SLURM: {held}; torch sees {visible}"
    if visible == 0 or (count is not None and visible < count):
        return Check(
            "GPUs of the allocation",
            result,
            FAIL,
            "torch sees fewer GPUs than the job holds: see the CUDA and driver rows; a CUDA_VISIBLE_DEVICES "
            "set in the job's environment or profile hides the others",
        )
    return Check("GPUs of the allocation", result, OK)


def c_compiler() -> tuple[str | None, str]:
    """The C compiler Triton builds its launcher with, as Triton picks it ($CC, else gcc, else clang), and what
    was looked for."""
    chosen = os.environ.get("CC")
    if chosen is not None:
        return shutil.which(chosen), f"$CC={chosen}"
    return shutil.which("gcc") or shutil.which("clang"), "gcc or clang"


def python_header() -> Path:
    """Python.h where Triton looks for it (its scheme: posix_prefix where Debian's default is posix_local)."""
    scheme = sysconfig.get_default_scheme()
    scheme = "posix_prefix" if scheme == "posix_local" else scheme
    return Path(sysconfig.get_paths(scheme=scheme)["include"]) / "Python.h"


def triton_build_check() -> Check:
    """What Triton's first launch on a GPU builds its launcher with: a C compiler and Python's headers."""
    compiler, wanted = c_compiler()
    header = python_header()
    found = [
        f"C compiler {compiler or f'missing ({wanted} on PATH)'}",
        f"{header}{'' if header.is_file() else ' missing'}",
    ]
    fixes = []
    if compiler is None:
        fixes.append(
            "a C compiler: `module load gcc` on a cluster, `conda install -c conda-forge gcc` in a conda "
            "environment or `apt-get install build-essential`; or set CC to one"
        )
    if not header.is_file():
        version = f"{sys.version_info.major}.{sys.version_info.minor}"
        fixes.append(
            f"Python's headers: `apt-get install python{version}-dev` (python3-dev) for the system's Python, "
            "`module load python` with its headers on a cluster, or a conda environment's Python (it has them)"
        )
    return Check("Triton build (compiler, Python.h)", "; ".join(found), FAIL if fixes else OK, "; ".join(fixes))


def probe_vectors(correlations: dict | None, references: int) -> int | None:
    """Model-sized vectors of a job's probe on its device: a replay's (its reference points, its lag protocol) or
    reference training's w*-free one (no reference point, hence no lags); None: the job runs no probe."""
    if correlations is None:
        return None
    lagged = correlations["lagged"] if references else "off"
    return sizing.probe_copies({**correlations, "lagged": lagged}, references)


def memory_check(spec: RunSpec, device: torch.device, probe: int | None) -> Check:
    """The device's free memory against the run's model state on this rank and the probe's copies (`probe`
    vectors); activations come on top."""
    free, total = torch.cuda.mem_get_info(device)
    parts = sizing.model_state_parts_mb(spec, probe or 0)
    needed = sum(parts.values())
    shown = ", ".join(f"{part} {value:.0f}" for part, value in parts.items() if value)
    result = (
        f"run {spec.run_id}: {needed:.0f} MB before activations ({shown}); {device} has {free / MB:.0f} MB free "
        f"of {total / MB:.0f} MB"
    )
    if needed <= free / MB:
        return Check("device memory", result, OK)
    return Check(
        "device memory",
        result,
        FAIL,
        "fewer reference points for the run, correlations: {lagged: anchored} or off (every_step keeps 51 "
        "gradients and 51 weights), an optimizer with fewer slots, or a GPU with more memory",
    )


def job_checks(spec: RunSpec, device: torch.device, probe: int | None) -> list[Check]:
    """The checks a job on `device` runs before it trains: none on the CPU; on a GPU, Triton's build where this
    process runs the probe (`probe` vectors; None: no probe), and device memory."""
    if device.type != "cuda":
        return []
    return [*([triton_build_check()] if probe is not None else []), memory_check(spec, device, probe)]


def before_training(spec: RunSpec, device: torch.device, probe: int | None) -> None:
    """Refuse to start the run where a job check fails, naming each failure and its fix."""
    failed = [check for check in job_checks(spec, device, probe) if check.status == FAIL]
    if failed:
        raise PreflightError(
            f"run {spec.run_id} cannot train on {device}: "
            + " ".join(f"{check.name}: {check.result}. To do: {check.fix}." for check in failed)
        )
