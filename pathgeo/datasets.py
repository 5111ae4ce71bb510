"""Loaders for the paper's real datasets: CIFAR-10, ImageNet-1K, WikiText-2/103 and Penn Treebank, Vaihingen.

Nothing here downloads: every loader reads files that are already on disk, in the layout their publishers ship,
through the library a researcher would use anyway (torchvision's `CIFAR10` and `ImageFolder`, Pillow for TIFF).
Any problem with the files (missing, wrong folder layout, truncated or corrupt) is raised as ONE `DatasetError`
whose message names the path and says what was expected there, instead of a torchvision or unpickling traceback.

Randomness follows the contract in DESIGN.md: every random draw here comes from a `torch.Generator` built by
`pathgeo.randomness.generator(*parts)` from (seed, purpose, epoch, ...), never from global RNG state, so a replay
that starts at any epoch draws exactly the same splits, crops, flips and patches.

Sources of the choices below (Appendix A of the paper, and the authors' code at Hiroki11x/LossLandscapeGeometry):
- CIFAR-10: an 80/20 train/validation split of the 50k training images; training augmentation
  RandomCrop(32, padding=4) (zero padding; the authors' code has no horizontal flip), Normalize with
  mean (0.4914, 0.4822, 0.4465) and std (0.2023, 0.1994, 0.2010).
- ImageNet-1K: pytorch/examples' transforms (RandomResizedCrop(224) + RandomHorizontalFlip for training,
  Resize(256) + CenterCrop(224) for validation, ImageNet mean/std).
- Word corpora: pytorch/examples word_language_model `data.py` tokenization, but batch-first (see `batchify`).
- Vaihingen: Audebert et al.'s DeepNetsForEO layout and colour palette; tiles 1,3,5,7,11,13,15,17,21,23,26 for
  training and 28,30,32,34,37 for validation (the authors' `main_segmentation.py`); random 256x256 patches with
  flip and mirror, 10,000 per training epoch and 1,000 for validation.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import pickle
import traceback
from array import array
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from pathgeo.randomness import generator as seeded_generator


class DatasetError(RuntimeError):
    """Dataset files are missing, laid out wrongly, truncated or corrupt. The message names the path."""


# ---------------------------------------------------------------------------------------------------------------
# Fingerprints
# ---------------------------------------------------------------------------------------------------------------

# Files up to this size are hashed completely (CIFAR-10's batches, WikiText-2 and PTB corpora, Vaihingen tiles);
# larger ones (WikiText-103's 540 MB training file) get a hash of their size, first and last MiB, which catches
# truncation, replacement and most edits while reading 2 MiB instead of the whole file.
FULL_HASH_MAX_BYTES = 64 << 20
_HEAD_TAIL_BYTES = 1 << 20


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _sha256_head_tail(path: Path, size: int) -> str:
    digest = hashlib.sha256(str(size).encode())
    with open(path, "rb") as f:
        digest.update(f.read(_HEAD_TAIL_BYTES))
        f.seek(max(0, size - _HEAD_TAIL_BYTES))
        digest.update(f.read(_HEAD_TAIL_BYTES))
    return digest.hexdigest()


def _relative(root: Path, path: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def fingerprint(
    root: Path,
    files: Sequence[Path],
    folders: Sequence[Path] = (),
    *,
    full_hash_max_bytes: int = FULL_HASH_MAX_BYTES,
) -> dict:
    """What identifies a dataset on disk, so a changed dataset changes the fingerprint; nothing is copied.

    - `files`: each gets its path relative to `root`, its size, and `sha256` of its content when it is at most
      `full_hash_max_bytes`, else `sha256_head_tail` (size + first and last MiB).
    - `folders`: class-per-subfolder trees (ImageNet's train/ and val/): each subfolder's file count and a sha256
      of its sorted file names. Names only, no per-file stat or read: 1.28M JPEGs are not hashed.
    `digest` is a sha256 of everything else, the one value to compare.
    """
    root = Path(root)
    entries = []
    for path in files:
        path = Path(path)
        if not path.is_file():
            raise DatasetError(f"{path}: expected a data file here, found none")
        size = path.stat().st_size
        entry: dict = {"path": _relative(root, path), "bytes": size}
        if size <= full_hash_max_bytes:
            entry["sha256"] = sha256_file(path)
        else:
            entry["sha256_head_tail"] = _sha256_head_tail(path, size)
        entries.append(entry)
    folder_entries = []
    for folder in folders:
        folder = Path(folder)
        if not folder.is_dir():
            raise DatasetError(f"{folder}: expected a folder of class sub-folders here, found none")
        classes = {}
        for sub in sorted(os.scandir(folder), key=lambda e: e.name):
            if not sub.is_dir():
                continue
            names = sorted(e.name for e in os.scandir(sub.path) if e.is_file())
            classes[sub.name] = {
                "files": len(names),
                "names_sha256": hashlib.sha256("\n".join(names).encode()).hexdigest(),
            }
        folder_entries.append({"path": _relative(root, folder), "classes": classes})
    body = {"files": entries, "folders": folder_entries}
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
    return {**body, "digest": digest}


# ---------------------------------------------------------------------------------------------------------------
# CIFAR-10
# ---------------------------------------------------------------------------------------------------------------

CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR10_TRAIN_FILES = ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5")
CIFAR10_TEST_FILES = ("test_batch",)
CIFAR10_META_FILE = "batches.meta"
CIFAR10_FILES = CIFAR10_TRAIN_FILES + CIFAR10_TEST_FILES + (CIFAR10_META_FILE,)

# The values of the authors' code (and of many public CIFAR-10 repositories). The std is not the per-pixel std
# of the training set ((0.2470, 0.2435, 0.2616)); it is kept because it is what the paper's runs used.
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2023, 0.1994, 0.2010)


def cifar10_files(root: Path) -> list[Path]:
    return [Path(root) / CIFAR10_FOLDER / name for name in CIFAR10_FILES]


def cifar10_fingerprint(root: Path) -> dict:
    return fingerprint(Path(root), cifar10_files(root))


def _cifar10_class(checksums: Mapping[str, str | None] | None) -> type:
    """torchvision's CIFAR10, or a subclass that expects other md5s (CIFAR100 subclasses CIFAR10 the same way).

    torchvision checks every batch file's md5 against the published archive even with download=False, so files
    written by tests (or re-pickled by anyone) fail its integrity check. A value of None skips the md5 check of
    that file (torchvision's `check_integrity` then only checks that it exists).
    """
    from torchvision.datasets import CIFAR10

    if checksums is None:
        return CIFAR10
    missing = [name for name in CIFAR10_FILES if name not in checksums]
    if missing:
        raise ValueError(f"checksums lacks {missing}; give an md5 (or None) for each of {list(CIFAR10_FILES)}")

    class _CIFAR10WithChecksums(CIFAR10):
        train_list = [[name, checksums[name]] for name, _ in CIFAR10.train_list]
        test_list = [[name, checksums[name]] for name, _ in CIFAR10.test_list]
        meta = {**CIFAR10.meta, "md5": checksums[CIFAR10.meta["filename"]]}

    return _CIFAR10WithChecksums


def _diagnose_cifar10(root: Path, cls: type, cause: BaseException) -> DatasetError:
    """Turn torchvision's 'Dataset not found or corrupted' (or an unpickling error) into an error naming a file."""
    from torchvision.datasets.utils import calculate_md5

    folder = root / CIFAR10_FOLDER
    expected = f"the python version of CIFAR-10 ({CIFAR10_FOLDER}/ with {', '.join(CIFAR10_FILES)})"
    if not root.is_dir():
        return DatasetError(f"{root}: CIFAR-10 root not found; expected a folder holding {expected}")
    if not folder.is_dir():
        if (root / "data_batch_1").exists():
            hint = f"; root points at the batches folder itself, give its parent (it must be named {CIFAR10_FOLDER})"
        elif any(root.glob("cifar-10-python.tar.gz")):
            hint = "; cifar-10-python.tar.gz is there but not extracted (tar xzf cifar-10-python.tar.gz)"
        elif (root / "cifar-10-batches-bin").is_dir():
            hint = "; cifar-10-batches-bin/ is the binary version, the loader needs the python version"
        else:
            hint = ""
        return DatasetError(f"{folder}: missing; expected {expected}{hint}")
    checks = [(name, md5) for name, md5 in cls.train_list + cls.test_list] + [
        (cls.meta["filename"], cls.meta["md5"])
    ]
    for name, md5 in checks:
        path = folder / name
        if not path.is_file():
            return DatasetError(f"{path}: missing; expected the CIFAR-10 python batch file {name} here")
        if md5 is not None:
            actual = calculate_md5(path)
            if actual != md5:
                return DatasetError(
                    f"{path}: md5 {actual} differs from the expected {md5}; the file is truncated, corrupt or not "
                    f"the python version of CIFAR-10 (size {path.stat().st_size} bytes): extract it again"
                )
    for name, _ in checks:
        path = folder / name
        try:
            with open(path, "rb") as f:
                entry = pickle.load(f, encoding="latin1")
        except Exception as exc:  # noqa: BLE001 — any unpickling failure means the same thing: a bad file
            return DatasetError(
                f"{path}: cannot be unpickled ({type(exc).__name__}: {exc}); expected a CIFAR-10 python batch "
                "(a pickled dict); the file is truncated or corrupt: extract it again"
            )
        keys = ("label_names",) if name == CIFAR10_META_FILE else ("data", "labels")
        if not isinstance(entry, dict) or any(k not in entry for k in keys):
            return DatasetError(f"{path}: a pickle without the CIFAR-10 keys {list(keys)}; not a CIFAR-10 batch file")
        if name != CIFAR10_META_FILE:
            data = np.asarray(entry["data"])
            if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(entry["labels"]) != data.shape[0]:
                return DatasetError(
                    f"{path}: data of shape {data.shape} with {len(entry['labels'])} labels; expected N x 3072 "
                    "uint8 rows (R, G, B planes of 32 x 32) and N labels"
                )
    return DatasetError(f"{folder}: torchvision could not load CIFAR-10 ({type(cause).__name__}: {cause})")


def _read_cifar10(root: Path, train: bool, checksums: Mapping[str, str | None] | None) -> tuple[Tensor, Tensor]:
    cls = _cifar10_class(checksums)
    try:
        ds = cls(str(root), train=train, download=False)
        data = np.asarray(ds.data)
        targets = np.asarray(ds.targets, dtype=np.int64)
        if data.shape[1:] != (32, 32, 3) or len(targets) != len(data):
            raise ValueError(f"data {data.shape} and {len(targets)} labels")
    except DatasetError:
        raise
    except Exception as exc:  # noqa: BLE001 — torchvision raises RuntimeError, pickle errors, EOFError, ValueError
        raise _diagnose_cifar10(root, cls, exc) from exc
    if targets.size and (targets.min() < 0 or targets.max() > 9):
        files = CIFAR10_TRAIN_FILES if train else CIFAR10_TEST_FILES
        raise DatasetError(f"{root / CIFAR10_FOLDER}: labels outside 0..9 in {', '.join(files)}")
    # torchvision stores HWC for PIL; models want NCHW.
    x = torch.from_numpy(np.ascontiguousarray(data.transpose(0, 3, 1, 2)))
    return x, torch.from_numpy(targets)


def load_cifar10(
    root: Path,
    split_seed: int,
    val_fraction: float = 0.2,
    *,
    checksums: Mapping[str, str | None] | None = None,
) -> dict[str, Tensor]:
    """CIFAR-10 from `root/cifar-10-batches-py` as uint8 N x 3 x 32 x 32 images and int64 labels.

    Returns x_train, y_train, x_val, y_val (the paper's 80/20 split of the 50k training images) and x_test, y_test
    (the 10k test images). The split is a permutation drawn from `generator(split_seed, "cifar10-split")`: the
    first (1 - val_fraction) of it is training, the rest validation, in permutation order (as `random_split`).
    The authors' code used `random_split(..., Generator().manual_seed(split_seed))`; the indices differ from theirs.

    `checksums` maps each file name to its expected md5 (None skips that file's md5); by default torchvision's
    published md5s of the real files, which is what a real dataset should be checked against.
    """
    root = Path(root)
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    x_all, y_all = _read_cifar10(root, True, checksums)
    x_test, y_test = _read_cifar10(root, False, checksums)
    n = len(x_all)
    n_val = int(round(n * val_fraction))
    perm = torch.randperm(n, generator=seeded_generator(split_seed, "cifar10-split"))
    train_idx, val_idx = perm[: n - n_val], perm[n - n_val :]
    return {
        "x_train": x_all[train_idx].contiguous(),
        "y_train": y_all[train_idx].contiguous(),
        "x_val": x_all[val_idx].contiguous(),
        "y_val": y_all[val_idx].contiguous(),
        "x_test": x_test,
        "y_test": y_test,
    }


class CropFlip(NamedTuple):
    """Per-sample parameters of `augment_batch`: crop offsets into the padded image and horizontal flips."""

    top: Tensor  # int64 (N,), in [0, 2 * pad]
    left: Tensor  # int64 (N,), in [0, 2 * pad]
    flip: Tensor  # bool (N,)


def draw_crop_flip(n: int, generator: torch.Generator, pad: int = 4, flip: bool = False) -> CropFlip:
    """Draw on the CPU, in a fixed order (tops, lefts, then flips), so the offsets do not depend on `flip`."""
    top = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    left = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    flips = (
        torch.randint(0, 2, (n,), generator=generator).bool() if flip else torch.zeros(n, dtype=torch.bool)
    )
    return CropFlip(top, left, flips)


def apply_crop_flip(x: Tensor, params: CropFlip, pad: int = 4) -> Tensor:
    """Crop each image of x (N, C, H, W) at its offset in the zero-padded batch, flipping where asked.

    One gather on x's device for the whole batch: index tensors (N, 1, H, 1) for rows and (N, 1, 1, W) for
    columns select from the padded batch; a flipped sample reads its columns in reverse.
    """
    n, c, h, w = x.shape
    device = x.device
    padded = F.pad(x, (pad, pad, pad, pad))  # constant zeros: black in pixel space
    rows = params.top[:, None] + torch.arange(h)  # (N, H)
    cols = params.left[:, None] + torch.arange(w)  # (N, W)
    cols = torch.where(params.flip[:, None], cols.flip(1), cols)
    batch = torch.arange(n, device=device)[:, None, None, None]
    channel = torch.arange(c, device=device)[None, :, None, None]
    return padded[batch, channel, rows.to(device)[:, None, :, None], cols.to(device)[:, None, None, :]]


def augment_batch(
    x: Tensor, generator: torch.Generator, pad: int = 4, flip: bool = False
) -> Tensor:
    """RandomCrop(H, padding=pad) (+ RandomHorizontalFlip if `flip`) for a whole batch at once, on x's device.

    Padding is with ZEROS, as torchvision's RandomCrop(32, padding=4) in pytorch/examples and the authors' code
    (airbench pads with reflection instead). Apply it to uint8 or [0, 1] float images BEFORE `normalize`: zeros
    are then black pixels, as in the reference pipeline (after normalization a zero is the mean colour).
    The paper's code does not flip CIFAR-10, hence `flip=False` by default. Offsets and flips are drawn on the
    CPU from `generator`, so the result is a pure function of (x, generator state) on any device.
    """
    if x.dim() != 4:
        raise ValueError(f"expected a batch N x C x H x W, got shape {tuple(x.shape)}")
    params = draw_crop_flip(x.shape[0], generator, pad, flip)
    return apply_crop_flip(x, params, pad)


def normalize(x: Tensor, mean: Sequence[float] = CIFAR10_MEAN, std: Sequence[float] = CIFAR10_STD) -> Tensor:
    """uint8 images are scaled to [0, 1] first (as ToTensor); float images are taken to be in [0, 1] already."""
    if not x.is_floating_point():
        x = x.float().div_(255.0)
    shape = (1, -1, 1, 1) if x.dim() == 4 else (-1, 1, 1)
    m = torch.tensor(mean, dtype=x.dtype, device=x.device).view(shape)
    s = torch.tensor(std, dtype=x.dtype, device=x.device).view(shape)
    return (x - m) / s


# ---------------------------------------------------------------------------------------------------------------
# ImageNet-1K
# ---------------------------------------------------------------------------------------------------------------

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_RRC_SCALE = (0.08, 1.0)
_RRC_RATIO = (3.0 / 4.0, 4.0 / 3.0)


class ItemKey(NamedTuple):
    """What the sampler hands the dataset: the augmentation of item `index` is a function of all three."""

    seed: int
    epoch: int
    index: int


def random_resized_crop_params(
    width: int,
    height: int,
    generator: torch.Generator,
    scale: tuple[float, float] = _RRC_SCALE,
    ratio: tuple[float, float] = _RRC_RATIO,
) -> tuple[int, int, int, int]:
    """torchvision's `RandomResizedCrop.get_params`, draw for draw, but from `generator` instead of global RNG.

    Same draws in the same order (uniform scale, uniform log-ratio, then randint top and left, up to 10 tries,
    then the centre-crop fallback), so with equal seeds it returns exactly what torchvision returns.
    """
    area = height * width
    log_ratio = torch.log(torch.tensor(ratio))
    for _ in range(10):
        target_area = area * torch.empty(1).uniform_(scale[0], scale[1], generator=generator).item()
        aspect_ratio = torch.exp(
            torch.empty(1).uniform_(log_ratio[0].item(), log_ratio[1].item(), generator=generator)
        ).item()
        w = int(round(math.sqrt(target_area * aspect_ratio)))
        h = int(round(math.sqrt(target_area / aspect_ratio)))
        if 0 < w <= width and 0 < h <= height:
            i = int(torch.randint(0, height - h + 1, size=(1,), generator=generator).item())
            j = int(torch.randint(0, width - w + 1, size=(1,), generator=generator).item())
            return i, j, h, w
    in_ratio = float(width) / float(height)
    if in_ratio < min(ratio):
        w = width
        h = int(round(w / min(ratio)))
    elif in_ratio > max(ratio):
        h = height
        w = int(round(h * max(ratio)))
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


def imagenet_train_transform(img, generator: torch.Generator, size: int = 224) -> Tensor:
    """RandomResizedCrop(size) + RandomHorizontalFlip() + ToTensor() + Normalize, drawing from `generator`."""
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as TF

    i, j, h, w = random_resized_crop_params(img.width, img.height, generator)
    img = TF.resized_crop(img, i, j, h, w, [size, size], interpolation=InterpolationMode.BILINEAR, antialias=True)
    if torch.rand(1, generator=generator) < 0.5:  # RandomHorizontalFlip(p=0.5) draws torch.rand(1) after the crop
        img = TF.hflip(img)
    return TF.normalize(TF.to_tensor(img), IMAGENET_MEAN, IMAGENET_STD)


def imagenet_val_transform(img, resize: int = 256, size: int = 224) -> Tensor:
    """Resize(256) + CenterCrop(224) + ToTensor() + Normalize; deterministic."""
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as TF

    img = TF.resize(img, resize, interpolation=InterpolationMode.BILINEAR, antialias=True)
    img = TF.center_crop(img, [size, size])
    return TF.normalize(TF.to_tensor(img), IMAGENET_MEAN, IMAGENET_STD)


class ImageNetSplit(torch.utils.data.Dataset):
    """One split of an ImageFolder tree with the paper's transforms; training items are keyed by `ItemKey`.

    `__getitem__(ItemKey(seed, epoch, index))` augments item `index` with a generator seeded by
    (seed, "imagenet-augment", epoch, index): no global RNG, no per-worker state, so batches are identical for any
    `num_workers` and any starting epoch. The validation split also accepts a plain index.
    """

    def __init__(self, folder, train: bool) -> None:
        self.folder = folder  # torchvision.datasets.ImageFolder without transform: we transform ourselves
        self.train = train
        self.root = Path(folder.root)
        self.classes: list[str] = folder.classes
        self.targets: list[int] = folder.targets

    def __len__(self) -> int:
        return len(self.folder.samples)

    def load(self, index: int):
        """The PIL image of item `index`, RGB; a file Pillow cannot decode is a DatasetError naming it."""
        path, _ = self.folder.samples[index]
        try:
            return self.folder.loader(path)
        except Exception as exc:  # noqa: BLE001 — UnidentifiedImageError, OSError('image file is truncated'), ...
            raise DatasetError(
                f"{path}: cannot decode this image ({type(exc).__name__}: {exc}); expected a readable JPEG/PNG "
                "(the file is truncated or corrupt: replace it from the original archive)"
            ) from exc

    def __getitem__(self, key: ItemKey | int) -> tuple[Tensor, int]:
        if isinstance(key, tuple):
            key = ItemKey(*key)
            index = key.index
        else:
            index = int(key)
        target = self.folder.samples[index][1]
        img = self.load(index)
        if not self.train:
            return imagenet_val_transform(img), target
        if not isinstance(key, ItemKey):
            raise TypeError(
                "the training split needs ItemKey(seed, epoch, index) keys so that its augmentation follows the "
                "randomness contract; iterate it with imagenet_batches"
            )
        return imagenet_train_transform(img, seeded_generator(key.seed, "imagenet-augment", key.epoch, index)), target


def _image_folder(path: Path, what: str):
    from torchvision.datasets import ImageFolder
    from torchvision.datasets.folder import IMG_EXTENSIONS

    layout = f"one sub-folder per class (n01440764/, ...) holding that class's images ({what})"
    if not path.is_dir():
        raise DatasetError(f"{path}: missing; expected {layout}")
    try:
        return ImageFolder(str(path))
    except FileNotFoundError as exc:
        if "class folder" in str(exc):
            loose = [e.name for e in os.scandir(path) if e.is_file() and e.name.lower().endswith(IMG_EXTENSIONS)]
            hint = (
                f"; it holds {len(loose)} images directly: sort them into class folders first (for ImageNet's "
                "val/, e.g. with the valprep.sh script of pytorch/examples)"
                if loose
                else ""
            )
            raise DatasetError(f"{path}: no class folders; expected {layout}{hint}") from exc
        # "Found no valid file for the classes a, b. Supported extensions are: ..."
        raise DatasetError(f"{path}: empty class folder(s): {exc}") from exc


def load_imagenet(root: Path, num_classes: int | None = None) -> tuple[ImageNetSplit, ImageNetSplit]:
    """ImageNet-1K from `root/train` and `root/val` (class sub-folders in both): (train, val) with paper transforms.

    The two splits must have the same class folders, since ImageFolder numbers classes by sorted folder name.
    `num_classes` (1000 for ImageNet-1K) is checked when given.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: ImageNet root not found; expected a folder holding train/ and val/")
    train = _image_folder(root / "train", "training images")
    val = _image_folder(root / "val", "validation images, in the same class folders as train/")
    if train.classes != val.classes:
        only_train = sorted(set(train.classes) - set(val.classes))[:5]
        only_val = sorted(set(val.classes) - set(train.classes))[:5]
        raise DatasetError(
            f"{root / 'val'}: its class folders differ from {root / 'train'}'s (only in train: {only_train}, "
            f"only in val: {only_val}); both must hold the same classes"
        )
    if num_classes is not None and len(train.classes) != num_classes:
        raise DatasetError(f"{root / 'train'}: {len(train.classes)} class folders, expected {num_classes}")
    return ImageNetSplit(train, train=True), ImageNetSplit(val, train=False)


def imagenet_fingerprint(root: Path) -> dict:
    return fingerprint(Path(root), [], [Path(root) / "train", Path(root) / "val"])


class OrderedBatches:
    """Iterable over a DataLoader's batches, with len(); see `imagenet_batches`.

    Why not the DataLoader itself: when a worker raises (a corrupt JPEG), the exception's traceback keeps the
    loader's iterator alive, and its worker shutdown then runs at the next garbage collection and waits 5 s
    for each worker. Clearing the traceback's frames here shuts the workers down at once; the message (which
    holds the worker's own traceback) is unchanged.
    """

    def __init__(self, loader: torch.utils.data.DataLoader) -> None:
        self.loader = loader

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        it = iter(self.loader)
        try:
            yield from it
        except BaseException as exc:
            traceback.clear_frames(exc.__traceback__)
            del it
            raise


def imagenet_batches(
    dataset: ImageNetSplit,
    order: Tensor | Sequence[int],
    batch_size: int,
    epoch: int,
    seed: int,
    num_workers: int = 0,
    *,
    drop_last: bool = False,
    pin_memory: bool = False,
) -> OrderedBatches:
    """Batches of (images float32 N x 3 x 224 x 224, labels int64 N) in exactly the given `order`.

    The sampler yields ItemKey(seed, epoch, index) for each index of `order`; each item's augmentation depends on
    its key only, and DataLoader returns batches in sampler order, so the batches are identical for any
    `num_workers`. The epoch's order itself comes from the caller (the data-order generator of the contract).
    """
    keys = [ItemKey(seed, epoch, int(i)) for i in (order.tolist() if isinstance(order, Tensor) else order)]
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=keys,
        num_workers=num_workers,
        drop_last=drop_last,
        pin_memory=pin_memory,
    )
    return OrderedBatches(loader)


# ---------------------------------------------------------------------------------------------------------------
# Word corpora: WikiText-2, WikiText-103, Penn Treebank
# ---------------------------------------------------------------------------------------------------------------

WIKITEXT_FILES = {"train": "wiki.train.tokens", "valid": "wiki.valid.tokens", "test": "wiki.test.tokens"}
PTB_FILES = {"train": "ptb.train.txt", "valid": "ptb.valid.txt", "test": "ptb.test.txt"}
EOS = "<eos>"
UNK = "<unk>"


@dataclass(frozen=True)
class Corpus:
    """Token ids of the three splits (int64, 1-D) and the vocabulary (id -> word) built from training only."""

    vocab: tuple[str, ...]
    train: Tensor
    valid: Tensor
    test: Tensor
    unk_id: int
    # Tokens of valid/test that are not in the training vocabulary and were mapped to <unk>, per split.
    # Zero on the real WikiText and PTB files, whose valid/test words all occur in training.
    unseen: dict[str, int] = field(default_factory=dict)

    @property
    def word2idx(self) -> dict[str, int]:
        return {w: i for i, w in enumerate(self.vocab)}

    def __len__(self) -> int:
        return len(self.vocab)


def _read_lines(path: Path) -> Iterator[list[str]]:
    # As pytorch/examples: utf-8, split on whitespace, one <eos> per line (blank lines give a lone <eos>).
    try:
        with open(path, encoding="utf8") as f:
            for line in f:
                yield line.split() + [EOS]
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path}: not valid UTF-8 text ({exc}); expected a tokenized corpus file") from exc


def _long_tensor(ids: array) -> Tensor:
    # array('q') grows without per-token Python objects (WikiText-103 has 103M tokens); one copy into torch.
    return torch.from_numpy(np.frombuffer(ids, dtype=np.int64).copy())


def load_corpus(root: Path, files: Mapping[str, str] = WIKITEXT_FILES) -> Corpus:
    """Read `root/files[split]` for train, valid and test, as pytorch/examples word_language_model `data.py`.

    One difference on purpose: the vocabulary comes from the TRAINING split only (pytorch/examples adds valid and
    test words too). Ids follow first appearance in training, so on the real WikiText/PTB files (where every
    valid/test word occurs in training) the ids and the vocabulary equal pytorch/examples'. A valid/test token
    unseen in training becomes <unk>, which the corpora already use; if training has no <unk>, it is appended
    as the last id. `Corpus.unseen` counts those tokens per split.
    Defaults: WikiText (`wiki.{train,valid,test}.tokens`); PTB_FILES for Penn Treebank.
    """
    root = Path(root)
    if set(files) != {"train", "valid", "test"}:
        raise ValueError(f"files must name train, valid and test, got {sorted(files)}")
    paths = {split: root / name for split, name in files.items()}
    missing = [str(p) for p in paths.values() if not p.is_file()]
    if missing:
        raise DatasetError(
            f"{missing[0]}: missing; expected the corpus files {', '.join(files.values())} in {root}"
            + (f" (also missing: {', '.join(missing[1:])})" if len(missing) > 1 else "")
        )
    word2idx: dict[str, int] = {}
    vocab: list[str] = []
    train_ids = array("q")
    for words in _read_lines(paths["train"]):
        for word in words:
            idx = word2idx.get(word)
            if idx is None:
                idx = word2idx[word] = len(vocab)
                vocab.append(word)
            train_ids.append(idx)
    if not any(w != EOS for w in vocab):
        raise DatasetError(f"{paths['train']}: no tokens; expected a tokenized training corpus")
    if UNK not in word2idx:
        word2idx[UNK] = len(vocab)
        vocab.append(UNK)
    unk = word2idx[UNK]
    splits = {"train": _long_tensor(train_ids)}
    unseen = {}
    for split in ("valid", "test"):
        ids = array("q")
        n_unseen = 0
        for words in _read_lines(paths[split]):
            for word in words:
                idx = word2idx.get(word)
                if idx is None:
                    idx, n_unseen = unk, n_unseen + 1
                ids.append(idx)
        splits[split] = _long_tensor(ids)
        unseen[split] = n_unseen
    return Corpus(tuple(vocab), splits["train"], splits["valid"], splits["test"], unk, unseen)


def corpus_fingerprint(root: Path, files: Mapping[str, str] = WIKITEXT_FILES) -> dict:
    return fingerprint(Path(root), [Path(root) / files[s] for s in ("train", "valid", "test")])


def batchify(tokens: Tensor, batch_size: int) -> Tensor:
    """BATCH-FIRST streams: (batch_size, L) with row n = tokens[n*L:(n+1)*L], L = len(tokens) // batch_size.

    pytorch/examples' `batchify` returns the TRANSPOSE, (L, batch_size), for its seq-first models (column n is
    stream n). Here row n is stream n, to match `batch_first=True` transformers: a batch is a column window
    `source[:, i:i+T]`, not a row window. Trailing tokens that do not fill a row are dropped, as there.
    """
    if tokens.dim() != 1:
        raise ValueError(f"expected a 1-D token tensor, got shape {tuple(tokens.shape)}")
    length = tokens.numel() // batch_size
    if length < 2:
        raise ValueError(f"{tokens.numel()} tokens cannot make {batch_size} streams of at least 2 tokens")
    return tokens[: batch_size * length].view(batch_size, length).contiguous()


def get_batch(source: Tensor, i: int, seq_len: int) -> tuple[Tensor, Tensor]:
    """Inputs source[:, i:i+T] and next-token targets source[:, i+1:i+1+T], both (N, T), T = min(seq_len, L-1-i).

    Unlike pytorch/examples the targets are NOT flattened: flatten logits (N, T, V) and targets (N, T) the same
    way (`logits.reshape(-1, V)`, `targets.reshape(-1)`), both row-major over (N, T).
    """
    t = min(seq_len, source.shape[1] - 1 - i)
    if t <= 0:
        raise IndexError(f"position {i} leaves no next-token target in streams of length {source.shape[1]}")
    return source[:, i : i + t], source[:, i + 1 : i + 1 + t]


def num_sequence_batches(source: Tensor, seq_len: int, drop_last: bool = False) -> int:
    usable = source.shape[1] - 1
    return usable // seq_len if drop_last else math.ceil(usable / seq_len)


def sequence_batches(source: Tensor, seq_len: int, drop_last: bool = False) -> Iterator[tuple[Tensor, Tensor]]:
    """All (inputs, targets) windows of a batchified source in order; the last is shorter unless `drop_last`."""
    for step in range(num_sequence_batches(source, seq_len, drop_last)):
        yield get_batch(source, step * seq_len, seq_len)


# ---------------------------------------------------------------------------------------------------------------
# Vaihingen (ISPRS 2D semantic labeling)
# ---------------------------------------------------------------------------------------------------------------

VAIHINGEN_TOP = "top/top_mosaic_09cm_area{}.tif"
VAIHINGEN_GT = "gts_for_participants/top_mosaic_09cm_area{}.tif"
# The authors' main_segmentation.py (Hiroki11x/LossLandscapeGeometry): 11 training and 5 validation tiles out of
# the 16 tiles the benchmark released with labels.
VAIHINGEN_TRAIN_IDS = (1, 3, 5, 7, 11, 13, 15, 17, 21, 23, 26)
VAIHINGEN_VAL_IDS = (28, 30, 32, 34, 37)
# The 17 tiles the benchmark held back for testing (the other 17 of the 33). Their labels are not in
# gts_for_participants/ but in the later complete ground-truth release: pass its folder as `gt` for them.
VAIHINGEN_TEST_IDS = (2, 4, 6, 8, 10, 12, 14, 16, 20, 22, 24, 27, 29, 31, 33, 35, 38)
VAIHINGEN_CLASSES = ("impervious_surfaces", "building", "low_vegetation", "tree", "car", "clutter")
VAIHINGEN_PALETTE = (
    (255, 255, 255),  # impervious surfaces: white
    (0, 0, 255),  # building: blue
    (0, 255, 255),  # low vegetation: cyan
    (0, 255, 0),  # tree: green
    (255, 255, 0),  # car: yellow
    (255, 0, 0),  # clutter: red
)
UNDEFINED_COLOUR = (0, 0, 0)  # black: "undefined" in Audebert's palette (the eroded ground truth's boundaries)
_UNDEFINED_STORED = 255  # labels are stored as uint8 per tile; 255 marks undefined pixels
IGNORE_INDEX = -100  # undefined pixels in extracted patches: F.cross_entropy's default ignore_index


@dataclass
class VaihingenTiles:
    """Whole tiles in memory: images uint8 (3, H, W) and labels uint8 (H, W) (255 = undefined)."""

    ids: tuple[int, ...]
    images: list[Tensor]
    labels: list[Tensor]
    paths: list[tuple[Path, Path]]

    @property
    def shapes(self) -> list[tuple[int, int]]:
        return [tuple(img.shape[1:]) for img in self.images]


def vaihingen_paths(root: Path, tile_id: int, gt: str = VAIHINGEN_GT) -> tuple[Path, Path]:
    return Path(root) / VAIHINGEN_TOP.format(tile_id), Path(root) / gt.format(tile_id)


def _read_rgb_tiff(path: Path, what: str) -> np.ndarray:
    from PIL import Image

    if not path.is_file():
        raise DatasetError(f"{path}: missing; expected {what}")
    try:
        with Image.open(path) as img:
            img.load()
            mode = img.mode
            arr = np.asarray(img)
    except Exception as exc:  # noqa: BLE001 — Pillow raises UnidentifiedImageError, OSError, ValueError, ...
        raise DatasetError(
            f"{path}: cannot read this image ({type(exc).__name__}: {exc}); expected {what} (truncated or corrupt?)"
        ) from exc
    if mode != "RGB" or arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
        raise DatasetError(f"{path}: a {mode} image of shape {arr.shape}; expected {what} (8-bit, 3 channels)")
    return arr


def colours_to_labels(rgb: np.ndarray, path: Path, allow_undefined: bool = False) -> Tensor:
    """Colour-coded ground truth (H, W, 3) -> class ids uint8 (H, W); an unknown colour is an error naming `path`.

    Black (undefined) is an error too unless `allow_undefined`, then it becomes 255 (IGNORE_INDEX in patches).
    DeepNetsForEO silently maps unknown colours to class 0; here they stop the run.
    """
    code = (rgb[..., 0].astype(np.int32) << 16) | (rgb[..., 1].astype(np.int32) << 8) | rgb[..., 2].astype(np.int32)
    labels = np.full(code.shape, 254, dtype=np.uint8)
    colours = list(enumerate(VAIHINGEN_PALETTE))
    if allow_undefined:
        colours.append((_UNDEFINED_STORED, UNDEFINED_COLOUR))
    for cls, (r, g, b) in colours:
        labels[code == ((r << 16) | (g << 8) | b)] = cls
    unknown = labels == 254
    if unknown.any():
        ys, xs = np.nonzero(unknown)
        bad = sorted({tuple(int(v) for v in rgb[y, x]) for y, x in zip(ys[:1000], xs[:1000])})[:5]
        raise DatasetError(
            f"{path}: {int(unknown.sum())} pixels of colours outside the ISPRS palette, e.g. {bad} first at "
            f"row {int(ys[0])}, column {int(xs[0])}; expected only "
            + ", ".join(f"{name} {c}" for name, c in zip(VAIHINGEN_CLASSES, VAIHINGEN_PALETTE))
            + (" and undefined (0, 0, 0)" if allow_undefined else "")
        )
    return torch.from_numpy(labels)


def load_vaihingen(
    root: Path,
    ids: Sequence[int],
    *,
    gt: str = VAIHINGEN_GT,
    allow_undefined: bool = False,
) -> VaihingenTiles:
    """Read the RGB tiles `root/top/top_mosaic_09cm_area{id}.tif` and their colour-coded ground truth.

    "RGB" is the paper's word; the real Vaihingen `top` tiles are IRRG (near-infrared, red, green) false colour,
    used as they are (3 channels), as Audebert et al. do. `gt` is the ground-truth path pattern under root.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: Vaihingen root not found; expected top/ and gts_for_participants/ in it")
    images, labels, paths = [], [], []
    for tile_id in ids:
        top_path, gt_path = vaihingen_paths(root, tile_id, gt)
        img = _read_rgb_tiff(top_path, f"the 3-channel tile {tile_id} ({VAIHINGEN_TOP})")
        gt_rgb = _read_rgb_tiff(gt_path, f"the colour-coded ground truth of tile {tile_id} ({gt})")
        if img.shape != gt_rgb.shape:
            raise DatasetError(f"{gt_path}: ground truth {gt_rgb.shape[:2]} differs from {top_path} {img.shape[:2]}")
        images.append(torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))))
        labels.append(colours_to_labels(gt_rgb, gt_path, allow_undefined))
        paths.append((top_path, gt_path))
    return VaihingenTiles(tuple(int(i) for i in ids), images, labels, paths)


