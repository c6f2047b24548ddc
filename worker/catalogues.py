"""The reply texts in every shipped language: gettext catalogues under ``worker/locale``.

The English reply templates in ``policies/templates`` are the source: each paragraph is one
message id (its lines joined, list items kept one per line), so a translator works on whole
paragraphs in ``worker/locale/<lang>/LC_MESSAGES/mailgate.po`` and never touches code;
``pybabel extract -F babel.cfg`` collects them with the two extractors below. The ``.po``
files are compiled when first needed, in memory, with Babel's own compiler: a compiled
``.mo`` can then never be older than its ``.po`` or missing from an editable install, and
no cache directory has to be writable by every replica. A translation that is missing,
fuzzy or that changes the placeholders does not count; a text with any such paragraph is
sent in English, whole, so a customer never gets an empty or half-translated reply.
"""

from __future__ import annotations

import functools
import gettext
import io
import re
import string
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import structlog

log = structlog.get_logger("mailgate.catalogues")

DEFAULT = "en"
# The languages replies are written in; English is the message ids themselves.
SHIPPED = ("en", "it", "de", "fr", "es", "pt", "nl")
DOMAIN = "mailgate"
LOCALE_DIR = Path(__file__).parent / "locale"
# A paragraph that is only this placeholder is where the policy's hints go: not translated.
SLOTS = frozenset({"$hints"})
_LIST_ITEM = re.compile(r"^\s*(?:\d{1,2}\.|-|\*)\s+")


def N_(text: str) -> str:  # gettext's name for "mark for extraction"
    """Marks a text in code for extraction; it is translated where it is used."""
    return text


# Texts that are not part of a template.
NO_SUBJECT = N_("your message to support")
ENGLISH_VERSION = N_("English version:")


def normalize(paragraph: str) -> str:
    """One paragraph as a message id: each list item (or the prose) on one line, its
    leading indentation kept, inner runs of spaces collapsed."""
    items: list[str] = []
    for line in paragraph.strip("\n").split("\n"):
        if not line.strip():
            continue
        if items and not _LIST_ITEM.match(line):
            items[-1] += " " + line.strip()
            continue
        indent = line[: len(line) - len(line.lstrip())]
        items.append(indent + " ".join(line.split()))
    return "\n".join(items)


def paragraphs(text: str) -> list[str]:
    """A template as its paragraphs (blank-line separated), each normalised."""
    blocks = re.split(r"\n[ \t]*\n", text.replace("\r\n", "\n"))
    return [normalize(block) for block in blocks if block.strip()]


def placeholders(text: str) -> frozenset[str]:
    """The ``$name`` placeholders a text uses (``$$`` is a dollar sign)."""
    found = string.Template.pattern.finditer(text)
    return frozenset(m.group("named") or m.group("braced") for m in found if not m.group("escaped"))


class Catalogue:
    """One language's translations, compiled from its ``.po``; knows what is missing."""

    def __init__(self, language: str, translations: gettext.NullTranslations, ids: frozenset[str]):
        self.language = language
        self.translations = translations
        self.ids = ids

    def translate(self, message: str) -> str | None:
        """The translation, or None when there is none that may be used."""
        if self.language == DEFAULT:
            return message
        if message not in self.ids:
            return None
        return self.translations.gettext(message)


def compile_po(path: Path, language: str) -> Catalogue:
    """Read a ``.po`` and compile it with Babel, leaving out fuzzy entries and entries whose
    placeholders differ from the English (they would fail at substitution)."""
    # Imported here: a process that only writes English never needs Babel.
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    with path.open("rb") as handle:
        catalog = read_po(handle, locale=language, domain=DOMAIN)
    usable: set[str] = set()
    for message in list(catalog):
        if not message.id or not isinstance(message.id, str):
            continue
        text = message.string if isinstance(message.string, str) else ""
        if message.fuzzy or not text.strip() or placeholders(text) != placeholders(message.id):
            catalog.delete(message.id, message.context)
            continue
        usable.add(message.id)
    compiled = io.BytesIO()
    write_mo(compiled, catalog, use_fuzzy=False)
    compiled.seek(0)
    return Catalogue(language, gettext.GNUTranslations(compiled), frozenset(usable))


@functools.cache
def catalogue(language: str) -> Catalogue:
    """The catalogue of a shipped language, compiled once per process; an unreadable
    ``.po`` is logged and leaves that language in English."""
    empty = Catalogue(language, gettext.NullTranslations(), frozenset())
    if language == DEFAULT or language not in SHIPPED:
        return empty
    path = LOCALE_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po"
    try:
        return compile_po(path, language)
    except Exception as exc:  # a broken catalogue must not stop replies: English instead
        log.warning("catalogue_unusable", language=language, error=type(exc).__name__)
        return empty


def preload() -> float:
    """Compile every shipped catalogue now (seconds taken), e.g. before ``serve`` forks."""
    started = time.perf_counter()
    for language in SHIPPED:
        catalogue(language)
    return time.perf_counter() - started


def translate_all(language: str, messages: list[str]) -> list[str] | None:
    """Every message in ``language``, or None when any of them has no usable translation."""
    found = [catalogue(language).translate(message) for message in messages]
    if any(text is None for text in found):
        return None
    return [text for text in found if text is not None]


def text(language: str, message: str) -> str:
    """One message in ``language``, English when it has no translation."""
    return catalogue(language).translate(message) or message


# -- extraction (pybabel extract -F babel.cfg) ---------------------------------------------


def extract_template(
    fileobj: IO[bytes], keywords: Any, comment_tags: Any, options: Any
) -> Iterator[tuple[int, str | None, str, list[str]]]:
    """Babel extractor for a reply template: one message per paragraph."""
    source = fileobj.read().decode("utf-8")
    line = 1
    for block in re.split(r"(\n[ \t]*\n)", source.replace("\r\n", "\n")):
        message = normalize(block) if block.strip() else ""
        if message and message not in SLOTS:
            yield line + len(block) - len(block.lstrip("\n")), None, message, []
        line += block.count("\n")


def extract_policy(
    fileobj: IO[bytes], keywords: Any, comment_tags: Any, options: Any
) -> Iterator[tuple[int, str | None, str, list[str]]]:
    """Babel extractor for a policy document: its SMTP reject texts."""
    document = tomllib.loads(fileobj.read().decode("utf-8"))
    rejects = document.get("replies", {}).get("smtp_reject", {})
    for decision, message in rejects.items():
        yield 1, None, message, [f"SMTP 550 text for {decision}; ASCII is best (accents dropped)"]
