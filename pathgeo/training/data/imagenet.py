"""ImageNet-1K from its `train/` and `val/` class folders, read by torchvision's `ImageFolder`, with pytorch/examples'
transforms: RandomResizedCrop(224) + RandomHorizontalFlip for training, Resize(256) + CenterCrop(224) for
validation, ImageNet mean/std. Every item's augmentation is drawn from (seed, epoch, index).
"""

from __future__ import annotations

import math
import os
import traceback
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

import torch
from torch import Tensor

from pathgeo.training.data import DatasetKind
from pathgeo.training.data.files import DatasetError, fingerprint
from pathgeo.training.data.task import Batch, Classification
from pathgeo.training.randomness import generator as seeded_generator

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


def _layout(what: str) -> str:
    return f"one sub-folder per class (n01440764/, ...) holding that class's images ({what})"


def _folder_error(path: Path, what: str) -> DatasetError | None:
    """What is wrong with a split folder's layout (missing, or images not sorted into class folders), or None.
    The fingerprint (prep) asks as well as the loader, so the first job that meets it says what is wrong."""
    from torchvision.datasets.folder import IMG_EXTENSIONS

    if not path.is_dir():
        return DatasetError(f"{path}: missing; expected {_layout(what)}")
    entries = list(os.scandir(path))
    if any(e.is_dir() for e in entries):
        return None
    loose = [e.name for e in entries if e.is_file() and e.name.lower().endswith(IMG_EXTENSIONS)]
    hint = (
        f"; it holds {len(loose)} images directly: sort them into class folders first (for ImageNet's val/, e.g. "
        "with the valprep.sh script of pytorch/examples)"
        if loose
        else ""
    )
    return DatasetError(f"{path}: no class folders; expected {_layout(what)}{hint}")


SPLITS = {"train": "training images", "val": "validation images, in the same class folders as train/"}


def _image_folder(path: Path, what: str):
    from torchvision.datasets import ImageFolder

    error = _folder_error(path, what)
    if error is not None:
        raise error
    try:
        return ImageFolder(str(path))
    except FileNotFoundError as exc:
        # "Found no valid file for the classes a, b. Supported extensions are: ..."
        raise DatasetError(f"{path}: empty class folder(s): {exc}") from exc


def train_val_folders(root: Path, name: str = "ImageNet"):
    """`root/train` and `root/val` as torchvision ImageFolders (no transform), checked: both there, class folders
    in both, the same classes (ImageFolder numbers classes by sorted folder name). `name` says whose root."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: {name} root not found; expected a folder holding train/ and val/")
    train = _image_folder(root / "train", SPLITS["train"])
    val = _image_folder(root / "val", SPLITS["val"])
    if train.classes != val.classes:
        only_train = sorted(set(train.classes) - set(val.classes))[:5]
        only_val = sorted(set(val.classes) - set(train.classes))[:5]
        raise DatasetError(
            f"{root / 'val'}: its class folders differ from {root / 'train'}'s (only in train: {only_train}, "
            f"only in val: {only_val}); both must hold the same classes"
        )
    return train, val


def load_imagenet(root: Path, num_classes: int | None = None) -> tuple[ImageNetSplit, ImageNetSplit]:
    """ImageNet-1K from `root/train` and `root/val` (class sub-folders in both): (train, val) with paper transforms.
    `num_classes` (1000 for ImageNet-1K) is checked when given."""
    root = Path(root)
    train, val = train_val_folders(root)
    if num_classes is not None and len(train.classes) != num_classes:
        raise DatasetError(f"{root / 'train'}: {len(train.classes)} class folders, expected {num_classes}")
    return ImageNetSplit(train, train=True), ImageNetSplit(val, train=False)


def imagenet_fingerprint(root: Path, name: str = "ImageNet") -> dict:
    """The class folders of train/ and val/ (names only), after the layout checks the loader makes too."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: {name} root not found; expected a folder holding train/ and val/")
    for split, what in SPLITS.items():
        error = _folder_error(root / split, what)
        if error is not None:
            raise error
    return fingerprint(root, [], [root / split for split in SPLITS])


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
    """Batches of (images float32 N x 3 x 224 x 224, labels int64 N) in exactly the given `order`, `batch_size`
    at a time (the epoch's order itself comes from the caller: the data-order generator of the contract)."""
    pieces = torch.as_tensor(order).split(batch_size)
    return imagenet_loader(
        dataset, [p for p in pieces if not drop_last or len(p) == batch_size], epoch, seed, num_workers, pin_memory
    )


def imagenet_loader(
    dataset: ImageNetSplit,
    batches: Sequence[Tensor],
    epoch: int,
    seed: int,
    num_workers: int = 0,
    pin_memory: bool = False,
) -> OrderedBatches:
    """One batch per entry of `batches` (item indices). The batch sampler yields ItemKey(seed, epoch, index) for
    each index; each item's augmentation depends on its key only, and DataLoader returns batches in sampler
    order, so the batches are identical for any `num_workers`, and an item is augmented alike in any batch."""
    keys = [[ItemKey(seed, epoch, int(i)) for i in batch.tolist()] for batch in batches]
    loader = torch.utils.data.DataLoader(dataset, batch_sampler=keys, num_workers=num_workers, pin_memory=pin_memory)
    return OrderedBatches(loader)


class ImageNet(Classification):
    """ImageNet from its folders through DataLoader workers; every item's augmentation is seeded by
    (seed, epoch, index), so batches are the same for any number of workers."""

    def load(self, splits) -> None:
        self.train_split, self.val_split = splits
        self.num_classes = len(self.train_split.classes)
        self.workers = self.spec.data.params.get("workers", 0)

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(len(self.train_split) / self.spec.batch_size)

    def batches(self, epoch: int) -> Iterator[Batch]:
        # This rank's part of each minibatch: the workers read only the images this rank trains on.
        parts = list(self.index_batches(epoch, len(self.train_split), torch.device("cpu")))
        loader = imagenet_loader(
            self.train_split, parts, epoch, self.spec.seed, self.workers, pin_memory=self.device.type == "cuda"
        )
        for x, y in loader:
            yield x.to(self.device, self.dtype, non_blocking=True), y.to(self.device, non_blocking=True)

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        order = torch.arange(len(self.val_split))
        loader = imagenet_batches(self.val_split, order, self.spec.batch_size, 0, self.spec.seed, self.workers)
        return self._evaluate_batches((x.to(self.device, self.dtype), y.to(self.device)) for x, y in loader)


KIND = DatasetKind(
    name="imagenet",
    task=ImageNet,
    input="image224",
    params={
        "path": {"type": "string", "description": "below data_root; holds train/ and val/ class folders"},
        "workers": {"type": "integer", "minimum": 0, "description": "data-loading processes"},
    },
    required=("path",),
    fingerprint=lambda root, params: imagenet_fingerprint(root),
    load=lambda root, params: load_imagenet(root),
    data_parallel=True,
)
