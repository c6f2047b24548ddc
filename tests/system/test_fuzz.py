"""Generated malformed mail through the pipeline and over SMTP: never a crash, never an
exception, every message decided (or quarantined), and no reply carries CR/LF or a header
taken from the input. ``MAILGATE_FUZZ_EXAMPLES`` sets the pipeline run (10,000 by default);
the run is derandomized so a failure reproduces."""

from __future__ import annotations

import email
import os
import smtplib
from collections.abc import Iterator
from email.policy import default
from pathlib import Path

import pytest
from helpers import RunningServer, add_standard_tickets, envelope, make_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from worker.decision import DECISIONS
from worker.pipeline import Mailgate

EXAMPLES = int(os.environ.get("MAILGATE_FUZZ_EXAMPLES", "10000"))
REPLY_HEADERS = {
    "from",
    "to",
    "subject",
    "date",
    "message-id",
    "auto-submitted",
    "x-auto-response-suppress",
    "in-reply-to",
    "references",
    "content-language",
    "content-type",
    "content-transfer-encoding",
    "mime-version",
}

names = st.sampled_from(
    [
        "From",
        "To",
        "Cc",
        "Subject",
        "Message-ID",
        "In-Reply-To",
        "References",
        "Date",
        "Return-Path",
        "Content-Type",
        "Content-Transfer-Encoding",
        "MIME-Version",
        "Received",
        "Auto-Submitted",
        "Precedence",
        "List-Id",
        "X-Injected",
        "X-Auto-Response-Suppress",
        "Authentication-Results",
        "Bcc",
        "Reply-To",
        "From ",
        " Subject",
        "Subject\x00",
    ]
)
nasty_text = st.one_of(
    st.text(max_size=80),
    st.binary(max_size=80).map(lambda b: b.decode("latin-1")),
    st.sampled_from(
        [
            "=?utf-8?q?Hi=0D=0AX-Injected=3A_yes?=",
            "=?bogus-charset?b?SGVsbG8=?=",
            "=?utf-8?b?notbase64!!?=",
            "=?utf-8?q?unterminated",
            "[Ticket#1001]",
            "Re: [Ticket#99",
            "<a@b>",
            "<ticket.1001.abc.0000000000000000@wildix.com>",
            "support@wildix.com",
            "multipart/mixed; boundary=",
            'multipart/mixed; boundary="x"',
            "text/plain; charset=zz",
            "text/plain; charset=utf-16",
            "message/rfc822",
            "multipart/report",
            "\r\nBcc: v@x.example",
            "x" * 2000,
            "\x00\x01\x02",
            "Ωmega ünïcode 回复",
            "",
        ]
    ),
)
header_lines = st.lists(st.tuples(names, nasty_text), max_size=12)
bodies = st.one_of(
    st.binary(max_size=600),
    st.sampled_from(
        [
            b"--x\r\nContent-Type: text/plain\r\n\r\nhi\r\n",  # boundary never closed
            b"--x\r\n" * 40,
            b"\r\n".join([b"--x\r\nContent-Type: multipart/mixed; boundary=x\r\n"] * 50),
            b"\xff\xfe\x00\x00" * 100,
            b"A" * 5000 + b"\r\n",
            b"Buongiorno, il telefono non funziona ancora dopo l'aggiornamento.\r\n",
        ]
    ),
)


def assemble(lines: list[tuple[str, str]], body: bytes, with_separator: bool) -> bytes:
    head = b"".join(f"{n}: {v}\r\n".encode("utf-8", "surrogateescape") for n, v in lines)
    return head + (b"\r\n" if with_separator else b"") + body


messages = st.builds(assemble, header_lines, bodies, st.booleans())


def check_reply(body: bytes) -> None:
    reply = email.message_from_bytes(body, policy=default)
    names_seen = {name.lower() for name in reply}
    assert names_seen <= REPLY_HEADERS, names_seen - REPLY_HEADERS
    raw_head = body.split(b"\r\n\r\n", 1)[0]
    for line in raw_head.split(b"\r\n"):
        assert b"\r" not in line and b"\n" not in line and b"\x00" not in line
        assert not line.lower().startswith((b"x-injected", b"bcc"))


@pytest.fixture(scope="module")
def fuzz_gate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mailgate]:
    gate = Mailgate.open(make_settings(tmp_path_factory.mktemp("fuzz")))
    add_standard_tickets(gate)
    yield gate
    gate.engine.dispose()


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)
@given(
    raw=messages,
    sender=st.sampled_from(
        ["", "alice@customer.example", "bob@partner.example", "MAILER-DAEMON@x.example", "a@b"]
    ),
)
def test_pipeline_decides_anything(fuzz_gate: Mailgate, raw: bytes, sender: str) -> None:
    pending = fuzz_gate.decide(raw, envelope(sender))
    assert pending.decision.decision in DECISIONS
    assert pending.decision.trace and pending.decision.raw_sha256
    for item in pending.outbox:
        if item.kind == "auto_reply":
            check_reply(item.body)


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    gate = Mailgate.open(
        make_settings(tmp_path_factory.mktemp("fuzz-smtp"), None, smtp_listen="127.0.0.1:0")
    )
    running = RunningServer(gate)
    yield running
    running.stop()
    gate.engine.dispose()


@settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)
@given(raw=messages)
def test_smtp_listener_answers_and_stays_up(fuzz_server: RunningServer, raw: bytes) -> None:
    port = fuzz_server.port("smtp")
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
        smtp.ehlo()
        smtp.mail("alice@customer.example")
        smtp.rcpt("support@wildix.com")
        # Bare CR/LF in generated data: send as smtplib would after normalising line ends.
        code, _ = smtp.data(raw)
        assert code == 250 or 500 <= code < 600, code
        assert smtp.noop()[0] == 250, "the listener is still up"
    for path in Path(fuzz_server.server.gate.settings.outbox_dir).glob("*.eml"):
        check_reply(path.read_bytes().split(b"\r\n", 2)[2])
