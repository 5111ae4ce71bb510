"""The paper's datasets through the whole workflow, on tiny files written in each dataset's real format, and
every preset planned by `snakemake -n`.

Each end-to-end case runs prep (the fingerprint), a two-epoch reference and its replay through Snakemake on
the CPU and checks that the replay followed the reference exactly (drift 0.0).
"""

from __future__ import annotations

import json
from pathlib import Path

import fake_data
import polars as pl
import pytest
import yaml
from workflow_runner import run_snakemake

from pathgeo.planning import sizing
from pathgeo.planning.config import build_plan, max_job_minutes

ROOT = Path(__file__).resolve().parents[1]
PRESETS = sorted((ROOT / "config" / "presets").glob("*.yaml"))

# Reference runs each preset needs after sharing, as docs/presets.md states them. CIFAR-10: Table 2's optimizer
# grid (9 runs, budgets 100/190/280 from one replay each), 3 seeds, 4 batch sizes (batch 256 at LR 0.01 is
# the default run that the seed experiment also uses), Medium-MLP and ResNet18-2, VGG-11/19 and MobileNet-V2.
# ImageNet: six ResNets and MobileNet-V2, each at 90 and 180 epochs (the warm-up + cosine schedule depends on
# the budget, so a budget cannot be a reference point of a longer run). Zigzag: six full-batch runs and the
# four warm-ups of Figure 10.
EXPECTED_REFERENCE_RUNS = {
    "cifar10": 20,
    "imagenet": 14,
    "wikitext2": 4,
    "ptb": 1,
    "wikitext103": 1,
    "vaihingen": 2,
    "zigzag": 12,
}


def base_config(data_root: Path) -> dict:
    return {
        "data_root": str(data_root),
        "device": "cpu",
        "deterministic": True,
        "threads": 1,
        "segment_epochs": 1,
        "fidelity_tolerance": 0.0,
        "exclude_final_epoch": False,
        "claims": {
            "min_frac_steps_gamma_positive": 0.95,
            "max_gamma_epoch_cv": 0.5,
            "min_frac_epochs_min_gamma_positive": 0.9,
            "min_abs_trend": 0.7,
        },
        "figures": {"gamma": {"plot": "gamma_band", "experiment": "tiny", "color": "model"}},
        "experiments": {"tiny": {}},
    }


def defaults(dataset: str, model: str, **overrides) -> dict:
    return {
        "dataset": dataset,
        "model": model,
        "width": 1,
        "optimizer": "momentum",
        "lr": 0.01,
        "base_batch_size": None,
        "weight_decay": 1e-5,
        "schedule": "constant",
        "warmup_epochs": 0,
        "batch_size": 4,
        "epochs": 2,
        "seed": 0,
        "data_order_seed": 0,
        "precision": "float32",
        **overrides,
    }


def cifar10_case(data_root: Path) -> dict:
    fake_data.write_cifar10(data_root / "cifar10", per_batch=4, n_test=4)
    return {
        "datasets": {
            "cifar10": {
                "kind": "cifar10",
                "path": "cifar10",
                "split_seed": 0,
                "val_fraction": 0.2,
                "flip": True,
                "verify_md5": False,
            }
        },
        # 16 training images (80% of 20), batch 4: four steps an epoch with crop and flip on every batch.
        "defaults": defaults("cifar10", "cifar_resnet18", width=0.125),
    }


def imagenet_case(data_root: Path) -> dict:
    fake_data.write_imagenet(data_root / "imagenet", per_class=2)
    return {
        "datasets": {"imagenet": {"kind": "imagenet", "path": "imagenet", "workers": 0}},
        "defaults": defaults(
            "imagenet", "imagenet_resnet18", width=0.125, schedule="warmup_cosine", warmup_epochs=1, batch_size=2
        ),
    }


def corpus_case(data_root: Path, writer=fake_data.write_wikitext, folder: str = "wikitext-2") -> dict:
    files = writer(data_root / folder)
    return {
        "datasets": {"wikitext2": {"kind": "corpus", "path": folder, "files": files, "seq_len": 5}},
        "defaults": defaults(
            "wikitext2",
            "transformer_lm",
            optimizer="adam",
            lr=1e-3,
            batch_size=2,
            model_options={"heads": 2, "layers": 1},
            grad_clip=0.5,
        ),
    }


def ptb_case(data_root: Path) -> dict:
    return corpus_case(data_root, fake_data.write_ptb, "ptb")


