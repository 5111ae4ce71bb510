"""The four precisions: each trains and replays exactly on the CPU, bf16 really computes its forward in
bfloat16 with float32 weights and gradients, and TF32 is on only while a tf32 run computes."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from pathgeo.jobs.reference import train_reference
from pathgeo.jobs.replay import replay_segment
from pathgeo.training import data
from pathgeo.training.loop import build_trainer
from pathgeo.training.precision import PRECISIONS, forward_context, numerics, parameter_dtype
from pathgeo.training.spec import DataSpec, RunSpec

CPU = torch.device("cpu")
MNIST1D = DataSpec("mnist1d", "mnist1d", {"n_train": 200, "n_test": 50, "seed": 0})

pytestmark = pytest.mark.usefixtures("deterministic_single_thread")


@pytest.fixture(scope="module")
def mnist() -> dict[str, torch.Tensor]:
    return data.build(MNIST1D)


def spec(precision: str, model: str = "resnet1d") -> RunSpec:
    return RunSpec(
        data=MNIST1D,
        model=model,
        width=8,
        optimizer="momentum",
        lr=0.05,
        weight_decay=1e-4,
        schedule="constant",
        warmup_epochs=0,
        batch_size=32,
        epochs=2,
        seed=0,
        data_order_seed=1,
        precision=precision,
    )


def train(run: RunSpec, mnist) -> dict[int, dict]:
    saved: dict[int, dict] = {}
    train_reference(run, mnist, CPU, (0, 1, 2), lambda epoch, state: saved.__setitem__(epoch, state))
    return saved


@pytest.mark.parametrize("precision", PRECISIONS)
def test_replay_of_each_precision_is_exact(precision, mnist):
    """The residual 1-D CNN (convolutions, batch norm) in each precision: the replay of epoch 1 -> 2 from the
    middle checkpoint ends exactly on the reference's weights and buffers."""
    run = spec(precision)
    saved = train(run, mnist)
    table, _, fidelity = replay_segment(run, mnist, CPU, saved[1], saved[2], {"final": (2, saved[2])}, 0.0)
    assert fidelity.relative_drift == 0.0 and fidelity.max_buffer_difference == 0.0
    assert table["gamma"].is_finite().all()
    weights = next(iter(saved[2]["model"].values()))
    assert weights.dtype == parameter_dtype(precision)


def test_bf16_computes_its_forward_in_bfloat16_with_float32_weights_and_gradients(mnist):
    trainer = build_trainer(spec("bf16"), mnist, CPU)
    seen = {}

    class Observer:
        def after_backward(self, loss, lr, weight_decay):
            seen["grad"] = trainer.flat.grads.dtype
            seen["weights"] = trainer.flat.weights.dtype

    def record(module, args, out) -> None:
        seen["out"] = out.dtype

    hooked = trainer.task.model.register_forward_hook(record)
    trainer.train_epoch(Observer())
    hooked.remove()
    assert seen == {"out": torch.bfloat16, "grad": torch.float32, "weights": torch.float32}
    assert {v.dtype for v in trainer.optimizer.state_dict()["state"][0].values()} == {torch.float32}
    # A forward in bfloat16 is another trajectory than float32's.
    bf16, float32 = train(spec("bf16"), mnist), train(spec("float32"), mnist)
    assert not all(torch.equal(bf16[2]["model"][k], float32[2]["model"][k]) for k in float32[2]["model"])


def test_tf32_is_on_only_while_a_tf32_run_computes(mnist):
    """The TF32 flags are the run's during its steps and evaluation, and what they were afterwards."""
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    for precision, expected in (("tf32", True), ("float32", False), ("bf16", False)):
        trainer = build_trainer(spec(precision, model="mlp"), mnist, CPU)
        flags = []

        class Observer:
            def after_backward(self, loss, lr, weight_decay):
                flags.append((torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32))

        trainer.train_epoch(Observer())
        assert set(flags) == {(expected, expected)}, precision
        assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == before


def test_numerics_restores_the_flags_after_an_error():
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    with pytest.raises(RuntimeError), numerics("tf32"):
        assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
        raise RuntimeError("stop")
    assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == before


def test_only_bf16_autocasts():
    x = torch.ones(2, 2)
    for precision in PRECISIONS:
        with forward_context(precision, CPU):
            assert (x @ x).dtype == (torch.bfloat16 if precision == "bf16" else torch.float32), precision


def test_each_precision_is_its_own_run():
    ids = {precision: spec(precision).run_id for precision in PRECISIONS}
    assert len(set(ids.values())) == len(PRECISIONS)
    assert spec("float32").canonical()["precision"] == "float32"
    assert dataclasses.replace(spec("float32"), precision="float32").run_id == ids["float32"]
