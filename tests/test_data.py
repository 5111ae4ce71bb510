"""The dataset-kind registry and dataset preparation: builders, the saved tensors and their manifest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from pathgeo.training import data
from pathgeo.training.data import DataError, DatasetKind
from pathgeo.training.data.task import Task
from pathgeo.training.spec import DataSpec

MNIST = DataSpec("mnist1d", "mnist1d", {"n_train": 120, "n_test": 30, "seed": 42})
ALM = DataSpec("alm", "alm", {"n_train": 2000, "n_test": 500, "dim": 7, "seed": 0})
SM = DataSpec("sm", "sm", {"dim": 5000, "init_scale": 3.0, "steps_per_epoch": 10, "seed": 0})
WALK = DataSpec("walk", "random_walk", {"dim": 2000, "steps_per_epoch": 10})


@pytest.fixture(scope="module")
def mnist() -> dict[str, torch.Tensor]:
    return data.build(MNIST)


def _equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _saved(tmp_path: Path, spec: DataSpec, tensors: dict[str, torch.Tensor]) -> tuple[Path, Path]:
    tensors_path, manifest_path = tmp_path / spec.name / "tensors.pt", tmp_path / spec.name / "manifest.json"
    data.save(tensors, spec, tensors_path, manifest_path)
    return tensors_path, manifest_path


# ---------------------------------------------------------------------------------------------------------
# Builders
# ---------------------------------------------------------------------------------------------------------


def test_mnist1d_shapes_and_classes(mnist):
    assert mnist["x_train"].shape == (120, 40)
    assert mnist["x_test"].shape == (30, 40)
    assert mnist["y_train"].shape == (120,)
    assert mnist["y_test"].shape == (30,)
    assert mnist["x_train"].dtype == torch.float32
    assert mnist["y_train"].dtype == torch.int64
    assert set(mnist["y_train"].unique().tolist()) == set(range(10))
    assert set(mnist["y_test"].unique().tolist()) <= set(range(10))
    assert torch.isfinite(mnist["x_train"]).all() and torch.isfinite(mnist["x_test"]).all()


def test_mnist1d_is_deterministic_for_a_seed(mnist):
    assert _equal(data.build(MNIST), mnist)
    other = DataSpec(MNIST.name, MNIST.kind, {**MNIST.params, "seed": 43})
    assert not torch.equal(data.build(other)["x_train"], mnist["x_train"])


def test_mnist1d_train_and_test_are_disjoint(mnist):
    train = {tuple(row.tolist()) for row in mnist["x_train"]}
    assert not any(tuple(row.tolist()) in train for row in mnist["x_test"])


def test_alm_samples_standard_normal_inputs_and_targets():
    tensors = data.build(ALM)
    assert tensors["x_train"].shape == (2000, 7)
    assert tensors["x_test"].shape == (500, 7)
    assert tensors["y_train"].shape == (2000,)
    assert tensors["y_test"].shape == (500,)
    assert all(t.dtype == torch.float32 for t in tensors.values())
    x = torch.cat([tensors["x_train"], tensors["x_test"]]).double()
    y = torch.cat([tensors["y_train"], tensors["y_test"]]).double()
    # x_i ~ N(0, I), y_i ~ N(0, 1): moments within a few standard errors for 2500 samples.
    assert x.mean(0).abs().max() < 0.1
    assert (x.std(0) - 1).abs().max() < 0.1
    assert (torch.corrcoef(x.T) - torch.eye(7, dtype=torch.float64)).abs().max() < 0.1
    assert abs(y.mean()) < 0.1 and abs(y.std() - 1) < 0.1
    assert _equal(data.build(ALM), tensors)
    assert not _equal(data.build(DataSpec("alm", "alm", {**ALM.params, "seed": 1})), tensors)


def test_sm_draws_standard_normal_coefficients():
    tensors = data.build(SM)
    assert tensors.keys() == {"a"}
    a = tensors["a"].double()
    assert a.shape == (5000,)
    assert abs(a.mean()) < 0.1 and abs(a.std() - 1) < 0.1
    assert _equal(data.build(SM), tensors)
    assert not _equal(data.build(DataSpec("sm", "sm", {**SM.params, "seed": 1})), tensors)


def test_random_walk_needs_no_stored_data():
    assert data.build(WALK) == {}


# ---------------------------------------------------------------------------------------------------------
# Saving and loading
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", [MNIST, ALM, SM, WALK], ids=lambda s: s.kind)
def test_save_load_round_trip(tmp_path, spec):
    tensors = data.build(spec)
    tensors_path, manifest_path = _saved(tmp_path, spec, tensors)
    assert _equal(data.load(tensors_path, manifest_path, spec), tensors)
    assert _equal(data.load(tensors_path, manifest_path), tensors)
    manifest = json.loads(manifest_path.read_text())
    assert manifest["dataset"] == spec.canonical()
    assert manifest["shapes"] == {k: list(v.shape) for k, v in tensors.items()}
    assert len(manifest["sha256"]) == 64
    # Written atomically: no temporary files left beside the outputs.
    assert sorted(p.name for p in tensors_path.parent.iterdir()) == ["manifest.json", "tensors.pt"]


def test_corrupted_tensors_are_detected(tmp_path, mnist):
    tensors_path, manifest_path = _saved(tmp_path, MNIST, mnist)
    raw = bytearray(tensors_path.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    tensors_path.write_bytes(bytes(raw))
    with pytest.raises(DataError) as error:
        data.load(tensors_path, manifest_path, MNIST)
    assert str(tensors_path) in str(error.value)
    assert "checksum" in str(error.value)


@pytest.mark.parametrize("which", ["tensors", "manifest"])
def test_missing_file_is_named(tmp_path, mnist, which):
    tensors_path, manifest_path = _saved(tmp_path, MNIST, mnist)
    missing = tensors_path if which == "tensors" else manifest_path
    missing.unlink()
    with pytest.raises(DataError) as error:
        data.load(tensors_path, manifest_path, MNIST)
    assert str(missing) in str(error.value)
    assert "missing" in str(error.value)


def test_manifest_of_another_dataset_is_rejected(tmp_path, mnist):
    tensors_path, manifest_path = _saved(tmp_path, MNIST, mnist)
    other = DataSpec(MNIST.name, MNIST.kind, {**MNIST.params, "seed": 7})
    with pytest.raises(DataError) as error:
        data.load(tensors_path, manifest_path, other)
    assert str(manifest_path) in str(error.value)


def test_tensors_of_another_dataset_are_rejected(tmp_path, mnist):
    """Swapping in another dataset's tensors (a valid file, wrong content) is caught by the checksum."""
    tensors_path, manifest_path = _saved(tmp_path, MNIST, mnist)
    other_tensors, _ = _saved(tmp_path / "other", ALM, data.build(ALM))
    tensors_path.write_bytes(other_tensors.read_bytes())
    with pytest.raises(DataError, match="checksum"):
        data.load(tensors_path, manifest_path, MNIST)


