import json
import os
import re
from functools import cache
from pathlib import Path

from snakemake.utils import min_version

from pathgeo.tools import preemption
from pathgeo.planning import sizing
from pathgeo.training import topology
from pathgeo.planning.config import (
    correlation_settings,
    extended_run,
    max_job_minutes,
    training_correlations,
    zigzag_thresholds,
)
from pathgeo.planning.config_check import data_root, sized_for
from pathgeo.training.data import kind
from pathgeo.analysis.figures import figure_experiments, plot
from pathgeo.planning.labels import run_descriptions, run_labels
from pathgeo.training.models import Width, model
from pathgeo.training.optimizers import optimizer
from pathgeo.planning.outputs import log_folder, output_folder
from pathgeo.planning.provenance import code_version, measurement_version, preparation_version
from pathgeo.analysis.report import figure_caption as compose_caption, figure_category as category_of
from pathgeo.training.spec import RunSpec

min_version("9.0")

# Jobs outside conda import pathgeo from this checkout ahead of any installed copy (Snakemake drops PYTHONPATH for
# --sdm conda jobs, which find it through Snakemake's own import path for scripts).
os.environ.update(PYTHONPATH=os.pathsep.join(filter(None, [workflow.basedir, os.environ.get("PYTHONPATH")])))


# Training and replay jobs: what they ask the scheduler for, derived from the run (pathgeo/planning/sizing.py). A run
# on N devices is one job on one node; the job starts its N processes itself.
SIZED_FOR = sized_for(config)
# The site's time limit of one job (the cluster profile sets it): longer reference training is a chain of jobs,
# and a replayed run's segments are short enough for one job each.
MAX_JOB_MINUTES = max_job_minutes(config)
DATA_ROOT = data_root(config)
# The plan the Snakefile's check made (pathgeo.planning.config_check.workflow_plan).
PLAN = CHECKED.plan
# The config's own outputs (pathgeo.planning.outputs): its tables, claims, findings and figures, and its jobs' logs. The runs
# under results/runs/ are every config's.
OUTPUTS = output_folder(CONFIG_NAME)
LOGS = log_folder(CONFIG_NAME)


DATASETS = {spec.data.name: spec.data for spec in PLAN.runs.values()}
EXTERNAL = [name for name, data in DATASETS.items() if kind(data.kind).external]
GENERATED = [name for name in DATASETS if name not in EXTERNAL]


def one_of(names):
    """A wildcard pattern matching exactly these names (none: a pattern that matches nothing)."""
    return "|".join(names) if names else "(?!)"


# A run is one of the plan's: a finished run's folder that only another config planned is an input like any file.
wildcard_constraints:
    run=one_of([re.escape(run) for run in PLAN.runs]),
    dataset=r"[A-Za-z0-9_]+",
    experiment=r"[A-Za-z0-9_]+",
    name=r"[A-Za-z0-9_]+",
    start=r"\d{4}",
    end=r"\d{4}",
    until=r"\d{4}",


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


def run_code(wildcards):
    """The version of the code that trains the run (pathgeo.planning.provenance): a param, so that an edit re-runs the run
    and the cache key changes with it."""
    return code_version(PLAN.runs[wildcards.run])


def checkpoint_epochs(wildcards):
    return list(PLAN.checkpoint_epochs(wildcards.run))


def published_epochs(wildcards):
    """The checkpoints a reference job's output folder holds: all of the run's (its last job), or those up to where
    a job of a chain ends, for the next job to go on from."""
    return [epoch for epoch in PLAN.checkpoint_epochs(wildcards.run) if epoch <= chain_until(wildcards)]


@cache
def reference_chain(run):
    """The epoch at which each reference job of the run ends (pathgeo.planning.sizing.reference_chain): one job, or a chain
    of them whose time limits stay within the site's max_job_minutes."""
    return sizing.reference_chain(
        PLAN.runs[run], PLAN.checkpoint_epochs(run), MAX_JOB_MINUTES, SIZED_FOR, config["threads"], DATA_ROOT
    )


def chain_until(wildcards):
    """The epoch a reference job trains to: its `until`, or for the rule `reference` the run's end."""
    return int(wildcards.get("until", PLAN.runs[wildcards.run].epochs))


def chain_start(wildcards):
    ends = reference_chain(wildcards.run)
    index = ends.index(chain_until(wildcards))
    return ends[index - 1] if index else 0


def earlier_chain_job(wildcards):
    """The output folder of the job before this one in the run's chain of reference jobs (none for the first)."""
    start = chain_start(wildcards)
    return f"results/runs/{wildcards.run}/chain/{start:04d}" if start else []


