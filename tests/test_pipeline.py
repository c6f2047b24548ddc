"""The pipeline end to end on SQLite and PostgreSQL: each 'done when' of the core issue."""

from __future__ import annotations

import base64
import email
import hashlib
import random
import threading
import zlib
from datetime import timedelta
from email.policy import default

from helpers import envelope, fixture_bytes, outbox_files, with_headers
from sqlmodel import Session, select

from worker.clock import utcnow
from worker.pipeline import Mailgate
from worker.store.models import DecisionRow, OutboxRow, RawMessage
from worker.store.repository import load_raw


def plain(reply: email.message.EmailMessage) -> str:
    """The text/plain part of a reply (the first of its multipart/alternative)."""
    part = reply.get_body(("plain",))
    assert isinstance(part, email.message.EmailMessage)
    return part.get_content()


def read_reply(path) -> email.message.EmailMessage:  # type: ignore[no-untyped-def]
    return email.message_from_bytes(path.read_bytes(), policy=default)  # type: ignore[return-value]


def test_new_ticket_mail_is_rejected_with_one_rfc3834_reply(gate: Mailgate) -> None:
    """New-ticket mail gets rejected_new_ticket and exactly one reply .eml to the sender."""
    raw = fixture_bytes("new_ticket.eml")
    decision = gate.ingest(raw, envelope("alice@customer.example"))
    assert decision.decision == "rejected_new_ticket"
    assert decision.rule == "new_ticket"
    assert decision.reply.as_dict() == {"status": "queued", "reason": "rejected_new_ticket"}
    files = outbox_files(gate)
    assert len(files) == 1
    reply = read_reply(files[0])
    assert reply["X-Mailgate-Envelope-From"] == "<>"
    assert reply["To"] == "Alice Rossi <alice@customer.example>"
    assert reply["Content-Language"] == "en"
    assert reply["Auto-Submitted"] == "auto-replied"
    assert reply["In-Reply-To"] == "<20261123091158.4711@mail.customer.example>"
    assert reply["References"] == "<20261123091158.4711@mail.customer.example>"
    assert reply["Subject"] == "Auto: W-AIR handsets do not register after firmware update"
    assert reply["X-Auto-Response-Suppress"] == "All"
    assert reply["Message-ID"].endswith("@wildix.com>")
    assert reply["From"].addresses[0].addr_spec == "support@wildix.com"
    body = plain(reply)
    assert "Help Desk tab" in body and "click Add in the upper-right corner" in body
    assert "Tech Support or Customer Care" in body and "https://wmp.wildix.com" in body
    assert "firmware" in body and "WMS version" in body
    assert "two handsets" not in body, "the reply must never quote the inbound body"


def test_same_bytes_again_are_a_duplicate_without_second_reply(gate: Mailgate) -> None:
    """Replaying the same message decides it once and replies once."""
    raw = fixture_bytes("new_ticket.eml")
    first = gate.ingest(raw, envelope("alice@customer.example"))
    second = gate.ingest(raw, envelope("alice@customer.example"))
    assert second.decision == "duplicate"
    assert second.duplicate_of == first.id
    assert second.original_decision == "rejected_new_ticket", "a transport needs no query"
    assert second.reply.as_dict() == {"status": "suppressed", "reason": "duplicate"}
    assert len(outbox_files(gate)) == 1


def test_message_without_message_id_is_deduplicated_by_raw_digest(gate: Mailgate) -> None:
    """Without a Message-ID the raw digest identifies the message."""
    raw = with_headers(fixture_bytes("new_ticket.eml"), Message_ID="")
    assert gate.ingest(raw, envelope("alice@customer.example")).decision == "rejected_new_ticket"
    assert gate.ingest(raw, envelope("alice@customer.example")).decision == "duplicate"


