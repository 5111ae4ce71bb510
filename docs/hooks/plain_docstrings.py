"""griffe extension for the API page: pathgeo's docstrings are plain prose in which `*` is notation (w*, the *_wd
columns), not Markdown emphasis, so each `*` outside a code span is escaped before mkdocstrings renders it. Without
this, "w* ... *_wd" would print the text between them in italics with both asterisks gone."""

from __future__ import annotations

import re

import griffe

# A code span, kept as it is, or an asterisk to escape.
CODE_OR_ASTERISK = re.compile(r"(`[^`\n]*`)|\*")


def escape_asterisks(text: str) -> str:
    return CODE_OR_ASTERISK.sub(lambda match: match[1] or r"\*", text)


class PlainDocstrings(griffe.Extension):
    def on_object(self, *, obj: griffe.Object, **kwargs) -> None:
        if obj.docstring is not None:
            obj.docstring.value = escape_asterisks(obj.docstring.value)
