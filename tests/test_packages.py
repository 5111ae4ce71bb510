"""The package layout of docs/design.md: a few shared modules at pathgeo/'s top, then one package per stage, each
importing only from the shared modules, its own package and the stages below it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

LIBRARY = Path(__file__).parents[1] / "pathgeo"

# Lowest first: a package may import the shared modules and the packages before it in this list, never after.
LAYERS = ("training", "engine", "measurements", "analysis", "planning", "jobs", "tools")
SHARED = -1


def layer(module: str) -> int:
    """The layer of a dotted pathgeo module: its package's place in LAYERS, SHARED for a module at the top."""
    parts = module.split(".")
    if len(parts) < 2 or parts[1] not in LAYERS:
        return SHARED
    return LAYERS.index(parts[1])


def dotted(path: Path, library: Path = LIBRARY) -> str:
    parts = path.relative_to(library.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path, library: Path = LIBRARY) -> set[str]:
    """The pathgeo modules this file imports, at its top or inside a function: `from pathgeo.x import y` counts as
    pathgeo.x and pathgeo.x.y (a module, or a name of pathgeo.x)."""
    package = dotted(path, library) if path.name == "__init__.py" else dotted(path, library).rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else [])
                )
            if base.split(".")[0] == "pathgeo":
                found |= {base, *(f"{base}.{alias.name}" for alias in node.names)}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.split(".")[0] == "pathgeo"}
    return found


MODULES = sorted(LIBRARY.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda path: path.relative_to(LIBRARY).as_posix())
def test_no_import_runs_back_up(path):
    own = layer(dotted(path))
    upward = sorted(name for name in imported(path) if layer(name) > own)
    assert upward == [], f"{dotted(path)} (layer {own}) imports from a later stage"


def test_the_layer_test_sees_an_upward_import(tmp_path):
    library = tmp_path / "pathgeo"
    (library / "training").mkdir(parents=True)
    source = library / "training" / "upward_probe.py"
    source.write_text("from pathgeo.analysis import aggregate\n")
    assert layer(dotted(source, library)) == LAYERS.index("training")
    assert {layer(name) for name in imported(source, library)} == {LAYERS.index("analysis")}


def test_every_package_is_a_layer_and_the_top_is_small():
    packages = sorted(path.parent.name for path in LIBRARY.glob("*/__init__.py"))
    assert packages == sorted(LAYERS)
    assert len(list(LIBRARY.glob("*.py"))) <= 12


def test_the_shared_modules_at_the_top_import_nothing_below():
    for path in LIBRARY.glob("*.py"):
        assert all(layer(name) == SHARED for name in imported(path)), path.name
