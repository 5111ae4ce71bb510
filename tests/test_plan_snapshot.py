"""Every preset and the default config plan exactly the jobs they planned before the registries (issue 10): the same
runs (canonical specs), experiments, checkpoint segments and reference points.

tests/fixtures/plan_snapshot.json was recorded from the code before the restructuring (commit 020a946), keyed by
the run ids of then. Run ids have changed since in their readable part only (the slug names every field that
tells runs apart, issue 10 item 3); the hash of the canonical spec has not. So the comparison is by canonical
spec: each run id on either side is replaced by its run's canonical JSON, and everything planned for it (the
experiments it is in, their references, its segments and reference points) must be the same, and every run id's
hash must be the one it had. A change that re-plans runs on purpose re-records the snapshot and says so in its
commit: the ImageNet preset's entry was re-recorded when its runs moved to 4 devices (issue 11), the authors'
setup, which gives its runs new canonical specs; the default's and the zigzag preset's when their correlation-only
experiments moved to `measure: w_star_free` (issue 9), which plans no replay segments for the runs they alone use;
the default's again when its `architectures` runs went to 15 epochs and its `optimizers` to two seeds (to keep its DAG
under 5 minutes on 2 cores), when its `sm` run went to lr 0.001, a step its objective's curvature allows (issue
19), and when it gained the `zigzag_onset` experiment, three new full-batch runs at LR 2, 1 and 0.25 (issue 22);
the zigzag preset's when it gained `onset_vgg16`, VGG-16 at LR 0.05 and 0.02 (issue 22).

Labels changed on purpose; their tests check what they must do instead: within every experiment of every config
no two runs share a label, and no two runs of a config share a description (the claims table's label).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from pathgeo.planning.config import build_plan
from pathgeo.planning.labels import describe, run_descriptions, run_labels

ROOT = Path(__file__).resolve().parents[1]
SNAPSHOT = ROOT / "tests" / "fixtures" / "plan_snapshot.json"
CONFIGS = [
    "config/config.yaml",
    *(p.relative_to(ROOT).as_posix() for p in sorted((ROOT / "config/presets").glob("*.yaml"))),
]


def load(config: str) -> dict[str, Any]:
    return yaml.safe_load((ROOT / config).read_text())


def plan_snapshot(config: dict[str, Any]) -> dict[str, Any]:
    """The plan in the snapshot's shape, keyed by run id."""
    plan = build_plan(config)
    return {
        "runs": {run_id: spec.canonical_json() for run_id, spec in sorted(plan.runs.items())},
        "experiments": {name: list(run_ids) for name, run_ids in plan.experiments.items()},
        "experiment_references": {
            f"{exp} {run_id}": list(epochs) for (exp, run_id), epochs in sorted(plan.experiment_references.items())
        },
        "segments": {run_id: [list(s) for s in plan.segments(run_id)] for run_id in sorted(plan.runs)},
        "references": {run_id: [[r.name, r.epoch] for r in plan.references(run_id)] for run_id in sorted(plan.runs)},
    }


def by_spec(snapshot: dict[str, Any]) -> dict[str, Any]:
    """The snapshot with every run id replaced by its run's canonical JSON."""
    spec = snapshot["runs"]
    return {
        "runs": sorted(spec.values()),
        "experiments": {name: [spec[run] for run in runs] for name, runs in snapshot["experiments"].items()},
        "experiment_references": {
            (key.split(" ", 1)[0], spec[key.split(" ", 1)[1]]): epochs
            for key, epochs in snapshot["experiment_references"].items()
        },
        "segments": {spec[run]: segments for run, segments in snapshot["segments"].items()},
        "references": {spec[run]: references for run, references in snapshot["references"].items()},
    }


def run_hash(run_id: str) -> str:
    return run_id.rsplit("-", 1)[1]


def test_snapshot_covers_every_config() -> None:
    assert sorted(json.loads(SNAPSHOT.read_text())) == sorted(CONFIGS)


