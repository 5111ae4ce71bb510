"""Snakemake as the tests run it: the workflow of this checkout (or of a copy of it), always in a directory of the
test's own (`--directory`), never in the repository; and what a (dry) run's output says about the jobs it planned.

Every test that starts Snakemake goes through `snakemake_command` or `run_snakemake`.

`run_snakemake` on this checkout's Snakefile starts Snakemake's command line in a process forked from a server that
has already imported what every Snakemake process of this workflow imports (Snakemake, torch, Polars, Altair, the
library's planning), rather than in a new interpreter: the same command, arguments, working directory and
environment, its output and exit status returned as `subprocess.run` returns them, but without the imports that
each of the suite's Snakemake processes would otherwise repeat (a dry run of the default config took 4.7 CPU-seconds
in a new interpreter and 0.9 forked, on CI's kind of machine). A run of a copied Snakefile, or with another
PYTHONPATH, imports its own library and starts a new interpreter as a user's command does
(tests/test_workflow_runner.py).
"""

from __future__ import annotations

import atexit
import functools
import io
import multiprocessing
import multiprocessing.forkserver
import os
import re
import shutil
import subprocess
import sys
import tempfile
import traceback
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SNAKEFILE = REPO / "Snakefile"
TINY = REPO / "tests" / "configs" / "tiny.yaml"
DEFAULT_CONFIG = REPO / "config" / "config.yaml"


def snakemake_exe() -> str:
    """The snakemake of the running interpreter's environment (the venv's), else the one on PATH."""
    beside = Path(sys.executable).parent / "snakemake"
    return str(beside) if beside.exists() else shutil.which("snakemake")


def snakemake_command(
    workdir: Path | None, *args: str, snakefile: Path | None = SNAKEFILE, configfile: Path | None = None
) -> list[str]:
    """`snakemake -s SNAKEFILE --directory WORKDIR [--configfile CONFIGFILE] ARGS`; without `-s` where `snakefile` is
    None (Snakemake then finds the Snakefile in its working directory, as a user's command does) and without
    `--directory` where `workdir` is None."""
    command = [snakemake_exe()]
    if snakefile is not None:
        command += ["-s", str(snakefile)]
    if workdir is not None:
        command += ["--directory", str(workdir)]
    if configfile is not None:
        command += ["--configfile", str(configfile)]
    return [*command, *args]


def run_snakemake(
    workdir: Path,
    *args: str,
    snakefile: Path | None = SNAKEFILE,
    configfile: Path | None = None,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 900,
) -> subprocess.CompletedProcess:
    """Snakemake in `workdir` (created if missing), run from `cwd` (default: `workdir`), its output captured as text."""
    workdir.mkdir(parents=True, exist_ok=True)
    command = snakemake_command(workdir, *args, snakefile=snakefile, configfile=configfile)
    cwd = cwd or workdir
    if _imports_this_checkout(snakefile, cwd, env):
        return _run_forked(command, cwd, env, timeout)
    return run_anew(command, cwd, env, timeout)


def run_anew(
    command: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 900
) -> subprocess.CompletedProcess:
    """The command in a new interpreter, as a user's shell starts it, its output captured as text."""
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)


def _imports_this_checkout(snakefile: Path | None, cwd: Path, env: dict[str, str] | None) -> bool:
    """Whether the run's Snakefile is this checkout's and imports the library the forking server imported."""
    found = snakefile if snakefile is not None else Path(cwd) / "Snakefile"
    same_path = env is None or env.get("PYTHONPATH") == os.environ.get("PYTHONPATH")
    return found.resolve() == SNAKEFILE and same_path


def _preloaded_modules() -> list[str]:
    """What a Snakemake process of this workflow imports: Snakemake's command line, the library modules the Snakefile
    and its rules import, torch with torch._dynamo (the first optimizer built, when a plan sizes its jobs, imports
    it), and the tables and charts of the figure rules' imports; and this module, whose function the fork runs."""
    sources = [SNAKEFILE, *sorted((REPO / "rules").glob("*.smk"))]
    library = {
        match.group(1)
        for source in sources
        for match in re.finditer(r"^\s*from (pathgeo[\w.]*) import", source.read_text(), re.MULTILINE)
    }
    return ["snakemake.cli", "torch", "torch._dynamo", "polars", "altair", *sorted(library), __name__]


# The environment the session started in: the forking server imports its modules there, whatever the test that
# first asks for a run has set (each forked run then takes its own environment).
_SESSION_ENVIRONMENT = dict(os.environ)


@functools.cache
def _forking_server() -> multiprocessing.context.ForkServerContext:
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(_preloaded_modules())
    current = dict(os.environ)
    os.environ.clear()
    os.environ.update(_SESSION_ENVIRONMENT)
    try:
        multiprocessing.forkserver.ensure_running()
    finally:
        os.environ.clear()
        os.environ.update(current)
    return context


