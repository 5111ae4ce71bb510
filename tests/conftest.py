import os
from pathlib import Path

# The probe's GPU path (Triton kernels) runs on the CPU under Triton's interpreter, which is chosen when
# the kernels are defined: before any test imports them.
os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402
import torch  # noqa: E402
from workflow_runner import DEFAULT_CONFIG, run_snakemake  # noqa: E402

from pathgeo.training import devices  # noqa: E402


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


@pytest.fixture(scope="session")
def default_run(tmp_path_factory) -> Path:
    """A working directory where the whole default ran (about five minutes on 2 cores), made once for the session:
    the README's numbers and the configs that run beside the default read it."""
    workdir = tmp_path_factory.mktemp("default-run")
    result = run_snakemake(workdir, "--cores", "2", configfile=DEFAULT_CONFIG, timeout=1800)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    return workdir
