"""Every script in examples/ runs as a user runs it (`python examples/<name>.py`, from the repository root),
with small sizes, and writes a per-step table with the rows and measurements its loop makes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted((ROOT / "examples").glob("*.py"))

# Small arguments for each example, and the rows its table must have: steps × reference points.
SMALL = {
    "plain_pytorch": (["--epochs", "2", "--samples", "256"], 2 * 4),
    "lightning_module": (["--epochs", "2", "--samples", "256"], 2 * 4),
    "torchvision_model": (["--epochs", "2", "--samples", "64", "--batch-size", "16"], 2 * 4 * 2),
}


def test_every_example_has_small_arguments_here():
    assert sorted(p.stem for p in SCRIPTS) == sorted(SMALL)


@pytest.mark.parametrize("script", SCRIPTS, ids=[p.stem for p in SCRIPTS])
def test_example_runs_as_a_user_runs_it(script, tmp_path):
    if script.stem == "lightning_module":
        pytest.importorskip("lightning")
    arguments, rows = SMALL[script.stem]
    out = tmp_path / "steps.parquet"
    # The checkout's pathgeo, as `pip install -e .` in it would give.
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run(
        [sys.executable, str(script.relative_to(ROOT)), *arguments, "--out", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "gamma" in done.stdout
    steps = pl.read_parquet(out)
    assert steps.height == rows
    assert steps["gamma"].null_count() == 0 and steps["grad_corr"].drop_nulls().len() > 0


def python_block(text: str, after: str) -> str:
    """The first ```python block after the line `after`."""
    rest = text[text.index(after) :]
    start = rest.index("```python\n") + len("```python\n")
    return rest[start : rest.index("```", start)]


@pytest.mark.parametrize(
    "page,heading",
    [
        ("docs/measure.md", "# Measuring your own training loop"),
    ],
    ids=["docs"],
)
def test_the_snippet_runs_as_written(page, heading, tmp_path):
    script = tmp_path / "snippet.py"
    script.write_text(python_block((ROOT / page).read_text(), heading))
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "shape: (80, 34)" in done.stdout  # 5 epochs of 8 steps, two reference points; every column


def test_the_docs_define_every_column():
    """docs/measure.md's tables name every column of both tables."""
    from pathgeo.columns import LAGS, METRICS

    docs = (ROOT / "docs/measure.md").read_text()
    generic = {f"perp_corr_lag{k}": "perp_corr_lag{k}" for k in LAGS} | {f"dist_lag{k}": "dist_lag{k}" for k in LAGS}
    steps = ["reference", "epoch", "step", *METRICS]
    for column in steps:
        name = generic.get(column, column)
        assert f"`{name}`" in docs, column
    for column in ("epoch", "start_step", "i", "j", "corr", "sign_flip"):
        assert f"`{column}`" in docs.split("## The matrices table")[1], column
