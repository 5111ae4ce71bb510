"""The numbers the README reports from the default run, computed from that run's tables, so that the README can be
held to them (tests/test_readme_numbers.py): `python -m pathgeo.analysis.findings results/default` prints them as JSON.

Each finding is a name and the text the README writes ("49", "57.7%", "2.31"); epochs and steps count from 1, as on
the figures (docs/figures.md). Only the default's tables are read: `results/default/tables/<experiment>/{steps,
train}.parquet` and `results/default/tables/claims.parquet`.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable
from pathlib import Path

import polars as pl

Tables = Callable[[str, str], pl.DataFrame]


def percent(share: float, digits: int = 1) -> str:
    return f"{100 * share:.{digits}f}%"


def number(value: float, digits: int = 2) -> str:
    """A number as the README prints it, with a true minus sign."""
    return f"{value:.{digits}f}".replace("-", "−")


def at_least(value: float, digits: int) -> str:
    """A lower bound of `value` with `digits` decimals (0.99989 reads 0.9998: "≥ 0.9999" would be false)."""
    return number(math.floor(value * 10**digits) / 10**digits, digits)


def read_tables(results: Path) -> Tables:
    """A reader of a results directory's tables: (experiment, kind) → table; experiment "claims" for the claims."""

    def read(experiment: str, kind: str) -> pl.DataFrame:
        path = results / "tables" / ("claims.parquet" if experiment == "claims" else f"{experiment}/{kind}.parquet")
        if not path.is_file():
            raise FileNotFoundError(f"{path}: a finding of the default run needs this table; run the default first")
        return pl.read_parquet(path)

    return read


def full_batch_epochs(steps: pl.DataFrame, lr: float) -> pl.DataFrame:
    """The full-batch run at this learning rate, epoch by epoch (one step each): μ(t), sign flips and loss."""
    run = steps.filter((pl.col("peak_lr") == lr) & (pl.col("budget") == pl.col("budget").max()))
    return (
        run.group_by("epoch")
        .agg(pl.col("mean_grad_corr").mean(), pl.col("sign_flip").mean(), pl.col("loss").mean())
        .sort("epoch")
    )


def zigzag(tables: Tables) -> dict[str, str]:
    """Smooth to zigzag under full-batch descent (experiment `full_batch`): where the mean gradient correlation first
    turns negative, how low it goes, the sign flips before and after, and the loss in each phase."""
    steps = tables("full_batch", "steps")
    large = full_batch_epochs(steps, 0.5)
    first = int(large.filter(pl.col("mean_grad_corr") < 0).get_column("epoch").min())
    smooth, zigzagging = large.filter(pl.col("epoch") < first), large.filter(pl.col("epoch") >= first)
    small = full_batch_epochs(steps, 0.05)
    return {
        "zigzag_epoch": str(first + 1),
        "zigzag_lowest_mu": number(large.get_column("mean_grad_corr").min()),
        "zigzag_smooth_flips": percent(smooth.get_column("sign_flip").median(), 0),
        "zigzag_flips_from_epoch_100": percent(
            zigzagging.filter(pl.col("epoch") >= 99).get_column("sign_flip").mean(), 0
        ),
        "zigzag_smooth_loss": f"{number(smooth['loss'][0])} to {number(smooth['loss'][-1])}",
        "zigzag_zigzag_loss": f"{number(zigzagging['loss'][0])} to {number(zigzagging['loss'][-1])}",
        "smooth_lowest_mu": at_least(small.get_column("mean_grad_corr").min(), 4),
        "smooth_flips": percent(small.get_column("sign_flip").mean()),
    }


def gawu(tables: Tables) -> dict[str, str]:
    """The geometry-adapted warm-up (experiment `gawu`): where GAWU switched, and every run's final validation
    accuracy, by the epochs of warm-up before its switch."""
    steps = tables("gawu", "steps").filter(pl.col("budget") == pl.col("budget").max()).sort("step")
    train = tables("gawu", "train")
    adaptive = steps.filter(pl.col("schedule") == "gawu")
    switch = adaptive.filter(pl.col("lr") == pl.col("lr").max()).row(0, named=True)
    per_epoch = adaptive.filter(pl.col("epoch") == switch["epoch"]).height
    found = {
        "gawu_switch_step": str(switch["step"] + 1),
        "gawu_switch_after_epochs": f"{switch['step'] / per_epoch:g}",
        "gawu_switch_lr": f"{switch['lr']:.1f}",
    }
    final = (
        train.sort("epoch")
        .group_by("run_id")
        .agg(pl.col("val_accuracy").last(), pl.col("schedule").first(), pl.col("warmup_epochs").first())
    )
    for row in final.iter_rows(named=True):
        key = "gawu" if row["schedule"] == "gawu" else f"fixed_{row['warmup_epochs']}"
        found[f"{key}_accuracy"] = percent(row["val_accuracy"])
    return found


def claims(tables: Tables) -> dict[str, str]:
    """The Section 4.1 claims of the default's runs: how many MNIST-1D runs each holds for, the values of those it
    fails for, and the synthetic objectives'."""
    table = tables("claims", "claims")
    mnist = table.filter(pl.col("dataset") == "mnist1d")
    positive = mnist.filter(pl.col("holds_gamma_positive"))
    stable = mnist.filter(~pl.col("holds_gamma_stable"))
    found = {
        "mnist_runs": str(mnist.height),
        "gamma_positive_holds": str(positive.height),
        "gamma_positive_range": f"{percent(positive['frac_steps_gamma_positive'].min())}–"
        f"{percent(positive['frac_steps_gamma_positive'].max(), 0)}",
        "min_gamma_holds": str(mnist.filter(pl.col("holds_min_gamma_positive")).height),
        "stable_holds": str(mnist.height - stable.height),
        "unstable_cv_range": f"{number(stable['gamma_epoch_cv'].min())}–{number(stable['gamma_epoch_cv'].max())}",
        "trend_fails": str(table.filter(~pl.col("holds_trend")).height),
    }
    for row in mnist.filter(~pl.col("holds_gamma_positive")).iter_rows(named=True):
        key = "gawu" if row["schedule"] == "gawu" else f"fixed_{row['warmup_epochs']}"
        found[f"{key}_gamma_positive"] = percent(row["frac_steps_gamma_positive"])
    for dataset in ("alm", "sm", "walk"):
        row = table.filter(pl.col("dataset") == dataset).row(0, named=True)
        found[f"{dataset}_gamma_positive"] = percent(row["frac_steps_gamma_positive"], 0)
    return found


def sm_objective(tables: Tables) -> dict[str, str]:
    """The Sinusoidal Mixture's objective in its first and last epoch (the mean over each epoch's steps)."""
    train = tables("sm", "train").sort("epoch")
    return {
        "sm_first_objective": f"{train['train_loss'][0]:.0f}",
        "sm_last_objective": f"{train['train_loss'][-1]:.1f}",
    }


def findings(results: Path) -> dict[str, str]:
    """Every number the README reports from the default run whose results are under `results`."""
    tables = read_tables(Path(results))
    return {**zigzag(tables), **gawu(tables), **claims(tables), **sm_objective(tables)}


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: python -m pathgeo.analysis.findings OUTPUTS (the default run's results/default/)")
    print(json.dumps(findings(Path(sys.argv[1])), indent=1, ensure_ascii=False, sort_keys=True))
