"""The configs of config/examples/: each plans, and own_model.yaml (a model from a module of its own, AdamW, a
`tensors` dataset) runs end to end through Snakemake as docs/own-code.md says, with replay drift 0.0."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from workflow_runner import run_snakemake

from pathgeo.planning.config import build_plan

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "config" / "examples").glob("*.yaml"))


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_every_example_plans(path, monkeypatch):
    monkeypatch.chdir(ROOT)  # as docs/own-code.md runs them: from the repository root
    assert build_plan(yaml.safe_load(path.read_text())).runs


@pytest.mark.slow
def test_own_model_with_adamw_on_tensors_runs_end_to_end(tmp_path):
    data_root = tmp_path / "data"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run(
        [sys.executable, str(ROOT / "config/examples/make_tensors.py"), str(data_root / "examples/mnist1d.pt")],
        check=True,
        env=env,
        capture_output=True,
    )
    workdir = tmp_path / "work"
    result = run_snakemake(
        workdir,
        "--cores",
        "2",
        "--config",
        f"data_root={data_root}",
        configfile=ROOT / "config/examples/own_model.yaml",
        cwd=ROOT,
        timeout=1200,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]

    config = yaml.safe_load((ROOT / "config/examples/own_model.yaml").read_text())
    plan = build_plan(config)
    assert len(plan.runs) == 2
    for run_id, spec in plan.runs.items():
        assert (spec.model, spec.optimizer) == ("config.examples.my_model:small_convnet", "adamw")
        folder = workdir / "results" / "runs" / run_id
        final = torch.load(folder / "checkpoints" / f"epoch{spec.epochs:04d}.pt", weights_only=True)
        assert set(final["model"]) == {
            "features.0.weight",
            "features.0.bias",
            "features.3.weight",
            "features.3.bias",
            "head.weight",
            "head.bias",
        }  # the example's SmallConvNet
        group = final["optimizer"]["param_groups"][0]
        assert group["decoupled_weight_decay"] and group["weight_decay"] == 0.01  # AdamW's
        assert list(group["betas"]) == spec.optimizer_options["betas"]
        fidelities = sorted((folder / "replay").glob("*.fidelity.json"))
        assert len(fidelities) == len(plan.segments(run_id))
        for path in fidelities:
            assert json.loads(path.read_text())["relative_drift"] == 0.0, path
    for name in config["figures"]:
        assert (workdir / "results" / "own_model" / "figures" / f"{name}.svg").exists()
