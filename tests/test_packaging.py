"""The pip pins and the conda environment must not drift apart."""

from pathlib import Path

import yaml

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


def test_ci_runs_the_readme_test_command():
    assert "make test" in (ROOT / ".ci/run").read_text()
    assert "make test" in (ROOT / "README.md").read_text()
