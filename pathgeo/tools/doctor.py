"""`pathgeo doctor`: whether this node can run pathgeo's GPU jobs, as one table (check, result, status, fix).

    pathgeo doctor                                   # in a job on a GPU node: srun --gpus=1 pathgeo doctor
    pathgeo doctor --configfile config/presets/imagenet.yaml   # also device memory against the largest run
    pathgeo doctor --memory-table                    # the largest model each lag protocol fits on 40 and 80 GiB

It checks that torch sees CUDA (inside a SLURM job that holds GPUs it must), the NVIDIA driver against the one
torch's CUDA needs, the GPUs SLURM gave against those torch sees, the C compiler and Python headers Triton builds
with, one small launch of the probe's Triton kernels against the fused CPU pass, an all-reduce over the visible
GPUs with the runs' NCCL settings (2 or more), device memory against the largest run of a config, and the
deterministic settings. It exits with status 1 when a check fails. A GPU job runs the cheap checks itself before
it trains (pathgeo.planning.preflight). Only `--configfile` needs the workflow's packages (PyYAML, jsonschema).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

import torch

from pathgeo.planning import preflight, sizing
from pathgeo.planning.preflight import FAIL, OK, SKIP, Check
from pathgeo.training import devices, distributed
from pathgeo.training.distributed import Shard

# A small Triton launch: enough blocks per program of the kernels' grid to exercise their loop, quick to compile.
KERNEL_PARAMETERS = 100_003
KERNEL_STEPS = 8
# Float64 sums in another order (the device's blocks, the CPU's) differ in their last bits; a wrong kernel differs
# by far more.
KERNEL_TOLERANCE = 1e-9


def kernel_launch_check(numel: int = KERNEL_PARAMETERS, steps: int = KERNEL_STEPS) -> Check:
    """One small run of the probe's Triton kernels against the fused CPU pass (pathgeo.tools.bench.compare_kernels), on
    the GPU, or on the CPU under TRITON_INTERPRET=1."""
    from pathgeo.engine import gpu_kernels
    from pathgeo.tools import bench

    name = "Triton kernels against the CPU pass"
    if torch.cuda.is_available():
        device = torch.device("cuda", 0)
    elif gpu_kernels.interpreting():
        device = torch.device("cpu")
    else:
        return Check(name, "no GPU (TRITON_INTERPRET=1 runs the kernels on the CPU)", SKIP)
    missing = bench.fused_pass_missing()
    if missing:
        return Check(name, f"the fused CPU pass needs numba: {missing}", SKIP, "pip install numba (requirements.txt)")
    try:
        found = bench.compare_kernels(device, numel, steps)
    except Exception as error:  # noqa: BLE001 -- whatever stops the build or launch is this check's finding
        return Check(
            name,
            f"{type(error).__name__}: {error}",
            FAIL,
            "see the Triton build row; TRITON_DEBUG=1 shows the compiler's command",
        )
    result = (
        f"{device}, {numel:,} parameters, {steps} steps: largest scaled difference {found.difference:.2e}, "
        f"NaN pattern {'equal' if found.same_nan else 'DIFFERENT'}"
    )
    if found.same_nan and found.difference <= KERNEL_TOLERANCE:
        return Check(name, result, OK)
    return Check(name, result, FAIL, "the Triton kernels disagree with the CPU pass: report it with this table")


def all_reduce_rank(message: dict, shard: Shard) -> None:
    """One rank of all_reduce_check: the sum of 1 + rank over the ranks, in float64, must be exact."""
    device = torch.device(message["device"], shard.rank) if message["device"] == "cuda" else torch.device("cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    distributed.join(shard, device)
    try:
        total = distributed.sum_across(torch.tensor([shard.rank + 1.0], dtype=torch.float64, device=device), shard)
        expected = shard.world * (shard.world + 1) / 2
        if total.item() != expected:
            raise RuntimeError(f"rank {shard.rank}: the all-reduce gave {total.item()}, not {expected}")
    finally:
        distributed.leave()


def all_reduce_check(device_type: str, world: int) -> Check:
    """An all-reduce over `world` ranks, one process each (pathgeo.training.distributed.launch), NCCL on CUDA with the
    deterministic settings the runs use where the site has not set its own, gloo on the CPU."""
    name = f"{distributed.backend(torch.device(device_type))} all-reduce"
    environment = {key: value for key, value in distributed.DETERMINISTIC_NCCL.items() if key not in os.environ}
    try:
        distributed.launch(all_reduce_rank, {"device": device_type}, world, environment)
    except distributed.RankFailed as error:
        return Check(name, str(error), FAIL, "NCCL_DEBUG=INFO shows why; check nvidia-smi topo -m")
    return Check(name, f"{world} ranks on {device_type}: exact", OK)


def nccl_check() -> Check:
    visible = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if visible < 2:
        return Check("nccl all-reduce", f"{visible} GPU{'s' if visible != 1 else ''} visible: needs 2 or more", SKIP)
    return all_reduce_check("cuda", visible)


def planned_memory_check(configfile: str | None) -> Check:
    """Each GPU's free memory against the largest model state of the config's runs (with its probe's copies)."""
    name = "device memory"
    if configfile is None:
        return Check(name, "no --configfile: no run to measure against", SKIP)
    if not torch.cuda.is_available():
        return Check(name, "no GPU", SKIP)
    try:
        from pathgeo.planning.config import build_plan, correlation_settings, training_correlations
        from pathgeo.planning.config_files import read_config_file
    except ImportError as error:
        return Check(
            name,
            f"--configfile needs the workflow's packages: {error}",
            FAIL,
            "pip install -r requirements.txt, or run the doctor without --configfile",
        )
    config = read_config_file(configfile).content
    plan = build_plan(config)

    def probe(run_id: str) -> int | None:
        if plan.replayed(run_id):
            return preflight.probe_vectors(correlation_settings(config), len(plan.references(run_id)))
        return preflight.probe_vectors(training_correlations(plan, run_id, config), 0)

    run_id = max(plan.runs, key=lambda r: sizing.model_state_mb(plan.runs[r], probe(r) or 0))
    device = min(
        (torch.device("cuda", i) for i in range(torch.cuda.device_count())), key=lambda d: torch.cuda.mem_get_info(d)[0]
    )
    check = preflight.memory_check(plan.runs[run_id], device, probe(run_id))
    return Check(name, f"{configfile}, largest {check.result}", check.status, check.fix)


def determinism_check() -> Check:
    """The settings every deterministic run applies (pathgeo.training.devices.configure_determinism), as they took."""
    settings = devices.configure_determinism(True)
    wanted = {
        "deterministic_algorithms": True,
        "cudnn_deterministic": True,
        "cudnn_benchmark": False,
        "allow_tf32": False,
    }
    wrong = [key for key, value in wanted.items() if settings[key] != value]
    if settings["cublas_workspace_config"] not in (":4096:8", ":16:8"):
        wrong.append("cublas_workspace_config")
    result = ", ".join(f"{key}={value}" for key, value in settings.items())
    if not wrong:
        return Check("deterministic settings", result, OK)
    return Check(
        "deterministic settings",
        result,
        FAIL,
        f"{', '.join(wrong)} did not take: unset CUBLAS_WORKSPACE_CONFIG or set it to :4096:8",
    )


def checks(configfile: str | None = None) -> list[Callable[[], Check]]:
    return [
        preflight.cuda_check,
        preflight.driver_check,
        preflight.allocation_check,
        triton_build_row,
        kernel_launch_check,
        nccl_check,
        lambda: planned_memory_check(configfile),
        determinism_check,
    ]


def triton_build_row() -> Check:
    """Triton's build needs only matter where it compiles: on a GPU."""
    check = preflight.triton_build_check()
    if torch.cuda.is_available() or devices.gpu_allocation() or check.status == OK:
        return check
    return Check(check.name, f"{check.result} (needed on a GPU node only)", SKIP, check.fix)


NAME_WIDTH = 36


def format_row(check: Check) -> str:
    """A row of the table: the check, its status and result, and beneath it the fix where there is one."""
    line = f"{check.name:<{NAME_WIDTH}} {check.status:<6}  {check.result}"
    return line + (f"\n{'':<{NAME_WIDTH + 9}}fix: {check.fix}" if check.fix else "")


def format_memory_table() -> str:
    rows = sizing.largest_models()
    sizes = sorted(rows[0][2])
    lines = [
        (
            "The largest model (float32 parameters) whose state and probe copies fit on one GPU, with one reference "
            f"point and the window h = {sizing.DEFAULT_WINDOW} (pathgeo.planning.sizing.largest_model); activations and the "
            "CUDA context come on top."
        ),
        f"{'lagged':<11} {'optimizer':<9} " + " ".join(f"{f'{gib} GiB':>15}" for gib in sizes),
    ]
    for lagged, optimizer, fits in rows:
        lines.append(f"{lagged:<11} {optimizer:<9} " + " ".join(f"{fits[gib]:>15,}" for gib in sizes))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pathgeo doctor", description=__doc__.split("\n\n")[0])
    parser.add_argument("--configfile", default=None, help="check device memory against this config's largest run")
    parser.add_argument(
        "--memory-table",
        action="store_true",
        help="print the largest model each lag protocol fits on 40 and 80 GiB, and exit",
    )
    args = parser.parse_args(argv)
    if args.memory_table:
        print(format_memory_table())
        return 0
    print(f"{'check':<{NAME_WIDTH}} status  result")
    rows = []
    for check in checks(args.configfile):
        rows.append(check())
        print(format_row(rows[-1]), flush=True)  # row by row: a Triton build or an all-reduce takes seconds
    failed = [row.name for row in rows if row.status == FAIL]
    print(
        f"\n{len(failed)} check{'s' if len(failed) != 1 else ''} failed" + (f": {', '.join(failed)}" if failed else "")
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