def _run_forked(
    command: list[str], cwd: Path, env: dict[str, str] | None, timeout: float
) -> subprocess.CompletedProcess:
    """`subprocess.run(command, capture_output=True, text=True)` for a Snakemake command, in a forked process."""
    environment = dict(os.environ if env is None else env)
    with tempfile.TemporaryDirectory() as captured:
        stdout, stderr = Path(captured, "stdout"), Path(captured, "stderr")
        process = _forking_server().Process(
            target=_snakemake_main, args=(command[1:], str(cwd), environment, str(stdout), str(stderr))
        )
        process.start()
        process.join(timeout)
        if process.exitcode is None:
            process.kill()
            process.join()
            raise subprocess.TimeoutExpired(command, timeout, _read(stdout), _read(stderr))
        return subprocess.CompletedProcess(command, process.exitcode, _read(stdout), _read(stderr))


def _read(path: Path) -> str:
    return path.read_text() if path.exists() else ""


def _snakemake_main(arguments: list[str], cwd: str, environment: dict[str, str], stdout: str, stderr: str) -> None:
    """In the forked process: what the interpreter of `snakemake ARGUMENTS` does, from its working directory and
    environment to its exit handlers and status, with its standard output and error written to the two files."""
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(environment)
    for descriptor, path in ((1, stdout), (2, stderr)):
        opened = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(opened, descriptor)
        os.close(opened)
    sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), line_buffering=True)
    sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), line_buffering=True)
    sys.argv = ["snakemake", *arguments]
    from snakemake.cli import main

    try:
        main()
        status = 0
    except SystemExit as stop:
        status = _exit_status(stop.code)
    except BaseException:
        traceback.print_exc()
        status = 1
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def _exit_status(code: object) -> int:
    """The status the interpreter exits with for `sys.exit(code)`: a message is printed and exits with 1."""
    if code is None or isinstance(code, int):
        return code or 0
    print(code, file=sys.stderr)
    return 1


def output_of(result: subprocess.CompletedProcess) -> str:
    return (result.stdout or "") + (result.stderr or "")


def check(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    """The result of a run that must succeed; otherwise the test fails with the end of Snakemake's output."""
    if result.returncode != 0:
        pytest.fail(f"snakemake exited with {result.returncode}:\n{output_of(result)[-6000:]}")
    return result


COPY_IGNORE = {".git", ".venv", ".snakemake", ".pytest_cache", "results", "logs", "tests", "pathgeo.egg-info", "site"}


def copy_workflow(dest: Path) -> Path:
    """A copy of the repository's workflow files (modification times kept), so that a test can edit a library module
    without touching the repository; returns the copy's Snakefile."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    dest.mkdir(parents=True)
    for item in REPO.iterdir():
        if item.name in COPY_IGNORE:
            continue
        if item.is_dir():
            shutil.copytree(item, dest / item.name, ignore=ignore)
        else:
            shutil.copy2(item, dest / item.name)
    return dest / "Snakefile"


# ---------------------------------------------------------------------------------------------------------
# What a (dry) run planned


@dataclass(frozen=True)
class Job:
    rule: str
    wildcards: dict[str, str]
    resources: dict[str, str]
    input: tuple[str, ...] = ()
    output: tuple[str, ...] = ()


def planned_jobs(text: str) -> list[Job]:
    """The jobs of a (dry-)run's output: each `rule NAME:` / `localrule NAME:` block with its fields."""
    jobs: list[Job] = []
    rule = None
    fields: dict[str, str] = {}

    def flush():
        if rule is not None:
            jobs.append(
                Job(
                    rule,
                    _pairs(fields.get("wildcards", "")),
                    _pairs(fields.get("resources", "")),
                    _files(fields.get("input", "")),
                    _files(fields.get("output", "")),
                )
            )

    for line in text.splitlines():
        m = re.match(r"^(?:local)?(?:checkpoint|rule) (\S+):$", line)
        if m:
            flush()
            rule, fields = m.group(1), {}
            continue
        m = re.match(r"^    (\w+): (.*)$", line)
        if rule is not None and m:
            fields[m.group(1)] = m.group(2)
        elif rule is not None and not line.startswith("    "):
            flush()
            rule, fields = None, {}
    flush()
    return jobs


def _pairs(text: str) -> dict[str, str]:
    return dict(item.split("=", 1) for item in text.split(", ") if "=" in item)


def _files(text: str) -> tuple[str, ...]:
    return tuple(item for item in text.split(", ") if item)


def job_counts(jobs: list[Job]) -> Counter:
    return Counter(job.rule for job in jobs)


def job_stats(text: str) -> Counter:
    """The `Job stats:` table that ends a (dry) run's output, by rule (without its `total` line)."""
    stats: Counter = Counter()
    lines = iter(text.splitlines())
    for line in lines:
        if line.strip() == "Job stats:":
            break
    for line in lines:
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            if parts[0] != "total":
                stats[parts[0]] = int(parts[1])
        elif stats:
            break
    return stats


def upstream(jobs: list[Job], target: Job) -> list[Job]:
    """`target` and every job of `jobs` it needs, directly or not (a job needs the jobs whose outputs are its inputs).

    In a directory where nothing was built yet, every needed job runs, so this is what `snakemake -n` plans for
    `target` alone: a dry run of several targets plans the union of their dependency graphs, a job shared by
    two targets once, and nothing else (the workflow has no checkpoints, which could change the graph as it runs).
    """
    producer = {path: job for job in jobs for path in job.output}
    needed, frontier = [target], [target]
    while frontier:
        for path in frontier.pop().input:
            job = producer.get(path)
            if job is not None and not any(job is seen for seen in needed):
                needed.append(job)
                frontier.append(job)
    return needed