def vaihingen_fingerprint(root: Path, ids: Sequence[int], gt: str = VAIHINGEN_GT) -> dict:
    files = [p for tile_id in ids for p in vaihingen_paths(root, tile_id, gt)]
    return fingerprint(Path(root), files)


@dataclass(frozen=True)
class PatchPlan:
    """Where the patches of an epoch come from: tile, top-left corner, vertical flip, horizontal mirror."""

    tile: Tensor  # int64 (n,)
    top: Tensor  # int64 (n,)
    left: Tensor  # int64 (n,)
    flip: Tensor  # bool (n,): rows reversed (Audebert's "flip")
    mirror: Tensor  # bool (n,): columns reversed (Audebert's "mirror")
    size: int

    def __len__(self) -> int:
        return self.tile.numel()


def sample_patch_plan(
    shapes: Sequence[tuple[int, int]], n: int, size: int, generator: torch.Generator, augment: bool
) -> PatchPlan:
    """n patches: a tile uniformly at random (as DeepNetsForEO, not weighted by area), then a corner uniformly
    over all positions where the patch fits (DeepNetsForEO's randint(0, W - w - 1) never picks the last one),
    then a flip and a mirror with probability 1/2 each. Flips are drawn even when `augment` is False (and then
    discarded), so the positions do not depend on `augment`.
    """
    for k, (h, w) in enumerate(shapes):
        if h < size or w < size:
            raise ValueError(f"tile {k} of shape {(h, w)} is smaller than the {size} x {size} patch")
    tile = torch.randint(0, len(shapes), (n,), generator=generator)
    heights = torch.tensor([h for h, _ in shapes], dtype=torch.float64)[tile]
    widths = torch.tensor([w for _, w in shapes], dtype=torch.float64)[tile]
    # float64 uniforms times the number of positions, floored: exact enough for tiles of any real size.
    top = torch.floor(torch.rand(n, dtype=torch.float64, generator=generator) * (heights - size + 1)).long()
    left = torch.floor(torch.rand(n, dtype=torch.float64, generator=generator) * (widths - size + 1)).long()
    top = torch.minimum(top, (heights - size).long())
    left = torch.minimum(left, (widths - size).long())
    flip = torch.rand(n, generator=generator) < 0.5
    mirror = torch.rand(n, generator=generator) < 0.5
    if not augment:
        flip = torch.zeros_like(flip)
        mirror = torch.zeros_like(mirror)
    return PatchPlan(tile, top, left, flip, mirror, size)


