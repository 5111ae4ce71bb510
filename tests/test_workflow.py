"""End-to-end tests of the Snakemake workflow on tests/configs/tiny.yaml.

The whole DAG runs once per test module (fixture `finished`) in a temporary directory; the other tests read
its results, dry-run against it, or dry-run in fresh directories. Snakemake always runs with
`--directory <tmp>` so that nothing is written into the repository.

The full run uses a copy of the repository's workflow files (Snakefile, rules, scripts, config,
environment.yml, the pathgeo sources that rules declare as inputs) so that a test can edit a library module
and see which jobs Snakemake would rerun, without touching the repository. (Touching a file is not enough:
Snakemake 9 reruns a job for a newer input only when its content differs from the checksum recorded at the
last run.)
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
import zipfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pytest
import yaml
from workflow_runner import (
    DEFAULT_CONFIG,
    REPO,
    TINY,
    Job,
    check,
    copy_workflow,
    job_counts,
    output_of,
    planned_jobs,
    run_snakemake,
    upstream,
)

from pathgeo.analysis.figures import figure_experiments, plot, plots
from pathgeo.analysis.figures.words import experiment_title
from pathgeo.analysis.report import figure_title
from pathgeo.planning.config import Plan, build_plan


def load_tiny() -> dict:
    return yaml.safe_load(TINY.read_text())


def write_config(config: dict, path: Path) -> Path:
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


# The tables the aggregate rule writes (the others: a run's landscape, the claims of every run).
AGGREGATED = {"epochs", "steps", "matrices", "train", "full_batch", "fixed_batches"}
# Tables of every run at once, one per config (pathgeo.analysis.claims, pathgeo.analysis.zigzag): their figures plan every run.
EVERY_RUN = {"claims", "zigzag", "zigzag_phases"}


def aggregated_experiments(config: dict) -> set[str]:
    """Every experiment of the config: the default target builds the tables of each, drawn or not."""
    return set(config["experiments"])


def landscape_runs(config: dict, plan: Plan) -> set[str]:
    """Runs whose landscape some figure draws."""
    return {
        run
        for fig in config["figures"].values()
        if "landscape" in plot(fig["plot"]).tables
        for exp in figure_experiments(fig)
        for run in plan.experiments[exp]
    }


def expected_counts(config: dict, plan: Plan) -> Counter:
    return Counter(
        prep=len({spec.data.name for spec in plan.runs.values()}),
        reference=len(plan.runs),
        replay=sum(len(plan.segments(run)) for run in plan.runs),
        aggregate=len(aggregated_experiments(config)),
        landscape=len(landscape_runs(config, plan)),
        claims=1,
        zigzag=1,
        vega_bundle=1 if config["figures"] else 0,
        figure=len(config["figures"]),
        all=1,
    )


@dataclass
class Finished:
    """The tiny workflow, run to the end once from a copy of the workflow."""

    workdir: Path
    snakefile: Path
    config: dict
    plan: Plan
    result: subprocess.CompletedProcess

    def snakemake(self, *args: str) -> subprocess.CompletedProcess:
        return run_snakemake(self.workdir, *args, snakefile=self.snakefile, configfile=TINY)


@pytest.fixture(scope="module")
def tiny_config() -> dict:
    return load_tiny()


@pytest.fixture(scope="module")
def tiny_plan(tiny_config) -> Plan:
    return build_plan(tiny_config)


@pytest.fixture(scope="module")
def finished(tmp_path_factory, tiny_config, tiny_plan) -> Finished:
    workdir = tmp_path_factory.mktemp("tiny-run")
    snakefile = copy_workflow(tmp_path_factory.mktemp("workflow-copy") / "workflow")
    result = check(run_snakemake(workdir, "--cores", "2", snakefile=snakefile, configfile=TINY))
    return Finished(workdir, snakefile, tiny_config, tiny_plan, result)


def test_tiny_config_covers_every_plot_kind(tiny_config):
    assert {fig["plot"] for fig in tiny_config["figures"].values()} == set(plots())


def test_tiny_config_shares_runs_between_experiments(tiny_plan):
    planned = sum(len(runs) for runs in tiny_plan.experiments.values())
    assert len(tiny_plan.runs) < planned


# ---------------------------------------------------------------------------------------------------------
# The full run
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_every_figure_as_offline_html_and_svg(finished):
    figures = finished.workdir / "results" / "tiny" / "figures"
    for name in finished.config["figures"]:
        html = (figures / f"{name}.html").read_text(encoding="utf-8")
        assert "<html" in html.lower()
        remote = re.findall(r"<script[^>]*\bsrc\s*=\s*[\"']?(?:https?:)?//[^\s\"'>]*", html, re.IGNORECASE)
        assert not remote, f"{name}.html loads scripts from the network: {remote}"
        svg = (figures / f"{name}.svg").read_text(encoding="utf-8")
        assert svg.lstrip().startswith("<svg"), f"{name}.svg does not start with <svg: {svg[:80]!r}"
        assert svg.rstrip().endswith("</svg>")
    produced = {p.stem for p in figures.iterdir() if p.suffix in (".html", ".svg")}
    assert produced == set(finished.config["figures"])


@pytest.mark.slow
def test_claims_table_has_one_row_per_planned_run(finished):
    tables = finished.workdir / "results" / "tiny" / "tables"
    parquet = pl.read_parquet(tables / "claims.parquet")
    csv = pl.read_csv(tables / "claims.csv")
    # The claims are about the runs measured against w*: all but those only w*-free experiments use.
    assert finished.plan.replayed_runs < set(finished.plan.runs)
    for table in (parquet, csv):
        assert table.height == len(finished.plan.replayed_runs)
        assert sorted(table["run_id"].to_list()) == sorted(finished.plan.replayed_runs)
    assert parquet.columns == csv.columns


@pytest.mark.slow
def test_every_replay_is_bit_identical_to_its_reference(finished):
    runs = finished.workdir / "results" / "runs"
    expected = {
        runs / run / "replay" / f"{start:04d}-{end:04d}.fidelity.json"
        for run in finished.plan.runs
        for start, end in finished.plan.segments(run)
    }
    assert set(runs.glob("*/replay/*.fidelity.json")) == expected
    for path in expected:
        fidelity = json.loads(path.read_text())
        assert fidelity["relative_drift"] == 0.0, f"{path}: {fidelity}"
        assert path.with_name(path.name.replace(".fidelity.json", ".parquet")).exists()


@pytest.mark.slow
def test_every_job_wrote_its_log(finished):
    plan, config = finished.plan, finished.config
    logs = finished.workdir / "logs"
    # The config's own jobs log under logs/<config name>/ (pathgeo.planning.outputs), the runs' jobs under logs/.
    own = logs / "tiny"
    expected = {own / "claims.log", own / "zigzag.log", logs / "vega_bundle.log"}
    expected |= {logs / "prep" / f"{spec.data.name}.log" for spec in plan.runs.values()}
    expected |= {logs / "reference" / f"{run}.log" for run in plan.runs}
    expected |= {
        logs / "replay" / run / f"{start:04d}-{end:04d}.log" for run in plan.runs for start, end in plan.segments(run)
    }
    expected |= {own / "aggregate" / f"{exp}.log" for exp in aggregated_experiments(config)}
    expected |= {logs / "landscape" / f"{run}.log" for run in landscape_runs(config, plan)}
    expected |= {own / "figures" / f"{name}.log" for name in config["figures"]}
    missing = sorted(str(p.relative_to(logs)) for p in expected if not p.exists())
    assert not missing, f"jobs without a log: {missing}"
    empty = sorted(str(p.relative_to(logs)) for p in expected if p.stat().st_size == 0)
    assert not empty, f"empty logs: {empty}"
    stray = sorted(str(p.relative_to(logs)) for p in logs.rglob("*.log") if p not in expected)
    assert not stray, f"logs of jobs that were not planned: {stray}"


@pytest.mark.slow
def test_every_training_and_replay_job_wrote_its_benchmark(finished):
    """Replays through Snakemake's benchmark:, references (cached rules, which cannot have one) by themselves, in
    the same columns."""
    plan, benchmarks = finished.plan, finished.workdir / "benchmarks"
    for run in plan.runs:
        table = pl.read_csv(benchmarks / "reference" / f"{run}.tsv", separator="\t")
        assert table.columns == ["s", "h:m:s", "max_rss", "cpu_time"] and table.height == 1, run
        assert table["s"][0] > 0 and table["max_rss"][0] > 100 and table["cpu_time"][0] > 0, run
        for start, end in plan.segments(run):
            replay = pl.read_csv(benchmarks / "replay" / run / f"{start:04d}-{end:04d}.tsv", separator="\t")
            assert {"s", "h:m:s", "max_rss", "cpu_time"} <= set(replay.columns), run


@pytest.mark.slow
def test_aggregates_have_every_run_of_their_experiment(finished):
    for exp in aggregated_experiments(finished.config):
        epochs = pl.read_parquet(finished.workdir / "results" / "tiny" / "tables" / exp / "epochs.parquet")
        assert set(epochs["run_id"].unique()) == set(finished.plan.experiments[exp]), exp


@pytest.fixture(scope="module")
def report(finished) -> dict:
    """`snakemake --report report.zip` of the finished run: the files it holds and the report's page."""
    check(finished.snakemake("--report", "report.zip"))
    with zipfile.ZipFile(finished.workdir / "report.zip") as archive:
        names = archive.namelist()
        page = archive.read("report/report.html").decode("utf-8")
    return {"names": names, "page": page}


