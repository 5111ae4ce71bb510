"""Config files are read as a person writes them and strictly: `1e-3` is a number (YAML 1.2's floats), a YAML
syntax error names file, line and column; a key given twice in one mapping is refused with both lines, in the
workflow's default config and in a --configfile alike. pathgeo reads YAML through one loader only."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from workflow_runner import run_snakemake

from pathgeo.planning.config_files import ConfigFileError, load_yaml, read_config_file

REPO = Path(__file__).resolve().parents[1]
DEFAULT = (REPO / "config" / "config.yaml").read_text()


def with_second_baseline(text: str) -> str:
    assert "\n  budgets:\n" in text
    return text.replace("\n  budgets:\n", "\n  baseline:\n    description: a second one\n  budgets:\n", 1)


def line_of(text: str, needle: str, nth: int = 1) -> int:
    lines = [i + 1 for i, line in enumerate(text.splitlines()) if line == needle]
    return lines[nth - 1]


def test_the_shipped_configs_are_clean():
    for path in [REPO / "config" / "config.yaml", *sorted((REPO / "config").glob("*/*.yaml"))]:
        assert isinstance(read_config_file(path).content, dict), path


# (as written, what pathgeo reads, what PyYAML's YAML 1.1 reads): YAML 1.2's floats.
NUMBERS = [
    ("1e-3", 0.001, "1e-3"),
    ("5e4", 50000.0, "5e4"),
    ("1E+5", 100000.0, "1E+5"),
    ("+1e3", 1000.0, "+1e3"),
    ("-.5", -0.5, "-.5"),
    (".5", 0.5, 0.5),
    ("1.0e-3", 0.001, 0.001),
    ("2.", 2.0, 2.0),
    ("3", 3, 3),
    ("-2", -2, -2),
    (".inf", float("inf"), float("inf")),
    # not numbers: no digits after the exponent, no digits before it, two dots; no `_` in a float (YAML 1.2 has none)
    ("1e", "1e", "1e"),
    ("e3", "e3", "e3"),
    ("1.2.3", "1.2.3", "1.2.3"),
    ("1_000.5", "1_000.5", 1000.5),
]


@pytest.mark.parametrize("text,value,yaml_1_1", NUMBERS, ids=[n[0] for n in NUMBERS])
def test_numbers_as_a_person_writes_them(text, value, yaml_1_1):
    read, old = load_yaml(f"x: {text}")["x"], yaml.safe_load(f"x: {text}")["x"]
    assert read == value and type(read) is type(value)
    assert old == yaml_1_1 and type(old) is type(yaml_1_1)


def test_a_grid_of_weight_decays_reads_as_numbers(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("experiments:\n  wd:\n    grid: {weight_decay: [0, 1e-4, 1e-3]}\n")
    read = read_config_file(path)
    assert read.content == {"experiments": {"wd": {"grid": {"weight_decay": [0, 0.0001, 0.001]}}}}
    assert (
        read.lines[("experiments", "wd", "grid")] == 3
        and read.lines[("experiments", "wd", "grid", "weight_decay", 2)] == 3
    )


def test_pathgeo_reads_yaml_through_its_loader_only():
    """Every reader of YAML in pathgeo, its rules and its Snakefile goes through pathgeo.planning.config_files (load_yaml,
    read_config_file), so that no config is read with YAML 1.1's numbers."""
    sources = [
        *(REPO / "pathgeo").rglob("*.py"),
        *(REPO / "workflow_scripts").glob("*.py"),
        *(REPO / "rules").glob("*.smk"),
        REPO / "Snakefile",
    ]
    readers = re.compile(r"yaml\.(safe_load|load|full_load|unsafe_load|compose)\b|\bsafe_load\(")
    found = [
        f"{path.relative_to(REPO)}:{number}"
        for path in sources
        if path.name != "config_files.py"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if readers.search(line)
    ]
    assert found == []


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(ConfigFileError, match=f"^{re.escape(str(tmp_path / 'no.yaml'))}: cannot be read: "):
        read_config_file(tmp_path / "no.yaml")


