"""CUDA random states in checkpoints, with CUDA simulated on the CPU: a checkpoint holds the state of its
process's own device, and restores where fewer devices are visible than where it was written (a landscape
job on one GPU for a run trained on four)."""

from __future__ import annotations

import pytest
import torch

from pathgeo.training.randomness import capture_rng_state, restore_rng_state


class FakeCuda:
    """`visible` devices, each with its own random state; as in torch, naming a device beyond the visible
    ones raises."""

    def __init__(self, visible: int, current: int = 0):
        self.visible, self.current = visible, current
        self.states = {i: torch.tensor([10 * visible + i], dtype=torch.uint8) for i in range(visible)}

    def index(self, device: int | str | torch.device) -> int:
        if isinstance(device, str):
            device = torch.device(device)
        index = device if isinstance(device, int) else device.index
        index = self.current if index is None else index
        if index >= self.visible:
            raise IndexError(f"CUDA device {index} requested but only {self.visible} are visible")
        return index

    def get_rng_state(self, device: int | str | torch.device = "cuda") -> torch.Tensor:
        return self.states[self.index(device)].clone()

    def set_rng_state(self, state: torch.Tensor, device: int | str | torch.device = "cuda") -> None:
        self.states[self.index(device)] = state.clone()


@pytest.fixture
def cuda(monkeypatch):
    """`cuda(visible, current)` makes that many devices visible, this process's current one `current`."""

    def install(visible: int, current: int = 0) -> FakeCuda:
        fake = FakeCuda(visible, current)
        # torch.cuda.random's own names too: torch's get/set_rng_state_all call them.
        for module in (torch.cuda, torch.cuda.random):
            monkeypatch.setattr(module, "device_count", lambda: fake.visible)
            monkeypatch.setattr(module, "current_device", lambda: fake.current)
            monkeypatch.setattr(module, "get_rng_state", fake.get_rng_state)
            monkeypatch.setattr(module, "set_rng_state", fake.set_rng_state)
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        return fake

    return install


@pytest.fixture(autouse=True)
def global_generators_kept():
    """The tests restore the global generators of the CPU too: leave them as they were."""
    before = capture_rng_state()
    yield
    restore_rng_state(before)


def test_a_rank_saves_its_own_device_and_restores_on_one_gpu(cuda):
    four = cuda(visible=4, current=2)
    saved = capture_rng_state()
    one = cuda(visible=1)
    restore_rng_state(saved)
    assert torch.equal(one.states[0], four.states[2])


def test_restore_sets_only_the_current_device(cuda):
    """Each rank restores the device it draws on, and no other."""
    fake = cuda(visible=4, current=1)
    mine = fake.states[1].clone()
    saved = capture_rng_state()
    later = {i: torch.tensor([200 + i], dtype=torch.uint8) for i in range(4)}
    fake.states.update({i: s.clone() for i, s in later.items()})
    restore_rng_state(saved)
    assert torch.equal(fake.states[1], mine)
    assert all(torch.equal(fake.states[i], later[i]) for i in (0, 2, 3))


def test_without_cuda_nothing_of_cuda_is_saved_or_restored(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    saved = capture_rng_state()
    assert "cuda" not in saved
    restore_rng_state({**saved, "cuda": torch.zeros(1, dtype=torch.uint8)})
