"""Atomic file writes: a reader either sees the complete old file, the complete new one, or none.

Every output of the workflow goes through here, so a job killed half-way never leaves a file that looks
finished, and a full disk is reported as such, with the path, whichever library was writing. The folder of
pathgeo's caches is here too (`cache_folder`): what is kept there is written the same way.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it is renamed onto `path`, on error removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    # mkstemp makes the file private (0600); results are meant to be shared like any other file.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException as error:
        full = _disk_full(error, path.parent)
        Path(tmp).unlink(missing_ok=True)
        if full:
            raise DiskFullError(
                path,
                f"{path}: the disk is full ({_free(path.parent)} free on the file system of {path.parent} once the "
                f"unfinished file was removed; the writer said: {error}). Free space there, or move results/ to a "
                "larger disk, and run again: finished files are kept, this one was not written",
            ) from error
        raise


class DiskFullError(OSError):
    """A write ran out of space. The message names the file and the file system."""

    def __init__(self, path: Path, message: str):
        super().__init__(errno.ENOSPC, message, str(path))
        self.message = message

    def __str__(self) -> str:
        return self.message


# Torch and Polars report a full disk in their own words ("unexpected pos 128 vs 0", "underlying IO error"),
# so the free space left is the test, with the errno where a plain write kept one.
FULL_BELOW_BYTES = 1 << 20


def _disk_full(error: BaseException, folder: Path) -> bool:
    if isinstance(error, DiskFullError):
        return False
    if isinstance(error, OSError) and error.errno == errno.ENOSPC:
        return True
    if not isinstance(error, Exception):
        return False
    try:
        return shutil.disk_usage(folder).free < FULL_BELOW_BYTES
    except OSError:
        return False


def _free(folder: Path) -> str:
    try:
        return f"{shutil.disk_usage(folder).free / 2**20:.1f} MiB"
    except OSError:
        return "unknown space"


def write_with(path: str | os.PathLike, writer: Callable[[Path], Any]) -> None:
    with atomic_path(path) as tmp:
        writer(tmp)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_with(path, lambda tmp: tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n"))


def write_parquet(path: str | os.PathLike, frame) -> None:
    """`frame` is a polars DataFrame."""
    write_with(path, lambda tmp: frame.write_parquet(tmp))


def write_torch(path: str | os.PathLike, obj: Any) -> None:
    """`torch.save`, so that equal objects are written as equal bytes. Through an open file: given a path,
    torch names the archive's records after it (here the temporary file's random name). Of a canonical copy:
    pickle writes an object once and refers back to it after, so two equal strings that are one object in
    one run (an interned key) and two in another (one read back from a checkpoint) would differ in bytes."""
    import torch  # here, so that aggregation and figures import this module without torch

    canonical = _canonical(obj)

    def save(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            torch.save(canonical, f)

    write_with(path, save)


def _canonical(obj: Any) -> Any:
    """Fresh containers and interned strings all the way down; everything else (tensors, numbers) as is."""
    if isinstance(obj, str):
        return sys.intern(obj)
    if isinstance(obj, dict):
        return {_canonical(k): _canonical(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_canonical(v) for v in obj]
    if isinstance(obj, tuple) and type(obj) is tuple:
        return tuple(_canonical(v) for v in obj)
    return obj


def cache_folder() -> Path:
    """Where pathgeo keeps what it can compute again (the completed config schema, the models' sizes): the user's
    cache, $XDG_CACHE_HOME/pathgeo or ~/.cache/pathgeo."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "pathgeo"
