"""Reading config files strictly: a syntax error names its file, line and column, and a key given twice in
one mapping is refused with both lines.

Snakemake's own reading says only "Config file is not valid JSON or YAML", and YAML keeps the last of two
equal keys, so a second experiment of the same name would replace the first without a word. The workflow
reads its config files through here before Snakemake does.

    python -m pathgeo.config_files FILE...      checks files the same way (a --configfile, say)
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from pathlib import Path

import yaml


class ConfigFileError(ValueError):
    """A config file that is not valid YAML, or that gives one key twice. The message starts with the file."""


def check_config_file(path: str | Path) -> None:
    """Raise ConfigFileError if `path` has a YAML syntax error or a duplicated key anywhere."""
    path = Path(path)
    try:
        root = yaml.compose(path.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as error:
        raise ConfigFileError(f"{path}{_at(error.problem_mark or error.context_mark)}: not valid YAML: {_describe(error)}") from None
    except yaml.YAMLError as error:
        raise ConfigFileError(f"{path}: not valid YAML: {error}") from None
    if root is not None:
        _check_keys(path, root, [])


def _at(mark: yaml.error.Mark | None) -> str:
    return "" if mark is None else f", line {mark.line + 1}, column {mark.column + 1}"


def _describe(error: yaml.MarkedYAMLError) -> str:
    """What the parser expected, and where the construct it was reading began (a bracket opened lines before)."""
    context = error.context or ""
    if context and error.context_mark is not None and error.context_mark != error.problem_mark:
        context += _at(error.context_mark).replace(", line", " at line", 1)
    return "; ".join(part for part in (context, error.problem) if part)


def _check_keys(path: Path, node: yaml.Node, where: list[str]) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key, value in node.value:
            name = str(key.value)
            line = key.start_mark.line + 1
            if name in seen:
                dotted = ".".join([*where, name])
                raise ConfigFileError(
                    f"{path}: key '{dotted}' appears twice, on lines {seen[name]} and {line}; YAML would keep only "
                    "the second and drop the first without a word: rename or remove one"
                )
            seen[name] = line
            _check_keys(path, value, [*where, name])
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _check_keys(path, item, [*where[:-1], f"{where[-1]}[{i}]"] if where else [f"[{i}]"])


def check_config_files(paths: Iterable[str | Path]) -> None:
    for path in paths:
        check_config_file(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pathgeo.config_files", description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="+", metavar="FILE")
    paths = parser.parse_args(argv).paths
    failed = False
    for path in paths:
        try:
            check_config_file(path)
            print(f"{path}: ok")
        except (ConfigFileError, OSError) as error:
            print(error, file=sys.stderr)
            failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
