"""Reference training: train once, checkpoint at the segment boundaries, log every epoch; and the reference job,
which runs it from a rule's values and publishes the checkpoints, train log and spec.

A job killed by a time limit, a preemption or `kill -9` and started again resumes from its last checkpoint:
each checkpoint carries the log of the epochs before it, so the resumed run ends with the same weights and
the same log as an uninterrupted one. Wall-clock times go to the job's log, not into the checkpoints or
the train log: identical runs write identical bytes, so their sha256 sums can be compared.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
import torch

from pathgeo.atomic import write_json, write_parquet
from pathgeo.jobs.runner import begin_job
from pathgeo.measurements import w_star_free
from pathgeo.measurements.w_star_free import STATE_KEY, TrainingCorrelations
from pathgeo.training import checkpoints, distributed
from pathgeo.training.distributed import SINGLE, Shard, broadcast
from pathgeo.training.loop import PROGRESS_SECONDS, build_trainer
from pathgeo.training.spec import RunSpec

log = logging.getLogger("pathgeo")


def train_reference(
    spec: RunSpec,
    data: Any,
    device: torch.device,
    checkpoint_epochs: tuple[int, ...],
    save_checkpoint: Callable[[int, dict], None],
    resume: dict | None = None,
    correlations: dict[str, Any] | None = None,
    shard: Shard = SINGLE,
    until: int | None = None,
    validate_every: int = 1,
) -> pl.DataFrame:
    """Train from the seed's initial weights (or from the checkpoint `resume`) to epoch `until` (by default the
    run's end, `spec.epochs`; earlier for a job of a chain); returns the per-epoch log so far. With `correlations` (window, matrix_epochs) training also takes the measurements that
    need no w*, segment by segment (pathgeo.measurements.w_star_free); each checkpoint carries their tables so far. On
    several devices every rank calls it with the same `resume`; rank 0 alone measures, as in a replay, and
    saves. Validation runs every `validate_every` epochs and at the run's end (the log's validation columns are null
    in between; it does not touch the trajectory), and each validated epoch logs a line, as does any epoch a
    minute or more after the last line."""
    trainer = build_trainer(spec, data, device, shard)
    rows: list[dict] = []
    if resume is not None:
        trainer.load_state(resume)
        rows = list(resume["log"])
        log.info("run %s resumes from its checkpoint at epoch %d", spec.run_id, trainer.epoch)
    measured = None
    if correlations is not None and shard.lead:
        measured = TrainingCorrelations(trainer, correlations, (resume or {}).get(STATE_KEY))

    def checkpoint(rows: list[dict]) -> None:
        state = trainer.state()  # every rank takes part; rank 0 gets it
        if state is not None:
            save_checkpoint(trainer.epoch, {**state, "log": rows, **(measured.checkpoint() if measured else {})})

    if resume is None and 0 in checkpoint_epochs:
        checkpoint([])
    last_line = time.monotonic()
    while trainer.epoch < (spec.epochs if until is None else until):
        stats = trainer.train_epoch(measured)
        if measured is not None:
            measured.end_epoch(stats.epoch)
        validated = trainer.epoch % validate_every == 0 or trainer.epoch == spec.epochs
        val = trainer.evaluate() if validated else {}
        rows.append(
            {
                "epoch": stats.epoch,
                "train_loss": stats.train_loss,
                "train_accuracy": stats.train_accuracy,
                **val,
                "lr": trainer.optimizer.param_groups[0]["lr"],
            }
        )
        if validated or time.monotonic() - last_line >= PROGRESS_SECONDS:
            last_line = time.monotonic()
            log.info(
                "run %s epoch %d/%d: train loss %.4g, %s (%.2f s, %.4g samples/s)",
                spec.run_id,
                stats.epoch + 1,
                spec.epochs,
                stats.train_loss,
                ", ".join(f"{k} {v:.4g}" for k, v in val.items()) or "no validation",
                stats.seconds,
                stats.samples_per_second,
            )
        if trainer.epoch in checkpoint_epochs:
            checkpoint(rows)
    if trainer.nondeterministic_ops:
        log.warning("run %s used nondeterministic ops: %s", spec.run_id, sorted(trainer.nondeterministic_ops))
    return pl.DataFrame(rows, infer_schema_length=None).with_columns(pl.exclude("epoch").cast(pl.Float64))


def resume_point(
    workspace: Path, epochs: tuple[int, ...], code: str | None = None, shard: Shard = SINGLE
) -> dict | None:
    """The newest checkpoint in `workspace` that every wanted checkpoint before it is there for, loaded; None
    when training must start from the seed. Writes are atomic, so every file there is whole; files for other
    epochs (an earlier segment length) are ignored. Given the `code` version (pathgeo.planning.provenance), checkpoints
    made by other code are deleted instead: a run never continues another code's trajectory. On several devices
    rank 0 decides and every rank loads the checkpoint it picked."""
    usable, state = _usable(Path(workspace), epochs, code) if shard.lead else (None, None)
    usable = broadcast(usable, shard)
    if usable is None or state is not None:
        return state
    return checkpoints.load(checkpoints.checkpoint_path(workspace, usable))


def _usable(workspace: Path, epochs: tuple[int, ...], code: str | None) -> tuple[int | None, dict | None]:
    """The epoch to resume from and its checkpoint, read once (None, None: from the seed)."""
    present = {path.name for path in workspace.glob("epoch*.pt")}
    usable = None
    for epoch in sorted(epochs):
        if checkpoints.checkpoint_path(workspace, epoch).name not in present:
            break
        usable = epoch
    if usable is None:
        return None, None
    state = checkpoints.load(checkpoints.checkpoint_path(workspace, usable))
    if code is not None and state.get("code") != code:
        log.info(
            "%s: its checkpoints were made by other code (version %s, now %s); training from the start",
            workspace,
            state.get("code"),
            code,
        )
        for path in workspace.glob("epoch*.pt"):
            path.unlink()
        return None, None
    return usable, state


def adopt_checkpoints(earlier: Path, workspace: Path) -> None:
    """Give the workspace the checkpoints of the job before this one in a chain (its output folder) that it lacks:
    the earlier job may have run elsewhere or come from Snakemake's between-workflow cache."""
    workspace = Path(workspace)
    workspace.mkdir(parents=True, exist_ok=True)
    for path in sorted(Path(earlier).glob("epoch*.pt")):
        if not (workspace / path.name).exists():
            _link(path, workspace / path.name)


