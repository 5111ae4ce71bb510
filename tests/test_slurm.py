"""The `cluster` profile: Snakemake's SLURM executor plugin, GPU rules on A100s, status through squeue.

Without SLURM (quick): the profile's keys are settings the installed plugin knows, `snakemake -n --profile
cluster` typed in the repository root plans GPU rules as `gpu=N, gpu_model=a100, nodes=1` with the CPUs per
GPU, memory and time the rules derive from the run (pathgeo.planning.sizing), the overrides stay in step with the
profile, the plugin's own functions build `--gpus=a100:N` from the profile and `--gpus=N -C FEATURE` from
cluster/gpu_constraint (and refuse NVML's hyphenated GPU type names as gpu_model only), jobs of 4 GPUs take their
node whole (`--exclusive`) and jobs of 2 do not, and the largest preset plans in seconds.

Marked `slurm`: a real one-node SLURM cluster (cluster_tools/local_slurm.sh, in a temporary directory, on
free ports) runs a small workflow through the profile: one run on one device and one on two. The override a
site would write changes only the partition names (the test cluster's are `local` and `local_gpu`, not the
profile's placeholders) and, for the test's speed, the plugin's first status check. Then: reference and
replay went to SLURM with `--gpus=a100:1`, or `--gpus=a100:2` on one node for the 2-device run (whose job ran
2 gloo processes on the CPU: the fake GPUs have no driver), on the GPU partition; aggregation/claims/figures
did not go through SLURM, the results equal a local run's bit for bit, and a GPU model the cluster lacks
fails at once with SLURM's refusal. Then the reference job is preempted while it runs (the test cluster cancels
the jobs of its lower partitions for an `--exclusive` job of its urgent one): the workflow requeues it and ends as
the local run did, or, with jobs submitted `--no-requeue`, stops with the job and the fix named.
Skipped, with the reason, where the cluster cannot start (not root, packages missing, no mount namespace);
.ci/run installs the packages.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import fields
from pathlib import Path
from types import SimpleNamespace

import polars as pl
import pytest
import torch
import yaml
from workflow_runner import REPO, TINY, job_stats, output_of, planned_jobs, run_snakemake, snakemake_command

PROFILE = REPO / "cluster"
MULTI_GPU_PROFILE = PROFILE / "a100x8"
CONSTRAINT_PROFILE = PROFILE / "gpu_constraint"
LOCAL_SLURM = REPO / "cluster_tools" / "local_slurm.sh"
DDP = REPO / "tests" / "configs" / "ddp.yaml"
LARGEST_PRESET = REPO / "config" / "presets" / "cifar10.yaml"

# reference_part: a job of a chain of reference training, where a run trains longer than max_job_minutes.
GPU_RULES = {"reference", "reference_part", "replay", "landscape"}
CLUSTER_RULES = {"prep", "fingerprint"} | GPU_RULES
LOCAL_RULES = {"aggregate", "claims", "figure", "all"}

# The test cluster's partitions: deliberately not the profile's placeholders (cpu, gpu).
LOCAL_CPU_PARTITION = "local"
LOCAL_GPU_PARTITION = "local_gpu"
# A partition of a higher tier, whose jobs cancel (preempt) the others' to make room.
LOCAL_URGENT_PARTITION = "local_urgent"
# Seconds before the plugin's first status check of a job (default 40); the cluster's MinJobAge (300 s)
# stays above three times this, as the plugin requires for squeue. After a check that finds no job finished the
# plugin waits 10 s longer each time, and after one that does it waits this again: the test's jobs take seconds,
# so the shortest wait (1 s is the plugin's least) keeps the workflow from waiting on its checks.
STATUS_DELAY = 2


def load_profile(path: Path = PROFILE) -> dict:
    return yaml.safe_load((path / "config.yaml").read_text())


def planned_resources(text: str) -> dict[str, list[dict[str, str]]]:
    """rule name -> the resources of each of its jobs, from a (dry-)run's output."""
    jobs: dict[str, list[dict[str, str]]] = {}
    for job in planned_jobs(text):
        jobs.setdefault(job.rule, []).append(job.resources)
    return jobs


# ---------------------------------------------------------------------------------------------------------
# The profile, without SLURM