def report_results(page: str) -> dict:
    """The results the report lists (the page's `var results = {...}`), by path."""
    start = page.index("var results = {") + len("var results = ")
    results, _ = json.JSONDecoder().raw_decode(page, start)
    return results


@pytest.mark.slow
def test_the_report_holds_every_figure_of_the_config_and_the_claims_table(finished, report):
    held = {Path(name).name for name in report["names"] if name.startswith("report/data/raw/")}
    for name in finished.config["figures"]:
        assert {f"{name}.svg", f"{name}.html"} <= held, name
    assert "claims.csv" in held


@pytest.mark.slow
def test_every_figure_in_the_report_has_its_caption_and_experiment(finished, report):
    results = report_results(report["page"])
    for name, fig in finished.config["figures"].items():
        for suffix in ("svg", "html"):
            entry = results[f"results/tiny/figures/{name}.{suffix}"]
            assert entry["labels"]["figure"] == figure_title(name)
            caption = entry["caption"]
            assert caption.startswith("<p>") and "Reproduces: " + fig["reproduces"].split(",")[0] in caption, name
            for experiment in figure_experiments(fig):
                assert f"Experiment '{experiment_title(experiment)}'" in caption, name
            # Once: not again under "Job parameters" (issue 19).
            assert "Reproduces" not in json.dumps(entry["job_properties"]), name
    assert "Section 4.1" in results["results/tiny/tables/claims.csv"]["caption"]


