"""The first paper's two other measurements, taken by the replay at points of the trajectory:

* full batch: at the end of every N-th epoch, the gradient of the mean loss over the whole training set
  at the current weights (the authors' `get_fullbatch_gradient`), with its loss, norm, and RSI, EB, gamma
  and the locally optimal LR against each reference point, with and without the weight-decay term;
* fixed batches: every N-th step, the same for the gradient of each of K fixed minibatches at that step's
  weights w_t (the authors' `get_batch_list_grads`), i.e. how the geometry spreads over minibatches at one
  point.

Both run forward and backward passes of their own, in train mode as the authors' code does, so batch norm
updates its running statistics and dropout draws random numbers; `preserved` saves the gradients, every
buffer, the modules' train/eval flags and every RNG state before and restores them after, so the trajectory
stays bit-identical (the replay's fidelity check stays at 0.0). The products are float64 sums of the
float32 values in chunks of CHUNK entries (bounded temporaries), read back once per measurement.

Where they differ from the authors' code: the full-batch loss is the mean over samples (theirs, the mean of
per-batch means with the last partial batch dropped); the fixed batches are the first K of epoch 0's order
(theirs, the first K of a freshly shuffled loader), measured at w_t before step t's update (theirs, after
it, at every 100th iteration), so that they can be set beside the step's own minibatch gradient.

Cost: a full-batch measurement is one forward and backward pass over the training set, about an epoch of
training without the optimizer, every N epochs (+1/N of the replay's time); a fixed-batch measurement is K
forward and backward passes every N steps (+K/N), and keeps the K batches on the device.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import numpy as np
import torch

from pathgeo.columns import POINT_METRICS
from pathgeo.engine.probe import geometry
from pathgeo.training.randomness import capture_rng_state, restore_rng_state

if TYPE_CHECKING:
    import polars as pl

    from pathgeo.training.loop import Trainer

CHUNK = 1 << 20


@contextmanager
def preserved(trainer: Trainer) -> Iterator[None]:
    """Whatever runs inside leaves no trace on the trajectory: gradients, buffers (batch norm's running
    statistics and counters), train/eval flags and RNG states are as before."""
    model = trainer.task.model
    grads = trainer.flat.grads.detach().clone()
    buffers = [(b, b.detach().clone()) for b in model.buffers()]
    modes = [(m, m.training) for m in model.modules()]
    rng = capture_rng_state()
    try:
        yield
    finally:
        with torch.no_grad():
            trainer.flat.grads.copy_(grads)
            for buffer, saved in buffers:
                buffer.copy_(saved)
        for module, training in modes:
            module.training = training
        restore_rng_state(rng)


def products(w: torch.Tensor, g: torch.Tensor, w_star: torch.Tensor) -> dict[str, np.ndarray]:
    """G·G, G·w, w·w and per reference r G·d_r, d_r·d_r, w·d_r (d_r = w − w*_r), in float64 over chunks."""
    refs = len(w_star)
    sums = torch.zeros(3 + 3 * refs, dtype=torch.float64, device=w.device)
    for start in range(0, w.numel(), CHUNK):
        wc, gc = w[start : start + CHUNK].double(), g[start : start + CHUNK].double()
        d = wc - w_star[:, start : start + CHUNK].double()
        sums += torch.cat([torch.stack([gc @ gc, gc @ wc, wc @ wc]), d @ gc, (d * d).sum(1), d @ wc])
    values = sums.cpu().numpy()
    return {
        "gg": values[0],
        "gw": values[1],
        "ww": values[2],
        "gd": values[3 : 3 + refs],
        "dd": values[3 + refs : 3 + 2 * refs],
        "wd": values[3 + 2 * refs :],
    }


def point_rows(p: dict[str, np.ndarray], loss: float, weight_decay: float) -> dict[str, np.ndarray]:
    """The POINT_METRICS of one gradient, one value per reference."""
    lam = weight_decay
    refs = len(p["gd"])
    gg = np.full(refs, p["gg"])
    with np.errstate(divide="ignore", invalid="ignore"):
        plain = geometry(p["gd"], gg, p["dd"])
        with_wd = geometry(p["gd"] + lam * p["wd"], gg + 2 * lam * p["gw"] + lam**2 * p["ww"], p["dd"])
    return {
        "loss": np.full(refs, loss),
        "dist": np.sqrt(p["dd"]),
        **plain,
        **{f"{k}_wd": v for k, v in with_wd.items()},
    }


class PointGeometry:
    """Base of the two measurements: what they share is the reference points, the gradient of some
    batches at the current weights, and the table."""

    keys: tuple[str, ...] = ("epoch", "step")

    def start(self, trainer: Trainer, references: dict[str, torch.Tensor], budgets: dict[str, int]) -> None:
        self.trainer = trainer
        self.names = list(references)
        self.budgets = budgets
        self.w_star = torch.stack([references[n].to(trainer.flat.buffer) for n in self.names])
        self.rows: list[dict] = []

    def measure(self, batches, total: int | None, keys: dict) -> None:
        """The gradient of the mean loss over `batches` (`total` samples in all; None: one batch, its mean
        loss) at the current weights."""
        trainer = self.trainer
        with preserved(trainer):
            trainer.task.model.train()
            trainer.flat.zero_grad()
            loss = torch.zeros((), dtype=torch.float64, device=trainer.flat.buffer.device)
            for batch in batches:
                out = trainer.task.loss(batch)
                share = out.count / total if total else 1.0
                (out.loss * share).backward()
                loss += out.loss.detach().double() * share
            p = products(trainer.flat.weights, trainer.flat.grads, self.w_star)
        weight_decay = trainer.spec.weight_decay * trainer.schedule.wd_factor(trainer.step)
        metrics = point_rows(p, loss.item(), weight_decay)
        for r, name in enumerate(self.names):
            self.rows.append({"reference": name, **keys, **{m: float(metrics[m][r]) for m in POINT_METRICS}})

    def after_backward(self, loss: torch.Tensor, lr: float, weight_decay: float) -> None:
        pass

    def end_epoch(self) -> None:
        pass

    def table(self, run_id: str) -> pl.DataFrame:
        """One row per measurement and reference (empty, with the columns, if none was taken)."""
        import polars as pl

        schema = {
            "run_id": pl.String,
            "reference": pl.String,
            "budget": pl.Int64,
            **{k: pl.Int64 for k in self.keys},
            **{m: pl.Float64 for m in POINT_METRICS},
        }
        rows = [
            {"run_id": run_id, "budget": self.budgets[row["reference"]], **row} for row in getattr(self, "rows", [])
        ]
        return pl.DataFrame(rows, schema=schema, orient="row") if rows else pl.DataFrame(schema=schema)


class FullBatchGeometry(PointGeometry):
    """At the end of every `every_epochs`-th epoch (epochs counted from 1 over the whole run; None: never),
    the full-batch gradient's geometry at the weights the epoch ends with."""

    def __init__(self, every_epochs: int | None):
        self.every_epochs = every_epochs

    def start(self, trainer: Trainer, references: dict[str, torch.Tensor], budgets: dict[str, int]) -> None:
        super().start(trainer, references, budgets)
        if self.every_epochs and not trainer.task.train_size:
            raise ValueError(
                f"run {trainer.run_id}: full_batch_geometry needs a finite resident training set, which "
                f"dataset '{trainer.spec.data.name}' (kind {trainer.spec.data.kind}) is not"
            )

    def end_epoch(self) -> None:
        trainer = self.trainer
        if self.every_epochs and trainer.epoch % self.every_epochs == 0:
            # The epoch just ended is trainer.epoch − 1; its last update has been taken.
            self.measure(
                trainer.task.full_batch_chunks(),
                trainer.task.train_size,
                {"epoch": trainer.epoch - 1, "step": trainer.step},
            )


