"""``InboundMail`` never raises, keeps the bytes, and strips control characters from headers."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from email.parser import BytesHeaderParser
from email.policy import compat32

import pytest
from helpers import fixture_bytes, with_headers

from worker.mail import (
    Envelope,
    InboundMail,
    envelope_sender,
    header_block,
    normalize_address,
)

WHEN = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)


def test_headers_are_read_lazily_and_decoded() -> None:
    mail = InboundMail.from_bytes(fixture_bytes("new_ticket.eml"))
    assert mail.parse_error is None
    assert mail.subject.startswith("W-AIR handsets")
    assert mail.from_address == "alice@customer.example"
    assert mail.return_path == "alice@customer.example"
    assert mail.message_id == "<20261123091158.4711@mail.customer.example>"


def test_garbage_does_not_raise() -> None:
    """Binary input becomes a parse error, not an exception."""
    mail = InboundMail.from_bytes(fixture_bytes("binary_garbage.eml"))
    assert mail.parse_error is not None
    assert mail.body_text == "" or isinstance(mail.body_text, str)


def test_encoded_newlines_cannot_escape_a_header() -> None:
    raw = b"From: a@b.example\r\nSubject: =?utf-8?b?SGkNCkJjYzogeEB5LnouZXhhbXBsZQ==?=\r\n\r\nx"
    subject = InboundMail.from_bytes(raw).subject
    assert "\r" not in subject and "\n" not in subject and "Bcc" in subject


def test_null_and_broken_addresses() -> None:
    assert normalize_address("<>") == ""
    assert normalize_address("Someone <A@B.Example>") == "a@b.example"
    assert normalize_address("not an address") == ""


def test_lying_charset_body_is_still_text() -> None:
    """A body that claims a charset it is not in is decoded without failing."""
    raw = (
        b"From: a@b.example\r\nContent-Type: text/plain; charset=utf-16\r\n\r\n"
        b"plain \xe9 latin-1 text\r\n"
    )
    assert isinstance(InboundMail.from_bytes(raw).body_text, str)


def test_envelope_from_headers_takes_the_return_path() -> None:
    """The Return-Path the delivering MTA wrote is the sender, not the From header."""
    raw = with_headers(fixture_bytes("new_ticket.eml"), Return_Path="<Bounces@List.Example>")
    envelope = Envelope.from_headers(InboundMail.from_bytes(raw), "imap", WHEN)
    assert envelope.mail_from == "bounces@list.example"
    assert (envelope.channel, envelope.received_at, envelope.rcpt_tos) == ("imap", WHEN, ())


def test_envelope_from_headers_null_return_path_is_the_null_sender() -> None:
    """``Return-Path: <>`` is a bounce: the null sender, even though From names someone."""
    raw = with_headers(fixture_bytes("new_ticket.eml"), Return_Path="<>")
    envelope = Envelope.from_headers(InboundMail.from_bytes(raw), "replay", WHEN)
    assert envelope.mail_from == ""


def test_envelope_from_headers_without_return_path_takes_from() -> None:
    raw = b"From: Carol <Carol@Partner.Example>\r\nSubject: hi\r\n\r\nbody\r\n"
    envelope = Envelope.from_headers(
        InboundMail.from_bytes(raw), "pipe", WHEN, ("support@wildix.com",)
    )
    assert envelope.mail_from == "carol@partner.example"
    assert envelope.rcpt_tos == ("support@wildix.com",)


@pytest.mark.parametrize(
    "given,expected",
    [
        ("MAILER-DAEMON", ""),
        ("mailer-daemon", ""),
        ("<MAILER-DAEMON>", ""),
        ("<>", ""),
        ("", ""),
        ("Alice@Customer.Example", "alice@customer.example"),
        ("mailer-daemon@relay.example", "mailer-daemon@relay.example"),
    ],
)
def test_envelope_sender_reads_postfix_null_sender(given: str, expected: str) -> None:
    """Postfix's pipe expands the null sender to MAILER-DAEMON; a full address stays one."""
    assert envelope_sender(given) == expected


@pytest.mark.parametrize("eol", [b"\r\n", b"\n", b"\r"])
def test_only_the_header_block_is_parsed_and_it_reads_as_the_whole(eol: bytes) -> None:
    head = eol.join([b"From: a@example.com", b"Subject: one", b"  folded", b"X-B: 2", b""])
    body = eol.join([b"Not-A-Header: in the body", b"", b"Subject: nor this", b""])
    raw = head + eol + body
    assert header_block(raw) == head + eol
    mail = InboundMail.from_bytes(raw)
    whole = BytesHeaderParser(policy=compat32).parsebytes(raw)
    assert mail.headers is not None
    assert mail.headers.items() == whole.items()
    assert mail.header_all("Subject") == ["one   folded"]
    assert not mail.has_header("Not-A-Header")
    assert mail.raw_sha256 == hashlib.sha256(raw).hexdigest()  # the digest covers the body


def test_header_block_of_a_message_without_a_body_is_all_of_it() -> None:
    raw = b"From: a@example.com\r\nSubject: no body"
    assert header_block(raw) == raw
    assert InboundMail.from_bytes(raw).subject == "no body"


def test_a_line_that_is_no_header_ends_the_headers_as_before() -> None:
    raw = b"From: a@example.com\r\nthis is no header\r\nSubject: late\r\n\r\nbody\r\n"
    mail = InboundMail.from_bytes(raw)
    whole = BytesHeaderParser(policy=compat32).parsebytes(raw)
    assert mail.headers is not None
    assert mail.headers.items() == whole.items() == [("From", "a@example.com")]
    assert mail.defects == [type(d).__name__ for d in whole.defects]
