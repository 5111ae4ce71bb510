"""The whole check of config files: what `pathgeo check-config FILE...` runs, and what the workflow runs before it
plans anything (the Snakefile), so both say the same.

1. Each file is read strictly (pathgeo.planning.config_files): a YAML syntax error with its line and column, a key given
   twice; numbers as a person writes them (`1e-3`).
2. The files are merged as `snakemake --configfile FILE...` merges them, later files winning key by key, and then
   the command line's `--config KEY=VALUE`; the result is laid over every setting's default
   (pathgeo.planning.config_defaults: config/defaults.yaml), so a file holds only what it changes.
3. The JSON schema (pathgeo.planning.schema): every violation at once, an unknown key with the known key it is closest to.
4. The checks that need two keys at once: the plan that the workflow runs (pathgeo.planning.config.build_plan, sized by
   pathgeo.planning.sizing.sized_plan for the config's device and its site's time limit).

Every problem is one line that names the file, the line of the key where the file has it, and the key.

    pathgeo check-config FILE...        (python -m pathgeo.planning.config_check)
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pathgeo.planning import sizing
from pathgeo.planning.config import Plan, max_job_minutes
from pathgeo.planning.config_defaults import DEFAULTS_FILE, merged, with_defaults
from pathgeo.planning.config_errors import ConfigError, schema_errors
from pathgeo.planning.config_files import ConfigFile, ConfigFileError, KeyPath, read_config_file
from pathgeo.planning.outputs import OutputsError, config_name, output_folder

# The embedded default: the config the workflow runs without a --configfile.
DEFAULT_CONFIG = DEFAULTS_FILE.parent / "config.yaml"
# Problems named by the command line's --config rather than a file.
COMMAND_LINE = "--config"


class ConfigCheckError(ValueError):
    """What is wrong with a config, one line per problem, each naming the file and the key."""

    def __init__(self, problems: Sequence[str]):
        super().__init__("\n".join(problems))
        self.problems = tuple(problems)


@dataclass(frozen=True)
class CheckedConfig:
    """A config that passed the check, and the plan the workflow runs for it."""

    config: dict[str, Any]
    plan: Plan


def sized_for(config: Mapping[str, Any]) -> str:
    """What the jobs' memory and time are sized for: the CPU where the config keeps the jobs there, else an A100."""
    return "cpu" if config["device"] == "cpu" else "a100"


def data_root(config: Mapping[str, Any]) -> str:
    """Where the external datasets live (config key data_root)."""
    return with_defaults(config)["data_root"]


def workflow_plan(config: dict[str, Any]) -> Plan:
    """The plan the workflow runs: every run refused where its model cannot take its data, every segment short
    enough for one job within the site's time limit (pathgeo.planning.sizing.sized_plan)."""
    return sizing.sized_plan(config, max_job_minutes(config), sized_for(config), config["threads"], data_root(config))


def check_config(paths: Sequence[str | Path], overrides: Mapping[str, Any] | None = None) -> CheckedConfig:
    """The config of these files and --config overrides over the defaults, checked whole; ConfigCheckError lists
    what is wrong."""
    try:
        files = [read_config_file(path) for path in paths]
        defaults = read_config_file(DEFAULTS_FILE)
    except ConfigFileError as error:
        raise ConfigCheckError([str(error)]) from None
    problems = [
        f"{file.path}: holds {type(file.content).__name__}, not keys and values (experiments:, figures:, ...)"
        for file in files
        if not isinstance(file.content, (dict, type(None)))
    ]
    if problems:
        raise ConfigCheckError(problems)
    given: dict[str, Any] = {}
    for content in [file.content or {} for file in files] + [dict(overrides or {})]:
        given = merged(given, content)
    config = with_defaults(given)
    where = Locator([defaults, *files], dict(overrides or {}), len(files))
    errors = schema_errors(config)
    if errors:
        raise ConfigCheckError([where.located(error) for error in errors])
    try:
        plan = workflow_plan(config)
    except ConfigError as error:
        raise ConfigCheckError([where.located(error)]) from None
    return CheckedConfig(config, plan)


@dataclass(frozen=True)
class Locator:
    """Which file, and which line of it, gave a key: the last of the files and the --config overrides that has it
    or the nearest key above it. The defaults file comes first among `files`, the user's `given` last ones after
    it: a key no file has (a required one) is named by those."""

    files: Sequence[ConfigFile]
    overrides: Mapping[str, Any]
    given: int

    def located(self, error: ConfigError) -> str:
        path = key_path(error.key)
        for depth in range(len(path), 0, -1):
            prefix = path[:depth]
            if _has(self.overrides, prefix):
                return f"{COMMAND_LINE}: {error}"
            for file in reversed(self.files):
                if prefix in file.lines:
                    return f"{file.path}, line {file.lines[prefix]}: {error}"
        users = self.files[len(self.files) - self.given :] if self.given else []
        return f"{' + '.join(str(file.path) for file in users) or COMMAND_LINE}: {error}"


def key_path(key: str) -> KeyPath:
    """A dotted key as errors name it, experiments.x.cases[0].lr, as its parts."""
    return tuple(int(part[1:-1]) if part.startswith("[") else part for part in re.findall(r"\[\d+\]|[^.\[\]]+", key))


def _has(tree: Any, path: KeyPath) -> bool:
    for part in path:
        if not isinstance(tree, Mapping) or part not in tree:
            return False
        tree = tree[part]
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="pathgeo check-config",
        description="Check config files as the workflow does before it plans: YAML syntax, keys given twice, the "
        "schema (every violation, with 'did you mean' for an unknown key), the checks that need two keys at "
        "once, and the config's name (the folder of its outputs, results/NAME/). Several files are one config, as "
        "for `snakemake --configfile FILE...`: later files win key by key, over config/defaults.yaml.",
        epilog="Also python -m pathgeo.planning.config_check. pathgeo schema SECTION shows what a section's keys take.",
    )
    parser.add_argument("paths", nargs="+", metavar="FILE", help="a config file (YAML)")
    paths = parser.parse_args(argv).paths
    try:
        checked = check_config(paths)
        name = config_name(paths, DEFAULT_CONFIG)
    except (ConfigCheckError, OutputsError) as error:
        print(error, file=sys.stderr)
        return 1
    counts = {
        "experiment": len(checked.plan.experiments),
        "run": len(checked.plan.runs),
        "figure": len(checked.config["figures"]),
    }
    print(
        f"{' + '.join(paths)}: ok ({', '.join(f'{n} {word}' + 's' * (n != 1) for word, n in counts.items())}; "
        f"its tables and figures go to {output_folder(name)}/)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
