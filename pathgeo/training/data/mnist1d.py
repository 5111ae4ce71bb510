"""MNIST-1D, generated locally by the `mnist1d` package (no download): 40-value signals in 10 classes, the
embedded default's data."""

from __future__ import annotations

import torch

from pathgeo.training.data import DatasetKind
from pathgeo.training.data.task import Classification
from pathgeo.training.models.mnist1d import MNIST1D_CLASSES


def build(params: dict) -> dict[str, torch.Tensor]:
    from mnist1d.data import get_dataset_args, make_dataset

    n_train, n_test = params["n_train"], params["n_test"]
    args = get_dataset_args()
    args.num_samples = n_train + n_test
    args.train_split = n_train / (n_train + n_test)
    args.seed = params["seed"]
    raw = make_dataset(args)
    return {
        "x_train": torch.from_numpy(raw["x"]).float(),
        "y_train": torch.from_numpy(raw["y"]).long(),
        "x_test": torch.from_numpy(raw["x_test"]).float(),
        "y_test": torch.from_numpy(raw["y_test"]).long(),
    }


class Mnist1d(Classification):
    num_classes = MNIST1D_CLASSES


KIND = DatasetKind(
    name="mnist1d",
    task=Mnist1d,
    input="mnist1d",
    params={
        "n_train": {"type": "integer", "minimum": 10},
        "n_test": {"type": "integer", "minimum": 10},
        "seed": {"type": "integer", "minimum": 0},
    },
    required=("n_train", "n_test", "seed"),
    build=build,
    full_batch=True,
    train_size=lambda params: params["n_train"],
    data_parallel=True,
)
