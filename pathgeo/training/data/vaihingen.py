"""Vaihingen (ISPRS 2D semantic labeling) in Audebert et al.'s DeepNetsForEO layout and colour palette: tiles
1,3,5,7,11,13,15,17,21,23,26 for training and 28,30,32,34,37 for validation (the authors' `main_segmentation.py`);
random 256x256 patches with flip and mirror, 10,000 per training epoch and 1,000 for validation."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from pathgeo.training.data import DatasetKind
from pathgeo.training.data.files import DatasetError, fingerprint
from pathgeo.training.data.task import Batch, StepLoss, Task
from pathgeo.training.distributed import SINGLE, Shard
from pathgeo.training.randomness import generator as seeded_generator

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
        img = _read_rgb_tiff(top_path, _tile_what(tile_id))
        gt_rgb = _read_rgb_tiff(gt_path, _truth_what(tile_id, gt))
        if img.shape != gt_rgb.shape:
            raise DatasetError(f"{gt_path}: ground truth {gt_rgb.shape[:2]} differs from {top_path} {img.shape[:2]}")
        images.append(torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))))
        labels.append(colours_to_labels(gt_rgb, gt_path, allow_undefined))
        paths.append((top_path, gt_path))
    return VaihingenTiles(tuple(int(i) for i in ids), images, labels, paths)


def vaihingen_fingerprint(root: Path, ids: Sequence[int], gt: str = VAIHINGEN_GT) -> dict:
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: Vaihingen root not found; expected top/ and gts_for_participants/ in it")
    files = []
    for tile_id in ids:
        top_path, gt_path = vaihingen_paths(root, tile_id, gt)
        for path, what in ((top_path, _tile_what(tile_id)), (gt_path, _truth_what(tile_id, gt))):
            if not path.is_file():
                raise DatasetError(f"{path}: missing; expected {what}")
            files.append(path)
    return fingerprint(root, files)


def _tile_what(tile_id: int) -> str:
    return f"the 3-channel tile {tile_id} ({VAIHINGEN_TOP})"


def _truth_what(tile_id: int, gt: str) -> str:
    return f"the colour-coded ground truth of tile {tile_id} ({gt})"


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


class Segmentation(Task):
    """Vaihingen: random patches of the training tiles each epoch (positions and flips from (seed, epoch)),
    fixed patches of the validation tiles; the metric is pixel accuracy."""

    num_classes = len(VAIHINGEN_CLASSES)

    def load(self, tiles) -> None:
        self.train_tiles, self.val_tiles = tiles
        params = self.spec.data.params
        self.patch_size = params["patch_size"]
        self.patches = params["patches_per_epoch"]
        self.val_plan = vaihingen_val_plan(
            self.val_tiles, self.spec.seed, n=params.get("val_patches", 1000), size=self.patch_size
        )

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(self.patches / self.spec.batch_size)

    def _patch_batches(self, tiles, plan, shard: Shard = SINGLE) -> Iterator[Batch]:
        for index in torch.arange(len(plan)).split(self.spec.batch_size):
            x, y = extract_patches(tiles, plan, shard.part(index))
            yield x.to(self.device, self.dtype), y.to(self.device)

    def batches(self, epoch: int) -> Iterator[Batch]:
        plan = vaihingen_train_plan(self.train_tiles, self.spec.seed, epoch, self.patches, self.patch_size)
        return self._patch_batches(self.train_tiles, plan, self.shard)

    def loss(self, batch: Batch) -> StepLoss:
        x, y = batch
        logits = self.model(x)
        labelled = y != IGNORE_INDEX
        correct = ((logits.argmax(1) == y) & labelled).sum()
        return StepLoss(F.cross_entropy(logits, y, ignore_index=IGNORE_INDEX), correct, int(labelled.sum()))

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        metrics = self._evaluate_batches(self._patch_batches(self.val_tiles, self.val_plan))
        metrics["val_pixel_accuracy"] = metrics.pop("val_accuracy")
        return metrics


def _tile_ids(params: dict) -> tuple[list[int], list[int]]:
    return list(params.get("train_ids", VAIHINGEN_TRAIN_IDS)), list(params.get("val_ids", VAIHINGEN_VAL_IDS))


def _fingerprint(root: Path, params: dict) -> dict:
    train_ids, val_ids = _tile_ids(params)
    return vaihingen_fingerprint(root, train_ids + val_ids)


def _load(root: Path, params: dict) -> tuple[VaihingenTiles, VaihingenTiles]:
    train_ids, val_ids = _tile_ids(params)
    return load_vaihingen(root, train_ids), load_vaihingen(root, val_ids)


KIND = DatasetKind(
    name="vaihingen",
    task=Segmentation,
    input="segmentation",
    params={
        "path": {"type": "string", "description": "below data_root; holds top/ and gts_for_participants/"},
        "patch_size": {"type": "integer", "minimum": 8},
        "patches_per_epoch": {"type": "integer", "minimum": 1},
        "val_patches": {"type": "integer", "minimum": 1},
        "train_ids": {"type": "array", "items": {"type": "integer"}},
        "val_ids": {"type": "array", "items": {"type": "integer"}},
        "test_ids": {"type": "array", "items": {"type": "integer"}},
    },
    required=("path", "patch_size", "patches_per_epoch"),
    fingerprint=_fingerprint,
    load=_load,
    data_parallel=True,
)
