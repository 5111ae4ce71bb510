"""The second paper's findings ("A mysterious optimization geometry"), run by run, from the mean gradient
correlation μ(t) and the loss:

- μ(t) from the start: the mean of cos(G_s, G_{s−1}) over the h − 1 adjacent pairs of the window that ends at t,
  or over the pairs there are where a run or a segment has fewer (`corr_pairs` says how many), so a run that
  starts zigzag shows it at its second step;
- the zigzag onset: the first step (and its epoch) where μ(t) is negative, and the share of the steps from there
  on that are zigzag;
- the phases: stretches of smooth (μ above `threshold`) and zigzag geometry (μ below −`threshold`); a step in
  between keeps the geometry of the step before it, and a stretch shorter than `min_phase_steps` is counted to the
  phase before it. Each phase has its first and last step and its mean μ;
- the verdict: smooth → zigzag (the paper's convolutional networks: the run starts smooth, and most of its steps
  after the first phase are zigzag), zigzag → smooth (its residual networks), or neither;
- the training progress made under each geometry: the loss decrease from step t to t + 1, counted to step t's
  geometry (the paper: "a substantial part of the training progress is achieved under zigzag geometry"), for a
  full-batch run, whose step loss is the loss; null for minibatch runs, whose consecutive losses are of different
  minibatches. The share under zigzag is of the whole decrease, so a smooth phase in which the loss rose makes it
  exceed 1.

The thresholds are the config's `zigzag` section. Everything needs no w*, so every run has its findings, replayed
or measured during training only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from pathgeo.analysis.aggregate import factor_frame, mean_corr_from_start, scan_steps
from pathgeo.columns import FACTORS

SMOOTH, ZIGZAG = "smooth", "zigzag"
VERDICTS = ("smooth → zigzag", "zigzag → smooth", "neither")


@dataclass(frozen=True)
class Phase:
    geometry: str
    first_step: int
    last_step: int
    mean_corr: float
    steps: int


def classify(mu: Sequence[float | None], threshold: float) -> list[str | None]:
    """Each step's geometry: zigzag below −threshold, smooth above it, that of the step before in between; None
    before the first step that has a μ."""
    geometries: list[str | None] = []
    current = None
    for value in mu:
        if value is not None:
            if value < -threshold:
                current = ZIGZAG
            elif value > threshold:
                current = SMOOTH
        geometries.append(current)
    return geometries


def phases(steps: Sequence[int], mu: Sequence[float | None], threshold: float, min_steps: int) -> list[Phase]:
    """The run's phases in order: maximal stretches of one geometry, where a stretch shorter than `min_steps` is
    counted to the phase before it (the first one, to the phase after it)."""
    stretches: list[tuple[str, list[int]]] = []  # indices into steps
    for i, geometry in enumerate(classify(mu, threshold)):
        if geometry is None:
            continue
        if stretches and stretches[-1][0] == geometry:
            stretches[-1][1].append(i)
        else:
            stretches.append((geometry, [i]))
    merged: list[tuple[str, list[int]]] = []
    for geometry, members in stretches:
        if merged and (len(members) < min_steps or merged[-1][0] == geometry):
            merged[-1][1].extend(members)
        elif len(merged) == 1 and len(merged[0][1]) < min_steps:
            merged[0] = (geometry, merged[0][1] + members)
        else:
            merged.append((geometry, list(members)))
    return [
        Phase(geometry, steps[members[0]], steps[members[-1]], _mean([mu[i] for i in members]), len(members))
        for geometry, members in merged
    ]


def _mean(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known else None


def verdict(found: Sequence[Phase]) -> str:
    """smooth → zigzag where the run starts smooth and most of its steps after the first phase are zigzag;
    zigzag → smooth the other way round; neither otherwise (one geometry throughout, or no majority after)."""
    if not found:
        return VERDICTS[2]
    later = {SMOOTH: 0, ZIGZAG: 0}
    for phase in found[1:]:
        later[phase.geometry] += phase.steps
    first, other = found[0].geometry, ZIGZAG if found[0].geometry == SMOOTH else SMOOTH
    if later[other] > later[first]:
        return VERDICTS[0] if first == SMOOTH else VERDICTS[1]
    return VERDICTS[2]


def run_findings(
    run: pl.DataFrame, threshold: float, min_steps: int, full_batch: bool = True
) -> tuple[dict[str, Any], list[Phase]]:
    """One run's findings from its steps (step, epoch, loss, mean_corr_from_start), in order. The loss decreases
    are a full-batch run's only: consecutive minibatch losses are of different minibatches."""
    steps, epochs = run["step"].to_list(), run["epoch"].to_list()
    mu, loss = run["mean_corr_from_start"].to_list(), run["loss"].to_list()
    geometries = classify(mu, threshold)
    onset = next((i for i, value in enumerate(mu) if value is not None and value < 0), None)
    after = geometries[onset:] if onset is not None else []
    # Progress under each geometry: loss(t) − loss(t + 1), counted to step t's geometry.
    decrease: dict[str, float | None] = {SMOOTH: None, ZIGZAG: None}
    if full_batch:
        decrease = {SMOOTH: 0.0, ZIGZAG: 0.0}
        for i in range(len(steps) - 1):
            if geometries[i] is not None and loss[i] is not None and loss[i + 1] is not None:
                decrease[geometries[i]] += loss[i] - loss[i + 1]
    total = decrease[SMOOTH] + decrease[ZIGZAG] if full_batch else 0.0
    found = phases(steps, mu, threshold, min_steps)
    row = {
        "steps_measured": len(steps),
        "zigzag_onset_step": steps[onset] if onset is not None else None,
        "zigzag_onset_epoch": epochs[onset] if onset is not None else None,
        "frac_zigzag_after_onset": sum(g == ZIGZAG for g in after) / len(after) if after else None,
        "min_mean_corr": min((v for v in mu if v is not None), default=None),
        "phases": len(found),
        "verdict": verdict(found),
        "loss_decrease_smooth": decrease[SMOOTH],
        "loss_decrease_zigzag": decrease[ZIGZAG],
        "frac_loss_decrease_zigzag": decrease[ZIGZAG] / total if total > 0 else None,
    }
    return row, found