class FixedBatchGeometry(PointGeometry):
    """At every step t ≡ 0 (mod `every_steps`) (None: never), the geometry of the gradient of each of the
    first `batches` minibatches of epoch 0's order, at w_t, before step t's update."""

    keys = ("epoch", "step", "batch")

    def __init__(self, every_steps: int | None, batches: int = 10):
        self.every_steps = every_steps
        self.count = batches

    def start(self, trainer: Trainer, references: dict[str, torch.Tensor], budgets: dict[str, int]) -> None:
        super().start(trainer, references, budgets)
        self.fixed = []
        if self.every_steps:
            # Drawing them may use the global generators (DataLoader workers' seeds): restored too.
            with preserved(trainer):
                self.fixed = list(itertools.islice(trainer.task.batches(0), self.count))

    def after_backward(self, loss: torch.Tensor, lr: float, weight_decay: float) -> None:
        trainer = self.trainer
        if not self.every_steps or trainer.step % self.every_steps:
            return
        for k, batch in enumerate(self.fixed):
            self.measure([batch], None, {"epoch": trainer.epoch, "step": trainer.step, "batch": k})


def measurements_from(settings: dict | None) -> tuple[FullBatchGeometry, FixedBatchGeometry]:
    """Both measurements from a run's settings (pathgeo.planning.config.Plan.measurements); absent ones never measure."""
    settings = settings or {}
    full = settings.get("full_batch_geometry") or {}
    fixed = settings.get("fixed_batch_geometry") or {}
    return FullBatchGeometry(full.get("every_epochs")), FixedBatchGeometry(
        fixed.get("every_steps"), fixed.get("batches", 10)
    )