def test_second_new_ticket_mail_in_window_is_decided_without_reply(gate: Mailgate) -> None:
    """At most one reply per (sender, reason) per policy window."""
    raw = fixture_bytes("new_ticket.eml")
    gate.ingest(raw, envelope("alice@customer.example"))
    other = with_headers(
        raw, Message_ID="<second@mail.customer.example>", Subject="Another question"
    )
    decision = gate.ingest(other, envelope("alice@customer.example"))
    assert decision.decision == "rejected_new_ticket"
    assert decision.reply.as_dict() == {"status": "suppressed", "reason": "rate_limited"}
    assert len(outbox_files(gate)) == 1


def test_rate_limit_survives_a_restart(gate: Mailgate) -> None:
    """The reply ledger is in the database: a new process still knows the window."""
    raw = fixture_bytes("new_ticket.eml")
    gate.ingest(raw, envelope("alice@customer.example"))
    restarted = Mailgate.open(gate.settings)
    other = with_headers(raw, Message_ID="<after-restart@mail.customer.example>")
    assert restarted.ingest(other, envelope("alice@customer.example")).reply.reason == (
        "rate_limited"
    )
    restarted.engine.dispose()


def test_reply_after_the_window_is_sent_again(gate: Mailgate) -> None:
    """Once the window has passed the same sender gets a new reply."""
    raw = fixture_bytes("new_ticket.eml")
    gate.ingest(raw, envelope("alice@customer.example", at=utcnow() - timedelta(days=3)))
    with Session(gate.engine) as session:
        from worker.store.models import ReplyLedger

        row = session.scalars(select(ReplyLedger)).one()
        row.last_at = utcnow() - timedelta(days=2)
        session.add(row)
        session.commit()
    later = with_headers(raw, Message_ID="<later@mail.customer.example>")
    assert gate.ingest(later, envelope("alice@customer.example")).reply.status == "queued"
    assert len(outbox_files(gate)) == 2


def test_participant_followup_is_accepted(gate: Mailgate) -> None:
    """Re: [Ticket#N] from a participant is accepted onto ticket N, without a reply."""
    decision = gate.ingest(
        fixture_bytes("followup_subject_tag.eml"), envelope("bob@partner.example")
    )
    assert decision.decision == "accepted_followup"
    assert decision.ticket == "1001"
    assert decision.reply.as_dict() == {"status": "suppressed", "reason": "no_reply_for_decision"}
    assert outbox_files(gate) == []


def test_stranger_with_subject_tag_is_unauthorized(gate: Mailgate) -> None:
    """A stranger cannot post to a ticket by knowing its number: April 2022 holds the
    message for an operator, with an acknowledgement that says nothing about the ticket."""
    raw = with_headers(fixture_bytes("followup_subject_tag.eml"), From="Eve <eve@attacker.example>")
    decision = gate.ingest(raw, envelope("eve@attacker.example"))
    assert (decision.decision, decision.rule) == ("held", "unauthorized_sender")
    reply = plain(read_reply(outbox_files(gate)[0]))
    assert "1001" not in reply and "W-AIR" not in reply, "reveals nothing about the ticket"
    assert "a person" in reply


def test_org_domain_sender_is_accepted_under_2018_but_not_2022(gate: Mailgate) -> None:
    """2018 trusts the ticket's organisation domains; April 2022 only its participants."""
    raw = with_headers(fixture_bytes("followup_subject_tag.eml"), From="Dan <dan@partner.example>")
    before = gate.ingest(raw, envelope("dan@partner.example", at=utcnow().replace(year=2021)))
    assert (before.policy, before.decision) == ("wildix-2018-06", "accepted_followup")
    raw2 = with_headers(raw, Message_ID="<dan-2@partner.example>")
    after = gate.ingest(raw2, envelope("dan@partner.example"))
    assert (after.policy, after.decision, after.rule) == (
        "wildix-2022-04",
        "held",
        "unauthorized_sender",
    )


