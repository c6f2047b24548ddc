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
]
MACHINE_SUBJECTS = [
    "complaint about message from 192.0.2.44",
    "Loop alert: users@lists.example",
    "Unverified email to alice@customer.example",
    "Automatische Antwort: W-AIR handsets",
    "自动回复: W-AIR handsets",
]


@pytest.mark.parametrize("headers", MACHINE_HEADERS.values(), ids=MACHINE_HEADERS.keys())
def test_provider_header_is_a_named_signal(gate: Mailgate, headers: dict[str, str]) -> None:
    raw = with_headers(fixture_bytes("new_ticket.eml"), **headers)
    decision = gate.explain(raw, envelope("alice@customer.example"))
    assert decision.decision == "ignored_auto_generated"
    assert decision.reply == {"status": "suppressed", "reason": "auto_generated"}
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
    ids=["admin@", "info@", "it-support@", "mentions delivery failed", "corporate gateway"],
)
def test_people_who_look_a_little_automated_still_get_the_reply(
    gate: Mailgate, sender: str, subject: str, headers: dict[str, str]
) -> None:
    raw = with_headers(fixture_bytes("new_ticket.eml"), From=sender, Subject=subject, **headers)
    decision = gate.explain(raw, envelope(sender))
    assert decision.decision == "rejected_new_ticket"
    assert decision.reply["status"] == "queued"
