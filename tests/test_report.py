"""The report's captions (pathgeo.report): what a figure shows, which paper figure it reproduces, its experiments."""

from __future__ import annotations

from docutils.core import publish_parts

from pathgeo.report import figure_caption, figure_category, rst_text


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
    assert paragraphs[3] == "Width counts hidden units for mlp, channels for resnet1d."
    html = publish_parts(caption, writer="html")["body"]
    assert html.count("<p>") == len(paragraphs)


def test_figures_are_filed_by_their_experiments():
    assert figure_category({"plot": "synthetic", "experiment": ["alm", "sm"]}) == "alm + sm"
    assert figure_category({"plot": "gamma_band", "experiment": "seeds"}) == "seeds"
    assert figure_category({"plot": "claims"}) == "all runs"
    caption = figure_caption({"plot": "claims"}, {}, {})
    assert "no paper figure is named" in caption
