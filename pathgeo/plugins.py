"""The user's own code, named in the config as `<module>:<name>`: a model builder (`model: my_model:build`) or an
optimizer class (`optimizer: my_optim:Lion`).

The module is imported from the working directory first (where `snakemake` runs; every job, local or on SLURM,
runs there too), then from the usual `sys.path`. Snakemake starts a job's script from `.snakemake/scripts/`, so
the working directory is not on `sys.path` by itself: `resolve` puts it there. A dotted module
(`config.examples.my_model`) is a package path below the working directory or the workflow's folder.

Errors are `PluginError`s that say what to do; the config turns them into errors naming the key.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import sys
from pathlib import Path
from typing import Any

# `<module>:<name>`: a dotted module path, a colon, an attribute of that module.
PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$"


class PluginError(ValueError):
    """A `<module>:<name>` that cannot be used; the message names it and says what to do."""


def is_plugin(name: str) -> bool:
    return ":" in name


def split(reference: str) -> tuple[str, str]:
    if not re.fullmatch(PATTERN, reference):
        raise PluginError(f"'{reference}' is not of the form <module>:<name> (e.g. my_model:build)")
    module, name = reference.split(":")
    return module, name


def slug(reference: str) -> str:
    """How a run id names it: the module's last part and the name, `my_model:build` -> `my_model.build`."""
    module, name = reference.split(":", 1)
    return f"{module.rsplit('.', 1)[-1]}.{name}"


def _search_working_directory() -> str:
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    return cwd


def import_module(module: str, reference: str) -> Any:
    cwd = _search_working_directory()
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as error:
        missing = error.name or module
        if missing != module and not module.startswith(missing + "."):
            raise PluginError(
                f"module '{module}' of '{reference}' imports '{missing}', which is not installed"
            ) from error
        raise PluginError(
            f"cannot import module '{module}' of '{reference}': put {module.replace('.', '/')}.py in the working "
            f"directory ({cwd}), or make it importable (PYTHONPATH)"
        ) from error
    except Exception as error:
        raise PluginError(
            f"importing module '{module}' of '{reference}' failed: {type(error).__name__}: {error}"
        ) from error


def resolve(reference: str) -> Any:
    """The object `<module>:<name>` names."""
    module_name, name = split(reference)
    module = import_module(module_name, reference)
    if not hasattr(module, name):
        defined = sorted(n for n, v in vars(module).items() if callable(v) and not n.startswith("_"))
        raise PluginError(f"module '{module_name}' ({module.__file__}) has no '{name}'; it defines {defined}")
    return getattr(module, name)


def source_file(module: str) -> Path:
    """The file that defines a plug-in's module, for the code version of the runs that use it."""
    _search_working_directory()
    found = importlib.util.find_spec(module)
    if found is None or found.origin is None or not os.path.isfile(found.origin):
        raise PluginError(f"cannot find the source file of module '{module}'")
    return Path(found.origin)
