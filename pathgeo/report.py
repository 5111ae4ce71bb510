"""What the Snakemake report (`snakemake --report report.zip`) says about each figure: its caption (what it shows,
which paper figure it reproduces, the experiments it draws and what their runs' width counts), and where it is filed
(its experiments as the category, the figure as the subcategory).

Captions are composed here from the plot registry and the config, so that a new plot or figure needs no caption file
of its own; report/figure.rst only places the text. The rules pass what the model registry says about widths.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pathgeo.config import figure_experiments
from pathgeo.figures import figure_options, plot

# Characters that start inline markup in reStructuredText; captions are plain text.
RST_MARKUP = re.compile(r"([*`|_\\])")
CLAIMS_CATEGORY = "all runs"


def rst_text(text: str) -> str:
    """Plain text as reStructuredText that shows it verbatim ("w*" stays "w*", not the start of emphasis)."""
    return RST_MARKUP.sub(r"\\\1", " ".join(text.split()))


def figure_category(figure: Mapping[str, Any]) -> str:
    """The report groups figures by the experiments they draw; figures of every run (claims) by themselves."""
    return " + ".join(figure_experiments(figure)) or CLAIMS_CATEGORY


def figure_caption(
    figure: Mapping[str, Any],
    descriptions: Mapping[str, str],
    width_units: Mapping[str, str],
) -> str:
    """The caption of a figure: what its plot shows with these options, which paper figure it reproduces (the
    config's `reproduces`), each experiment with its description, and what "width" counts for the models drawn
    (`width_units`: model name to unit, for the models that have a width)."""
    paragraphs = [plot(figure["plot"]).describe(**figure_options(figure))]
    reproduces = figure.get("reproduces")
    if reproduces:
        paragraphs.append(f"Reproduces: {reproduces}" + ("" if reproduces.rstrip().endswith((".", ")")) else "."))
    else:
        paragraphs.append("Reproduces: no paper figure is named in the config.")
    for experiment in figure_experiments(figure):
        description = descriptions.get(experiment)
        paragraphs.append(f"Experiment '{experiment}'" + (f": {description}" if description else "."))
    if width_units:
        meanings = ", ".join(f"{unit} for {model}" for model, unit in sorted(width_units.items()))
        paragraphs.append(f"Width counts {meanings}.")
    paragraphs.append(
        "The HTML version of the figure opens offline and shows each value on hover; the SVG is the same figure, "
        "static."
    )
    return "\n\n".join(rst_text(paragraph) for paragraph in paragraphs)