def test_every_kind_declares_itself_completely():
    for name, kind in data.kinds().items():
        assert kind.name == name and issubclass(kind.task, Task), name
        assert set(kind.required) <= set(kind.params), name
        if kind.external:
            assert "path" in kind.required, name  # its files live at data_root / path
            assert kind.fingerprint is not None and kind.load is not None, name
        else:
            assert kind.fetch is None, name
    assert {name for name, kind in data.kinds().items() if not kind.external} >= {"mnist1d", "alm", "sm", "random_walk"}
    assert data.kind("mnist1d").full_batch and not data.kind("sm").full_batch
    assert data.kind("alm").train_size(ALM.params) == 2000


def test_a_kind_is_generated_or_external():
    walk = data.kind("random_walk")
    with pytest.raises(ValueError, match="either build"):
        DatasetKind("both", walk.task, "x", {}, (), build=walk.build, fingerprint=lambda r, p: {}, load=lambda r, p: 0)
    with pytest.raises(ValueError, match="either build"):
        DatasetKind("neither", walk.task, "x", {}, ())
    with pytest.raises(ValueError, match="external"):
        data.build(DataSpec("cifar", "cifar10", {"path": "cifar"}))
    with pytest.raises(KeyError, match="unknown dataset kind 'mnist2d'"):
        data.kind("mnist2d")
