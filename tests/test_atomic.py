"""Outputs are written whole or not at all; a full disk is reported as a full disk, with the path, whichever
library was writing; identical objects are written as identical bytes."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import polars as pl
import pytest
import torch

from pathgeo.atomic import DiskFullError, write_json, write_parquet, write_torch
from pathgeo.training import checkpoints


@pytest.fixture
def full_disk(tmp_path):
    """A 256 KiB file system (tmpfs), already filled but for a few KiB. Needs root to mount."""
    mount = tmp_path / "small"
    mount.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root")
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)], capture_output=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.decode().strip()}")
    try:
        (mount / "filler").write_bytes(b"\0" * (256 - 8) * 1024)
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name != "filler")


def test_a_checkpoint_on_a_full_disk_says_so_and_leaves_nothing(full_disk):
    path = full_disk / "run" / "epoch0003.pt"
    with pytest.raises(DiskFullError) as caught:
        checkpoints.save(path, {"model": {"w": torch.zeros(100_000)}})
    message = str(caught.value)
    assert message.startswith(f"{path}: the disk is full (")
    assert f"on the file system of {path.parent}" in message
    assert leftovers(path.parent) == []


@pytest.mark.parametrize(
    "write",
    [
        lambda path: write_parquet(path, pl.DataFrame({"x": list(range(200_000))})),
        lambda path: write_json(path, {"x": list(range(200_000))}),
        lambda path: path.parent.mkdir(exist_ok=True) or write_torch(path, torch.arange(100_000)),
    ],
    ids=["parquet", "json", "torch"],
)
def test_every_writer_reports_a_full_disk_with_the_path(full_disk, write):
    path = full_disk / "tables" / "epochs.out"
    with pytest.raises(DiskFullError, match=rf"^{path}: the disk is full"):
        write(path)
    assert leftovers(path.parent) == []


def test_a_figure_on_a_full_disk_names_the_file(full_disk):
    import altair as alt

    from pathgeo.analysis.figures.save import save

    chart = (
        alt.Chart(pl.DataFrame({"x": list(range(5000)), "y": list(range(5000))})).mark_point().encode(x="x:Q", y="y:Q")
    )
    html = full_disk / "figures" / "f.html"
    with pytest.raises(DiskFullError, match=rf"^{html}: the disk is full"):
        save(chart, html, full_disk / "figures" / "f.svg")


def test_other_errors_pass_through_unchanged(tmp_path):
    def fail(tmp):
        raise ValueError("not a disk problem")

    from pathgeo.atomic import write_with

    with pytest.raises(ValueError, match="not a disk problem"):
        write_with(tmp_path / "x", fail)
    assert list(tmp_path.iterdir()) == []


def test_identical_states_are_written_as_identical_bytes(tmp_path):
    state = {"model": {"w": torch.arange(10.0)}, "epoch": 3, "log": [{"epoch": 0, "train_loss": 1.5}]}
    digests = set()
    for name in ("a", "b"):
        # Different folders and file names: torch.save given a path would write the name into the archive.
        path = tmp_path / name / f"epoch{len(name)}.pt"
        checkpoints.save(path, state)
        digests.add(hashlib.sha256(path.read_bytes()).hexdigest())
    assert len(digests) == 1
