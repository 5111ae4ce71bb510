"""Every preset and the default config plan exactly the runs, segments and references they planned before the
registries (issue 10): the same run ids, canonical specs, experiments, checkpoint segments and reference points,
and the same run labels (each experiment's, and each run's one-line description, which the claims table shows).

tests/fixtures/plan_snapshot.json was recorded from the code before the restructuring (commit 020a946). A change
that renames or re-plans runs on purpose re-records it and says so in its commit.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from pathgeo.config import build_plan
from pathgeo.labels import describe, run_labels

ROOT = Path(__file__).resolve().parents[1]
SNAPSHOT = ROOT / "tests" / "fixtures" / "plan_snapshot.json"
CONFIGS = ["config/config.yaml", *(p.relative_to(ROOT).as_posix() for p in sorted((ROOT / "config/presets").glob("*.yaml")))]


def plan_snapshot(config: dict[str, Any]) -> dict[str, Any]:
    plan = build_plan(config)
    return {
        "runs": {run_id: spec.canonical_json() for run_id, spec in sorted(plan.runs.items())},
        "experiments": {name: list(run_ids) for name, run_ids in plan.experiments.items()},
        "experiment_references": {
            f"{exp} {run_id}": list(epochs) for (exp, run_id), epochs in sorted(plan.experiment_references.items())
        },
        "segments": {run_id: [list(s) for s in plan.segments(run_id)] for run_id in sorted(plan.runs)},
        "references": {run_id: [[r.name, r.epoch] for r in plan.references(run_id)] for run_id in sorted(plan.runs)},
        "labels": {
            name: run_labels({run_id: plan.runs[run_id] for run_id in run_ids})
            for name, run_ids in plan.experiments.items()
        },
        "descriptions": {run_id: describe(spec) for run_id, spec in sorted(plan.runs.items())},
    }


def test_snapshot_covers_every_config() -> None:
    assert sorted(json.loads(SNAPSHOT.read_text())) == sorted(CONFIGS)


@pytest.mark.parametrize("config", CONFIGS)
def test_plan_unchanged(config: str) -> None:
    expected = json.loads(SNAPSHOT.read_text())[config]
    actual = json.loads(json.dumps(plan_snapshot(yaml.safe_load((ROOT / config).read_text()))))
    for part in expected:
        assert actual[part] == expected[part], f"{config}: {part} changed"
    assert set(actual) == set(expected)
