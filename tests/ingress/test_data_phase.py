"""The one-buffer DATA reader over real sockets: the bytes stored are the bytes sent, unstuffed.

Raw socket dialogues (smtplib would normalise line endings and stuff dots itself), against
``serve``'s SMTP and LMTP listeners, on SQLite and PostgreSQL; each stored message is read
back from the store and compared byte for byte.
"""

from __future__ import annotations

import hashlib
import smtplib
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import RunningServer, add_standard_tickets, make_settings
from sqlmodel import Session, select

from worker.pipeline import Mailgate
from worker.store.models import DecisionRow
from worker.store.repository import load_raw

LIMIT = 4000
HEAD = (
    b"From: carla@customer.example\r\nTo: support@wildix.com\r\n"
    b"Subject: Re: [Ticket#1001] logs\r\nMessage-ID: <%s@customer.example>\r\n\r\n"
)


@pytest.fixture
def served(tmp_path: Path, database_url: str) -> Iterator[tuple[Mailgate, RunningServer]]:
    settings = make_settings(
        tmp_path,
        database_url,
        smtp_listen="127.0.0.1:0",
        lmtp_listen="127.0.0.1:0",
        max_message_bytes=LIMIT,
    )
    gate = Mailgate.open(settings)
    add_standard_tickets(gate)
    running = RunningServer(gate)
    yield gate, running
    running.stop()
    gate.engine.dispose()


class Dialogue:
    """One client connection: send bytes, read whole (multi-line) replies."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        # Each sendall leaves as its own segment: the split cases reach the server split.
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.reader = self.sock.makefile("rb")
        assert self.reply().startswith(b"220")

    def reply(self) -> bytes:
        line = self.reader.readline()
        while line[3:4] == b"-":
            line = self.reader.readline()
        return line

    def command(self, line: bytes) -> bytes:
        self.sock.sendall(line + b"\r\n")
        return self.reply()

    def envelope(self, hello: bytes = b"EHLO client.example", rcpts: int = 1) -> None:
        assert self.command(hello).startswith(b"250")
        assert self.command(b"MAIL FROM:<carla@customer.example>").startswith(b"250")
        for rcpt in [b"support@wildix.com", b"helpdesk@wildix.com"][:rcpts]:
            assert self.command(b"RCPT TO:<" + rcpt + b">").startswith(b"250")
        assert self.command(b"DATA").startswith(b"354")

    def close(self) -> None:
        self.command(b"QUIT")
        self.reader.close()
        self.sock.close()


def stored(gate: Mailgate) -> list[bytes]:
    """Every decided message's raw bytes, from the store, checked against its digest."""
    with Session(gate.engine) as session:
        rows = session.scalars(select(DecisionRow).order_by(DecisionRow.seq)).all()
        raws = [load_raw(session, row.raw_sha256) for row in rows]
        assert [hashlib.sha256(r or b"").hexdigest() for r in raws] == [r.raw_sha256 for r in rows]
    return [r for r in raws if r is not None]


def send_data(served: tuple[Mailgate, RunningServer], *pieces: bytes) -> bytes:
    """One SMTP transaction whose DATA is sent in the given pieces; the final reply."""
    dialogue = Dialogue(served[1].port("smtp"))
    dialogue.envelope()
    for piece in pieces:
        dialogue.sock.sendall(piece)
    answer = dialogue.reply()
    dialogue.close()
    return answer


def test_dot_stuffed_lines_lose_exactly_one_leading_dot(
    served: tuple[Mailgate, RunningServer],
) -> None:
    """RFC 5321 4.5.2: a line sent as '..x' is stored as '.x'; '...' as '..'."""
    body = b"..leading dot\r\n...\r\nmiddle . dot\r\n.. \r\n"
    answer = send_data(served, HEAD % b"dots" + body + b".\r\n")
    assert answer.startswith(b"250 2.0.0")
    assert stored(served[0]) == [HEAD % b"dots" + b".leading dot\r\n..\r\nmiddle . dot\r\n. \r\n"]


def test_message_at_the_limit_is_accepted_one_byte_more_gets_552(
    served: tuple[Mailgate, RunningServer],
) -> None:
    """The limit counts the bytes on the wire (dots included, terminator not); after the
    552 the same session still delivers a message."""
    gate, running = served
    exact = padded(HEAD % b"exact" + b"..x\r\n", LIMIT)
    over = padded(HEAD % b"over", LIMIT + 1)
    dialogue = Dialogue(running.port("smtp"))
    dialogue.envelope()
    dialogue.sock.sendall(exact + b".\r\n")
    assert dialogue.reply().startswith(b"250 2.0.0")
    dialogue.envelope()
    dialogue.sock.sendall(over + b".\r\n")
    assert dialogue.reply().startswith(b"552 5.3.4")
    dialogue.envelope()
    dialogue.sock.sendall(HEAD % b"after" + b"still here\r\n.\r\n")
    assert dialogue.reply().startswith(b"250 2.0.0")
    dialogue.close()
    assert stored(gate) == [exact.replace(b"..x", b".x"), HEAD % b"after" + b"still here\r\n"]


def padded(start: bytes, size: int) -> bytes:
    """``start`` and lines of 'y' up to exactly ``size`` bytes, no line over 80."""
    full, rest = divmod(size - len(start) - 2, 80)
    raw = start + (b"y" * 78 + b"\r\n") * full + b"y" * rest + b"\r\n"
    assert len(raw) == size
    return raw