def test_signed_reply_address_authorises_anyone(gate: Mailgate) -> None:
    """A valid signed reply address accepts the follow-up whoever sends it."""
    address = gate.tokens.reply_address("1001", "support", "wildix.com")
    raw = with_headers(fixture_bytes("new_ticket.eml"), To=address)
    decision = gate.ingest(raw, envelope("alice@customer.example", address))
    assert (decision.decision, decision.ticket) == ("accepted_followup", "1001")
    # The reference is resolved before the chain runs: the trace's first step.
    assert decision.trace[0]["rule"] == "ticket_reference"
    assert decision.trace[0]["reason"].startswith("verified reference to ticket 1001")


def test_minted_message_id_in_references_authorises_anyone(gate: Mailgate) -> None:
    """In-Reply-To a Message-ID minted for the ticket accepts the follow-up."""
    minted = gate.tokens.message_id("1001", "wildix.com")
    raw = with_headers(
        fixture_bytes("new_ticket.eml"),
        In_Reply_To=minted,
        References=f"<older@x.example> {minted}",
    )
    decision = gate.ingest(raw, envelope("alice@customer.example"))
    assert (decision.decision, decision.ticket) == ("accepted_followup", "1001")


def test_forged_and_truncated_tags_are_refused(gate: Mailgate) -> None:
    """A tag that does not verify carries no authority."""
    good = gate.tokens.tag("1001")
    forged = f"support+1001.{'0' * len(good)}@wildix.com"
    truncated = f"support+1001.{good[:8]}@wildix.com"
    cross = f"support+1001.{gate.tokens.tag('2002')}@wildix.com"
    for number, address in enumerate((forged, truncated, cross)):
        raw = with_headers(
            fixture_bytes("new_ticket.eml"),
            To=address,
            Message_ID=f"<forged-{number}@attacker.example>",
        )
        decision = gate.ingest(raw, envelope("alice@customer.example", address))
        assert (decision.decision, decision.rule) == ("held", "unauthorized_sender"), address
        assert decision.ticket == "1001"


def test_forged_message_id_tag_is_refused(gate: Mailgate) -> None:
    """Editing the ticket number of a minted Message-ID breaks it."""
    minted = gate.tokens.message_id("1001", "wildix.com").replace("ticket.1001.", "ticket.2002.")
    raw = with_headers(fixture_bytes("new_ticket.eml"), In_Reply_To=minted)
    decision = gate.ingest(raw, envelope("alice@customer.example"))
    assert (decision.decision, decision.rule) == ("held", "unauthorized_sender")
    assert decision.ticket == "2002"


def test_unknown_ticket_is_held(gate: Mailgate) -> None:
    """A reference to a ticket that does not exist (a mistyped number) is held under April
    2022, acknowledged like somebody else's ticket."""
    raw = with_headers(
        fixture_bytes("followup_subject_tag.eml"), Subject="Re: [Ticket#999999] anything"
    )
    decision = gate.ingest(raw, envelope("bob@partner.example"))
    assert (decision.decision, decision.rule) == ("held", "unknown_ticket")
    assert decision.reply.as_dict() == {"status": "queued", "reason": "held"}
    assert len(outbox_files(gate)) == 1


def test_closed_beyond_reopen_window_is_rejected(gate: Mailgate) -> None:
    """Ticket 3003 closed in January 2025: far beyond the 14-day window."""
    raw = with_headers(
        fixture_bytes("followup_subject_tag.eml"), Subject="Re: [Ticket#3003] still broken"
    )
    decision = gate.ingest(raw, envelope("bob@partner.example"))
    assert decision.decision == "rejected_closed_ticket"
    body = plain(read_reply(outbox_files(gate)[0]))
    assert "ticket 3003 is closed" in " ".join(body.split()), "wherever the text is wrapped"


def test_closed_within_reopen_window_is_accepted(gate: Mailgate) -> None:
    """A follow-up a few days after closing reopens the conversation."""
    closed = utcnow() - timedelta(days=3)
    from worker.tickets import TicketRecord, upsert

    upsert(
        gate.engine,
        [
            TicketRecord(
                id="4004",
                kind="technical",
                status="closed",
                closed_at=closed,
                participants=["bob@partner.example"],
            )
        ],
    )
    raw = with_headers(fixture_bytes("followup_subject_tag.eml"), Subject="Re: [Ticket#4004] x")
    assert gate.ingest(raw, envelope("bob@partner.example")).decision == "accepted_followup"