def test_profile_keys_are_plugin_settings():
    """Each slurm-* key is a setting of the installed plugin (a typo would be an unknown CLI flag)."""
    from snakemake_executor_plugin_slurm import ExecutorSettings

    profile = load_profile()
    assert profile["executor"] == "slurm"
    settings = {f"slurm-{f.name.replace('_', '-')}" for f in fields(ExecutorSettings)}
    slurm_keys = {key for key in profile if key.startswith("slurm-")}
    assert slurm_keys <= settings, slurm_keys - settings
    # squeue, not sacct: clusters without accounting storage (see docs/cluster.md).
    assert profile["slurm-status-command"] == "squeue"
    assert profile["retries"] >= 1
    defaults = profile["default-resources"]
    assert {"slurm_partition", "runtime", "mem_mb"} <= set(defaults)
    for rule in GPU_RULES:
        resources = profile["set-resources"][rule]
        assert resources["gpu_model"] == "a100" and "slurm_partition" in resources
        # The rules derive what a job needs from its run; the profile only says which kind and where.
        assert not {"gpu", "nodes", "cpus_per_gpu", "mem_mb", "runtime", "slurm_extra"} & set(resources)
    assert set(profile["set-resources"]) <= CLUSTER_RULES


@pytest.fixture(scope="module")
def profile_dry_run(tmp_path_factory):
    """`snakemake -n --profile cluster` of the tiny config from the repository root (the workflow's files go to a tmp
    dir), once for the tests that read its plan."""
    return run_snakemake(
        tmp_path_factory.mktemp("profile"), "-n", "--profile", "cluster", snakefile=None, configfile=TINY, cwd=REPO
    )


def test_profile_typed_in_the_repository_root(profile_dry_run):
    result = profile_dry_run
    assert result.returncode == 0, output_of(result)[-4000:]
    assert "Using profile cluster for setting default command line arguments" in result.stderr
    jobs = planned_resources(output_of(result))
    profile = load_profile()
    assert GPU_RULES - {"reference_part"} <= set(jobs), set(jobs)  # no run trains longer than max_job_minutes
    for rule in GPU_RULES:
        for resources in jobs.get(rule, []):
            assert resources["gpu"] == "1" and resources["gpu_model"] == "a100", resources
            assert resources["nodes"] == "1" and resources["cpus_per_gpu"] == "1", resources
            assert resources["slurm_partition"] == profile["set-resources"][rule]["slurm_partition"]
            assert int(resources["mem_mb"]) > 1000 and int(resources["runtime"]) >= 15, resources
    for resources in jobs["prep"]:
        assert "gpu" not in resources and "gpu_model" not in resources
        assert resources["slurm_partition"] == profile["default-resources"]["slurm_partition"]


def test_multi_gpu_override_stays_in_step(tmp_path):
    """cluster/a100x8 and cluster/gpu_constraint repeat the CPU rules' resources (set-resources is replaced as a
    whole): keep them equal."""
    main, multi = load_profile()["set-resources"], load_profile(MULTI_GPU_PROFILE)["set-resources"]
    constrained = load_profile(CONSTRAINT_PROFILE)["set-resources"]
    assert set(multi) == set(main) == set(constrained)
    for rule in set(main) - GPU_RULES:
        assert multi[rule] == main[rule] == constrained[rule], rule
    for rule in GPU_RULES:
        assert constrained[rule] == {"slurm_partition": main[rule]["slurm_partition"], "constraint": "a100"}
        assert multi[rule]["gpu_model"] == "a100"
        assert multi[rule]["cpus_per_gpu"] * 8 <= 128 and "mem_mb" not in multi[rule]
    result = run_snakemake(
        tmp_path, "-n", "--profile", "cluster", "--profile", "cluster/a100x8", snakefile=None, configfile=TINY, cwd=REPO
    )
    assert result.returncode == 0, output_of(result)[-4000:]
    for resources in planned_resources(output_of(result))["replay"]:
        assert resources["cpus_per_gpu"] == "16" and int(resources["mem_mb"]) > 1000, resources


def test_a_run_on_several_gpus_asks_for_them_on_one_node(tmp_path):
    """devices: 2 asks SLURM for 2 GPUs on one node, with the run's memory and time (pathgeo.planning.sizing) and twice
    the threads of a one-device job."""
    from pathgeo.planning import sizing
    from pathgeo.planning.config import build_plan

    config = small_config()
    config["defaults"]["devices"] = 2
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    result = run_snakemake(
        tmp_path / "work", "-n", "--profile", "cluster", "--cores", "8", snakefile=None, configfile=path, cwd=REPO
    )
    assert result.returncode == 0, output_of(result)[-4000:]
    (spec,) = build_plan(config).runs.values()
    jobs = planned_resources(output_of(result))
    (reference,) = jobs["reference"]
    assert reference["gpu"] == "2" and reference["nodes"] == "1" and reference["gpu_model"] == "a100", reference
    assert int(reference["mem_mb"]) == sizing.host_memory_mb(spec, "a100", 2)
    assert int(reference["runtime"]) == sizing.runtime_minutes(spec, spec.epochs, "a100", config["threads"])
    threads = re.search(r"^rule reference:\n(?:    .*\n)*?    threads: (\d+)$", output_of(result), re.MULTILINE)
    assert threads and threads.group(1) == "2", output_of(result)[-3000:]
    assert all(job["gpu"] == "2" for job in jobs["replay"])


