"""Where a config's outputs go, so that configs run one after the other leave each other's outputs intact.

Runs are shared: every run lives under results/runs/<run_id>/, named by the hash of its spec, so a run that two
configs plan trains once (results/data/ and results/vega/ are shared too). What a config makes of its runs is its
own: its tables, claims, zigzag findings and figures lie in its output folder, results/<config name>/, and the logs
of those jobs in logs/<config name>/; `snakemake --report` packs exactly that folder's figures and tables.

A config's name is the stem of its --configfile (results/my_sweep/ for my_sweep.yaml), `default` for the embedded
config/config.yaml (given or not), and the stems joined by `+` for several files (results/cifar10+site/ for
--configfile config/presets/cifar10.yaml site.yaml), so that a config layered over another never writes into the
other's folder. A name is refused where it would take another's folder: a file called default.yaml, a stem that
names a shared folder (runs, data, vega) or holds a `+`, and a second file of the same name in another folder (the
first run of a config records its files in results/<name>/config.json). The command line's --config changes a
config in place: its outputs stay in the config's folder.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pathgeo.atomic import write_json

RESULTS = Path("results")
LOGS = Path("logs")
# The folders under results/ that every config shares.
SHARED = ("runs", "data", "vega")
# The name of the embedded default's outputs.
DEFAULT_NAME = "default"
# The record of the config files whose outputs a folder holds, with the config they made (provenance).
RECORD = "config.json"
# A stem that is one path component on every file system, and cannot be read as two joined names.
STEM = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
JOIN = "+"
# How the record names the embedded default: whichever checkout's workflow runs it.
EMBEDDED = "the workflow's config/config.yaml"


class OutputsError(ValueError):
    """A config whose name would take another config's output folder. The message says what to rename."""


def output_folder(name: str, results: str | os.PathLike = RESULTS) -> Path:
    """The folder of a config's tables (tables/), claims and findings (tables/) and figures (figures/)."""
    return Path(results) / name


def log_folder(name: str) -> Path:
    """The folder of the logs of a config's own jobs (aggregation, claims, findings, figures)."""
    return LOGS / name


def config_name(paths: Sequence[str | os.PathLike], default_config: str | os.PathLike) -> str:
    """The name of the config of these files (the embedded default where `paths` is empty); OutputsError where it
    would take another config's folder."""
    if not paths or all(_same_file(path, default_config) for path in paths):
        return DEFAULT_NAME
    stems = [DEFAULT_NAME if _same_file(path, default_config) else Path(path).stem for path in paths]
    for path, stem in zip(paths, stems):
        problem = _stem_problem(stem, _same_file(path, default_config))
        if problem:
            raise OutputsError(
                f"{path}: its outputs would go to {output_folder(stem)}/, {problem}: rename the file (its outputs go "
                "to results/<the file's name without .yaml>/)"
            )
    return JOIN.join(stems)


def _stem_problem(stem: str, embedded: bool) -> str | None:
    if stem == DEFAULT_NAME and not embedded:
        return "the embedded default's (config/config.yaml)"
    if stem in SHARED:
        return f"a folder that every config shares (results/{', results/'.join(SHARED)})"
    if not STEM.fullmatch(stem):
        return f"but a config's name is letters, digits, '_', '.' and '-' (a '{JOIN}' joins the names of several files)"
    return None


def _same_file(path: str | os.PathLike, other: str | os.PathLike) -> bool:
    return Path(path).resolve() == Path(other).resolve()


def config_sources(paths: Sequence[str | os.PathLike], default_config: str | os.PathLike) -> list[str]:
    """How the record names the config files: below the working directory by their relative path (a project
    folder may move), elsewhere by their absolute one; the embedded default as such."""
    here = Path.cwd().resolve()
    sources = []
    for path in paths or [default_config]:
        resolved = Path(path).resolve()
        if _same_file(resolved, default_config):
            sources.append(EMBEDDED)
        elif resolved.is_relative_to(here):
            sources.append(resolved.relative_to(here).as_posix())
        else:
            sources.append(str(resolved))
    return sources


def owner_problem(name: str, sources: Sequence[str]) -> str | None:
    """Why these config files may not write into results/<name>/: it holds the outputs of other files of the same
    name (its record says so); None where it is theirs or new."""
    record = output_folder(name) / RECORD
    try:
        owners = json.loads(record.read_text(encoding="utf-8"))["config_files"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if list(owners) == list(sources):
        return None
    return (
        f"{output_folder(name)}/ holds the outputs of config {' + '.join(owners)} ({record}), and config "
        f"{' + '.join(sources)} has the same name, {name}: rename one of the files (its outputs go to results/<its "
        f"name without .yaml>/), or, where {' + '.join(owners)} was moved or renamed to this one, delete {record}"
    )


def record_owner(name: str, sources: Sequence[str], config: Mapping[str, Any]) -> None:
    """Record in results/<name>/config.json which config files made its outputs, with the config they gave (the
    defaults laid under it)."""
    write_json(output_folder(name) / RECORD, {"config_files": list(sources), "config": config})
