"""CIFAR-10 from the python version of its batches (`cifar-10-batches-py/`), read by torchvision's `CIFAR10`.

Sources of the choices (Appendix A of the paper, and the authors' code at Hiroki11x/LossLandscapeGeometry): an
80/20 train/validation split of the 50k training images; training augmentation RandomCrop(32, padding=4) (zero
padding; the authors' code has no horizontal flip), Normalize with mean (0.4914, 0.4822, 0.4465) and std
(0.2023, 0.1994, 0.2010).
"""

from __future__ import annotations

import pickle
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from pathgeo.training.data import DatasetKind
from pathgeo.training.data.files import DatasetError, fingerprint
from pathgeo.training.data.task import Batch, Classification
from pathgeo.training.randomness import generator as seeded_generator

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
    error = _layout_error(Path(root))
    if error is not None:
        raise error
    return fingerprint(Path(root), cifar10_files(root))


def _layout_error(root: Path) -> DatasetError | None:
    """What is missing under `root`, with a hint for the usual mistakes (the batches folder itself given, the
    tarball not extracted, the binary version); None when every file is there. The fingerprint (prep) and the
    loader both ask, so the first job that meets a wrong layout says what is wrong."""
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
    for name in CIFAR10_FILES:
        if not (folder / name).is_file():
            return DatasetError(f"{folder / name}: missing; expected the CIFAR-10 python batch file {name} here")
    return None


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

    layout = _layout_error(root)
    if layout is not None:
        return layout
    folder = root / CIFAR10_FOLDER
    checks = [(name, md5) for name, md5 in cls.train_list + cls.test_list] + [(cls.meta["filename"], cls.meta["md5"])]
    for name, md5 in checks:
        path = folder / name
        if md5 is not None:
            actual = calculate_md5(path)
            if actual != md5:
                return DatasetError(
                    f"{path}: md5 {actual} differs from the expected {md5} of the published archive; the file is "
                    f"truncated, corrupt or not the python version of CIFAR-10 (size {path.stat().st_size} bytes): "
                    "extract it again. A copy re-packed on purpose (same images, other bytes) is read with "
                    "`verify_md5: false` on this dataset in the config (datasets.<name>.verify_md5)"
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
        raise _label_error(root / CIFAR10_FOLDER, CIFAR10_TRAIN_FILES if train else CIFAR10_TEST_FILES)
    # torchvision stores HWC for PIL; models want NCHW.
    x = torch.from_numpy(np.ascontiguousarray(data.transpose(0, 3, 1, 2)))
    return x, torch.from_numpy(targets)


def _label_error(folder: Path, names: Sequence[str]) -> DatasetError:
    """The first batch file holding a label outside 0..9, with the label and its entry."""
    for name in names:
        with open(folder / name, "rb") as f:
            labels = np.asarray(pickle.load(f, encoding="latin1")["labels"], dtype=np.int64)
        bad = np.flatnonzero((labels < 0) | (labels > 9))
        if bad.size:
            return DatasetError(
                f"{folder / name}: label {int(labels[bad[0]])} at entry {int(bad[0])} is outside 0..9 (CIFAR-10 has "
                f"10 classes); {bad.size} of its {labels.size} labels {'is' if bad.size == 1 else 'are'} outside that "
                "range. The file is damaged or is not CIFAR-10's: download and extract CIFAR-10 again"
            )
    return DatasetError(f"{folder}: labels outside 0..9 in {', '.join(names)}")


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
    """Per-sample parameters of `apply_crop_flip`: crop offsets into the padded image and horizontal flips."""

    top: Tensor  # int64 (N,), in [0, 2 * pad]
    left: Tensor  # int64 (N,), in [0, 2 * pad]
    flip: Tensor  # bool (N,)

    def select(self, index: Tensor) -> CropFlip:
        return CropFlip(self.top[index], self.left[index], self.flip[index])

    def to(self, device: torch.device) -> CropFlip:
        return CropFlip(self.top.to(device), self.left.to(device), self.flip.to(device))


def draw_crop_flip(n: int, generator: torch.Generator, pad: int = 4, flip: bool = False) -> CropFlip:
    """Draw on the CPU, in a fixed order (tops, lefts, then flips), so the offsets do not depend on `flip`."""
    top = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    left = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    flips = torch.randint(0, 2, (n,), generator=generator).bool() if flip else torch.zeros(n, dtype=torch.bool)
    return CropFlip(top, left, flips)


def apply_crop_flip(x: Tensor, params: CropFlip, pad: int = 4) -> Tensor:
    """Crop each image of x (N, C, H, W) at its offset in the zero-padded batch, flipping where asked.

    One gather on x's device for the whole batch: index tensors (N, 1, H, 1) for rows and (N, 1, 1, W) for
    columns select from the padded batch; a flipped sample reads its columns in reverse.

    Padding is with ZEROS, as torchvision's RandomCrop(32, padding=4) in pytorch/examples and the authors' code
    (airbench pads with reflection instead). Apply it to uint8 or [0, 1] float images BEFORE `normalize`: zeros
    are then black pixels, as in the reference pipeline (after normalization a zero is the mean colour).
    """
    if x.dim() != 4:
        raise ValueError(f"expected a batch N x C x H x W, got shape {tuple(x.shape)}")
    n, c, h, w = x.shape
    device = x.device
    padded = F.pad(x, (pad, pad, pad, pad))  # constant zeros: black in pixel space
    rows = params.top[:, None] + torch.arange(h, device=params.top.device)  # (N, H)
    cols = params.left[:, None] + torch.arange(w, device=params.left.device)  # (N, W)
    cols = torch.where(params.flip[:, None], cols.flip(1), cols)
    batch = torch.arange(n, device=device)[:, None, None, None]
    channel = torch.arange(c, device=device)[None, :, None, None]
    return padded[batch, channel, rows.to(device)[:, None, :, None], cols.to(device)[:, None, None, :]]


def normalize(x: Tensor, mean: Sequence[float] = CIFAR10_MEAN, std: Sequence[float] = CIFAR10_STD) -> Tensor:
    """uint8 images are scaled to [0, 1] first (as ToTensor); float images are taken to be in [0, 1] already."""
    if not x.is_floating_point():
        x = x.float().div_(255.0)
    shape = (1, -1, 1, 1) if x.dim() == 4 else (-1, 1, 1)
    m = torch.tensor(mean, dtype=x.dtype, device=x.device).view(shape)
    s = torch.tensor(std, dtype=x.dtype, device=x.device).view(shape)
    return (x - m) / s


class ResidentImages(Classification):
    """Images resident on the device as uint8; each minibatch is cropped from the zero-padded images by `pad`
    pixels (and flipped, with `flip`) there, then normalized by `mean` and `std` (airbench's data path,
    torchvision's augmentation). Each epoch draws one crop and flip per training sample from (seed, `purpose`,
    epoch), in sample order, so sample i's augmentation in an epoch depends on (seed, epoch, i) only, not on the
    minibatch or the rank it falls to. A subclass's `load` sets the data and these."""

    purpose: str
    mean: Sequence[float]
    std: Sequence[float]
    pad: int
    flip: bool

    def batches(self, epoch: int) -> Iterator[Batch]:
        n = len(self.x_train)
        # Offsets are drawn on the CPU (the same numbers on any device), once per epoch: 3 numbers a sample.
        crops = draw_crop_flip(
            n, seeded_generator(self.spec.seed, self.purpose, epoch), pad=self.pad, flip=self.flip
        ).to(self.device)
        for index in self.index_batches(epoch, n, self.device):
            augmented = apply_crop_flip(self.x_train[index], crops.select(index), pad=self.pad)
            yield normalize(augmented, self.mean, self.std).to(self.dtype), self.y_train[index]

    def full_batch_chunks(self) -> Iterator[Batch]:
        for x, y in super().full_batch_chunks():
            yield normalize(x, self.mean, self.std).to(self.dtype), y

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        return self._evaluate_batches(
            (normalize(x, self.mean, self.std).to(self.dtype), y) for x, y in self._test_batches()
        )


class Cifar10(ResidentImages):
    """CIFAR-10 with the paper's random crop (padding 4), flips where the config asks, and its normalization.
    The paper's code does not flip CIFAR-10 (`flip: false`)."""

    num_classes = 10
    purpose = "cifar10-augment"
    mean, std, pad = CIFAR10_MEAN, CIFAR10_STD, 4

    def load(self, tensors: dict[str, torch.Tensor]) -> None:
        self.x_train = tensors["x_train"].to(self.device)
        self.y_train = tensors["y_train"].to(self.device)
        # Validation is the held-out 20% of the training set, as in the paper; the test set stays untouched.
        self.x_test = tensors["x_val"].to(self.device)
        self.y_test = tensors["y_val"].to(self.device)
        self.flip = self.spec.data.params["flip"]


def _load(root: Path, params: dict) -> dict[str, Tensor]:
    checksums = None if params.get("verify_md5", True) else {name: None for name in CIFAR10_FILES}
    return load_cifar10(root, params["split_seed"], params["val_fraction"], checksums=checksums)


def _fetch(root: Path, params: dict) -> None:
    if params.get("download", False):
        from torchvision.datasets import CIFAR10

        CIFAR10(root, train=True, download=True)


KIND = DatasetKind(
    name="cifar10",
    task=Cifar10,
    input="image32",
    params={
        "path": {"type": "string", "description": "below data_root; holds cifar-10-batches-py"},
        "split_seed": {"type": "integer", "minimum": 0, "description": "the fixed 80/20 train/validation split"},
        "val_fraction": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
        "flip": {"type": "boolean", "description": "random horizontal flips besides the random crop"},
        "download": {"type": "boolean", "description": "fetch with torchvision where missing (needs internet)"},
        "verify_md5": {
            "type": "boolean",
            "description": "check the files against torchvision's published md5s (default true)",
        },
    },
    required=("path", "split_seed", "val_fraction", "flip"),
    fingerprint=lambda root, params: cifar10_fingerprint(root),
    load=_load,
    fetch=_fetch,
    full_batch=True,
    data_parallel=True,
)