class PluginResources(dict):
    """A job's resources as the plugin reads them: `.get(name)` and attribute access."""

    def __getattr__(self, name: str):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def sbatch_line(resources: dict[str, str | int], threads: int = 1) -> str:
    """The sbatch options the installed plugin builds for a job with these resources (a dry run's values, numbers
    as numbers), through its own functions, as its run_job calls them: validate_slurm_extra, get_submit_command,
    set_gres_string."""
    from snakemake_executor_plugin_slurm.submit_string import get_submit_command
    from snakemake_executor_plugin_slurm.utils import set_gres_string
    from snakemake_executor_plugin_slurm.validation import validate_slurm_extra

    values = PluginResources({k: int(v) if isinstance(v, str) and v.isdigit() else v for k, v in resources.items()})
    job = SimpleNamespace(resources=values, threads=threads, name="reference", wildcards=[], is_group=lambda: False)
    params = {
        "run_uuid": "run",
        "slurm_logfile": "log",
        "comment_str": "rule_reference",
        "account": "",
        "partition": f"-p {values.get('slurm_partition')}",
        "workdir": "work",
    }
    settings = SimpleNamespace(requeue=True, no_requeue=False, qos=None, reservation=None)
    validate_slurm_extra(job)
    return get_submit_command(job, params, settings) + set_gres_string(job)


def profile_options(*profiles: Path) -> list[str]:
    """`--profile P` for each profile, later ones overriding earlier ones."""
    return [option for profile in profiles for option in ("--profile", str(profile))]


def dry_run_resources(tmp_path: Path, config: Path, *profiles: Path) -> dict[str, list[dict[str, str]]]:
    options = profile_options(*profiles)
    result = run_snakemake(tmp_path, "-n", *options, "--cores", "8", snakefile=None, configfile=config, cwd=REPO)
    assert result.returncode == 0, output_of(result)[-4000:]
    return planned_resources(output_of(result))


# NVML's name of an A100 as SLURM's GRES type when it detects the GPUs itself (AutoDetect=nvml).
NVML_TYPE = "nvidia_a100-sxm4-80gb"


def test_gpu_type_by_gres_name_or_by_node_feature(profile_dry_run, tmp_path):
    """The profile names the GPUs by GRES type (gpu_model: `--gpus=a100:N`); cluster/gpu_constraint by a node
    feature (constraint: `--gpus=N -C a100`). The plugin refuses a GRES type with a hyphen, as NVML names them,
    and --gpus in slurm_extra; a node feature may have one."""
    from snakemake_interface_common.exceptions import WorkflowError

    assert profile_dry_run.returncode == 0, output_of(profile_dry_run)[-4000:]
    by_type = planned_resources(output_of(profile_dry_run))["reference"][0]
    by_feature = dry_run_resources(tmp_path, TINY, PROFILE, CONSTRAINT_PROFILE)["reference"][0]
    assert by_type["gpu_model"] == "a100" and "constraint" not in by_type
    assert by_feature["constraint"] == "a100" and "gpu_model" not in by_feature
    line = sbatch_line(by_type)
    assert " --gpus=a100:1" in line and " -C " not in line and " --cpus-per-gpu=1" in line
    line = sbatch_line(by_feature)
    assert line.endswith(" --gpus=1") and " -C a100 " in line and " --cpus-per-gpu=1" in line and " -p gpu " in line
    with pytest.raises(WorkflowError, match=f"Invalid GPU model format: {NVML_TYPE}"):
        sbatch_line({**by_type, "gpu_model": NVML_TYPE})
    line = sbatch_line({**by_feature, "constraint": NVML_TYPE})
    assert f" -C {NVML_TYPE} " in line and line.endswith(" --gpus=1")
    with pytest.raises(WorkflowError, match="--GPU-allocation option is not allowed in the 'slurm_extra'"):
        sbatch_line({**by_feature, "slurm_extra": f"--gpus={NVML_TYPE}:1"})