def take_up_shorter_run(folder: Path, workspace: Path, spec: RunSpec, epochs: tuple[int, ...]) -> int:
    """Give the workspace, as this run's own, the checkpoints at `epochs` of the shorter run whose published folder
    is `folder` (the run `spec` extends: pathgeo.planning.config.extended_run): each state under this run's id and spec,
    everything else as it was, which is what this run's training saves at that epoch. Returns the latest epoch
    taken (0 where there was nothing to take). A state of other code is taken too, and refused by resume_point
    like any other."""
    workspace = Path(workspace)
    workspace.mkdir(parents=True, exist_ok=True)
    latest = 0
    for epoch in epochs:
        source, target = checkpoints.checkpoint_path(folder, epoch), checkpoints.checkpoint_path(workspace, epoch)
        if not source.exists():
            continue
        if not target.exists():
            state = checkpoints.load(source)
            checkpoints.save(target, {**state, "run_id": spec.run_id, "spec": spec.canonical()})
        latest = epoch
    return latest


def _link(source: Path, target: Path) -> None:
    """A hard link (no second copy on disk), or a copy on a file system without them: a copy costs disk, not
    correctness. Through a temporary name, so that `target` is never half-written."""
    temporary = target.with_name(f".{target.name}.{os.getpid()}.linking")
    temporary.unlink(missing_ok=True)
    try:
        os.link(source, temporary)
    except OSError:
        shutil.copy2(source, temporary)
    os.replace(temporary, target)


class PublishingConflict(RuntimeError):
    """Another job published the same run's checkpoints while this one was publishing them."""


