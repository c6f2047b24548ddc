"""Real helpdesks' ticket references: every preset's format round-trips an id, RT's
Message-IDs (Debian version strings included) and X-RT-Ticket name their ticket, and ids
compare case-insensitively, the signed reply address of ``ABC-1`` included."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import SECRET, envelope, make_settings

from worker.helpdesk.references import (
    PRESETS,
    HelpdeskReferences,
    rt_ticket_in_message_id,
)
from worker.mail import InboundMail
from worker.matching import find_reference
from worker.pipeline import Mailgate
from worker.policy.document import Matching
from worker.ticket_directory import unmatchable
from worker.tickets import TicketRecord, upsert
from worker.tokens import ReplyTokens

TOKENS = ReplyTokens(SECRET.encode())
# Each helpdesk's subject as it writes it, and the id it carries.
WRITTEN = {
    "wildix": ("Re: [Ticket#123456] Phones", "123456"),
    "rt": ("Re: [acme #4711] Phones", "4711"),
    "znuny": ("RE: [Ticket#2024010110000011] Phones", "2024010110000011"),
    "otrs": ("AW: [Ticket#2015081910000013] Telefon", "2015081910000013"),
    "zammad": ("Phones [Ticket#31001]", "31001"),
    "osticket": ("Re: [#482913] Phones", "482913"),
    "freshdesk": ("Re: Ticket Received - [#Acme-1234] Phones", "1234"),
    "jira": ("Re: [JIRA] (HELP-123) Phones", "HELP-123"),
}


def message(subject: str, **headers: str) -> InboundMail:
    extra = "".join(f"{k.replace('_', '-')}: {v}\r\n" for k, v in headers.items())
    head = f"From: a@customer.example\r\nTo: support@wildix.com\r\nSubject: {subject}\r\n"
    raw = f"{head}{extra}\r\nhi\r\n"
    return InboundMail.from_bytes(raw.encode())


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_preset_round_trips_its_helpdesks_ids(preset: str) -> None:
    subject, ticket = WRITTEN[preset]
    matching = Matching(subject_tag=preset, reply_prefixes=["Re", "RE", "AW"])
    found, notes = find_reference(message(subject), [], matching, TOKENS, ["wildix.com"])
    assert found is not None and found.ticket == ticket, notes
    assert found.method == "subject_tag" and not found.signed
    lower, _ = find_reference(message(subject.lower()), [], matching, TOKENS, ["wildix.com"])
    if preset == "jira":  # Jira keys are upper case: "covid-19" in a subject is no ticket
        assert lower is None
    else:
        assert lower is not None and lower.ticket == ticket


def test_the_rt_preset_with_a_name_matches_that_rt_only() -> None:
    helpdesk = HelpdeskReferences.for_helpdesk("rt", "acme")
    matching = Matching(reply_prefixes=["Re"])
    ours, _ = find_reference(message("Re: [acme #12] x"), [], matching, TOKENS, [], helpdesk)
    theirs, _ = find_reference(message("Re: [other #12] x"), [], matching, TOKENS, [], helpdesk)
    assert ours is not None and ours.ticket == "12" and theirs is None


@pytest.mark.parametrize(
    "message_id",
    [
        "<rt-5.0.3+dfsg-3~deb12u7-25074-1796537604-895.45-5-0@rt.example.test>",
        "<rt-4.4.4-1234-1600000000-12.45-7-0@Example Org>".replace(" ", ""),
        "<RT-5.0.5-99-1700000000-1999.45-12-3@desk.example.com>",
    ],
)
def test_rts_message_ids_name_their_ticket(message_id: str) -> None:
    assert rt_ticket_in_message_id(message_id) == "45"
    helpdesk = HelpdeskReferences.for_helpdesk("rt", "acme")
    mail = message("Re: your request", In_Reply_To=message_id)
    found, notes = find_reference(mail, [], Matching(reply_prefixes=["Re"]), TOKENS, [], helpdesk)
    assert found is not None and found.ticket == "45" and found.method == "helpdesk_message_id"
    assert not found.signed, notes


def test_x_rt_ticket_names_its_ticket_only_for_our_rt() -> None:
    helpdesk = HelpdeskReferences.for_helpdesk("rt", "acme")
    matching = Matching(reply_prefixes=["Re"])
    ours = message("Fwd: x", X_RT_Ticket="acme #77")
    theirs = message("Fwd: x", X_RT_Ticket="other #77")
    assert find_reference(ours, [], matching, TOKENS, [], helpdesk)[0].ticket == "77"  # type: ignore[union-attr]
    assert find_reference(theirs, [], matching, TOKENS, [], helpdesk)[0] is None
    assert rt_ticket_in_message_id("<rt-5.0.3-1-1-1.0-0-0@x>") is None  # ticket 0: none


def test_abc_1_reached_by_its_own_signed_address(tmp_path: Path) -> None:
    gate = Mailgate.open(make_settings(tmp_path, f"sqlite:///{tmp_path / 'm.db'}"))
    upsert(gate.engine, [TicketRecord(id="abc-1", kind="technical", participants=["a@b.example"])])
    address = gate.tokens.reply_address("ABC-1", "support", "wildix.com")
    assert "+ABC-1." in address  # minted for the canonical id, delivered lower-cased
    raw = (
        f"From: Carl <carl@elsewhere.example>\r\nTo: {address.lower()}\r\n"
        "Subject: Re: your ticket\r\nMessage-ID: <abc-1-reply@elsewhere.example>\r\n\r\n"
        "The phone is fine again, thank you.\r\n"
    ).encode()
    decision = gate.ingest(raw, envelope("carl@elsewhere.example", address.lower()))
    assert (decision.decision, decision.ticket) == ("accepted_followup", "ABC-1")
    gate.engine.dispose()


def test_tokens_minted_for_lower_case_ids_still_verify() -> None:
    old_tag = TOKENS.tag("abc-1")  # minted before ids were upper-cased
    parsed = TOKENS.parse_address(f"support+abc-1.{old_tag}@wildix.com")
    assert parsed is not None and parsed.valid and parsed.ticket == "ABC-1"


def test_ids_no_reference_could_carry_are_named(tmp_path: Path) -> None:
    gate = Mailgate.open(make_settings(tmp_path, f"sqlite:///{tmp_path / 'm.db'}"))
    policy = gate.policies.policies[-1]
    why = unmatchable("2024010110000011", policy, HelpdeskReferences())
    assert why is not None and "could never be matched" in why and "Ticket#" in why
    assert unmatchable("ABC-1", policy, HelpdeskReferences()) is not None
    assert unmatchable("123456", policy, HelpdeskReferences()) is None
    with_rt = HelpdeskReferences.for_helpdesk("rt", "acme")
    assert unmatchable("2024010110000011", policy, with_rt) is None  # RT's Message-IDs take it
    gate.engine.dispose()