def test_jobs_of_three_or_more_gpus_take_their_node_whole(tmp_path):
    """tests/configs/ddp.yaml's runs on 4 devices ask for their node whole (sbatch --exclusive, so that a reference
    and its replays get the same GPUs, pathgeo.training.topology); its runs on 2 devices do not."""
    jobs = dry_run_resources(tmp_path, DDP, PROFILE)
    seen = Counter()
    for rule in ("reference", "replay"):
        for resources in jobs[rule]:
            gpus = int(resources["gpu"])
            seen[rule, gpus] += 1
            line = sbatch_line(resources, threads=gpus)
            if gpus == 4:
                assert resources["slurm_extra"] == "--exclusive" and " --exclusive" in line, resources
            else:
                assert resources["slurm_extra"] == "" and "--exclusive" not in line, resources
            assert f" --gpus=a100:{gpus}" in line and " --nodes=1" in line
    assert seen == Counter({("reference", 2): 2, ("reference", 4): 2, ("replay", 2): 4, ("replay", 4): 4})


def test_largest_preset_plans_in_seconds(tmp_path):
    """The whole CIFAR-10 paper (556 jobs) plans through the profile without SLURM or the data."""
    start = time.monotonic()
    result = run_snakemake(
        tmp_path,
        "-n",
        "--profile",
        "cluster",
        "--config",
        f"data_root={tmp_path / 'data'}",
        snakefile=None,
        configfile=LARGEST_PRESET,
        cwd=REPO,
    )
    seconds = time.monotonic() - start
    assert result.returncode == 0, output_of(result)[-4000:]
    counts = job_stats(output_of(result))
    assert sum(counts.values()) > 500 and counts["replay"] > 500, counts
    assert seconds < 60, f"the dry run took {seconds:.0f} s"


# What a site would set on each line marked EDIT, by the placeholder there.
SITE_VALUES = {"cpu": "cpuq", "gpu": "h100q", "a100": "h100", "16": "12", "max_job_minutes=2880": "max_job_minutes=1"}
MARKED = re.compile(r"^(?P<key>\s*(?:-\s+)?(?:[\w-]+:\s+)?)(?P<value>\S+)(?P<rest>\s+# EDIT\b.*)$")
# The layerings of profiles that docs/cluster.md documents, and what each GPU job must then ask for.
LAYERINGS = {
    "cluster": ((), {"gpu_model": "h100"}),
    "cluster + a100x8": (("a100x8",), {"gpu_model": "h100", "cpus_per_gpu": "12"}),
    "cluster + gpu_constraint": (("gpu_constraint",), {"constraint": "h100"}),
}


def site_edit(text: str) -> tuple[str, int]:
    """The profile with the value on every uncommented line marked EDIT replaced as a site would (SITE_VALUES), and
    how many lines that changed. A marked line whose placeholder the test does not know fails."""
    lines, changed = [], 0
    for line in text.splitlines(keepends=True):
        marked = MARKED.match(line.rstrip("\n"))
        if "# EDIT" in line and not line.lstrip().startswith("#"):
            assert marked and marked["value"] in SITE_VALUES, f"a marked line the test cannot edit: {line!r}"
            line = f"{marked['key']}{SITE_VALUES[marked['value']]}{marked['rest']}\n"
            changed += 1
        lines.append(line)
    return "".join(lines), changed


@pytest.mark.parametrize("layering", list(LAYERINGS))
def test_every_gpu_job_follows_the_marked_lines(tmp_path, layering):
    """Issue 21: the marked lines moved the reference jobs only; replay and landscape (and reference_part, which
    had no entry) stayed on the placeholders. A site edits only the lines marked EDIT (here: partitions gpu ->
    h100q and cpu -> cpuq, GPU type a100 -> h100, 16 -> 12 CPUs per GPU, and max_job_minutes 1, so that reference
    training is a chain of jobs), and every job moves."""
    overlays, wanted = LAYERINGS[layering]
    copy = tmp_path / "cluster"
    shutil.copytree(PROFILE, copy, ignore=shutil.ignore_patterns("*.md"))
    for name in ("", *overlays):
        path = copy / name / "config.yaml"
        text, changed = site_edit(path.read_text())
        assert changed >= 2, path
        path.write_text(text)
    jobs = dry_run_resources(tmp_path / "work", TINY, copy, *(copy / name for name in overlays))
    assert GPU_RULES <= set(jobs), set(jobs)
    for rule in GPU_RULES:
        for resources in jobs[rule]:
            assert resources["slurm_partition"] == "h100q", (rule, resources)
            assert {key: resources.get(key) for key in wanted} == wanted, (rule, resources)
            assert "a100" not in resources.values(), (rule, resources)
    for resources in jobs["prep"]:
        assert resources["slurm_partition"] == "cpuq", resources