def test_a_duplicate_experiment_names_the_key_and_both_lines(tmp_path):
    text = with_second_baseline(DEFAULT)
    path = tmp_path / "config.yaml"
    path.write_text(text)
    with pytest.raises(ConfigFileError) as caught:
        read_config_file(path)
    first, second = line_of(text, "  baseline:", 1), line_of(text, "  baseline:", 2)
    assert str(caught.value) == (
        f"{path}: key 'experiments.baseline' appears twice, on lines {first} and {second}; YAML would keep only the "
        "second and drop the first without a word: rename or remove one"
    )


def test_a_duplicate_inside_a_list_item_names_its_index(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("experiments:\n  e:\n    cases:\n      - {lr: 0.1}\n      - {lr: 0.1, lr: 0.2}\n")
    with pytest.raises(ConfigFileError, match=r"key 'experiments\.e\.cases\[1\]\.lr' appears twice, on lines 5 and 5"):
        read_config_file(path)


def test_a_syntax_error_names_file_line_and_column(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("device: auto\nthreads: [1\nsegment_epochs: 15\n")
    with pytest.raises(ConfigFileError) as caught:
        read_config_file(path)
    message = str(caught.value)
    assert message.startswith(
        f"{path}, line 3, column 15: not valid YAML: while parsing a flow sequence at line 2, column 10"
    ), message


def workflow(workdir: Path, *args: str, snakefile: Path = REPO / "Snakefile") -> subprocess.CompletedProcess:
    return run_snakemake(workdir, "-n", *args, snakefile=snakefile)


def workflow_with_default(folder: Path, text: str) -> Path:
    """A workflow whose embedded default (config/config.yaml beside its Snakefile) is `text`: the repository's
    workflow, its config folder copied and the rest linked. Returns its Snakefile."""
    folder.mkdir(parents=True)
    for part in ("pathgeo", "rules", "workflow_scripts", "report", "environment.yml"):
        (folder / part).symlink_to(REPO / part)
    shutil.copytree(REPO / "config", folder / "config")
    (folder / "config" / "config.yaml").write_text(text)
    shutil.copy2(REPO / "Snakefile", folder / "Snakefile")
    return folder / "Snakefile"


def test_the_workflow_refuses_a_duplicate_in_its_default_config(tmp_path):
    text = with_second_baseline(DEFAULT)
    snakefile = workflow_with_default(tmp_path / "workflow", text)
    result = workflow(tmp_path / "work", snakefile=snakefile)
    assert result.returncode != 0
    first, second = line_of(text, "  baseline:", 1), line_of(text, "  baseline:", 2)
    assert (
        f"config/config.yaml: key 'experiments.baseline' appears twice, on lines {first} and {second}"
        in result.stdout + result.stderr
    )


def test_the_workflow_names_the_line_of_a_syntax_error_in_its_default_config(tmp_path):
    assert "\nexperiments:\n" in DEFAULT
    snakefile = workflow_with_default(
        tmp_path / "workflow", DEFAULT.replace("\nexperiments:\n", "\nexperiments: [1\n", 1)
    )
    result = workflow(tmp_path / "work", snakefile=snakefile)
    assert result.returncode != 0
    assert "config/config.yaml, line " in result.stdout + result.stderr
    assert "not valid YAML: while parsing a flow sequence" in result.stdout + result.stderr


def test_the_workflow_refuses_a_duplicate_in_a_configfile(tmp_path):
    path = tmp_path / "preset.yaml"
    path.write_text(with_second_baseline(DEFAULT))
    result = workflow(tmp_path / "work", "--configfile", str(path))
    assert result.returncode != 0
    assert f"{path}: key 'experiments.baseline' appears twice" in result.stdout + result.stderr