def test_bare_lf_line_endings_are_kept_as_sent(served: tuple[Mailgate, RunningServer]) -> None:
    """Only CRLF ends a line: bare LFs (and a bare-LF '.') are content, byte for byte."""
    raw = b"From: carla@customer.example\nTo: support@wildix.com\nMessage-ID: <lf@c.example>\n\n"
    body = b"first\n.\nsecond\r\n"
    answer = send_data(served, raw + body + b".\r\n")
    assert answer.startswith(b"250 2.0.0")
    assert stored(served[0]) == [raw + body]


def test_over_long_line_gets_500_and_the_session_goes_on(
    served: tuple[Mailgate, RunningServer],
) -> None:
    """A line beyond 1001 bytes (here bare-LF text with no CRLF for 1,500 bytes): the data
    is read to its end, refused with 500 5.5.6, and the next transaction is accepted."""
    gate, running = served
    dialogue = Dialogue(running.port("smtp"))
    dialogue.envelope()
    dialogue.sock.sendall(HEAD % b"long" + b"w\n" * 750 + b"\r\n.\r\n")
    assert dialogue.reply().startswith(b"500 5.5.6")
    dialogue.envelope()
    dialogue.sock.sendall(HEAD % b"short" + b"fine\r\n.\r\n")
    assert dialogue.reply().startswith(b"250 2.0.0")
    dialogue.close()
    assert stored(gate) == [HEAD % b"short" + b"fine\r\n"]


@pytest.mark.parametrize(
    "pieces",
    [
        [b"\r\n", b".", b"\r", b"\n"],
        [b"\r", b"\n.\r", b"\n"],
        [b"\r\n.", b"\r\n"],
    ],
    ids=["byte-by-byte", "cr-lf-split", "dot-then-crlf"],
)
def test_terminator_split_across_segments(
    served: tuple[Mailgate, RunningServer], pieces: list[bytes]
) -> None:
    body = HEAD % b"split" + b"last line"
    answer = send_data(served, body, *pieces)
    assert answer.startswith(b"250 2.0.0")
    assert stored(served[0]) == [body + b"\r\n"]


def test_eight_bit_and_utf8_bytes_are_stored_intact(
    served: tuple[Mailgate, RunningServer],
) -> None:
    """SMTPUTF8 headers, Latin-1 bytes and invalid UTF-8 in the body: stored unchanged."""
    gate, running = served
    raw = (
        "From: Zoë <carla@customer.example>\r\nTo: support@wildix.com\r\n"
        "Subject: Re: [Ticket#1001] журналы\r\nMessage-ID: <utf8@customer.example>\r\n\r\n"
        "Grüße, 日本語\r\n"
    ).encode() + b"latin-1: caf\xe9\r\nbroken: \xff\xfe\xc3\r\n"
    dialogue = Dialogue(running.port("smtp"))
    assert dialogue.command(b"EHLO client.example").startswith(b"250")
    assert dialogue.command(b"MAIL FROM:<carla@customer.example> SMTPUTF8 BODY=8BITMIME")[:3] == (
        b"250"
    )
    assert dialogue.command(b"RCPT TO:<support@wildix.com>").startswith(b"250")
    assert dialogue.command(b"DATA").startswith(b"354")
    dialogue.sock.sendall(raw + b".\r\n")
    assert dialogue.reply().startswith(b"250 2.0.0")
    dialogue.close()
    assert stored(gate) == [raw]


def test_lmtp_answers_each_recipient_for_one_stored_message(
    served: tuple[Mailgate, RunningServer],
) -> None:
    gate, running = served
    dialogue = Dialogue(running.port("lmtp"))
    dialogue.envelope(hello=b"LHLO client.example", rcpts=2)
    dialogue.sock.sendall(HEAD % b"lmtp" + b"..dotted\r\n.\r\n")
    answers = [dialogue.reply(), dialogue.reply()]
    assert all(a.startswith(b"250 2.0.0") for a in answers), answers
    dialogue.close()
    assert stored(gate) == [HEAD % b"lmtp" + b".dotted\r\n"]


def test_many_lines_through_smtplib_arrive_byte_for_byte(tmp_path: Path, database_url: str) -> None:
    """A 3 MB message of 40,000 lines (some dot-stuffed by smtplib): the buffer the
    reader grows line by line holds exactly the message."""
    gate = Mailgate.open(make_settings(tmp_path, database_url, smtp_listen="127.0.0.1:0"))
    add_standard_tickets(gate)
    running = RunningServer(gate)
    try:
        lines = [b".%05d %s" % (n, bytes([65 + n % 26]) * 64) for n in range(40_000)]
        raw = HEAD % b"many" + b"\r\n".join(lines) + b"\r\n"
        with smtplib.SMTP("127.0.0.1", running.port("smtp"), timeout=60) as smtp:
            smtp.sendmail("carla@customer.example", ["support@wildix.com"], raw)
        assert stored(gate) == [raw]
    finally:
        running.stop()
        gate.engine.dispose()


def test_help_still_lists_data(served: tuple[Mailgate, RunningServer]) -> None:
    """The overridden DATA keeps aiosmtpd's HELP text."""
    dialogue = Dialogue(served[1].port("smtp"))
    assert dialogue.command(b"EHLO client.example").startswith(b"250")
    assert dialogue.command(b"HELP DATA") == b"250 Syntax: DATA\r\n"
    assert b" DATA" in dialogue.command(b"HELP")
    dialogue.close()
