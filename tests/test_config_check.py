"""The one config check (pathgeo.planning.config_check): `pathgeo check-config FILE...` and the workflow run the same, and
every problem names the file, the line and the key.

In-process for the messages; through `snakemake -n` for what the workflow prints (the check's message, no
traceback into rules/common.smk), for numbers written `1e-3` and for the command line's `--config`.
"""

from __future__ import annotations

import copy
import re
import subprocess
import warnings
from pathlib import Path

import pytest
from workflow_runner import run_snakemake

from pathgeo.planning.config_check import ConfigCheckError, check_config, key_path, main, merged

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "tests" / "configs" / "tiny.yaml"
TINY_TEXT = TINY.read_text()


def line_of(text: str, needle: str) -> int:
    (number,) = [i + 1 for i, line in enumerate(text.splitlines()) if line.startswith(needle)]
    return number


def edited(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, old
    return text.replace(old, new)


# tiny.yaml with a misspelt key of an experiment, a quoted number and a negative LR: three problems at once.
BROKEN = edited(
    edited(
        edited(TINY_TEXT, "    grid: {batch_size: [25, 50]}\n", "    gird: {batch_size: [25, 50]}\n"),
        "  weight_decay: 1.0e-5\n",
        "  weight_decay: '1e-5'\n",
    ),
    "  lr: 0.01\n",
    "  lr: -0.01\n",
)


def test_every_problem_names_its_file_line_and_key(tmp_path):
    path = tmp_path / "my.yaml"
    path.write_text(BROKEN)
    with pytest.raises(ConfigCheckError) as caught:
        check_config([path])
    lines = [line_of(BROKEN, start) for start in ("  lr: -0.01", "  weight_decay:", "    gird:")]
    assert caught.value.problems == (
        f"{path}, line {lines[0]}: config key 'defaults.lr': -0.01 is less than or equal to the minimum of 0",
        (
            f"{path}, line {lines[1]}: config key 'defaults.weight_decay': '1e-5' is not of type 'number'; YAML read it "
            "as text: write a number without quotes and without `_` (0.001, 1e-3)"
        ),
        f"{path}, line {lines[2]}: config key 'experiments.batch_sizes.gird': is not a known key; did you mean 'grid'?",
    )


def test_a_key_is_named_in_the_last_file_that_gives_it(tmp_path):
    """Several files are one config, later ones winning key by key (snakemake --configfile a b)."""
    base, override = tmp_path / "base.yaml", tmp_path / "override.yaml"
    base.write_text(TINY_TEXT)
    override.write_text("device: auto\ndefaults:\n  epochs: 0\n")
    with pytest.raises(ConfigCheckError) as caught:
        check_config([base, override])
    assert caught.value.problems == (
        f"{override}, line 3: config key 'defaults.epochs': 0 is less than the minimum of 1",
    )
    # A key that no file has is named by the nearest key above it; a top-level one by every file.
    override.write_text("defaults: {epochs: 2}\nexperiments: {baseline: {description: x, set: {lrr: 0.1}}}\n")
    with pytest.raises(
        ConfigCheckError,
        match=re.escape(
            f"{override}, line 2: config key 'experiments.baseline.set.lrr': is not a known key; did you mean 'lr'?"
        ),
    ):
        check_config([base, override])
    # The one key without a default (config/defaults.yaml): the files given are named, not the defaults.
    base.write_text("threads: 2\n")
    override.write_text("device: cpu\n")
    with pytest.raises(ConfigCheckError, match=re.escape(f"{base} + {override}: config key 'experiments': is missing")):
        check_config([base, override])


def test_the_command_line_s_config_is_named_as_such(tmp_path):
    path = tmp_path / "my.yaml"
    path.write_text(TINY_TEXT)
    with pytest.raises(ConfigCheckError, match=r"^--config: config key 'device': 'tpu' is not one of"):
        check_config([path], {"device": "tpu"})
    assert check_config([path], {"threads": 2}).config["threads"] == 2


def test_a_cross_key_problem_names_its_file_and_line(tmp_path):
    path = tmp_path / "my.yaml"
    text = edited(TINY_TEXT, "    grid: {batch_size: [25, 50]}\n", "    grid: {batch_size: [25, 1000]}\n")
    path.write_text(text)
    with pytest.raises(ConfigCheckError) as caught:
        check_config([path])
    (problem,) = caught.value.problems
    assert problem.startswith(
        f"{path}, line {line_of(text, '    grid: {batch_size: [25, 1000]}')}: config key "
        "'experiments.batch_sizes.grid.batch_size': batch size 1000 is larger than"
    ), problem


def test_syntax_errors_and_files_that_are_no_mapping(tmp_path):
    path = tmp_path / "my.yaml"
    path.write_text("device: auto\nthreads: [1\n")
    with pytest.raises(ConfigCheckError, match=re.escape(f"{path}, line 3, column 1: not valid YAML: ")):
        check_config([path])
    path.write_text("- device\n")
    with pytest.raises(ConfigCheckError, match=re.escape(f"{path}: holds list, not keys and values")):
        check_config([path])


def test_merging_is_snakemake_s():
    from snakemake.utils import update_config

    base = {"a": {"b": 1, "c": [1, 2]}, "d": 1, "e": {"f": 1}}
    override = {"a": {"c": [3], "g": {"h": 1}}, "d": {"x": 1}, "e": 2}
    expected = copy.deepcopy(base)
    update_config(expected, override)
    assert merged(base, override) == expected
    assert base == {"a": {"b": 1, "c": [1, 2]}, "d": 1, "e": {"f": 1}}


def test_key_paths_round_trip():
    assert key_path("experiments.x.cases[0].lr") == ("experiments", "x", "cases", 0, "lr")
    assert key_path("grid.weight_decay[2]") == ("grid", "weight_decay", 2)


def test_pathgeo_check_config_prints_every_problem(tmp_path, capsys):
    path = tmp_path / "my.yaml"
    path.write_text(BROKEN)
    assert main([str(path)]) == 1
    printed = capsys.readouterr()
    assert printed.out == "" and len(printed.err.splitlines()) == 3
    path.write_text(TINY_TEXT)
    assert main([str(path)]) == 0
    checked = check_config([path])
    counts = len(checked.plan.experiments), len(checked.plan.runs), len(checked.config["figures"])
    assert capsys.readouterr().out == (
        "{}: ok ({} experiments, {} runs, {} figures; its tables and figures go to results/my/)\n".format(path, *counts)
    )


def test_the_compute_plan_names_the_file_once(tmp_path, capsys):
    """`python -m pathgeo.tools.compute_plan` runs the same check; it printed the file twice before a key given twice."""
    from pathgeo.tools import compute_plan

    path = tmp_path / "my.yaml"
    path.write_text(TINY_TEXT + "device: cpu\n")
    assert compute_plan.main(["--configfile", str(path)]) == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"{path}: key 'device' appears twice, on lines ") and line.count(str(path)) == 1
    path.write_text(BROKEN)
    assert compute_plan.main(["--configfile", str(path)]) == 1
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 3 and all(line.startswith(f"{path}, line ") and line.count(str(path)) == 1 for line in lines)


