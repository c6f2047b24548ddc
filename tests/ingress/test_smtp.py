"""SMTP and LMTP over real sockets: smtplib and raw dialogues against our own listener."""

from __future__ import annotations

import smtplib
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import (
    RunningServer,
    add_standard_tickets,
    fixture_bytes,
    make_settings,
    outbox_files,
    with_headers,
)
from sqlalchemy import create_engine
from sqlmodel import Session, select

from worker.pipeline import Mailgate
from worker.store.models import DecisionRow


@pytest.fixture
def served(
    tmp_path: Path, database_url: str, request: pytest.FixtureRequest
) -> Iterator[tuple[Mailgate, RunningServer]]:
    overrides = getattr(request, "param", {})
    gate = Mailgate.open(
        make_settings(
            tmp_path,
            database_url,
            smtp_listen="127.0.0.1:0",
            lmtp_listen="127.0.0.1:0",
            **overrides,
        )
    )
    add_standard_tickets(gate)
    running = RunningServer(gate)
    yield gate, running
    running.stop()
    gate.engine.dispose()


def client(running: RunningServer) -> smtplib.SMTP:
    return smtplib.SMTP("127.0.0.1", running.port("smtp"), timeout=30)


def decisions(gate: Mailgate) -> list[DecisionRow]:
    with Session(gate.engine) as session:
        return list(session.scalars(select(DecisionRow).order_by(DecisionRow.seq)).all())


def test_new_ticket_mail_gets_250_after_commit(served: tuple[Mailgate, RunningServer]) -> None:
    """250 is answered only when the decision row exists."""
    gate, running = served
    with client(running) as smtp:
        code, message = smtp.data_response = (0, b"")  # type: ignore[attr-defined]
        smtp.ehlo()
        smtp.mail("alice@customer.example")
        smtp.rcpt("support@wildix.com")
        code, message = smtp.data(fixture_bytes("new_ticket.eml"))
    assert code == 250 and message.startswith(b"2.0.0 Ok: queued as ")
    assert [r.public_id for r in decisions(gate)] == [message.split()[-1].decode()]
    rows = decisions(gate)
    assert [r.decision for r in rows] == ["rejected_new_ticket"]
    assert rows[0].channel == "smtp" and rows[0].envelope_from == "alice@customer.example"
    assert len(outbox_files(gate)) == 1


def test_foreign_recipient_is_refused_never_relayed(
    served: tuple[Mailgate, RunningServer],
) -> None:
    """RCPT outside the support domains: 550 5.1.1."""
    _, running = served
    with client(running) as smtp:
        smtp.ehlo()
        smtp.mail("spammer@example.net")
        code, message = smtp.rcpt("victim@gmail.com")
    assert code == 550 and message.startswith(b"5.1.1")


def test_oversize_is_refused_with_552(tmp_path: Path, database_url: str) -> None:
    """Beyond MAILGATE_MAX_MESSAGE_BYTES: 552 and nothing recorded."""
    gate = Mailgate.open(
        make_settings(tmp_path, database_url, smtp_listen="127.0.0.1:0", max_message_bytes=1000)
    )
    running = RunningServer(gate)
    try:
        with client(running) as smtp:
            smtp.ehlo()
            assert smtp.has_extn("size") and smtp.esmtp_features["size"] == "1000"
            smtp.mail("alice@customer.example")
            smtp.rcpt("support@wildix.com")
            code, _ = smtp.data(fixture_bytes("new_ticket.eml") + (b"x" * 70 + b"\r\n") * 40)
        assert code == 552
        assert decisions(gate) == []
    finally:
        running.stop()


def test_database_down_answers_451_then_accepts_once_back(
    served: tuple[Mailgate, RunningServer],
) -> None:
    """Storage failure: 451 4.3.0 without details; the retry after recovery is accepted."""
    gate, running = served
    working = gate.engine
    broken = create_engine(
        "postgresql+psycopg://nobody@127.0.0.1:9/none", connect_args={"connect_timeout": 2}
    )
    gate.engine, gate.read_engine, gate.recorder.engine = broken, broken, broken
    raw = fixture_bytes("new_ticket.eml")
    with client(running) as smtp:
        smtp.ehlo()
        smtp.mail("alice@customer.example")
        smtp.rcpt("support@wildix.com")
        code, message = smtp.data(raw)
    assert (code, message) == (451, b"4.3.0 Temporary failure, message not accepted; please retry")
    gate.engine, gate.recorder.engine = working, working
    gate.read_engine = working.execution_options(mailgate_read=True)
    with client(running) as smtp:
        code, _ = smtp.sendmail("alice@customer.example", ["support@wildix.com"], raw) or (250, b"")
    assert [r.decision for r in decisions(gate)] == ["rejected_new_ticket"]
    assert len(outbox_files(gate)) == 1


@pytest.mark.parametrize("served", [{"reject_mode": "smtp"}], indirect=True)
def test_reject_mode_smtp_answers_550_with_the_wmp_pointer(
    served: tuple[Mailgate, RunningServer],
) -> None:
    """MAILGATE_REJECT_MODE=smtp: 550 5.7.1 in the dialogue, recorded, no reply queued."""
    gate, running = served
    with client(running) as smtp:
        smtp.ehlo()
        smtp.mail("alice@customer.example")
        smtp.rcpt("support@wildix.com")
        code, message = smtp.data(fixture_bytes("new_ticket.eml"))
    assert code == 550 and message.startswith(b"5.7.1") and b"WMP" in message
    assert b"https://wmp.wildix.com" in message
    rows = decisions(gate)
    assert [(r.decision, r.reply_status) for r in rows] == [
        ("rejected_new_ticket", "smtp_rejected")
    ]
    assert outbox_files(gate) == []
    with client(running) as smtp:  # a genuine follow-up is still accepted
        smtp.sendmail(
            "bob@partner.example", ["support@wildix.com"], fixture_bytes("followup_subject_tag.eml")
        )