@cache
def finished_runs():
    """Runs finished on disk by this code (results/runs/<run>/spec.json beside its checkpoints), which a longer run
    of the plan may go on from, as {run id: (spec, checkpoint epochs)}."""
    found = {}
    for path in Path("results/runs").glob("*/spec.json"):
        recorded = json.loads(path.read_text())
        spec = RunSpec.from_canonical(recorded["spec"])
        folder = path.parent / "checkpoints"
        if spec.run_id in PLAN.runs or recorded.get("code") != code_version(spec) or not folder.is_dir():
            continue
        found[spec.run_id] = (spec, tuple(sorted(int(f.stem[len("epoch") :]) for f in folder.glob("epoch*.pt"))))
    return found


@cache
def extension(run):
    """The shorter run, in the plan or finished on disk, whose checkpoints this run's reference training starts
    from (pathgeo.planning.config.extended_run), or None."""
    candidates = {other: (PLAN.runs[other], PLAN.checkpoint_epochs(other)) for other in PLAN.runs}
    return extended_run(PLAN.runs[run], PLAN.checkpoint_epochs(run), {**finished_runs(), **candidates})


def extended_checkpoints(wildcards):
    """For the first job of a run's reference training, the checkpoints folder of the shorter run it goes on from."""
    shorter = extension(wildcards.run)
    return f"results/runs/{shorter}/checkpoints" if shorter and chain_start(wildcards) == 0 else []


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


def step_tables(run_ids):
    """The per-step tables of these runs: their replays' or, for a run that no experiment replays, the w*-free
    table its reference training wrote."""
    trained_only = [f"results/runs/{run}/train_correlations.parquet" for run in run_ids if not PLAN.replayed(run)]
    return replay_files(run_ids) + trained_only


def experiment_replays(wildcards):
    return step_tables(PLAN.experiments[wildcards.experiment])


def all_runs():
    """Every run with its factors and its one-line description as its label."""
    descriptions = run_descriptions(PLAN.runs)
    return {run: {"factors": spec.factors(), "label": descriptions[run]} for run, spec in PLAN.runs.items()}


def experiment_matrices(wildcards):
    return [path.replace(".parquet", ".matrices.parquet") for path in experiment_replays(wildcards)]


def experiment_train_logs(wildcards):
    return [f"results/runs/{run}/train_log.parquet" for run in PLAN.experiments[wildcards.experiment]]


def run_descriptors(spec):
    """What the tables say about a run besides its factors, from the registries (pathgeo.analysis.aggregate.DESCRIPTORS)."""
    width = model(spec.model).width
    return {
        "width_unit": None if width is Width.NONE else width.value,
        "step_scale": optimizer(spec.optimizer).step_scale(spec.optimizer_options),
    }


def experiment_full_batch(wildcards):
    return [
        path.replace(".parquet", ".full_batch.parquet") for path in replay_files(PLAN.experiments[wildcards.experiment])
    ]


def experiment_fixed_batches(wildcards):
    return [
        path.replace(".parquet", ".fixed_batches.parquet")
        for path in replay_files(PLAN.experiments[wildcards.experiment])
    ]


def experiment_runs(wildcards):
    """Each run of the experiment with its factors, label, descriptors and the references this experiment looks
    at."""
    exp = wildcards.experiment
    labels = run_labels({run: PLAN.runs[run] for run in PLAN.experiments[exp]})
    return {
        run: {
            "factors": PLAN.runs[run].factors(),
            "label": labels[run],
            **run_descriptors(PLAN.runs[run]),
            "references": list(PLAN.experiment_references[(exp, run)]),
        }
        for run in PLAN.experiments[exp]
    }


def reference_measurement(wildcards):
    """The measurement code's version for a run whose reference training takes its w*-free measurements
    (pathgeo.measurements.w_star_free), so that editing the probe re-runs it; None for a run that is replayed."""
    return measurement_version() if training_correlations(PLAN, wildcards.run, config) is not None else None


def replayed_runs():
    """The runs measured against w* (the claims are about those), as `all_runs` gives them."""
    return {run: described for run, described in all_runs().items() if PLAN.replayed(run)}


def table_files(table, experiments):
    """The files of one kind of table (pathgeo.analysis.figures.TABLES) for these experiments."""
    if table in ("claims", "zigzag", "zigzag_phases"):  # every run's, in one table
        return [f"{OUTPUTS}/tables/{table}.parquet"]
    if table == "landscape":
        return [f"results/runs/{run}/landscape.parquet" for exp in experiments for run in PLAN.experiments[exp]]
    return [f"{OUTPUTS}/tables/{exp}/{table}.parquet" for exp in experiments]


def figure_tables(wildcards):
    """The tables a figure is drawn from, by kind: its plot's table and any others it also reads."""
    fig = config["figures"][wildcards.name]
    return {table: table_files(table, figure_experiments(fig)) for table in plot(fig["plot"]).tables}


def figure_category(wildcards):
    return category_of(config["figures"][wildcards.name])


