"""The tests' Snakemake processes and their jobs, forked from a server that has imported torch, Polars, Altair and
Snakemake, rather than started as new interpreters.

Each of a run's `script:` jobs is `{sys.executable} .snakemake/scripts/tmpXXXX.NAME.py` to Snakemake: a new
interpreter that spends most of a small job's time importing torch (with torch._dynamo, which an optimizer's first
step imports), Polars and Altair, as Snakemake's own process does. The server here has imported them once. It runs
a script (Snakemake's command line, or a job's script) in a forked child as `python SCRIPT ARGS` would: with the
request's arguments, working directory, environment and standard streams, `sys.path` built from its PYTHONPATH,
and its exit status (or signal) sent back. The library is not imported by the server, so each process imports it
from its own PYTHONPATH, as a new interpreter does: a copied workflow's own library, say.

A forked Snakemake's `sys.executable` is a launcher (`write_launcher`): Snakemake starts each job through it, and it
hands the job to the server and exits as the job does, passing on the signals it receives. Any other command
(`python -m snakemake ...` on a cluster node) replaces the launcher with the interpreter.

Only light modules of the standard library are imported at the top: each job's launcher imports this module.
"""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import struct
import sys
from dataclasses import dataclass

# What the workflow's processes import from outside the library and the standard library, the slow part of their
# start: Snakemake, torch with what an optimizer's first step and `use_deterministic_algorithms` import, the
# tables and the charts, and what the probe's CPU kernels import.
PRELOAD = (
    "snakemake.cli",
    "snakemake.script",
    "torch",
    "torch._dynamo",
    "torch._inductor",
    "polars",
    "altair",
    "vl_convert",
    "yaml",
    "numba",
    "scipy.linalg",
)
FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)
_HEADER = struct.Struct("!I")


def is_job(arguments: list[str]) -> bool:
    """Whether an interpreter's arguments are Snakemake's command for a `script:` job."""
    return len(arguments) == 1 and arguments[0].endswith(".py") and "/.snakemake/scripts/" in arguments[0]


def write_launcher(path: str, address: str, interpreter: str) -> str:
    """An executable at `path` that sends a job's command to the server at `address`; any other command runs
    `interpreter` with the same arguments."""
    here = os.path.dirname(os.path.abspath(__file__))
    with open(path, "w", encoding="utf-8") as launcher:
        launcher.write(
            f"#!{interpreter} -IS\nimport sys\nsys.path.insert(0, {here!r})\n"
            f"from job_server import launch\nlaunch({address!r}, {interpreter!r})\n"
        )
    os.chmod(path, 0o755)
    return path


def launch(address: str, interpreter: str) -> None:
    """The launcher's work: the job in a child of the server, this process exiting as the job does."""
    arguments = sys.argv[1:]
    if not is_job(arguments):
        os.execv(interpreter, [interpreter, *arguments])
    job = start(address, arguments, os.getcwd(), dict(os.environ), (0, 1, 2))
    for number in FORWARDED_SIGNALS:
        signal.signal(number, lambda received, frame: os.kill(job.pid, received))
    returncode = finish(job)
    if returncode < 0:
        signal.signal(-returncode, signal.SIG_DFL)
        os.kill(os.getpid(), -returncode)
    sys.exit(returncode)


@dataclass(frozen=True)
class Started:
    """A script running in a child of the server: its pid, and the connection on which its end is reported."""

    pid: int
    connection: socket.socket
    replies: io.BufferedReader


def start(
    address: str,
    arguments: list[str],
    cwd: str,
    environment: dict[str, str],
    streams: tuple[int, int, int],
    executable: str | None = None,
) -> Started:
    """`python ARGUMENTS` (a script and its arguments) in a child of the server at `address`, with `streams` as
    its standard input, output and error and, where given, `executable` as its `sys.executable`."""
    request = json.dumps({"argv": arguments, "cwd": cwd, "env": environment, "executable": executable}).encode()
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    connection.connect(address)
    socket.send_fds(connection, [_HEADER.pack(len(request)) + request], list(streams))
    # Buffered: a script that ends at once may have its pid and its end arrive in one read.
    replies = connection.makefile("rb")
    return Started(int(_reply(replies)), connection, replies)


