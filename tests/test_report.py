"""The report's captions and filing (pathgeo.analysis.report): what a figure shows, which paper figure it reproduces, its
experiments, and the words its category and entry read."""

from __future__ import annotations

import re
from pathlib import Path

from docutils.core import publish_parts

from pathgeo.analysis.report import figure_caption, figure_category, figure_title, rst_text

ROOT = Path(__file__).resolve().parents[1]


def test_plain_text_stays_verbatim_in_restructured_text():
    text = "γ = cos(G, w − w*) and w_t − w*, |ρ| ≥ 0.7"
    html = publish_parts(rst_text(text), writer="html")["body"]
    assert "γ = cos(G, w − w*) and w_t − w*, |ρ| ≥ 0.7" in html
    assert "<em>" not in html and "problematic" not in html


def test_caption_names_what_the_figure_shows_what_it_reproduces_and_its_experiments():
    figure = {
        "plot": "lolr",
        "experiment": ["architectures"],
        "color": "label",
        "reproduces": "No Wrong Turns, Figure 3",
    }
    caption = figure_caption(
        figure, {"architectures": "MLP versus residual CNN"}, {"mlp": "hidden units", "resnet1d": "channels"}
    )
    paragraphs = caption.split("\n\n")
    assert paragraphs[0].startswith("The locally optimal learning rate")
    assert paragraphs[1] == "Reproduces: No Wrong Turns, Figure 3."
    assert paragraphs[2] == "Experiment 'architectures': MLP versus residual CNN"
    assert paragraphs[3] == "Width counts hidden units for MLP, channels for ResNet-1D."
    html = publish_parts(caption, writer="html")["body"]
    assert html.count("<p>") == len(paragraphs)


def test_figures_are_filed_by_their_experiments_in_words():
    """Categories read "optimizers + batch_sizes + architectures + seeds" (issue 19)."""
    assert figure_category({"plot": "synthetic", "experiment": ["alm", "sm"]}) == (
        "Asymmetric Linear Model (ALM) and Sinusoidal Mixture (SM)"
    )
    assert figure_category({"plot": "accuracy", "experiment": ["optimizers", "batch_sizes", "seeds"]}) == (
        "optimizers, batch sizes and seeds"
    )
    assert figure_category({"plot": "gamma_band", "experiment": "seeds"}) == "seeds"
    # A claims figure draws every run, whatever experiments group its rows.
    assert figure_category({"plot": "claims"}) == "all runs"
    assert figure_category({"plot": "claims", "experiment": ["optimizers", "seeds"]}) == "all runs"
    caption = figure_caption({"plot": "claims"}, {}, {})
    assert "no paper figure is named" in caption


def test_entries_are_named_in_words():
    """Entries read `gamma_by_optimizer` (issue 19)."""
    assert figure_title("gamma_by_optimizer") == "γ by optimizer"
    assert figure_title("rsi_eb_gamma") == "RSI, EB and γ"
    assert figure_title("rsi_eb_by_batch_size") == "RSI and EB by batch size"
    assert figure_title("mu_lr") == "μ(t) and learning rate"
    assert figure_title("level_sets") == "Level sets"


def test_a_caption_is_not_a_job_parameter():
    """The report lists a figure job's params under "Job parameters": a caption passed as one showed there a second
    time, with literal \\n\\n and w\\* escapes (issue 19). The figure rule passes the figure's config only; the caption
    template reads the caption from the config."""
    rules = (ROOT / "rules" / "figures.smk").read_text()
    figure_rule = rules[rules.index("rule figure:") : rules.index("rule landscape:")]
    # The params block runs to the rule's next directive, wherever snakefmt puts it.
    params = re.search(r"^    params:\n((?:        .*\n)+)", figure_rule, re.MULTILINE).group(1)
    assert re.findall(r"^\s+(\w+)=", params, re.MULTILINE) == ["figure"]
    template = (ROOT / "report" / "figure.rst").read_text()
    assert "snakemake.params" not in template and 'snakemake.config["report_captions"]' in template
