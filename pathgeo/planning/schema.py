"""The config's JSON schema: the structure in config/schema/config.schema.yaml, completed by the registries.

The registries add what they own, so that adding a model, an optimizer, a schedule, a dataset kind or a plot never
touches the schema file: the enums of `model`, `optimizer`, `precision`, `schedule`, a dataset's `kind` and a figure's
`plot`, and each dataset kind's parameters and each plot's options (one `if kind/plot is X then ...` clause per
entry). A `model` or `optimizer` is either a registry name or a plug-in's `<module>:<name>` (pathgeo.plugins).

    pathgeo schema                   the config's sections, one line each
    pathgeo schema SECTION           one section, e.g. experiments, defaults.lr, figures.gamma_band (a figure of that
                                     plot), datasets.mnist1d (a dataset of that kind), with each key's default
                                     (config/defaults.yaml)
    pathgeo schema --json            the whole completed schema (JSON Schema, for an editor's YAML support)

The registries import torch and Altair (seconds); the command keeps the completed schema in a cache keyed by
pathgeo's source and torch's version, so that it waits for them once per change of either.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import json
import sys
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from pathgeo.atomic import cache_folder, write_with
from pathgeo.planning.config_defaults import config_defaults
from pathgeo.planning.config_files import load_yaml

PACKAGE = Path(__file__).resolve().parents[1]
STRUCTURE = PACKAGE.parent / "config" / "schema" / "config.schema.yaml"


def _plugin(example: str) -> dict[str, Any]:
    from pathgeo.plugins import PATTERN

    return {"pattern": PATTERN, "description": f"a plug-in, <module>:<name> (e.g. {example})"}


def _kind_clause(kind) -> dict[str, Any]:
    return {
        "if": {"properties": {"kind": {"const": kind.name}}},
        "then": {
            "additionalProperties": False,
            "required": list(kind.required),
            "properties": {"kind": {"type": "string"}, **kind.params},
        },
    }


def _plot_clause(plot, shared: list[str]) -> dict[str, Any]:
    """A figure of this plot may set the keys every figure has (`shared`) and the plot's options."""
    return {
        "if": {"required": ["plot"], "properties": {"plot": {"const": plot.name}}},
        "then": {"additionalProperties": False, "properties": {**{key: {} for key in shared}, **plot.options}},
    }


def config_schema() -> dict[str, Any]:
    # The registries are imported here, not with this module: they import torch and Altair.
    from pathgeo.analysis.figures import plots
    from pathgeo.training.data import kinds
    from pathgeo.training.models import models
    from pathgeo.training.optimizers import OPTIMIZERS, UNSUPPORTED
    from pathgeo.training.precision import PRECISIONS
    from pathgeo.training.schedules import schedules

    schema = load_yaml(STRUCTURE.read_text())
    run_fields = schema["$defs"]["run_fields"]["properties"]
    run_fields["model"]["anyOf"] = [{"enum": list(models())}, _plugin("torchvision:resnet18 or my_model:build")]
    # torch.optim's optimizers that the loop cannot drive pass too, so that the plan says why it refuses them.
    optimizers = sorted({*OPTIMIZERS, *UNSUPPORTED})
    run_fields["optimizer"]["anyOf"] = [{"enum": optimizers}, _plugin("my_optimizer:Lion")]
    run_fields["precision"]["enum"] = list(PRECISIONS)
    run_fields["schedule"]["enum"] = list(schedules())
    dataset = schema["properties"]["datasets"]["additionalProperties"]
    dataset["properties"]["kind"]["enum"] = list(kinds())
    dataset["allOf"] = [_kind_clause(kind) for kind in kinds().values()]
    figure = schema["properties"]["figures"]["additionalProperties"]
    figure["properties"]["plot"]["enum"] = list(plots())
    figure["allOf"] = [_plot_clause(plot, list(figure["properties"])) for plot in plots().values()]
    schema["$defs"]["case"] = _case(schema)
    return schema


def _case(schema: dict[str, Any]) -> dict[str, Any]:
    """An experiment's case: the run fields (by reference), and the run settings of the case's own
    (pathgeo.planning.config.RUN_SETTINGS: checkpoint spacing, validation interval), instead of its experiment's or the
    top-level ones."""
    run_fields = schema["$defs"]["run_fields"]
    fields = {name: {"$ref": f"#/$defs/run_fields/properties/{name}"} for name in run_fields["properties"]}
    own = {
        name: {**schema["properties"][name], "description": f"this case's {name}"}
        for name in ("segment_epochs", "validate_every")
    }
    return {**run_fields, "properties": {**fields, **own}}


