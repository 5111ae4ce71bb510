"""The pip pins and the conda environment must not drift apart, and jobs under `--sdm conda` import pathgeo."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import yaml
from workflow_runner import run_snakemake

from pathgeo.planning.config import build_plan

ROOT = Path(__file__).resolve().parents[1]


def pins(lines):
    return {line.split("==")[0].lower(): line.split("==")[1] for line in lines if "==" in line}


def test_environment_yml_pins_the_same_versions_as_requirements_txt():
    requirements = [
        line.strip() for line in (ROOT / "requirements.txt").read_text().splitlines() if not line.startswith("#")
    ]
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(dep["pip"] for dep in env["dependencies"] if isinstance(dep, dict))
    assert pins(pip_section) == pins(requirements)
    # Dependencies only: a local path (pathgeo itself) would shadow the checkout (see environment.yml's header).
    assert all("==" in line for line in pip_section), pip_section


def test_ci_runs_the_readme_test_command():
    assert "make test" in (ROOT / ".ci/run").read_text()
    assert "make test" in (ROOT / "README.md").read_text()


# conda as `snakemake --sdm conda` calls it: `conda info/--version/config/clean`, and `conda env create --file F
# --prefix P`, which here makes P an "environment" whose python has no packages of its own (`python -S`: no
# site-packages, so neither torch nor pathgeo). Each call is logged.
FAKE_CONDA = """#!/bin/sh
echo "$*" >> "{log}"
case "$1" in
  --version) echo "conda 25.1.0" ;;
  info) echo '{{"conda_prefix": "{root}", "platform": "linux-64"}}' ;;
  config) echo '{{"get": {{"channel_priority": "strict"}}}}' ;;
  clean) ;;
  env)
    while [ $# -gt 0 ]; do
      case "$1" in --file) file="$2"; shift ;; --prefix) prefix="$2"; shift ;; esac
      shift
    done
    mkdir -p "$prefix/bin"
    printf '#!/bin/sh\\necho "python [PYTHONPATH=$PYTHONPATH] $*" >> "{log}"\\nexec "{python}" -S "$@"\\n' \\
      > "$prefix/bin/python"
    chmod +x "$prefix/bin/python"
    echo "created $prefix from $file" >> "{log}" ;;
  *) exit 1 ;;
esac
"""


def test_sdm_conda_jobs_import_pathgeo_from_the_checkout(tmp_path):
    """`snakemake --sdm conda` runs the jobs' scripts with the environment's python and without PYTHONPATH, which
    Snakemake drops for conda jobs. An environment that holds none of pathgeo (here: none of anything, a stand-in
    for conda makes it) still runs a reference job: Snakemake adds its own import path, which holds the workflow's
    folder, to the script's, so pathgeo comes from this checkout. The environment is made from a copy of
    environment.yml in .snakemake/conda/: a relative path in its pip section would be read from there."""
    conda_root = tmp_path / "conda"
    (conda_root / "bin").mkdir(parents=True)
    log = tmp_path / "conda.log"
    (conda_root / "bin" / "conda").write_text(FAKE_CONDA.format(log=log, root=conda_root, python=sys.executable))
    (conda_root / "bin" / "activate").write_text('PATH="$1/bin:$PATH"; export PATH\n')
    for name in ("conda", "activate"):
        (conda_root / "bin" / name).chmod(0o755)
    workdir = tmp_path / "work"
    config = yaml.safe_load((ROOT / "tests" / "configs" / "tiny.yaml").read_text())
    config["experiments"] = {"baseline": {}}
    config["figures"] = {}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    (run,) = build_plan(config).runs
    env = {**os.environ, "PATH": f"{conda_root / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    result = run_snakemake(
        workdir,
        "--sdm",
        "conda",
        "--cores",
        "1",
        f"results/runs/{run}/spec.json",
        configfile=tmp_path / "config.yaml",
        cwd=tmp_path,
        env=env,
        timeout=600,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    calls = log.read_text()
    (created,) = re.findall(r"^created (\S+) from (\S+)$", calls, re.MULTILINE)
    prefix, env_file = map(Path, created)
    assert env_file.parent == workdir / ".snakemake" / "conda" == prefix.parent
    assert env_file.read_text() == (ROOT / "environment.yml").read_text()
    # The scripts ran in the environment, without the PYTHONPATH that rules/common.smk sets for jobs.
    scripts = re.findall(r"^python \[PYTHONPATH=(.*)\] \S+\.(\w+)\.py$", calls, re.MULTILINE)
    assert scripts == [("", "prep"), ("", "reference")], calls
    # The environment's python alone has neither pathgeo nor torch.
    for module in ("pathgeo", "torch"):
        alone = subprocess.run(
            [str(prefix / "bin" / "python"), "-c", f"import {module}"],
            cwd=tmp_path,
            env={**env, "PYTHONPATH": ""},
            capture_output=True,
            text=True,
            check=False,
        )
        assert alone.returncode != 0 and "No module named" in alone.stderr, module
    assert json.loads((workdir / "results" / "runs" / run / "spec.json").read_text())["run_id"] == run
