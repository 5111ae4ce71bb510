"""Every setting's default, in one file under every config: config/defaults.yaml.

A config holds only what it changes. The workflow reads the config files (the embedded config/config.yaml, or the
--configfile files) and lays them over the defaults: a key the files give wins, key by key in mappings, as Snakemake
lays one config file over another; a key they leave out takes its default. One exception keeps a dataset whole: an
entry under `datasets` that names its `kind` replaces the default entry of that name (a `tensors` file called
`mnist1d` takes none of MNIST-1D's parameters); one without a `kind` changes the default entry's parameters.

Torch-free, so that `pathgeo schema` can show the defaults without importing the registries.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

from pathgeo.planning.config_files import load_yaml

DEFAULTS_FILE = Path(__file__).resolve().parents[2] / "config" / "defaults.yaml"


@cache
def _read_defaults() -> dict[str, Any]:
    return load_yaml(DEFAULTS_FILE.read_text(encoding="utf-8"))


def config_defaults() -> dict[str, Any]:
    """config/defaults.yaml, a copy of its own for the caller to change."""
    return copy.deepcopy(_read_defaults())


def merged(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """`override` laid over `base` as Snakemake lays a config file over another: mappings key by key, anything
    else replaced whole."""
    result = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(result.get(key), Mapping):
            result[key] = merged(result[key], value)
        elif isinstance(value, Mapping):
            result[key] = merged({}, value)
        else:
            result[key] = value
    return result


def with_defaults(config: Mapping[str, Any]) -> dict[str, Any]:
    """The config laid over the defaults; a config that already has them comes back equal."""
    defaults = config_defaults()
    datasets = config.get("datasets")
    if isinstance(datasets, Mapping):
        for name, entry in datasets.items():
            if isinstance(entry, Mapping) and "kind" in entry:
                defaults["datasets"].pop(name, None)
    return merged(defaults, config)
