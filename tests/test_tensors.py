"""The `tensors` dataset kind: the user's own tensors in one .pt file (x_train, y_train, x_test, y_test)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from pathgeo.training import data
from pathgeo.training.data.files import DatasetError
from pathgeo.training.data.tensors import load_tensors
from pathgeo.training.loop import build_trainer
from pathgeo.training.spec import DataSpec, RunSpec

KIND = data.kind("tensors")
CPU = torch.device("cpu")


def tensors(n_train: int = 12, n_test: int = 4, classes: int = 3) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        "x_train": torch.randn(n_train, 5, generator=g),
        "y_train": torch.arange(n_train) % classes,
        "x_test": torch.randn(n_test, 5, generator=g),
        "y_test": torch.arange(n_test) % classes,
    }


def save(path: Path, content) -> Path:
    torch.save(content, path)
    return path


def test_round_trip_and_fingerprint(tmp_path):
    written = tensors()
    path = save(tmp_path / "mine.pt", {**written, "notes": torch.zeros(1)})
    loaded = KIND.load(path, {})
    assert sorted(loaded) == sorted(written) and all(torch.equal(loaded[k], written[k]) for k in written)
    before = KIND.fingerprint(path, {})
    assert before["files"][0]["path"] == "mine.pt" and "sha256" in before["files"][0]
    save(path, {**written, "y_test": torch.tensor([2, 1, 0, 0])})
    assert KIND.fingerprint(path, {})["digest"] != before["digest"]


@pytest.mark.parametrize(
    "content,message",
    [
        ([1, 2], "holds a list; expected a dict of tensors"),
        ({k: v for k, v in tensors().items() if k != "y_test"}, "has no 'y_test' .*expected a dict of tensors"),
        ({**tensors(), "x_test": [[0.0] * 5] * 4}, "'x_test' is a list, not a tensor"),
        (
            {**tensors(), "y_train": torch.zeros(11, dtype=torch.long)},
            r"'y_train' has shape \(11,\); expected one class id per sample of 'x_train' \(12,\)",
        ),
        ({**tensors(), "y_train": torch.zeros(12)}, "'y_train' is torch.float32; expected integer class ids"),
        ({**tensors(), "y_test": torch.tensor([0, -1, 0, 0])}, "'y_test' holds the negative class id -1"),
        ({**tensors(), "x_test": torch.zeros(4, 6)}, r"samples of 'x_train' are \(5,\), of 'x_test' \(6,\)"),
    ],
    ids=["not a dict", "missing key", "not a tensor", "too few labels", "float labels", "negative class", "shapes"],
)
def test_errors_name_the_file_and_the_key(tmp_path, content, message):
    path = save(tmp_path / "bad.pt", content)
    with pytest.raises(DatasetError, match=rf"{path}: {message}"):
        load_tensors(path)
    with pytest.raises(DatasetError, match=message):
        KIND.fingerprint(path, {})  # prep refuses it already


def test_a_missing_or_unreadable_file(tmp_path):
    with pytest.raises(DatasetError, match=r"nope.pt: no tensors file here; expected a dict of tensors: torch.save\("):
        load_tensors(tmp_path / "nope.pt")
    (tmp_path / "text.pt").write_text("hello")
    with pytest.raises(DatasetError, match="text.pt: cannot be read as a torch file"):
        load_tensors(tmp_path / "text.pt")


class Linear(nn.Module):
    def __init__(self, num_classes: int):
        super().__init__()
        self.fc = nn.Linear(5, num_classes)

    def forward(self, x):
        return self.fc(x)


def run_spec(params: dict) -> RunSpec:
    return RunSpec(
        data=DataSpec("mine", "tensors", {"path": "mine.pt", **params}),
        model="test_tensors:Linear",
        width=0,
        optimizer="sgd",
        lr=0.1,
        weight_decay=0.0,
        schedule="constant",
        warmup_epochs=0,
        batch_size=4,
        epochs=1,
        seed=0,
        data_order_seed=0,
        precision="float64",
    )


def test_the_task_counts_classes_and_trains(tmp_path):
    task = build_trainer(run_spec({}), tensors(classes=3), CPU).task
    assert task.num_classes == 3 and task.model.fc.out_features == 3
    assert task.x_train.dtype == torch.float64 and task.steps_per_epoch == 3
    assert build_trainer(run_spec({"num_classes": 7}), tensors(), CPU).task.model.fc.out_features == 7
    with pytest.raises(DatasetError, match="class id 2 in the tensors file, but num_classes is 2"):
        build_trainer(run_spec({"num_classes": 2}), tensors(classes=3), CPU)
    trainer = build_trainer(run_spec({}), tensors(), CPU)
    before = trainer.flat.weights.clone()
    trainer.train_epoch()
    assert not torch.equal(before, trainer.flat.weights)
