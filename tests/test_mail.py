"""``InboundMail`` never raises, keeps the bytes, and strips control characters from headers."""

from __future__ import annotations

from helpers import fixture_bytes

from worker.mail import InboundMail, normalize_address


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