def findings_tables(
    paths: Sequence[str | Path], runs: dict[str, dict[str, Any]], window: int, thresholds: dict[str, float]
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The findings of every run (one row each, with its factors and the thresholds as columns) and its phases
    (one row each), from the per-step tables (replays, or reference training's w*-free tables)."""
    threshold, min_steps = float(thresholds["threshold"]), int(thresholds["min_phase_steps"])
    steps = (
        scan_steps(paths)
        .filter(pl.col("reference") == "final")
        .select("run_id", "reference", "epoch", "step", "loss", "grad_corr", "mean_grad_corr")
        .unique(["run_id", "step"])
        .sort("run_id", "step")
        .with_columns(mean_corr_from_start(window))
        .collect()
    )
    rows, phase_rows = [], []
    for (run_id,), run in steps.group_by("run_id", maintain_order=True):
        full_batch = bool(runs[run_id]["factors"].get("full_batch", False)) if run_id in runs else False
        row, found = run_findings(run, threshold, min_steps, full_batch)
        rows.append({"run_id": run_id, **row})
        phase_rows += [
            {
                "run_id": run_id,
                "phase": i,
                "geometry": p.geometry,
                "first_step": p.first_step,
                "last_step": p.last_step,
                "steps": p.steps,
                "mean_corr": p.mean_corr,
            }
            for i, p in enumerate(found)
        ]
    schema = {
        "zigzag_onset_step": pl.Int64,
        "zigzag_onset_epoch": pl.Int64,
        "frac_zigzag_after_onset": pl.Float64,
        "min_mean_corr": pl.Float64,
        "loss_decrease_smooth": pl.Float64,
        "loss_decrease_zigzag": pl.Float64,
        "frac_loss_decrease_zigzag": pl.Float64,
    }
    found = pl.DataFrame(rows, schema_overrides=schema, infer_schema_length=None)
    table = (
        factor_frame(runs)
        .collect()
        .join(found, on="run_id", how="left")
        .with_columns(pl.lit(threshold).alias("threshold"), pl.lit(min_steps).alias("min_phase_steps"))
        .sort(*FACTORS, "run_id")
    )
    phase_schema = {
        "run_id": pl.String,
        "phase": pl.Int64,
        "geometry": pl.String,
        "first_step": pl.Int64,
        "last_step": pl.Int64,
        "steps": pl.Int64,
        "mean_corr": pl.Float64,
    }
    return table, pl.DataFrame(phase_rows, schema=phase_schema).sort("run_id", "phase")
