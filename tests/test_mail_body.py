"""The body read off the raw bytes (one unencoded ASCII text/plain part) is what mail-parser
reads, over real mail and over the shapes that must still go to mail-parser."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import with_headers

from worker import mail_body
from worker.mail import InboundMail, header_block


def _both(raw: bytes) -> tuple[str | None, str]:
    mail = InboundMail.from_bytes(raw)
    headers = None if mail.parse_error else mail.headers
    length = len(header_block(raw))
    return mail_body._unstructured_body(raw, headers, length), mail_body._parsed_body(raw)


def test_real_mail_reads_the_same_either_way(
    cpython_email_corpus: list[Path], flufl_bounces: list[Path]
) -> None:
    taken = 0
    for path in [*cpython_email_corpus, *flufl_bounces]:
        raw = path.read_bytes()
        fast, parsed = _both(raw)
        if fast is not None:
            taken += 1
            assert fast == parsed, path.name
        assert InboundMail.from_bytes(raw).body_text == (fast if fast is not None else parsed)
    assert taken >= 20, f"only {taken} messages took the direct path: it proves little"


PLAIN = b"From: a@customer.example\r\nTo: support@wildix.com\r\nSubject: hi\r\n\r\nHello\r\n"


@pytest.mark.parametrize(
    ("headers", "body"),
    [
        ({}, b"Hello there\r\nsecond line\r\n"),
        ({"Content_Type": "text/plain; charset=us-ascii"}, b"plain\r\n"),
        ({"Content_Transfer_Encoding": " 7BIT "}, b"upper-case encoding\r\n"),
        ({"Content_Type": "TEXT/PLAIN"}, b"upper-case type\r\n"),
        ({}, b""),
    ],
)
def test_plain_ascii_bodies_are_read_directly_and_equal(
    headers: dict[str, str], body: bytes
) -> None:
    raw = with_headers(PLAIN.split(b"\r\n\r\n")[0] + b"\r\n\r\n", **headers) + body
    fast, parsed = _both(raw)
    assert fast is not None
    assert fast == parsed


@pytest.mark.parametrize(
    ("headers", "body"),
    [
        ({"Content_Type": "text/plain; charset=utf-8"}, "Grüße\r\n".encode()),
        ({"Content_Transfer_Encoding": "base64"}, b"SGVsbG8=\r\n"),
        ({"Content_Transfer_Encoding": "quoted-printable"}, b"caf=C3=A9\r\n"),
        ({"Content_Type": "text/html"}, b"<p>Hello</p>\r\n"),
        ({"Content_Disposition": "attachment; filename=a.txt"}, b"file\r\n"),
        ({"Content_Type": 'text/plain; name="a.txt"'}, b"file\r\n"),
        ({"Content_ID": "<part@x>"}, b"inline\r\n"),
    ],
)
def test_anything_to_interpret_goes_to_mail_parser(headers: dict[str, str], body: bytes) -> None:
    raw = with_headers(PLAIN.split(b"\r\n\r\n")[0] + b"\r\n\r\n", **headers) + body
    fast, parsed = _both(raw)
    assert fast is None
    assert InboundMail.from_bytes(raw).body_text == parsed


def test_multipart_and_defective_headers_go_to_mail_parser() -> None:
    multipart = (
        b"From: a@customer.example\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/alternative; boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: text/plain\r\n\r\nplain part\r\n"
        b"--b\r\nContent-Type: text/html\r\n\r\n<p>html part</p>\r\n--b--\r\n"
    )
    defective = b"From: a@customer.example\r\nno colon on this line\r\n\r\nbody\r\n"
    for raw in (multipart, defective):
        fast, parsed = _both(raw)
        assert fast is None
        assert InboundMail.from_bytes(raw).body_text == parsed
    assert "plain part" in InboundMail.from_bytes(multipart).body_text
