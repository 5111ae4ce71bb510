"""Which code a run's results come from: its code version, a hash of the library modules that shape them.

The rules put a code version in their `params`, so that editing such a module re-runs what depends on it, and
Snakemake's between-workflow cache (whose key covers the params) never serves a reference trained by other code:
- prep: `PREPARATION`, the modules that build and fingerprint datasets;
- reference: `TRAJECTORY`, the packages of everything a reference job runs (the training loop, models, optimizers,
  dataset kinds, schedules, randomness, ...), plus the source of the user's plug-in modules that the run names;
- replay: the reference's version, and `MEASUREMENT` (the engine and the measurements) beside it.
A version follows the packages: a module added to a package is covered from then on, with no list to update.
The reference writes its version into `spec.json` and every checkpoint; a replay or a resumed reference refuses
checkpoints of another version (`check_code`), so a stale reference fails by its cause instead of as drift.

A version hashes the modules' tokens without comments and blank lines: editing a comment or the spacing changes
nothing, editing code or a docstring makes a new version.
"""

from __future__ import annotations

import hashlib
import tokenize
from collections.abc import Iterable
from functools import cache
from pathlib import Path

from pathgeo import plugins
from pathgeo.training.spec import RunSpec

LIBRARY = Path(__file__).resolve().parents[1]

# What each version covers, by package (pathgeo/'s subpackages; tests/test_packages.py holds them to the layers of
# docs/design.md). The modules at pathgeo/'s top are the vocabulary every stage shares: every version covers them.
# - A trajectory is shaped by the training package and the jobs that run it; tests/test_provenance.py checks that
#   this holds every module a reference job imports (but the w*-free measurements', whose version its rule carries).
# - A measurement by the engine and the measurements (the probe, the point geometry, the w*-free tables).
# - A dataset's preparation by the data kinds and the randomness they draw with.
TRAJECTORY = ("training", "jobs")
MEASUREMENT = ("engine", "measurements")
PREPARATION = ("training/data", "training/randomness.py")
# Modules a job runs that decide only whether it starts, never what it computes (the node's checks before a GPU job
# trains, the memory arithmetic they use, and their package's docstring): editing them re-runs nothing, so no version
# covers them.
GUARDS = ("planning/__init__.py", "planning/preflight.py", "planning/sizing.py")


class CodeVersionError(RuntimeError):
    """A checkpoint was made by other code than the code that reads it."""


def _tokens(path: Path) -> bytes:
    with open(path, "rb") as source:
        kept = [
            token.string
            for token in tokenize.tokenize(source.readline)
            if token.type not in (tokenize.COMMENT, tokenize.NL, tokenize.ENCODING)
        ]
    return "\0".join(kept).encode()


def shared_modules() -> tuple[str, ...]:
    """The modules at pathgeo/'s top."""
    return tuple(sorted(path.name for path in LIBRARY.glob("*.py")))


def _files(parts: Iterable[str]) -> list[Path]:
    files = []
    for part in parts:
        path = LIBRARY / part
        files += sorted(path.rglob("*.py")) if path.is_dir() else [path]
    return files


def _digest(sources: Iterable[tuple[str, Path]], extra: Iterable[str] = ()) -> str:
    """A hash of (name, source file) pairs, names included (a module moved is a change), and of `extra`."""
    digest = hashlib.sha256()
    for name, path in sources:
        digest.update(name.encode() + b"\0" + _tokens(path) + b"\0")
    for text in extra:
        digest.update(text.encode() + b"\0")
    return digest.hexdigest()[:16]


@cache
def library_version(parts: tuple[str, ...]) -> str:
    """The version of these library modules (paths relative to pathgeo/; a folder means every module in it)."""
    return _digest((path.relative_to(LIBRARY).as_posix(), path) for path in _files(parts))


def stage_version(packages: tuple[str, ...]) -> str:
    """The version of a stage's packages and of the shared modules at pathgeo/'s top."""
    return library_version(shared_modules() + packages)


def preparation_version() -> str:
    return library_version(PREPARATION)


def measurement_version() -> str:
    return stage_version(MEASUREMENT)


def code_version(spec: RunSpec) -> str:
    """The version of the code that trains this run: TRAJECTORY, the user's plug-in modules it names (their
    source), and torchvision's version for a torchvision model."""
    extra = [stage_version(TRAJECTORY)]
    own = [
        name for name in (spec.model, spec.optimizer) if plugins.is_plugin(name) and not name.startswith("torchvision:")
    ]
    if spec.model.startswith("torchvision:"):
        import torchvision

        extra.append(f"torchvision {torchvision.__version__}")
    modules = sorted({plugins.split(name)[0] for name in own})
    return _digest([(module, plugins.source_file(module)) for module in modules], extra)


def check_code(state: dict, code: str, source: str) -> None:
    """Refuse a checkpoint (`source` names it) made by other code than `code`."""
    made = state.get("code")
    if made == code:
        return
    by = f"code version {made}" if made else "code that recorded no version"
    raise CodeVersionError(
        f"run {state.get('run_id')}: {source} was made by {by}, not by this code (version {code}); the library "
        "code that shapes its trajectory changed since, so its weights are not the ones this code trains. Train the "
        "reference again (snakemake --forcerun reference, or delete results/runs/<run>/); with --cache, an entry "
        "made by other code is never served"
    )
