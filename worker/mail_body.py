"""The plain-text body of a message: read straight off the raw bytes when it is one
unencoded ASCII ``text/plain`` part, else decoded by mail-parser.

mail-parser copes with lying charsets and every MIME shape, but parses the whole message
again (all headers, every part, its defect lists) to do it: about 1.8 ms for a 4 KB
one-part message, a third of deciding it. For a message with no MIME structure to
interpret (one ``text/plain`` part, no transfer encoding, no attachment markers, only
ASCII bytes, headers read without defects) mail-parser returns the body bytes as they
stand, so they are taken as they stand here (``tests/test_mail_body.py`` holds the two
paths equal over real mail). Anything else goes to mail-parser, as before.
"""

from __future__ import annotations

from email.message import Message

from worker.html_text import html_to_text

_PLAIN_ENCODINGS = ("", "7bit", "8bit")


def body_text(raw: bytes | bytearray, headers: Message | None, header_length: int) -> str:
    """The plain-text body (HTML stripped to text when there is no plain part), or "" when
    it cannot be read. ``headers`` is the parsed header block, ``header_length`` its size
    in ``raw``; ``None`` headers (unparsed or defective) always take mail-parser's path."""
    plain = _unstructured_body(raw, headers, header_length)
    if plain is not None:
        return plain
    return _parsed_body(raw)


def _unstructured_body(
    raw: bytes | bytearray, headers: Message | None, header_length: int
) -> str | None:
    """The body as it stands when nothing about it needs decoding, else None."""
    if headers is None or headers.defects:
        return None
    if headers.get_content_type() != "text/plain" or headers.get_param("name") is not None:
        return None
    if "Content-Disposition" in headers or "Content-ID" in headers:
        return None
    encoding = str(headers.get("Content-Transfer-Encoding", "")).strip().lower()
    if encoding not in _PLAIN_ENCODINGS:
        return None
    body = raw[header_length:]
    if not body.isascii():
        return None
    return body.decode("ascii")


def _parsed_body(raw: bytes | bytearray) -> str:
    try:
        import mailparser  # only for a body that needs it: a pipe process stays light

        parsed = mailparser.parse_from_bytes(raw)
        parts = parsed.text_plain
        if parts:
            return "\n".join(str(p) for p in parts)
        html = "\n".join(str(p) for p in (parsed.text_html or []))
        return html_to_text(html)
    except Exception:
        return ""
