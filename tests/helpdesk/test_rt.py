"""mailgate in front of a real Request Tracker 5 (tests/rt_server.py), end to end.

One RT for the session and one ``serve`` for the module, syncing every ``INTERVAL``
seconds: tickets made and changed in RT reach the directory; follow-ups by subject tag, by
signed address and by a reply to RT's own notification land in their ticket as the
customer's correspondence; new-ticket mail opens nothing in RT; a stranger with a real tag
is not delivered; with RT stopped follow-ups are accepted, ``/readyz`` says degraded, and
each is delivered exactly once when RT is back.
"""

from __future__ import annotations

import json
import smtplib
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import RunningServer, make_settings
from rt_server import RT_NAME, RequestTracker
from sqlalchemy import update
from sqlmodel import Session, col, select

from worker.clock import utcnow
from worker.decision import OutboxKind
from worker.helpdesk.connector import FollowUp, HelpdeskRefused
from worker.helpdesk.rt import RequestTracker as RTConnector
from worker.pipeline import Mailgate
from worker.store.models import DecisionRow, OutboxRow, Ticket

INTERVAL = 2.0
# Two sync intervals, plus the time a round itself takes on a loaded 2-core machine.
WITHIN_TWO_ROUNDS = 2 * INTERVAL + 6


def wait_until(check: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll ``check`` until it returns something true; fail naming ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.05)  # the polling interval, not a synchronisation
    raise AssertionError(f"not within {timeout} s: {what}")


@pytest.fixture(scope="module")
def desk(
    rt: RequestTracker, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Mailgate, RunningServer]]:
    settings = make_settings(
        tmp_path_factory.mktemp("desk"),
        http_listen="127.0.0.1:0",
        helpdesk="rt",
        helpdesk_url=rt.url,
        helpdesk_token=rt.token,
        helpdesk_name=RT_NAME,
        helpdesk_kinds="General:technical,Billing:customer_care",
        helpdesk_sync_seconds=INTERVAL,
    )
    gate = Mailgate.open(settings)
    running = RunningServer(gate)
    yield gate, running
    running.stop()
    gate.engine.dispose()


def directory(gate: Mailgate, ticket: str) -> Ticket | None:
    with Session(gate.engine) as session:
        row = session.get(Ticket, ticket)
        if row is not None:
            session.expunge(row)
        return row


def send(running: RunningServer, sender: str, raw: bytes, to: str = "support@wildix.com") -> None:
    with smtplib.SMTP("127.0.0.1", running.port("smtp"), timeout=30) as smtp:
        smtp.sendmail(sender, [to], raw)


def mail(sender: str, subject: str, message_id: str, **headers: str) -> bytes:
    extra = "".join(f"{k.replace('_', '-')}: {v}\r\n" for k, v in headers.items())
    return (
        f"From: Customer <{sender}>\r\nTo: support@wildix.com\r\nSubject: {subject}\r\n"
        f"Date: Sun, 06 Dec 2026 09:00:00 +0000\r\nMessage-ID: {message_id}\r\n{extra}"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        "The handset still does not register after the reboot you suggested.\r\n"
    ).encode()


def decision_of(gate: Mailgate, message_id: str) -> DecisionRow:
    def found() -> DecisionRow | None:
        with Session(gate.engine) as session:
            return session.scalars(
                select(DecisionRow).where(col(DecisionRow.message_id) == message_id)
            ).first()

    return wait_until(found, 30, f"a decision for {message_id}")


def helpdesk_rows(gate: Mailgate, decision_id: int | None) -> list[OutboxRow]:
    with Session(gate.engine) as session:
        return list(
            session.scalars(
                select(OutboxRow).where(
                    col(OutboxRow.decision_id) == decision_id,
                    col(OutboxRow.kind) == OutboxKind.HELPDESK,
                )
            ).all()
        )


def landed(rt: RequestTracker, ticket: str, message_id: str) -> list[dict[str, Any]]:
    bare = message_id.strip("<>")
    return [c for c in rt.correspondence(ticket) if bare in c["message_ids"]]


def synced(gate: Mailgate, ticket: str) -> Ticket:
    return wait_until(lambda: directory(gate, ticket), WITHIN_TWO_ROUNDS, f"ticket {ticket}")