@pytest.mark.slow
def test_a_second_run_has_nothing_to_do(finished):
    result = check(finished.snakemake("-n"))
    assert planned_jobs(output_of(result)) == [], output_of(result)[-3000:]
    assert "Nothing to be done" in output_of(result)


@pytest.mark.slow
def test_deleting_an_experiments_tables_builds_them_again(finished):
    """The README lists the tables as outputs: a table folder deleted by hand is built again, with the figures
    that read it (it was "Nothing to be done")."""
    tables = finished.workdir / "results" / "tiny" / "tables" / "walk"
    moved = tables.with_name("walk.kept")
    tables.rename(moved)
    try:
        jobs = planned_jobs(output_of(check(finished.snakemake("-n"))))
    finally:
        moved.rename(tables)
    drawn = {name for name, fig in finished.config["figures"].items() if "walk" in figure_experiments(fig)}
    assert [job.wildcards for job in jobs if job.rule == "aggregate"] == [{"experiment": "walk"}]
    assert {job.wildcards["name"] for job in jobs if job.rule == "figure"} == drawn


COMMENT = b"\n# an edit\n"
CODE = b"\nEDITED = True\n"


def _dry_run_after_editing(finished: Finished, module: str, edit: bytes = COMMENT) -> list[Job]:
    """Which jobs an edit of a pathgeo module (in the workflow copy) would rerun; the edit is undone after."""
    path = finished.snakefile.parent / "pathgeo" / module
    original = path.read_bytes()
    try:
        path.write_bytes(original + edit)
        result = check(finished.snakemake("-n"))
    finally:
        path.write_bytes(original)
    return planned_jobs(output_of(result))