def vaihingen_case(data_root: Path) -> dict:
    fake_data.write_vaihingen(data_root / "vaihingen", ids=(1, 3, 5), size=(64, 72))
    return {
        "datasets": {
            "vaihingen": {
                "kind": "vaihingen",
                "path": "vaihingen",
                "patch_size": 32,
                "patches_per_epoch": 6,
                "val_patches": 2,
                "train_ids": [1, 3],
                "val_ids": [5],
            }
        },
        "defaults": defaults("vaihingen", "unet", batch_size=3, schedule="final_drop", model_options={"base": 4}),
    }


CASES = {
    "cifar10": cifar10_case,
    "imagenet": imagenet_case,
    "wikitext": corpus_case,
    "ptb": ptb_case,
    "vaihingen": vaihingen_case,
}


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(CASES))
def test_prep_reference_and_replay_through_snakemake(tmp_path, case):
    data_root = tmp_path / "data"
    config = {**base_config(data_root), **CASES[case](data_root)}
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(config))
    workdir = tmp_path / "work"
    result = run_snakemake(workdir, "--configfile", str(config_path), "--cores", "2")
    assert result.returncode == 0, result.stderr[-4000:]

    (run_id,) = build_plan(config).runs
    manifest = json.loads((workdir / "results/data" / next(iter(config["datasets"])) / "manifest.json").read_text())
    assert manifest["fingerprint"]["digest"]
    fidelity = sorted((workdir / "results/runs" / run_id / "replay").glob("*.fidelity.json"))
    assert [f.name for f in fidelity] == ["0000-0001.fidelity.json", "0001-0002.fidelity.json"]
    assert all(json.loads(f.read_text())["relative_drift"] == 0.0 for f in fidelity)
    steps = pl.read_parquet(workdir / "results/runs" / run_id / "replay" / "0000-0001.parquet")
    assert steps.height > 0 and steps["gamma"].is_finite().all()
    log = pl.read_parquet(workdir / "results/runs" / run_id / "train_log.parquet")
    assert log["epoch"].to_list() == [0, 1]
    assert (workdir / "results/config/figures/gamma.svg").exists()


def test_changed_dataset_is_refused_after_prep(tmp_path):
    """A dataset edited after prep fingerprinted it fails the next job with a message naming its folder."""
    data_root = tmp_path / "data"
    config = {**base_config(data_root), **corpus_case(data_root)}
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(config))
    workdir = tmp_path / "work"
    prep = run_snakemake(
        workdir, "--configfile", str(config_path), "--cores", "1", "results/data/wikitext2/manifest.json"
    )
    assert prep.returncode == 0, prep.stderr[-3000:]
    (data_root / "wikitext-2" / "wiki.train.tokens").write_text(" a different corpus \n")
    result = run_snakemake(workdir, "--configfile", str(config_path), "--cores", "1")
    assert result.returncode != 0
    assert "the dataset changed since prep" in result.stderr and str(data_root / "wikitext-2") in result.stderr
    # It names the changed file and the command that fingerprints the dataset again (prep is not its rule).
    assert "wiki.train.tokens changed (" in result.stderr
    assert "snakemake --forcerun results/data/wikitext2/manifest.json" in result.stderr


def test_missing_data_fails_prep_naming_the_path(tmp_path):
    data_root = tmp_path / "data"
    config = {**base_config(data_root), **cifar10_case(data_root)}
    config["datasets"]["cifar10"]["path"] = "nowhere"
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(config))
    result = run_snakemake(tmp_path / "work", "--configfile", str(config_path), "--cores", "1")
    assert result.returncode != 0
    assert f"{data_root / 'nowhere'}: CIFAR-10 root not found; expected a folder holding" in result.stderr


@pytest.mark.parametrize("preset", PRESETS, ids=[p.stem for p in PRESETS])
def test_every_preset_plans_the_papers_runs(tmp_path, preset):
    result = run_snakemake(tmp_path, "-n", "--configfile", str(preset), "--config", f"data_root={tmp_path / 'data'}")
    assert result.returncode == 0, result.stderr[-3000:]
    counts = {
        line.split()[0]: int(line.split()[1])
        for line in result.stdout.splitlines()
        if len(line.split()) == 2 and line.split()[1].isdigit()
    }
    assert counts["reference"] == EXPECTED_REFERENCE_RUNS[preset.stem]
    config = yaml.safe_load(preset.read_text())
    # Segments as the workflow plans them: short enough for one job within the default max_job_minutes.
    plan = sizing.sized_plan(config, max_job_minutes(config), "a100", config["threads"])
    assert len(plan.runs) == counts["reference"]
    assert counts["replay"] == sum(len(plan.segments(run)) for run in plan.runs)
