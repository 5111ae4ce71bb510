"""The objective on a plane around the optimization path: the level sets of the first paper's synthetic objectives
(its Figures 14 and 15).

The path is traced again from the run's first checkpoint with the same training loop (an observer records the
weights before every step), and must end at the final checkpoint exactly. The plane passes through the final
weights w* and is spanned by the two principal directions of the path's offsets w_t − w* (the best plane through w*
for the path, as in Li et al.'s trajectory plots); the objective is evaluated on a grid over the path's extent in it.
The objective is the training loss as the train log reports it: the mean of the minibatch losses of one epoch (epoch
0's minibatches, weighted by their sizes), so for the ALM the loss "averaged over minibatches", for the SM the
deterministic objective itself.

One table per run, rows of two sources: `grid` (a, b, loss: the objective at w* + a·u + b·v) and `path` (step,
epoch, a, b, loss: the objective at w_t itself, and `off_plane`, the distance of w_t from the plane). The columns
`explained_a`, `explained_b` give the share of the path's squared offsets each direction carries.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import polars as pl
import torch
from torch import nn

from pathgeo.jobs.replay import flat_parameters_of
from pathgeo.training.data.task import Task
from pathgeo.training.loop import Trainer

log = logging.getLogger("pathgeo")

GRID_POINTS = 41  # per axis
EVALUATION_CHUNK = 1024  # weights evaluated at once
MARGIN = 0.15  # of the path's extent, on each side
# A path of T steps in d dimensions is held as T x d float64 values: the synthetic objectives' few thousand, not a
# network's.
MAX_PATH_VALUES = 50_000_000


class PathRecorder:
    """An observer that keeps the weights before every step (it only reads them)."""

    def __init__(self, trainer: Trainer):
        self.weights = trainer.flat.weights
        self.path: list[torch.Tensor] = []

    def after_backward(self, loss: torch.Tensor, lr: float, weight_decay: float) -> None:
        self.path.append(self.weights.detach().to(torch.float64, copy=True))


def trace_path(trainer: Trainer, end_state: dict) -> torch.Tensor:
    """The weights w_0 … w_T of the run from the trainer's state to `end_state` (a checkpoint), as rows; refuses a
    path that does not end exactly at the checkpoint's weights."""
    steps = (end_state["epoch"] - trainer.epoch) * trainer.task.steps_per_epoch
    if steps * trainer.flat.numel > MAX_PATH_VALUES:
        raise ValueError(
            f"run {trainer.run_id}: a path of {steps} steps of {trainer.flat.numel} parameters is too large to hold "
            f"for a landscape (at most {MAX_PATH_VALUES} values); draw the level sets of a smaller objective"
        )
    recorder = PathRecorder(trainer)
    while trainer.epoch < end_state["epoch"]:
        trainer.train_epoch(recorder)
    final = flat_parameters_of(trainer, end_state["model"]).to(torch.float64)
    path = torch.stack([*recorder.path, trainer.flat.weights.detach().to(torch.float64)])
    if not torch.equal(path[-1], final.to(path.device)):
        raise RuntimeError(f"run {trainer.run_id}: the traced path does not end at the final checkpoint")
    return path


