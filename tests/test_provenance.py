"""Code versions (pathgeo.planning.provenance): what they cover, what changes them, and the refusal of checkpoints
made by other code. The workflow's side (an edit re-runs the reference and the replay; the cache serves no stale
reference) is in tests/test_workflow.py and tests/test_cache.py."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest
import torch
from test_packages import imported

from pathgeo.jobs.reference import resume_point
from pathgeo.planning import provenance
from pathgeo.planning.provenance import CodeVersionError, check_code, code_version
from pathgeo.training import checkpoints
from pathgeo.training.spec import DataSpec, RunSpec

LIBRARY = provenance.LIBRARY


def _module_file(name: str) -> Path | None:
    path = LIBRARY / name.removeprefix("pathgeo").lstrip(".").replace(".", "/")
    for candidate in (path / "__init__.py", path.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def _imports(path: Path) -> set[Path]:
    return {f for f in map(_module_file, imported(path)) if f is not None}


def test_the_trajectory_covers_every_module_a_reference_job_runs():
    """Every pathgeo module that the reference job's code imports, or that the registries discover (each dataset
    kind and model), is in TRAJECTORY, or in MEASUREMENT for the w*-free measurements reference training takes
    (whose runs' reference rule carries the measurement version): a new import cannot slip past the versions. A
    guard's own imports are not followed: they serve the guard (sizing's reach the config's machinery for a type)."""
    roots = [*LIBRARY.glob("training/**/*.py"), LIBRARY / "jobs" / "runner.py", LIBRARY / "jobs" / "reference.py"]
    guards = set(provenance._files(provenance.GUARDS))
    seen: set[Path] = set()
    todo = list(roots)
    while todo:
        path = todo.pop()
        if path not in seen:
            seen.add(path)
            todo += [] if path in guards else _imports(path)
    shared = provenance.shared_modules()
    covered = set(provenance._files(shared + provenance.TRAJECTORY + provenance.MEASUREMENT + provenance.GUARDS))
    assert sorted(p.relative_to(LIBRARY).as_posix() for p in seen - covered) == []


@pytest.fixture
def library_copy(tmp_path, monkeypatch) -> Path:
    """A copy of pathgeo/ that the versions read, in place of the real one."""
    copy = tmp_path / "pathgeo"
    shutil.copytree(LIBRARY, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(provenance, "LIBRARY", copy)
    provenance.library_version.cache_clear()
    yield copy
    provenance.library_version.cache_clear()


def _versions(spec: RunSpec) -> tuple[str, str]:
    provenance.library_version.cache_clear()
    return code_version(spec), provenance.measurement_version()


@pytest.mark.parametrize(
    ("package", "reference_changes", "measurement_changes"),
    [
        ("training", True, False),
        ("training/models", True, False),
        ("engine", False, True),
        ("jobs", True, False),
        ("measurements", False, True),
        ("analysis", False, False),
        ("planning", False, False),
        ("tools", False, False),
    ],
)
def test_versions_follow_the_packages(library_copy, package, reference_changes, measurement_changes):
    """A module added to a package changes the versions of the stages that package belongs to, and no others: the
    versions come from the packages, not from a list of modules to keep up to date."""
    spec = _spec()
    before = _versions(spec)
    (library_copy / package / "added_module.py").write_text("def f():\n    return 1\n")
    after = _versions(spec)
    assert (before[0] != after[0], before[1] != after[1]) == (reference_changes, measurement_changes)


def test_a_shared_module_at_the_top_changes_every_version(library_copy):
    spec = _spec()
    before = _versions(spec)
    (library_copy / "added_module.py").write_text("def f():\n    return 1\n")
    after = _versions(spec)
    assert before[0] != after[0] and before[1] != after[1]


def test_a_version_changes_with_the_code_not_with_comments(tmp_path):
    original = "def f(x):\n    return 2 * x  # twice\n"
    versions = {}
    for name, text in {
        "original": original,
        "comments and blank lines": "# a module\n\ndef f(x):\n\n    return 2 * x  # doubled, not squared\n",
        "spacing in a line": "def f( x ):\n    return 2*x\n",
        "code": "def f(x):\n    return 3 * x  # twice\n",
        "docstring": 'def f(x):\n    """Twice."""\n    return 2 * x\n',
    }.items():
        path = tmp_path / f"{len(versions)}.py"
        path.write_text(text)
        versions[name] = provenance._digest([("m.py", path)])
    assert versions["comments and blank lines"] == versions["spacing in a line"] == versions["original"]
    assert versions["code"] != versions["original"] and versions["docstring"] != versions["original"]


def _spec(**fields) -> RunSpec:
    run = dict(
        model="mlp",
        width=8,
        optimizer="sgd",
        lr=0.1,
        weight_decay=0.0,
        schedule="constant",
        warmup_epochs=0,
        batch_size=4,
        epochs=1,
        seed=0,
        data_order_seed=0,
        precision="float32",
    )
    return RunSpec(data=DataSpec("mnist1d", "mnist1d", {"n_train": 40, "n_test": 10, "seed": 0}), **{**run, **fields})


def test_a_run_s_version_covers_its_plug_in_modules(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    module = tmp_path / "versioned_nets.py"
    module.write_text("def net(num_classes):\n    return None\n")
    own = _spec(model="versioned_nets:net", width=0)
    first = code_version(own)
    assert first != code_version(_spec())
    assert code_version(dataclasses.replace(own, seed=1)) == first  # the code's version, not the run's
    module.write_text("def net(num_classes):  # a comment\n    return None\n")
    assert code_version(own) == first
    module.write_text("def net(num_classes):\n    return 0\n")
    assert code_version(own) != first
    assert code_version(_spec(model="torchvision:resnet18", width=0)) != code_version(_spec())


def test_a_checkpoint_of_other_code_is_refused_by_its_cause():
    state = {"run_id": "r-1234", "code": "aaaa"}
    check_code(state, "aaaa", "epoch0002.pt")
    with pytest.raises(
        CodeVersionError,
        match="run r-1234: epoch0002.pt was made by code version aaaa, not by this "
        "code \\(version bbbb\\).*Train the reference again",
    ):
        check_code(state, "bbbb", "epoch0002.pt")
    with pytest.raises(CodeVersionError, match="was made by code that recorded no version"):
        check_code({"run_id": "r-1234"}, "bbbb", "epoch0002.pt")


def test_a_reference_never_resumes_from_checkpoints_of_other_code(tmp_path):
    for epoch in (0, 1):
        checkpoints.save(
            checkpoints.checkpoint_path(tmp_path, epoch), {"epoch": epoch, "code": "old", "w": torch.ones(1)}
        )
    assert resume_point(tmp_path, (0, 1, 2), "old")["epoch"] == 1
    assert resume_point(tmp_path, (0, 1, 2), "new") is None
    assert list(tmp_path.glob("epoch*.pt")) == []  # gone: a later resume cannot mix them with the new code's
