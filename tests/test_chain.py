"""Reference training longer than the site's time limit (config key max_job_minutes) runs as a chain of jobs, each
resuming from the checkpoint of the one before it, and ends bit-identical to one uninterrupted job."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from workflow_runner import run_snakemake

from pathgeo.planning import sizing
from pathgeo.planning.config import DEFAULT_MAX_JOB_MINUTES, build_plan, max_job_minutes

ROOT = Path(__file__).resolve().parents[1]
IMAGENET = ROOT / "config" / "presets" / "imagenet.yaml"


def fitted_imagenet(limit: int | None):
    plan = build_plan(yaml.safe_load(IMAGENET.read_text()))
    return plan, sizing.within_time_limit(plan, limit, "a100", 16)


def test_a_run_that_fits_is_one_job():
    _, plan = fitted_imagenet(None)
    for run_id, spec in plan.runs.items():
        checkpoints = plan.checkpoint_epochs(run_id)
        assert sizing.reference_chain(spec, checkpoints, None, "a100", 16) == (spec.epochs,)
        fits = sizing.runtime_minutes(spec, spec.epochs, "a100", 16)
        assert sizing.reference_chain(spec, checkpoints, fits, "a100", 16) == (spec.epochs,)
        assert len(sizing.reference_chain(spec, checkpoints, fits - 1, "a100", 16)) > 1


@pytest.mark.parametrize("limit", [24 * 60, DEFAULT_MAX_JOB_MINUTES, 7 * 24 * 60])
def test_every_job_of_a_chain_ends_at_a_checkpoint_and_asks_for_no_more_than_the_limit(limit):
    original, plan = fitted_imagenet(limit)
    chained = 0
    for run_id, spec in plan.runs.items():
        checkpoints = plan.checkpoint_epochs(run_id)
        ends = sizing.reference_chain(spec, checkpoints, limit, "a100", 16)
        assert list(ends) == sorted(set(ends)) and ends[-1] == spec.epochs and set(ends) <= set(checkpoints)
        starts = (0, *ends[:-1])
        for start, end in zip(starts, ends):
            assert sizing.runtime_minutes(spec, end - start, "a100", 16) <= limit, (run_id, start, end)
            # As few jobs as the limit allows: the job could not reach the next checkpoint too.
            later = [epoch for epoch in checkpoints if epoch > end]
            if later:
                assert sizing.runtime_minutes(spec, later[0] - start, "a100", 16) > limit, (run_id, start, end)
        chained += len(ends) > 1
        # A run whose training alone is estimated longer than the limit is always chained (the issue counted 8 of
        # the 14 ImageNet runs above 48 hours); with the time limit's safety factor of 2, some shorter ones are too.
        if sizing.training_hours(spec, spec.epochs, "a100", 16) * 60 > limit:
            assert len(ends) > 1, run_id
        # Reference points stay checkpoints.
        assert {ref.epoch for ref in original.references(run_id)} <= set(checkpoints)
    if limit == DEFAULT_MAX_JOB_MINUTES:
        assert chained == 11


def test_segments_are_shortened_to_fit_the_limit():
    """ImageNet ResNet-50 x2 at 180 epochs: the replay of a 10-epoch segment would ask for more than 48 hours; its
    segments become the largest divisor of 10 that fits, so that reference epochs stay checkpoints."""
    original, plan = fitted_imagenet(DEFAULT_MAX_JOB_MINUTES)
    shortened = 0
    for run_id, spec in plan.runs.items():
        every, now = original.run_segment_epochs[run_id], plan.run_segment_epochs[run_id]
        assert every % now == 0
        for start, end in plan.segments(run_id):
            assert sizing.runtime_minutes(spec, end - start, "a100", 16, probe=True) <= DEFAULT_MAX_JOB_MINUTES
        if now < every:
            shortened += 1
            assert sizing.runtime_minutes(spec, every, "a100", 16, probe=True) > DEFAULT_MAX_JOB_MINUTES
            assert "resnet50x2" in run_id and now == 5
    assert shortened == 2
    assert fitted_imagenet(None)[1] == original


def test_a_limit_below_one_epoch_trains_one_epoch_per_job():
    _, plan = fitted_imagenet(1)
    run_id, spec = next(iter(plan.runs.items()))
    assert plan.checkpoint_epochs(run_id) == tuple(range(spec.epochs + 1))
    assert sizing.reference_chain(spec, plan.checkpoint_epochs(run_id), 1, "a100", 16) == tuple(
        range(1, spec.epochs + 1)
    )


def test_the_default_limit_and_none():
    assert max_job_minutes({}) == DEFAULT_MAX_JOB_MINUTES == 48 * 60
    assert max_job_minutes({"max_job_minutes": None}) is None
    assert max_job_minutes({"max_job_minutes": 600}) == 600


def test_the_compute_plan_prints_each_runs_jobs():
    result = subprocess.run(
        [sys.executable, "-m", "pathgeo.tools.compute_plan", "--configfile", str(IMAGENET)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "jobs" in lines[0], lines[0]
    _, plan = fitted_imagenet(DEFAULT_MAX_JOB_MINUTES)
    jobs = {}
    for line in lines[1 : 1 + len(plan.runs)]:
        run_id, *_ = line.split()
        (cell,) = re.findall(r"\s(\d+)\+(\d+)\s", line)
        jobs[run_id] = int(cell[0])
        assert int(cell[1]) == len(plan.segments(run_id))
    assert jobs == {
        run_id: len(sizing.reference_chain(spec, plan.checkpoint_epochs(run_id), DEFAULT_MAX_JOB_MINUTES, "a100", 16))
        for run_id, spec in plan.runs.items()
    }
    # docs/sizing.md's figures for the ImageNet preset at the default limit.
    assert sum(count > 1 for count in jobs.values()) == 11 and sum(jobs.values()) == 56


def test_the_cluster_profile_plans_a_chain_for_imagenet(tmp_path):
    """The issue's acceptance: more reference-training jobs than runs, through the profile, without SLURM."""
    result = run_snakemake(
        tmp_path,
        "-n",
        "--profile",
        "cluster",
        "--config",
        f"data_root={tmp_path / 'x'}",
        snakefile=None,
        configfile=IMAGENET,
        cwd=ROOT,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    stats = dict(re.findall(r"^(reference(?:_part)?)\s+(\d+)$", output, re.M))
    runs = len(build_plan(yaml.safe_load(IMAGENET.read_text())).runs)
    assert int(stats["reference"]) == runs
    assert int(stats["reference"]) + int(stats["reference_part"]) > runs, stats
    # Every job of the chain asks for no more than the limit, in minutes.
    runtimes = [
        int(m)
        for m in re.findall(r"^rule reference(?:_part)?:\n(?:    .*\n)*?    resources: .*\bruntime=(\d+)", output, re.M)
    ]
    assert runtimes and max(runtimes) <= DEFAULT_MAX_JOB_MINUTES


def small_config(limit: int | None) -> dict:
    """Two MNIST-1D runs of 3 epochs, in segments of one epoch: one replayed, and one that measures during training
    only (its tables are carried from job to job in the checkpoints). With a limit of one minute, every epoch is a
    job of its own."""
    config = yaml.safe_load((ROOT / "tests/configs/tiny.yaml").read_text())
    config["datasets"] = {"mnist1d": config["datasets"]["mnist1d"]}
    config["segment_epochs"] = 1
    config["defaults"]["epochs"] = 3
    config["max_job_minutes"] = limit
    config["experiments"] = {
        "baseline": {"description": "one run"},
        "trained_only": {
            "description": "measured during training",
            "measure": "w_star_free",
            "set": {"optimizer": "sgd", "lr": 0.05},
        },
    }
    config["figures"] = {}
    return config


def run_workflow(workdir: Path, limit: int | None) -> str:
    path = workdir.with_suffix(".yaml")
    path.write_text(yaml.safe_dump(small_config(limit)))
    result = run_snakemake(workdir, "--cores", "2", configfile=path)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    return output


@pytest.mark.slow
def test_a_chained_reference_ends_bit_identical_to_one_job(tmp_path):
    chained_output = run_workflow(tmp_path / "chained", 1)
    run_workflow(tmp_path / "whole", None)
    # Two runs of 3 epochs, one epoch per job: 2 jobs of each chain before its last.
    assert re.search(r"^reference_part\s+4$", chained_output, re.M), chained_output[-3000:]
    chained, whole = tmp_path / "chained" / "results", tmp_path / "whole" / "results"
    runs = sorted(path.name for path in (whole / "runs").iterdir())
    assert len(runs) == 2
    compared = 0
    for run in runs:
        checkpoints = sorted((whole / "runs" / run / "checkpoints").glob("*.pt"))
        assert [path.name for path in checkpoints] == ["epoch0000.pt", "epoch0001.pt", "epoch0002.pt", "epoch0003.pt"]
        assert sorted(path.name for path in (chained / "runs" / run / "checkpoints").glob("*.pt")) == [
            path.name for path in checkpoints
        ]
        files = [*checkpoints, *(whole / "runs" / run).glob("*.parquet"), *(whole / "runs" / run).glob("replay/*")]
        for path in files:
            assert path.read_bytes() == (chained / path.relative_to(whole)).read_bytes(), path
            compared += 1
        # Each job of the chain but the last handed on everything it saved up to its end.
        assert sorted(path.name for path in (chained / "runs" / run / "chain" / "0002").glob("*.pt")) == [
            "epoch0000.pt",
            "epoch0001.pt",
            "epoch0002.pt",
        ]
        log = (tmp_path / "chained" / "logs" / "reference" / f"{run}.until0001.log").read_text()
        assert "trained to epoch 1 of 3" in log
    assert compared >= 2 * 5
