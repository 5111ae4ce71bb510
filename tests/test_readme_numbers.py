"""The default run's numbers in the docs are its tables' (issue 19: the README said γ > 0 on 57.7% of steps where
the claims table of a run said 52.6%).

tests/fixtures/default_findings.json records what `python -m pathgeo.analysis.findings results/default` printed for the
default run (`.venv/bin/snakemake --cores 2`, then that command). docs/results.md states every finding and the
README some of them; the fast tests hold both to the record, and the slow one runs the default's tables again (or
reads those under $PATHGEO_DEFAULT_RESULTS, a default run's results/) and holds the record to them. Re-record after
a change that moves a number, and write the new number into docs/results.md and the README.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from pathgeo.analysis.findings import findings

ROOT = Path(__file__).resolve().parents[1]
RECORD = ROOT / "tests" / "fixtures" / "default_findings.json"
# Each finding as the docs state it: the sentence around the number, so that the number is the one meant.
PHRASES = {
    "zigzag_smooth_flips": "a median of {} of entries flipping sign",
    "zigzag_epoch": "It turns zigzag in epoch {}, the first epoch whose mean correlation is negative",
    "zigzag_lowest_mu": "(as low as {})",
    "zigzag_flips_from_epoch_100": "with {} of entries flipping sign each step from epoch 100 on",
    "zigzag_smooth_loss": "The training loss falls from {} in the smooth phase",
    "zigzag_zigzag_loss": "and from {} in the zigzag phase",
    "smooth_lowest_mu": "(mean correlation ≥ {},",
    "smooth_flips": "{} sign flips)",
    "gawu_switch_step": "turned negative at step {}",
    "gawu_switch_after_epochs": "(after {} epochs, LR",
    "gawu_switch_lr": "epochs, LR {}), and GAWU switched there",
    "gawu_accuracy": "Final validation accuracy: GAWU {},",
    "fixed_20_accuracy": "fixed switch after 20 epochs {},",
    "fixed_15_accuracy": "after 15 {},",
    "fixed_10_accuracy": "after 10 {}.",
    "sm_first_objective": "its objective falls from {} in epoch 1",
    "sm_last_objective": "to {} in epoch 10",
    "gamma_positive_holds": "holds for {} of the 23 replayed MNIST-1D runs",
    "mnist_runs": "of the {} replayed MNIST-1D runs",
    "gamma_positive_range": "runs ({} of steps)",
    "walk_gamma_positive": "for the random walk ({})",
    "sm_gamma_positive": "and for SM ({}):",
    "gawu_gamma_positive": "(GAWU {},",
    "fixed_20_gamma_positive": "the fixed switch after 20 epochs {})",
    "alm_gamma_positive": "for ALM ({}),",
    "min_gamma_holds": "holds for {} of the 23 MNIST-1D runs",
    "stable_holds": "holds for {} of the 23:",
    "unstable_cv_range": "The other runs have CV {}:",
    "trend_fails": "holds for every run ({} fail)",
}


# The findings the README states beside docs/results.md, which states them all.
README_FINDINGS = {
    "zigzag_smooth_flips",
    "zigzag_epoch",
    "zigzag_lowest_mu",
    "zigzag_flips_from_epoch_100",
    "zigzag_smooth_loss",
    "zigzag_zigzag_loss",
    "smooth_lowest_mu",
    "smooth_flips",
    "gawu_switch_step",
    "gawu_switch_after_epochs",
    "gawu_switch_lr",
    "gawu_accuracy",
    "fixed_20_accuracy",
    "fixed_15_accuracy",
    "fixed_10_accuracy",
    "gamma_positive_holds",
    "mnist_runs",
    "alm_gamma_positive",
}
PAGES = {"docs/results.md": set(PHRASES), "README.md": README_FINDINGS}


def page_text(page: str) -> str:
    """The page with each run of whitespace one space, as a phrase may wrap."""
    return " ".join((ROOT / page).read_text().split())


def test_every_recorded_finding_has_its_phrase() -> None:
    assert set(PHRASES) == set(json.loads(RECORD.read_text()))
    assert README_FINDINGS <= set(PHRASES)


@pytest.mark.parametrize(("page", "key"), [(page, key) for page, keys in PAGES.items() for key in sorted(keys)])
def test_the_page_states_the_recorded_number(page: str, key: str) -> None:
    value = json.loads(RECORD.read_text())[key]
    assert PHRASES[key].format(value) in page_text(page), f"{key}: {page} does not say {PHRASES[key].format(value)!r}"


@pytest.mark.parametrize("page", sorted(PAGES))
def test_a_number_that_differs_from_the_record_is_caught(page: str) -> None:
    """The README's old claim, "the fixed switch at epoch 20 57.7%" against a run whose table said 52.6%."""
    assert PHRASES["fixed_20_gamma_positive"].format("52.6%") not in page_text(page)
    assert PHRASES["gawu_accuracy"].format("41.3%") not in page_text(page)


@pytest.fixture(scope="module")
def default_results(request) -> Path:
    """A default run's outputs, results/default/: under $PATHGEO_DEFAULT_RESULTS (a default run's results/), or of
    the whole default run, made once for the session (tests/conftest.py)."""
    given = os.environ.get("PATHGEO_DEFAULT_RESULTS")
    if given:
        return Path(given) / "default"
    return request.getfixturevalue("default_run") / "results" / "default"


@pytest.mark.slow
def test_the_record_is_the_default_runs(default_results: Path) -> None:
    assert findings(default_results) == json.loads(RECORD.read_text())


@pytest.mark.slow
def test_no_figure_of_the_default_run_is_larger_than_two_megabytes(default_results: Path) -> None:
    """Issue 22 (a long run's figure was a 31 MB SVG); level_sets' ARIA label per heatmap cell made 2.5 MB."""
    sizes = {path.name: path.stat().st_size for path in (default_results / "figures").iterdir()}
    assert len(sizes) >= 2 * 30
    assert max(sizes.values()) < 2e6, sorted(sizes.items(), key=lambda item: -item[1])[:3]


@pytest.mark.slow
def test_the_default_runs_full_batch_runs_have_their_onset_and_verdict(default_results: Path) -> None:
    """Issue 22's acceptance: the findings table gives every full-batch run its zigzag onset and verdict, and the
    onset figure draws them with the fitted exponent."""
    import polars as pl

    table = pl.read_parquet(default_results / "tables" / "zigzag.parquet").filter(pl.col("full_batch"))
    assert table.height == 5
    turned = table.filter(pl.col("zigzag_onset_step").is_not_null())
    assert sorted(turned["peak_lr"].to_list()) == [0.25, 0.5, 1.0, 2.0]
    assert set(turned["verdict"]) == {"smooth → zigzag"}
    # A smaller step turns later: the fractal structure's scaling, in its direction.
    by_lr = turned.sort("peak_lr")["zigzag_onset_step"].to_list()
    assert by_lr == sorted(by_lr, reverse=True)
    assert re.search(r"slope −?-?\d\.\d\d", (default_results / "figures" / "zigzag_onset.svg").read_text())


def test_findings_name_the_table_they_lack(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=re.escape("full_batch/steps.parquet")):
        findings(tmp_path)
