"""Griffe extension for the reference pages: read shopsense's reStructuredText-flavoured
docstrings as the Markdown the site renders.

- An example section titled ``Example`` (one example) reads as the numpy ``Examples`` section,
  so it renders as an example and not as a heading with stray links.
- Sphinx roles (``:class:`~shopsense.search.SearchService```, ``:func:`x```) read as code
  (``SearchService``, ``x``), without the role's markup.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_EXAMPLE = re.compile(r"^(?P<indent>[ \t]*)Example\n(?P=indent)-{7}[ \t]*$", re.MULTILINE)
_ROLE = re.compile(r":(?:class|func|meth|data|mod|attr|obj|exc|ref):`(?P<tilde>~?)(?P<target>[^`]+)`")


def _code(m: re.Match[str]) -> str:
    target = m["target"]
    return f"`{target.rsplit('.', 1)[-1] if m['tilde'] else target}`"


def markdown_docstring(text: str) -> str:
    """The docstring with its example sections and Sphinx roles in the form the site reads."""
    text = _EXAMPLE.sub(lambda m: f"{m['indent']}Examples\n{m['indent']}--------", text)
    return _ROLE.sub(_code, text)


class MarkdownDocstrings(griffe.Extension):
    """Rewrites each docstring before it is parsed (see the module docstring)."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        doc = obj.docstring
        if doc is not None:
            doc.value = markdown_docstring(doc.value)