def lmtp_dialogue(port: int, commands: list[tuple[bytes, int]]) -> list[bytes]:
    """Send each command, read the number of replies it should get; return every line."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        reader = sock.makefile("rb")
        lines = [reader.readline()]
        for command, expected in commands:
            sock.sendall(command)
            for _ in range(expected):
                line = reader.readline()
                lines.append(line)
                while line[3:4] == b"-":
                    line = reader.readline()
                    lines.append(line)
        return lines


def test_lmtp_answers_once_per_recipient(served: tuple[Mailgate, RunningServer]) -> None:
    """LMTP with two accepted recipients: two status lines after the final dot."""
    gate, running = served
    body = fixture_bytes("new_ticket.eml").replace(b"\n", b"\r\n").replace(b"\r\r\n", b"\r\n")
    lines = lmtp_dialogue(
        running.port("lmtp"),
        [
            (b"LHLO client.example\r\n", 1),
            (b"MAIL FROM:<alice@customer.example>\r\n", 1),
            (b"RCPT TO:<support@wildix.com>\r\n", 1),
            (b"RCPT TO:<helpdesk@wildix.com>\r\n", 1),
            (b"RCPT TO:<elsewhere@example.net>\r\n", 1),
            (b"DATA\r\n", 1),
            (body.rstrip(b"\r\n") + b"\r\n", 0),
            (b".\r\n", 2),
        ],
    )
    assert lines[0].startswith(b"220")
    assert any(line.startswith(b"550 5.1.1") for line in lines)
    final = lines[-2:]
    assert all(line.startswith(b"250 2.0.0") for line in final), lines
    rows = decisions(gate)
    assert len(rows) == 1 and rows[0].channel == "lmtp"
    assert rows[0].recipients == ["support@wildix.com", "helpdesk@wildix.com"]


@pytest.mark.parametrize("fake_end", [b"\n.\n", b"\r\n.\n", b"\n.\r\n", b"\r.\r\n", b"\r\n.\r"])
def test_smtp_smuggling_bare_lf_dot_creates_no_second_message(
    served: tuple[Mailgate, RunningServer], fake_end: bytes
) -> None:
    """Bare-LF/CR variants of the end-of-data marker are content, not the end of DATA."""
    gate, running = served
    smuggled = (
        b"From: alice@customer.example\r\nTo: support@wildix.com\r\n"
        b"Subject: first\r\nMessage-ID: <smuggle-1@customer.example>\r\n\r\nhello"
        + fake_end
        + b"MAIL FROM:<ceo@wildix.com>\r\nRCPT TO:<support@wildix.com>\r\nDATA\r\n"
        b"From: ceo@wildix.com\r\nSubject: smuggled\r\n\r\nx\r\n.\n"
        b"more\r\n"
    )
    with socket.create_connection(("127.0.0.1", running.port("smtp")), timeout=30) as sock:
        reader = sock.makefile("rb")
        reader.readline()
        for command in (
            b"EHLO c\r\n",
            b"MAIL FROM:<alice@customer.example>\r\n",
            b"RCPT TO:<support@wildix.com>\r\n",
            b"DATA\r\n",
        ):
            sock.sendall(command)
            line = reader.readline()
            while line[3:4] == b"-":
                line = reader.readline()
        sock.sendall(smuggled + b"\r\n.\r\n")
        final = reader.readline()
        sock.sendall(b"QUIT\r\n")
        reader.readline()
    assert final.startswith(b"250")
    rows = decisions(gate)
    assert len(rows) == 1 and rows[0].message_id == "<smuggle-1@customer.example>"


def test_crlf_injection_in_subject_adds_no_header_to_the_reply(
    served: tuple[Mailgate, RunningServer],
) -> None:
    """An encoded CR/LF in the subject stays inside the reply's Subject."""
    gate, running = served
    raw = with_headers(
        fixture_bytes("new_ticket.eml"), Subject="=?utf-8?q?Hi=0D=0ABcc=3A_victim=40example=2Ecom?="
    )
    with client(running) as smtp:
        smtp.sendmail("alice@customer.example", ["support@wildix.com"], raw)
    reply = outbox_files(gate)[0].read_bytes()
    assert b"\nBcc:" not in reply and b"victim@example.com" in reply.split(b"\r\n\r\n")[0]


def test_postfix_smtp_source_burst_is_decided_once_each(
    served: tuple[Mailgate, RunningServer],
) -> None:
    """Postfix's smtp-source, 10 sessions with connection reuse: every message one decision."""
    import shutil
    import subprocess

    from worker.audit import verify_chain
    from worker.store.models import ChainHead
    from worker.store.repository import iter_chain

    if shutil.which("smtp-source") is None:
        pytest.skip("smtp-source missing (Debian package postfix; scripts/test installs it)")
    gate, running = served
    result = subprocess.run(
        [
            "smtp-source",
            "-d",
            "-s",
            "10",
            "-m",
            "200",
            "-l",
            "4000",
            "-f",
            "bob@partner.example",
            "-t",
            "support@wildix.com",
            "-S",
            "Re: [Ticket#1001] burst",
            f"127.0.0.1:{running.port('smtp')}",
        ],
        capture_output=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    rows = decisions(gate)
    assert len(rows) == 200
    assert {r.decision for r in rows} == {"accepted_followup"}
    assert len({r.message_id for r in rows}) == 200
    with Session(gate.engine) as session:
        head = session.get(ChainHead, 1)
        assert head is not None
        assert verify_chain(iter_chain(session), head.seq, head.digest).ok
