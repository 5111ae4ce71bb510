"""The objective on a plane around the path (pathgeo.jobs.landscape): the first paper's level sets of ALM and SM."""

from __future__ import annotations

import dataclasses

import polars as pl
import pytest
import torch

from pathgeo.jobs.landscape import GRID_POINTS, landscape, principal_plane
from pathgeo.jobs.reference import train_reference
from pathgeo.training import data
from pathgeo.training.loop import build_trainer
from pathgeo.training.randomness import generator
from pathgeo.training.spec import DataSpec, RunSpec

CPU = torch.device("cpu")
SM = DataSpec("sm", "sm", {"dim": 5, "init_scale": 3.0, "steps_per_epoch": 6, "seed": 0})
ALM = DataSpec("alm", "alm", {"n_train": 40, "n_test": 8, "dim": 4, "seed": 0})


def spec(dataset: DataSpec, model: str, lr: float, batch_size: int) -> RunSpec:
    return RunSpec(
        data=dataset,
        model=model,
        width=0,
        optimizer="sgd",
        lr=lr,
        weight_decay=0.0,
        schedule="constant",
        warmup_epochs=0,
        batch_size=batch_size,
        epochs=2,
        seed=0,
        data_order_seed=0,
        precision="float32",
    )


def run(run_spec: RunSpec) -> tuple[pl.DataFrame, dict, dict]:
    tensors = data.build(run_spec.data)
    states: dict[int, dict] = {}
    train_reference(run_spec, tensors, CPU, (0, run_spec.epochs), lambda epoch, state: states.__setitem__(epoch, state))
    trainer = build_trainer(run_spec, tensors, CPU)
    trainer.load_state(states[0])
    return landscape(trainer, states[run_spec.epochs]), states, tensors


@pytest.fixture(scope="module")
def sm(deterministic_single_thread):
    return run(spec(SM, "sinusoid", 0.001, 1))


def test_the_path_is_the_run_from_its_first_checkpoint_to_w_star(sm):
    table, states, _ = sm
    path = table.filter(pl.col("source") == "path").sort("step")
    assert path["step"].to_list() == list(range(2 * 6 + 1))
    assert path["epoch"].to_list() == [step // 6 for step in range(13)]
    last = path.row(-1, named=True)
    # w* itself: on the plane, at its origin.
    assert (last["a"], last["b"], last["off_plane"]) == (0.0, 0.0, 0.0)
    w0 = states[0]["model"]["w"].double()
    first = path.row(0, named=True)
    assert first["a"] > 0  # the first direction points from w* toward w0
    # The plane is the best one through w* for the path: projecting on it keeps what the explained share says.
    w_star = states[2]["model"]["w"].double()
    offset = torch.linalg.vector_norm(w0 - w_star).item()
    assert (first["a"] ** 2 + first["b"] ** 2 + first["off_plane"] ** 2) == pytest.approx(offset**2, rel=1e-9)
    assert 0 < first["explained_a"] and first["explained_a"] + first["explained_b"] <= 1 + 1e-12
    assert first["explained_a"] >= first["explained_b"]


def test_the_grid_holds_the_objective_on_the_plane(sm):
    table, states, tensors = sm
    grid = table.filter(pl.col("source") == "grid")
    assert grid.height == GRID_POINTS**2
    path = table.filter(pl.col("source") == "path")
    # The grid covers the path's extent in the plane with a margin.
    assert grid["a"].min() < path["a"].min() and grid["a"].max() > path["a"].max()
    assert grid["b"].min() < path["b"].min() and grid["b"].max() > path["b"].max()
    # The objective at the path's points is the SM's at w_t: its first is the loss at the initial weights.
    w0, a = states[0]["model"]["w"], tensors["a"]
    expected = (w0.square().sum() + 100 * torch.sin(a * w0).square().sum()).item()
    assert path.sort("step")["loss"][0] == pytest.approx(expected, rel=1e-6)
    assert set(table["dataset"]) == {"sm"} and set(table["run_id"]) == {spec(SM, "sinusoid", 0.001, 1).run_id}


def test_alm_objective_is_the_mean_of_one_epochs_minibatch_losses(deterministic_single_thread):
    table, states, tensors = run(spec(ALM, "linear", 0.05, 16))
    w0 = states[0]["model"]["weight"].reshape(-1)
    # Epoch 0's minibatches (of 16, 16 and 8 samples), weighted by their sizes, as the train log averages them.
    order = torch.randperm(40, generator=generator(0, "data-order", 0))
    total = 0.0
    for index in order.split(16):
        residual = torch.relu(tensors["x_train"][index] @ w0 - tensors["y_train"][index])
        total += torch.sqrt(torch.mean(residual**2)).item() * len(index)
    path = table.filter(pl.col("source") == "path").sort("step")
    assert path["loss"][0] == pytest.approx(total / 40, rel=1e-5)


def test_principal_plane_of_a_path_in_a_plane_is_that_plane():
    torch.manual_seed(0)
    u, v = torch.eye(6, dtype=torch.float64)[0], torch.eye(6, dtype=torch.float64)[3]
    w_star = torch.randn(6, dtype=torch.float64)
    path = torch.stack([w_star + (5 - t) * u + 0.3 * (-1) ** t * v for t in range(6)] + [w_star])
    directions, explained = principal_plane(path, w_star)
    assert torch.allclose(directions @ directions.T, torch.eye(2, dtype=torch.float64), atol=1e-12)
    assert explained.sum().item() == pytest.approx(1.0)
    # The plane is span(u, v), and its first direction is (nearly) u, oriented toward w0.
    for axis in (u, v):
        assert torch.linalg.vector_norm(directions @ axis).item() == pytest.approx(1.0)
    assert (directions[0] @ u).item() > 0.99


def test_a_path_that_misses_the_final_checkpoint_is_refused(deterministic_single_thread):
    run_spec = spec(SM, "sinusoid", 0.001, 1)
    tensors = data.build(run_spec.data)
    states: dict[int, dict] = {}
    train_reference(run_spec, tensors, CPU, (0, 2), lambda epoch, state: states.__setitem__(epoch, state))
    other = dataclasses.replace(run_spec, lr=0.002)
    trainer = build_trainer(other, tensors, CPU)
    trainer.load_state({**states[0], "run_id": other.run_id})
    with pytest.raises(RuntimeError, match="does not end at the final checkpoint"):
        landscape(trainer, states[2])
