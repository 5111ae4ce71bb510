"""Snakemake's between-workflow cache: a second workflow in another directory that shares the cache trains
nothing; it takes the prepared data and the reference run from the cache and replays to the same numbers. A
workflow whose training code differs takes nothing trained by the other code from the cache, and a replay against
a reference of other code fails by that cause, not as drift."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pytest
import yaml
from workflow_runner import SNAKEFILE, TINY, copy_workflow, run_snakemake

from pathgeo.planning.config import build_plan


def baseline_config(tmp_path: Path) -> tuple[Path, str]:
    cfg = yaml.safe_load(TINY.read_text())
    cfg["experiments"] = {"baseline": {}}
    cfg["figures"] = {}
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(cfg))
    (run_id,) = build_plan(cfg).runs
    return config_path, run_id


@dataclass(frozen=True)
class First:
    """The first workflow: the baseline config run once with the cache, which it filled."""

    workdir: Path
    config_path: Path
    run_id: str
    cache: Path

    def cache_for(self, tmp_path: Path) -> Path:
        """A copy of the cache the first workflow filled, for one test's other workflows alone."""
        return Path(shutil.copytree(self.cache, tmp_path / "cache", symlinks=True))


@pytest.fixture(scope="module")
def first(tmp_path_factory) -> First:
    base = tmp_path_factory.mktemp("first")
    config_path, run_id = baseline_config(base)
    result = run(SNAKEFILE, base / "first", config_path, base / "cache")
    assert result.returncode == 0, result.stderr[-3000:]
    return First(base / "first", config_path, run_id, base / "cache")


def run(
    snakefile: Path, workdir: Path, config_path: Path, cache: Path | None, *targets: str
) -> subprocess.CompletedProcess:
    """Snakemake in `workdir`, with the between-workflow cache in `cache` (None: without it)."""
    env = dict(os.environ)
    if cache is not None:
        cache.mkdir(exist_ok=True)
        env["SNAKEMAKE_OUTPUT_CACHE"] = str(cache)
    return run_snakemake(
        workdir,
        "--cores",
        "2",
        *(["--cache"] if cache is not None else []),
        *targets,
        snakefile=snakefile,
        configfile=config_path,
        env=env,
    )


@pytest.mark.slow
def test_second_workflow_trains_nothing(first, tmp_path):
    config_path, run_id, cache = first.config_path, first.run_id, first.cache_for(tmp_path)
    result = run(SNAKEFILE, tmp_path / "second", config_path, cache)
    assert result.returncode == 0, result.stderr[-3000:]

    first_dir, second = first.workdir, tmp_path / "second"
    assert "run " in (first_dir / f"logs/reference/{run_id}.log").read_text()  # the first one trained
    # The second one ran neither prep nor training: Snakemake only touched their logs.
    assert (second / f"logs/reference/{run_id}.log").read_text() == ""
    assert (second / "logs/prep/mnist1d.log").read_text() == ""
    checkpoints = list((second / f"results/runs/{run_id}/checkpoints").glob("epoch*.pt"))
    assert checkpoints and all(p.is_symlink() and cache in p.resolve().parents for p in checkpoints)
    for replay in sorted((first_dir / f"results/runs/{run_id}/replay").glob("*.parquet")):
        twin = second / replay.relative_to(first_dir)
        assert pl.read_parquet(replay).equals(pl.read_parquet(twin))


@pytest.mark.slow
def test_other_training_code_takes_no_reference_from_the_cache(first, tmp_path):
    """Issue 10, item 4: the same run trained by a training loop that doubles the loss. The code version is in
    the reference rule's params, so the cache key differs: the second workflow trains (and replays with drift
    0.0) instead of taking the first one's reference, whose replay would drift. A replay that is handed the old
    code's checkpoints all the same fails naming the code, not the drift."""
    config_path, run_id, cache = first.config_path, first.run_id, first.cache_for(tmp_path)

    edited = copy_workflow(tmp_path / "edited")
    training = edited.parent / "pathgeo" / "training" / "loop.py"
    source = training.read_text()
    assert source.count("out.loss.backward()") == 1
    training.write_text(source.replace("out.loss.backward()", "(2 * out.loss).backward()"))
    second = tmp_path / "second"
    result = run(edited, second, config_path, cache)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "run " in (second / f"logs/reference/{run_id}.log").read_text()  # it trained
    checkpoints = list((second / f"results/runs/{run_id}/checkpoints").glob("epoch*.pt"))
    assert checkpoints and not any(p.is_symlink() for p in checkpoints)
    for fidelity in (second / f"results/runs/{run_id}/replay").glob("*.fidelity.json"):
        assert json.loads(fidelity.read_text())["relative_drift"] == 0.0
    first_spec = json.loads((first.workdir / f"results/runs/{run_id}/spec.json").read_text())
    second_spec = json.loads((second / f"results/runs/{run_id}/spec.json").read_text())
    assert first_spec["spec"] == second_spec["spec"] and first_spec["code"] != second_spec["code"]

    # The old code's results in a workflow of the new code (no metadata says they are stale): the replays
    # that must be made again refuse the old checkpoints.
    third = tmp_path / "third"
    shutil.copytree(first.workdir / "results", third / "results", symlinks=True)
    replays = sorted((third / f"results/runs/{run_id}/replay").glob("*[0-9].parquet"))
    for path in (third / f"results/runs/{run_id}/replay").iterdir():
        path.unlink()
    targets = [str(path.relative_to(third)) for path in replays]
    result = run(edited, third, config_path, None, *targets)
    assert result.returncode != 0
    text = result.stdout + result.stderr + "".join(p.read_text() for p in (third / "logs/replay").rglob("*.log"))
    assert f"run {run_id}: " in text and f"was made by code version {first_spec['code']}, not by this code" in text
    assert "replay drifted" not in text
