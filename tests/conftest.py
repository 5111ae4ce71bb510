import os
from pathlib import Path

# The probe's GPU path (Triton kernels) runs on the CPU under Triton's interpreter, which is chosen when
# the kernels are defined: before any test imports them.
os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402
import torch  # noqa: E402
from workflow_runner import DEFAULT_CONFIG, run_snakemake  # noqa: E402

from pathgeo.training import devices  # noqa: E402

# One intra-op thread in the test processes: under `make test` two of them share CI's two cores, where torch's own
# pool of two threads each would only oversubscribe them, its threads spinning while they wait for one another
# (about a quarter more CPU time for the same tests). The workflow's jobs take the config's threads as always.
torch.set_num_threads(1)

# The test modules that read the whole default run (the session fixture `default_run`), and their group: under
# pytest-xdist one worker runs them all, so that the default run is made once (tests/test_worker_groups.py keeps
# the list whole).
DEFAULT_RUN_READERS = ("tests/test_own_config.py", "tests/test_readme_numbers.py")
DEFAULT_RUN_GROUP = "default_run"


def worker_group(nodeid: str) -> str:
    """The tests one xdist worker runs together: a test module, whose module fixtures (a Snakemake run, the SLURM
    cluster) each worker would otherwise make again, or the modules that read the default run."""
    module = nodeid.split("::", 1)[0]
    return DEFAULT_RUN_GROUP if module in DEFAULT_RUN_READERS else module


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """With pytest-xdist (`make test`: -n 2), each worker is handed whole `worker_group`s, in the order the workers
    collected them (pytest_collection_modifyitems below). xdist's own grouping (`--dist loadgroup` with
    `xdist_group` marks) does nothing under pytest 9, whose node ids it can no longer extend."""
    from xdist.scheduler import LoadScopeScheduling

    class GroupScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return worker_group(nodeid)

    config.option.loadscopereorder = False  # LoadScopeScheduling would put the groups of the most tests first
    return GroupScheduling(config, log)


def _start_order(group: str, items: list[pytest.Item]) -> tuple[int, int]:
    """When a group's tests start under xdist, the longest first: the default run (the whole default DAG, on both
    cores), then the SLURM cluster's (mostly waiting on its status checks, which leaves the cores to the other
    worker), then the other end-to-end runs, most first, then the tests that take seconds."""
    if group == DEFAULT_RUN_GROUP:
        return 0, 0
    if any(item.get_closest_marker("slurm") for item in items):
        return 1, 0
    slow = sum(1 for item in items if item.get_closest_marker("slow"))
    return (2, -slow) if slow else (3, 0)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On an xdist worker: the groups in `_start_order`, each group's tests together and in their order, so that no
    long run starts last. Without xdist the order stays pytest's."""
    if not hasattr(config, "workerinput"):
        return
    groups: dict[str, list[pytest.Item]] = {}
    for item in items:
        groups.setdefault(worker_group(item.nodeid), []).append(item)
    ordered = sorted(groups.items(), key=lambda named: _start_order(*named))
    items[:] = [item for _, group in ordered for item in group]


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