# ---------------------------------------------------------------------------------------------------------
# A real SLURM cluster


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def slurm_env(tmp_path_factory):
    """A one-node SLURM cluster for this module; the environment in which SLURM commands reach it."""
    state = tmp_path_factory.mktemp("slurm")
    env = {
        **os.environ,
        "PATHGEO_SLURMCTLD_PORT": str(free_port()),
        "PATHGEO_SLURMD_PORT": str(free_port()),
        "PATHGEO_SLURM_CPU_PARTITION": LOCAL_CPU_PARTITION,
        "PATHGEO_SLURM_GPU_PARTITION": LOCAL_GPU_PARTITION,
        "PATHGEO_SLURM_URGENT_PARTITION": LOCAL_URGENT_PARTITION,
    }
    started = subprocess.run(
        ["bash", str(LOCAL_SLURM), "start", str(state)],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    if started.returncode == 3:
        lines = started.stderr.strip().splitlines() or ["(no message)"]
        pytest.skip(f"cannot start a local SLURM cluster here: {lines[-1]}")
    try:
        assert started.returncode == 0, f"local SLURM cluster failed to start:\n{started.stderr[-6000:]}"
        # Its GPUs are plain files: the jobs that hold them train on the CPU (pathgeo.training.devices.FAKE_GPUS).
        yield {**env, "SLURM_CONF": str(state / "etc" / "slurm.conf"), "PATHGEO_FAKE_GPUS": "1"}
    finally:
        stopped = subprocess.run(
            ["bash", str(LOCAL_SLURM), "stop", str(state)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert stopped.returncode == 0, stopped.stderr


def small_config(two_gpus: bool = False) -> dict:
    """tiny.yaml cut down to one MNIST-1D MLP run of 2 epochs (2 replay segments) and one figure; with
    `two_gpus`, the same run on 2 devices besides it."""
    config = yaml.safe_load(TINY.read_text())
    config["device"] = "auto"  # so that training and replay ask for a GPU (and use the CPU here)
    config["segment_epochs"] = 1
    config["datasets"] = {"mnist1d": config["datasets"]["mnist1d"]}
    config["defaults"]["epochs"] = 2
    config["experiments"] = {"baseline": {"description": "one run"}}
    if two_gpus:
        config["experiments"]["two_gpus"] = {"description": "the run on 2 devices", "set": {"devices": 2}}
    config["figures"] = {"rsi_eb_gamma": {"plot": "rsi_eb_gamma", "experiment": "baseline"}}
    return config


def site_override(directory: Path) -> Path:
    """What a site edits in cluster/config.yaml, as an override profile: the partition names. Plus a shorter
    first status check than the plugin's 40 s, and kept SLURM logs for a failing test."""
    profile = load_profile()
    default_partition = profile["default-resources"]["slurm_partition"]

    def local(partition: str) -> str:
        return LOCAL_CPU_PARTITION if partition == default_partition else LOCAL_GPU_PARTITION

    override = {
        "default-resources": {**profile["default-resources"], "slurm_partition": LOCAL_CPU_PARTITION},
        "set-resources": {
            rule: {**res, **({"slurm_partition": local(res["slurm_partition"])} if "slurm_partition" in res else {})}
            for rule, res in profile["set-resources"].items()
        },
        "slurm-init-seconds-before-status-checks": STATUS_DELAY,
        "slurm-keep-successful-logs": True,
    }
    directory.mkdir(parents=True)
    (directory / "config.yaml").write_text(yaml.safe_dump(override, sort_keys=False))
    return directory


def slurm_jobs(env: dict, run_id: str) -> list[dict[str, str]]:
    """Every job of one Snakemake run (the plugin names them by its run id), finished ones included."""
    names = ["JobID", "State", "Partition", "tres-per-job", "cpus-per-tres", "Comment"]
    result = subprocess.run(
        ["squeue", "--states=all", "--noheader", f"--name={run_id}", "-O", ",".join(f"{n}:300" for n in names)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return [dict(zip(names, line.split())) for line in result.stdout.splitlines() if line.strip()]


def run_id_of(text: str) -> str:
    m = re.search(r"SLURM run ID: (\S+)", text)
    assert m, text[-4000:]
    return m.group(1)


@pytest.fixture(scope="module")
def slurm_runs(slurm_env, tmp_path_factory):
    """The small workflow twice: locally (--cores 2) and on SLURM through the profile."""
    base = tmp_path_factory.mktemp("slurm_runs")
    config = base / "config.yaml"
    config.write_text(yaml.safe_dump(small_config(two_gpus=True), sort_keys=False))
    override = site_override(base / "site")
    # The local run goes on beside the SLURM run; both are small.
    with ThreadPoolExecutor(1) as beside:
        local = beside.submit(run_snakemake, base / "local", "--cores", "2", configfile=config, cwd=base, timeout=600)
        start = time.monotonic()
        slurm = run_snakemake(
            base / "slurm",
            *profile_options(PROFILE, override),
            configfile=config,
            cwd=base,
            env=slurm_env,
        )
        slurm_seconds = time.monotonic() - start
        assert local.result().returncode == 0, output_of(local.result())[-4000:]
    assert slurm.returncode == 0, output_of(slurm)[-8000:]
    return {
        "base": base,
        "config": config,
        "override": override,
        "local": base / "local",
        "slurm": base / "slurm",
        "output": output_of(slurm),
        "seconds": slurm_seconds,
    }


@pytest.mark.slurm
def test_gpu_rules_go_to_a100s_and_local_rules_stay(slurm_env, slurm_runs):
    output = slurm_runs["output"]
    jobs = slurm_jobs(slurm_env, run_id_of(output))
    rules = Counter(re.match(r"rule_([a-z_]+?)(?:_wildcards_|$)", job["Comment"]).group(1) for job in jobs)
    # One dataset, two runs (one on 1 GPU, one on 2), two replay segments each; nothing else went through SLURM.
    assert rules == Counter(prep=1, reference=2, replay=4), jobs
    gpus = Counter()
    for job in jobs:
        rule = re.match(r"rule_([a-z_]+?)(?:_wildcards_|$)", job["Comment"]).group(1)
        assert job["State"] == "COMPLETED", job
        if rule in GPU_RULES:
            # sbatch --gpus=a100:N --nodes=1 --cpus-per-gpu=1 (the config's threads), on the site's GPU partition
            assert re.fullmatch(r"gres:gpu:a100:[12]", job["tres-per-job"]), job
            gpus[rule, job["tres-per-job"][-1]] += 1
            assert job["cpus-per-tres"] == "gres:gpu:1", job
            assert job["Partition"] == LOCAL_GPU_PARTITION, job
        else:
            assert job["tres-per-job"] == "N/A", job
            assert job["Partition"] == LOCAL_CPU_PARTITION, job
    assert gpus == Counter({("reference", "1"): 1, ("reference", "2"): 1, ("replay", "1"): 2, ("replay", "2"): 2})
    # The 2-GPU jobs ran 2 ranks (gloo on the CPU: the fake GPUs have no driver).
    logs = sorted((slurm_runs["slurm"] / "logs" / "reference").glob("*.log"))
    assert sum("starting 2 ranks" in path.read_text() and "[rank 0]" in path.read_text() for path in logs) == 1
    # The local rules ran in this process (Snakemake prints them as `localrule`), not as SLURM jobs.
    for rule in ("aggregate", "claims", "figure", "all"):
        assert re.search(rf"^localrule {rule}:$", output, re.MULTILINE), rule
    for rule in CLUSTER_RULES & set(rules):
        assert re.search(rf"^rule {rule}:$", output, re.MULTILINE), rule
    # The config file is config.yaml: its outputs are results/config/ (pathgeo.planning.outputs).
    assert (slurm_runs["slurm"] / "results" / "config" / "figures" / "rsi_eb_gamma.svg").exists()


@pytest.mark.slurm
def test_slurm_results_equal_local_results(slurm_runs):
    local, slurm = slurm_runs["local"] / "results", slurm_runs["slurm"] / "results"
    runs = sorted(p.name for p in (local / "runs").iterdir())
    assert len(runs) == 2
    for run in runs:
        assert_run_equal(local, slurm, run)
    data = torch.load(local / "data" / "mnist1d" / "tensors.pt")
    other = torch.load(slurm / "data" / "mnist1d" / "tensors.pt")
    assert data.keys() == other.keys() and all(torch.equal(data[k], other[k]) for k in data)
    for table in [
        "config/tables/baseline/epochs.parquet",
        "config/tables/baseline/steps.parquet",
        "config/tables/baseline/matrices.parquet",
        "config/tables/claims.parquet",
    ]:
        assert pl.read_parquet(local / table).equals(pl.read_parquet(slurm / table)), table


def assert_run_equal(local: Path, slurm: Path, run: str) -> None:
    replays = sorted((local / "runs" / run / "replay").glob("*[0-9].parquet"))
    assert len(replays) == 2
    for path in replays:
        matrices = path.with_name(path.name.replace(".parquet", ".matrices.parquet"))
        for table in (path, matrices):
            other = slurm / table.relative_to(local)
            assert table.read_bytes() == other.read_bytes(), table.name
            assert pl.read_parquet(table).equals(pl.read_parquet(other))
        fidelity = path.with_name(path.name.replace(".parquet", ".fidelity.json"))
        assert json.loads(fidelity.read_text()) == json.loads((slurm / fidelity.relative_to(local)).read_text())
    # Checkpoints and the train log hold no wall-clock times: identical runs write identical bytes.
    checkpoints = sorted((local / "runs" / run / "checkpoints").glob("*.pt"))
    assert len(checkpoints) == 3
    for path in [*checkpoints, local / "runs" / run / "train_log.parquet"]:
        assert path.read_bytes() == (slurm / path.relative_to(local)).read_bytes(), path.name


@pytest.mark.slurm
def test_missing_gpu_model_fails_fast_with_slurms_refusal(slurm_env, slurm_runs, tmp_path):
    """An A100 profile on a cluster without that GPU model: sbatch refuses and the run stops at once."""
    workdir = tmp_path / "work"
    shutil.copytree(slurm_runs["slurm"], workdir)  # prepared data on hand: the first submission is training
    start = time.monotonic()
    result = run_snakemake(
        workdir,
        *profile_options(PROFILE, slurm_runs["override"]),
        "--forcerun",
        "reference",
        "--set-resources",
        "reference:gpu_model=h100",
        f"reference:slurm_partition={LOCAL_GPU_PARTITION}",
        configfile=slurm_runs["config"],
        cwd=tmp_path,
        env=slurm_env,
        timeout=300,
    )
    seconds = time.monotonic() - start
    output = output_of(result)
    assert result.returncode != 0, output[-4000:]
    assert "SLURM sbatch failed" in output and re.search(r"--gpus=h100:[12]\b", output), output[-4000:]
    assert "Requested node configuration is not available" in output, output[-4000:]
    # SLURM keeps a record of each refused submission (FAILED, BadConstraints); none of them ran.
    jobs = slurm_jobs(slurm_env, run_id_of(output))
    assert jobs and all(job["State"] == "FAILED" and job["Comment"].startswith("rule_reference_") for job in jobs), jobs
    assert seconds < 60, f"took {seconds:.0f} s to fail"


# ---------------------------------------------------------------------------------------------------------
# Preemption that cancels (the test cluster's PreemptMode=CANCEL): the workflow requeues its job, or stops


def one_device_run(config: Path) -> str:
    from pathgeo.planning.config import build_plan

    (run,) = [run for run, spec in build_plan(yaml.safe_load(config.read_text())).runs.items() if spec.devices == 1]
    return run


def preempt_when_running(env: dict, rule: str, directory: Path) -> str:
    """Wait until a job of `rule` runs, then send a job that needs the whole node to the urgent partition: SLURM
    cancels the running job to make room (state PREEMPTED). The preempted job's id."""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        listed = subprocess.run(
            ["squeue", "--noheader", "--states=RUNNING", "--format=%i|%k"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        running = [line.split("|")[0] for line in listed.stdout.splitlines() if f"|rule_{rule}_" in line]
        if running:
            subprocess.run(
                [
                    "sbatch",
                    "--parsable",
                    "-p",
                    LOCAL_URGENT_PARTITION,
                    "--exclusive",
                    "-o",
                    "/dev/null",
                    "--wrap",
                    "sleep 2",
                ],
                env=env,
                cwd=directory,
                capture_output=True,
                timeout=60,
                check=True,
            )
            return running[0]
        time.sleep(0.2)
    pytest.fail(f"no {rule} job ran within 180 s")


def job_field(env: dict, job_id: str, name: str) -> str:
    result = subprocess.run(
        ["squeue", "--noheader", "--states=all", "-j", job_id, "-O", f"{name}:40"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout.strip()


def run_through_preemption(slurm_env: dict, slurm_runs: dict, workdir: Path, seconds: float, *profiles: Path):
    """The 1-device run's reference again, through the profile, with the job preempted while it runs: the preempted
    job's id and Snakemake's exit status and output. A workflow still waiting after `seconds` fails the test."""
    shutil.copytree(slurm_runs["slurm"], workdir)  # prepared data on hand: the only job is the reference
    run = one_device_run(slurm_runs["config"])
    options = profile_options(PROFILE, slurm_runs["override"], *profiles)
    process = subprocess.Popen(
        snakemake_command(
            workdir,
            *options,
            f"results/runs/{run}/spec.json",
            "--forcerun",
            "reference",
            configfile=slurm_runs["config"],
        ),
        cwd=workdir.parent,
        env=slurm_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        job_id = preempt_when_running(slurm_env, "reference", workdir.parent)
        output, _ = process.communicate(timeout=seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
        pytest.fail(f"the workflow was still waiting for its preempted job after {seconds:.0f} s:\n{output[-4000:]}")
    finally:
        if process.poll() is None:
            process.kill()
    return job_id, process.returncode, output, run


@pytest.mark.slurm
def test_a_preempted_job_is_requeued_and_the_workflow_finishes(slurm_env, slurm_runs, tmp_path):
    """SLURM cancels the running reference job (PreemptMode=CANCEL, as on scavenger partitions); the workflow
    requeues it (pathgeo.tools.preemption), the job runs again under its id and the run ends as the local one did. The
    plugin alone would wait for the PREEMPTED job forever."""
    workdir = tmp_path / "work"
    job_id, status, output, run = run_through_preemption(slurm_env, slurm_runs, workdir, 400)
    assert status == 0, output[-6000:]
    assert re.search(
        rf"SLURM job {job_id} \(rule_reference_wildcards_{re.escape(run)}\) was preempted: requeued it", output
    ), output[-6000:]
    assert job_field(slurm_env, job_id, "RestartCnt") == "1" and job_field(slurm_env, job_id, "State") == "COMPLETED"
    for path in sorted((slurm_runs["local"] / "results" / "runs" / run / "checkpoints").glob("*.pt")):
        assert path.read_bytes() == (workdir / path.relative_to(slurm_runs["local"])).read_bytes(), path.name


@pytest.mark.slurm
def test_a_refused_requeue_stops_the_workflow_with_the_job_and_the_fix(slurm_env, slurm_runs, tmp_path):
    """Jobs submitted with --no-requeue: SLURM refuses to requeue the preempted one, and the workflow stops (as
    with Ctrl-C) naming the job and what to do, instead of waiting forever."""
    no_requeue = tmp_path / "no_requeue"
    no_requeue.mkdir()
    (no_requeue / "config.yaml").write_text(yaml.safe_dump({"slurm-requeue": False, "slurm-no-requeue": True}))
    job_id, status, output, run = run_through_preemption(slurm_env, slurm_runs, tmp_path / "work", 240, no_requeue)
    assert status != 0, output[-6000:]
    refusal = f"SLURM refused to requeue the preempted job {job_id} (rule_reference_wildcards_{run})"
    assert refusal in output, output[-6000:]
    assert "Requested operation is presently disabled" in output and "--rerun-incomplete" in output
    assert job_field(slurm_env, job_id, "State") == "PREEMPTED"


# ---------------------------------------------------------------------------------------------------------
# A time limit shorter than the reference training: a chain of jobs


@pytest.mark.slurm
def test_a_reference_longer_than_the_limit_trains_in_a_chain_of_jobs(slurm_env, slurm_runs, tmp_path):
    """max_job_minutes: 1 (every epoch is a job of its own, each asking for one minute): the 1-device run's reference
    is two SLURM jobs, the second resuming from the first's checkpoint, and the run ends bit-identical to the local
    run's single job."""
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(small_config(), sort_keys=False))
    workdir = tmp_path / "work"
    shutil.copytree(slurm_runs["slurm"] / "results" / "data", workdir / "results" / "data")
    # On the command line, as a site's user would give it (it replaces the profile's `config` list).
    result = run_snakemake(
        workdir,
        *profile_options(PROFILE, slurm_runs["override"]),
        "--config",
        "max_job_minutes=1",
        configfile=path,
        cwd=tmp_path,
        env=slurm_env,
    )
    output = output_of(result)
    assert result.returncode == 0, output[-8000:]
    jobs = slurm_jobs(slurm_env, run_id_of(output))
    rules = Counter(re.match(r"rule_([a-z_]+?)(?:_wildcards_|$)", job["Comment"]).group(1) for job in jobs)
    assert rules == Counter(reference_part=1, reference=1, replay=2), jobs
    for job in jobs:
        assert job["State"] == "COMPLETED", job
        if job["Comment"].startswith("rule_reference"):
            assert job_field(slurm_env, job["JobID"], "TimeLimit") == "1:00", job
    run = one_device_run(path)
    assert_run_equal(slurm_runs["local"] / "results", workdir / "results", run)
    assert "1 of 1 runs train in chains of jobs of at most max_job_minutes=1 minutes each" in output