def principal_plane(path: torch.Tensor, w_star: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The two directions (rows) of the best plane through w* for the path, and the share of the path's squared
    offsets from w* each carries. The first is oriented so that w_0 lies at a positive coordinate."""
    offsets = path - w_star
    _, singular, vh = torch.linalg.svd(offsets, full_matrices=False)
    directions = vh[:2].clone()
    if directions.shape[0] < 2:
        raise ValueError("a landscape needs at least two parameters")
    for k in range(2):
        if offsets[0] @ directions[k] < 0:
            directions[k] = -directions[k]
    explained = singular[:2] ** 2 / (singular**2).sum()
    return directions, explained


class _Loss(nn.Module):
    """A task's minibatch loss as a module whose parameters are its model's, so that torch.func can evaluate it at
    many weights at once."""

    def __init__(self, task: Task):
        super().__init__()
        self.model = task.model
        self.task = task

    def forward(self, batch: Any) -> torch.Tensor:
        return self.task.loss(batch).loss


def objective(trainer: Trainer) -> Callable[[torch.Tensor], torch.Tensor]:
    """The training loss at given weights (rows of a matrix, in the flat parameters' order): the size-weighted mean
    of epoch 0's minibatch losses, evaluated for all rows at once (torch.func.vmap). A batch that is the same object
    as another (the SM's are all None: the objective is deterministic) is evaluated once."""
    task, flat = trainer.task, trainer.flat
    distinct: dict[int, list] = {}
    for batch in task.batches(0):
        distinct.setdefault(id(batch), [batch, 0])[1] += 1
    names = [f"model.{name}" for name, p in task.model.named_parameters() if p.requires_grad]
    shapes = [p.shape for p in flat.params]
    sizes = [p.numel() for p in flat.params]
    loss = _Loss(task)

    def at(w: torch.Tensor, batch: Any) -> torch.Tensor:
        values = {name: part.view(shape) for name, part, shape in zip(names, w.split(sizes), shapes)}
        return torch.func.functional_call(loss, values, (batch,))

    @torch.no_grad()
    def loss_at(weights: torch.Tensor) -> torch.Tensor:
        weights = weights.to(device=flat.weights.device, dtype=flat.weights.dtype)
        total = torch.zeros(len(weights), dtype=torch.float64, device=weights.device)
        count = 0
        for batch, repeats in distinct.values():
            size = task.loss(batch).count
            per_row = torch.cat(
                [
                    torch.func.vmap(at, in_dims=(0, None))(rows, batch).double()
                    for rows in weights.split(EVALUATION_CHUNK)
                ]
            )
            total += per_row * size * repeats
            count += size * repeats
        return (total / count).cpu()

    return loss_at


def landscape(trainer: Trainer, end_state: dict) -> pl.DataFrame:
    """The landscape table of one run (see the module's docstring), from its first checkpoint's state (loaded in
    `trainer`) to `end_state`, whose weights are w*."""
    steps_per_epoch = trainer.task.steps_per_epoch
    start_step = trainer.step
    path = trace_path(trainer, end_state)
    w_star = path[-1]
    directions, explained = principal_plane(path, w_star)
    coords = (path - w_star) @ directions.T
    off_plane = torch.linalg.vector_norm(path - w_star - coords @ directions, dim=1)
    loss_at = objective(trainer)
    buffers = {name: value.clone() for name, value in trainer.task.model.named_buffers()}
    low, high = coords.min(0).values, coords.max(0).values
    pad = MARGIN * (high - low).clamp_min(1e-12)
    axes = [torch.linspace(low[k] - pad[k], high[k] + pad[k], GRID_POINTS, dtype=torch.float64) for k in range(2)]
    a, b = (axis.reshape(-1) for axis in torch.meshgrid(*axes, indexing="ij"))
    points = w_star + a[:, None] * directions[0] + b[:, None] * directions[1]
    grid = pl.DataFrame({"source": "grid", "a": a.numpy(), "b": b.numpy(), "loss": loss_at(points).numpy()})
    steps = start_step + torch.arange(len(path))
    along = pl.DataFrame(
        {
            "source": "path",
            "step": steps.numpy(),
            "epoch": (steps // steps_per_epoch).numpy(),
            "a": coords[:, 0].numpy(),
            "b": coords[:, 1].numpy(),
            "loss": loss_at(path).numpy(),
            "off_plane": off_plane.numpy(),
        }
    )
    # Evaluating the objective must leave the model as training left it (running statistics of a norm layer).
    for name, value in trainer.task.model.named_buffers():
        value.copy_(buffers[name])
    log.info(
        "run %s: landscape of %d grid points around a path of %d steps; the plane carries %.1f%% of the path's offsets",
        trainer.run_id,
        grid.height,
        len(path) - 1,
        100 * explained.sum().item(),
    )
    return pl.concat([grid, along], how="diagonal").with_columns(
        pl.lit(trainer.run_id).alias("run_id"),
        pl.lit(explained[0].item()).alias("explained_a"),
        pl.lit(explained[1].item()).alias("explained_b"),
        *(pl.lit(value).alias(name) for name, value in trainer.spec.factors().items()),
    )