def test_customer_care_followup_in_italian_is_rejected(gate: Mailgate) -> None:
    """April 2022: Customer Care accepted only in English."""
    decision = gate.ingest(
        fixture_bytes("followup_customer_care_it.eml"), envelope("carla@customer.example")
    )
    assert decision.decision == "rejected_language"
    assert "written in it" in decision.trace[-2]["reason"]
    assert decision.trace[-1] == {
        "rule": "reply_language",
        "hit": True,
        "reason": "text in it (0.99)",
    }
    assert "English" in plain(read_reply(outbox_files(gate)[0]))


def test_customer_care_followup_in_english_is_accepted(gate: Mailgate) -> None:
    """English text above Italian quoted history is judged on the English part."""
    decision = gate.ingest(
        fixture_bytes("followup_customer_care_en.eml"), envelope("carla@customer.example")
    )
    assert decision.decision == "accepted_followup"


def test_italian_followup_before_april_2022_is_accepted(gate: Mailgate) -> None:
    """The language rule does not exist under the 2018 policy."""
    decision = gate.ingest(
        fixture_bytes("followup_customer_care_it.eml"),
        envelope("carla@customer.example", at=utcnow().replace(year=2020)),
    )
    assert (decision.policy, decision.decision) == ("wildix-2018-06", "accepted_followup")


def test_mail_before_any_policy_is_quarantined(gate: Mailgate) -> None:
    """No policy in force before June 2018."""
    decision = gate.ingest(
        fixture_bytes("new_ticket.eml"),
        envelope("alice@customer.example", at=utcnow().replace(year=2017)),
    )
    assert (decision.decision, decision.rule, decision.policy) == (
        "quarantined",
        "policy_in_force",
        None,
    )
    assert outbox_files(gate) == []


def test_automated_mail_is_ignored_and_never_answered(gate: Mailgate) -> None:
    """DSN, out-of-office and list mail: ignored_auto_generated, no reply."""
    for name, sender in (
        ("dsn.eml", ""),
        ("out_of_office.eml", "dario@customer.example"),
        ("list_mail.eml", "announce-bounces@lists.example.org"),
    ):
        decision = gate.ingest(fixture_bytes(name), envelope(sender))
        assert decision.decision == "ignored_auto_generated", name
        assert decision.reply.status == "suppressed"
    assert outbox_files(gate) == []


def test_null_sender_never_gets_a_reply(gate: Mailgate) -> None:
    """Replies go to the envelope sender only, never to <>."""
    decision = gate.ingest(fixture_bytes("new_ticket.eml"), envelope(""))
    assert decision.decision == "ignored_auto_generated"
    assert outbox_files(gate) == []


def test_x_auto_response_suppress_is_honoured(gate: Mailgate) -> None:
    """Outlook's X-Auto-Response-Suppress: All asks for no automatic answer."""
    raw = with_headers(fixture_bytes("new_ticket.eml"), X_Auto_Response_Suppress="DR, All")
    decision = gate.ingest(raw, envelope("alice@customer.example"))
    assert decision.decision == "rejected_new_ticket"
    assert decision.reply.as_dict() == {
        "status": "suppressed",
        "reason": "x_auto_response_suppress",
    }


def test_blind_copy_gets_no_reply(gate: Mailgate) -> None:
    """RFC 5230: no answer when no support address is in the message's own recipients."""
    raw = with_headers(fixture_bytes("new_ticket.eml"), To="someone@customer.example")
    decision = gate.ingest(raw, envelope("alice@customer.example"))
    assert decision.reply.as_dict() == {
        "status": "suppressed",
        "reason": "not_addressed_to_support",
    }