def _figures_drawing(config: dict, tables: set[str]) -> set[str]:
    return {name for name, fig in config["figures"].items() if tables & set(plot(fig["plot"]).tables)}


@pytest.mark.slow
def test_editing_figures_reruns_only_figures(finished):
    jobs = _dry_run_after_editing(finished, "analysis/figures/style.py")
    assert job_counts(jobs) == Counter(figure=len(finished.config["figures"]), all=1)


@pytest.mark.slow
def test_editing_one_plot_reruns_only_its_figures(finished):
    config = finished.config
    jobs = _dry_run_after_editing(finished, "analysis/figures/gamma_band.py")
    drawn = {name for name, fig in config["figures"].items() if fig["plot"] == "gamma_band"}
    assert drawn and len(drawn) < len(config["figures"])
    assert job_counts(jobs) == Counter(figure=len(drawn), all=1)
    assert {job.wildcards["name"] for job in jobs if job.rule == "figure"} == drawn


@pytest.mark.slow
def test_editing_aggregation_reruns_only_aggregates_and_figures(finished):
    config = finished.config
    jobs = _dry_run_after_editing(finished, "analysis/aggregate.py")
    counts = job_counts(jobs)
    assert set(counts) <= {"aggregate", "claims", "zigzag", "figure", "all"}, counts
    assert {job.wildcards["experiment"] for job in jobs if job.rule == "aggregate"} == aggregated_experiments(config)
    expected_figures = _figures_drawing(config, AGGREGATED | ({"claims"} if counts["claims"] else set()))
    assert {job.wildcards["name"] for job in jobs if job.rule == "figure"} == expected_figures


@pytest.mark.slow
def test_editing_aggregation_reruns_claims_which_imports_it(finished):
    """pathgeo/analysis/claims.py imports pathgeo.analysis.aggregate, so the claims table depends on aggregate.py too."""
    claims_source = (REPO / "pathgeo" / "analysis" / "claims.py").read_text()
    if "pathgeo.analysis.aggregate" not in claims_source:
        pytest.skip("pathgeo.analysis.claims no longer imports pathgeo.analysis.aggregate")
    counts = job_counts(_dry_run_after_editing(finished, "analysis/aggregate.py"))
    assert counts["claims"] == 1, counts


def _downstream_of_every_replay(config: dict) -> Counter:
    """What follows the replays: the aggregates, the claims, the zigzag findings and every figure but those that draw
    only landscapes (which follow the checkpoints)."""
    figures = [fig for fig in config["figures"].values() if set(plot(fig["plot"]).tables) != {"landscape"}]
    return Counter(aggregate=len(aggregated_experiments(config)), claims=1, zigzag=1, figure=len(figures), all=1)


