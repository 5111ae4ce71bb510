"""The measurements that need no reference point, taken by reference training itself: the loss, the LR,
‖G‖, grad_corr, mean_grad_corr, sign_flip and the h x h matrices. A run that only such experiments use
trains once and is never replayed (for the second paper's 1500-epoch full-batch runs, half the GPU time).

Reference training runs a probe without references (pathgeo.engine.probe) and restarts it at every checkpoint,
exactly where a replay segment would start, so that every value (nulls included) equals the replay's:
both runs take the same trajectory and the fused pass computes the gradient's products in a loop of its
own, the same with or without references. The tables of the finished segments travel in each checkpoint
(as Arrow IPC bytes), so a reference job killed and resumed from its last checkpoint ends with the same
tables as an uninterrupted one.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

import torch

from pathgeo.engine.probe import Probe

if TYPE_CHECKING:
    import polars as pl

    from pathgeo.training.loop import Trainer

STATE_KEY = "w_star_free"


class TrainingCorrelations:
    """An observer of reference training: a w*-free probe per segment between checkpoints. `settings` are
    the correlation settings (window, matrix_epochs); `state` a checkpoint's entry to resume from."""

    def __init__(self, trainer: Trainer, settings: dict[str, Any], state: dict[str, torch.Tensor] | None = None):
        self.trainer = trainer
        self.settings = settings
        self.steps = _table(state["steps"]) if state else None
        self.matrices = _table(state["matrices"]) if state else None
        self._start()

    def _start(self) -> None:
        trainer, matrix_epochs = self.trainer, self.settings["matrix_epochs"]
        self.probe = Probe(
            trainer.flat,
            {},
            steps_per_epoch=trainer.task.steps_per_epoch,
            start_step=trainer.step,
            start_epoch=trainer.epoch,
            window=self.settings["window"],
            lagged="off",
            matrix_epochs=None if matrix_epochs == "all" else matrix_epochs,
        )

    def after_backward(self, loss: torch.Tensor, lr: float, weight_decay: float) -> None:
        self.probe.after_backward(loss, lr, weight_decay)

    def end_epoch(self, epoch: int) -> None:
        self.probe.end_epoch(epoch)

    def checkpoint(self) -> dict[str, dict[str, torch.Tensor]]:
        """Close the segment that ends at this checkpoint, start the next; the checkpoint's entry."""
        import polars as pl

        steps, matrices = self.probe.finish(), self.probe.correlation_matrices()
        self.steps = steps if self.steps is None else pl.concat([self.steps, steps])
        self.matrices = matrices if self.matrices is None else pl.concat([self.matrices, matrices])
        self._start()
        return {STATE_KEY: {"steps": _bytes(self.steps), "matrices": _bytes(self.matrices)}}


def _bytes(table: pl.DataFrame) -> torch.Tensor:
    buffer = io.BytesIO()
    table.write_ipc(buffer)
    return torch.frombuffer(bytearray(buffer.getvalue()), dtype=torch.uint8)


def _table(data: torch.Tensor) -> pl.DataFrame:
    import polars as pl

    return pl.read_ipc(io.BytesIO(data.numpy().tobytes()))


def tables(state: dict | None, run_id: str, epochs: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The run's per-step table and matrices from its final checkpoint `state`, with the columns of a
    replay's (reference 'final' at the run's `epochs`, the steps to it, the run id); empty tables when the
    training measured nothing (its run is replayed)."""
    import polars as pl

    from pathgeo.columns import METRICS

    if state is None or STATE_KEY not in state:
        steps = pl.DataFrame(schema={"epoch": pl.Int64, "step": pl.Int64, **{m: pl.Float64 for m in METRICS}})
        matrices = pl.DataFrame(
            schema={
                "epoch": pl.Int64,
                "start_step": pl.Int64,
                "i": pl.Int64,
                "j": pl.Int64,
                "corr": pl.Float64,
                "sign_flip": pl.Float64,
            }
        )
    else:
        steps, matrices = _table(state[STATE_KEY]["steps"]), _table(state[STATE_KEY]["matrices"])
    steps = steps.select(pl.lit("final").alias("reference"), pl.all()).with_columns(
        pl.lit(run_id).alias("run_id"),
        pl.lit(epochs, dtype=pl.Int64).alias("budget"),
        (pl.lit(state["step"] if state else 0, dtype=pl.Int64) - pl.col("step")).alias("steps_to_reference"),
    )
    return steps, matrices.with_columns(pl.lit(run_id).alias("run_id"))
