"""The Triton kernels as a GPU compiles them, checked on the CPU: both kernels are compiled for an A100
(sm_80, no GPU needed; the interpreter the other tests use never compiles) with the options `launch` passes,
in a subprocess without TRITON_INTERPRET. Their block offsets are int64 when n arrives as int32 (n < 2^31),
and the compiled code has no fused multiply-add. Under the interpreter, every launch of a probe run passes
the FP-fusion setting."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pathgeo.engine import gpu_kernels
from pathgeo.engine.probe import Probe
from pathgeo.training.flat import FlatParameters

REPO = Path(__file__).resolve().parents[1]

# Each kernel compiled as a launch of n < 2^31 entries specialises it: n is int32, the other scalars too.
COMPILE = """
import json, os, sys
os.environ.pop("TRITON_INTERPRET", None)
import triton
from triton.backends.compiler import GPUTarget
from triton.backends.nvidia.compiler import CUDAOptions
from triton.compiler import ASTSource
from pathgeo.engine import gpu_kernels

launched = {}

class Capture:
    def __getitem__(self, grid):
        return lambda *args, **kwargs: launched.update(kwargs)

gpu_kernels.launch(Capture(), (1,))
POINTERS = {"plan_ptr": "*i64", "partial_ptr": "*fp64"}
CONSTANTS = {"PLAN_WIDTH": 24, "RING_LAGS": 3, "RING_PAD": 4, "REFS": 2, "REFS_PAD": 2, "WIDTH": 16,
             "LAG_SLOTS": 7, "LAGS": 2, "BLOCK": gpu_kernels.BLOCK}
out = {"options": launched, "unknown": sorted(set(launched) - set(CUDAOptions.__dataclass_fields__))}
for name in ("_step_kernel", "_lag_kernel"):
    kernel = getattr(gpu_kernels, name)
    signature, constants = {}, {}
    for i, param in enumerate(kernel.params):
        if param.is_constexpr:
            signature[param.name] = "constexpr"
            constants[(i,)] = CONSTANTS[param.name]
        else:
            signature[param.name] = POINTERS.get(param.name, "*fp32") if param.name.endswith("_ptr") else "i32"
    compiled = triton.compile(ASTSource(kernel, signature, constants), target=GPUTarget("cuda", 80, 32),
                              options=launched)
    out[name] = {"ttir": compiled.asm["ttir"], "ptx": compiled.asm["ptx"],
                 "enable_fp_fusion": compiled.metadata.enable_fp_fusion}
json.dump(out, sys.stdout)
"""


@pytest.fixture(scope="module")
def compiled() -> dict:
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = str(REPO)
    result = subprocess.run(
        [sys.executable, "-c", COMPILE], cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(result.stdout)


@pytest.mark.parametrize("kernel", ["_step_kernel", "_lag_kernel"])
def test_block_offsets_are_int64_when_n_is_int32(compiled, kernel):
    """For n within PROGRAMS·BLOCK of 2^31, int32 offsets start + arange(BLOCK) would wrap negative."""
    ttir = compiled[kernel]["ttir"]
    block = gpu_kernels.BLOCK
    loops = re.findall(r"scf\.for .*: (i\d+) \{", ttir)
    assert loops and set(loops) == {"i64"}, loops
    # Every pointer of a block (a tensor with BLOCK columns) is offset by int64 values.
    offsets = re.findall(
        rf"tt\.addptr .* : tensor<(?:\d+x)?{block}x!tt\.ptr<\w+>>, tensor<((?:\d+x)?{block}x\w+)>", ttir
    )
    assert offsets, f"no block loads or stores found in {kernel}'s TTIR"
    assert all(o.endswith("xi64") for o in offsets), sorted(set(offsets))


def test_launch_options_are_accepted_and_fuse_no_multiply_add(compiled):
    """A launch's keyword that no compiler option names fails the launch (KeyError in JITFunction.run); the
    kernels compiled with the launch's options carry no FMA, so a Triton whose default differs computes the
    same bits."""
    for kernel in ("_step_kernel", "_lag_kernel"):
        ptx = compiled[kernel]["ptx"]
        assert re.search(r"\bmul\.(rn\.)?f64\b", ptx), f"no float64 product found in {kernel}'s PTX"
        assert re.findall(r"\bfma\.\S+", ptx) == []
        assert compiled[kernel]["enable_fp_fusion"] is False
    assert compiled["options"]["enable_fp_fusion"] is False
    assert compiled["unknown"] == []


def test_every_launch_of_a_probe_run_sets_fp_fusion(monkeypatch):
    """The kernels themselves, wrapped, see every launch of a probe run over an anchor and its lags, both
    kernels included."""
    assert gpu_kernels.interpreting()
    seen: list[tuple[str, dict]] = []

    class Recording:
        def __init__(self, kernel):
            self.kernel = kernel

        def __getitem__(self, grid):
            def run(*args, **kwargs):
                seen.append((self.kernel.__name__, {k: v for k, v in kwargs.items() if not k.isupper()}))
                return self.kernel[grid](*args, **kwargs)

            return run

    for name in ("_step_kernel", "_lag_kernel"):
        monkeypatch.setattr(gpu_kernels, name, Recording(getattr(gpu_kernels, name)))
    w = torch.nn.Parameter(torch.linspace(-1.0, 1.0, 40))
    flat = FlatParameters([w])
    probe = Probe(
        flat, {"final": torch.zeros(40)}, weight_decay=0.0, steps_per_epoch=6, backend="triton", block=16, programs=2
    )
    for step in range(6):
        with torch.no_grad():
            flat.grads.copy_(torch.cos(torch.arange(40.0) + step))
        probe.after_backward(torch.tensor(1.0), 0.1)
    probe.end_epoch(0)
    assert {name for name, _ in seen} == {"_step_kernel", "_lag_kernel"}
    assert all(kwargs.get("enable_fp_fusion") is False for _, kwargs in seen), seen
