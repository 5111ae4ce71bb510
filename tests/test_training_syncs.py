"""The training loop's steps never wait for the device: no tensor is made from host data inside an epoch (on
CUDA, torch.tensor(value, device=cuda) copies from the host and waits for the copy) and nothing is read back
(item(), float(), int(), bool() of a tensor) until the epoch ends. Counted by a TorchDispatchMode on the CPU,
over an epoch of seven steps, on one device and on two simulated ranks (the all-reduce of pathgeo.training.distributed
replaced by the sum over two ranks with the same data; the all-reduce itself is asynchronous)."""

from __future__ import annotations

import dataclasses
from collections import Counter

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from pathgeo.training import data, loop
from pathgeo.training.distributed import Shard
from pathgeo.training.spec import DataSpec, RunSpec

MNIST1D = DataSpec("mnist1d", "mnist1d", {"n_train": 200, "n_test": 50, "seed": 0})
SPEC = RunSpec(
    data=MNIST1D,
    model="mlp",
    width=8,
    optimizer="sgd",
    lr=0.05,
    weight_decay=1e-4,
    schedule="constant",
    warmup_epochs=0,
    batch_size=32,
    epochs=1,
    seed=0,
    data_order_seed=1,
    precision="float32",
)
STEPS = 7  # 200 samples in minibatches of 32
# The running sums the epoch reads back once, at its end: count, loss, accuracy and samples.
EPOCH_READS = 4

pytestmark = pytest.mark.usefixtures("deterministic_single_thread")


class HostTraffic(TorchDispatchMode):
    """Counts the operations that move a value between the host and a tensor: a tensor made from Python data
    (aten.lift_fresh: torch.tensor, torch.as_tensor) and a tensor's value read by the host
    (aten._local_scalar_dense: item(), float(), int(), bool())."""

    WATCHED = ("aten.lift_fresh", "aten._local_scalar_dense")

    def __init__(self):
        super().__init__()
        self.ops: Counter = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = str(func)
        if name.startswith(self.WATCHED):
            self.ops[name.split(".")[1]] += 1
        return func(*args, **(kwargs or {}))


@pytest.fixture(scope="module")
def mnist():
    return data.build(MNIST1D)


def epoch(spec: RunSpec, mnist, world: int, monkeypatch) -> tuple[Counter, loop.EpochStats, torch.Tensor]:
    """One epoch with `world` ranks that see the same data (so the all-reduce is a product by `world`)."""
    monkeypatch.setattr(loop, "sum_across", lambda values, shard: values * shard.world)
    trainer = loop.build_trainer(spec, mnist, torch.device("cpu"))
    trainer.shard = Shard(0, world)
    with HostTraffic() as traffic:
        stats = trainer.train_epoch()
    assert trainer.step == STEPS
    return traffic.ops, stats, trainer.flat.buffer.clone()


def test_the_counter_sees_host_traffic():
    with HostTraffic() as traffic:
        float(torch.tensor(2.0) * 3)
    assert traffic.ops == {"lift_fresh": 1, "_local_scalar_dense": 1}


@pytest.mark.parametrize("world", [1, 2])
@pytest.mark.parametrize("grad_clip", [None, 1.0])
def test_an_epoch_reads_the_device_once_at_its_end(mnist, monkeypatch, world, grad_clip):
    ops, _, _ = epoch(dataclasses.replace(SPEC, grad_clip=grad_clip), mnist, world, monkeypatch)
    assert ops == {"_local_scalar_dense": EPOCH_READS}


def test_two_equal_ranks_train_as_one_device_bit_for_bit(mnist, monkeypatch):
    """Each rank's weight is exactly 1 and the global loss is the one device's: the shared path changes no bit."""
    _, one, weights = epoch(SPEC, mnist, 1, monkeypatch)
    _, two, shared = epoch(SPEC, mnist, 2, monkeypatch)
    assert two.train_loss == one.train_loss and two.train_accuracy == one.train_accuracy
    assert two.samples == 2 * one.samples
    assert torch.equal(shared, weights)
