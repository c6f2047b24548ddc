"""Address headers split before encoded words are decoded, raw UTF-8 headers (RFC 6532),
and one normalised form (NFC, lower case, IDNA A-label domain) for every comparison."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import envelope, fixture_bytes, make_settings, with_headers

from worker.mail import InboundMail, normalize_address
from worker.pipeline import Mailgate
from worker.tickets import TicketRecord, upsert

LAST_FIRST = "=?UTF-8?B?Rm9vLCBCYXI=?= <foo.bar@example.com>"  # "Foo, Bar"


@pytest.fixture
def gate(tmp_path: Path) -> Iterator[Mailgate]:
    instance = Mailgate.open(make_settings(tmp_path))
    yield instance
    instance.engine.dispose()


def mail_with(**headers: str) -> InboundMail:
    return InboundMail.from_bytes(with_headers(fixture_bytes("new_ticket.eml"), **headers))


@pytest.mark.parametrize("name", ["From", "Sender", "Reply-To", "Resent-From", "Resent-Sender"])
def test_encoded_last_first_display_name_keeps_the_address(name: str) -> None:
    mail = mail_with(**{name.replace("-", "_"): LAST_FIRST})
    assert mail.addresses(name) == ["foo.bar@example.com"]


def test_encoded_last_first_from_is_the_sender_and_its_name_is_decoded() -> None:
    mail = mail_with(From=LAST_FIRST)
    assert mail.from_address == "foo.bar@example.com"
    assert mail.from_name == "Foo, Bar"


def test_latin1_encoded_comma_in_a_list_of_two() -> None:
    mail = mail_with(To="=?iso-8859-1?Q?M=FCller=2C_J=F6rg?= <j@a.example>, b@b.example")
    assert mail.addresses("To") == ["j@a.example", "b@b.example"]


def test_return_path_with_encoded_garbage_is_still_read() -> None:
    assert mail_with(Return_Path="<alice@customer.example>").return_path == (
        "alice@customer.example"
    )
    assert mail_with(Return_Path="<>").return_path == ""


def test_raw_utf8_headers_are_read_as_utf8() -> None:
    raw = (
        "From: Jörg Müller <jörg@bücher.example>\r\nTo: support@wildix.com\r\n"
        "Subject: Störung der Telefonanlage 电话\r\n\r\nHallo\r\n"
    ).encode()
    mail = InboundMail.from_bytes(raw)
    assert mail.subject == "Störung der Telefonanlage 电话"
    assert mail.from_address == "jörg@xn--bcher-kva.example"
    assert mail.from_name == "Jörg Müller"


def test_legacy_8bit_header_falls_back_to_windows_1252() -> None:
    raw = b"From: a@b.example\r\nSubject: caf\xe9 \x80\r\n\r\nx"
    assert InboundMail.from_bytes(raw).subject == "café €"


@pytest.mark.parametrize(
    ("written", "normal"),
    [
        ("JÖRG@Bücher.Example", "jörg@xn--bcher-kva.example"),
        ("jörg@xn--bcher-kva.example", "jörg@xn--bcher-kva.example"),
        (unicodedata.normalize("NFD", "jörg@bücher.example"), "jörg@xn--bcher-kva.example"),
        ("<Alice@Customer.Example>", "alice@customer.example"),
        ("user@例え.テスト", "user@xn--r8jz45g.xn--zckzah"),
    ],
)
def test_one_normalised_form(written: str, normal: str) -> None:
    assert normalize_address(written) == normal


def test_outlook_last_first_participant_follow_up_is_accepted(gate: Mailgate) -> None:
    """The person of the issue: Exchange envelope sender, encoded "Last, First" From."""
    upsert(
        gate.engine,
        [TicketRecord(id="4004", kind="technical", participants=["foo.bar@example.com"])],
    )
    raw = with_headers(
        fixture_bytes("followup_subject_tag.eml"),
        From=LAST_FIRST,
        Subject="RE: [Ticket#4004] still broken",
    )
    # The envelope sender differs from From, as when a forwarder rewrites it (SRS).
    decision = gate.ingest(raw, envelope("SRS0=HHH=TT=example.com=foo.bar@exchange.example"))
    assert decision.decision == "accepted_followup"


def test_utf8_participant_matches_in_either_spelling(gate: Mailgate) -> None:
    upsert(
        gate.engine,
        [TicketRecord(id="5005", kind="technical", participants=["JÖRG@bücher.example"])],
    )
    raw = (
        "From: Jörg <jörg@xn--bcher-kva.example>\r\nTo: support@wildix.com\r\n"
        "Subject: Re: [Ticket#5005] Störung\r\nMessage-ID: <u1@bücher.example>\r\n\r\nDanke\r\n"
    ).encode()
    decision = gate.ingest(raw, envelope("jörg@bücher.example"))
    assert decision.decision == "accepted_followup"


@pytest.mark.parametrize("value", ["", " ", "<>", "=?utf-8?q?broken", ",,,", "a@", '"x'])
def test_odd_from_values_never_raise(value: str) -> None:
    mail = InboundMail.from_bytes(f"From: {value}\r\n\r\n".encode())
    assert isinstance(mail.from_name, str) and isinstance(mail.from_address, str)
    assert mail.addresses("From", "Sender", "Reply-To") == [] or "@" in mail.from_address


def test_address_hidden_in_an_encoded_word_is_still_found() -> None:
    # "notificaccion-clientes@bbva.mx" as one encoded word, as in mail-parser's corpus.
    mail = mail_with(From="=?UTF-8?B?bm90aWZpY2FjY2lvbi1jbGllbnRlc0BiYnZhLm14?=")
    assert mail.from_address == "notificaccion-clientes@bbva.mx"
