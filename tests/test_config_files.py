"""Config files are read strictly: a YAML syntax error names file, line and column; a key given twice in one
mapping is refused with both lines, in the workflow's default config and in a --configfile alike."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pathgeo.config_files import ConfigFileError, check_config_file, main

REPO = Path(__file__).resolve().parents[1]
DEFAULT = (REPO / "config" / "config.yaml").read_text()
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


def with_second_baseline(text: str) -> str:
    assert "\n  budgets:\n" in text
    return text.replace("\n  budgets:\n", "\n  baseline:\n    description: a second one\n  budgets:\n", 1)


def line_of(text: str, needle: str, nth: int = 1) -> int:
    lines = [i + 1 for i, line in enumerate(text.splitlines()) if line == needle]
    return lines[nth - 1]


def test_the_shipped_configs_are_clean():
    assert main([str(REPO / "config" / "config.yaml"), *map(str, sorted((REPO / "config/presets").glob("*.yaml")))]) == 0


def test_a_duplicate_experiment_names_the_key_and_both_lines(tmp_path):
    text = with_second_baseline(DEFAULT)
    path = tmp_path / "config.yaml"
    path.write_text(text)
    with pytest.raises(ConfigFileError) as caught:
        check_config_file(path)
    first, second = line_of(text, "  baseline:", 1), line_of(text, "  baseline:", 2)
    assert str(caught.value) == (
        f"{path}: key 'experiments.baseline' appears twice, on lines {first} and {second}; YAML would keep only the "
        "second and drop the first without a word: rename or remove one"
    )


def test_a_duplicate_inside_a_list_item_names_its_index(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("experiments:\n  e:\n    cases:\n      - {lr: 0.1}\n      - {lr: 0.1, lr: 0.2}\n")
    with pytest.raises(ConfigFileError, match=r"key 'experiments\.e\.cases\[1\]\.lr' appears twice, on lines 5 and 5"):
        check_config_file(path)


def test_a_syntax_error_names_file_line_and_column(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("device: auto\nthreads: [1\nsegment_epochs: 15\n")
    with pytest.raises(ConfigFileError) as caught:
        check_config_file(path)
    message = str(caught.value)
    assert message.startswith(f"{path}, line 3, column 15: not valid YAML: while parsing a flow sequence at line 2, "
                              "column 10"), message


def workflow(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    workdir.mkdir(parents=True, exist_ok=True)
    return subprocess.run([SNAKEMAKE, "-s", str(REPO / "Snakefile"), "--directory", str(workdir), "-n", *args],
                          cwd=workdir, capture_output=True, text=True, timeout=300)


def default_config_in(workdir: Path, text: str) -> None:
    (workdir / "config").mkdir(parents=True, exist_ok=True)
    (workdir / "config" / "config.yaml").write_text(text)


def test_the_workflow_refuses_a_duplicate_in_its_default_config(tmp_path):
    text = with_second_baseline(DEFAULT)
    default_config_in(tmp_path, text)
    result = workflow(tmp_path)
    assert result.returncode != 0
    first, second = line_of(text, "  baseline:", 1), line_of(text, "  baseline:", 2)
    assert (f"config/config.yaml: key 'experiments.baseline' appears twice, on lines {first} and {second}"
            in result.stdout + result.stderr)


def test_the_workflow_names_the_line_of_a_syntax_error_in_its_default_config(tmp_path):
    default_config_in(tmp_path, DEFAULT.replace("\nthreads: 1 ", "\nthreads: [1 ", 1))
    result = workflow(tmp_path)
    assert result.returncode != 0
    assert "config/config.yaml, line " in result.stdout + result.stderr
    assert "not valid YAML: while parsing a flow sequence" in result.stdout + result.stderr


def test_the_workflow_refuses_a_duplicate_in_a_configfile(tmp_path):
    path = tmp_path / "preset.yaml"
    path.write_text(with_second_baseline(DEFAULT))
    result = workflow(tmp_path / "work", "--configfile", str(path))
    assert result.returncode != 0
    assert f"{path}: key 'experiments.baseline' appears twice" in result.stdout + result.stderr