def test_tickets_made_and_changed_in_rt_reach_the_directory(
    rt: RequestTracker, desk: tuple[Mailgate, RunningServer]
) -> None:
    gate, _ = desk
    started = time.monotonic()
    general = rt.create("General", "alice@customer.example", cc="bob@customer.example")
    billing = rt.create("Billing", "carol@customer.example")
    row = synced(gate, general)
    arrived = time.monotonic() - started
    assert row.kind == "technical" and row.status == "open" and row.source == "rt"
    assert set(row.participants) == {"alice@customer.example", "bob@customer.example"}
    billing_row = synced(gate, billing)
    assert billing_row.kind == "customer_care"
    assert arrived <= WITHIN_TWO_ROUNDS, f"took {arrived:.1f} s"

    rt.update(general, Status="resolved")
    closed = wait_until(
        lambda: (r := directory(gate, general)) and r.status == "closed" and r,
        WITHIN_TWO_ROUNDS,
        "the resolved ticket closed",
    )
    assert closed.closed_at is not None

    rt.merge(billing, general)
    merged = wait_until(
        lambda: (r := directory(gate, billing)) and r.merged_into and r,
        WITHIN_TWO_ROUNDS,
        "the merged ticket pointing to its survivor",
    )
    assert merged.merged_into == general and merged.status == "closed"


def test_followups_land_as_the_customers_correspondence(
    rt: RequestTracker, desk: tuple[Mailgate, RunningServer]
) -> None:
    gate, running = desk
    ticket = rt.create("General", "dora@customer.example", cc="emil@customer.example")
    synced(gate, ticket)
    notification = rt.mail_to("dora@customer.example")[-1]
    rt_message_id = next(
        line.split(b":", 1)[1].strip().decode()
        for line in notification.split(b"\n")
        if line.lower().startswith(b"message-id:")
    )
    signed = gate.tokens.reply_address(ticket, "support", "wildix.com")
    cases = [
        (
            "dora@customer.example",
            f"Re: [{RT_NAME} #{ticket}] help",
            "<tag.1@customer.example>",
            "support@wildix.com",
            {},
        ),
        ("emil@customer.example", "Re: help", "<signed.1@customer.example>", signed, {}),
        (
            "dora@customer.example",
            "Re: help",
            "<notification.1@customer.example>",
            "support@wildix.com",
            {"In_Reply_To": rt_message_id, "X_Customer_Mark": "kept-as-sent"},
        ),
    ]
    for sender, subject, message_id, to, headers in cases:
        send(running, sender, mail(sender, subject, message_id, **headers), to=to)
    for sender, _, message_id, _, _ in cases:
        decision = decision_of(gate, message_id)
        assert decision.decision == "accepted_followup", decision.trace
        assert decision.ticket == ticket
        found = wait_until(lambda m=message_id: landed(rt, ticket, m), 30, f"{message_id} in RT")
        assert [c["creator"] for c in found] == [sender]  # once, and as the customer
    raw = rt.api.get(
        "/attachments",
        params={
            "query": json.dumps(
                [{"field": "MessageId", "value": "notification.1@customer.example"}]
            ),
            "fields": "Headers",
        },
    ).json()["items"][0]["Headers"]
    assert "X-Customer-Mark: kept-as-sent" in raw


def test_new_ticket_mail_opens_nothing_in_rt(
    rt: RequestTracker, desk: tuple[Mailgate, RunningServer]
) -> None:
    gate, running = desk
    before = rt.ticket_count()
    send(running, "fred@customer.example", mail("fred@customer.example", "My phone", "<new.1@x>"))
    decision = decision_of(gate, "<new.1@x>")
    assert decision.decision == "rejected_new_ticket" and decision.reply_status == "queued"
    assert helpdesk_rows(gate, decision.id) == []
    assert rt.ticket_count() == before


def test_a_stranger_with_a_real_tag_is_not_delivered(
    rt: RequestTracker, desk: tuple[Mailgate, RunningServer]
) -> None:
    gate, running = desk
    ticket = rt.create("General", "gina@customer.example")
    synced(gate, ticket)
    raw = mail("mallory@attacker.example", f"Re: [{RT_NAME} #{ticket}] x", "<stranger.1@x>")
    send(running, "mallory@attacker.example", raw)
    decision = decision_of(gate, "<stranger.1@x>")
    # The 2022 policy holds it for a person (issue 20): kept, but never delivered.
    assert (decision.decision, decision.rule) == ("held", "unauthorized_sender")
    assert helpdesk_rows(gate, decision.id) == []
    assert rt.correspondence(ticket) == []