@pytest.mark.parametrize("config", CONFIGS)
def test_plan_unchanged(config: str) -> None:
    expected = json.loads(SNAPSHOT.read_text())[config]
    actual = json.loads(json.dumps(plan_snapshot(load(config))))
    assert set(actual) == set(expected)
    then, now = by_spec(expected), by_spec(actual)
    for part in then:
        assert now[part] == then[part], f"{config}: {part} changed"
    assert sorted(map(run_hash, actual["runs"])) == sorted(map(run_hash, expected["runs"]))
    hashes = {spec: run_hash(run_id) for run_id, spec in expected["runs"].items()}
    assert all(hashes[spec] == run_hash(run_id) for run_id, spec in actual["runs"].items())


@pytest.mark.parametrize("config", CONFIGS)
def test_labels_tell_the_runs_beside_them_apart(config: str) -> None:
    plan = build_plan(load(config))
    for name, run_ids in plan.experiments.items():
        labels = run_labels({run_id: plan.runs[run_id] for run_id in run_ids})
        assert len(set(labels.values())) == len(run_ids), f"{config}: experiment {name}: {labels}"
    descriptions = [describe(spec) for spec in plan.runs.values()]
    assert len(set(descriptions)) == len(descriptions), f"{config}: two runs read the same"
    assert len({spec.slug for spec in plan.runs.values()}) == len(plan.runs), f"{config}: two runs share a slug"


def test_the_default_gawu_runs_and_full_batch_runs_read_as_what_they_are() -> None:
    plan = build_plan(load("config/config.yaml"))
    gawu = sorted(describe(plan.runs[run]) for run in plan.experiments["gawu"])
    assert gawu == [
        "mnist1d mlp64 sgd lr=0.001 bs=1000 40 epochs seed=0 schedule=exp_warmup_cosine warmup_epochs=10 warmup_growth=0.1",
        "mnist1d mlp64 sgd lr=0.001 bs=1000 40 epochs seed=0 schedule=exp_warmup_cosine warmup_epochs=15 warmup_growth=0.1",
        "mnist1d mlp64 sgd lr=0.001 bs=1000 40 epochs seed=0 schedule=exp_warmup_cosine warmup_epochs=20 warmup_growth=0.1",
        "mnist1d mlp64 sgd lr=0.001 bs=1000 40 epochs seed=0 schedule=gawu warmup_epochs=25 warmup_growth=0.1",
    ]
    full = [describe(plan.runs[run]) for run in plan.experiments["full_batch"]]
    assert full == [
        "mnist1d mlp64 sgd lr=0.5 full batch (chunks of 1000) 300 epochs seed=0",
        "mnist1d mlp64 sgd lr=0.05 full batch (chunks of 1000) 300 epochs seed=0",
    ]
    assert sorted(plan.runs[run].slug for run in plan.experiments["gawu"]) == [
        "mnist1d-mlp64-sgd-lr0.001-bs1000-expwucos-wu10-g0.1-e40-s0",
        "mnist1d-mlp64-sgd-lr0.001-bs1000-expwucos-wu15-g0.1-e40-s0",
        "mnist1d-mlp64-sgd-lr0.001-bs1000-expwucos-wu20-g0.1-e40-s0",
        "mnist1d-mlp64-sgd-lr0.001-bs1000-gawu-wu25-g0.1-e40-s0",
    ]


def test_descriptions_that_would_collide_name_their_run() -> None:
    plan = build_plan(load("config/config.yaml"))
    first = next(iter(plan.runs.values()))
    twin = dataclasses.replace(first, lr=first.lr * (1 + 1e-6))  # the same to 3 digits
    described = run_descriptions({first.run_id: first, twin.run_id: twin})
    assert described[first.run_id] == f"{describe(first)} · {first.run_id}"
    assert described[twin.run_id] == f"{describe(twin)} · {twin.run_id}"


def test_labels_name_options_and_widths_only_where_runs_have_them() -> None:
    plan = build_plan(load("config/config.yaml"))
    base = plan.runs[plan.experiments["baseline"][0]]
    runs = {
        "a": dataclasses.replace(base, optimizer="adamw", optimizer_options={"betas": [0.9, 0.95]}),
        "b": dataclasses.replace(base, optimizer="adamw", optimizer_options={"betas": [0.9, 0.999]}),
        "c": dataclasses.replace(base, model="linear", width=0),
    }
    assert run_labels(runs) == {
        "a": "model=mlp width=64 optimizer=adamw betas=(0.9, 0.95)",
        "b": "model=mlp width=64 optimizer=adamw betas=(0.9, 0.999)",
        "c": "model=linear optimizer=momentum",
    }
