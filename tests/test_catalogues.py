"""The reply catalogues: every committed ``.po`` compiles cleanly and translates every
message, the ``.pot`` is what ``pybabel extract`` finds today, a missing, fuzzy or broken
entry leaves the reply in English (never empty), and the 550 texts stay short ASCII."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po, write_po

from worker import catalogues
from worker.catalogues import SHIPPED, compile_po, placeholders
from worker.decision import REJECTIONS
from worker.policy.document import Policy, PolicySet
from worker.reject_text import MAX_BYTES, ascii_folded, reject_lines
from worker.reply_body import compose

ROOT = Path(__file__).resolve().parents[1]
LOCALE = ROOT / "worker" / "locale"
TRANSLATED = [language for language in SHIPPED if language != "en"]


def po_path(root: Path, language: str) -> Path:
    return root / language / "LC_MESSAGES" / "mailgate.po"


def template_ids() -> set[str]:
    with (LOCALE / "mailgate.pot").open("rb") as handle:
        return {m.id for m in read_po(handle) if m.id and isinstance(m.id, str)}


@pytest.fixture(scope="module")
def policy() -> Policy:
    return PolicySet.load(ROOT / "policies").policies[-1]


@pytest.mark.parametrize("language", TRANSLATED)
def test_every_catalogue_compiles_and_translates_everything(language: str) -> None:
    with po_path(LOCALE, language).open("rb") as handle:
        catalog = read_po(handle, locale=language)
    messages = [m for m in catalog if m.id and isinstance(m.id, str)]
    assert {m.id for m in messages} == template_ids(), "run pybabel update (README)"
    for message in messages:
        assert isinstance(message.string, str) and message.string.strip(), message.id
        assert not message.fuzzy, message.id
        assert placeholders(message.string) == placeholders(message.id), message.id
    assert [problem for problem in catalog.check() if problem[1]] == []
    assert compile_po(po_path(LOCALE, language), language).ids == template_ids()


def test_the_template_is_what_extraction_finds_today() -> None:
    """The ``.pot`` a translator starts from follows the templates, policies and code."""
    with (ROOT / "babel.cfg").open() as handle:
        method_map, options_map = parse_mapping_cfg(handle)
    extracted = extract_from_dir(ROOT, method_map, options_map)
    found = {message for _, _, message, _, _ in extracted if isinstance(message, str)}
    assert found == template_ids()


@pytest.fixture
def locale_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    target = tmp_path / "locale"
    shutil.copytree(LOCALE, target)
    monkeypatch.setattr(catalogues, "LOCALE_DIR", target)
    catalogues.catalogue.cache_clear()
    yield target
    catalogues.catalogue.cache_clear()


def spoil(path: Path, language: str, starts: str, fuzzy: bool, text: str | None) -> None:
    """Mark the entry whose id starts with ``starts`` fuzzy, or give it ``text``."""
    with path.open("rb") as handle:
        catalog = read_po(handle, locale=language)
    message = next(m for m in catalog if isinstance(m.id, str) and m.id.startswith(starts))
    if fuzzy:
        message.flags.add("fuzzy")
    if text is not None:
        message.string = text
    with path.open("wb") as handle:
        write_po(handle, catalog)


@pytest.mark.parametrize(
    "fuzzy,text",
    [(True, None), (False, ""), (False, "Ticket geschlossen: $ticket $unbekannt")],
    ids=["fuzzy", "missing", "wrong-placeholder"],
)
def test_an_unusable_entry_leaves_that_text_in_english(
    locale_copy: Path, policy: Policy, fuzzy: bool, text: str | None
) -> None:
    spoil(
        po_path(locale_copy, "de"),
        "de",
        "Thank you for writing to Wildix Support. This is an automatic reply: ticket",
        fuzzy,
        text,
    )
    values = {"ticket": "3003", "reference": "abcdefghijklmnop"}
    closed = compose(policy, "rejected_closed_ticket", "de", values, [])
    assert closed.languages == ["en"] and "ticket 3003 is closed" in " ".join(closed.plain.split())
    assert "Vielen Dank" not in closed.plain, "whole, not half translated"
    other = compose(policy, "rejected_new_ticket", "de", values, [])
    assert other.languages == ["de"] and "Vielen Dank" in other.plain


def test_a_broken_catalogue_leaves_replies_in_english(locale_copy: Path, policy: Policy) -> None:
    po_path(locale_copy, "fr").write_bytes(b'msgid "x"\nmsgstr "unterminated\n\xff\xfe')
    reply = compose(policy, "rejected_new_ticket", "fr", {"reference": "abcdefghijklmnop"}, [])
    assert reply.languages == ["en"] and "Thank you for writing" in reply.plain


@pytest.mark.parametrize("language", SHIPPED)
def test_reject_texts_are_short_ascii_in_english_and_the_customers_language(
    policy: Policy, language: str
) -> None:
    for decision in sorted(REJECTIONS):
        lines = reject_lines(policy, decision, language)
        english = reject_lines(policy, decision, "en")
        wire = "".join(f"550-5.7.1 {line}\r\n" for line in lines)
        assert len(wire) <= MAX_BYTES and wire.isascii(), (decision, language)
        assert lines[: len(english)] == english
        assert (len(lines) > len(english)) == (language != "en"), "translation kept"
        assert all(line[:1].isupper() and "%" not in line for line in lines)


@pytest.mark.parametrize(
    "text,language,folded",
    [
        ("Questo ticket è chiuso", "it", "Questo ticket e' chiuso"),
        ("Bitte eröffnen Sie ein Ticket: Größe", "de", "Bitte eroeffnen Sie ein Ticket: Groesse"),
        ("Ce ticket est clôturé\u00a0; 100 %", "fr", "Ce ticket est cloture ; 100  percent"),
        ("pestaña, não, €", "es", "pestana, nao, "),
    ],
)
def test_reply_text_is_folded_to_ascii_as_each_language_writes_it(
    text: str, language: str, folded: str
) -> None:
    assert ascii_folded(text, language) == folded
