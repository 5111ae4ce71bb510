"""The full-batch and the fixed-batch geometry (pathgeo.measurements.point_geometry) against numpy float64, and the
trajectory they leave untouched.

Oracles: the weights at each measured point are recorded from the replayed trajectory itself; the gradient
there is recomputed by a separate copy of the model (float32, the same chunks, so the same gradient), and
every metric follows in numpy float64 straight from its definition. Separately the full-batch gradient is
checked against one float64 pass over the whole training set, which pins down what "full batch" means.
"""

from __future__ import annotations

import copy
import itertools
import math

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from pathgeo.columns import POINT_METRICS
from pathgeo.jobs.reference import train_reference
from pathgeo.jobs.replay import flat_parameters_of, replay_segment
from pathgeo.measurements.point_geometry import FixedBatchGeometry, FullBatchGeometry, preserved
from pathgeo.training import data
from pathgeo.training.loop import build_trainer
from pathgeo.training.spec import DataSpec, RunSpec

CPU = torch.device("cpu")
MNIST1D = DataSpec("mnist1d", "mnist1d", {"n_train": 200, "n_test": 50, "seed": 0})
BATCH = 32
STEPS_PER_EPOCH = math.ceil(200 / BATCH)  # 7
WD = 1e-3
EPOCHS = 4

pytestmark = pytest.mark.usefixtures("deterministic_single_thread")


@pytest.fixture(scope="module")
def mnist() -> dict[str, torch.Tensor]:
    return data.build(MNIST1D)


def spec_of(model: str) -> RunSpec:
    return RunSpec(
        data=MNIST1D,
        model=model,
        width=8,
        optimizer="momentum",
        lr=0.05,
        weight_decay=WD,
        schedule="constant",
        warmup_epochs=0,
        batch_size=BATCH,
        epochs=EPOCHS,
        seed=0,
        data_order_seed=1,
        precision="float32",
    )


def reference_checkpoints(spec: RunSpec, mnist) -> dict[int, dict]:
    saved: dict[int, dict] = {}
    train_reference(spec, mnist, CPU, (0, 2, EPOCHS), lambda epoch, state: saved.__setitem__(epoch, state))
    return saved


class Snapshots:
    """An observer recording w_t before each step (its step number and epoch too)."""

    def __init__(self, trainer):
        self.trainer = trainer
        self.at: dict[int, np.ndarray] = {}

    def after_backward(self, loss, lr, weight_decay):
        self.at[self.trainer.step] = self.trainer.flat.weights.double().numpy().copy()


def assert_close(got: float, want: float, where) -> None:
    if np.isfinite(want):
        assert got == pytest.approx(want, rel=TOL, abs=TOL), where
    else:
        assert np.isnan(got) if np.isnan(want) else got == want, where


def oracle_metrics(w: np.ndarray, g: np.ndarray, w_star: np.ndarray, loss: float, lam: float) -> dict[str, float]:
    d = w - w_star
    gw = g + lam * w
    out = {"loss": loss, "dist": np.linalg.norm(d)}
    for suffix, grad in (("", g), ("_wd", gw)):
        with np.errstate(divide="ignore", invalid="ignore"):
            out |= {
                f"grad_norm{suffix}": np.linalg.norm(grad),
                f"rsi{suffix}": grad @ d / (d @ d),
                f"eb{suffix}": np.linalg.norm(grad) / np.linalg.norm(d),
                f"gamma{suffix}": grad @ d / (np.linalg.norm(grad) * np.linalg.norm(d)),
                f"lolr{suffix}": grad @ d / (grad @ grad),
            }
    return out


def gradient_at(spec: RunSpec, mnist, w: np.ndarray, batches, total: int | None) -> tuple[np.ndarray, float]:
    """The gradient of the mean loss over `batches` at w, by a fresh model (as the measurement does it)."""
    trainer = build_trainer(spec, mnist, CPU)
    with torch.no_grad():
        trainer.flat.weights.copy_(torch.from_numpy(w).float())
    trainer.flat.zero_grad()
    loss = 0.0
    for batch in batches:
        out = trainer.task.loss(batch)
        share = out.count / total if total else 1.0
        (out.loss * share).backward()
        loss += out.loss.item() * share
    return trainer.flat.grads.double().numpy().copy(), loss


