"""A reference job killed with SIGKILL mid-run and started again resumes from its last checkpoint and ends
bit-identical to an uninterrupted run; nothing half-written is taken for a finished output."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
import yaml
from workflow_runner import check, run_snakemake, snakemake_command

from pathgeo.planning.config import build_plan

ROOT = Path(__file__).resolve().parents[1]


def config() -> dict:
    tiny = yaml.safe_load((ROOT / "tests/configs/tiny.yaml").read_text())
    tiny["datasets"] = {"mnist1d": {"kind": "mnist1d", "n_train": 1500, "n_test": 100, "seed": 0}}
    # Slow enough (a second or so per epoch) that the kill lands mid-run, with a checkpoint every epoch.
    tiny["defaults"].update(model="resnet1d", width=16, batch_size=32, epochs=8)
    tiny["segment_epochs"] = 1
    tiny["experiments"] = {"baseline": {}}
    tiny["figures"] = {}
    return tiny


def command(workdir: Path, config_path: Path, *targets: str) -> list[str]:
    return snakemake_command(workdir, "--cores", "1", *targets, configfile=config_path)


def run(workdir: Path, config_path: Path, *args: str) -> subprocess.CompletedProcess:
    """The workflow as `command` starts it, run to its end (tests/workflow_runner.py)."""
    return run_snakemake(workdir, "--cores", "1", *args, configfile=config_path)


@pytest.mark.slow
def test_killed_reference_job_resumes_and_ends_bit_identical(tmp_path):
    cfg = config()
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(cfg))
    (run_id,) = build_plan(cfg).runs
    target = f"results/runs/{run_id}/train_log.parquet"

    killed = tmp_path / "killed"
    job = subprocess.Popen(
        command(killed, config_path, target),
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    partial = killed / "results/runs" / run_id / "partial"
    deadline = time.monotonic() + 300
    while not (partial / "epoch0003.pt").exists():
        assert job.poll() is None, "the job ended before it could be killed"
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.05)
    os.killpg(job.pid, signal.SIGKILL)  # snakemake and the training process with it
    job.wait()
    run_dir = killed / "results/runs" / run_id
    assert not (run_dir / "train_log.parquet").exists() and not (run_dir / "checkpoints").exists()

    check(run(killed, config_path, "--unlock"))
    again = run(killed, config_path, target, "--rerun-incomplete")
    assert again.returncode == 0, again.stderr[-3000:]
    log_text = (killed / "logs/reference" / f"{run_id}.log").read_text()
    resumed_at = int(log_text.split("resumes from its checkpoint at epoch ")[1].split()[0])
    assert 3 <= resumed_at < cfg["defaults"]["epochs"], log_text
    # The workspace stays, as hard links to the published files: no second copy on disk.
    published = run_dir / "checkpoints"
    files = sorted(published.glob("epoch*.pt"))
    assert [p.name for p in sorted(partial.iterdir())] == [p.name for p in files]
    assert all((partial / p.name).samefile(p) for p in files)

    clean = tmp_path / "clean"
    check(run(clean, config_path, target))
    for epoch in range(cfg["defaults"]["epochs"] + 1):
        name = f"results/runs/{run_id}/checkpoints/epoch{epoch:04d}.pt"
        a, b = (torch.load(d / name, weights_only=True) for d in (killed, clean))
        assert a["epoch"] == b["epoch"] == epoch
        assert all(torch.equal(a["model"][k], b["model"][k]) for k in b["model"]), f"epoch {epoch} differs"
    assert_same_bytes(killed, clean, run_id, cfg["defaults"]["epochs"])


def assert_same_bytes(a: Path, b: Path, run_id: str, epochs: int) -> None:
    """Identical runs write identical files: every checkpoint and the train log, byte for byte."""
    run = Path("results/runs") / run_id
    for name in [*(f"checkpoints/epoch{e:04d}.pt" for e in range(epochs + 1)), "train_log.parquet"]:
        assert (a / run / name).read_bytes() == (b / run / name).read_bytes(), f"{name} differs"


@pytest.mark.slow
def test_a_run_finished_after_snakemake_was_killed_is_kept(tmp_path):
    """kill -9 of Snakemake alone: the orphaned job finishes and publishes its outputs, which Snakemake then
    counts as incomplete (after `--unlock` of the lock it left). The rerun with --rerun-incomplete takes the
    finished checkpoints instead of training again."""
    cfg = config()
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(cfg))
    (run_id,) = build_plan(cfg).runs
    target = f"results/runs/{run_id}/train_log.parquet"
    workdir = tmp_path / "orphaned"
    parent = subprocess.Popen(
        command(workdir, config_path, target),
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    partial = workdir / "results/runs" / run_id / "partial"
    deadline = time.monotonic() + 300
    while not (partial / "epoch0002.pt").exists():
        assert parent.poll() is None, "the workflow ended before it could be killed"
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.05)
    os.kill(parent.pid, signal.SIGKILL)  # Snakemake only: its job goes on as an orphan
    parent.wait()
    while not (workdir / target).exists():
        assert time.monotonic() < deadline, "the orphaned job did not finish"
        time.sleep(0.1)
    time.sleep(1.0)  # its last writes (spec.json) follow the train log

    check(run(workdir, config_path, "--unlock"))
    stopped = run(workdir, config_path, target)
    assert stopped.returncode != 0 and "IncompleteFilesException" in stopped.stdout + stopped.stderr

    again = run(workdir, config_path, target, "--rerun-incomplete")
    assert again.returncode == 0, again.stderr[-3000:]
    log_text = (workdir / "logs/reference" / f"{run_id}.log").read_text()
    assert f"resumes from its checkpoint at epoch {cfg['defaults']['epochs']}" in log_text, log_text
    assert not re.search(r"epoch \d+/\d+: train loss", log_text), "the rerun trained again"

    clean = tmp_path / "clean"
    check(run(clean, config_path, target))
    assert_same_bytes(workdir, clean, run_id, cfg["defaults"]["epochs"])


def test_a_second_job_publishing_the_same_run_takes_the_identical_folder(tmp_path):
    """`--rerun-incomplete` while the orphaned job of a killed Snakemake still trains: both publish the same
    checkpoints from the same workspace. The one that comes second finds the folder there; it was refused with a
    raw `OSError: [Errno 39] Directory not empty` before."""
    from pathgeo.jobs.reference import publish_checkpoints

    workspace, destination = tmp_path / "partial", tmp_path / "checkpoints"
    workspace.mkdir()
    for epoch in (0, 1, 2):
        (workspace / f"epoch{epoch:04d}.pt").write_bytes(bytes([epoch]) * 10)
    publish_checkpoints(workspace, destination, (0, 2))
    (destination / ".snakemake_timestamp").touch()
    publish_checkpoints(workspace, destination, (0, 2))
    assert sorted(path.name for path in destination.glob("*.pt")) == ["epoch0000.pt", "epoch0002.pt"]
    assert not list(tmp_path.glob(".checkpoints.*"))


def test_publishing_over_another_runs_folder_says_another_job_publishes_it(tmp_path):
    from pathgeo.jobs.reference import PublishingConflict, publish_checkpoints

    workspace, destination = tmp_path / "partial", tmp_path / "checkpoints"
    workspace.mkdir()
    destination.mkdir()
    (workspace / "epoch0000.pt").write_bytes(b"mine")
    (destination / "epoch0000.pt").write_bytes(b"other")
    with pytest.raises(PublishingConflict, match=r"checkpoints: another job is publishing the same run .* wait until"):
        publish_checkpoints(workspace, destination, (0,))
    assert (destination / "epoch0000.pt").read_bytes() == b"other"


def test_validation_every_few_epochs_leaves_the_trajectory_and_logs_those_epochs(caplog):
    """validate_every (issue 22: a 30,000-step full-batch run validated and logged every step): validation and its
    log line every N epochs and at the end, null validation columns in between, the same weights."""
    import logging

    from pathgeo.jobs.reference import train_reference
    from pathgeo.training import data
    from pathgeo.training.spec import DataSpec, RunSpec

    mnist1d = DataSpec("mnist1d", "mnist1d", {"n_train": 200, "n_test": 50, "seed": 0})
    spec = RunSpec(
        data=mnist1d,
        model="mlp",
        width=8,
        optimizer="sgd",
        lr=0.5,
        weight_decay=0.0,
        schedule="constant",
        warmup_epochs=0,
        batch_size=100,
        epochs=7,
        seed=0,
        data_order_seed=0,
        precision="float32",
        full_batch=True,
    )
    tensors = data.build(mnist1d)
    final: dict[int, dict] = {}
    every_epoch = train_reference(spec, tensors, torch.device("cpu"), (0, 7), final.__setitem__)
    weights = final[7]["model"]
    with caplog.at_level(logging.INFO, logger="pathgeo"):
        sparse = train_reference(spec, tensors, torch.device("cpu"), (0, 7), final.__setitem__, validate_every=3)
    assert all(torch.equal(weights[k], final[7]["model"][k]) for k in weights)
    assert sparse["train_loss"].equals(every_epoch["train_loss"])
    validated = sparse.filter(sparse["val_loss"].is_not_null())["epoch"].to_list()
    assert validated == [2, 5, 6]  # epochs 3, 6 and the last, counted from 1
    assert sparse.filter(sparse["val_loss"].is_not_null())["val_loss"].equals(
        every_epoch.filter(every_epoch["epoch"].is_in(validated))["val_loss"]
    )
    lines = [r.getMessage() for r in caplog.records if "epoch" in r.getMessage() and "train loss" in r.getMessage()]
    assert [line.split(":")[0].split()[-1] for line in lines] == ["3/7", "6/7", "7/7"]
