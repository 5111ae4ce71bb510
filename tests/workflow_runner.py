"""Snakemake as the tests run it: the workflow of this checkout (or of a copy of it), always in a directory of the
test's own (`--directory`), never in the repository; and what a (dry) run's output says about the jobs it planned.

Every test that starts Snakemake goes through `snakemake_command` or `run_snakemake`.

`run_snakemake` starts Snakemake's command line, and Snakemake its jobs' scripts, in processes forked from a server
that has already imported what each of them would import anew (Snakemake, torch, Polars, Altair; tests/job_server.py),
rather than in new interpreters: the same command, arguments, working directory and environment, the library
imported from the run's own PYTHONPATH, the output and exit status returned as `subprocess.run` returns them
(tests/test_workflow_runner.py). Without it, a small job spends most of its time importing torch. A test that kills
or signals Snakemake starts it with `subprocess.Popen` (`snakemake_command`), in a new interpreter.
"""

from __future__ import annotations

import atexit
import functools
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import job_server
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
    """Snakemake in `workdir` (created if missing), run from `cwd` (default: `workdir`), its output captured as text,
    in a process forked from the job server (tests/job_server.py), and so are its jobs."""
    workdir.mkdir(parents=True, exist_ok=True)
    command = snakemake_command(workdir, *args, snakefile=snakefile, configfile=configfile)
    return _run_forked(command, cwd or workdir, env, timeout)


def run_anew(
    command: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 900
) -> subprocess.CompletedProcess:
    """The command in a new interpreter, as a user's shell starts it, its output captured as text."""
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)


def _run_forked(
    command: list[str], cwd: Path, env: dict[str, str] | None, timeout: float
) -> subprocess.CompletedProcess:
    """`run_anew` for the command of a Python console script (`snakemake ...`), in a process forked from the job
    server, with the server's launcher as its `sys.executable`, so that its jobs are forked from the server too."""
    server = _job_server()
    arguments = [shutil.which(command[0]), *command[1:]]
    environment = dict(os.environ if env is None else env)
    with tempfile.TemporaryDirectory() as captured, open(os.devnull) as nothing:
        stdout, stderr = Path(captured, "stdout"), Path(captured, "stderr")
        with stdout.open("w") as out, stderr.open("w") as err:
            streams = (nothing.fileno(), out.fileno(), err.fileno())
            job = job_server.start(server.address, arguments, str(cwd), environment, streams, server.launcher)
        job.connection.settimeout(timeout)
        try:
            returncode = job_server.finish(job)
        except TimeoutError:
            os.kill(job.pid, signal.SIGKILL)
            job.connection.close()
            raise subprocess.TimeoutExpired(command, timeout, stdout.read_text(), stderr.read_text()) from None
        return subprocess.CompletedProcess(command, returncode, stdout.read_text(), stderr.read_text())


@dataclass(frozen=True)
class JobServer:
    address: str
    launcher: str


# The environment the session started in: the job server imports its modules there, whatever the test that first
# asks for a run has set (each forked process then takes its own environment).
_SESSION_ENVIRONMENT = dict(os.environ)


# A test may run two workflows at once, from two threads; the first to ask starts the server.
_STARTING = threading.Lock()


def _job_server() -> JobServer:
    """This process's job server, which runs as long as the process, and the launcher of the jobs it forks."""
    with _STARTING:
        return _start_job_server()


@functools.cache
def _start_job_server() -> JobServer:
    directory = tempfile.mkdtemp(prefix="pathgeo-jobs-")
    address = os.path.join(directory, "server")
    with open(os.path.join(directory, "server.log"), "w") as log:
        server = subprocess.Popen(
            [sys.executable, job_server.__file__, address],
            env=_SESSION_ENVIRONMENT,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
    if server.stdout.readline().strip() != "ready":
        raise RuntimeError(f"the job server did not start: {Path(directory, 'server.log').read_text()}")

    def stop() -> None:
        server.terminate()
        server.wait()
        shutil.rmtree(directory, ignore_errors=True)

    atexit.register(stop)
    return JobServer(address, job_server.write_launcher(os.path.join(directory, "python"), address, sys.executable))


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