def finish(job: Started) -> int:
    """The child's end as `subprocess` reports it: its exit status, or minus the signal that ended it."""
    how, value = _reply(job.replies).split()
    job.replies.close()
    job.connection.close()
    return -int(value) if how == "signal" else int(value)


def _reply(replies: io.BufferedReader) -> str:
    line = replies.readline()
    if not line.endswith(b"\n"):
        raise ConnectionError("the job server closed the connection")
    return line.decode()


def serve(address: str) -> None:
    """Import PRELOAD, then fork a child for each script sent to `address`, until terminated."""
    import gc
    import importlib

    for module in PRELOAD:
        importlib.import_module(module)
    base_path = [entry for entry in sys.path[1:] if entry not in _python_path(os.environ)]
    gc.freeze()
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(address)
    listener.listen(64)
    print("ready", flush=True)
    while True:
        connection, _ = listener.accept()
        if os.fork() == 0:
            listener.close()
            _watch(connection, base_path)
        connection.close()


def _watch(connection: socket.socket, base_path: list[str]) -> None:
    """In the server's child: receive the request, run it in a child of its own, send its pid and then its end."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    message, descriptors, _, _ = socket.recv_fds(connection, 1 << 16, 3)
    (length,) = _HEADER.unpack(message[: _HEADER.size])
    body = message[_HEADER.size :]
    while len(body) < length:
        body += connection.recv(length - len(body))
    request = json.loads(body)
    child = os.fork()
    if child == 0:
        connection.close()
        _run(request, descriptors, base_path)
    for descriptor in descriptors:
        os.close(descriptor)
    connection.sendall(f"{child}\n".encode())
    _, status = os.waitpid(child, 0)
    if os.WIFSIGNALED(status):
        connection.sendall(f"signal {os.WTERMSIG(status)}\n".encode())
    else:
        connection.sendall(f"exit {os.WEXITSTATUS(status)}\n".encode())
    os._exit(0)


def _run(request: dict, descriptors: list[int], base_path: list[str]) -> None:
    """What `python SCRIPT ARGS` does with the request's working directory, environment and standard streams, from
    its `sys.path` to its exit handlers and status."""
    import atexit
    import runpy

    for target, descriptor in enumerate(descriptors):
        os.dup2(descriptor, target)
        os.close(descriptor)
    for number in FORWARDED_SIGNALS:
        signal.signal(number, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    script, *_ = sys.argv[:] = request["argv"]
    sys.path[:] = [os.path.dirname(os.path.abspath(script)), *_python_path(os.environ), *base_path]
    if request["executable"]:
        sys.executable = request["executable"]
    sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False))
    sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), line_buffering=True)
    sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), line_buffering=True)
    _take_thread_count(os.environ)
    try:
        runpy.run_path(script, run_name="__main__")
        status = 0
    except SystemExit as stop:
        status = _exit_status(stop.code)
    except BaseException as error:
        sys.excepthook(type(error), error, error.__traceback__)
        status = -signal.SIGINT if isinstance(error, KeyboardInterrupt) else 1
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    if status < 0:
        signal.signal(-status, signal.SIG_DFL)
        os.kill(os.getpid(), -status)
    os._exit(status)


def _exit_status(code: object) -> int:
    """The status the interpreter exits with for `sys.exit(code)`: a message is printed and exits with 1."""
    if code is None or isinstance(code, int):
        return code or 0
    print(code, file=sys.stderr)
    return 1


def _python_path(environment: dict[str, str] | os._Environ) -> list[str]:
    return [entry for entry in environment.get("PYTHONPATH", "").split(os.pathsep) if entry]


def _take_thread_count(environment: dict[str, str] | os._Environ) -> None:
    """torch reads OMP_NUM_THREADS (which Snakemake sets to a job's threads) when it is imported: the child's."""
    import torch

    if environment.get("OMP_NUM_THREADS", "").isdigit():
        torch.set_num_threads(int(environment["OMP_NUM_THREADS"]))


if __name__ == "__main__":
    serve(sys.argv[1])
