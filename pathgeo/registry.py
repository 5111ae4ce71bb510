"""Registries read from a package's modules.

Each way of extending pathgeo that has many entries (dataset kinds, models, plots) is a package whose modules
declare their entries at module level, so adding one touches one module: `discover` imports every module of the
package and collects what each declares under one attribute name (an entry, or a tuple of entries). Modules
without that attribute (shared helpers) are skipped. Entries come sorted by name, so that enums, error messages
and plans do not depend on which module declares what.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Mapping
from typing import Any, Protocol, TypeVar


class Entry(Protocol):
    name: str


E = TypeVar("E", bound=Entry)


def discover(package: str, attribute: str) -> dict[str, Any]:
    """The entries declared under `attribute` by the modules of `package`, by name (sorted); a name declared twice
    is an error naming both modules."""
    entries: dict[str, Any] = {}
    where: dict[str, str] = {}
    for info in pkgutil.iter_modules(importlib.import_module(package).__path__):
        module = importlib.import_module(f"{package}.{info.name}")
        declared = getattr(module, attribute, ())
        for entry in declared if isinstance(declared, tuple) else (declared,):
            if entry.name in entries:
                raise ValueError(
                    f"{package}: '{entry.name}' is declared by both {where[entry.name]} and {module.__name__}"
                )
            entries[entry.name] = entry
            where[entry.name] = module.__name__
    return dict(sorted(entries.items()))


def lookup(entries: Mapping[str, E], name: str, what: str) -> E:
    """The entry called `name`; an unknown name is a KeyError that lists the known ones."""
    try:
        return entries[name]
    except KeyError:
        raise KeyError(f"unknown {what} {name!r}; known: {sorted(entries)}") from None
