"""Datasets by kind: the registry of dataset kinds, and what the workflow does with a dataset (prepare it,
fingerprint it, load it for a run).

A dataset kind is declared by its module in this package (`KIND = DatasetKind(...)`), so adding one touches that
module and its test, nothing else: the config schema's `kind` enum and each kind's parameters, the models it
trains, whether full batch applies and the batch-size check all come from the entry.

Generated kinds are built once by prep and stored as tensors with a checksum:
- mnist1d.py       MNIST-1D, generated locally by the `mnist1d` package (no download)
- alm.py           the Asymmetric Linear Model of Section 6: samples x_i ~ N(0, I), y_i ~ N(0, 1)
- sm.py            the Sinusoidal Mixture of Section 6: coefficients a_i ~ N(0, 1)
- random_walk.py   the isotropic random walk of equation (8); no stored data beyond its dimension
External kinds stay where they are; prep records a fingerprint of their files, checked again by every job:
- cifar10.py       CIFAR-10 (torchvision's CIFAR10)
- imagenet.py      ImageNet-1K (torchvision's ImageFolder)
- corpus.py        word corpora: WikiText-2/103, Penn Treebank
- vaihingen.py     Vaihingen (ISPRS 2D semantic labeling; TIFF tiles read with Pillow)
- image_folder.py  the user's images in class folders (torchvision's ImageFolder), resized and cropped
- tensors.py       the user's tensors: a .pt file holding x_train, y_train, x_test, y_test
Shared: task.py (the Task base that each kind's Task extends), files.py (fingerprints of files, DatasetError).

Nothing here downloads unless a kind's config asks for it (CIFAR-10's `download: true`): every loader reads files
already on disk, in the layout their publishers ship, through the library a researcher would use anyway. Any
problem with the files (missing, wrong folder layout, truncated or corrupt) is raised as ONE `DatasetError` whose
message names the path and says what was expected there, instead of a torchvision or unpickling traceback.

Randomness follows the contract in docs/design.md: every random draw comes from a `torch.Generator` built by
`pathgeo.training.randomness.generator(*parts)` from (seed, purpose, epoch, ...), never from global RNG state, so a replay
that starts at any epoch draws exactly the same splits, crops, flips and patches.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from pathgeo.atomic import write_json, write_torch
from pathgeo.registry import discover, lookup
from pathgeo.training.data.files import fingerprint_changes, sha256_file
from pathgeo.training.spec import DataSpec

if TYPE_CHECKING:
    from pathgeo.training.data.task import Task


class DataError(RuntimeError):
    """Prepared data is missing, corrupt or does not match its manifest. The message names the file."""


@dataclass(frozen=True)
class DatasetKind:
    """A kind of dataset, named by `datasets.<name>.kind` in the config.

    - `task`: the Task class a run on it trains (its batches, loss and evaluation);
    - `input`: what it feeds a model (or a function of its parameters that says, where they size the samples); it
      trains the models whose `input` this is (pathgeo.training.models), and plug-in models;
    - `params`, `required`: the JSON schema of its parameters in the config (besides `kind`), and the required ones;
    - generated kinds: `build(params)`, the tensors that prep stores;
    - external kinds: `fingerprint(root, params)`, what identifies its files under the dataset's root;
      `load(root, params)`, what its task is built from; `fetch(root, params)` (optional), which prep calls first
      to make missing files present;
    - `full_batch`: its training set is finite and resident, so full-batch gradient descent applies;
    - `train_size(params)`: its number of training samples, where the config gives it, for the batch-size check;
    - `data_parallel`: its Task splits each minibatch by rank (`Task.shard`), so a run on it can train on several
      devices.
    """

    name: str
    task: type[Task]
    input: str | Callable[[dict], str]
    params: Mapping[str, Any]
    required: tuple[str, ...]
    build: Callable[[dict], dict[str, torch.Tensor]] | None = None
    fingerprint: Callable[[Path, dict], dict] | None = None
    load: Callable[[Path, dict], Any] | None = None
    fetch: Callable[[Path, dict], None] | None = None
    full_batch: bool = False
    train_size: Callable[[dict], int] | None = None
    data_parallel: bool = False

    def __post_init__(self) -> None:
        if (self.build is None) == (self.fingerprint is None or self.load is None):
            raise ValueError(f"dataset kind '{self.name}': give either build (generated) or fingerprint and load")

    @property
    def external(self) -> bool:
        return self.build is None

    def provides(self, params: dict) -> str:
        """The input it feeds a model with these parameters."""
        return self.input(params) if callable(self.input) else self.input


@cache
def kinds() -> dict[str, DatasetKind]:
    """Every dataset kind, by name, as the modules of this package declare them."""
    return discover(__name__, "KIND")


def kind(name: str) -> DatasetKind:
    return lookup(kinds(), name, "dataset kind")


def build(data: DataSpec) -> dict[str, torch.Tensor]:
    entry = kind(data.kind)
    if entry.external:
        raise ValueError(f"dataset kind '{data.kind}' is external: prep fingerprints it, there is nothing to build")
    return entry.build(data.params)


def save(tensors: dict[str, torch.Tensor], data: DataSpec, tensors_path: Path, manifest_path: Path) -> None:
    """Write the tensors, then a manifest with their checksum; the manifest is the proof of completion."""
    write_torch(tensors_path, tensors)
    write_json(
        manifest_path,
        {
            "dataset": data.canonical(),
            "sha256": sha256_file(Path(tensors_path)),
            "shapes": {k: list(v.shape) for k, v in tensors.items()},
        },
    )


def load(tensors_path: Path, manifest_path: Path, data: DataSpec | None = None) -> dict[str, torch.Tensor]:
    tensors_path, manifest_path = Path(tensors_path), Path(manifest_path)
    for path in (tensors_path, manifest_path):
        if not path.exists():
            raise DataError(f"{path}: prepared data is missing; run the prep rule for this dataset")
    manifest = json.loads(manifest_path.read_text())
    actual = sha256_file(tensors_path)
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


def external_fingerprint(data: DataSpec, data_root: str | Path) -> dict:
    entry = kind(data.kind)
    if not entry.external:
        raise ValueError(f"dataset kind '{data.kind}' is generated, not external")
    return entry.fingerprint(dataset_root(data, data_root), data.params)


def save_fingerprint(data: DataSpec, data_root: str | Path, manifest_path: Path) -> None:
    """The prep of an external dataset: its manifest names the root and fingerprints what is there.

    A kind's `fetch` runs first: CIFAR-10 with `download: true` is fetched by torchvision where it is missing (the
    machine needs internet for that; the cluster presets leave it off and expect the extracted batches)."""
    entry = kind(data.kind)
    if entry.fetch is not None:
        entry.fetch(dataset_root(data, data_root), data.params)
    write_json(
        manifest_path,
        {
            "dataset": data.canonical(),
            "root": str(dataset_root(data, data_root)),
            "fingerprint": external_fingerprint(data, data_root),
        },
    )


def _load_external(data: DataSpec, data_root: str | Path, manifest_path: Path) -> Any:
    manifest_path = Path(manifest_path)
    if not manifest_path.exists():
        raise DataError(f"{manifest_path}: dataset manifest is missing; run the prep rule for this dataset")
    manifest = json.loads(manifest_path.read_text())
    root = dataset_root(data, data_root)
    live = external_fingerprint(data, data_root)
    if live["digest"] != manifest["fingerprint"]["digest"]:
        changes = fingerprint_changes(manifest["fingerprint"], live) or ["the fingerprint's digest"]
        listed = "; ".join(changes[:5]) + (f"; and {len(changes) - 5} more" if len(changes) > 5 else "")
        raise DataError(
            f"{root}: the dataset changed since prep fingerprinted it in {manifest_path}: {listed}. Results "
            "computed from the old data would not match the new. Put the old files back, or, if the change is "
            f"meant, fingerprint it again and rerun what used it: snakemake --forcerun {manifest_path}"
        )
    return kind(data.kind).load(root, data.params)


def load_for_run(data: DataSpec, data_root: str | Path, tensors_path: Path | None, manifest_path: Path) -> Any:
    """What a run's task is built from: tensors for generated kinds, loaded datasets for external ones."""
    if kind(data.kind).external:
        return _load_external(data, data_root, manifest_path)
    return load(tensors_path, manifest_path, data)
