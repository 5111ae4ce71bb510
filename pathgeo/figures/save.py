"""Writing a figure: self-contained HTML that opens offline, and a static SVG or PNG."""

from __future__ import annotations

import io
import re
from pathlib import Path

from pathgeo.atomic import atomic_path
from pathgeo.figures.style import Figure

# Any <script src=...> would make the HTML depend on the network.
EXTERNAL_SCRIPT = re.compile(r"<script[^>]*\bsrc\s*=", re.IGNORECASE)


def _render_image(chart: Figure, image_path: Path) -> bytes:
    suffix = image_path.suffix.lower()
    if suffix == ".png":
        buffer = io.BytesIO()
        # Twice the CSS pixel size so the PNG stays sharp in a paper or on a slide.
        chart.save(buffer, format="png", scale_factor=2)
        return buffer.getvalue()
    if suffix == ".svg":
        text = io.StringIO()
        chart.save(text, format="svg")
        return text.getvalue().encode("utf-8")
    raise ValueError(f"image path must end in .svg or .png, got {image_path}")


def save(chart: Figure, html_path: Path, image_path: Path) -> None:
    """Write the chart as self-contained HTML (opens offline) and as SVG or PNG.

    Both renderings are produced before anything is written, so a rendering
    failure leaves no file behind.
    """
    html = chart.to_html(inline=True)
    if EXTERNAL_SCRIPT.search(html):
        raise RuntimeError("the HTML rendering loads scripts from the network; it must be self-contained")
    image = _render_image(chart, Path(image_path))
    # Each file appears complete or not at all (temporary file + rename).
    with atomic_path(html_path) as temporary:
        temporary.write_text(html, encoding="utf-8")
    with atomic_path(image_path) as temporary:
        temporary.write_bytes(image)
