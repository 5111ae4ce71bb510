"""A run that extends a shorter one (the same spec but for more epochs, under a schedule that does not depend on the
budget) starts from the shorter run's checkpoints, trains only the new epochs, and ends bit-identical to training
from scratch, whether the shorter run is in the same plan or was finished by another config."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
import yaml
from workflow_runner import run_snakemake

from pathgeo.planning.config import build_plan, extended_run

ROOT = Path(__file__).resolve().parents[1]


def config(*steps: int) -> dict:
    """Full-batch MNIST-1D MLP runs at a constant LR of `steps` steps each (one step an epoch), measured during
    training only, in segments of 300 steps."""
    tiny = yaml.safe_load((ROOT / "tests/configs/tiny.yaml").read_text())
    tiny["datasets"] = {"mnist1d": tiny["datasets"]["mnist1d"]}
    tiny["segment_epochs"] = 300
    tiny["defaults"].update(optimizer="sgd", lr=0.5, weight_decay=0.0, full_batch=True, batch_size=100)
    tiny["experiments"] = {
        f"steps{n}": {"description": f"{n} steps", "measure": "w_star_free", "set": {"epochs": n}} for n in steps
    }
    tiny["figures"] = {}
    return tiny


def test_which_runs_extend_which():
    plan = build_plan(config(300, 600, 900))
    by_epochs = {spec.epochs: run_id for run_id, spec in plan.runs.items()}
    candidates = {run_id: (spec, plan.checkpoint_epochs(run_id)) for run_id, spec in plan.runs.items()}
    longest = plan.runs[by_epochs[900]]
    assert extended_run(longest, plan.checkpoint_epochs(by_epochs[900]), candidates) == by_epochs[600]
    assert extended_run(plan.runs[by_epochs[300]], plan.checkpoint_epochs(by_epochs[300]), candidates) is None
    # Another seed, a budget-dependent schedule or a missing checkpoint of the longer run's: no extension.
    other_seed = dataclasses.replace(longest, seed=1)
    assert extended_run(other_seed, (0, 300, 600, 900), candidates) is None
    cosine = dataclasses.replace(longest, schedule="warmup_cosine", warmup_epochs=1)
    shorter_cosine = {"c": (dataclasses.replace(cosine, epochs=600), (0, 300, 600))}
    assert extended_run(cosine, (0, 300, 600, 900), shorter_cosine) is None
    assert extended_run(longest, (0, 150, 300, 450, 600, 900), candidates) is None


def run_workflow(workdir: Path, steps: tuple[int, ...]) -> str:
    path = workdir.parent / f"{workdir.name}-{'-'.join(map(str, steps))}.yaml"
    path.write_text(yaml.safe_dump(config(*steps)))
    result = run_snakemake(workdir, "--cores", "2", configfile=path)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    return output


def run_files(results: Path, run_id: str) -> dict[str, bytes]:
    folder = results / "runs" / run_id
    paths = [*sorted((folder / "checkpoints").glob("*.pt")), *sorted(folder.glob("*.parquet"))]
    return {str(path.relative_to(folder)): path.read_bytes() for path in paths}


@pytest.mark.slow
def test_a_600_step_run_goes_on_from_the_300_step_run(tmp_path):
    (short, long) = sorted(build_plan(config(300, 600)).runs, key=lambda run: "e300" not in run)
    scratch = tmp_path / "scratch"
    run_workflow(scratch, (600,))
    expected = run_files(scratch / "results", long)
    assert list(expected) == [
        "checkpoints/epoch0000.pt",
        "checkpoints/epoch0300.pt",
        "checkpoints/epoch0600.pt",
        "train_correlations.matrices.parquet",
        "train_correlations.parquet",
        "train_log.parquet",
    ]

    # The shorter run finished by one config, then a config with the longer run alone: it goes on from the
    # shorter run's checkpoints on disk.
    later = tmp_path / "later"
    run_workflow(later, (300,))
    run_workflow(later, (600,))
    log = (later / "logs" / "reference" / f"{long}.log").read_text()
    assert f"goes on from the shorter run {short}, whose checkpoints up to epoch 300 are this run's" in log
    assert "resumes from its checkpoint at epoch 300" in log
    trained = [int(m) for m in re.findall(r"epoch (\d+)/600", log)]
    assert trained and min(trained) == 301 and len(trained) == 300
    assert run_files(later / "results", long) == expected

    # Both in one plan: the longer run's job waits for the shorter one's and goes on from it.
    together = tmp_path / "together"
    output = run_workflow(together, (300, 600))
    assert re.search(r"^reference\s+2$", output, re.M), output[-3000:]
    log = (together / "logs" / "reference" / f"{long}.log").read_text()
    assert len(re.findall(r"epoch (\d+)/600", log)) == 300
    assert run_files(together / "results", long) == expected
