"""Reading config files: numbers as a person writes them, and strictly.

- `1e-3`, `5e4`, `1E+5`, `.5` are numbers. PyYAML follows YAML 1.1, whose floats need a dot and a signed exponent
  (`1.0e-3`), and reads `1e-3` as the string '1e-3'. `ConfigLoader` reads floats as YAML 1.2 does; pathgeo reads
  every YAML file through it, and the workflow puts what it reads into Snakemake's `config`.
- A syntax error names its file, line and column (Snakemake's reading says only "Config file is not valid JSON or
  YAML").
- A key given twice in one mapping is refused with both lines: YAML keeps the last of two equal keys, so a second
  experiment of the same name would replace the first without a word.

`pathgeo check-config FILE...` (pathgeo.planning.config_check) runs this reading and then the config's whole validation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

FLOAT_TAG = "tag:yaml.org,2002:float"
# YAML 1.2's core schema float, less its integers (PyYAML's int resolver, tried first, reads those): a dot or an
# exponent, whose sign is optional; no `_` (YAML 1.1's digit separator) and no base-60.
YAML12_FLOAT = re.compile(
    r"""^(?:[-+]?(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?
        |[-+]?[0-9]+[eE][-+]?[0-9]+
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
    re.VERBOSE,
)


class ConfigLoader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2's floats: `1e-3` is 0.001, not the string '1e-3'."""


ConfigLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != FLOAT_TAG]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
ConfigLoader.add_implicit_resolver(FLOAT_TAG, YAML12_FLOAT, list("-+0123456789."))


def load_yaml(text: str) -> Any:
    """YAML text as pathgeo reads it (`ConfigLoader`)."""
    return yaml.load(text, Loader=ConfigLoader)


class ConfigFileError(ValueError):
    """A config file that cannot be read, is not valid YAML, or gives one key twice. The message starts with the
    file."""


# A key's place in a config: mapping keys and list indices from the top, ("experiments", "x", "cases", 0, "lr").
KeyPath = tuple[str | int, ...]


@dataclass(frozen=True)
class ConfigFile:
    """A config file as read: its path, its content, and the line of each key and list item in it."""

    path: Path
    content: Any
    lines: dict[KeyPath, int]


def read_config_file(path: str | Path) -> ConfigFile:
    """The file read strictly; ConfigFileError if it cannot be read, has a YAML syntax error, or has a key twice."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigFileError(f"{path}: cannot be read: {error.strerror or error}") from None
    try:
        root = yaml.compose(text, Loader=ConfigLoader)
    except yaml.MarkedYAMLError as error:
        raise ConfigFileError(
            f"{path}{_at(error.problem_mark or error.context_mark)}: not valid YAML: {_describe(error)}"
        ) from None
    except yaml.YAMLError as error:
        raise ConfigFileError(f"{path}: not valid YAML: {error}") from None
    lines: dict[KeyPath, int] = {}
    if root is not None:
        _index_keys(path, root, (), lines)
    return ConfigFile(path, load_yaml(text), lines)


def _at(mark: yaml.error.Mark | None) -> str:
    return "" if mark is None else f", line {mark.line + 1}, column {mark.column + 1}"


def _describe(error: yaml.MarkedYAMLError) -> str:
    """What the parser expected, and where the construct it was reading began (a bracket opened lines before)."""
    context = error.context or ""
    if context and error.context_mark is not None and error.context_mark != error.problem_mark:
        context += _at(error.context_mark).replace(", line", " at line", 1)
    return "; ".join(part for part in (context, error.problem) if part)


def dotted(path: KeyPath) -> str:
    """A key path as errors name it: experiments.x.cases[0].lr; the whole config is '(top level)'."""
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in path).lstrip(".") or "(top level)"


def _index_keys(path: Path, node: yaml.Node, where: KeyPath, lines: dict[KeyPath, int]) -> None:
    """Record the line of every key and list item under `node` in `lines`; refuse a key given twice."""
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key, value in node.value:
            name = str(key.value)
            line = key.start_mark.line + 1
            if name in seen:
                raise ConfigFileError(
                    f"{path}: key '{dotted((*where, name))}' appears twice, on lines {seen[name]} and {line}; YAML "
                    "would keep only the second and drop the first without a word: rename or remove one"
                )
            seen[name] = line
            lines[(*where, name)] = line
            _index_keys(path, value, (*where, name), lines)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines[(*where, i)] = item.start_mark.line + 1
            _index_keys(path, item, (*where, i), lines)
