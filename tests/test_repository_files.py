"""What a clone ignores and what its docs ask for: the outputs a run leaves in the repository's root (report.zip,
the datasets under data/) are ignored while the library's pathgeo/training/data/ is not, and a command that needs a tool the
install does not bring (Graphviz's `dot`) says so."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(shutil.which("git") is None or not (REPO / ".git").exists(), reason="not a git checkout")
@pytest.mark.parametrize(
    "path,ignored",
    [
        ("report.zip", True),
        ("data/examples/mnist1d.pt", True),
        ("results/default/tables/claims.csv", True),
        ("pathgeo/training/data/__init__.py", False),
        ("pathgeo/training/data/new_kind.py", False),
        ("tests/data/x.pt", False),
    ],
)
def test_a_run_s_outputs_are_ignored_and_the_library_is_not(path, ignored):
    checked = subprocess.run(["git", "check-ignore", "--no-index", "-q", path], cwd=REPO, check=False)
    assert checked.returncode == (0 if ignored else 1), path


def test_a_command_with_dot_names_graphviz():
    for doc in [
        REPO / "README.md",
        REPO / "config" / "README.md",
        REPO / "cluster" / "README.md",
        *(REPO / "docs").glob("*.md"),
    ]:
        lines = doc.read_text().splitlines()
        for number, line in enumerate(lines):
            if re.search(r"\|\s*dot\b", line):
                assert any("Graphviz" in later for later in lines[number : number + 6]), f"{doc.name}:{number + 1}"
