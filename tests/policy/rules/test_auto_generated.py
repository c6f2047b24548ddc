"""Each auto-generated signal of the SPEC, alone, is enough to stay silent."""

from __future__ import annotations

import pytest
from helpers import envelope, fixture_bytes, outbox_files, with_headers

from worker.pipeline import Mailgate

SIGNAL_HEADERS = [
    {"Auto_Submitted": "auto-generated"},
    {"Auto_Submitted": "auto-replied; owner-email=x@y.example"},
    {"Precedence": "bulk"},
    {"Precedence": "list"},
    {"Precedence": "junk"},
    {"Precedence": "auto_reply"},
    {"List_Id": "<support.lists.example>"},
    {"List_Unsubscribe": "<mailto:x@y.example>"},
    {"List_Post": "NO"},
    {"X_Autoreply": "yes"},
    {"X_Autorespond": "vacation"},
    {"X_Loop": "helpdesk"},
    {"Feedback_ID": "a:b:c"},
    {"X_Failed_Recipients": "x@y.example"},
    {"Content_Type": "multipart/report; report-type=disposition-notification; boundary=x"},
    {"From": "Our Helpdesk <helpdesk@wildix.com>"},
    {"Message_ID": "<loop-1@wildix.com>"},
]
ROBOT_SENDERS = [
    "MAILER-DAEMON@mx.example",
    "postmaster@mx.example",
    "owner-users@lists.example",
    "users-request@lists.example",
    "users-bounces@lists.example",
    "noreply@shop.example",
    "no-reply@shop.example",
    "prvs=1234abcd=ndr@mx.example",
]


@pytest.mark.parametrize("headers", SIGNAL_HEADERS, ids=lambda h: next(iter(h)))
def test_header_signal(gate: Mailgate, headers: dict[str, str]) -> None:
    raw = with_headers(fixture_bytes("new_ticket.eml"), **headers)
    decision = gate.ingest(raw, envelope("alice@customer.example"))
    assert decision.decision == "ignored_auto_generated"
    assert decision.reply == {"status": "suppressed", "reason": "auto_generated"}
    assert outbox_files(gate) == []


@pytest.mark.parametrize("sender", ROBOT_SENDERS)
def test_robot_envelope_sender(gate: Mailgate, sender: str) -> None:
    decision = gate.ingest(fixture_bytes("new_ticket.eml"), envelope(sender))
    assert decision.decision == "ignored_auto_generated"


def test_auto_submitted_no_is_a_person(gate: Mailgate) -> None:
    """'Auto-Submitted: no' is the explicit mark of human mail (RFC 3834)."""
    raw = with_headers(fixture_bytes("new_ticket.eml"), Auto_Submitted="no")
    assert gate.ingest(raw, envelope("alice@customer.example")).decision == "rejected_new_ticket"


def test_bounce_subject_without_headers_is_ignored_only_without_reference(
    gate: Mailgate,
) -> None:
    """A bounce-like subject silences unreferenced mail but never hides a real follow-up."""
    raw = with_headers(fixture_bytes("new_ticket.eml"), Subject="Returned mail: see transcript")
    assert gate.ingest(raw, envelope("alice@customer.example")).decision == (
        "ignored_auto_generated"
    )
    followup = with_headers(
        fixture_bytes("followup_subject_tag.eml"),
        Subject="Re: [Ticket#1001] delivery failed to our PBX",
    )
    assert gate.ingest(followup, envelope("bob@partner.example")).decision == ("accepted_followup")