@pytest.mark.slow
def test_editing_the_training_code_reruns_every_reference_and_replay(finished):
    """The training loop shapes every trajectory (issue 10, item 4): its code version is a param of the
    reference and replay rules, and the landscapes retrace the paths. Prepared data does not depend on it."""
    plan, config = finished.plan, finished.config
    jobs = _dry_run_after_editing(finished, "training/loop.py", CODE)
    expected = Counter(
        reference=len(plan.runs),
        replay=sum(len(plan.segments(run)) for run in plan.runs),
        landscape=len(landscape_runs(config, plan)),
    ) + _downstream_of_every_replay(config)
    expected["figure"] = len(config["figures"])
    assert job_counts(jobs) == expected
    assert {job.wildcards["run"] for job in jobs if job.rule == "reference"} == set(plan.runs)


@pytest.mark.slow
def test_editing_a_model_reruns_the_runs_and_editing_a_data_kind_reruns_its_prep(finished):
    counts = job_counts(_dry_run_after_editing(finished, "training/models/mnist1d.py", CODE))
    assert counts["reference"] == len(finished.plan.runs) and counts["prep"] == 0
    counts = job_counts(_dry_run_after_editing(finished, "training/data/alm.py", CODE))
    assert counts["prep"] == len({spec.data.name for spec in finished.plan.runs.values()})


@pytest.mark.slow
def test_editing_the_probe_reruns_the_replays_only(finished):
    """The replays, and the references of the runs whose training takes their w*-free measurements (no
    experiment replays them): those carry the measurement code's version."""
    plan = finished.plan
    jobs = _dry_run_after_editing(finished, "engine/probe.py", CODE)
    trained_only = {run for run in plan.runs if not plan.replayed(run)}
    assert trained_only
    assert job_counts(jobs) == Counter(
        replay=sum(len(plan.segments(run)) for run in plan.runs), reference=len(trained_only)
    ) + _downstream_of_every_replay(finished.config)
    assert {job.wildcards["run"] for job in jobs if job.rule == "reference"} == trained_only


@pytest.mark.slow
def test_a_comment_in_the_training_code_reruns_nothing(finished):
    assert _dry_run_after_editing(finished, "training/loop.py", COMMENT) == []


@pytest.mark.slow
def test_undoing_an_edit_leaves_nothing_to_do(finished):
    _dry_run_after_editing(finished, "analysis/figures/style.py")
    assert planned_jobs(output_of(check(finished.snakemake("-n")))) == []


# ---------------------------------------------------------------------------------------------------------
# Dry runs and the plan
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DryRun:
    """A dry run in a fresh directory, parsed: Snakemake's output, its jobs, and what it left in the directory."""

    jobs: list[Job]
    output: str
    left: list[Path]


def dry_run_in_fresh_directory(workdir: Path, *args: str) -> DryRun:
    result = check(run_snakemake(workdir, "-n", *args, configfile=TINY))
    return DryRun(planned_jobs(output_of(result)), output_of(result), sorted(workdir.iterdir()))


@pytest.fixture(scope="module")
def tiny_dry_run(tmp_path_factory) -> DryRun:
    """`snakemake -n` of the tiny config, once for the tests that read its plan."""
    return dry_run_in_fresh_directory(tmp_path_factory.mktemp("tiny-dry-run"))


@pytest.fixture(scope="module")
def figure_dry_run(tmp_path_factory, tiny_config) -> DryRun:
    """`snakemake -n figure_A figure_B ...`: every figure's target in one dry run. What one figure alone plans is its
    target's job and the jobs upstream of it (workflow_runner.upstream says why that is the same plan)."""
    targets = [f"figure_{name}" for name in tiny_config["figures"]]
    return dry_run_in_fresh_directory(tmp_path_factory.mktemp("figure-dry-run"), *targets)


def plan_of_figure(dry_run: DryRun, name: str) -> list[Job]:
    (target,) = [job for job in dry_run.jobs if job.rule == f"figure_{name}"]
    return upstream(dry_run.jobs, target)


def test_dry_run_shows_the_full_plan_and_runs_nothing(tiny_dry_run, tiny_config, tiny_plan):
    jobs = tiny_dry_run.jobs
    assert job_counts(jobs) == expected_counts(tiny_config, tiny_plan)
    assert {job.wildcards["run"] for job in jobs if job.rule == "reference"} == set(tiny_plan.runs)
    # Snakemake's own records only: no results, no logs.
    assert [path.name for path in tiny_dry_run.left] == [".snakemake"]