# ---------------------------------------------------------------------------------------------------------
# The command: the completed schema from its cache, and one section of it for a person


def source_key(package: Path = PACKAGE, structure: Path = STRUCTURE) -> str:
    """What the completed schema is a function of: pathgeo's source (the registries), the schema file, and the
    versions of torch and torchvision (torch.optim's optimizers are the registry's)."""
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        digest.update(path.relative_to(package).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    digest.update(structure.read_bytes())
    for distribution in ("torch", "torchvision"):
        try:
            digest.update(importlib.metadata.version(distribution).encode())
        except importlib.metadata.PackageNotFoundError:
            digest.update(b"-")
    return digest.hexdigest()[:16]


def cached_config_schema() -> dict[str, Any]:
    """`config_schema()`, from the cache where this source made it before; a cache that cannot be written is
    only slower."""
    path = cache_folder() / f"schema-{source_key()}.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        pass
    text = json.dumps(config_schema(), ensure_ascii=False)
    try:
        for stale in path.parent.glob("schema-*.json"):
            stale.unlink()
        write_with(path, lambda tmp: tmp.write_text(text))
    except OSError:
        pass
    return json.loads(text)


class SectionError(KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


def section(schema: dict[str, Any], name: str) -> dict[str, Any]:
    """The schema of one section of the config: `experiments`, `defaults.lr`; `figures.PLOT` a figure of that plot,
    `datasets.KIND` a dataset of that kind (their `if ... then` clause applied)."""
    node: dict[str, Any] = schema
    walked: list[str] = []
    for part in name.split("."):
        node = _resolved(schema, node)
        properties = node.get("properties", {})
        if part in properties:
            node = properties[part]
        elif isinstance(node.get("additionalProperties"), dict):
            node = _selected(_resolved(schema, node["additionalProperties"]), part)
        else:
            where = f"section '{'.'.join(walked)}'" if walked else "the config"
            known = ", ".join(properties) or "no keys"
            raise SectionError(f"no section '{name}': {where} has {known}")
        walked.append(part)
    return _resolved(schema, node)


def _resolved(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """The node with its `$ref` (a '#/...' pointer) replaced by what it points to, its other keys kept."""
    if "$ref" not in node:
        return node
    rest = {key: value for key, value in node.items() if key != "$ref"}
    return {**_resolved(schema, _target(schema, node["$ref"])), **rest}


def _target(schema: dict[str, Any], ref: str) -> dict[str, Any]:
    node: Any = schema
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node


def _clauses(node: Mapping[str, Any]) -> tuple[str, dict[str, dict[str, Any]]] | None:
    """A node's `if KEY is X then ...` clauses (a dataset's kinds, a figure's plots): KEY, and each X's `then`."""
    by: dict[str, dict[str, Any]] = {}
    key = None
    for clause in node.get("allOf", []):
        for key, condition in clause.get("if", {}).get("properties", {}).items():
            if "const" in condition:
                by[condition["const"]] = clause["then"]
    return (key, by) if by and key else None


def _selected(node: dict[str, Any], name: str) -> dict[str, Any]:
    """A mapping's entry called `name`; for a dataset or a figure whose kind or plot is `name`, with that clause's
    keys."""
    clauses = _clauses(node)
    if clauses is None or name not in clauses[1]:
        return node
    key, by = clauses
    general = {k: v for k, v in node.items() if k != "allOf"}
    then = by[name]
    own = {k: v for k, v in then.get("properties", {}).items() if k not in general.get("properties", {})}
    return {
        **general,
        "required": sorted({*general.get("required", []), *then.get("required", [])}),
        "properties": {**general.get("properties", {}), key: {"const": name}, **own},
        "additionalProperties": then.get("additionalProperties", True),
    }


def _ref_sections(schema: dict[str, Any]) -> dict[str, str]:
    """The sections that other parts of the schema refer to (`$ref`), by the reference: the run fields are
    `defaults`, which an experiment's `set`, its cases and its grid refer to."""
    sections: dict[str, str] = {}
    for name, node in schema.get("properties", {}).items():
        if "$ref" in node:
            sections[node["$ref"]] = name
            for key in _target(schema, node["$ref"]).get("properties", {}):
                sections[f"{node['$ref']}/properties/{key}"] = f"{name}.{key}"
    return sections


def readable(schema: dict[str, Any], name: str) -> Any:
    """Section `name` for a person: a reference to another section is a pointer to it (`see: pathgeo schema
    defaults.lr`), the if-then clauses of datasets and figures a pointer to each kind's or plot's own section."""
    sections = _ref_sections(schema)

    def shown(node: Any) -> Any:
        if isinstance(node, list):
            return [shown(item) for item in node]
        if not isinstance(node, dict):
            return node
        pointer = sections.get(node["$ref"]) if list(node) == ["$ref"] else None
        if pointer and pointer != name and not pointer.startswith(f"{name}."):
            return {"see": f"pathgeo schema {pointer}"}
        node = _resolved(schema, node)
        clauses = _clauses(node)
        if clauses:
            key, by = clauses
            entries = f"pathgeo schema {name.split('.')[0]}.<{key}>"
            node = {**{k: v for k, v in node.items() if k != "allOf"}, f"keys by {key}": f"{entries} ({', '.join(by)})"}
        return {key: shown(value) for key, value in node.items()}

    return shown(section(schema, name))


# Sections whose entries the config names (a dataset, a figure): `datasets.X` is a dataset of kind X, whatever the
# default entry called X holds.
NAMED_ENTRIES = ("datasets", "figures")


def annotated_with_defaults(shown: Any, name: str, defaults: Any) -> Any:
    """Section `name` as `readable` shows it, with the default (`defaults`: config/defaults.yaml) of each of its keys
    beside what the key takes, or of the section itself where it has no keys."""
    parts = name.split(".")
    if parts[0] in NAMED_ENTRIES and len(parts) > 1:
        return shown
    for part in parts:
        if not isinstance(defaults, Mapping) or part not in defaults:
            return shown
        defaults = defaults[part]
    if not isinstance(shown, dict):
        return shown
    properties = shown.get("properties")
    if isinstance(properties, dict) and isinstance(defaults, Mapping):
        keyed = {
            key: {**value, "default": defaults[key]} if key in defaults and isinstance(value, dict) else value
            for key, value in properties.items()
        }
        return {**shown, "properties": keyed}
    return {**shown, "default": defaults}


class _Dumper(yaml.SafeDumper):
    """Every repeated part written out, never as an anchor and an alias (`color: *id002`)."""

    def ignore_aliases(self, data: Any) -> bool:
        return True

    def represent_list(self, data: list) -> yaml.Node:
        """A list of plain values on one line: `enum: [auto, cpu, cuda]`."""
        plain = all(isinstance(item, (str, int, float, bool, type(None))) for item in data)
        return self.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=plain)


_Dumper.add_representer(list, _Dumper.represent_list)


def as_yaml(obj: Any) -> str:
    return yaml.dump(obj, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=120)


def overview(schema: dict[str, Any]) -> str:
    """The config's sections, one line each: the key, whether it is required, what it is."""
    required = set(schema.get("required", []))
    properties = schema["properties"]
    width = max(map(len, properties)) + 2
    lines = ["The config's sections (* required). pathgeo schema SECTION shows one, SECTION.KEY one key of it:"]
    for name, node in properties.items():
        node = _resolved(schema, node)
        head = f"  {'*' if name in required else ' '} {name.ljust(width)}"
        what = node.get("description") or f"pathgeo schema {name}"
        lines.append(head + textwrap.shorten(what, 120 - len(head), placeholder=" ..."))
        entry = node.get("additionalProperties")
        clauses = _clauses(entry) if isinstance(entry, dict) else None
        if clauses:
            key, by = clauses
            lines.append(
                textwrap.fill(
                    f"{name}.{key.upper()}: an entry of that {key}; {key}s: {', '.join(by)}",
                    118,
                    initial_indent=" " * (width + 4),
                    subsequent_indent=" " * (width + 6),
                )
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="pathgeo schema",
        description="What the config's keys take: its JSON schema (config/schema/config.schema.yaml, completed by "
        "the registries), one section at a time.",
        epilog="Examples: pathgeo schema experiments; pathgeo schema defaults.weight_decay; pathgeo schema "
        "figures.gamma_band (the options of that plot); pathgeo schema datasets.tensors (that kind's parameters). "
        "Also python -m pathgeo.planning.schema.",
    )
    parser.add_argument("section", nargs="?", help="a section, KEY or KEY.KEY...; none: the list of sections")
    parser.add_argument("--json", action="store_true", help="print the whole completed schema as JSON")
    args = parser.parse_args(argv)
    schema = cached_config_schema()
    if args.json:
        print(json.dumps(schema, indent=1, ensure_ascii=False))
    elif args.section is None:
        print(overview(schema), end="")
    else:
        try:
            shown = annotated_with_defaults(readable(schema, args.section), args.section, config_defaults())
            print(f"# {args.section}\n{as_yaml(shown)}", end="")
        except SectionError as error:
            print(f"pathgeo schema: {error}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
