"""Writing a figure: self-contained HTML that opens offline, and a static SVG or PNG.

The HTML inlines Vega, Vega-Lite and vega-embed as one script. Building that script takes vl-convert a few seconds,
so the workflow builds it once (rule vega_bundle, `write_bundle`) and every figure job passes it to `save`; without
one, `save` builds it itself. The chart is validated and compiled to Vega once (`vega_spec`), and both renderings come
from that one Vega spec.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import altair as alt
import vl_convert
from altair.utils.html import INLINE_HTML_TEMPLATE

from pathgeo.analysis.figures.style import LEGEND_LAYOUT, Figure
from pathgeo.atomic import atomic_path

# Vega-Lite compiles a nearest-point selection to a Voronoi mark over the points that carries their tooltip, reading
# each field from the point's datum (`datum.datum[...]`); it rewrites only the fields it formats as numbers, so a
# name in the tooltip (the run) read `datum[...]`, the Voronoi cell's own, and showed "undefined" (Vega-Lite 6.4).
VORONOI_FIELD = re.compile(r'(?<![.\w])datum\[(?=")')
# Any <script src=...> would make the HTML depend on the network.
EXTERNAL_SCRIPT = re.compile(r"<script[^>]*\bsrc\s*=", re.IGNORECASE)
# The Vega-Lite version of the specs Altair writes, as vl-convert names it ("v6_4").
VL_VERSION = "v" + "_".join(alt.SCHEMA_VERSION.lstrip("v").split(".")[:2])


def javascript_bundle() -> str:
    """Vega, Vega-Lite (of the version Altair writes) and vega-embed as one script."""
    return vl_convert.javascript_bundle(vl_version=VL_VERSION)


def write_bundle(path: Path) -> None:
    with atomic_path(path) as temporary:
        temporary.write_text(javascript_bundle(), encoding="utf-8")


def vega_spec(chart: Figure) -> dict:
    """The chart as the Vega spec both renderings draw: validated, with its legends laid out (LEGEND_LAYOUT), compiled,
    and with every Voronoi cell's tooltip reading its point's fields (VORONOI_FIELD)."""
    spec = chart.to_dict()
    spec.setdefault("config", {}).setdefault("legend", {})["layout"] = LEGEND_LAYOUT
    vega = vl_convert.vegalite_to_vega(spec, vl_version=VL_VERSION)
    for mark in _marks(vega):
        tooltip = mark.get("encode", {}).get("update", {}).get("tooltip", {})
        if mark.get("name", "").endswith("_voronoi") and "signal" in tooltip:
            tooltip["signal"] = VORONOI_FIELD.sub("datum.datum[", tooltip["signal"])
    return vega


def _marks(node: dict) -> list[dict]:
    marks = []
    for mark in node.get("marks", []):
        marks += [mark, *_marks(mark)]
    return marks


def _render_html(spec: dict, bundle: str) -> str:
    return INLINE_HTML_TEMPLATE.render(
        spec=json.dumps(spec),
        embed_options=json.dumps({"mode": "vega"}),
        output_div="vis",
        vegalite_version=alt.SCHEMA_VERSION.lstrip("v"),
        vegaembed_script=bundle,
    )


def _render_image(spec: dict, image_path: Path) -> bytes:
    suffix = image_path.suffix.lower()
    if suffix == ".png":
        # Twice the CSS pixel size so the PNG stays sharp in a paper or on a slide.
        return vl_convert.vega_to_png(spec, scale=2)
    if suffix == ".svg":
        return vl_convert.vega_to_svg(spec).encode("utf-8")
    raise ValueError(f"image path must end in .svg or .png, got {image_path}")


def save(chart: Figure, html_path: Path, image_path: Path, bundle: str | None = None) -> None:
    """Write the chart as self-contained HTML (opens offline) and as SVG or PNG; `bundle` is the script the HTML
    inlines (javascript_bundle(), built here if not given).

    Both renderings are produced before anything is written, so a rendering
    failure leaves no file behind.
    """
    spec = vega_spec(chart)
    html = _render_html(spec, javascript_bundle() if bundle is None else bundle)
    if EXTERNAL_SCRIPT.search(html):
        raise RuntimeError("the HTML rendering loads scripts from the network; it must be self-contained")
    image = _render_image(spec, Path(image_path))
    # Each file appears complete or not at all (temporary file + rename).
    with atomic_path(html_path) as temporary:
        temporary.write_text(html, encoding="utf-8")
    with atomic_path(image_path) as temporary:
        temporary.write_bytes(image)