@pytest.mark.parametrize("flag", ["--rulegraph", "--dag"])
def test_graphs_print_dot(tmp_path, flag):
    result = check(run_snakemake(tmp_path, flag, configfile=TINY))
    dot = result.stdout.strip()
    assert dot.startswith("digraph"), dot[:200]
    assert dot.endswith("}")
    for rule in ("prep", "reference", "replay", "aggregate", "landscape", "claims", "figure", "all"):
        assert rule in dot
    assert not (tmp_path / "results").exists()


def _figure_cases():
    config = load_tiny()
    return [name for name, fig in config["figures"].items() if plot(fig["plot"]).table not in EVERY_RUN]


@pytest.mark.parametrize("name", _figure_cases())
def test_one_figure_plans_only_what_it_needs(figure_dry_run, tiny_config, tiny_plan, name):
    fig = tiny_config["figures"][name]
    tables = set(plot(fig["plot"]).tables)
    experiments = set(figure_experiments(fig))
    runs = {run for exp in experiments for run in tiny_plan.experiments[exp]}
    jobs = plan_of_figure(figure_dry_run, name)
    by_rule = {rule: [j for j in jobs if j.rule == rule] for rule in job_counts(jobs)}

    allowed = {"prep", "reference", "replay", "aggregate", "landscape", "vega_bundle", "figure", f"figure_{name}"}
    assert set(by_rule) <= allowed, set(by_rule)
    assert {j.wildcards["run"] for j in by_rule.get("landscape", [])} == (runs if "landscape" in tables else set())
    references = [j.wildcards["run"] for j in by_rule.get("reference", [])]
    assert len(references) == len(runs)
    assert set(references) == runs
    replayed = runs & tiny_plan.replayed_runs if AGGREGATED & tables else set()
    assert {j.wildcards["run"] for j in by_rule.get("replay", [])} == replayed
    assert len(by_rule.get("replay", [])) == sum(len(tiny_plan.segments(run)) for run in replayed)
    aggregated = experiments if AGGREGATED & tables else set()
    assert {j.wildcards["experiment"] for j in by_rule.get("aggregate", [])} == aggregated
    assert [j.wildcards["name"] for j in by_rule["figure"]] == [name]
    assert {j.wildcards["dataset"] for j in by_rule.get("prep", [])} == {tiny_plan.runs[run].data.name for run in runs}
    assert [path.name for path in figure_dry_run.left] == [".snakemake"]


@pytest.mark.parametrize("name", ["zigzag_onset", "zigzag_phases"])
def test_a_zigzag_figure_plans_the_findings_of_every_run_and_its_experiments_train_logs(
    figure_dry_run, tiny_config, tiny_plan, name
):
    jobs = plan_of_figure(figure_dry_run, name)
    counts = job_counts(jobs)
    assert counts["zigzag"] == 1 and counts["figure"] == 1
    # The findings table is every run's (pathgeo.analysis.zigzag): each run trains, and the replayed ones replay.
    assert counts["reference"] == len(tiny_plan.runs)
    experiments = set(figure_experiments(tiny_config["figures"][name]))
    assert {j.wildcards["experiment"] for j in jobs if j.rule == "aggregate"} == experiments


def test_claims_figure_plans_every_replayed_run_and_no_aggregate(figure_dry_run, tiny_plan):
    counts = job_counts(plan_of_figure(figure_dry_run, "claims"))
    assert counts["reference"] == len(tiny_plan.replayed_runs)
    assert counts["claims"] == 1
    assert counts["figure"] == 1
    assert counts["aggregate"] == 0


