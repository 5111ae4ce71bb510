"""The user's own images in torchvision's ImageFolder layout: `train/<class>/*.png|jpg|...` and `val/<class>/...`
below the dataset's path, the same class folders in both (classes are numbered by sorted folder name), read by
torchvision's `ImageFolder`.

Each image is decoded once, converted to RGB, its shorter side resized to `resize` (bilinear, antialiased) and
centre-cropped to `crop` x `crop` (torchvision's Resize + CenterCrop), then kept on the device as uint8, like
CIFAR-10: a training minibatch is augmented there, with offsets drawn from (seed, epoch, step), by a random crop
of the zero-padded image (`pad` pixels; 0: none) and, with `flip`, horizontal flips, then normalized by `mean` and
`std` (default: the training images' per-channel mean and standard deviation). Validation images are only
normalized. A dataset with `crop: 32` feeds the CIFAR-10 models (input image32), one with `crop: 224` the ImageNet
models (image224); plug-in models take any size. Meant for datasets that fit in memory; prep fingerprints the
class folders (file names and counts).
"""

from __future__ import annotations

from pathlib import Path

import torch

from pathgeo.training.data import DatasetKind
from pathgeo.training.data.cifar10 import ResidentImages
from pathgeo.training.data.imagenet import ImageNetSplit, imagenet_fingerprint, train_val_folders


def read_split(split: ImageNetSplit, resize: int, crop: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Every image of a split as uint8 (N, 3, crop, crop) after Resize(resize) + CenterCrop(crop), and its class."""
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as TF

    images = []
    for index in range(len(split)):
        image = TF.resize(split.load(index), resize, interpolation=InterpolationMode.BILINEAR, antialias=True)
        images.append(TF.pil_to_tensor(TF.center_crop(image, [crop, crop])))
    x = torch.stack(images) if images else torch.empty(0, 3, crop, crop, dtype=torch.uint8)
    return x, torch.tensor(split.targets, dtype=torch.long)


def load_image_folder(root: Path, params: dict) -> dict:
    train, val = train_val_folders(root, "image folder")
    crop = params["crop"]
    resize = params.get("resize", crop)
    x_train, y_train = read_split(ImageNetSplit(train, train=False), resize, crop)
    x_test, y_test = read_split(ImageNetSplit(val, train=False), resize, crop)
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test, "classes": train.classes}


class ImageFolderTask(ResidentImages):
    purpose = "image-folder-augment"

    def load(self, data: dict) -> None:
        self.x_train, self.y_train = data["x_train"].to(self.device), data["y_train"].to(self.device)
        self.x_test, self.y_test = data["x_test"].to(self.device), data["y_test"].to(self.device)
        self.num_classes = len(data["classes"])
        params = self.spec.data.params
        pixels = data["x_train"].double().div(255.0)
        self.mean = params.get("mean", pixels.mean(dim=(0, 2, 3)).tolist())
        self.std = params.get("std", pixels.std(dim=(0, 2, 3)).clamp_min(1e-6).tolist())
        self.pad, self.flip = params.get("pad", 0), params.get("flip", False)


def _fingerprint(root: Path, params: dict) -> dict:
    return imagenet_fingerprint(root, "image folder")


CHANNEL_VALUES = {"type": "array", "minItems": 3, "maxItems": 3, "items": {"type": "number"}}

KIND = DatasetKind(
    name="image_folder",
    task=ImageFolderTask,
    input=lambda params: f"image{params['crop']}",
    params={
        "path": {"type": "string", "description": "below data_root; holds train/ and val/, one sub-folder per class"},
        "crop": {"type": "integer", "minimum": 1, "description": "the centre crop's side, in pixels"},
        "resize": {"type": "integer", "minimum": 1, "description": "the shorter side before the crop (default: crop)"},
        "pad": {
            "type": "integer",
            "minimum": 0,
            "description": "training: random crops of the image padded by this (default 0)",
        },
        "flip": {"type": "boolean", "description": "training: random horizontal flips (default false)"},
        "mean": {**CHANNEL_VALUES, "description": "per-channel mean of [0, 1] pixels (default: the training images')"},
        "std": {**CHANNEL_VALUES, "description": "per-channel std of [0, 1] pixels (default: the training images')"},
    },
    required=("path", "crop"),
    fingerprint=_fingerprint,
    load=load_image_folder,
    full_batch=True,
    data_parallel=True,
)
