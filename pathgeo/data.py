"""Dataset preparation: build each generated dataset once and store it as tensors with a checksum; record a
fingerprint of each external dataset (CIFAR-10, ImageNet, word corpora, Vaihingen), which stays where it is.

Kinds of the embedded default:
- `mnist1d`: MNIST-1D generated locally by the `mnist1d` package (no download).
- `alm`: the Asymmetric Linear Model of Section 6: samples (x_i, y_i) with x_i ~ N(0, I), y_i ~ N(0, 1).
- `sm`: the Sinusoidal Mixture of Section 6: coefficients a_i ~ N(0, 1).
- `random_walk`: the isotropic random walk of equation (8); it needs no stored data beyond its dimension.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from pathgeo import datasets
from pathgeo.atomic import write_json, write_torch
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
EXTERNAL_KINDS = ("cifar10", "imagenet", "corpus", "vaihingen")


def build(data: DataSpec) -> dict[str, torch.Tensor]:
    return BUILDERS[data.kind](data.params)


def save(tensors: dict[str, torch.Tensor], data: DataSpec, tensors_path: Path, manifest_path: Path) -> None:
    """Write the tensors, then a manifest with their checksum; the manifest is the proof of completion."""
    write_torch(tensors_path, tensors)
    write_json(
        manifest_path,
        {
            "dataset": data.canonical(),
            "sha256": datasets.sha256_file(Path(tensors_path)),
            "shapes": {k: list(v.shape) for k, v in tensors.items()},
        },
    )


def load(tensors_path: Path, manifest_path: Path, data: DataSpec | None = None) -> dict[str, torch.Tensor]:
    tensors_path, manifest_path = Path(tensors_path), Path(manifest_path)
    for path in (tensors_path, manifest_path):
        if not path.exists():
            raise DataError(f"{path}: prepared data is missing; run the prep rule for this dataset")
    manifest = json.loads(manifest_path.read_text())
    actual = datasets.sha256_file(tensors_path)
    if actual != manifest["sha256"]:
        raise DataError(
            f"{tensors_path}: checksum {actual[:12]}… does not match {manifest_path} ({manifest['sha256'][:12]}…); "
            "the file is corrupt or was changed: delete both and rerun prep"
        )
    if data is not None and manifest["dataset"] != data.canonical():
        raise DataError(f"{manifest_path}: prepared for {manifest['dataset']}, but the run asks for {data.canonical()}")
    return torch.load(tensors_path, weights_only=True)


def dataset_root(data: DataSpec, data_root: str | Path) -> Path:
    return Path(data_root) / data.params["path"]


def _vaihingen_ids(params: dict) -> tuple[list[int], list[int]]:
    return (
        list(params.get("train_ids", datasets.VAIHINGEN_TRAIN_IDS)),
        list(params.get("val_ids", datasets.VAIHINGEN_VAL_IDS)),
    )


def external_fingerprint(data: DataSpec, data_root: str | Path) -> dict:
    root, params = dataset_root(data, data_root), data.params
    if data.kind == "cifar10":
        return datasets.cifar10_fingerprint(root)
    if data.kind == "imagenet":
        return datasets.imagenet_fingerprint(root)
    if data.kind == "corpus":
        return datasets.corpus_fingerprint(root, params["files"])
    if data.kind == "vaihingen":
        train_ids, val_ids = _vaihingen_ids(params)
        return datasets.vaihingen_fingerprint(root, train_ids + val_ids)
    raise ValueError(f"dataset kind '{data.kind}' is generated, not external")


def save_fingerprint(data: DataSpec, data_root: str | Path, manifest_path: Path) -> None:
    """The prep of an external dataset: its manifest names the root and fingerprints what is there.

    CIFAR-10 with `download: true` is fetched first by torchvision where it is missing (the machine needs
    internet for that; the cluster presets leave it off and expect the extracted batches)."""
    if data.kind == "cifar10" and data.params.get("download", False):
        from torchvision.datasets import CIFAR10

        CIFAR10(dataset_root(data, data_root), train=True, download=True)
    write_json(
        manifest_path,
        {
            "dataset": data.canonical(),
            "root": str(dataset_root(data, data_root)),
            "fingerprint": external_fingerprint(data, data_root),
        },
    )


def _load_external(data: DataSpec, data_root: str | Path, manifest_path: Path):
    manifest_path = Path(manifest_path)
    if not manifest_path.exists():
        raise DataError(f"{manifest_path}: dataset manifest is missing; run the prep rule for this dataset")
    manifest = json.loads(manifest_path.read_text())
    root = dataset_root(data, data_root)
    live = external_fingerprint(data, data_root)
    if live["digest"] != manifest["fingerprint"]["digest"]:
        raise DataError(
            f"{root}: the dataset changed since prep fingerprinted it in {manifest_path}; results computed "
            "from the old data would not match: rerun from prep (snakemake --forcerun prep)"
        )
    params = data.params
    if data.kind == "cifar10":
        checksums = None if params.get("verify_md5", True) else {name: None for name in datasets.CIFAR10_FILES}
        return datasets.load_cifar10(root, params["split_seed"], params["val_fraction"], checksums=checksums)
    if data.kind == "imagenet":
        return datasets.load_imagenet(root)
    if data.kind == "corpus":
        return datasets.load_corpus(root, params["files"])
    train_ids, val_ids = _vaihingen_ids(params)
    return datasets.load_vaihingen(root, train_ids), datasets.load_vaihingen(root, val_ids)


def load_for_run(
    data: DataSpec, data_root: str | Path, tensors_path: Path | None, manifest_path: Path
):
    """What a run's task is built from: tensors for generated kinds, loaded datasets for external ones."""
    if data.kind in EXTERNAL_KINDS:
        return _load_external(data, data_root, manifest_path)
    return load(tensors_path, manifest_path, data)
