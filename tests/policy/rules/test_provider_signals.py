"""Automated mail that carries none of the standard signals, known by its provider's marks
(issue 11), and the people who must still be answered although they look a little like it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import add_standard_tickets, envelope, fixture_bytes, make_settings, with_headers

from worker.pipeline import Mailgate


@pytest.fixture
def gate(tmp_path: Path) -> Iterator[Mailgate]:
    instance = Mailgate.open(make_settings(tmp_path))
    add_standard_tickets(instance)
    yield instance
    instance.engine.dispose()


MACHINE_HEADERS = {
    "icloud vacation": {"X_Apple_Action": "VACATION"},
    "icloud vacation message-id": {"Message_ID": "<A1B2C3-vac@icloud.com>"},
    "exchange inbox rule loop": {"X_MS_Exchange_Inbox_Rules_Loop": "alice@customer.example"},
    "exchange rules agent": {"X_MS_Exchange_Generated_Message_Source": "Mailbox Rules Agent"},
    "gmail autoreply": {"X_Autoreply": "yes"},
    "fml list server": {"X_MLServer": "fml [fml 4.0.3 release]", "X_ML_Name": "users"},
    "mailman 2": {"X_Mailman_Version": "2.1.39"},
    "list sequence": {"X_Sequence": "1234"},
    "bluebottle challenge": {"X_Bluebottle_Request": "sender-verify"},
    "boxtrapper challenge": {"X_Boxtrapper": "1.2"},
    "tmda challenge": {"X_Delivery_Agent": "TMDA/1.1.12 (Macallan)"},
    "hotmail jmrp complaint": {"X_HmXmrOriginalRecipient": "<someone@hotmail.com>"},
}
MACHINE_SENDERS = [
    "post_master@mx.example",
    "mailer_daemon@mx.example",
    "Mailer.Daemon@mx.example",
    "users-admin@lists.example",
    "no.reply@shop.example",
    "verify@boxbe.com",
    # VERP and sub-addressed bounce addresses: the robot is what precedes "+".
    "bounces-main+bratchka=amerimail.lv@amerimail.lv",
    "users-bounces+alice=customer.example@lists.example",
    "bounces+1234-ab12-alice=customer.example@em.shop.example",
]
MACHINE_SUBJECTS = [
    "complaint about message from 192.0.2.44",
    "Loop alert: users@lists.example",
    "Unverified email to alice@customer.example",
    "Automatische Antwort: W-AIR handsets",
    "自动回复: W-AIR handsets",
    # Outlook's "Automatic reply" in other languages, with or without their accents.
    "Ārpus biroja atrašanās automātiskā atbilde: W-AIR handsets",
    "Arpus biroja atrasanas automatiska atbilde: W-AIR handsets",
    "Automatyczna odpowiedź: W-AIR handsets",
    "Automatická odpověď: W-AIR handsets",
    "Otomatik yanıt: W-AIR handsets",
    "Автоматический ответ: W-AIR handsets",
    "Αυτόματη απάντηση: W-AIR handsets",
    "자동 회신: W-AIR handsets",
    # Lotus Notes (RFC 3834's "Auto:" prefix).
    "AUTO: Smith, John is out of the office. (returning 05/01/2010)",
]


@pytest.mark.parametrize("headers", MACHINE_HEADERS.values(), ids=MACHINE_HEADERS.keys())
def test_provider_header_is_a_named_signal(gate: Mailgate, headers: dict[str, str]) -> None:
    raw = with_headers(fixture_bytes("new_ticket.eml"), **headers)
    decision = gate.explain(raw, envelope("alice@customer.example"))
    assert decision.decision == "ignored_auto_generated"
    assert decision.reply.as_dict() == {"status": "suppressed", "reason": "auto_generated"}
    hit = next(step for step in decision.trace if step["hit"])
    assert hit["rule"] == "auto_generated" and hit["reason"]


@pytest.mark.parametrize("sender", MACHINE_SENDERS)
def test_robot_sender_with_separators_or_list_suffix(gate: Mailgate, sender: str) -> None:
    raw = with_headers(fixture_bytes("new_ticket.eml"), From=sender)
    decision = gate.explain(raw, envelope(sender))
    assert decision.decision == "ignored_auto_generated"
    assert any("robot" in s["reason"] or "challenge" in s["reason"] for s in decision.trace)


@pytest.mark.parametrize("subject", MACHINE_SUBJECTS)
def test_machine_subject_without_reference_is_suspected(gate: Mailgate, subject: str) -> None:
    raw = with_headers(fixture_bytes("new_ticket.eml"), Subject=subject)
    decision = gate.explain(raw, envelope("alice@customer.example"))
    assert (decision.decision, decision.rule) == ("ignored_auto_generated", "suspected_bounce")


@pytest.mark.parametrize(
    ("sender", "subject", "headers"),
    [
        ("admin@customer.example", "PBX down", {}),
        ("info@customer.example", "PBX down", {}),
        ("it-support@customer.example", "PBX down", {}),
        ("alice@customer.example", "our fax delivery failed since Monday?", {}),
        ("alice+wildix@customer.example", "PBX down", {}),
        ("alice@customer.example", "Re: Auto: W-AIR handsets", {}),
        ("alice@customer.example", "Auto provisioning: W-AIR fails", {}),
        ("alice@customer.example", "Odpowiedź: W-AIR handsets", {}),
        (
            "alice@customer.example",
            "PBX down",
            # A corporate gateway's marks on a person's message: signatures, scanners, Exchange.
            {
                "X_MS_Exchange_Organization_SCL": "-1",
                "X_MS_Has_Attach": "",
                "X_Virus_Scanned": "amavisd-new at customer.example",
                "X_Mailer": "Microsoft Outlook 16.0",
                "X_Spam_Status": "No, score=-1.0 required=5.0",
            },
        ),
    ],
    ids=[
        "admin@",
        "info@",
        "it-support@",
        "mentions delivery failed",
        "sub-address",
        "answers an auto-reply",
        "auto provisioning",
        "polish reply",
        "corporate gateway",
    ],
)
def test_people_who_look_a_little_automated_still_get_the_reply(
    gate: Mailgate, sender: str, subject: str, headers: dict[str, str]
) -> None:
    raw = with_headers(fixture_bytes("new_ticket.eml"), From=sender, Subject=subject, **headers)
    decision = gate.explain(raw, envelope(sender))
    assert decision.decision == "rejected_new_ticket"
    assert decision.reply.status == "queued"


FORWARDED = b"Received: from fwd.forwarder.example by mx.wildix.com; Mon, 23 Nov 2026 09:12:02\n"
SRS = "SRS0=JyPW=K7=customer.example=alice@bounce.forwarder.example"


def forwarded(precedence_by_forwarder: bool) -> bytes:
    """new_ticket.eml as a mailbox forwarder passes it on: its Received line on top, and
    Precedence: bulk either among the hops (the forwarder's) or under them (the author's)."""
    raw = with_headers(fixture_bytes("new_ticket.eml"), Return_Path=f"<{SRS}>")
    if precedence_by_forwarder:
        return FORWARDED + b"Precedence: bulk\n" + raw
    return FORWARDED + raw.replace(b"MIME-Version:", b"Precedence: bulk\nMIME-Version:", 1)


def test_precedence_stamped_by_a_forwarder_is_not_the_authors(gate: Mailgate) -> None:
    decision = gate.explain(forwarded(precedence_by_forwarder=True), envelope(SRS))
    assert decision.decision == "rejected_new_ticket"
    assert decision.reply.status == "queued"


@pytest.mark.parametrize(
    ("raw", "sender"),
    [
        (forwarded(precedence_by_forwarder=False), SRS),
        (forwarded(precedence_by_forwarder=True), "alice@customer.example"),
    ],
    ids=["author's precedence", "not forwarded (no SRS)"],
)
def test_precedence_bulk_otherwise_still_silences(gate: Mailgate, raw: bytes, sender: str) -> None:
    decision = gate.explain(raw, envelope(sender))
    assert decision.decision == "ignored_auto_generated"
    assert any("Precedence: bulk" in step["reason"] for step in decision.trace)
