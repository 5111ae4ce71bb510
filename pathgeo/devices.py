"""Device selection and deterministic settings, the same code path on CPU and CUDA."""

from __future__ import annotations

import os

import torch


def select_device(name: str) -> torch.device:
    """`auto` picks CUDA when present; asking for CUDA where there is none is an error, not a silent CPU run."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("config key 'device': 'cuda' was requested but no CUDA device is available")
    if name not in ("cpu", "cuda"):
        raise ValueError(f"config key 'device': unknown device '{name}' (auto, cpu or cuda)")
    return torch.device(name)


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
