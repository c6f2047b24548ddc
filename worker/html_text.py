"""Readable text from an HTML mail body, for the language rule.

A real HTML parser (the standard library's ``html.parser``) walks the markup: character
references such as ``&nbsp;`` and ``&eacute;`` are unescaped, the content of ``style``,
``script``, ``head`` and ``title`` is dropped (it is CSS, code or metadata, not what the
customer wrote), block elements end a line, and a ``blockquote`` (quoted history in most
clients' HTML) is turned into ``>``-prefixed lines so the quote cutting sees it as quoted.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

_SKIPPED = frozenset({"style", "script", "head", "title", "template", "noscript"})
_BLOCKS = frozenset(
    {"p", "div", "br", "tr", "li", "h1", "h2", "h3", "h4", "h5", "h6", "table", "hr", "pre"}
)
_SPACES = re.compile(r"[ \t\u00a0\u200b]+")


class _TextCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping = 0
        self.quoting = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIPPED:
            self.skipping += 1
        elif tag == "blockquote":
            self.quoting += 1
            self.parts.append("\n")
        elif tag in _BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED:
            self.skipping = max(self.skipping - 1, 0)
        elif tag == "blockquote":
            self.quoting = max(self.quoting - 1, 0)
            self.parts.append("\n")
        elif tag in _BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self.skipping:
            return
        if self.quoting:
            data = "\n".join("> " + line for line in data.split("\n"))
        self.parts.append(data)


def html_to_text(html: str) -> str:
    """The visible text of an HTML document, one line per block; ``""`` if unreadable."""
    collector = _TextCollector()
    try:
        collector.feed(html)
        collector.close()
    except Exception:  # the parser is lenient, but a body must never fail a decision
        return ""
    lines = (_SPACES.sub(" ", line).strip() for line in "".join(collector.parts).split("\n"))
    return "\n".join(line for line in lines if line and line != ">")
