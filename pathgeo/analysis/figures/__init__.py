"""The plot registry: every plot a figure can name (`figures.<name>.plot` in the config), each entry carrying
everything about itself.

A figure is a pure function from pathgeo tables (polars DataFrames, columns selected by name) to an Altair chart.
Each plot is declared by its own module in this package (`PLOT = Plot(...)`), so adding one touches that module and
its test: the config schema's `plot` enum and the plot's options, the tables its figure rule reads, the library
modules that rule depends on and the caption of its figures in the Snakemake report all come from the entry.
Shared, so that every figure follows the written style of docs/figures.md: words.py (what figures call metrics,
factors, their values, runs and experiments), tables.py (what figures do to the tables: the rows they may draw, epochs
counted from 1, lines and run names), style.py (sizes, colours, axes, scales, bands, tooltips and layers) and save.py
(the only module that touches the file system).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any

from pathgeo.columns import FACTORS
from pathgeo.registry import discover, lookup

if TYPE_CHECKING:
    from pathgeo.analysis.figures.style import Figure

# What a plot draws from: an experiment's per-epoch aggregates, per-step rows, correlation matrices or train logs
# (pathgeo.analysis.aggregate), its full-batch and fixed-minibatch geometry (pathgeo.measurements.point_geometry), the objective on a
# plane around each run's path (pathgeo.jobs.landscape), the claims of every run (pathgeo.analysis.claims), or the second paper's
# findings of every run and their phases (pathgeo.analysis.zigzag).
TABLES = (
    "epochs",
    "steps",
    "matrices",
    "train",
    "full_batch",
    "fixed_batches",
    "landscape",
    "claims",
    "zigzag",
    "zigzag_phases",
)

# The keys every figure of the config has besides its plot's options (config/schema/config.schema.yaml).
FIGURE_KEYS = ("plot", "experiment", "reproduces")

# The JSON schemas of the options plots share.
# A figure colours or facets by any field an experiment can vary (pathgeo.columns.FACTORS), by a run's epoch budget
# (its reference points), or colours by its label.
COLOR = {"type": "string", "enum": [*FACTORS, "budget", "label"]}
FACET = {"type": "string", "enum": [*FACTORS, "budget"]}
METRIC = {"type": "string", "enum": ["gamma", "gamma_wd", "upd_gamma"]}
# A figure's bands: the paper's, min–max over the epoch's steps (MIN_MAX), or none (NO_BAND: the lines alone, in one
# panel, where a reader would rather compare the means of many runs).
MIN_MAX, NO_BAND = "min_max", "none"
BAND = {
    "description": "min_max (default): each line with the min–max of the epoch's steps; none: the lines alone",
    "type": "string",
    "enum": [MIN_MAX, NO_BAND],
}
EPOCHS = {
    "description": "the epochs whose matrices are drawn (default first, middle, last)",
    "type": "array",
    "minItems": 1,
    "items": {"type": "integer", "minimum": 0},
}


@dataclass(frozen=True)
class Plot:
    """A plot: `draw(table, *also, **options)` makes the chart from the `table` it reads and the tables it `also`
    reads (each one of TABLES, of the same experiments); `options` is the JSON schema of each option a figure of
    this plot may set in the config; `caption(**options)` (or a fixed text) says in plain text what a figure
    with these options shows, for the report (pathgeo.analysis.report adds which paper figure it reproduces and what its
    experiments are). `needs_w_star`: it draws measurements against a reference point, which an experiment with
    `measure: w_star_free` does not take."""

    name: str
    draw: Callable[..., Figure]
    table: str
    options: Mapping[str, Any] = field(default_factory=dict)
    caption: str | Callable[..., str] = ""
    also: tuple[str, ...] = ()
    needs_w_star: bool = True

    def __post_init__(self) -> None:
        for table in self.tables:
            if table not in TABLES:
                raise ValueError(f"plot '{self.name}' reads table '{table}'; tables are {TABLES}")
        if not self.caption:
            raise ValueError(f"plot '{self.name}' has no caption: say what its figures show")

    @property
    def tables(self) -> tuple[str, ...]:
        return (self.table, *self.also)

    def describe(self, **options: Any) -> str:
        """What a figure of this plot with these options shows, in plain text."""
        return self.caption(**options) if callable(self.caption) else self.caption

    @property
    def modules(self) -> tuple[str, ...]:
        """The library modules (relative to pathgeo/) a figure of this plot is drawn with, so that editing one
        re-runs exactly the figures that use it."""
        own = self.draw.__module__.removeprefix("pathgeo.").replace(".", "/") + ".py"
        shared = tuple(f"analysis/figures/{name}.py" for name in ("__init__", "words", "tables", "style", "save"))
        return (*shared, own)


def figure_experiments(fig: dict[str, Any]) -> list[str]:
    """A figure draws one experiment, several, or (claims) every run."""
    exp = fig.get("experiment")
    if exp is None:
        return []
    return [exp] if isinstance(exp, str) else list(exp)


@cache
def plots() -> dict[str, Plot]:
    """Every plot, by name, as the modules of this package declare them."""
    return discover(__name__, "PLOT")


def plot(name: str) -> Plot:
    return lookup(plots(), name, "plot")


def figure_options(figure: Mapping[str, Any]) -> dict[str, Any]:
    """A figure's plot options: its config entry without the keys every figure has."""
    return {key: value for key, value in figure.items() if key not in FIGURE_KEYS}
