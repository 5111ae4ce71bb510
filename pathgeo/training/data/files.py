"""Dataset files on disk: what identifies them (a fingerprint), and the error for files that are missing, laid out
wrongly, truncated or corrupt."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path


class DatasetError(RuntimeError):
    """Dataset files are missing, laid out wrongly, truncated or corrupt. The message names the path."""


# Files up to this size are hashed completely (CIFAR-10's batches, WikiText-2 and PTB corpora, Vaihingen tiles);
# larger ones (WikiText-103's 540 MB training file) get a hash of their size, first and last MiB, which catches
# truncation, replacement and most edits while reading 2 MiB instead of the whole file.
FULL_HASH_MAX_BYTES = 64 << 20
_HEAD_TAIL_BYTES = 1 << 20


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _sha256_head_tail(path: Path, size: int) -> str:
    digest = hashlib.sha256(str(size).encode())
    with open(path, "rb") as f:
        digest.update(f.read(_HEAD_TAIL_BYTES))
        f.seek(max(0, size - _HEAD_TAIL_BYTES))
        digest.update(f.read(_HEAD_TAIL_BYTES))
    return digest.hexdigest()


def _relative(root: Path, path: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def fingerprint(
    root: Path,
    files: Sequence[Path],
    folders: Sequence[Path] = (),
    *,
    full_hash_max_bytes: int = FULL_HASH_MAX_BYTES,
) -> dict:
    """What identifies a dataset on disk, so a changed dataset changes the fingerprint; nothing is copied.

    - `files`: each gets its path relative to `root`, its size, and `sha256` of its content when it is at most
      `full_hash_max_bytes`, else `sha256_head_tail` (size + first and last MiB).
    - `folders`: class-per-subfolder trees (ImageNet's train/ and val/): each subfolder's file count and a sha256
      of its sorted file names. Names only, no per-file stat or read: 1.28M JPEGs are not hashed.
    `digest` is a sha256 of everything else, the one value to compare.
    """
    root = Path(root)
    entries = []
    for path in files:
        path = Path(path)
        if not path.is_file():
            raise DatasetError(f"{path}: expected a data file here, found none")
        size = path.stat().st_size
        entry: dict = {"path": _relative(root, path), "bytes": size}
        if size <= full_hash_max_bytes:
            entry["sha256"] = sha256_file(path)
        else:
            entry["sha256_head_tail"] = _sha256_head_tail(path, size)
        entries.append(entry)
    folder_entries = []
    for folder in folders:
        folder = Path(folder)
        if not folder.is_dir():
            raise DatasetError(f"{folder}: expected a folder of class sub-folders here, found none")
        classes = {}
        for sub in sorted(os.scandir(folder), key=lambda e: e.name):
            if not sub.is_dir():
                continue
            names = sorted(e.name for e in os.scandir(sub.path) if e.is_file())
            classes[sub.name] = {
                "files": len(names),
                "names_sha256": hashlib.sha256("\n".join(names).encode()).hexdigest(),
            }
        folder_entries.append({"path": _relative(root, folder), "classes": classes})
    body = {"files": entries, "folders": folder_entries}
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
    return {**body, "digest": digest}


def fingerprint_changes(old: dict, new: dict) -> list[str]:
    """What differs between two fingerprints, one phrase per file or class folder, in path order."""
    changes = []
    before = {e["path"]: e for e in old["files"]}
    after = {e["path"]: e for e in new["files"]}
    for path in sorted(before.keys() | after.keys()):
        if path not in after:
            changes.append(f"{path} is gone")
        elif path not in before:
            changes.append(f"{path} is new")
        elif before[path] != after[path]:
            a, b = before[path]["bytes"], after[path]["bytes"]
            changes.append(
                f"{path} changed ({a} -> {b} bytes)" if a != b else f"{path} changed (same size, other content)"
            )
    folders_before = {f["path"]: f["classes"] for f in old["folders"]}
    folders_after = {f["path"]: f["classes"] for f in new["folders"]}
    for folder in sorted(folders_before.keys() | folders_after.keys()):
        a, b = folders_before.get(folder, {}), folders_after.get(folder, {})
        for name in sorted(a.keys() | b.keys()):
            if a.get(name) == b.get(name):
                continue
            if name not in b:
                changes.append(f"{folder}/{name}/ is gone")
            elif name not in a:
                changes.append(f"{folder}/{name}/ is new")
            else:
                changes.append(f"{folder}/{name}/ changed ({a[name]['files']} -> {b[name]['files']} files)")
    return changes
