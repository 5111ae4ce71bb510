"""Dataset preparation: build each dataset once, store it as tensors with a checksum.

Kinds of the embedded default:
- `mnist1d`: MNIST-1D generated locally by the `mnist1d` package (no download).
- `alm`: the Asymmetric Linear Model of Section 6: samples (x_i, y_i) with x_i ~ N(0, I), y_i ~ N(0, 1).
- `sm`: the Sinusoidal Mixture of Section 6: coefficients a_i ~ N(0, 1).
- `random_walk`: the isotropic random walk of equation (8); it needs no stored data beyond its dimension.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch

from pathgeo.atomic import write_json, write_with
from pathgeo.spec import DataSpec


class DataError(RuntimeError):
    """Prepared data is missing, corrupt or does not match its manifest. The message names the file."""


def _mnist1d(params: dict) -> dict[str, torch.Tensor]:
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


def _alm(params: dict) -> dict[str, torch.Tensor]:
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


def _sm(params: dict) -> dict[str, torch.Tensor]:
    rng = np.random.default_rng(params["seed"])
    return {"a": torch.from_numpy(rng.standard_normal(params["dim"])).float()}


def _random_walk(params: dict) -> dict[str, torch.Tensor]:
    return {}


BUILDERS = {"mnist1d": _mnist1d, "alm": _alm, "sm": _sm, "random_walk": _random_walk}


def build(data: DataSpec) -> dict[str, torch.Tensor]:
    return BUILDERS[data.kind](data.params)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save(tensors: dict[str, torch.Tensor], data: DataSpec, tensors_path: Path, manifest_path: Path) -> None:
    """Write the tensors, then a manifest with their checksum; the manifest is the proof of completion."""
    write_with(tensors_path, lambda tmp: torch.save(tensors, tmp))
    write_json(
        manifest_path,
        {
            "dataset": data.canonical(),
            "sha256": _sha256(Path(tensors_path)),
            "shapes": {k: list(v.shape) for k, v in tensors.items()},
        },
    )


def load(tensors_path: Path, manifest_path: Path, data: DataSpec | None = None) -> dict[str, torch.Tensor]:
    tensors_path, manifest_path = Path(tensors_path), Path(manifest_path)
    for path in (tensors_path, manifest_path):
        if not path.exists():
            raise DataError(f"{path}: prepared data is missing; run the prep rule for this dataset")
    manifest = json.loads(manifest_path.read_text())
    actual = _sha256(tensors_path)
    if actual != manifest["sha256"]:
        raise DataError(
            f"{tensors_path}: checksum {actual[:12]}… does not match {manifest_path} ({manifest['sha256'][:12]}…); "
            "the file is corrupt or was changed: delete both and rerun prep"
        )
    if data is not None and manifest["dataset"] != data.canonical():
        raise DataError(f"{manifest_path}: prepared for {manifest['dataset']}, but the run asks for {data.canonical()}")
    return torch.load(tensors_path, weights_only=True)
