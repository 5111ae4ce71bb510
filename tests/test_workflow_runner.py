"""The tests' Snakemake runs (tests/workflow_runner.py): forked from a server that has imported the workflow's
modules, they answer as the command in a new interpreter does; a copy of the workflow gets a new interpreter."""

import os
import subprocess
from pathlib import Path

from workflow_runner import REPO, copy_workflow, run_anew, run_snakemake, snakemake_command
from workflow_runner import _imports_this_checkout as forked


def fresh(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    workdir.mkdir(parents=True, exist_ok=True)
    return run_anew(snakemake_command(workdir, *args), workdir)


def test_a_forked_run_gives_the_status_and_output_of_the_command(tmp_path):
    for name, args in {"version": ("--version",), "refused": ("-n", "--config", "threads=0")}.items():
        by_fork, by_command = run_snakemake(tmp_path / name / "forked", *args), fresh(tmp_path / name / "fresh", *args)
        assert by_fork.returncode == by_command.returncode
        assert by_fork.stdout == by_command.stdout
        assert by_fork.stderr.splitlines()[-1:] == by_command.stderr.splitlines()[-1:]
    assert run_snakemake(tmp_path / "refused" / "again", "-n", "--config", "threads=0").returncode == 1


def test_a_forked_run_takes_the_environment_it_is_given(tmp_path):
    """The plan's model sizes are cached where the run's XDG_CACHE_HOME says (pathgeo.atomic.cache_folder): the
    run's own environment is what it reads, not the server's."""
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    assert run_snakemake(tmp_path / "work", "-n", env=env).returncode == 0
    assert list((tmp_path / "cache" / "pathgeo").glob("model-sizes-*.json"))


def test_only_this_checkouts_workflow_is_forked(tmp_path):
    assert forked(REPO / "Snakefile", tmp_path, None)
    assert forked(None, REPO, None)
    assert not forked(None, tmp_path, None)
    assert not forked(copy_workflow(tmp_path / "copy"), tmp_path, None)
    assert not forked(REPO / "Snakefile", tmp_path, {"PYTHONPATH": str(tmp_path)})
