"""pathgeo.measurements.lightning: measure drives two Lightning fits through the Observe callback, on the CPU.

The oracle is the same model, data and optimizer in a plain PyTorch loop measured by pathgeo.measure:
Lightning's loop does the same arithmetic (zero_grad, forward, backward, step), so the tables must be equal
bit for bit.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from polars.testing import assert_frame_equal
from torch import nn
from torch.nn import functional as F

L = pytest.importorskip("lightning")

from pathgeo.measurements.lightning import Observe  # noqa: E402 (only where lightning is installed)
from pathgeo.measurements.own_loop import PassesDiffer, measure  # noqa: E402

EPOCHS, SAMPLES, BATCH = 2, 64, 16

pytestmark = pytest.mark.usefixtures("deterministic_single_thread")


def network() -> nn.Module:
    return nn.Sequential(nn.Linear(10, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 3))


def loader() -> torch.utils.data.DataLoader:
    generator = torch.Generator().manual_seed(1)
    data = torch.utils.data.TensorDataset(
        torch.randn(SAMPLES, 10, generator=generator), torch.randint(0, 3, (SAMPLES,), generator=generator)
    )
    # In order: how often Lightning draws from a shuffling loader's generator is its own affair, and the
    # oracle loop must see the same batches.
    return torch.utils.data.DataLoader(data, batch_size=BATCH)


def optimizer(parameters) -> torch.optim.Optimizer:
    return torch.optim.AdamW(parameters, lr=1e-2, weight_decay=0.05)


class Classifier(L.LightningModule):
    def __init__(self, noise: torch.Generator | None = None):
        super().__init__()
        self.net = network()
        self.noise = noise

    def training_step(self, batch, batch_idx):
        x, y = batch
        if self.noise is not None:
            x = x + 1e-3 * torch.randn(x.shape, generator=self.noise)
        return F.cross_entropy(self.net(x), y)

    def configure_optimizers(self):
        return optimizer(self.parameters())


def fit(noise: torch.Generator | None = None, accumulate: int = 1):
    def run(observe):
        torch.manual_seed(0)
        module = Classifier(noise)
        trainer = L.Trainer(
            max_epochs=EPOCHS,
            accelerator="cpu",
            deterministic=True,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            accumulate_grad_batches=accumulate,
            callbacks=[Observe(observe)],
        )
        trainer.fit(module, loader())
        return module

    return run


def plain(observe, accumulate: int = 1):
    torch.manual_seed(0)
    model = network()
    opt = optimizer(model.parameters())
    data = loader()
    for _ in range(EPOCHS):
        loss = 0.0
        for i, (x, y) in enumerate(data):
            part = F.cross_entropy(model(x), y) / accumulate
            part.backward()
            loss = loss + part.detach()
            if (i + 1) % accumulate == 0:
                observe(model, loss, opt)
                opt.step()
                opt.zero_grad()
                loss = 0.0
        observe.end_epoch()
    return model


def test_a_lightning_fit_measures_as_the_same_plain_loop():
    lightning = measure(fit(), references=["final", 1])
    torch_only = measure(plain, references=["final", 1])
    assert lightning.steps.height == 2 * EPOCHS * SAMPLES // BATCH
    assert lightning.steps["gamma"].null_count() == 0
    assert_frame_equal(lightning.steps, torch_only.steps, check_exact=True)
    assert_frame_equal(lightning.matrices, torch_only.matrices, check_exact=True)


def test_accumulated_gradients_are_one_step_with_the_mean_loss():
    lightning = measure(fit(accumulate=2))
    torch_only = measure(lambda observe: plain(observe, accumulate=2))
    assert lightning.steps.height == EPOCHS * SAMPLES // BATCH // 2
    assert_frame_equal(lightning.steps, torch_only.steps, check_exact=True)


def test_a_fit_whose_second_pass_differs_is_refused():
    with pytest.raises(PassesDiffer, match="the two passes differ"):
        measure(fit(noise=torch.Generator()))


def test_without_lightning_the_import_says_which_extra_to_install():
    blocker = (
        "import sys\n"
        "class Missing:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'lightning':\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}')\n"
        "sys.meta_path.insert(0, Missing())\n"
        "import pathgeo.measurements.lightning\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", blocker],
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert "pathgeo.measurements.lightning needs the `lightning` package: pip install pathgeo[lightning]" in done.stderr
