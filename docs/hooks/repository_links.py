"""mkdocs hook: links from a page to the repository's own files.

A page read on GitHub links to the code beside it (`[examples/](../examples)`), but the site holds only docs/, so
mkdocs would call such a link broken. This hook takes each link that leaves docs/ and checks that its target is a
file or folder of the repository, failing the build with the page and the link where it is not, as mkdocs does for
a link between pages. It then points the link at the file on `repo_url` where mkdocs.yml sets one, and otherwise
writes the path as code, which the site's reader finds in their clone.
"""

from __future__ import annotations

import re
from pathlib import Path

from mkdocs.exceptions import PluginError

# A Markdown link, not an image; the target up to its closing parenthesis, without spaces (a title is not used).
LINK = re.compile(r"(?<!!)\[(?P<text>[^\]\n]*)\]\((?P<target>[^)\s]+)\)")
# Fenced code blocks and inline code spans, whose brackets are not links.
CODE = re.compile(r"^(```|~~~).*?^\1|`[^`\n]+`", re.MULTILINE | re.DOTALL)


def is_external(target: str) -> bool:
    return target.startswith(("#", "/", "mailto:")) or "://" in target


def repository_link(text: str, target: str, page_dir: Path, docs: Path, repo_url: str | None) -> str | None:
    """The Markdown that replaces the link [text](target) of a page in `page_dir` when the target lies outside
    `docs` (None when it is the site's own, for mkdocs to check). Raises ValueError when the target is not in
    the repository."""
    path, _, anchor = target.partition("#")
    resolved = (page_dir / path).resolve()
    if resolved.is_relative_to(docs):
        return None
    root = docs.parent
    if not resolved.is_relative_to(root) or not resolved.exists():
        raise ValueError(f"links to {target!r}, which is not a file or folder of the repository ({resolved})")
    relative = resolved.relative_to(root).as_posix() + ("/" if resolved.is_dir() else "")
    if repo_url:
        kind = "tree" if resolved.is_dir() else "blob"
        fragment = f"#{anchor}" if anchor else ""
        return f"[{text}]({repo_url.rstrip('/')}/{kind}/HEAD/{relative}{fragment})"
    named = text.strip("`")
    return f"`{relative}`" if named.rstrip("/") == relative.rstrip("/") else f"{text} (`{relative}`)"


def rewrite(markdown: str, page_dir: Path, docs: Path, repo_url: str | None) -> str:
    """`markdown` with every link into the repository rewritten; code is left as it is."""

    def replace(match: re.Match) -> str:
        target = match["target"]
        if is_external(target):
            return match[0]
        return repository_link(match["text"], target, page_dir, docs, repo_url) or match[0]

    pieces, start = [], 0
    for code in CODE.finditer(markdown):
        pieces += [LINK.sub(replace, markdown[start : code.start()]), code[0]]
        start = code.end()
    return "".join([*pieces, LINK.sub(replace, markdown[start:])])


def on_page_markdown(markdown, page, config, files):
    docs = Path(config.docs_dir).resolve()
    try:
        return rewrite(markdown, Path(page.file.abs_src_path).parent, docs, config.repo_url)
    except ValueError as error:
        raise PluginError(f"docs/{page.file.src_uri} {error}: fix the link, or the path it names") from error