def test_the_own_model_example_plans_without_a_warning():
    """Issue 21: the own-model example printed `UserWarning: Initializing zero-element tensors is a no-op` (its
    model was sized with no classes: a tensors file's are in the file)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_config([REPO / "config" / "examples" / "own_model.yaml"])


# ---------------------------------------------------------------------------------------------------------
# Through the workflow


def dry_run(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    return run_snakemake(workdir, "-n", *args)


def test_the_workflow_prints_the_check_s_message_and_no_traceback(tmp_path):
    """Issue 21: schema errors ended with `File ".../rules/common.smk", line 40, in <module>` and named no file."""
    path = tmp_path / "my.yaml"
    path.write_text(BROKEN)
    result = dry_run(tmp_path / "work", "--configfile", str(path))
    assert result.returncode == 1
    with pytest.raises(ConfigCheckError) as caught:
        check_config([path])
    assert (result.stdout + result.stderr).strip() == str(caught.value)


def test_the_workflow_reads_numbers_as_written(tmp_path):
    """Issue 21: `weight_decay: [0, 1e-4, 1e-3]` failed with `'1e-3' is not of type 'number'`."""
    path = tmp_path / "my.yaml"
    path.write_text(
        edited(
            TINY_TEXT,
            "    grid: {batch_size: [25, 50]}\n",
            "    grid: {batch_size: [25, 50], weight_decay: [0, 1e-4, 1e-3]}\n",
        )
    )
    result = dry_run(tmp_path / "work", "--configfile", str(path))
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    # A run id names its weight decay where it is not 0.
    decays = set(re.findall(r"run=mnist1d-mlp8-momentum-lr[0-9.]+-(wd[0-9.e-]+-)?bs25-", result.stdout))
    assert decays == {"", "wd0.0001-", "wd0.001-"}


def test_the_command_line_s_config_still_wins(tmp_path):
    """The workflow replaces Snakemake's reading of the files with pathgeo's, and lays --config over it again."""
    chained = {}
    for limit in ("2880", "1"):
        result = dry_run(tmp_path / limit, "--configfile", str(TINY), "--config", f"max_job_minutes={limit}")
        assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
        chained[limit] = len(re.findall(r"^rule reference_part:$", result.stdout, re.MULTILINE))
    assert chained["2880"] == 0 < chained["1"], chained
    located = dry_run(tmp_path / "bad", "--configfile", str(TINY), "--config", "device=tpu")
    assert located.returncode == 1
    assert "--config: config key 'device': 'tpu' is not one of ['auto', 'cpu', 'cuda']" in located.stdout
