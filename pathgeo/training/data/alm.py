"""The Asymmetric Linear Model of Section 6: samples (x_i, y_i) with x_i ~ N(0, I), y_i ~ N(0, 1), and a one-sided
hinge loss: convex, but very noisy."""

from __future__ import annotations

import numpy as np
import torch

from pathgeo.training.data import DatasetKind
from pathgeo.training.data.task import Batch, StepLoss, Task


def build(params: dict) -> dict[str, torch.Tensor]:
    rng = np.random.default_rng(params["seed"])
    n = params["n_train"] + params["n_test"]
    x = rng.standard_normal((n, params["dim"]))
    y = rng.standard_normal(n)
    n_train = params["n_train"]
    return {
        "x_train": torch.from_numpy(x[:n_train]).float(),
        "y_train": torch.from_numpy(y[:n_train]).float(),
        "x_test": torch.from_numpy(x[n_train:]).float(),
        "y_test": torch.from_numpy(y[n_train:]).float(),
    }


class AsymmetricLinear(Task):
    """ALM: minibatch RMSE of the one-sided hinge max(0, w·x − y): convex, but very noisy."""

    def loss(self, batch: Batch) -> StepLoss:
        x, y = batch
        residual = torch.relu(self.model(x).squeeze(1) - y)
        return StepLoss(torch.sqrt(torch.mean(residual**2)), None, len(y))


KIND = DatasetKind(
    name="alm",
    task=AsymmetricLinear,
    input="alm",
    params={
        "n_train": {"type": "integer", "minimum": 1},
        "n_test": {"type": "integer", "minimum": 1},
        "dim": {"type": "integer", "minimum": 1},
        "seed": {"type": "integer", "minimum": 0},
    },
    required=("n_train", "n_test", "dim", "seed"),
    build=build,
    full_batch=True,
    train_size=lambda params: params["n_train"],
    data_parallel=True,
)
