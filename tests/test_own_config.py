"""Issue 21's acceptance, end to end: a ten-line config of one's own (two experiments, one figure coloured by
weight decay) runs beside the default, and leaves the default's claims table, figures and report byte-identical;
each report packs its own config's outputs only."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import polars as pl
import pytest
import yaml
from test_outputs import WEIGHT_DECAY
from workflow_runner import DEFAULT_CONFIG as DEFAULT
from workflow_runner import run_snakemake


def run(workdir: Path, *args: str) -> None:
    result = run_snakemake(workdir, *args, timeout=1800)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]


def outputs(folder: Path) -> dict[str, bytes]:
    """Every file of a config's output folder but the record of its config files, by path."""
    return {
        path.relative_to(folder).as_posix(): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name != "config.json"
    }


def report(workdir: Path, configfile: Path, name: str) -> dict[str, bytes]:
    """The report of a config as `snakemake --report` packs it: its members by name, below the folder named after
    the zip file."""
    target = workdir / f"{name}.zip"
    run(workdir, "--configfile", str(configfile), "--report", str(target))
    with zipfile.ZipFile(io.BytesIO(target.read_bytes())) as packed:
        return {member.split("/", 1)[1]: packed.read(member) for member in packed.namelist()}


@pytest.mark.slow
def test_a_ten_line_config_runs_beside_the_default_and_leaves_its_outputs_byte_identical(default_run: Path) -> None:
    default = default_run / "results" / "default"
    before, report_before = outputs(default), report(default_run, DEFAULT, "default-before")
    assert "tables/claims.csv" in before and "figures/gamma_by_optimizer.svg" in before

    sweep = default_run / "my_sweep.yaml"
    sweep.write_text(WEIGHT_DECAY)
    assert len(WEIGHT_DECAY.splitlines()) <= 10
    run(default_run, "--configfile", str(sweep), "--cores", "2")

    mine = default_run / "results" / "my_sweep"
    claims = pl.read_csv(mine / "tables" / "claims.csv")
    assert sorted(claims.select("optimizer", "weight_decay").iter_rows()) == [
        (optimizer, wd) for optimizer in ("adam", "momentum") for wd in (0.0, 1e-4, 1e-3)
    ]
    assert {p.name for p in (mine / "figures").iterdir()} == {"gamma_by_weight_decay.html", "gamma_by_weight_decay.svg"}
    svg = (mine / "figures" / "gamma_by_weight_decay.svg").read_text()
    assert "weight decay" in svg and "SGD with momentum" in svg and "Adam" in svg

    assert outputs(default) == before
    assert report(default_run, DEFAULT, "default-after") == report_before
    # The sweep's report holds its figure and tables, none of the default's.
    packed = report(default_run, sweep, "my_sweep")
    files = {Path(member).name for member in packed}
    assert {"gamma_by_weight_decay.svg", "gamma_by_weight_decay.html", "claims.csv", "zigzag.csv"} <= files
    assert (
        not {
            f"{name}.{suffix}" for name in yaml.safe_load(DEFAULT.read_text())["figures"] for suffix in ("svg", "html")
        }
        & files
    )
