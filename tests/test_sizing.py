"""Sizing the jobs from the run (pathgeo.planning.sizing) and the compute plan (python -m pathgeo.tools.compute_plan)."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from workflow_runner import run_snakemake

from pathgeo.planning import sizing
from pathgeo.planning.config import build_plan
from pathgeo.tools import compute_plan as compute_plan_cli
from pathgeo.training.models import model
from pathgeo.training.spec import DataSpec, RunSpec

ROOT = Path(__file__).resolve().parents[1]
CIFAR = DataSpec("cifar10", "cifar10", {"path": "cifar10", "split_seed": 0, "val_fraction": 0.2, "flip": False})
IMAGENET = DataSpec("imagenet", "imagenet", {"path": "imagenet", "workers": 12})


def spec(data=CIFAR, name="cifar_resnet18", optimizer="momentum", epochs=10, devices=1, precision="float32") -> RunSpec:
    return RunSpec(
        data=data,
        model=name,
        width=1,
        optimizer=optimizer,
        lr=0.1,
        weight_decay=0.0,
        schedule="constant",
        warmup_epochs=0,
        batch_size=256,
        epochs=epochs,
        seed=0,
        data_order_seed=0,
        precision=precision,
        devices=devices,
    )


@pytest.mark.parametrize("name, data", [("cifar_resnet18", CIFAR), ("imagenet_resnet50", IMAGENET)])
def test_parameters_are_the_registrys_counts(name, data):
    (count,) = [c for c in model(name).parameter_counts if c.width == 1.0]
    assert sizing.model_size(spec(data, name)).parameters == count.parameters


def test_training_flops_are_three_forwards():
    # ResNet-50 at 224 x 224: 4.1 GMACs forward (8.2 GFLOPs), so about 24.6 GFLOPs per training sample.
    assert 23e9 < sizing.model_size(spec(IMAGENET, "imagenet_resnet50")).flops_per_sample < 26e9


def test_optimizer_slots():
    assert [sizing.optimizer_slots(name) for name in ("sgd", "momentum", "adam")] == [0, 1, 2]


def test_probe_copies_follow_the_correlation_settings():
    # w_prev and the w*s, h rolling gradients, and the anchored base G and w / the last 51 G and w / nothing.
    assert sizing.probe_copies({"window": 5, "lagged": "anchored"}, references=2) == 1 + 2 + 5 + 1 + 1
    assert sizing.probe_copies({"window": 5, "lagged": "every_step"}, references=1) == 1 + 1 + 51 + 51
    assert sizing.probe_copies({"window": 5, "lagged": "off"}, references=1) == 1 + 1 + 5
    assert sizing.probe_copies({"window": 5, "lagged": "off"}, references=0) == 5


def test_memory_grows_with_devices_probe_checkpoints_and_attempts():
    one = spec(IMAGENET, "imagenet_resnet50")
    four = dataclasses.replace(one, devices=4)
    base = sizing.host_memory_mb(one, "a100", 2)
    assert sizing.host_memory_mb(four, "a100", 2) > 3 * base
    assert sizing.host_memory_mb(one, "a100", 2, attempt=2) == pytest.approx(2 * base, abs=1)
    assert sizing.host_memory_mb(one, "a100", 5) > base
    # The probe lives on the device on a GPU, in host memory on the CPU.
    assert sizing.host_memory_mb(one, "a100", 2, probe_vectors=100) == base
    probe_mb = 100 * 25_557_032 * 4 / 2**20
    assert sizing.model_state_mb(one, 100) - sizing.model_state_mb(one) == pytest.approx(probe_mb)
    with_probe = sizing.host_memory_mb(one, "cpu", 2, probe_vectors=100) - sizing.host_memory_mb(one, "cpu", 2)
    assert with_probe == pytest.approx(1.5 * probe_mb, abs=2)


def test_runtime_grows_with_epochs_and_attempts_within_its_bounds():
    short, long = spec(epochs=10), spec(epochs=100)
    assert sizing.runtime_minutes(long, 100, "a100", 1) > sizing.runtime_minutes(short, 10, "a100", 1)
    assert sizing.runtime_minutes(short, 10, "a100", 1, attempt=2) > sizing.runtime_minutes(short, 10, "a100", 1)
    assert sizing.runtime_minutes(short, 10, "a100", 1, probe=True) > sizing.runtime_minutes(short, 10, "a100", 1)
    assert sizing.runtime_minutes(spec(epochs=1), 1, "a100", 1) == sizing.MIN_RUNTIME_MINUTES
    huge = spec(IMAGENET, "imagenet_resnet152", epochs=180)
    assert (
        sizing.runtime_minutes(huge, 180, "a100", 1, limit=2880) == 2880 < sizing.runtime_minutes(huge, 180, "a100", 1)
    )
    # More devices, tensor cores: faster.
    one_gpu = sizing.training_hours(huge, 1, "a100")
    assert sizing.training_hours(dataclasses.replace(huge, devices=4), 1, "a100") < one_gpu / 3
    assert sizing.training_hours(dataclasses.replace(huge, precision="tf32"), 1, "a100") < one_gpu / 5


def test_throughput_says_whether_it_is_measured(monkeypatch):
    run = spec()
    assert sizing.throughput(run, "a100").source.startswith("assumed")
    entry = (5000.0, "python -m pathgeo.tools.precision_check, A100-SXM4-80GB")
    monkeypatch.setitem(sizing.MEASURED, ("cifar_resnet18", 1, "float32", "a100"), entry)
    measured = sizing.throughput(run, "a100")
    assert measured.samples_per_second == 5000.0 and measured.source.startswith(
        "measured: python -m pathgeo.tools.precision_check"
    )


def test_samples_per_epoch():
    assert sizing.samples_per_epoch(spec()) == 40_000
    assert sizing.samples_per_epoch(spec(IMAGENET, "imagenet_resnet50")) == sizing.IMAGENET_TRAIN_IMAGES
    mnist = DataSpec("mnist1d", "mnist1d", {"n_train": 4000, "n_test": 1000, "seed": 0})
    assert sizing.samples_per_epoch(spec(mnist, "mlp")) == 4000


def test_compute_plan_of_the_imagenet_preset(capsys):
    assert compute_plan_cli.main(["--configfile", "config/presets/imagenet.yaml"]) == 0
    out = capsys.readouterr().out
    plan = build_plan(yaml.safe_load(open("config/presets/imagenet.yaml")))
    assert all(run_id in out for run_id in plan.runs)
    assert "total:" in out and "a100 hours for 14 runs" in out
    assert "Assumed: 35% of the A100's peak" in out and "none yet" in out
    rows = [line.split() for line in out.splitlines() if line.startswith("imagenet-")]
    assert all(row[2] == "4" and row[-1] == "assumed" for row in rows)
    total = float(out.split("total: ")[1].split()[0])
    assert total == pytest.approx(sum(float(row[6]) for row in rows), rel=1e-3)


def test_compute_plan_names_a_wrong_config(tmp_path, capsys):
    config = yaml.safe_load(open("tests/configs/tiny.yaml"))
    config["defaults"]["devices"] = 0
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    assert compute_plan_cli.main(["--configfile", str(path)]) == 1
    assert "defaults.devices" in capsys.readouterr().err


def test_a_model_that_cannot_take_its_datasets_input_is_refused_when_planning(tmp_path):
    """torchvision's ResNet-18 on MNIST-1D's (N, 40) signals passed planning and failed 10 s into its job; a
    forward pass on the meta device refuses it at plan time, naming the model, the dataset and the shape."""
    from pathlib import Path

    from pathgeo.planning.config_errors import ConfigError

    root = Path(__file__).resolve().parents[1]
    config = yaml.safe_load((root / "tests/configs/tiny.yaml").read_text())
    config["experiments"] = {
        "vision": {"description": "a 2-D model on 1-D data", "set": {"model": "torchvision:resnet18"}}
    }
    config["figures"] = {}
    with pytest.raises(ConfigError) as refused:
        sizing.sized_plan(config, None, "a100", 1)
    assert str(refused.value).startswith(
        "config key 'experiments.vision': model 'torchvision:resnet18' cannot take dataset 'mnist1d' (kind mnist1d): "
        "a forward pass of one sample of shape (1, 40) raised RuntimeError: Expected 3D (unbatched) or 4D"
    )
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    result = run_snakemake(tmp_path / "work", "-n", configfile=path)
    assert result.returncode != 0 and "cannot take dataset 'mnist1d'" in result.stdout + result.stderr
    # A torchvision model that takes images plans on image data.
    config["datasets"] = {
        "images": {"kind": "cifar10", "path": "cifar10", "split_seed": 0, "val_fraction": 0.2, "flip": False}
    }
    config["defaults"]["dataset"] = "images"
    assert sizing.sized_plan(config, None, "a100", 1).runs


def test_model_sizes_are_kept_between_processes_and_read_back(tmp_path, monkeypatch):
    """Every snakemake run measured its config's models on the meta device, whose first pass imports torch's compiler
    (1.5 s a run): the registry's models' sizes are now kept in a file under the user's cache."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    for cached in (sizing._sizes_file, sizing._stored_model_size):
        cached.cache_clear()
    measured = sizing.model_size(spec())
    (path,) = (tmp_path / "pathgeo").glob("model-sizes-*.json")
    stored = json.loads(path.read_text())
    assert list(stored.values()) == [list(dataclasses.astuple(measured))]
    # What the file says is what a new process gets: a value written there comes back.
    path.write_text(json.dumps({key: [1, 2, 3.0] for key in stored}))
    sizing._stored_model_size.cache_clear()
    assert sizing.model_size(spec()) == sizing.ModelSize(1, 2, 3.0)
    for cached in (sizing._sizes_file, sizing._stored_model_size):
        cached.cache_clear()


def test_a_second_check_of_a_config_needs_no_forward_pass(tmp_path):
    check = (
        "import sys; from pathgeo.planning.config_check import main; main(['config/config.yaml']); "
        "print('torch._dynamo' in sys.modules)"
    )
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path)}
    first, second = (
        subprocess.run([sys.executable, "-c", check], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
        for _ in range(2)
    )
    assert first.stdout.splitlines()[-1] == "True" and second.stdout.splitlines()[-1] == "False"
    assert first.stdout.splitlines()[0] == second.stdout.splitlines()[0]
