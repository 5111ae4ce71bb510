"""The second paper's findings per run (pathgeo.analysis.zigzag) against phases worked out by hand on synthetic μ(t)."""

from __future__ import annotations

import math

import polars as pl
import pytest
from run_factors import factors as run_factors

from pathgeo.analysis.aggregate import mean_corr_from_start
from pathgeo.analysis.zigzag import Phase, classify, findings_tables, phases, run_findings, verdict

S, Z = "smooth", "zigzag"


def test_each_step_is_smooth_or_zigzag_beyond_the_threshold_and_keeps_its_geometry_in_between():
    mu = [None, 0.5, 0.05, -0.5, -0.05, 0.2, None, 0.0]
    assert classify(mu, 0.1) == [None, S, S, Z, Z, S, S, S]
    assert classify(mu, 0.0) == [None, S, S, Z, Z, S, S, S]
    assert classify([None, -0.01], 0.0) == [None, Z]


def test_a_smooth_start_then_zigzag_with_a_short_smooth_blip():
    """10 smooth steps, then 20 zigzag ones, of which steps 15 and 16 are slightly positive: the blip (2 < 5 steps)
    belongs to the zigzag phase."""
    steps = list(range(100, 130))
    mu = [0.9] * 10 + [-0.9] * 5 + [0.3, 0.3] + [-0.9] * 13
    found = phases(steps, mu, 0.0, 5)
    assert [(p.geometry, p.first_step, p.last_step, p.steps) for p in found] == [(S, 100, 109, 10), (Z, 110, 129, 20)]
    assert found[1].mean_corr == pytest.approx((-0.9 * 18 + 0.6) / 20)
    assert verdict(found) == "smooth → zigzag"


def test_the_residual_networks_pattern():
    steps = list(range(80))
    mu = [None] + [-0.3] * 29 + [0.8] * 50
    found = phases(steps, mu, 0.0, 5)
    assert [(p.geometry, p.first_step, p.last_step) for p in found] == [(Z, 1, 29), (S, 30, 79)]
    assert verdict(found) == "zigzag → smooth"


def test_a_first_stretch_too_short_to_be_a_phase_belongs_to_the_next():
    """μ at the second step is one noisy pair; a zigzag run whose first pair came out positive is zigzag."""
    found = phases(list(range(12)), [None, 0.2, 0.1] + [-0.95] * 9, 0.0, 5)
    assert [(p.geometry, p.first_step, p.last_step) for p in found] == [(Z, 1, 11)]
    assert verdict(found) == "neither"


def test_no_zigzag_and_no_measurement():
    assert verdict(phases(list(range(10)), [None] + [0.5] * 9, 0.0, 5)) == "neither"
    assert verdict([]) == "neither"
    assert verdict([Phase(Z, 0, 9, -0.9, 10), Phase(S, 10, 12, 0.5, 3), Phase(Z, 13, 20, -0.9, 8)]) == "neither"


