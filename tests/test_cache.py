"""Snakemake's between-workflow cache: a second workflow in another directory that shares the cache trains
nothing; it takes the prepared data and the reference run from the cache and replays to the same numbers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
import yaml

from pathgeo.config import build_plan

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


@pytest.mark.slow
def test_second_workflow_trains_nothing(tmp_path):
    cfg = yaml.safe_load((ROOT / "tests/configs/tiny.yaml").read_text())
    cfg["experiments"] = {"baseline": {}}
    cfg["figures"] = {}
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(cfg))
    (run_id,) = build_plan(cfg).runs
    cache = tmp_path / "cache"
    cache.mkdir()
    env = {**os.environ, "SNAKEMAKE_OUTPUT_CACHE": str(cache)}
    for name in ("first", "second"):
        result = subprocess.run(
            [SNAKEMAKE, "-s", str(ROOT / "Snakefile"), "--directory", str(tmp_path / name),
             "--configfile", str(config_path), "--cores", "2", "--cache"],
            capture_output=True, text=True, env=env,
        )
        assert result.returncode == 0, result.stderr[-3000:]

    first, second = tmp_path / "first", tmp_path / "second"
    assert "run " in (first / f"logs/reference/{run_id}.log").read_text()  # the first one trained
    # The second one ran neither prep nor training: Snakemake only touched their logs.
    assert (second / f"logs/reference/{run_id}.log").read_text() == ""
    assert (second / "logs/prep/mnist1d.log").read_text() == ""
    checkpoints = list((second / f"results/runs/{run_id}/checkpoints").glob("epoch*.pt"))
    assert checkpoints and all(p.is_symlink() and cache in p.resolve().parents for p in checkpoints)
    for replay in sorted((first / f"results/runs/{run_id}/replay").glob("*.parquet")):
        twin = second / replay.relative_to(first)
        assert pl.read_parquet(replay).equals(pl.read_parquet(twin))
