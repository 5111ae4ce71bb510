"""External commands (SLURM's, nvidia-smi) as plain results: one that is missing, fails or hangs gives a result
with a non-zero return code and the reason, never an exception. The modules that call them take a `Runner`, so
that their tests feed them simulated output."""

from __future__ import annotations

import subprocess
from collections.abc import Callable

Runner = Callable[[list[str]], subprocess.CompletedProcess]

# Seconds a command may take; squeue, scontrol and nvidia-smi answer in well under one.
TIMEOUT_SECONDS = 60


def run(command: list[str]) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(command, check=False, capture_output=True, text=True, timeout=TIMEOUT_SECONDS)
    except (OSError, subprocess.TimeoutExpired) as error:
        return subprocess.CompletedProcess(command, 1, "", str(error))