def run_frame(mu, loss, steps_per_epoch=4):
    steps = list(range(len(mu)))
    return pl.DataFrame(
        {"step": steps, "epoch": [s // steps_per_epoch for s in steps], "loss": loss, "mean_corr_from_start": mu}
    )


def test_onset_share_and_the_loss_decrease_under_each_geometry():
    #          step: 0     1     2     3     4      5     6     7
    mu = [None, 0.5, 0.4, -0.6, -0.7, 0.2, -0.8, -0.9]
    loss = [10.0, 9.0, 7.0, 6.0, 5.5, 5.0, 4.0, 3.5]
    row, found = run_findings(run_frame(mu, loss), 0.0, 1)
    assert row["zigzag_onset_step"] == 3 and row["zigzag_onset_epoch"] == 0
    # From the onset: steps 3..7 are zigzag, zigzag, smooth, zigzag, zigzag.
    assert row["frac_zigzag_after_onset"] == pytest.approx(4 / 5)
    # Step 0 has no geometry; smooth steps 1, 2, 5 decrease by 2 + 1 + 1, zigzag steps 3, 4, 6 by 0.5 + 0.5 + 0.5
    # (step 7 has no next loss).
    assert row["loss_decrease_smooth"] == pytest.approx(4.0)
    assert row["loss_decrease_zigzag"] == pytest.approx(1.5)
    assert row["frac_loss_decrease_zigzag"] == pytest.approx(1.5 / 5.5)
    assert row["min_mean_corr"] == -0.9
    assert [p.geometry for p in found] == [S, Z, S, Z] and row["phases"] == 4


def test_a_run_that_never_turns():
    row, _ = run_findings(run_frame([None, 0.9, 0.9], [3.0, 2.0, 1.0]), 0.0, 5)
    assert row["zigzag_onset_step"] is None and row["frac_zigzag_after_onset"] is None
    assert row["verdict"] == "neither" and row["frac_loss_decrease_zigzag"] == 0.0


def test_the_mean_correlation_from_the_start_of_each_segment():
    """h = 3 (2 pairs). The probe's μ is null until a window of 2 pairs lies in a segment (a new segment starts at
    step 4, where grad_corr is null); from the start, μ is the mean of the pairs there are."""
    grad_corr = [None, 0.2, 0.4, -0.6, None, -0.8, -1.0, 0.0]
    probe_mu = [None, None, 0.3, -0.1, None, None, -0.9, -0.5]
    frame = pl.DataFrame(
        {
            "run_id": ["r"] * 8,
            "reference": ["final"] * 8,
            "step": list(range(8)),
            "grad_corr": grad_corr,
            "mean_grad_corr": probe_mu,
        }
    ).with_columns(mean_corr_from_start(3))
    expected = [None, 0.2, 0.3, -0.1, -0.6, -0.8, -0.9, -0.5]
    got = frame["mean_corr_from_start"].to_list()
    assert [g is None for g in got] == [e is None for e in expected]
    assert all(math.isclose(g, e) for g, e in zip(got, expected) if e is not None)
    assert frame["corr_pairs"].to_list() == [0, 1, 2, 2, 1, 1, 2, 2]


def test_findings_from_per_step_tables(tmp_path):
    """Two runs in the replay's per-step format, one with two references (its rows count once)."""
    rows = []
    for run_id, sign in (("smooth_then_zigzag", 1.0), ("zigzag_then_smooth", -1.0)):
        for reference in ("final", "epoch2") if sign > 0 else ("final",):
            for step in range(24):
                corr = None if step == 0 else (sign * 0.9 if step < 12 else -sign * 0.9)
                rows.append(
                    {
                        "run_id": run_id,
                        "reference": reference,
                        "epoch": step // 6,
                        "step": step,
                        "loss": 10.0 - 0.1 * step,
                        "grad_corr": corr,
                        "mean_grad_corr": None,
                    }
                )
    path = tmp_path / "steps.parquet"
    pl.DataFrame(rows).write_parquet(path)
    factors = run_factors(lr=0.5, batch_size=100, full_batch=True, epochs=4)
    runs = {run_id: {"label": run_id, "factors": factors} for run_id in ("smooth_then_zigzag", "zigzag_then_smooth")}
    table, phase_table = findings_tables([path], runs, 5, {"threshold": 0.0, "min_phase_steps": 3})
    by_run = {row["run_id"]: row for row in table.iter_rows(named=True)}
    first, second = by_run["smooth_then_zigzag"], by_run["zigzag_then_smooth"]
    assert first["verdict"] == "smooth → zigzag" and second["verdict"] == "zigzag → smooth"
    assert first["steps_measured"] == 24 and first["threshold"] == 0.0 and first["min_phase_steps"] == 3
    # μ over the last 4 pairs turns negative once 3 of them are: at step 14 (pairs 11..14: +, -, -, -).
    assert first["zigzag_onset_step"] == 14 and first["zigzag_onset_epoch"] == 2
    assert second["zigzag_onset_step"] == 1
    assert phase_table.filter(pl.col("run_id") == "smooth_then_zigzag")["geometry"].to_list() == [S, Z]
    assert table.columns[:2] == ["run_id", "label"]


def test_the_loss_decrease_is_a_full_batch_runs_only_and_most_steps_after_the_first_phase_decide():
    mu = [None, 0.5, 0.4, -0.6, -0.7, 0.2, -0.8, -0.9]
    row, _ = run_findings(run_frame(mu, [10.0, 9.0, 7.0, 6.0, 5.5, 5.0, 4.0, 3.5]), 0.0, 1, full_batch=False)
    assert row["loss_decrease_smooth"] is None and row["frac_loss_decrease_zigzag"] is None
    assert row["zigzag_onset_step"] == 3
    # Zigzag for 10 steps, smooth for 20, zigzag for 8: the smooth majority after the first phase decides.
    assert (
        verdict([Phase(Z, 0, 9, -0.9, 10), Phase(S, 10, 29, 0.5, 20), Phase(Z, 30, 37, -0.9, 8)]) == "zigzag → smooth"
    )
