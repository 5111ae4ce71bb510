import json
import os

from snakemake.utils import min_version, validate

from pathgeo.config import (
    ConfigError,
    PLOT_TABLES,
    build_plan,
    correlation_settings,
    figure_experiments,
    schema_error,
    training_correlations,
)
from pathgeo.data import EXTERNAL_KINDS


min_version("9.0")

# Jobs import pathgeo from this checkout, also inside a --use-conda environment or a cluster job.
os.environ.update(PYTHONPATH=os.pathsep.join(filter(None, [workflow.basedir, os.environ.get("PYTHONPATH")])))


try:
    validate(config, "../config/schema/config.schema.yaml")
except WorkflowError:
    # Snakemake's message prints the whole config; say which key is wrong instead.
    raise WorkflowError(str(schema_error(config))) from None

try:
    PLAN = build_plan(config)
except ConfigError as error:
    raise WorkflowError(str(error)) from None


DATASETS = {spec.data.name: spec.data for spec in PLAN.runs.values()}
EXTERNAL = [name for name, data in DATASETS.items() if data.kind in EXTERNAL_KINDS]
GENERATED = [name for name in DATASETS if name not in EXTERNAL]
DATA_ROOT = config.get("data_root", "data")


def one_of(names):
    """A wildcard pattern matching exactly these names (none: a pattern that matches nothing)."""
    return "|".join(names) if names else "(?!)"


wildcard_constraints:
    run=r"[A-Za-z0-9_.+-]+",
    dataset=r"[A-Za-z0-9_]+",
    experiment=r"[A-Za-z0-9_]+",
    name=r"[A-Za-z0-9_]+",
    start=r"\d{4}",
    end=r"\d{4}",


def run_data(wildcards):
    """The prepared tensors and manifest of a generated dataset; the manifest alone of an external one."""
    dataset = PLAN.runs[wildcards.run].data.name
    files = {"manifest": f"results/data/{dataset}/manifest.json"}
    if dataset in GENERATED:
        files["tensors"] = f"results/data/{dataset}/tensors.pt"
    return files


def run_spec_json(wildcards):
    return PLAN.runs[wildcards.run].canonical_json()


def dataset_spec_json(wildcards):
    return json.dumps(DATASETS[wildcards.dataset].canonical(), sort_keys=True)


def checkpoint_epochs(wildcards):
    return list(PLAN.checkpoint_epochs(wildcards.run))


def segment_references(wildcards):
    """The reference points still ahead at the end of this segment, as {name: epoch}."""
    end = int(wildcards.end)
    return {ref.name: ref.epoch for ref in PLAN.references(wildcards.run) if ref.epoch >= end}


def replay_files(run_ids):
    return [
        f"results/runs/{run}/replay/{start:04d}-{end:04d}.parquet"
        for run in run_ids
        for start, end in PLAN.segments(run)
    ]


def experiment_replays(wildcards):
    """The per-step tables of an experiment's runs: their replays' or, for a run that no experiment
    replays, the w*-free table its reference training wrote."""
    runs = PLAN.experiments[wildcards.experiment]
    trained_only = [f"results/runs/{run}/train_correlations.parquet" for run in runs if not PLAN.replayed(run)]
    return replay_files(runs) + trained_only


def experiment_matrices(wildcards):
    return [path.replace(".parquet", ".matrices.parquet") for path in experiment_replays(wildcards)]


def experiment_full_batch(wildcards):
    return [path.replace(".parquet", ".full_batch.parquet") for path in replay_files(PLAN.experiments[wildcards.experiment])]


def experiment_fixed_batches(wildcards):
    return [path.replace(".parquet", ".fixed_batches.parquet") for path in replay_files(PLAN.experiments[wildcards.experiment])]


def experiment_runs(wildcards):
    """Each run of the experiment with its factors and the references this experiment looks at."""
    exp = wildcards.experiment
    return {
        run: {
            "factors": PLAN.runs[run].factors(),
            "references": list(PLAN.experiment_references[(exp, run)]),
        }
        for run in PLAN.experiments[exp]
    }


def replayed_runs():
    """The runs measured against w* (the claims are about those)."""
    return {run: {"factors": spec.factors()} for run, spec in PLAN.runs.items() if PLAN.replayed(run)}


def figure_tables(wildcards):
    fig = config["figures"][wildcards.name]
    table = PLOT_TABLES[fig["plot"]]
    if table == "claims":
        return ["results/tables/claims.parquet"]
    return [f"results/tables/{exp}/{table}.parquet" for exp in figure_experiments(fig)]


def all_figures():
    return expand("results/figures/{name}.{ext}", name=list(config["figures"]), ext=["html", "svg"])


def library(*modules):
    """pathgeo modules as inputs, so that editing one re-runs the rules that use it and no others."""
    return [os.path.join(workflow.basedir, "pathgeo", module) for module in modules]


def gpus(wildcards):
    """Training and replay ask for one GPU unless the config pins them to the CPU."""
    return 0 if config["device"] == "cpu" else 1