def test_training_and_replay_ask_for_a_gpu_unless_pinned_to_cpu(tiny_dry_run, tmp_path):
    auto = tiny_dry_run.jobs
    cpu = planned_jobs(output_of(check(run_snakemake(tmp_path, "-n", "--config", "device=cpu", configfile=TINY))))
    assert job_counts(auto) == job_counts(cpu)
    for job in auto:
        expected = "1" if job.rule in ("reference", "replay", "landscape") else None
        assert job.resources.get("gpu") == expected, job
    for job in cpu:
        assert job.resources.get("gpu", "0") == "0", job


@pytest.mark.parametrize("configfile", [DEFAULT_CONFIG, TINY], ids=["default", "tiny"])
def test_lint_is_clean(tmp_path, configfile):
    result = run_snakemake(tmp_path, "--lint", configfile=configfile)
    text = output_of(result)
    lints = re.findall(r"^Lints for (.+?):\n\s+\* (.+?)\.?:?$", text, re.MULTILINE)
    assert not lints, "snakemake --lint: " + "; ".join(f"{where}: {what}" for where, what in lints)
    assert "Lints for" not in text, text
    assert result.returncode == 0, text


# ---------------------------------------------------------------------------------------------------------
# Failures and partial rebuilds
# ---------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def diverged(tmp_path_factory):
    """A run that blows up (SGD at LR 1e4 on MNIST-1D), run through the workflow.

    Width 64: at the tiny config's width 8 the first epoch's loss reaches ~4e33, still finite, and the
    ReLUs die, so the run never turns NaN."""
    workdir = tmp_path_factory.mktemp("diverge")
    config = copy.deepcopy(load_tiny())
    config["experiments"] = {"diverge": {"set": {"optimizer": "sgd", "lr": 1.0e4, "width": 64}}}
    config["figures"] = {}
    path = write_config(config, workdir.parent / f"{workdir.name}.yaml")
    (run_id,) = build_plan(config).runs
    result = run_snakemake(workdir, "--cores", "2", configfile=path)
    return workdir, run_id, result


@pytest.mark.slow
def test_divergence_fails_the_workflow_naming_run_and_epoch(diverged):
    workdir, run_id, result = diverged
    assert result.returncode != 0
    text = output_of(result)
    assert re.search(rf"run {re.escape(run_id)} diverged in epoch \d+", text), text[-4000:]
    run_dir = workdir / "results" / "runs" / run_id
    for leftover in ("train_log.parquet", "spec.json", "checkpoints", "replay"):
        assert not (run_dir / leftover).exists(), f"{leftover} left behind by a diverged run"
    assert not (workdir / "results" / workdir.name / "tables" / "claims.parquet").exists()


@pytest.mark.slow
def test_divergence_is_recorded_in_the_job_log(diverged):
    workdir, run_id, _ = diverged
    log = (workdir / "logs" / "reference" / f"{run_id}.log").read_text()
    assert re.search(rf"run {re.escape(run_id)} diverged in epoch \d+", log), log


@pytest.mark.slow
def test_one_replay_segment_rebuilds_alone_and_identically(finished):
    """Runs last in this module: it rewrites part of the finished workdir (and leaves it complete)."""
    plan = finished.plan
    run = plan.experiments["walk"][0]
    start, end = plan.segments(run)[-1]
    replay = Path("results") / "runs" / run / "replay"
    steps = replay / f"{start:04d}-{end:04d}.parquet"
    fidelity = replay / f"{start:04d}-{end:04d}.fidelity.json"
    before = pl.read_parquet(finished.workdir / steps)
    (finished.workdir / steps).unlink()
    (finished.workdir / fidelity).unlink()

    # The segment is asked for by name: a missing intermediate file alone does not make Snakemake rerun
    # the figures that were built from it.
    for result in (finished.snakemake("-n", str(steps)), finished.snakemake("--cores", "2", str(steps))):
        jobs = planned_jobs(output_of(check(result)))
        assert [(j.rule, j.wildcards) for j in jobs] == [
            ("replay", {"run": run, "start": f"{start:04d}", "end": f"{end:04d}"})
        ], output_of(result)[-3000:]

    after = pl.read_parquet(finished.workdir / steps)
    assert after.equals(before)
    assert json.loads((finished.workdir / fidelity).read_text())["relative_drift"] == 0.0
    # Identical content: nothing downstream needs to run again.
    jobs = planned_jobs(output_of(check(finished.snakemake("-n"))))
    assert jobs == [], job_counts(jobs)


