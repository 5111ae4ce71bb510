"""The four precisions a run can train in (its `precision` field, part of its identity):

- `float32`: strict float32, TF32 off for matmuls and convolutions (the default, and the measured geometry's);
- `tf32`: float32 weights and data, TF32 tensor-core math for CUDA matmuls and cuDNN convolutions (PyTorch
  1.13's default for convolutions, which the authors' runs had); on a CPU it computes exactly as float32;
- `bf16`: forward passes autocast to bfloat16 (torch.autocast), weights, gradients and optimizer state in
  float32, so the probe reads the float32 gradient; no loss scaling (bfloat16 has float32's range);
- `float64`: weights, data and gradients in float64.

The TF32 flags are process-wide in torch; `numerics` sets them for one run's steps and puts back what was there,
so runs trained one after another in one process (tests, a notebook) never inherit each other's.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import ContextManager

import torch

PRECISIONS = ("float32", "tf32", "bf16", "float64")


def parameter_dtype(precision: str) -> torch.dtype:
    """The dtype of the weights, gradients and resident data (autocast lowers only the forward's compute)."""
    return torch.float64 if precision == "float64" else torch.float32


@contextmanager
def numerics(precision: str) -> Iterator[None]:
    """TF32 on for matmuls and convolutions exactly when the run is `tf32`, for the duration of the block."""
    # The legacy flags, not fp32_precision: torch refuses to read one API's state after the other set it.
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    on = precision == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = on
    torch.backends.cudnn.allow_tf32 = on
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def forward_context(precision: str, device: torch.device) -> ContextManager:
    """Around a forward pass and its loss: bfloat16 autocast for `bf16`, nothing otherwise. Backward runs outside
    it, as torch.autocast's documentation asks (each backward op runs in its forward op's dtype)."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext()
