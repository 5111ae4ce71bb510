"""Checkpoints: everything needed to continue a run bit for bit from this point, written atomically."""

from __future__ import annotations

from pathlib import Path

import torch

from pathgeo.atomic import write_torch


def save(path: Path, state: dict) -> None:
    write_torch(path, state)


def load(path: Path, device: torch.device | str = "cpu") -> dict:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: checkpoint is missing; run the reference rule for this run first")
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except Exception as error:
        raise RuntimeError(f"{path}: checkpoint cannot be read ({error}); delete it and rerun") from error


def checkpoint_path(folder: Path, epoch: int) -> Path:
    return Path(folder) / f"epoch{epoch:04d}.pt"