def test_garbage_is_quarantined_not_raised(gate: Mailgate) -> None:
    """Binary garbage becomes a quarantined decision with its raw bytes kept."""
    raw = fixture_bytes("binary_garbage.eml")
    decision = gate.ingest(raw, envelope("x@y.example"))
    assert decision.decision == "quarantined"
    with Session(gate.engine) as session:
        assert session.get(RawMessage, decision.raw_sha256) is not None


def test_oversize_is_quarantined(tmp_path, database_url) -> None:  # type: ignore[no-untyped-def]
    """Bigger than MAILGATE_MAX_MESSAGE_BYTES: quarantined, kept for review."""
    from helpers import make_settings

    small = Mailgate.open(make_settings(tmp_path, database_url, max_message_bytes=200))
    decision = small.ingest(fixture_bytes("new_ticket.eml"), envelope("alice@customer.example"))
    assert decision.decision == "quarantined"
    assert decision.trace[-1]["reason"].startswith("oversize")
    small.engine.dispose()


def test_header_injection_in_subject_does_not_reach_the_reply(gate: Mailgate) -> None:
    """Encoded CR/LF in the subject cannot add a header to the reply."""
    raw = with_headers(
        fixture_bytes("new_ticket.eml"),
        Subject="=?utf-8?q?Hello=0D=0ABcc=3A_victim=40example=2Ecom?=",
    )
    gate.ingest(raw, envelope("alice@customer.example"))
    reply = read_reply(outbox_files(gate)[0])
    assert reply["Bcc"] is None
    assert "\n" not in reply["Subject"] and "victim" in reply["Subject"]


def test_decision_row_holds_every_field(gate: Mailgate) -> None:
    """One transaction stores raw bytes, the decision with its trace, and the outbox row."""
    decision = gate.ingest(fixture_bytes("new_ticket.eml"), envelope("alice@customer.example"))
    with Session(gate.engine) as session:
        row = session.get(DecisionRow, decision.id)
        assert row is not None
        assert row.decision == "rejected_new_ticket" and row.policy == "wildix-2022-04"
        assert row.policy_sha256 == gate.policies.by_id("wildix-2022-04").sha256  # type: ignore[union-attr]
        assert [step["rule"] for step in row.trace][-2:] == ["new_ticket", "reply_language"]
        assert row.recipients == ["support@wildix.com"]
        outbox = session.scalars(select(OutboxRow)).one()
        assert outbox.decision_id == row.id and outbox.mail_from == ""
        assert outbox.status == "spooled"
    from worker.store.repository import load_raw

    with Session(gate.engine) as session:
        assert load_raw(session, decision.raw_sha256) == fixture_bytes("new_ticket.eml")


def test_concurrent_deliveries_of_one_message_decide_it_once(gate: Mailgate) -> None:
    """Eight threads deliver the same message: one decision, seven duplicates, one reply."""
    raw = fixture_bytes("new_ticket.eml")
    results: list[str] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def deliver() -> None:
        try:
            barrier.wait()
            results.append(gate.ingest(raw, envelope("alice@customer.example")).decision)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=deliver) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(results) == ["duplicate"] * 7 + ["rejected_new_ticket"]
    assert len(outbox_files(gate)) == 1


def test_a_multi_megabyte_message_is_stored_byte_for_byte(gate: Mailgate) -> None:
    """The raw bytes are compressed in slices into one buffer (``compress``): what is
    stored is still exactly ``zlib.compress(raw, 6)``, and reads back as the raw bytes."""
    attachment = base64.encodebytes(random.Random(14).randbytes(3_000_000))
    raw = with_headers(fixture_bytes("new_ticket.eml"), Message_ID="<big@customer.example>")
    raw += b"\r\n" + attachment.replace(b"\n", b"\r\n")
    decision = gate.ingest(raw, envelope("alice@customer.example"))
    assert decision.raw_sha256 == hashlib.sha256(raw).hexdigest()
    with Session(gate.engine) as session:
        row = session.get(RawMessage, decision.raw_sha256)
        assert row is not None and row.size == len(raw)
        assert bytes(row.compressed or b"") == zlib.compress(raw, 6)
        assert load_raw(session, decision.raw_sha256) == raw
