"""Runs on several devices (DistributedDataParallel, gloo on the CPU here): the randomness contract across
device counts, replay fidelity, agreement with one device, and what happens when a rank dies.

The jobs run as the workflow runs them (pathgeo.jobs.runner.run with a Request): one process per rank, started by
pathgeo.training.distributed.launch, with the prepared data and checkpoint files on disk.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import fake_data
import polars as pl
import pytest
import torch
from workflow_runner import check, run_snakemake, snakemake_command

from pathgeo.jobs.reference import reference_job
from pathgeo.jobs.replay import flat_parameters_of, replay_job
from pathgeo.jobs.runner import Request, run
from pathgeo.planning.config import build_plan
from pathgeo.planning.config_errors import ConfigError
from pathgeo.training import checkpoints, data
from pathgeo.training.data.task import build_task
from pathgeo.training.distributed import SINGLE, RankFailed, Shard
from pathgeo.training.loop import build_trainer
from pathgeo.training.spec import DataSpec, RunSpec

ROOT = Path(__file__).resolve().parents[1]
CPU = torch.device("cpu")
MNIST1D = DataSpec("mnist1d", "mnist1d", {"n_train": 200, "n_test": 50, "seed": 0})


def mnist_spec(model: str = "mlp", devices: int = 1, batch_size: int = 50, epochs: int = 2, **fields) -> RunSpec:
    return RunSpec(
        data=MNIST1D,
        model=model,
        width=8,
        optimizer="momentum",
        lr=0.05,
        weight_decay=1e-4,
        schedule="constant",
        warmup_epochs=0,
        batch_size=batch_size,
        epochs=epochs,
        seed=0,
        data_order_seed=0,
        precision="float32",
        devices=devices,
        **fields,
    )


# ---------------------------------------------------------------------------------------------------------
# The global minibatch of step t is the same for any number of devices, split by rank


def assert_shards_make_the_batches(spec: RunSpec, loaded, world: int, epoch: int = 1) -> None:
    whole = list(build_task(spec, loaded, CPU).batches(epoch))
    parts = [list(build_task(spec, loaded, CPU, Shard(rank, world)).batches(epoch)) for rank in range(world)]
    assert all(len(p) == len(whole) for p in parts)
    for step, batch in enumerate(whole):
        for k, tensor in enumerate(batch):
            joined = torch.cat([p[step][k] for p in parts])
            assert torch.equal(joined, tensor), f"step {step}, tensor {k}"


def test_mnist1d_minibatches_split_by_rank():
    spec = mnist_spec(batch_size=45)  # 200 = 4 x 45 + 20: the ranks' parts differ in size in some steps
    assert_shards_make_the_batches(spec, data.build(MNIST1D), 3)


def test_cifar10_crops_follow_the_sample_not_the_batch(tmp_path):
    """Each sample's crop and flip come from (seed, epoch, index): the same in its rank's part as in the whole
    minibatch, and the same whatever minibatch another data order and batch size put it in."""
    fake_data.write_cifar10(tmp_path, per_batch=8, n_test=4)  # 32 training images
    params = {"path": ".", "split_seed": 0, "val_fraction": 0.2, "flip": True, "verify_md5": False}
    spec = RunSpec(
        data=DataSpec("cifar10", "cifar10", params),
        model="cifar_resnet18",
        width=0.125,
        optimizer="sgd",
        lr=0.1,
        weight_decay=0.0,
        schedule="constant",
        warmup_epochs=0,
        batch_size=8,
        epochs=1,
        seed=3,
        data_order_seed=0,
        precision="float32",
    )
    loaded = data.kind("cifar10").load(tmp_path, params)
    assert_shards_make_the_batches(spec, loaded, 2)

    def by_index(run: RunSpec) -> dict[int, torch.Tensor]:
        task = build_task(run, loaded, CPU)
        images = torch.cat([x for x, _ in task.batches(1)])
        order = torch.cat(list(task.index_batches(1, len(task.x_train), CPU)))
        return {int(i): x for i, x in zip(order, images, strict=True)}

    one, other = by_index(spec), by_index(RunSpec(**{**spec.__dict__, "data_order_seed": 1, "batch_size": 12}))
    assert one.keys() == other.keys() and all(torch.equal(one[i], other[i]) for i in one)


def test_corpus_streams_split_by_rank(tmp_path):
    files = fake_data.write_wikitext(tmp_path)
    params = {"path": ".", "files": files, "seq_len": 5}
    spec = RunSpec(
        data=DataSpec("wikitext2", "corpus", params),
        model="transformer_lm",
        width=1,
        optimizer="adam",
        lr=1e-3,
        weight_decay=0.0,
        schedule="constant",
        warmup_epochs=0,
        batch_size=3,
        epochs=1,
        seed=0,
        data_order_seed=0,
        precision="float32",
        model_options={"heads": 2, "layers": 1},
    )
    assert_shards_make_the_batches(spec, data.kind("corpus").load(tmp_path, params), 2)


def test_vaihingen_patches_split_by_rank(tmp_path):
    fake_data.write_vaihingen(tmp_path, ids=(1, 3), size=(64, 72))
    params = {"path": ".", "patch_size": 32, "patches_per_epoch": 6, "val_patches": 2, "train_ids": [1], "val_ids": [3]}
    spec = RunSpec(
        data=DataSpec("vaihingen", "vaihingen", params),
        model="unet",
        width=1,
        optimizer="sgd",
        lr=0.01,
        weight_decay=0.0,
        schedule="constant",
        warmup_epochs=0,
        batch_size=3,
        epochs=1,
        seed=0,
        data_order_seed=0,
        precision="float32",
        model_options={"base": 4},
    )
    assert_shards_make_the_batches(spec, data.kind("vaihingen").load(tmp_path, params), 3)


def test_imagenet_ranks_load_only_their_part(tmp_path):
    fake_data.write_imagenet(tmp_path, per_class=3)
    spec = RunSpec(
        data=DataSpec("imagenet", "imagenet", {"path": ".", "workers": 0}),
        model="imagenet_resnet18",
        width=0.125,
        optimizer="sgd",
        lr=0.1,
        weight_decay=0.0,
        schedule="constant",
        warmup_epochs=0,
        batch_size=3,
        epochs=1,
        seed=0,
        data_order_seed=0,
        precision="float32",
    )
    assert_shards_make_the_batches(spec, data.kind("imagenet").load(tmp_path, {}), 2)


def test_an_empty_part_is_refused():
    with pytest.raises(ValueError, match="cannot be split over 4 devices"):
        Shard(3, 4).part(torch.arange(3))
    assert torch.equal(SINGLE.part(torch.arange(3)), torch.arange(3))


# ---------------------------------------------------------------------------------------------------------
# The config


def test_config_refuses_what_cannot_run_on_several_devices():
    config = yaml_config()
    config["figures"] = {}
    config["experiments"] = {"walk": {"set": {"dataset": "walk", "model": "walk", "devices": 2}}}
    with pytest.raises(ConfigError, match=r"experiments\.walk\.set\.devices.*no minibatches to split"):
        build_plan(config)
    config["experiments"] = {"fb": {"set": {"full_batch": True, "batch_size": 100, "devices": 2}}}
    with pytest.raises(ConfigError, match=r"experiments\.fb\.set\.devices.*full-batch"):
        build_plan(config)
    config["experiments"] = {"sync": {"set": {"sync_batchnorm": True}}}
    with pytest.raises(ConfigError, match=r"sync_batchnorm.*devices: 1"):
        build_plan(config)
    # tiny's MNIST-1D has 200 samples: batch 66 leaves a last minibatch of 2 for 3 devices.
    config["experiments"] = {"small": {"set": {"batch_size": 66, "devices": 3}}}
    with pytest.raises(ConfigError, match=r"smallest minibatch.*2 samples \(batch_size 66\) for 3 devices"):
        build_plan(config)
    config["experiments"] = {"fine": {"set": {"devices": 2}}}
    (spec,) = build_plan(config).runs.values()
    assert spec.devices == 2 and spec.canonical()["devices"] == 2


def test_the_gpu_check_config_plans_runs_on_2_and_4_devices():
    import yaml

    plan = build_plan(yaml.safe_load((ROOT / "tests" / "configs" / "ddp.yaml").read_text()))
    assert sorted((spec.model, spec.devices) for spec in plan.runs.values()) == [
        ("mlp", 2),
        ("mlp", 4),
        ("resnet1d", 2),
        ("resnet1d", 4),
    ]


def test_one_device_runs_keep_their_ids():
    spec = mnist_spec()
    assert "devices" not in spec.canonical() and "sync_batchnorm" not in spec.canonical()
    assert mnist_spec(devices=2).run_id != spec.run_id


def yaml_config() -> dict:
    import yaml

    return yaml.safe_load((ROOT / "tests" / "configs" / "tiny.yaml").read_text())


# ---------------------------------------------------------------------------------------------------------
# Jobs on several ranks


CODE = "test-version"


def prepared(root: Path) -> dict:
    root.mkdir(parents=True, exist_ok=True)
    data.save(data.build(MNIST1D), MNIST1D, root / "tensors.pt", root / "manifest.json")
    return {
        "device": "cpu",
        "deterministic": True,
        "threads": 2,
        "manifest": str(root / "manifest.json"),
        "tensors": str(root / "tensors.pt"),
    }


def reference(spec: RunSpec, root: Path, epochs: list[int], **common) -> Path:
    run(
        reference_job,
        Request(
            spec=spec.canonical_json(),
            **common,
            log=str(root / "reference.log"),
            values={
                "workspace": str(root / "partial"),
                "checkpoint_epochs": epochs,
                "checkpoints": str(root / "checkpoints"),
                "published": epochs,
                "until": spec.epochs,
                "earlier": None,
                "extends": None,
                "validate_every": 1,
                "train_log": str(root / "train_log.parquet"),
                "spec": str(root / "spec.json"),
                "code": CODE,
                "correlations": None,
                "train_correlations": str(root / "train_correlations.parquet"),
                "train_correlation_matrices": str(root / "train_correlations.matrices.parquet"),
            },
        ),
    )
    return root / "checkpoints"


def replay(spec: RunSpec, root: Path, start: int, end: int, **common) -> dict:
    run(
        replay_job,
        Request(
            spec=spec.canonical_json(),
            **common,
            log=str(root / "replay.log"),
            values={
                "checkpoints": str(root / "checkpoints"),
                "reference_spec": str(root / "spec.json"),
                "start": start,
                "end": end,
                "references": {"final": spec.epochs},
                "tolerance": 0.0,
                "correlations": {"window": 2, "lagged": "every_step", "matrix_epochs": "all"},
                "steps": str(root / f"{start}-{end}.parquet"),
                "matrices": str(root / f"{start}-{end}.matrices.parquet"),
                "fidelity": str(root / f"{start}-{end}.fidelity.json"),
                "code": CODE,
                "measurements": {},
                "full_batch": str(root / f"{start}-{end}.full_batch.parquet"),
                "fixed_batches": str(root / f"{start}-{end}.fixed_batches.parquet"),
            },
        ),
    )
    return json.loads((root / f"{start}-{end}.fidelity.json").read_text())


def test_two_rank_reference_and_its_replay_drift_zero(tmp_path):
    """A 2-rank gloo reference (ResNet-1D: batch norm per rank) and the replay of its second epoch from the
    middle checkpoint: drift 0.0, with the probe on rank 0 over the all-reduced gradient."""
    common = prepared(tmp_path)
    spec = mnist_spec("resnet1d", devices=2)
    folder = reference(spec, tmp_path, [0, 1, 2], **common)
    saved = checkpoints.load(checkpoints.checkpoint_path(folder, 2))
    assert saved["spec"]["devices"] == 2 and len(saved["rank_rng"]) == 2
    assert not torch.equal(saved["rank_rng"][0]["torch"], saved["rank_rng"][1]["torch"])
    fidelity = replay(spec, tmp_path, 1, 2, **common)
    assert fidelity["relative_drift"] == 0.0 and fidelity["max_buffer_difference"] == 0.0
    steps = pl.read_parquet(tmp_path / "1-2.parquet")
    assert steps.height == 4 and steps["gamma"].is_finite().all()
    log_text = (tmp_path / "reference.log").read_text()
    assert "[rank 0]" in log_text and "samples/s" in log_text
    train_log = pl.read_parquet(tmp_path / "train_log.parquet")
    assert train_log.height == 2


def test_ddp_without_batch_norm_equals_one_device(tmp_path):
    """The MLP (no batch norm) on 2 ranks against 1 device with the same global minibatches, the ranks' parts
    unequal in the last step of each epoch (200 = 4 x 45 + 20): the same weights up to the all-reduce's other
    order of summation."""
    common = prepared(tmp_path)
    finals = {}
    for devices in (1, 2):
        spec = mnist_spec("mlp", devices=devices, batch_size=45, epochs=3)
        folder = reference(spec, tmp_path / str(devices), [0, 3], **common)
        finals[devices] = checkpoints.load(checkpoints.checkpoint_path(folder, 3))
    one, two = (torch.cat([v.reshape(-1) for v in finals[d]["model"].values()]).double() for d in (1, 2))
    start = checkpoints.load(checkpoints.checkpoint_path(tmp_path / "1" / "checkpoints", 0))
    assert not torch.equal(one, torch.cat([v.reshape(-1) for v in start["model"].values()]).double())
    assert (torch.linalg.vector_norm(one - two) / torch.linalg.vector_norm(one)).item() <= 1e-6
    logs = [pl.read_parquet(tmp_path / str(d) / "train_log.parquet") for d in (1, 2)]
    for column in ("train_loss", "train_accuracy", "val_loss"):
        assert torch.allclose(torch.tensor(logs[0][column]), torch.tensor(logs[1][column]), rtol=1e-6, atol=0)


@pytest.mark.slow
def test_four_ranks_replay_from_a_middle_checkpoint_exactly(tmp_path):
    """With 4 ranks the all-reduce's order of summation matters; DDP keeps one gradient bucket layout from its
    construction on (find_unused_parameters=True), so a replay that starts mid-run sums as the reference did.
    (With DDP's default, which re-buckets after the first step, this replay drifts by about 1e-8.)"""
    common = prepared(tmp_path)
    spec = mnist_spec("resnet1d", devices=4)
    reference(spec, tmp_path, [0, 1, 2], **common)
    assert replay(spec, tmp_path, 1, 2, **common)["relative_drift"] == 0.0


def test_a_failing_rank_fails_the_job_with_its_rank(tmp_path):
    """A rank that raises stops the job; the error names the run (in the log) and the launcher the rank."""
    common = prepared(tmp_path)
    spec = mnist_spec("mlp", devices=2)
    reference(spec, tmp_path, [0, 2], **common)
    broken = checkpoints.load(checkpoints.checkpoint_path(tmp_path / "checkpoints", 2))
    broken["model"] = {k: v + 1.0 for k, v in broken["model"].items()}
    checkpoints.save(checkpoints.checkpoint_path(tmp_path / "checkpoints", 2), broken)
    start = time.monotonic()
    with pytest.raises(RankFailed, match=r"rank \d of 2 ended with exit status 1"):
        replay(spec, tmp_path, 0, 2, **common)
    assert time.monotonic() - start < 120
    assert "replay drifted from the reference" in (tmp_path / "replay.log").read_text()


def gpus_of(name: str, link: str) -> dict:
    """A spec.json's record of 3 GPUs (pathgeo.training.topology.recorded) of one model, every pair linked alike."""
    gpus = [{"name": name, "uuid": f"GPU-{rank}", "pci_bus_id": f"00000000:0{rank}:00.0"} for rank in range(3)]
    return {"gpus": gpus, "links": [["X" if i == j else link for j in range(3)] for i in range(3)]}


def test_a_drift_error_says_how_the_replays_gpus_differ_from_the_references(tmp_path, monkeypatch, caplog):
    """A replay on GPUs linked otherwise than the reference's (simulated: the reference's spec.json records NVLink
    between its GPUs, the replay's job reads PCIe across sockets) that drifts names the difference and the fix."""
    from pathgeo.jobs.replay import FidelityError
    from pathgeo.training import topology

    common = prepared(tmp_path)
    spec = mnist_spec("mlp")
    reference(spec, tmp_path, [0, 2], **common)
    written = json.loads((tmp_path / "spec.json").read_text())
    written["settings"]["gpus"] = gpus_of("NVIDIA A100-SXM4-80GB", "NV12")
    (tmp_path / "spec.json").write_text(json.dumps(written))
    end = checkpoints.load(checkpoints.checkpoint_path(tmp_path / "checkpoints", 2))
    end["model"] = {name: value + 1.0 for name, value in end["model"].items()}
    checkpoints.save(checkpoints.checkpoint_path(tmp_path / "checkpoints", 2), end)
    monkeypatch.setattr(topology, "recorded", lambda device, count: {"gpus": gpus_of("NVIDIA A100-PCIE-40GB", "SYS")})
    with pytest.raises(FidelityError) as raised:
        replay(spec, tmp_path, 0, 2, **common)
    message = str(raised.value)
    assert message.startswith(f"run {spec.run_id}: replay drifted from the reference at epoch 2")
    assert f"This replay ran on other GPUs than the reference ({tmp_path / 'spec.json'})" in message
    assert "rank 0: NVIDIA A100-PCIE-40GB where the reference had NVIDIA A100-SXM4-80GB" in message
    assert (
        "links between the ranks' GPUs [X SYS SYS; SYS X SYS; SYS SYS X] where the reference had "
        "[X NV12 NV12; NV12 X NV12; NV12 NV12 X]"
    ) in message
    assert "replay on GPUs like the reference's" in message
    assert "this replay's GPUs differ from the reference's" in caplog.text


def test_one_device_checkpoints_keep_their_format():
    """A one-device trainer's checkpoint has no per-rank RNG states: the format of one-device runs is unchanged."""
    trainer = build_trainer(mnist_spec(), data.build(MNIST1D), CPU)
    state = trainer.state()
    assert "rank_rng" not in state and set(state) >= {"model", "optimizer", "rng", "epoch", "step"}
    assert torch.equal(flat_parameters_of(trainer, state["model"]), trainer.flat.weights)


# ---------------------------------------------------------------------------------------------------------
# kill -9 of one rank, through Snakemake


def tiny_ddp_config() -> dict:
    config = yaml_config()
    config["datasets"] = {"mnist1d": {"kind": "mnist1d", "n_train": 1500, "n_test": 100, "seed": 0}}
    config["defaults"].update(model="resnet1d", width=16, batch_size=32, epochs=8, devices=2)
    config["threads"] = 2
    config["segment_epochs"] = 1
    config["experiments"] = {"baseline": {}}
    config["figures"] = {}
    return config


def ranks_of(pid: int) -> list[int]:
    """The rank processes among the descendants of `pid` (their command line names pathgeo.training.distributed)."""
    found, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        # Each thread lists the children it started (Snakemake starts jobs from worker threads).
        listed = " ".join(p.read_text() for p in Path(f"/proc/{parent}/task").glob("*/children"))
        for child in map(int, listed.split()):
            frontier.append(child)
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
            if b"pathgeo.training.distributed" in cmdline:
                found.append(child)
    return found


@pytest.mark.slow
def test_kill_9_of_one_rank_fails_the_job_and_the_rerun_resumes(tmp_path):
    import yaml

    config = tiny_ddp_config()
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(config))
    (run_id,) = build_plan(config).runs
    target = f"results/runs/{run_id}/train_log.parquet"
    killed = tmp_path / "killed"
    job = subprocess.Popen(
        snakemake_command(killed, "--cores", "2", target, configfile=config_path),
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    partial = killed / "results/runs" / run_id / "partial"
    deadline = time.monotonic() + 300
    while not (partial / "epoch0003.pt").exists():
        assert job.poll() is None, "the job ended before a rank could be killed"
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.05)
    ranks = ranks_of(job.pid)
    assert len(ranks) == 2, ranks
    os.kill(ranks[1], signal.SIGKILL)
    killed_at = time.monotonic()
    assert job.wait(timeout=120) != 0
    assert time.monotonic() - killed_at < 60, "the job hung after one of its ranks died"
    assert all(not Path(f"/proc/{pid}").exists() for pid in ranks), "a rank outlived its job"
    log_text = (killed / "logs/reference" / f"{run_id}.log").read_text()
    assert "of 2 ended with signal SIGKILL" in log_text, log_text[-3000:]

    again = run_snakemake(killed, "--cores", "2", target, "--rerun-incomplete", configfile=config_path)
    assert again.returncode == 0, again.stderr[-3000:]
    log_text = (killed / "logs/reference" / f"{run_id}.log").read_text()
    resumed_at = int(log_text.split("resumes from its checkpoint at epoch ")[1].split()[0])
    assert 3 <= resumed_at < 8, log_text

    clean = tmp_path / "clean"
    check(run_snakemake(clean, "--cores", "2", target, configfile=config_path))
    run_dir = Path("results/runs") / run_id
    for name in [*(f"checkpoints/epoch{e:04d}.pt" for e in range(9)), "train_log.parquet"]:
        assert (killed / run_dir / name).read_bytes() == (clean / run_dir / name).read_bytes(), name
