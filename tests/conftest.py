import os
import shutil
import subprocess
import sys
from pathlib import Path

# The probe's GPU path (Triton kernels) runs on the CPU under Triton's interpreter, which is chosen when
# the kernels are defined: before any test imports them.
os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

from pathgeo import devices  # noqa: E402


@pytest.fixture(scope="module")
def deterministic_single_thread():
    """One thread and deterministic algorithms for a module's tests, restored afterwards: exact-equality
    checks then do not depend on the machine's core count."""
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(1)
    devices.configure_determinism(True)
    yield
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(deterministic, warn_only=True)


ROOT = Path(__file__).resolve().parents[1]


def snakemake_command(workdir: Path, *args: str) -> list[str]:
    """The workflow of this checkout, run in `workdir`."""
    beside = Path(sys.executable).parent / "snakemake"
    executable = str(beside) if beside.exists() else shutil.which("snakemake")
    return [executable, "-s", str(ROOT / "Snakefile"), "--directory", str(workdir), *args]


@pytest.fixture(scope="session")
def default_run(tmp_path_factory) -> Path:
    """A working directory where the whole default ran (about five minutes on 2 cores), made once for the session:
    the README's numbers and the configs that run beside the default read it."""
    workdir = tmp_path_factory.mktemp("default-run")
    command = snakemake_command(workdir, "--configfile", str(ROOT / "config" / "config.yaml"), "--cores", "2")
    result = subprocess.run(command, cwd=workdir, capture_output=True, text=True, timeout=1800, check=False)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    return workdir
