"""The GPU path's work per probe step does not grow with the model: the aten operations it issues inside
`Probe.after_backward`, counted by a TorchDispatchMode on the CPU, plus its Triton launches, stay within
64 for torchvision's ResNet-18 (10 classes) and 128 for ImageNet ResNet-152, on every step: anchors, the
anchored lags, matrix windows, epoch boundaries and plain steps, with every default measurement on.

The counted path is the real one (backend "triton", the defaults of pathgeo.planning.config.CORRELATION_DEFAULTS).
Each launch counts as one operation. On the models the kernels themselves are not run, because Triton's
interpreter would take minutes over 11M and 60M parameters and a kernel issues no aten operation on a GPU;
ResNet-152 lives on the meta device for the same reason. A small model runs its kernels for real and
counts the same.
"""

from __future__ import annotations

from collections import Counter

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode, _disable_current_modes

from pathgeo.columns import ANCHOR_PERIOD
from pathgeo.engine import gpu_kernels
from pathgeo.engine.probe import Probe
from pathgeo.planning.config import CORRELATION_DEFAULTS
from pathgeo.training.flat import FlatParameters

STEPS = ANCHOR_PERIOD + 12  # two anchors (0 and 51), every lag of the first, windows at each epoch start
STEPS_PER_EPOCH = 25


class Counting(TorchDispatchMode):
    """Counts the aten operations dispatched while active; `launches` counts Triton launches."""

    def __init__(self):
        super().__init__()
        self.ops: Counter = Counter()
        self.launches = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops[str(func)] += 1
        return func(*args, **(kwargs or {}))

    @property
    def total(self) -> int:
        return sum(self.ops.values()) + self.launches


@pytest.fixture
def counted_launches(monkeypatch):
    """Route every launch through a counter; `run.value` says whether the kernel is executed too (outside the
    dispatch mode, so that the interpreter's own bookkeeping is not counted)."""
    state = {"mode": None, "run": True}
    original = gpu_kernels.launch

    def launch(kernel, grid, *args, **constants):
        if state["mode"] is not None:
            state["mode"].launches += 1
        if state["run"]:
            with _disable_current_modes():
                original(kernel, grid, *args, **constants)

    monkeypatch.setattr(gpu_kernels, "launch", launch)
    return state


def counts_per_step(model: torch.nn.Module, device: torch.device, counted_launches, epoch_ends: bool) -> list[int]:
    flat = FlatParameters([p for p in model.parameters() if p.requires_grad])
    with torch.no_grad():
        flat.grads.copy_(torch.linspace(-1, 1, flat.numel, device=device))
    w_star = torch.zeros(flat.numel, device=device)
    settings = CORRELATION_DEFAULTS
    assert settings["lagged"] == "anchored" and settings["matrix_epochs"] == "all"
    probe = Probe(
        flat,
        {"final": w_star},
        weight_decay=1e-4,
        steps_per_epoch=STEPS_PER_EPOCH if epoch_ends else STEPS,
        backend="triton",
        window=settings["window"],
        lagged=settings["lagged"],
    )
    loss = torch.tensor(2.3, device=device)
    counts = []
    for step in range(STEPS):
        if epoch_ends and step and step % STEPS_PER_EPOCH == 0:
            probe.end_epoch()
        with Counting() as mode:
            counted_launches["mode"] = mode
            probe.after_backward(loss, 0.1, 1e-4)
        counted_launches["mode"] = None
        counts.append(mode.total)
    return counts


def assert_bounded(counts: list[int], bound: int) -> None:
    worst = max(range(STEPS), key=counts.__getitem__)
    assert counts[worst] <= bound, f"step {worst}: {counts[worst]} operations > {bound}"
    # A step of an anchored lag (1, 2, 5, ... after an anchor) launches one kernel more and sums its partials
    # into the record; nothing else varies, whatever the model.
    lag_steps = {t for t in range(STEPS) if t % ANCHOR_PERIOD in (1, 2, 5, 10, 20, 50)}
    plain = {c for t, c in enumerate(counts) if t not in lag_steps}
    lagged = {counts[t] for t in lag_steps}
    assert len(plain) == 1 and len(lagged) == 1 and lagged.pop() > plain.pop(), counts


def test_resnet18_probe_step_stays_within_64_operations(counted_launches):
    from torchvision.models import resnet18

    counted_launches["run"] = False
    torch.manual_seed(0)
    counts = counts_per_step(resnet18(num_classes=10), torch.device("cpu"), counted_launches, epoch_ends=True)
    assert_bounded(counts, 64)


def test_resnet152_probe_step_stays_within_128_operations(counted_launches):
    from torchvision.models import resnet152

    counted_launches["run"] = False
    with torch.device("meta"):
        model = resnet152()
    assert sum(p.numel() for p in model.parameters()) == 60_192_808
    counts = counts_per_step(model, torch.device("meta"), counted_launches, epoch_ends=False)
    assert_bounded(counts, 128)


def test_executed_kernels_count_the_same(counted_launches):
    """With the kernels run (under the interpreter), a small model's steps count exactly as with them skipped:
    skipping them hides no operation."""
    model = torch.nn.Sequential(torch.nn.Linear(20, 30), torch.nn.ReLU(), torch.nn.Linear(30, 10))
    counted_launches["run"] = True
    executed = counts_per_step(model, torch.device("cpu"), counted_launches, epoch_ends=True)
    counted_launches["run"] = False
    skipped = counts_per_step(model, torch.device("cpu"), counted_launches, epoch_ends=True)
    assert executed == skipped
    assert_bounded(executed, 64)
