"""The config's JSON schema: the structure in config/schema/config.schema.yaml, completed by the registries.

The registries add what they own, so that adding a model, an optimizer, a dataset kind or a plot never touches
the schema file: the enums of `model`, `optimizer`, `precision`, a dataset's `kind` and a figure's `plot`, and each
dataset kind's parameters and each plot's options (one `if kind/plot is X then ...` clause per entry). A `model` or
`optimizer` is either a registry name or a plug-in's `<module>:<name>` (pathgeo.plugins).
`python -m pathgeo.schema` prints the completed schema.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

from pathgeo.data import DatasetKind, kinds
from pathgeo.figures import Plot, plots
from pathgeo.models import models
from pathgeo.optimizers import OPTIMIZERS, UNSUPPORTED
from pathgeo.plugins import PATTERN
from pathgeo.precision import PRECISIONS

STRUCTURE = Path(__file__).resolve().parent.parent / "config" / "schema" / "config.schema.yaml"


def _plugin(example: str) -> dict[str, Any]:
    return {"pattern": PATTERN, "description": f"a plug-in, <module>:<name> (e.g. {example})"}


def _kind_clause(kind: DatasetKind) -> dict[str, Any]:
    return {
        "if": {"properties": {"kind": {"const": kind.name}}},
        "then": {
            "additionalProperties": False,
            "required": list(kind.required),
            "properties": {"kind": {"type": "string"}, **kind.params},
        },
    }


def _plot_clause(plot: Plot, shared: list[str]) -> dict[str, Any]:
    """A figure of this plot may set the keys every figure has (`shared`) and the plot's options."""
    return {
        "if": {"required": ["plot"], "properties": {"plot": {"const": plot.name}}},
        "then": {"additionalProperties": False, "properties": {**{key: {} for key in shared}, **plot.options}},
    }


def config_schema() -> dict[str, Any]:
    schema = yaml.safe_load(STRUCTURE.read_text())
    run_fields = schema["$defs"]["run_fields"]["properties"]
    run_fields["model"]["anyOf"] = [{"enum": list(models())}, _plugin("torchvision:resnet18 or my_model:build")]
    # torch.optim's optimizers that the loop cannot drive pass too, so that the plan says why it refuses them.
    optimizers = sorted({*OPTIMIZERS, *UNSUPPORTED})
    run_fields["optimizer"]["anyOf"] = [{"enum": optimizers}, _plugin("my_optimizer:Lion")]
    run_fields["precision"]["enum"] = list(PRECISIONS)
    dataset = schema["properties"]["datasets"]["additionalProperties"]
    dataset["properties"]["kind"]["enum"] = list(kinds())
    dataset["allOf"] = [_kind_clause(kind) for kind in kinds().values()]
    figure = schema["properties"]["figures"]["additionalProperties"]
    figure["properties"]["plot"]["enum"] = list(plots())
    figure["allOf"] = [_plot_clause(plot, list(figure["properties"])) for plot in plots().values()]
    schema["$defs"]["case"] = _case(schema)
    return schema


def _case(schema: dict[str, Any]) -> dict[str, Any]:
    """An experiment's case: the run fields, and the run settings of the case's own (pathgeo.config.RUN_SETTINGS:
    checkpoint spacing, validation interval), instead of its experiment's or the top-level ones."""
    run_fields = schema["$defs"]["run_fields"]
    own = {name: {**schema["properties"][name], "description": f"this case's {name}"}
           for name in ("segment_epochs", "validate_every")}
    return {**run_fields, "properties": {**run_fields["properties"], **own}}


def write_config_schema(path: Path) -> str:
    """The completed schema as a YAML file, for Snakemake's `validate` (which reads a path); returns the path."""
    Path(path).write_text(yaml.safe_dump(config_schema(), sort_keys=False, allow_unicode=True))
    return str(path)


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(prog="python -m pathgeo.schema", description="Print the config's completed JSON schema "
                            "(YAML).").parse_args(argv)
    print(yaml.safe_dump(config_schema(), sort_keys=False, allow_unicode=True), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