def publish_checkpoints(workspace: Path, destination: Path, epochs: tuple[int, ...], prune: bool = True) -> None:
    """Give the run's checkpoints of `epochs` their output folder in one rename, so that a job killed at any
    moment leaves either no folder or a complete one.

    The workspace keeps its files: the folder holds hard links to them (no second copy on disk). Snakemake
    deletes the outputs of a job it counts as incomplete, e.g. one that finished after `kill -9` of
    Snakemake itself; the rerun then resumes at the last epoch and publishes again within seconds instead of
    training from the start. With `prune` (the run's last job), files for other epochs and leftovers of
    interrupted writes are dropped from the workspace first; a job of a chain leaves the later ones alone.

    Two jobs of the same run can publish at once: an orphaned job of a killed Snakemake that still trains, and
    the job that `--rerun-incomplete` started for it. They train the same bytes from the same workspace, so the
    one that finds the folder already there and holding the same files takes it as its own; any other
    difference is an error that says so."""
    workspace, destination = Path(workspace), Path(destination)
    keep = {checkpoints.checkpoint_path(workspace, epoch).name for epoch in epochs}
    missing = keep - {path.name for path in workspace.iterdir()}
    if missing:
        raise RuntimeError(f"{workspace}: checkpoints {sorted(missing)} are missing; delete the folder and rerun")
    if prune:
        for path in workspace.iterdir():
            if path.name not in keep:
                path.unlink()
    destination.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{destination.name}.", suffix=".publishing", dir=destination.parent))
    try:
        for name in sorted(keep):
            _link(workspace / name, staging / name)
        try:
            os.replace(staging, destination)
        except OSError as error:
            if error.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
            _check_published(destination, staging, keep)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _check_published(destination: Path, staging: Path, keep: set[str]) -> None:
    """`destination` appeared, with files, while this job was publishing: accept it if it holds exactly the
    checkpoints this job would have published, byte for byte."""
    present = {path.name for path in destination.glob("epoch*.pt")}
    same = present == keep and all(
        os.path.samefile(destination / name, staging / name)
        or (destination / name).read_bytes() == (staging / name).read_bytes()
        for name in keep
    )
    if not same:
        raise PublishingConflict(
            f"{destination}: another job is publishing the same run (the folder appeared while this job was "
            f"publishing it, and holds {sorted(present)} instead of {sorted(keep)}). Usually this is a job "
            "orphaned by a killed Snakemake that still trains, beside the one --rerun-incomplete started: wait "
            "until no job of this run is left (squeue, ps), then run Snakemake again; it takes the finished "
            "checkpoints from the workspace without training"
        )
    log.info("%s: another job of the same run published these checkpoints first; they are identical", destination)


def reference_job(message: dict, shard: Shard) -> None:
    """Train the run (resuming from its workspace), or in a chain of jobs its part up to epoch `until`, and publish
    the checkpoints. The run's last job also writes its train log, its spec and the tables of the measurements that
    need no w* (pathgeo.measurements.w_star_free; empty where its replay measures).
    `values`: workspace, checkpoint_epochs (the run's; a job of a chain ends at one of them), until, earlier (the
    output folder of the chain's job before this one, or None), extends (the checkpoints folder of the shorter run
    this one goes on from, pathgeo.planning.config.extended_run, or None), checkpoints (this job's output folder) and
    published (the epochs it holds: those up to `until`), validate_every; for the last job train_log, spec,
    correlations (the w*-free settings, or None), train_correlations and train_correlation_matrices (their
    tables); code (the version of the code that shapes a trajectory, pathgeo.planning.provenance), which every checkpoint
    and the spec record."""
    request, job = begin_job(message, shard)
    values = request.values
    # Snakemake deletes the outputs of a killed job before it runs again, so checkpoints are made in a
    # workspace beside them, which a restarted job resumes from, and linked into the output when the run is done.
    workspace = Path(values["workspace"])
    epochs = tuple(values["checkpoint_epochs"])
    until, code = values["until"], values["code"]
    last_job = until == job.spec.epochs
    if shard.lead and values["earlier"]:
        adopt_checkpoints(Path(values["earlier"]), workspace)
    if shard.lead and values["extends"]:
        taken = take_up_shorter_run(Path(values["extends"]), workspace, job.spec, epochs)
        log.info(
            "run %s goes on from the shorter run %s, whose checkpoints up to epoch %d are this run's",
            job.spec.run_id,
            Path(values["extends"]).parent.name,
            taken,
        )
    resume = resume_point(workspace, epochs, code, shard)
    # The last state saved holds the w*-free tables (a run resumed after its last checkpoint saves none).
    last = {"state": resume}

    def save(epoch: int, state: dict) -> None:
        state = {**state, "code": code}
        checkpoints.save(checkpoints.checkpoint_path(workspace, epoch), state)
        last["state"] = state

    try:
        table = train_reference(
            job.spec,
            job.data,
            job.device,
            epochs,
            save,
            resume=resume,
            correlations=values["correlations"],
            shard=shard,
            until=until,
            validate_every=values["validate_every"],
        )
    finally:
        distributed.leave()
    if not shard.lead:
        return
    if not last_job:
        publish_checkpoints(workspace, Path(values["checkpoints"]), tuple(values["published"]), prune=False)
        log.info(
            "run %s: trained to epoch %d of %d; the next job of its chain goes on from there",
            job.spec.run_id,
            until,
            job.spec.epochs,
        )
        return
    steps, matrices = w_star_free.tables(last["state"], job.spec.run_id, job.spec.epochs)
    publish_checkpoints(workspace, Path(values["checkpoints"]), tuple(values["published"]))
    write_parquet(values["train_log"], table)
    write_parquet(values["train_correlations"], steps)
    write_parquet(values["train_correlation_matrices"], matrices)
    write_json(
        values["spec"],
        {"run_id": job.spec.run_id, "spec": job.spec.canonical(), "code": code, "settings": job.settings},
    )
