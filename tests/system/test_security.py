"""Nobody posts where they don't belong: guessed numbers, forged tokens, relaying."""

from __future__ import annotations

import smtplib
from pathlib import Path

from helpers import RunningServer, envelope, fixture_bytes, make_settings, with_headers

from worker.pipeline import Mailgate
from worker.tickets import TicketRecord, upsert


def test_thousand_guessed_ticket_numbers_from_strangers(tmp_path: Path) -> None:
    """Tickets 1..1000 exist; a stranger tries every number: nothing is accepted."""
    gate = Mailgate.open(make_settings(tmp_path))
    upsert(
        gate.engine,
        [
            TicketRecord(
                id=str(n),
                kind="technical",
                participants=[f"owner{n}@partner.example"],
                domains=["partner.example"],
            )
            for n in range(1, 1001)
        ],
    )
    base = fixture_bytes("followup_subject_tag.eml")
    messages = [
        (
            with_headers(
                base,
                Subject=f"Re: [Ticket#{n}] update",
                From="eve@attacker.example",
                Message_ID=f"<guess-{n}@attacker.example>",
            ),
            envelope("eve@attacker.example"),
        )
        for n in range(1, 1001)
    ]
    decisions = []
    for start in range(0, 1000, 100):
        decisions += gate.ingest_many(messages[start : start + 100])
    assert {d.decision for d in decisions} == {"rejected_unauthorized_sender"}
    assert sum(d.reply.status == "queued" for d in decisions) == 1, "one reply per window"


def test_cross_ticket_and_foreign_domain_tokens(tmp_path: Path) -> None:
    """A valid token for ticket 1 does not open ticket 2; tokens of other domains are ignored."""
    gate = Mailgate.open(make_settings(tmp_path))
    upsert(
        gate.engine,
        [TicketRecord(id="1", kind="technical"), TicketRecord(id="2", kind="technical")],
    )
    tag_of_1 = gate.tokens.tag("1")
    for number, address in enumerate(
        (f"support+2.{tag_of_1}@wildix.com", f"support+1.{tag_of_1}@evil.example")
    ):
        raw = with_headers(
            fixture_bytes("new_ticket.eml"), To=address, Message_ID=f"<cross-{number}@x.example>"
        )
        decision = gate.ingest(raw, envelope("eve@attacker.example", address))
        assert decision.decision != "accepted_followup", address
    minted_elsewhere = gate.tokens.message_id("1", "evil.example")
    raw = with_headers(
        fixture_bytes("new_ticket.eml"),
        In_Reply_To=minted_elsewhere,
        Message_ID="<cross-3@x.example>",
    )
    assert gate.ingest(raw, envelope("eve@attacker.example")).decision == "rejected_new_ticket"


def test_never_an_open_relay(tmp_path: Path) -> None:
    """Every recipient outside the support domains is refused, in every spelling tried."""
    gate = Mailgate.open(make_settings(tmp_path, None, smtp_listen="127.0.0.1:0"))
    running = RunningServer(gate)
    try:
        with smtplib.SMTP("127.0.0.1", running.port("smtp"), timeout=30) as smtp:
            smtp.ehlo()
            smtp.mail("spammer@example.net")
            for target in (
                "victim@gmail.com",
                "victim@wildix.com.evil.example",
                "@wildix.com:victim@gmail.com",
                "victim%gmail.com@evil.example",
                '"victim@gmail.com"@evil.example',
                "victim@[192.0.2.1]",
                "victim@gmail.com@wildix.com",
            ):
                code, _ = smtp.rcpt(target)
                assert code >= 500, target
            code, _ = smtp.rcpt("support@wildix.com")
            assert code == 250
    finally:
        running.stop()
