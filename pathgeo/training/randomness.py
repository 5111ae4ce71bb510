"""The randomness contract: every random draw is a pure function of (seed, purpose, epoch, step).

Global RNG state (used by dropout and anything else drawing from torch's default generator) is stored in
checkpoints and restored, so a replay that starts from any checkpoint draws the same numbers.
"""

from __future__ import annotations

import hashlib
import random

import numpy as np
import torch


def derive_seed(*parts: object) -> int:
    """A 63-bit seed from any tuple of parts; distinct purposes never share a stream."""
    digest = hashlib.sha256(repr(parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def generator(*parts: object) -> torch.Generator:
    return torch.Generator().manual_seed(derive_seed(*parts))


def seed_global_generators(seed: int, rank: int = 0) -> None:
    """Seed Python's, NumPy's and torch's global generators from the run's seed, so that anything drawing
    from them (dropout) is a function of the seed too; checkpoints carry their state from there on. Each rank of
    a run on several devices draws its own stream (its dropout masks differ from the other ranks'); rank 0's is
    the one-device run's."""
    ranked = () if rank == 0 else (rank,)
    random.seed(derive_seed(seed, "global-python", *ranked))
    np.random.seed(derive_seed(seed, "global-numpy", *ranked) % (1 << 32))
    torch.manual_seed(derive_seed(seed, "global-torch", *ranked))


def _numpy_state_as_tensors() -> tuple:
    # Checkpoints load with weights_only=True, which accepts tensors but not numpy arrays.
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached


def capture_rng_state() -> dict:
    state = {
        "torch": torch.get_rng_state(),
        "numpy": _numpy_state_as_tensors(),
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        # This process's own device only (each rank of a run on several devices draws on its own): a job that
        # restores the state may see fewer devices, such as a landscape job on one GPU for a run trained on four.
        state["cuda"] = torch.cuda.get_rng_state(torch.cuda.current_device())
    return state


def restore_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"], torch.cuda.current_device())
