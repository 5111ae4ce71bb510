"""`make test` runs the tests in two pytest-xdist workers, each of which would make a session fixture again: the
modules that read the default run (a quarter of the suite's CPU time) must be one group (tests/conftest.py)."""

import re
from pathlib import Path

from conftest import DEFAULT_RUN_GROUP, DEFAULT_RUN_READERS, worker_group

TESTS = Path(__file__).resolve().parent


def test_every_module_that_reads_the_default_run_is_in_its_group():
    readers = {
        f"tests/{path.name}" for path in TESTS.glob("test_*.py") if re.search(r"\bdefault_run\b", path.read_text())
    }
    assert readers == set(DEFAULT_RUN_READERS)
    assert {worker_group(f"{module}::test") for module in readers} == {DEFAULT_RUN_GROUP}


def test_any_other_module_is_a_group_of_its_own():
    assert worker_group("tests/test_slurm.py::test_a[x::y]") == "tests/test_slurm.py"
    assert worker_group("tests/test_slurm.py::test_b") == worker_group("tests/test_slurm.py::test_a[x::y]")
    assert worker_group("tests/test_workflow.py::test_a") != worker_group("tests/test_slurm.py::test_a")
