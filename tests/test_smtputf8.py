"""International addresses end to end (RFC 6531/6532): a raw UTF-8 message in over SMTP with
SMTPUTF8, its reply out through a relay with the subject intact; IDN domains as A-labels; a
relay without SMTPUTF8 fails such a reply permanently at once; the spool writes it too."""

from __future__ import annotations

import email
import smtplib
from collections.abc import Iterator
from email.policy import default
from pathlib import Path

import pytest
from helpers import SECRET, RelaySink, RunningServer, envelope, make_settings
from sqlmodel import Session, select

from worker.dispatcher import NO_SMTPUTF8, Dispatcher
from worker.pipeline import Mailgate
from worker.store.models import OutboxRow

SUBJECT = "Störung der Telefonanlage – 电话无法注册"


def utf8_message(sender: str) -> bytes:
    return (
        f"From: Jörg Müller <{sender}>\r\nTo: Support <support@wildix.com>\r\n"
        f"Subject: {SUBJECT}\r\nMessage-ID: <intl-1@customer.example>\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n\r\n"
        "Guten Tag, seit dem Update registrieren sich zwei Telefone nicht mehr.\r\n"
    ).encode()


@pytest.fixture
def utf8_relay() -> Iterator[RelaySink]:
    sink = RelaySink(smtputf8=True)
    yield sink
    sink.stop()


@pytest.fixture
def ascii_relay() -> Iterator[RelaySink]:
    sink = RelaySink()
    yield sink
    sink.stop()


def outbox(gate: Mailgate) -> list[OutboxRow]:
    with Session(gate.engine) as session:
        return list(session.scalars(select(OutboxRow)).all())


def test_utf8_message_over_smtputf8_gets_its_reply_with_the_subject_intact(
    tmp_path: Path, utf8_relay: RelaySink
) -> None:
    gate = Mailgate.open(
        make_settings(tmp_path, relay_url=utf8_relay.url, smtp_listen="127.0.0.1:0")
    )
    running = RunningServer(gate)
    try:
        with smtplib.SMTP("127.0.0.1", running.port("smtp"), timeout=30) as smtp:
            smtp.ehlo()
            assert smtp.has_extn("smtputf8")
            smtp.sendmail(
                "jörg@customer.example",
                ["support@wildix.com"],
                utf8_message("jörg@customer.example"),
                mail_options=["SMTPUTF8"],
            )
        utf8_relay.wait_for(1)
    finally:
        running.stop()
    mail_from, rcpts, body = utf8_relay.messages[0]
    assert (mail_from, rcpts) == ("<>", ["jörg@customer.example"])
    reply = email.message_from_bytes(body, policy=default)
    assert str(reply["Subject"]) == f"Auto: {SUBJECT}"
    assert str(reply["To"]) == "Jörg Müller <jörg@customer.example>", "display name kept"
    assert reply["Content-Language"] == "de"
    assert body.split(b"\r\n\r\n")[0].count(b"Subject: =?utf-8?") == 1  # RFC 2047, 7-bit
    assert [(r.status, r.attempts) for r in outbox(gate)] == [("sent", 1)]


def test_idn_domain_is_sent_as_a_label_through_a_plain_relay(
    tmp_path: Path, ascii_relay: RelaySink
) -> None:
    gate = Mailgate.open(make_settings(tmp_path, relay_url=ascii_relay.url))
    gate.ingest(utf8_message("user@bücher.example"), envelope("user@bücher.example"))
    assert Dispatcher(gate.engine, ascii_relay.url, SECRET.encode()).run_once() == 1
    mail_from, rcpts, body = ascii_relay.messages[0]
    assert mail_from == "<>"
    assert rcpts == ["user@xn--bcher-kva.example"]
    assert b"\r\n <user@xn--bcher-kva.example>\r\n" in body, "the A-label after the name"
    assert [r.status for r in outbox(gate)] == ["sent"]


def test_utf8_local_part_without_smtputf8_fails_permanently_at_once(
    tmp_path: Path, ascii_relay: RelaySink
) -> None:
    gate = Mailgate.open(make_settings(tmp_path, relay_url=ascii_relay.url))
    gate.ingest(utf8_message("jörg@customer.example"), envelope("jörg@customer.example"))
    dispatcher = Dispatcher(gate.engine, ascii_relay.url, SECRET.encode())
    assert dispatcher.run_once() == 1
    assert [(r.status, r.attempts, r.last_error) for r in outbox(gate)] == [
        ("failed", 1, NO_SMTPUTF8)
    ]
    assert dispatcher.run_once() == 0 and ascii_relay.messages == []


def test_spool_writes_a_reply_to_a_utf8_address(tmp_path: Path) -> None:
    gate = Mailgate.open(make_settings(tmp_path))
    decision = gate.ingest(utf8_message("jörg@customer.example"), envelope("jörg@customer.example"))
    assert decision.reply.status == "queued"
    files = sorted(gate.settings.outbox_dir.glob("*.eml"))
    assert len(files) == 1
    spooled = files[0].read_bytes()
    assert "X-Mailgate-Envelope-To: <jörg@customer.example>".encode() in spooled
    assert str(email.message_from_bytes(spooled, policy=default)["Subject"]) == f"Auto: {SUBJECT}"
