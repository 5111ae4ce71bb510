"""The tables a config's figures read, shaped like a real run's without running one: the plan's runs with their
factors, labels, descriptions, epochs and reference points, put through pathgeo.analysis.aggregate and pathgeo.analysis.claims like the
workflow's own, with made-up measurements (a few steps per epoch, plausible ranges, μ(t) undefined before its window
is full). Import it from tests as `import plan_tables` (pytest puts tests/ on sys.path).

`PlanTables(config, root).figure_tables(name)` returns the tables a figure of the config draws, as
workflow_scripts/figure.py gives them to its plot.
"""

from __future__ import annotations

import math
import random
from functools import cached_property
from pathlib import Path
from typing import Any

import polars as pl

from pathgeo.analysis.aggregate import experiment_tables
from pathgeo.analysis.claims import claims_table
from pathgeo.analysis.figures import figure_experiments, plot
from pathgeo.analysis.zigzag import findings_tables
from pathgeo.columns import METRICS, POINT_METRICS
from pathgeo.planning.config import Plan, build_plan, planned_steps_per_epoch, zigzag_thresholds
from pathgeo.planning.config_defaults import with_defaults
from pathgeo.planning.labels import run_descriptions, run_labels
from pathgeo.training.models import Width, model
from pathgeo.training.optimizers import optimizer
from pathgeo.training.schedules import schedule_for
from pathgeo.training.spec import RunSpec

# Few steps per epoch keep the tables small; what figures show depends on the epochs, not on the steps in each.
MAX_STEPS_PER_EPOCH = 4
WINDOW = 5  # h: μ(t) is undefined for a segment's first h − 1 steps
FULL_BATCH_EVERY = 5  # epochs
FIXED_BATCHES, FIXED_EVERY = 8, 3  # steps
GRID = 7  # landscape points per axis


def descriptors(spec: RunSpec) -> dict[str, Any]:
    """What the workflow passes aggregation besides a run's factors (rules/common.smk, run_descriptors)."""
    width = model(spec.model).width
    return {
        "width_unit": None if width is Width.NONE else width.value,
        "step_scale": optimizer(spec.optimizer).step_scale(spec.optimizer_options),
    }


def reference_name(budget: int, epochs: int) -> str:
    return "final" if budget == epochs else f"epoch{budget}"


def step_values(rng: random.Random, step: int, total: int, lr: float, measured: bool) -> dict[str, float | None]:
    """One step's measurements: γ mostly positive, RSI and EB spanning decades, the gradient correlations turning
    from smooth to zigzag; the quantities measured against w* are null where the run is not replayed."""
    progress = step / max(total - 1, 1)
    gamma = 0.25 - 0.2 * progress + rng.uniform(-0.08, 0.08)
    eb = 0.02 * 100**progress * rng.uniform(0.8, 1.25)
    rsi = gamma * eb * rng.uniform(0.8, 1.2)
    values: dict[str, float | None] = {
        "lr": lr,
        "loss": 2.3 * math.exp(-1.5 * progress) * rng.uniform(0.95, 1.05),
        "grad_norm": rng.uniform(0.5, 2.0),
        "grad_corr": math.cos(math.pi * progress) * rng.uniform(0.8, 1.0),
        "mean_grad_corr": math.cos(math.pi * progress) * rng.uniform(0.8, 1.0),
        "sign_flip": 0.05 + 0.8 * progress * rng.uniform(0.8, 1.0),
    }
    w_star = {"rsi": rsi, "eb": eb, "gamma": gamma, "lolr": rsi / eb**2, "dist": 10.0 * (1 - progress) + 0.1}
    w_star |= {f"{m}_wd": v * 1.0001 for m, v in list(w_star.items()) if m != "dist"}
    w_star |= {"grad_norm_wd": values["grad_norm"], "upd_norm": lr, "upd_rsi": rsi, "upd_gamma": gamma}
    for metric in METRICS:
        if metric not in values:
            values[metric] = w_star.get(metric, rng.uniform(-0.5, 0.5)) if measured else None
    return values


