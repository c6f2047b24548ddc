"""A reply's text in the chosen language, as plain text and as the HTML made from it.

The template's paragraphs are looked up in the language's catalogue (all of them, or the
whole text stays English), the placeholders filled, the policy's hints put into the
``$hints`` slot, and the result wrapped to lines a mail reader shows unbroken (at most
76 characters, so quoted-printable never has to break them). The HTML part is built from
the same paragraphs: escaped text, lists as lists, links only to the URLs the text already
shows, no images, no style sheets. The ``rejected_language`` reply is written twice: in
the customer's language, then in English, the language the policy asks for.
"""

from __future__ import annotations

import functools
import html
import re
import textwrap
from dataclasses import dataclass
from string import Template

from worker.catalogues import (
    DEFAULT,
    ENGLISH_VERSION,
    SLOTS,
    normalize,
    paragraphs,
    text,
    translate_all,
)
from worker.decision import DecisionName
from worker.hints import paragraph
from worker.policy.document import Hint, Policy

WIDTH = 76
HTML_WIDTH = 70  # room for the tags around a line
_ITEM = re.compile(r"^(\s*)(\d{1,2}\.|-|\*)(\s+)")
# "step 3", "ticket 3003": a number is not left alone at the start of a line.
_GLUE = re.compile(r"(?<=\w) (?=\d)")
_KEEP = "\ue000"  # a private-use character: a space the wrapper must not break at
_URL = re.compile(r"https://[^\s<>\"']+[^\s<>\"'.,;:)]")


@dataclass(frozen=True)
class Section:
    language: str
    paragraphs: list[str]  # rendered; list items one per line, not yet wrapped


@dataclass(frozen=True)
class ReplyBody:
    sections: list[Section]

    @property
    def languages(self) -> list[str]:
        """For Content-Language: each section's language, once, in order."""
        return list(dict.fromkeys(section.language for section in self.sections))

    @property
    def english_heading(self) -> str:
        """Above the English text of a bilingual reply, in the first section's language."""
        return text(self.sections[0].language, ENGLISH_VERSION)

    @property
    def plain(self) -> str:
        blocks: list[str] = []
        for number, section in enumerate(self.sections):
            if number:
                blocks.append("-" * 20 + "\n" + self.english_heading)
            blocks += [wrap(p) for p in section.paragraphs]
        return "\n\n".join(blocks) + "\n"

    @property
    def html(self) -> str:
        parts = []
        for number, section in enumerate(self.sections):
            inner = "\n".join(_html_paragraph(p) for p in section.paragraphs)
            heading = f"<hr>\n<p>{html.escape(self.english_heading)}</p>\n" if number else ""
            parts.append(f'{heading}<div lang="{section.language}">\n{inner}\n</div>')
        lang = self.sections[0].language
        return (
            f'<!DOCTYPE html>\n<html lang="{lang}">\n<head><meta charset="utf-8"></head>\n'
            "<body>\n" + "\n".join(parts) + "\n</body>\n</html>\n"
        )


@functools.lru_cache(maxsize=2048)  # pure; a reply is mostly the same paragraphs again
def wrap(text: str, width: int = WIDTH) -> str:
    """A paragraph wrapped to ``width``; a list item's continuation lines hang under its text."""
    lines: list[str] = []
    for item in _GLUE.sub(_KEEP, text).split("\n"):
        marker = _ITEM.match(item)
        hang = " " * len(marker.group(0)) if marker else item[: len(item) - len(item.lstrip())]
        wrapper = textwrap.TextWrapper(
            width=width,
            subsequent_indent=hang,
            break_long_words=False,
            break_on_hyphens=False,
        )
        lines += wrapper.wrap(item) or [""]
    return "\n".join(lines).replace(_KEEP, " ")


def _linked(line: str) -> str:
    escaped = html.escape(line, quote=False)
    return _URL.sub(lambda m: f'<a href="{m.group(0)}">{m.group(0)}</a>', escaped)


def _html_lines(text: str) -> str:
    """Text wrapped as the plain part is, escaped line by line: a quoted reference stays on
    one line in both parts, and quoted-printable rarely has to break a line."""
    return "\n".join(_linked(line.strip()) for line in wrap(text, HTML_WIDTH).split("\n"))


@functools.lru_cache(maxsize=2048)
def _html_paragraph(text: str) -> str:
    items = text.split("\n")
    if not all(_ITEM.match(item) for item in items):
        return f"<p>{_html_lines(text)}</p>"
    tag = "ol" if items[0].strip()[0].isdigit() else "ul"
    entries = "\n".join(f"<li>{_html_lines(_ITEM.sub('', item))}</li>" for item in items)
    return f"<{tag}>\n{entries}\n</{tag}>"


@functools.lru_cache(maxsize=64)
def _paragraphs(template: str) -> tuple[str, ...]:
    return tuple(paragraphs(template))


@functools.lru_cache(maxsize=256)
def _normalized(text: str) -> str:
    return normalize(text)


def _section(
    policy: Policy, decision: str, language: str, values: dict[str, str], hints: list[Hint]
) -> Section:
    """The template in ``language`` if every paragraph has a translation, else English."""
    messages = _paragraphs(policy.templates[decision].template)
    wanted = [m for m in messages if m not in SLOTS]
    translated = translate_all(language, wanted)
    if translated is None:
        language, translated = DEFAULT, wanted
    lookup = dict(zip(wanted, translated, strict=True))
    fields = policy.fields(**values)
    rendered: list[str] = []
    for message in messages:
        if message in SLOTS:
            rendered += [_normalized(paragraph(h, language)) for h in hints]
        else:
            rendered.append(lookup[message])
    return Section(language, [Template(text).substitute(fields) for text in rendered])


def compose(
    policy: Policy, decision: str, language: str, values: dict[str, str], hints: list[Hint]
) -> ReplyBody:
    """The reply's sections: the customer's language, plus English for ``rejected_language``."""
    first = _section(policy, decision, language, values, hints)
    sections = [first]
    if decision == DecisionName.REJECTED_LANGUAGE and first.language != DEFAULT:
        sections.append(_section(policy, decision, DEFAULT, values, hints))
    return ReplyBody(sections)
