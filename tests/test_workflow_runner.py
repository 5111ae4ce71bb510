"""The tests' Snakemake runs (tests/workflow_runner.py, tests/job_server.py): Snakemake and its jobs, forked from a
server that has imported torch, answer as the command in a new interpreter does, each with its own environment and
the library of its own PYTHONPATH."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import job_server
from workflow_runner import _job_server, copy_workflow, run_anew, run_snakemake, snakemake_command


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


def test_snakemake_and_its_jobs_import_the_library_of_their_own_copy_into_a_forked_process(tmp_path):
    """A copy's library, edited to write down where it was imported from and whether torch was already there: the
    Snakemake process and the job (the rule vega_bundle) import the copy's, in processes that start with torch."""
    snakefile = copy_workflow(tmp_path / "copy")
    marks = tmp_path / "imports.txt"
    init = snakefile.parent / "pathgeo" / "__init__.py"
    init.write_text(
        init.read_text()
        + f"\nimport sys as _sys\nwith open({str(marks)!r}, 'a') as _marks:\n"
        + "    _marks.write(f\"{__file__} {'torch' in _sys.modules} {_sys.argv[0]}\\n\")\n"
    )
    env = {**os.environ, "PYTHONPATH": str(snakefile.parent)}
    result = run_snakemake(
        tmp_path / "work", "--cores", "1", "results/vega/vega-embed.js", snakefile=snakefile, env=env
    )
    assert result.returncode == 0, result.stderr[-3000:]
    imports = [line.split() for line in marks.read_text().splitlines()]
    # Snakemake's program is its console script; a job's, .snakemake/scripts/tmpXXXX.RULE.py.
    programs = {
        Path(program).suffixes[-2][1:] if program.endswith(".py") else Path(program).name for *_, program in imports
    }
    assert programs == {"snakemake", "vega_bundle"}, imports
    assert all(imported == str(init) and torch == "True" for imported, torch, _ in imports), imports


def run_script(tmp_path: Path, source: str) -> tuple[int, str]:
    """`python SCRIPT` in a child of the job server: its status as `subprocess` gives it, and its output."""
    script, output = tmp_path / "script.py", tmp_path / "output.txt"
    script.write_text(source)
    with open(os.devnull) as nothing, output.open("w") as out:
        streams = (nothing.fileno(), out.fileno(), out.fileno())
        job = job_server.start(
            _job_server().address, [str(script), "an argument"], str(tmp_path), {"SEEN": "yes"}, streams
        )
    return job_server.finish(job), output.read_text()


def test_a_forked_script_gets_its_arguments_directory_environment_and_exit_status(tmp_path):
    status, output = run_script(
        tmp_path, "import os, sys\nprint((sys.argv[1:], os.getcwd(), dict(os.environ)))\nsys.exit(3)\n"
    )
    assert status == 3
    assert output.strip() == repr((["an argument"], str(tmp_path), {"SEEN": "yes"}))


def test_a_forked_script_that_fails_or_is_killed_ends_as_a_new_interpreter_would(tmp_path):
    status, output = run_script(tmp_path, "raise ValueError('a failing job')\n")
    assert status == 1 and "ValueError: a failing job" in output
    # An error nothing catches goes to sys.excepthook, which the jobs set to write it into their log.
    hooked = (
        "import sys\nsys.excepthook = lambda kind, error, trace: print('hooked', error)\nraise ValueError('late')\n"
    )
    assert run_script(tmp_path, hooked) == (1, "hooked late\n")
    status, output = run_script(tmp_path, "raise KeyboardInterrupt\n")
    assert status == -signal.SIGINT and "KeyboardInterrupt" in output
    status, _ = run_script(tmp_path, "import os, signal\nos.kill(os.getpid(), signal.SIGTERM)\n")
    assert status == -signal.SIGTERM


def test_the_launcher_hands_jobs_to_the_server_and_runs_anything_else_itself(tmp_path):
    launcher = _job_server().launcher
    other = subprocess.run([launcher, "-c", "import sys; print(sys.executable)"], capture_output=True, text=True)
    assert other.returncode == 0 and other.stdout.strip() == sys.executable
    job = tmp_path / ".snakemake" / "scripts" / "tmp1234.job.py"
    job.parent.mkdir(parents=True)
    job.write_text("import sys\nprint('torch' in sys.modules)\nsys.exit(7)\n")
    forked = subprocess.run([launcher, str(job)], capture_output=True, text=True, cwd=tmp_path)
    assert (forked.returncode, forked.stdout.strip()) == (7, "True")
