"""The `image_folder` dataset kind: the user's images in torchvision's ImageFolder layout, on tiny JPEGs the tests
write (tests/fake_data.py), read by the real torchvision ImageFolder; in-process and through Snakemake."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import fake_data
import pytest
import torch
import yaml
from test_paper_data import base_config, defaults
from workflow_runner import run_snakemake

from pathgeo.jobs.reference import train_reference
from pathgeo.jobs.replay import replay_segment
from pathgeo.planning.config import build_plan
from pathgeo.training import data
from pathgeo.training.data.files import DatasetError
from pathgeo.training.data.image_folder import load_image_folder
from pathgeo.training.loop import build_trainer
from pathgeo.training.spec import DataSpec, RunSpec

CPU = torch.device("cpu")
CLASSES = ("cat", "dog", "eel")
KIND = data.kind("image_folder")


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("images") / "pets"
    fake_data.write_imagenet(root, classes=CLASSES, per_class=2, size=(48, 36))  # 48 x 36: not square
    return root


@pytest.fixture
def folder_copy(folder, tmp_path) -> Path:
    return Path(shutil.copytree(folder, tmp_path / "pets"))


def spec(params: dict, **fields) -> RunSpec:
    run = dict(
        model="cifar_cnn",
        width=0,
        optimizer="momentum",
        lr=0.01,
        weight_decay=1e-4,
        schedule="constant",
        warmup_epochs=0,
        batch_size=2,
        epochs=2,
        seed=0,
        data_order_seed=0,
        precision="float32",
    )
    return RunSpec(data=DataSpec("pets", "image_folder", {"path": "pets", **params}), **{**run, **fields})


def test_images_are_torchvision_s_resize_and_centre_crop(folder):
    from torchvision import transforms
    from torchvision.datasets import ImageFolder

    loaded = load_image_folder(folder, {"crop": 16, "resize": 20})
    assert loaded["classes"] == list(CLASSES)
    for split, key in (("train", "train"), ("val", "test")):
        theirs = ImageFolder(
            str(folder / split),
            transform=transforms.Compose([transforms.Resize(20), transforms.CenterCrop(16), transforms.PILToTensor()]),
        )
        expected = torch.stack([image for image, _ in theirs])
        assert loaded[f"x_{key}"].dtype == torch.uint8 and loaded[f"x_{key}"].shape == (6, 3, 16, 16)
        assert torch.equal(loaded[f"x_{key}"], expected)
        assert loaded[f"y_{key}"].tolist() == theirs.targets == [0, 0, 1, 1, 2, 2]
    assert load_image_folder(folder, {"crop": 16})["x_train"].shape == (6, 3, 16, 16)  # resize defaults to crop


def test_the_crop_says_which_models_it_feeds():
    assert KIND.provides({"crop": 32}) == "image32"  # the CIFAR-10 models
    assert KIND.provides({"crop": 224}) == "image224"  # the ImageNet models


def test_batches_follow_the_randomness_contract_and_are_normalized(folder):
    run = spec({"crop": 32, "pad": 4, "flip": True})
    loaded = KIND.load(folder, run.data.params)
    one, two = build_trainer(run, loaded, CPU).task, build_trainer(run, loaded, CPU).task
    for epoch in (0, 1):
        for (xa, ya), (xb, yb) in zip(one.batches(epoch), two.batches(epoch), strict=True):
            assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert not torch.equal(next(one.batches(0))[0], next(one.batches(1))[0])
    assert one.num_classes == 3 and one.model.classifier.out_features == 3
    # Without augmentation the training images, normalized by their own statistics, have mean 0 and std 1.
    x = torch.cat([chunk for chunk, _ in one.full_batch_chunks()]).double()
    torch.testing.assert_close(x.mean(dim=(0, 2, 3)), torch.zeros(3, dtype=torch.float64), atol=1e-5, rtol=0)
    torch.testing.assert_close(x.std(dim=(0, 2, 3)), torch.ones(3, dtype=torch.float64), atol=1e-5, rtol=0)
    given = build_trainer(spec({"crop": 32, "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}), loaded, CPU).task
    x, _ = next(given.full_batch_chunks())
    torch.testing.assert_close(x, (loaded["x_train"][:2].float() / 255 - 0.5) / 0.25)


def test_reference_and_replay_are_bit_identical(folder, deterministic_single_thread):
    run = spec({"crop": 32, "pad": 2, "flip": True})
    loaded = KIND.load(folder, run.data.params)
    states: dict[int, dict] = {}
    train_reference(run, loaded, CPU, (0, 2), lambda epoch, state: states.__setitem__(epoch, state))
    _, _, fidelity = replay_segment(run, loaded, CPU, states[0], states[2], {"final": (2, states[2])}, 0.0)
    assert fidelity.relative_drift == 0.0


def test_layout_errors_name_the_folder(folder_copy, tmp_path):
    with pytest.raises(
        DatasetError, match="nowhere: image folder root not found; expected a folder holding train/ and val/"
    ):
        load_image_folder(tmp_path / "nowhere", {"crop": 8})
    shutil.rmtree(folder_copy / "val" / "eel")
    with pytest.raises(DatasetError, match=r"val: its class folders differ .*only in train: \['eel'\]"):
        load_image_folder(folder_copy, {"crop": 8})
    shutil.rmtree(folder_copy / "val")
    with pytest.raises(DatasetError, match="val: missing; expected one sub-folder per class"):
        load_image_folder(folder_copy, {"crop": 8})


def test_a_corrupt_image_is_named(folder_copy):
    broken = sorted((folder_copy / "train" / "dog").iterdir())[0]
    broken.write_bytes(b"not an image" * 10)
    with pytest.raises(DatasetError, match=rf"{broken.name}: cannot decode this image"):
        load_image_folder(folder_copy, {"crop": 8})


def test_fingerprint_sees_the_class_folders(folder_copy):
    before = KIND.fingerprint(folder_copy, {"crop": 8})
    shutil.copy(next((folder_copy / "train" / "cat").iterdir()), folder_copy / "train" / "cat" / "more.JPEG")
    assert KIND.fingerprint(folder_copy, {"crop": 8})["digest"] != before["digest"]


@pytest.mark.slow
def test_through_snakemake_with_a_torchvision_model(folder, tmp_path):
    data_root = tmp_path / "data"
    shutil.copytree(folder, data_root / "pets")
    config = {
        **base_config(data_root),
        "datasets": {
            "pets": {"kind": "image_folder", "path": "pets", "crop": 32, "resize": 36, "flip": True, "pad": 2}
        },
        "defaults": defaults("pets", "torchvision:mobilenet_v3_small", batch_size=3),
    }
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(config))
    result = run_snakemake(tmp_path / "work", "--configfile", str(config_path), "--cores", "2")
    assert result.returncode == 0, result.stderr[-4000:]
    (run_id,) = build_plan(config).runs
    replay = tmp_path / "work" / "results" / "runs" / run_id / "replay"
    fidelities = sorted(replay.glob("*.fidelity.json"))
    assert len(fidelities) == 2 and all(json.loads(f.read_text())["relative_drift"] == 0.0 for f in fidelities)
