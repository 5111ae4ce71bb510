"""pathgeo.measure for a LightningModule: a callback that calls `observe` from Lightning's hooks.

    import lightning as L
    import pathgeo
    from pathgeo.measurements.lightning import Observe

    def run(observe):
        L.seed_everything(0)
        module = MyModule()
        trainer = L.Trainer(max_epochs=5, deterministic=True, callbacks=[Observe(observe)], logger=False,
                            enable_checkpointing=False)
        trainer.fit(module, train_loader)
        return module

    result = pathgeo.measure(run)      # two fits, the check that the second repeated the first, the tables

Needs the optional extra: `pip install pathgeo[lightning]` (the `lightning` package; `pytorch_lightning`'s
Trainer takes its own callbacks, not these).

Lightning calls the hooks in the order `measure` asks for: `on_before_optimizer_step` comes after backward
(and after the gradient scaler's unscale) and before gradient clipping and the step, `on_train_epoch_end`
after each epoch. The step's loss is the one Lightning passes to backward; with accumulate_grad_batches = k
it passes each micro-batch's loss divided by k, and their sum is the step's mean loss.
"""

from __future__ import annotations

import torch

try:
    from lightning.pytorch import Callback, LightningModule, Trainer
except ModuleNotFoundError as missing:
    raise ModuleNotFoundError(
        "pathgeo.measurements.lightning needs the `lightning` package: pip install pathgeo[lightning]"
    ) from missing

from pathgeo.measurements.own_loop import Observer


class Observe(Callback):
    """Calls `observe(module, loss, optimizer)` before every optimizer step and `observe.end_epoch()` after
    every training epoch, for a module with one optimizer."""

    def __init__(self, observe: Observer):
        self.observe = observe
        self._loss: torch.Tensor | None = None

    def on_before_backward(self, trainer: Trainer, pl_module: LightningModule, loss: torch.Tensor) -> None:
        loss = loss.detach()
        self._loss = loss if self._loss is None else self._loss + loss

    def on_before_optimizer_step(
        self, trainer: Trainer, pl_module: LightningModule, optimizer: torch.optim.Optimizer
    ) -> None:
        if len(trainer.optimizers) != 1:
            raise ValueError(
                f"pathgeo measures one optimizer's path; configure_optimizers returned {len(trainer.optimizers)}"
            )
        if self._loss is None:
            raise RuntimeError(
                "Lightning passed no loss to backward before this optimizer step: under manual optimization call "
                "self.manual_backward(loss), not loss.backward()"
            )
        self.observe(pl_module, self._loss, optimizer)
        self._loss = None

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.observe.end_epoch()