def vaihingen_train_plan(tiles: VaihingenTiles, seed: int, epoch: int, n: int = 10_000, size: int = 256) -> PatchPlan:
    """The training patches of `epoch`: positions and flips from generator(seed, "vaihingen-patches", epoch)."""
    return sample_patch_plan(tiles.shapes, n, size, seeded_generator(seed, "vaihingen-patches", epoch), augment=True)


def vaihingen_val_plan(
    tiles: VaihingenTiles, seed: int, n: int = 1_000, size: int = 256, augment: bool = False
) -> PatchPlan:
    """Validation patches: the same for every epoch (generator(seed, "vaihingen-patches", "validation")).

    Unflipped by default. (In the authors' code validation patches are flipped too, because its `augmentation`
    flag is never read; pass augment=True to reproduce that.)
    """
    g = seeded_generator(seed, "vaihingen-patches", "validation")
    return sample_patch_plan(tiles.shapes, n, size, g, augment=augment)


def extract_patches(tiles: VaihingenTiles, plan: PatchPlan, indices: Sequence[int] | Tensor) -> tuple[Tensor, Tensor]:
    """Patches `indices` of the plan: images float32 (B, 3, S, S) in [0, 1] (as DeepNetsForEO: x / 255, no
    mean subtraction) and labels int64 (B, S, S) with IGNORE_INDEX where the ground truth is undefined."""
    s = plan.size
    xs, ys = [], []
    for k in indices.tolist() if isinstance(indices, Tensor) else indices:
        t, top, left = int(plan.tile[k]), int(plan.top[k]), int(plan.left[k])
        x = tiles.images[t][:, top : top + s, left : left + s]
        y = tiles.labels[t][top : top + s, left : left + s]
        if plan.flip[k]:
            x, y = x.flip(-2), y.flip(-2)
        if plan.mirror[k]:
            x, y = x.flip(-1), y.flip(-1)
        xs.append(x)
        ys.append(y)
    x = torch.stack(xs).float().div_(255.0)
    y = torch.stack(ys).long()
    y[y == _UNDEFINED_STORED] = IGNORE_INDEX
    return x, y


def vaihingen_batches(
    tiles: VaihingenTiles, plan: PatchPlan, batch_size: int = 10, drop_last: bool = True
) -> Iterator[tuple[Tensor, Tensor]]:
    """The plan's patches in order, `batch_size` at a time (the paper: 10; DeepNetsForEO drops the last)."""
    n = len(plan)
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        yield extract_patches(tiles, plan, range(start, min(start + batch_size, n)))
