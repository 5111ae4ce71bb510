"""Figures of long runs stay small (issue 22: the grad_correlation figure of a 19,000-step run was a 31 MB SVG and a
10 MB HTML file): per-epoch statistics of a run longer than MAX_EPOCH_POINTS epochs are drawn in bins of epochs, and
the figure says so."""

from __future__ import annotations

import math

import polars as pl
import pytest

from pathgeo.analysis.figures import plot
from pathgeo.analysis.figures.save import save
from pathgeo.analysis.figures.tables import MAX_EPOCH_POINTS, epoch_statistics

EPOCHS = 6_000  # full batch: a step an epoch


def long_run_steps() -> pl.DataFrame:
    steps = list(range(EPOCHS))
    corr = [None] + [0.9 if s < 200 else -0.95 + 0.01 * math.sin(s) for s in steps[1:]]
    return pl.DataFrame(
        {
            "run_id": "long-run",
            "label": "lr=0.05",
            "reference": "final",
            "experiment": "long",
            "budget": EPOCHS,
            "epoch": steps,
            "step": steps,
            "schedule": "constant",
            "peak_lr": 0.05,
            "seed": 0,
            "width": 64,
            "model": "mlp",
            "width_unit": "hidden units",
            "dataset": "mnist1d",
            "optimizer": "sgd",
            "batch_size": 1000,
            "full_batch": True,
            "loss": [2.3 * math.exp(-s / 2000) for s in steps],
            "grad_corr": corr,
            "mean_grad_corr": [None] * 4 + corr[4:],
            "sign_flip": [None] + [0.4] * (EPOCHS - 1),
        }
    )


def test_long_runs_are_binned_into_at_most_max_points_per_line():
    per_epoch = epoch_statistics(long_run_steps(), ["loss"], ("mean",))
    assert per_epoch.height <= MAX_EPOCH_POINTS
    assert per_epoch["epochs_per_point"].unique().to_list() == [math.ceil(EPOCHS / MAX_EPOCH_POINTS)]
    # Each point is over its bin's steps and sits at the bin's last epoch; the run's end is the last point.
    assert per_epoch["steps"].sum() == EPOCHS and per_epoch["epoch"].max() == EPOCHS - 1
    short = epoch_statistics(long_run_steps().filter(pl.col("epoch") < 300), ["loss"], ("mean",))
    assert short.height == 300 and short["epochs_per_point"].unique().to_list() == [1]


@pytest.mark.parametrize("name", ["grad_correlation", "sign_flip"])
def test_the_figure_of_a_long_run_stays_under_two_megabytes_and_says_it_is_binned(tmp_path, name):
    chart = plot(name).draw(long_run_steps())
    html, svg = tmp_path / f"{name}.html", tmp_path / f"{name}.svg"
    save(chart, html, svg)
    assert html.stat().st_size < 2e6 and svg.stat().st_size < 2e6, (html.stat().st_size, svg.stat().st_size)
    assert f"each point is over {math.ceil(EPOCHS / MAX_EPOCH_POINTS)} consecutive epochs" in svg.read_text()