class PlanTables:
    """The tables of every experiment of `config`, written under `root` as the workflow would, built on first use."""

    def __init__(self, config: dict[str, Any], root: Path, seed: int = 0):
        self.config = with_defaults(config)
        self.root = Path(root)
        self.plan: Plan = build_plan(config)
        self.rng = random.Random(seed)

    def steps_per_epoch(self, spec: RunSpec) -> int:
        return min(planned_steps_per_epoch(spec) or MAX_STEPS_PER_EPOCH, MAX_STEPS_PER_EPOCH)

    @cached_property
    def run_files(self) -> dict[str, dict[str, Path]]:
        """Each run's replay, matrices, train log, full-batch and fixed-batch files."""
        files = {}
        for run_id, spec in self.plan.runs.items():
            folder = self.root / "runs" / run_id
            folder.mkdir(parents=True, exist_ok=True)
            per_epoch = self.steps_per_epoch(spec)
            budgets = sorted(
                {b for (_, run), refs in self.plan.experiment_references.items() if run == run_id for b in refs}
                | {spec.epochs}
            )
            measured = self.plan.replayed(run_id)
            rows, points, batches = [], [], []
            # GAWU switches where its data say; here, halfway through its warm-up.
            schedule = schedule_for(spec, per_epoch)
            switch = schedule.warmup_steps // 2 if spec.schedule == "gawu" else None
            for budget in budgets:
                total = budget * per_epoch
                reference = reference_name(budget, spec.epochs)
                for step in range(total):
                    lr = spec.lr * schedule.lr_factor(step, switch)
                    values = step_values(self.rng, step, total, lr, measured)
                    if step % (spec.epochs * per_epoch) < WINDOW - 1:
                        values["mean_grad_corr"] = None
                    rows.append(
                        {
                            "run_id": run_id,
                            "reference": reference,
                            "budget": budget,
                            "epoch": step // per_epoch,
                            "step": step,
                            "steps_to_reference": total - step,
                            **values,
                        }
                    )
                    if measured and step % FIXED_EVERY == 0:
                        for batch in range(FIXED_BATCHES):
                            point = step_values(self.rng, step, total, spec.lr, True)
                            batches.append(
                                {
                                    "run_id": run_id,
                                    "reference": reference,
                                    "budget": budget,
                                    "epoch": step // per_epoch,
                                    "step": step,
                                    "batch": batch,
                                    **{m: point[m] for m in POINT_METRICS},
                                }
                            )
                for epoch in range(FULL_BATCH_EVERY - 1, budget, FULL_BATCH_EVERY):
                    point = step_values(self.rng, (epoch + 1) * per_epoch - 1, total, spec.lr, True)
                    points.append(
                        {
                            "run_id": run_id,
                            "reference": reference,
                            "budget": budget,
                            "epoch": epoch,
                            "step": (epoch + 1) * per_epoch,
                            **{m: point[m] for m in POINT_METRICS},
                        }
                    )
            paths = {
                "replay": folder / "replay.parquet",
                "matrices": folder / "matrices.parquet",
                "train": folder / "train_log.parquet",
                "full_batch": folder / "full_batch.parquet",
                "fixed_batches": folder / "fixed_batches.parquet",
            }
            # Typed as the probe writes them: a run measured without w* has its columns null, not of type Null.
            pl.DataFrame(
                rows, infer_schema_length=None, schema_overrides=dict.fromkeys(METRICS, pl.Float64)
            ).write_parquet(paths["replay"])
            pl.DataFrame(self.matrices(run_id, spec, per_epoch)).write_parquet(paths["matrices"])
            pl.DataFrame(self.train_log(spec), infer_schema_length=None).write_parquet(paths["train"])
            if points:
                pl.DataFrame(points, infer_schema_length=None).write_parquet(paths["full_batch"])
            if batches:
                pl.DataFrame(batches, infer_schema_length=None).write_parquet(paths["fixed_batches"])
            files[run_id] = paths
        return files

    def matrices(self, run_id: str, spec: RunSpec, per_epoch: int) -> list[dict[str, Any]]:
        rows = []
        for epoch in range(0, spec.epochs - 1, max(1, spec.epochs // 10)):
            for i in range(WINDOW):
                for j in range(WINDOW):
                    lag = abs(i - j)
                    rows.append(
                        {
                            "epoch": epoch,
                            "start_step": epoch * per_epoch,
                            "i": i,
                            "j": j,
                            "corr": (-0.9) ** lag,
                            "sign_flip": 0.0 if lag == 0 else self.rng.uniform(0, 1),
                            "run_id": run_id,
                        }
                    )
        return rows

    def train_log(self, spec: RunSpec) -> list[dict[str, Any]]:
        classifier = spec.data.kind == "mnist1d"
        # The synthetic objectives' losses run to hundreds: figures that print them have the room.
        scale = 1.0 if classifier else 655.2
        return [
            {
                "epoch": epoch,
                "train_loss": 2.3 * scale / (epoch + 1),
                "train_accuracy": 0.1 + 0.8 * epoch / spec.epochs if classifier else None,
                "val_loss": 2.4 / (epoch + 1),
                "val_accuracy": 0.1 + 0.7 * epoch / spec.epochs if classifier else None,
                "lr": spec.lr,
            }
            for epoch in range(spec.epochs)
        ]

    def experiment_runs(self, experiment: str) -> dict[str, dict[str, Any]]:
        """Each run of the experiment as rules/common.smk's experiment_runs hands it to aggregation."""
        runs = self.plan.experiments[experiment]
        labels = run_labels({run: self.plan.runs[run] for run in runs})
        return {
            run: {
                "factors": self.plan.runs[run].factors(),
                "label": labels[run],
                **descriptors(self.plan.runs[run]),
                "references": list(self.plan.experiment_references[(experiment, run)]),
            }
            for run in runs
        }

    @cached_property
    def experiment_tables(self) -> dict[str, dict[str, pl.DataFrame]]:
        tables = {}
        for experiment, runs in self.plan.experiments.items():
            files = [self.run_files[run] for run in runs]
            tables[experiment] = experiment_tables(
                experiment,
                [f["replay"] for f in files],
                [f["matrices"] for f in files],
                [f["train"] for f in files],
                self.experiment_runs(experiment),
                self.config.get("exclude_final_epoch", True),
                [f["full_batch"] for f in files if f["full_batch"].exists()],
                [f["fixed_batches"] for f in files if f["fixed_batches"].exists()],
            )
        return tables

    @cached_property
    def claims(self) -> pl.DataFrame:
        descriptions = run_descriptions(self.plan.runs)
        replayed = {
            run: {"factors": spec.factors(), "label": descriptions[run]}
            for run, spec in self.plan.runs.items()
            if self.plan.replayed(run)
        }
        return claims_table(
            [self.run_files[run]["replay"] for run in replayed],
            replayed,
            self.config["claims"],
            self.config.get("exclude_final_epoch", True),
        )

    @cached_property
    def zigzag(self) -> tuple[pl.DataFrame, pl.DataFrame]:
        """The second paper's findings of every run and their phases (pathgeo.analysis.zigzag), as rule zigzag makes them."""
        descriptions = run_descriptions(self.plan.runs)
        runs = {run: {"factors": spec.factors(), "label": descriptions[run]} for run, spec in self.plan.runs.items()}
        paths = [files["replay"] for files in self.run_files.values()]
        return findings_tables(paths, runs, WINDOW, zigzag_thresholds(self.config))

    def landscape(self, run_id: str) -> pl.DataFrame:
        spec = self.plan.runs[run_id]
        factors = spec.factors()
        common = {"run_id": run_id, "explained_a": 0.8, "explained_b": 0.15, **factors}
        rows = []
        for i in range(GRID):
            for j in range(GRID):
                a, b = -1 + 2 * i / (GRID - 1), -0.5 + j / (GRID - 1)
                rows.append({**common, "source": "grid", "a": a, "b": b, "loss": a * a + 4 * b * b})
        steps = spec.epochs * self.steps_per_epoch(spec)
        for t in range(steps + 1):
            r = 1 - t / steps
            rows.append(
                {
                    **common,
                    "source": "path",
                    "step": t,
                    "epoch": t // self.steps_per_epoch(spec),
                    "a": r * math.cos(t),
                    "b": r * math.sin(t) / 2,
                    "loss": r * r,
                    "off_plane": 0.1 * r,
                }
            )
        return pl.DataFrame(rows, infer_schema_length=None)

    def table(self, kind: str, experiments: list[str]) -> pl.DataFrame:
        """One kind of table (pathgeo.analysis.figures.TABLES) of these experiments, as figure.py concatenates it."""
        if kind == "claims":
            return self.claims
        if kind in ("zigzag", "zigzag_phases"):
            return self.zigzag[kind == "zigzag_phases"]
        if kind == "landscape":
            frames = [self.landscape(run) for experiment in experiments for run in self.plan.experiments[experiment]]
        else:
            frames = [self.experiment_tables[experiment][kind] for experiment in experiments]
        return pl.concat(frames, how="diagonal_relaxed") if frames else pl.DataFrame()

    def figure_tables(self, name: str) -> list[pl.DataFrame]:
        figure = self.config["figures"][name]
        return [self.table(kind, figure_experiments(figure)) for kind in plot(figure["plot"]).tables]
