"""The plot registry: every plot a figure can name (`figures.<name>.plot` in the config), each entry carrying
everything about itself.

A figure is a pure function from one of the pathgeo tables (polars DataFrames, columns selected by name) to an
Altair chart. Each plot is declared by its own module in this package (`PLOT = Plot(...)`), so adding one touches
that module and its test: the config schema's `plot` enum and the plot's options, the table its figure rule
reads and the library modules that rule depends on all come from the entry. Shared: style.py (sizes, colours,
titles, the common encodings and layers) and save.py (the only module that touches the file system).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any

from pathgeo.registry import discover, lookup

if TYPE_CHECKING:
    from pathgeo.figures.style import Figure

# What a plot draws from: an experiment's per-epoch aggregates, per-step rows or correlation matrices, its
# full-batch and fixed-minibatch geometry (pathgeo.point_geometry), or the claims of every run.
TABLES = ("epochs", "steps", "matrices", "full_batch", "fixed_batches", "claims")

# The JSON schemas of the options plots share.
COLOR = {
    "type": "string",
    "enum": ["optimizer", "batch_size", "model", "width", "seed", "budget", "label", "peak_lr", "dataset", "schedule",
             "warmup_epochs"],
}
FACET = {
    "type": "string",
    "enum": ["optimizer", "batch_size", "model", "width", "seed", "budget", "dataset", "peak_lr", "epochs"],
}
METRIC = {"type": "string", "enum": ["gamma", "gamma_wd", "upd_gamma"]}
EPOCHS = {
    "description": "the epochs whose matrices are drawn (default first, middle, last)",
    "type": "array",
    "minItems": 1,
    "items": {"type": "integer", "minimum": 0},
}


@dataclass(frozen=True)
class Plot:
    """A plot: `draw(table, **options)` makes the chart from the `table` it reads (one of TABLES); `options` is
    the JSON schema of each option a figure of this plot may set in the config. `needs_w_star`: it draws
    measurements against a reference point, which an experiment with `measure: w_star_free` does not take."""

    name: str
    draw: Callable[..., Figure]
    table: str
    options: Mapping[str, Any] = field(default_factory=dict)
    needs_w_star: bool = True

    def __post_init__(self) -> None:
        if self.table not in TABLES:
            raise ValueError(f"plot '{self.name}' reads table '{self.table}'; tables are {TABLES}")

    @property
    def modules(self) -> tuple[str, ...]:
        """The library modules (relative to pathgeo/) a figure of this plot is drawn with, so that editing one
        re-runs exactly the figures that use it."""
        own = self.draw.__module__.removeprefix("pathgeo.").replace(".", "/") + ".py"
        return ("figures/__init__.py", "figures/style.py", "figures/save.py", own)


@cache
def plots() -> dict[str, Plot]:
    """Every plot, by name, as the modules of this package declare them."""
    return discover(__name__, "PLOT")


def plot(name: str) -> Plot:
    return lookup(plots(), name, "plot")
