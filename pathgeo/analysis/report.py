"""What the Snakemake report (`snakemake --report report.zip`) says about each figure: its caption (what it shows,
which paper figure it reproduces, the experiments it draws and what their runs' width counts), and where it is filed
(its experiments in words as the category, the figure's name in words as the subcategory).

Captions are composed here from the plot registry and the config, so that a new plot or figure needs no caption file
of its own; report/figure.rst only places the text. The rules pass what the model registry says about widths.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pathgeo.analysis.figures import figure_experiments, figure_options, plot
from pathgeo.analysis.figures.words import experiment_title, value_words

# Characters that start inline markup in reStructuredText; captions are plain text.
RST_MARKUP = re.compile(r"([*`|_\\])")
CLAIMS_CATEGORY = "all runs"
# The words of a figure's config key: what each part of "rsi_eb_by_batch_size" or "mu_lr" names.
NAME_WORDS = {
    "gamma": "γ",
    "rsi": "RSI",
    "eb": "EB",
    "lolr": "locally optimal learning rate",
    "mu": "μ(t)",
    "lr": "learning rate",
    "correlation": "correlation",
    "gawu": "GAWU",
    "grad": "gradient",
    "alm": "ALM",
    "sm": "SM",
}
# Parts of a figure's name that are quantities: consecutive ones read as a list ("RSI, EB and γ").
QUANTITIES = frozenset({"gamma", "rsi", "eb", "lolr", "mu", "lr", "correlation"})


def rst_text(text: str) -> str:
    """Plain text as reStructuredText that shows it verbatim ("w*" stays "w*", not the start of emphasis)."""
    return RST_MARKUP.sub(r"\\\1", " ".join(text.split()))


def listed(words: list[str]) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"


def figure_category(figure: Mapping[str, Any]) -> str:
    """The report groups figures by the experiments they draw, in words ("optimizers, batch sizes and seeds");
    figures of every run (claims, whose experiments only group its rows) by themselves."""
    if plot(figure["plot"]).table == "claims" or not figure_experiments(figure):
        return CLAIMS_CATEGORY
    return listed([experiment_title(experiment) for experiment in figure_experiments(figure)])


def figure_title(name: str) -> str:
    """A figure's config key in words: "rsi_eb_by_batch_size" reads "RSI and EB by batch size", "mu_lr" reads "μ(t)
    and learning rate"."""
    parts, words, quantities = name.split("_"), [], []
    for part in parts:
        if part in QUANTITIES:
            quantities.append(NAME_WORDS[part])
            continue
        if quantities:
            words.append(listed(quantities))
            quantities = []
        words.append(NAME_WORDS.get(part, part))
    if quantities:
        words.append(listed(quantities))
    text = " ".join(words)
    # Greek letters keep their case: "γ by optimizer".
    return text[0].upper() + text[1:] if text[0].isascii() and text[0].islower() else text


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
        paragraphs.append(f"Experiment '{experiment_title(experiment)}'" + (f": {description}" if description else "."))
    if width_units:
        meanings = ", ".join(f"{unit} for {value_words('model', model)}" for model, unit in sorted(width_units.items()))
        paragraphs.append(f"Width counts {meanings}.")
    paragraphs.append(
        "The HTML version of the figure opens offline and shows each value on hover; the SVG is the same figure, "
        "static. Every figure follows the style of docs/figures.md: epochs count from 1, bands are the min–max over "
        "the epoch's steps unless the legend says otherwise, and the last epoch before w* is left out where w* is used."
    )
    return "\n\n".join(rst_text(paragraph) for paragraph in paragraphs)