# Metrics of exact float64 products of the same float32 vectors, summed in another order (chunks): ~1e-15
# on a cosine's scale; the loss is a float32 value, summed in float64 both ways.
TOL = 1e-10


def test_full_batch_geometry_matches_numpy(mnist):
    spec = spec_of("mlp")
    ck = reference_checkpoints(spec, mnist)
    full = FullBatchGeometry(every_epochs=1)
    references = {"final": (EPOCHS, ck[EPOCHS]), "epoch2": (2, ck[2])}
    _, _, fidelity = replay_segment(spec, mnist, CPU, ck[0], ck[EPOCHS], references, 0.0, measurements=[full])
    assert fidelity.relative_drift == 0.0
    table = full.table("run")
    assert table.columns == ["run_id", "reference", "budget", "epoch", "step", *POINT_METRICS]
    assert table.height == 2 * EPOCHS
    assert table["epoch"].to_list() == [e for e in range(EPOCHS) for _ in range(2)]
    assert table["step"].to_list() == [STEPS_PER_EPOCH * (e + 1) for e in range(EPOCHS) for _ in range(2)]
    assert set(table["budget"].to_list()) == {2, EPOCHS}

    # The weights each epoch ends with are those of the checkpoints (epochs 2 and 4) and, between, of a
    # plain run of the same trajectory.
    plain = build_trainer(spec, mnist, CPU)
    ends = {}
    for epoch in range(EPOCHS):
        plain.train_epoch()
        ends[epoch] = plain.flat.weights.double().numpy().copy()
    for name, (_, state) in references.items():
        w_star = flat_parameters_of(plain, state["model"]).double().numpy()
        for row in table.filter(table["reference"] == name).iter_rows(named=True):
            w = ends[row["epoch"]]
            chunks = build_trainer(spec, mnist, CPU).task.full_batch_chunks()
            g, loss = gradient_at(spec, mnist, w, chunks, 200)
            expected = oracle_metrics(w, g, w_star, loss, WD)
            # At a reference's own epoch (epoch2 after epoch index 1, final after the last) d = 0: RSI, EB
            # and gamma are undefined there, as in numpy.
            assert (row["dist"] == 0.0) == (row["epoch"] == {"epoch2": 1, "final": EPOCHS - 1}[name])
            for metric in POINT_METRICS:
                assert_close(row[metric], expected[metric], (name, row["epoch"], metric))

    # "Full batch": the gradient of the mean loss over all 200 samples, here from one float64 pass.
    model = copy.deepcopy(build_trainer(spec, mnist, CPU).task.model).double()
    w_last = torch.from_numpy(ends[EPOCHS - 1])
    torch.nn.utils.vector_to_parameters(w_last, model.parameters())
    loss = F.cross_entropy(model(mnist["x_train"].double()), mnist["y_train"])
    grad = torch.cat([p.reshape(-1) for p in torch.autograd.grad(loss, list(model.parameters()))]).numpy()
    last = table.filter((table["reference"] == "final") & (table["epoch"] == EPOCHS - 1)).row(0, named=True)
    assert last["loss"] == pytest.approx(loss.item(), rel=1e-6)
    assert last["grad_norm"] == pytest.approx(np.linalg.norm(grad), rel=1e-5)


