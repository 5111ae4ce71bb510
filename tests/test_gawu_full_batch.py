"""The exponential warm-ups, the geometry-adapted switch (GAWU) and full-batch gradient descent.

Oracles: closed forms for the schedule factors; for GAWU a numpy float64 recomputation of the mean gradient
correlation from recorded gradients (the switch must be the first step where it turns negative); for full
batch the gradient of the mean loss over the whole training set in one pass, in float64. Replays and
resumed runs must repeat the switch step and the trajectory exactly.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pathgeo.jobs.reference import train_reference
from pathgeo.jobs.replay import flat_parameters_of, replay_segment
from pathgeo.training import data
from pathgeo.training.loop import build_trainer
from pathgeo.training.schedules import Schedule
from pathgeo.training.spec import DataSpec, RunSpec
from pathgeo.training.warmup import GeometrySwitch

CPU = torch.device("cpu")
MNIST1D = DataSpec("mnist1d", "mnist1d", {"n_train": 400, "n_test": 50, "seed": 0})


pytestmark = pytest.mark.usefixtures("deterministic_single_thread")


@pytest.fixture(scope="module")
def mnist():
    return data.build(MNIST1D)


def _spec(**overrides) -> RunSpec:
    fields = {
        "data": MNIST1D,
        "model": "mlp",
        "width": 32,
        "optimizer": "sgd",
        "lr": 0.001,
        "weight_decay": 0.0,
        "schedule": "gawu",
        "warmup_epochs": 20,
        "batch_size": 100,
        "epochs": 24,
        "seed": 0,
        "data_order_seed": 0,
        "precision": "float32",
        "warmup_growth": 0.15,
    }
    return RunSpec(**{**fields, **overrides})


def test_exponential_warmup_then_cosine_factors():
    schedule = Schedule("exp_warmup_cosine", total_steps=100, warmup_steps=20, steps_per_epoch=10, growth=0.1)
    assert [schedule.lr_factor(s) for s in (0, 1, 19)] == pytest.approx([1.0, math.exp(0.1), math.exp(1.9)], rel=1e-15)
    # Continuous at the switch: the decay starts from the LR the warm-up reached.
    assert schedule.lr_factor(20) == pytest.approx(math.exp(2.0))
    assert schedule.lr_factor(60) == pytest.approx(0.5 * math.exp(2.0))
    assert schedule.lr_factor(99) == pytest.approx(math.exp(2.0) * 0.5 * (1 + math.cos(math.pi * 79 / 80)))
    gawu = Schedule("gawu", total_steps=100, warmup_steps=20, steps_per_epoch=10, growth=0.1)
    # Until a switch is detected, gawu keeps warming up to its cap; a detected switch moves the decay.
    assert [gawu.lr_factor(s) for s in (5, 19, 20)] == [schedule.lr_factor(s) for s in (5, 19, 20)]
    assert gawu.lr_factor(7, switch_step=7) == pytest.approx(math.exp(0.7))
    assert gawu.lr_factor(8, switch_step=7) < gawu.lr_factor(7, switch_step=7)
    assert gawu.lr_factor(53, switch_step=6) == pytest.approx(0.5 * math.exp(0.6))


class GradientRecorder:
    def __init__(self, trainer):
        self.trainer, self.grads, self.lrs = trainer, [], []

    def after_backward(self, loss, lr, weight_decay):
        self.grads.append(self.trainer.flat.grads.double().numpy().copy())
        self.lrs.append(lr)


def test_gawu_switches_where_the_mean_gradient_correlation_first_turns_negative(mnist):
    spec = _spec()
    trainer = build_trainer(spec, mnist, CPU)
    recorder = GradientRecorder(trainer)
    for _ in range(spec.epochs):
        trainer.train_epoch(recorder)
    grads = np.stack(recorder.grads)
    adjacent = np.einsum("ij,ij->i", grads[1:], grads[:-1]) / (
        np.linalg.norm(grads[1:], axis=1) * np.linalg.norm(grads[:-1], axis=1)
    )
    h = spec.gawu_window
    mean = np.convolve(adjacent, np.ones(h - 1) / (h - 1), mode="valid")  # mean[i]: the window ending at step i + h − 1
    turns = [i + h - 1 for i in range(1, len(mean)) if mean[i - 1] > 0 > mean[i]]
    switch = trainer.switch.switch_step
    assert turns, "the warm-up never reached a zigzag regime: the test would check nothing"
    assert switch == turns[0]
    assert switch < spec.warmup_epochs * trainer.task.steps_per_epoch  # detected, not the cap
    lrs = np.asarray(recorder.lrs)
    assert lrs[: switch + 1] == pytest.approx(spec.lr * np.exp(spec.warmup_growth * np.arange(switch + 1)))
    assert np.argmax(lrs) == switch
    assert np.all(np.diff(lrs[switch:]) < 0)


def test_gawu_never_turning_negative_switches_at_the_cap(mnist):
    # Full-batch gradients at a tiny, slowly growing LR stay aligned (minibatch noise could turn them).
    spec = _spec(warmup_growth=0.01, warmup_epochs=10, epochs=14, full_batch=True)
    trainer = build_trainer(spec, mnist, CPU)
    recorder = GradientRecorder(trainer)
    for _ in range(spec.epochs):
        trainer.train_epoch(recorder)
    cap = 10
    assert trainer.switch.switch_step is None
    assert int(np.argmax(recorder.lrs)) == cap
    assert recorder.lrs[cap] == pytest.approx(spec.lr * math.exp(0.01 * cap))


def test_gawu_replay_from_a_warmup_checkpoint_and_resume_repeat_the_switch(mnist):
    spec = _spec()
    checkpoints = {}
    train_reference(spec, mnist, CPU, (0, 1, 12, 24), lambda e, s: checkpoints.__setitem__(e, s))
    uninterrupted = build_trainer(spec, mnist, CPU)
    for _ in range(spec.epochs):
        uninterrupted.train_epoch()
    switch = uninterrupted.switch.switch_step
    assert 1 * 4 < switch < 12 * 4, "the switch must fall between the checkpoints for this test to mean anything"
    # Epoch 1 is inside the warm-up: the checkpoint carries the detector's state (previous gradient included).
    assert checkpoints[1]["warmup"]["switch_step"] is None
    assert checkpoints[1]["warmup"]["previous"] is not None
    assert checkpoints[12]["warmup"]["switch_step"] == switch
    assert checkpoints[12]["warmup"]["previous"] is None
    table, _, fidelity = replay_segment(
        spec, mnist, CPU, checkpoints[1], checkpoints[12], {"final": (24, checkpoints[24])}, 0.0
    )
    assert fidelity.relative_drift == 0.0
    assert table["lr"].arg_max() + 1 * 4 == switch
    resumed = build_trainer(spec, mnist, CPU)
    resumed.load_state(checkpoints[1])
    for _ in range(1, spec.epochs):
        resumed.train_epoch()
    assert torch.equal(resumed.flat.weights, uninterrupted.flat.weights)
    assert torch.equal(resumed.flat.weights, flat_parameters_of(resumed, checkpoints[24]["model"]))
    assert resumed.switch.switch_step == switch


def test_gawu_detector_torch_path_matches_the_fused_pass():
    """The GPU path (torch float64 dots) run on the CPU: same cosines, same switch as the numba pass."""
    generator = torch.Generator().manual_seed(0)
    direction = torch.randn(1000, generator=generator)
    # Aligned gradients, then alternating ones: the window mean turns negative once the zigzag fills it.
    grads = [direction * (1 if t < 8 else (-1) ** t) + 0.1 * torch.randn(1000, generator=generator) for t in range(20)]
    switches = {}
    for fused in (True, False):
        switch = GeometrySwitch(1000, 5, CPU, torch.float32, fused=fused)
        for step, g in enumerate(grads):
            switch.observe(g.clone(), step)
        switches[fused] = switch
    # Pairs (8, 9), (9, 10), ... are opposed. The window of 4 pairs ending at step 10 holds two of each (mean
    # near 0, its sign set by the noise); the one ending at step 11 is clearly negative.
    assert switches[True].switch_step in (10, 11)
    assert switches[True].switch_step == switches[False].switch_step
    assert switches[True].recent == pytest.approx(switches[False].recent, rel=1e-12)
    with pytest.raises(ValueError, match="CPU"):
        GeometrySwitch(10, 5, torch.device("meta"), torch.float32, fused=True)


def test_full_batch_step_uses_the_gradient_of_the_whole_training_set(mnist):
    spec = _spec(
        schedule="constant",
        warmup_epochs=0,
        warmup_growth=0.0,
        full_batch=True,
        batch_size=150,
        epochs=2,
        lr=0.1,
        precision="float64",
    )
    trainer = build_trainer(spec, mnist, CPU)
    assert trainer.task.steps_per_epoch == 1
    before = trainer.flat.weights.clone()
    # The oracle: one float64 pass over all 400 samples, in the same order, no chunks.
    model = trainer.task.model
    trainer.flat.zero_grad()  # not model.zero_grad(), which would detach the gradients from the flat buffer
    loss = torch.nn.functional.cross_entropy(model(trainer.task.x_train), trainer.task.y_train)
    loss.backward()
    expected_grad = trainer.flat.grads.clone()
    recorder = GradientRecorder(trainer)
    stats = trainer.train_epoch(recorder)
    assert len(recorder.grads) == 1
    np.testing.assert_allclose(recorder.grads[0], expected_grad.numpy(), rtol=1e-12, atol=1e-15)
    assert stats.train_loss == pytest.approx(loss.item(), rel=1e-12)
    np.testing.assert_allclose(
        trainer.flat.weights.numpy(), (before - 0.1 * expected_grad).numpy(), rtol=1e-12, atol=1e-15
    )
    # Chunks of 150 leave a short last chunk (400 = 2·150 + 100): its weight is its share, not 1/3.
    assert 400 % spec.batch_size


def test_full_batch_is_deterministic_and_replays_exactly(mnist):
    spec = _spec(
        schedule="constant", warmup_epochs=0, warmup_growth=0.0, full_batch=True, batch_size=100, epochs=6, lr=0.5
    )
    checkpoints = {}
    train_reference(spec, mnist, CPU, (0, 3, 6), lambda e, s: checkpoints.__setitem__(e, s))
    table, matrices, fidelity = replay_segment(
        spec, mnist, CPU, checkpoints[0], checkpoints[6], {"final": (6, checkpoints[6])}, 0.0
    )
    assert fidelity.relative_drift == 0.0
    assert table["step"].to_list() == table["epoch"].to_list() == list(range(6))
    # One step an epoch: the matrix of epoch e spans epochs e..e+4, so only epochs 0 and 1 fit in 6 steps.
    assert sorted(matrices["epoch"].unique().to_list()) == [0, 1]
    assert "-full-" in spec.run_id and spec.run_id != _spec(schedule="constant", full_batch=False).run_id