def figure_caption(wildcards):
    """The figure's caption in the report (pathgeo.analysis.report), from its plot, its config entry and its experiments."""
    fig = config["figures"][wildcards.name]
    experiments = figure_experiments(fig)
    specs = [PLAN.runs[run] for exp in experiments for run in PLAN.experiments[exp]]
    units = {spec.model: run_descriptors(spec)["width_unit"] for spec in specs}
    return compose_caption(
        fig,
        {exp: config["experiments"][exp].get("description", "") for exp in experiments},
        {name: unit for name, unit in units.items() if unit is not None},
    )


def all_figures():
    return expand(f"{OUTPUTS}/figures/{{name}}.{{ext}}", name=list(config["figures"]), ext=["html", "svg"])


def library(*modules):
    """pathgeo modules (paths below pathgeo/) as inputs, so that editing one re-runs the rules that use it and no
    others."""
    return [os.path.join(workflow.basedir, "pathgeo", module) for module in modules]


def figure_library(wildcards):
    """The modules a figure is drawn with: its plot's own and the ones every plot shares."""
    return library(*plot(config["figures"][wildcards.name]["plot"]).modules)


def gpus(wildcards):
    """The run's devices as GPUs, unless the config pins the jobs to the CPU."""
    return 0 if config["device"] == "cpu" else PLAN.runs[wildcards.run].devices


def one_gpu(wildcards):
    """A job that retraces a run on one device (its landscape), whatever the run's devices."""
    return 0 if config["device"] == "cpu" else 1


def run_threads(wildcards):
    """The config's threads are per device; a job on N devices gets N times as many."""
    return config["threads"] * PLAN.runs[wildcards.run].devices


def cpus_per_gpu(wildcards):
    return sizing.cpus_per_device(PLAN.runs[wildcards.run], config["threads"])


def reference_mem_mb(wildcards, attempt):
    # Rank 0 holds one checkpoint in memory while it writes it, and the one it resumed from.
    return sizing.host_memory_mb(PLAN.runs[wildcards.run], SIZED_FOR, checkpoints_held=2, attempt=attempt)


def reference_runtime(wildcards, attempt):
    """The time limit of a reference job: for the epochs it trains (all, or its part of a chain)."""
    spec, epochs = PLAN.runs[wildcards.run], chain_until(wildcards) - chain_start(wildcards)
    return sizing.runtime_minutes(
        spec, epochs, SIZED_FOR, config["threads"], attempt, data_root=DATA_ROOT, limit=MAX_JOB_MINUTES
    )


def landscape_runtime(wildcards, attempt):
    """A landscape job retraces the whole run in one job."""
    spec = PLAN.runs[wildcards.run]
    return sizing.runtime_minutes(
        spec, spec.epochs, SIZED_FOR, config["threads"], attempt, data_root=DATA_ROOT, limit=MAX_JOB_MINUTES
    )


def replay_mem_mb(wildcards, attempt):
    # Every rank reads the segment's start and end; rank 0 the reference points too, and runs the probe.
    spec, references = PLAN.runs[wildcards.run], len(segment_references(wildcards))
    vectors = sizing.probe_copies(correlation_settings(config), references)
    return sizing.host_memory_mb(spec, SIZED_FOR, 2 * spec.devices + references, vectors, attempt)


def replay_runtime(wildcards, attempt):
    epochs = int(wildcards.end) - int(wildcards.start)
    return sizing.runtime_minutes(
        PLAN.runs[wildcards.run],
        epochs,
        SIZED_FOR,
        config["threads"],
        attempt,
        probe=True,
        data_root=DATA_ROOT,
        limit=MAX_JOB_MINUTES,
    )


# On a SLURM cluster (cluster/README.md): what a multi-GPU job adds to its sbatch line, and the watch that requeues
# the workflow's preempted jobs.
def keep_topology(wildcards):
    """`--exclusive` for a job of 3 or more GPUs, so that a reference and its replays get GPUs in the same places
    (pathgeo.training.topology); nothing for the others."""
    return topology.slurm_request(gpus(wildcards))


def watch_preemption():
    """Under the SLURM executor, requeue the workflow's preempted jobs from this process (pathgeo.tools.preemption), as
    often as the plugin first checks a job's status: the profile's squeue status check already needs SLURM to
    keep a finished job listed for 3 times that (MinJobAge)."""
    if workflow.executor_plugin is None or workflow.executor_plugin.name != "slurm":
        return
    # The plugin names every job after its run id, and has no public way to read it.
    run_name = workflow.scheduler._executor.run_uuid
    preemption.start(run_name, workflow.executor_settings.init_seconds_before_status_checks, logger)


CHAINED = [run for run in PLAN.runs if len(reference_chain(run)) > 1]
if CHAINED:
    logger.info(
        f"{len(CHAINED)} of {len(PLAN.runs)} runs train in chains of jobs of at most max_job_minutes="
        f"{MAX_JOB_MINUTES} minutes each (README, 'Longer than a job may run')"
    )