def test_fixed_batch_geometry_matches_numpy(mnist):
    spec = spec_of("mlp")
    ck = reference_checkpoints(spec, mnist)
    every, count = 5, 3
    snapshots = Snapshots(None)

    class Recording(FixedBatchGeometry):
        """The measurement, recording w_t of every step it sees first."""

        def after_backward(self, loss, lr, weight_decay):
            snapshots.trainer = self.trainer
            snapshots.after_backward(loss, lr, weight_decay)
            super().after_backward(loss, lr, weight_decay)

    # A segment from epoch 2 (steps 14..27): the measured steps are 15, 20 and 25.
    fixed = Recording(every_steps=every, batches=count)
    _, _, fidelity = replay_segment(
        spec, mnist, CPU, ck[2], ck[EPOCHS], {"final": (EPOCHS, ck[EPOCHS])}, 0.0, measurements=[fixed]
    )
    assert fidelity.relative_drift == 0.0
    table = fixed.table("run")
    assert table.columns == ["run_id", "reference", "budget", "epoch", "step", "batch", *POINT_METRICS]
    assert table["step"].to_list() == [s for s in (15, 20, 25) for _ in range(count)]
    assert table["batch"].to_list() == list(range(count)) * 3
    assert table["epoch"].to_list() == [s // STEPS_PER_EPOCH for s in (15, 20, 25) for _ in range(count)]

    batches = list(itertools.islice(build_trainer(spec, mnist, CPU).task.batches(0), count))
    w_star = flat_parameters_of(fixed.trainer, ck[EPOCHS]["model"]).double().numpy()
    for row in table.iter_rows(named=True):
        w = snapshots.at[row["step"]]
        g, loss = gradient_at(spec, mnist, w, [batches[row["batch"]]], None)
        expected = oracle_metrics(w, g, w_star, loss, WD)
        for metric in POINT_METRICS:
            assert_close(row[metric], expected[metric], (row["step"], row["batch"], metric))
    # The batches differ, and so does their geometry at one point.
    assert table.filter(table["step"] == 20)["gamma"].n_unique() == count


@pytest.mark.parametrize("measure", ["full_batch", "fixed_batches", "both"])
def test_measurements_leave_weights_and_buffers_bit_identical(mnist, measure):
    """ResNet-1D (batch norm: the measurements' own forward passes would move the running statistics),
    momentum and weight decay: the replay with a measurement ends with the same weights, buffers and
    optimizer state as without, its probe table is the same, and its drift is 0.0."""
    spec = spec_of("resnet1d")
    ck = reference_checkpoints(spec, mnist)

    def run(measurements):
        result = replay_segment(
            spec,
            mnist,
            CPU,
            copy.deepcopy(ck[0]),
            copy.deepcopy(ck[EPOCHS]),
            {"final": (EPOCHS, copy.deepcopy(ck[EPOCHS]))},
            0.0,
            measurements=measurements,
        )
        trainer = measurements[0].trainer if measurements else None
        return result, trainer

    (plain_table, plain_matrices, plain_fidelity), _ = run([])
    chosen = {
        "full_batch": [FullBatchGeometry(1)],
        "fixed_batches": [FixedBatchGeometry(3, 4)],
        "both": [FullBatchGeometry(2), FixedBatchGeometry(2, 2)],
    }[measure]
    (table, matrices, fidelity), trainer = run(chosen)
    assert plain_fidelity.relative_drift == fidelity.relative_drift == 0.0
    assert plain_fidelity.max_buffer_difference == fidelity.max_buffer_difference == 0.0
    assert table.equals(plain_table) and matrices.equals(plain_matrices)
    for m in chosen:
        assert m.table("run").height > 0  # they did measure
    # The end state equals the reference checkpoint's, buffers (running statistics, counters) included.
    state = trainer.task.model.state_dict()
    assert any("running_mean" in name for name in state)
    for name, value in ck[EPOCHS]["model"].items():
        assert torch.equal(state[name], value), name
    for key, fields in ck[EPOCHS]["optimizer"]["state"].items():
        for field, value in fields.items():
            assert torch.equal(trainer.optimizer.state_dict()["state"][key][field], value), (key, field)


def test_preserved_restores_gradients_buffers_modes_and_random_state(mnist):
    trainer = build_trainer(spec_of("resnet1d"), mnist, CPU)
    model = trainer.task.model
    with torch.no_grad():
        trainer.flat.grads.copy_(torch.randn(trainer.flat.numel))
    model.eval()
    model.stem[1].train()  # a mixed state, as a user's loop might leave it
    before = {
        "grads": trainer.flat.grads.clone(),
        "buffers": [b.clone() for b in model.buffers()],
        "modes": [m.training for m in model.modules()],
        "rng": torch.get_rng_state(),
        "numpy": np.random.get_state()[1].copy(),
    }
    with preserved(trainer):
        model.train()
        trainer.flat.zero_grad()
        out = trainer.task.loss(next(trainer.task.batches(0)))
        out.loss.backward()
        torch.randn(10), np.random.rand(3)
        assert not torch.equal(trainer.flat.grads, before["grads"])
    assert torch.equal(trainer.flat.grads, before["grads"])
    assert all(torch.equal(b, saved) for b, saved in zip(model.buffers(), before["buffers"]))
    assert [m.training for m in model.modules()] == before["modes"]
    assert torch.equal(torch.get_rng_state(), before["rng"])
    assert np.array_equal(np.random.get_state()[1], before["numpy"])