def test_a_retry_after_a_timeout_finds_the_first_delivery(
    rt: RequestTracker, desk: tuple[Mailgate, RunningServer]
) -> None:
    ticket = rt.create("General", "hana@customer.example")
    connector = RTConnector(rt.url, rt.token)
    follow_up = FollowUp(
        ticket,
        "<retry.1@customer.example>",
        mail("hana@customer.example", "Re: help", "<retry.1@customer.example>"),
    )
    assert connector.deliver(follow_up) == "delivered"
    # The answer was lost (a timeout): the retry looks first and posts nothing.
    assert connector.deliver(follow_up) == "already_there"
    assert len(landed(rt, ticket, "<retry.1@customer.example>")) == 1
    # A ticket RT does not have fails for good, and opens nothing there.
    before = rt.ticket_count()
    with pytest.raises(HelpdeskRefused, match="RT has no ticket 999999"):
        connector.deliver(FollowUp("999999", "<retry.2@customer.example>", follow_up.raw))
    assert rt.ticket_count() == before


def readyz(running: RunningServer) -> dict[str, Any]:
    url = f"http://127.0.0.1:{running.port('http')}/readyz"
    with urllib.request.urlopen(url, timeout=30) as response:
        assert response.status == 200  # degraded still serves
        body: dict[str, Any] = json.loads(response.read())
        return body


def test_rt_stopped_then_back_delivers_each_follow_up_once(
    rt: RequestTracker, desk: tuple[Mailgate, RunningServer], tmp_path: Path
) -> None:
    gate, running = desk
    ticket = rt.create("General", "ida@customer.example")
    synced(gate, ticket)
    rt.stop()
    try:
        ids = [f"<away.{n}@customer.example>" for n in range(2)]
        for message_id in ids:
            raw = mail("ida@customer.example", f"Re: [{RT_NAME} #{ticket}] x", message_id)
            send(running, "ida@customer.example", raw)
        decisions = [decision_of(gate, message_id) for message_id in ids]
        assert {d.decision for d in decisions} == {"accepted_followup"}
        wait_until(
            lambda: all(r.status == "retry" for d in decisions for r in helpdesk_rows(gate, d.id)),
            30,
            "deliveries waiting to retry",
        )
        status = wait_until(
            lambda: (body := readyz(running))["checks"].get("helpdesk", "ok") != "ok" and body,
            WITHIN_TWO_ROUNDS,
            "/readyz degraded",
        )
        assert status["checks"]["helpdesk"].startswith("degraded: helpdesk rt")
        assert "helpdesk" in status["degraded"]
    finally:
        rt.start()
    # Backoff would wait 30 s: bring the retries due now instead of waiting for them.
    with Session(gate.engine) as session, session.begin():
        session.execute(
            update(OutboxRow)
            .where(col(OutboxRow.kind) == OutboxKind.HELPDESK, col(OutboxRow.status) == "retry")
            .values(next_attempt_at=utcnow())
        )
    running.loop.call_soon_threadsafe(running.server.wake.set)
    for decision in decisions:
        wait_until(
            lambda d=decision: [r.status for r in helpdesk_rows(gate, d.id)] == ["sent"],
            30,
            "delivery after RT is back",
        )
    for message_id in ids:
        assert len(landed(rt, ticket, message_id)) == 1
    wait_until(lambda: readyz(running)["checks"]["helpdesk"] == "ok", WITHIN_TWO_ROUNDS, "ok")
    samples = metrics(running)
    assert samples['mailgate_helpdesk_errors_total{helpdesk="rt",operation="delivery"}'] >= 2
    assert samples['mailgate_helpdesk_last_sync_timestamp_seconds{helpdesk="rt"}'] > 0


def metrics(running: RunningServer) -> dict[str, float]:
    url = f"http://127.0.0.1:{running.port('http')}/metrics"
    with urllib.request.urlopen(url, timeout=30) as response:
        text = response.read().decode()
    return {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("mailgate_helpdesk_")
    }


def test_tickets_sync_by_hand(rt: RequestTracker, tmp_path: Path) -> None:
    from test_directory_cli import mailgate

    ticket = rt.create("Billing", "jan@customer.example", cc="kim@customer.example")
    env = {
        "MAILGATE_HELPDESK": "rt",
        "MAILGATE_HELPDESK_URL": rt.url,
        "MAILGATE_HELPDESK_TOKEN": rt.token,
        "MAILGATE_HELPDESK_KINDS": "Billing:customer_care",
    }
    ran = mailgate(tmp_path, "tickets", "sync", "--full", **env)
    assert ran.returncode == 0 and "synced" in ran.stdout, ran.stderr
    shown = mailgate(tmp_path, "tickets", "show", ticket, "--format", "json", **env)
    row = json.loads(shown.stdout)
    assert (row["kind"], row["source"]) == ("customer_care", "rt")
    assert set(row["participants"]) == {"jan@customer.example", "kim@customer.example"}
