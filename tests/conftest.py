import os

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
