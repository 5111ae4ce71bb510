"""The user's own data as tensors: one `.pt` file (`torch.save`) holding a dict with `x_train`, `y_train`, `x_test`
and `y_test`, the samples (N, ...) of any shape and their integer class ids (N,). It trains the models of the
user's own (`<module>:<callable>`) and torchvision's.

Classification with cross-entropy; the number of classes is `num_classes` where the config gives it, else the
largest class id in the file plus one. The samples are cast to the run's precision as they are and stay resident
on the device (no normalisation, no augmentation: the file holds what is trained on), so full batch applies.
Prep fingerprints the file (its sha256), and every job checks it again.
"""

from __future__ import annotations

from pathlib import Path

import torch

from pathgeo.training.data import DatasetKind
from pathgeo.training.data.files import DatasetError, fingerprint
from pathgeo.training.data.task import Classification

KEYS = ("x_train", "y_train", "x_test", "y_test")
LAYOUT = "a dict of tensors: torch.save({'x_train': ..., 'y_train': ..., 'x_test': ..., 'y_test': ...}, path)"


def load_tensors(path: Path) -> dict[str, torch.Tensor]:
    """The four tensors of a tensors file, checked: present, tensors, as many labels as samples, integer labels."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: no tensors file here; expected {LAYOUT}")
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise DatasetError(
            f"{path}: cannot be read as a torch file ({type(error).__name__}: {error}); expected {LAYOUT}"
        ) from error
    if not isinstance(content, dict):
        raise DatasetError(f"{path}: holds a {type(content).__name__}; expected {LAYOUT}")
    missing = [key for key in KEYS if key not in content]
    if missing:
        raise DatasetError(
            f"{path}: has no {', '.join(repr(k) for k in missing)} (it holds {sorted(content)}); expected {LAYOUT}"
        )
    for key in KEYS:
        if not isinstance(content[key], torch.Tensor):
            raise DatasetError(f"{path}: '{key}' is a {type(content[key]).__name__}, not a tensor")
    for split in ("train", "test"):
        x, y = content[f"x_{split}"], content[f"y_{split}"]
        if y.dim() != 1 or len(y) != len(x):
            raise DatasetError(
                f"{path}: 'y_{split}' has shape {tuple(y.shape)}; expected one class id per sample of 'x_{split}' "
                f"({len(x)},)"
            )
        if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
            raise DatasetError(f"{path}: 'y_{split}' is {y.dtype}; expected integer class ids (torch.long)")
        if len(y) and y.min() < 0:
            raise DatasetError(f"{path}: 'y_{split}' holds the negative class id {int(y.min())}")
    if len(content["x_train"]) == 0:
        raise DatasetError(f"{path}: 'x_train' holds no samples")
    if content["x_train"].shape[1:] != content["x_test"].shape[1:] and len(content["x_test"]):
        raise DatasetError(
            f"{path}: samples of 'x_train' are {tuple(content['x_train'].shape[1:])}, of 'x_test' "
            f"{tuple(content['x_test'].shape[1:])}; both must have the same shape"
        )
    return {key: content[key] for key in KEYS}


def tensors_fingerprint(path: Path) -> dict:
    """Checked first, so that a file without the four tensors fails at prep, naming what is missing."""
    load_tensors(path)
    return fingerprint(path.parent, [path])


class Tensors(Classification):
    def load(self, tensors: dict[str, torch.Tensor]) -> None:
        super().load({**tensors, "y_train": tensors["y_train"].long(), "y_test": tensors["y_test"].long()})
        largest = max(int(self.y_train.max()), int(self.y_test.max()) if len(self.y_test) else 0)
        self.num_classes = self.spec.data.params.get("num_classes", largest + 1)
        if largest >= self.num_classes:
            raise DatasetError(
                f"dataset '{self.spec.data.name}': class id {largest} in the tensors file, but num_classes is "
                f"{self.num_classes}; raise num_classes or leave it out"
            )


KIND = DatasetKind(
    name="tensors",
    task=Tensors,
    input="tensors",
    params={
        "path": {
            "type": "string",
            "description": "below data_root: the .pt file holding x_train, y_train, x_test, y_test",
        },
        "num_classes": {"type": "integer", "minimum": 2, "description": "default: the largest class id + 1"},
    },
    required=("path",),
    fingerprint=lambda root, params: tensors_fingerprint(root),
    load=lambda root, params: load_tensors(root),
    full_batch=True,
    data_parallel=True,
)