@pytest.mark.slow
def test_a_w_star_free_experiment_trains_once_and_reads_the_training_tables(finished):
    """The tiny full_batch experiment (measure: w_star_free): its run has no replay job and no replay
    file; its tables hold the gradient correlations its reference training measured, nothing against w*."""
    plan = finished.plan
    run = plan.experiments["full_batch"][0]
    assert not plan.replayed(run) and plan.segments(run) == ()
    runs = finished.workdir / "results" / "runs" / run
    assert not (runs / "replay").exists()
    assert not (finished.workdir / "logs" / "replay" / run).exists()
    training = pl.read_parquet(runs / "train_correlations.parquet")
    assert training["step"].to_list() == list(range(12))
    # Two segments (checkpoints every 6 epochs of one step): each starts without G_{t−1}.
    assert training["grad_corr"].is_null().to_list() == [True, False, False, False, False, False] * 2
    steps = pl.read_parquet(finished.workdir / "results" / "tiny" / "tables" / "full_batch" / "steps.parquet")
    assert steps["grad_corr"].to_list() == training["grad_corr"].to_list()
    assert steps["gamma"].null_count() == steps.height
    matrices = pl.read_parquet(finished.workdir / "results" / "tiny" / "tables" / "full_batch" / "matrices.parquet")
    assert matrices.height > 0 and set(matrices["run_id"]) == {run}


@pytest.mark.slow
def test_the_zigzag_findings_agree_with_the_steps_tables(finished):
    """Issue 22's acceptance: each run's zigzag onset, smallest μ and share of zigzag steps after the onset,
    recomputed here from the aggregated steps tables, as the findings table gives them."""
    results = finished.workdir / "results" / "tiny" / "tables"
    findings = pl.read_parquet(results / "zigzag.parquet")
    assert set(findings["run_id"]) == set(finished.plan.runs)
    pairs = finished.config["correlations"]["window"] - 1
    steps = (
        pl.concat(
            [
                pl.read_parquet(path)
                .filter(pl.col("reference") == "final")
                .select("run_id", "step", "grad_corr", "mean_grad_corr")
                for path in results.glob("*/steps.parquet")
            ]
        )
        .unique(["run_id", "step"])
        .sort("run_id", "step")
    )
    checked = 0
    for row in findings.iter_rows(named=True):
        run = steps.filter(pl.col("run_id") == row["run_id"])
        corr, probe = run["grad_corr"].to_list(), run["mean_grad_corr"].to_list()
        mu = []
        for i in range(len(corr)):
            window = [c for c in corr[max(0, i - pairs + 1) : i + 1] if c is not None]
            mu.append(probe[i] if probe[i] is not None else (sum(window) / len(window) if window else None))
        onset = next((i for i, m in enumerate(mu) if m is not None and m < 0), None)
        assert row["zigzag_onset_step"] == (run["step"][onset] if onset is not None else None), row["run_id"]
        assert row["min_mean_corr"] == pytest.approx(min(m for m in mu if m is not None))
        if onset is not None:
            signs, current = [], None
            for m in mu[onset:]:
                current = "zigzag" if m is not None and m < 0 else "smooth" if m is not None and m > 0 else current
                signs.append(current)
            assert row["frac_zigzag_after_onset"] == pytest.approx(signs.count("zigzag") / len(signs))
        checked += 1
    assert checked == len(finished.plan.runs)
    full_batch = findings.filter(pl.col("full_batch"))
    assert not full_batch.is_empty() and full_batch["verdict"].is_not_null().all()
    assert findings.filter(~pl.col("full_batch"))["frac_loss_decrease_zigzag"].is_null().all()
