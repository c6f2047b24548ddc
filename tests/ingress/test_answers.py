"""The SMTP dialogue is opaque: an id that counts nothing, one answer for an unknown and
somebody else's ticket, named answers where aiosmtpd would speak for itself, and the
reject-mode text the policy gives each decision."""

from __future__ import annotations

import json
import re
import smtplib
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import (
    RunningServer,
    add_standard_tickets,
    cli_env,
    fixture_bytes,
    make_settings,
    outbox_files,
    with_headers,
)
from sqlalchemy import text

from worker.clock import utcnow
from worker.decision import Channel, Decision, DecisionName, ReplyPlan, ReplyReason, ReplyStatus
from worker.ingress import answers
from worker.ingress.answers import Answer
from worker.ingress.gateway import Outcome
from worker.pipeline import Mailgate

TOKEN = "answers-token-0123456789abcdef"


@pytest.fixture
def served(
    tmp_path: Path, database_url: str, request: pytest.FixtureRequest
) -> Iterator[tuple[Mailgate, RunningServer]]:
    overrides = getattr(request, "param", {})
    settings = make_settings(
        tmp_path,
        database_url,
        smtp_listen="127.0.0.1:0",
        http_listen="127.0.0.1:0",
        api_token=TOKEN,
        **overrides,
    )
    gate = Mailgate.open(settings)
    add_standard_tickets(gate)
    running = RunningServer(gate)
    yield gate, running
    running.stop()
    gate.engine.dispose()


def deliver(running: RunningServer, raw: bytes, sender: str) -> tuple[int, bytes]:
    with smtplib.SMTP("127.0.0.1", running.port("smtp"), timeout=30) as smtp:
        smtp.ehlo()
        smtp.mail(sender)
        smtp.rcpt("support@wildix.com")
        return smtp.data(raw)


def probe(number: str, message_id: str) -> bytes:
    """A stranger's message naming ``[Ticket#number]``."""
    return with_headers(
        fixture_bytes("followup_subject_tag.eml"),
        From="Eve <eve@attacker.example>",
        Subject=f"Re: [Ticket#{number}] status?",
        Message_ID=message_id,
    )


def dialogue(port: int, lines: list[bytes]) -> list[bytes]:
    """The greeting, then one reply line per line sent (after EHLO)."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        reader = sock.makefile("rb")
        replies = [reader.readline().rstrip(b"\r\n")]
        sock.sendall(b"EHLO client.example\r\n")
        while reader.readline()[3:4] == b"-":
            pass
        for line in lines:
            sock.sendall(line)
            replies.append(reader.readline().rstrip(b"\r\n"))
        return replies


def test_250_names_an_opaque_id_that_ops_can_find(
    served: tuple[Mailgate, RunningServer], tmp_path: Path, database_url: str
) -> None:
    _, running = served
    ids = []
    for number in range(12):
        raw = with_headers(fixture_bytes("new_ticket.eml"), Message_ID=f"<n{number}@x.example>")
        code, message = deliver(running, raw, f"user{number}@customer.example")
        assert code == 250 and re.fullmatch(rb"2\.0\.0 Ok: queued as [a-z2-7]{16}", message)
        ids.append(message.split()[-1].decode())
    assert len(set(ids)) == 12 and ids != sorted(ids), "random, not a counter"
    wanted = ids[5]
    request = urllib.request.Request(
        f"http://127.0.0.1:{running.port('http')}/api/decisions?id={wanted}",
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        found = json.load(response)["decisions"]
    assert [(d["public_id"], d["envelope_from"]) for d in found] == [
        (wanted, "user5@customer.example")
    ]
    env = cli_env(str(tmp_path / "var"))
    if database_url:
        env["MAILGATE_DATABASE_URL"] = database_url
    listed = subprocess.run(
        [sys.executable, "-m", "worker", "decisions", "--id", wanted, "--format", "json"],
        env=env,
        capture_output=True,
        timeout=120,
        check=True,
    )
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [(r["public_id"], r["envelope_from"]) for r in rows] == [
        (wanted, "user5@customer.example")
    ]


def _neutral(reply: bytes, number: str) -> bytes:
    """A reply with what may differ removed: dates, message ids, the quoted public id, the
    probed number."""
    kept = []
    for line in reply.split(b"\r\n"):
        if re.match(rb"(Date|Message-ID|In-Reply-To|References): ", line):
            continue
        line = re.sub(rb'"[a-z2-7]{16}"', b'"PUBLIC-ID"', line)  # the reference it quotes
        kept.append(line.replace(number.encode(), b"N"))
    return b"\r\n".join(kept)


def test_unknown_and_unauthorized_look_the_same(served: tuple[Mailgate, RunningServer]) -> None:
    gate, running = served
    unknown = deliver(running, probe("999999", "<p1@attacker.example>"), "eve@a.example")
    foreign = deliver(running, probe("1001", "<p2@attacker.example>"), "mal@a.example")
    assert unknown[0] == foreign[0] == 250
    assert unknown[1].rsplit(b" ", 1)[0] == foreign[1].rsplit(b" ", 1)[0]
    # One rate-limit slot for both: eve's second probe is as silent as a repeat of the first.
    deliver(running, probe("1001", "<p3@attacker.example>"), "eve@a.example")
    with gate.engine.connect() as connection:
        rows = connection.execute(
            text("SELECT decision, reply_status FROM decision ORDER BY seq")
        ).all()
    # April 2022 holds both kinds for an operator, with one acknowledgement.
    assert [tuple(row) for row in rows] == [
        ("held", "queued"),
        ("held", "queued"),
        ("held", "suppressed"),
    ]
    first, second = (path.read_bytes() for path in outbox_files(gate))
    first = first.replace(b"eve@a.example", b"SENDER")
    second = second.replace(b"mal@a.example", b"SENDER")
    assert _neutral(first, "999999") == _neutral(second, "1001")


def test_library_replies_are_named_answers(tmp_path: Path) -> None:
    gate = Mailgate.open(
        make_settings(tmp_path, None, smtp_listen="127.0.0.1:0", max_message_bytes=1000)
    )
    running = RunningServer(gate)
    try:
        port = running.port("smtp")
        replies = dialogue(
            port,
            [
                b"MAIL FROM:<a b@customer.example>\r\n",
                b"MAIL FROM:<alice@customer.example> SIZE=5000\r\n",
                b"MAIL FROM:<alice@customer.example>\r\n",
                b"RCPT TO:<support@@wildix.com>\r\n",
                b"RCPT TO:<bad address@wildix.com>\r\n",
                b"RCPT TO:<support@wildix.com>\r\n",
                b"DATA\r\n",
                b"Subject: x\r\n\r\n" + (b"y" * 70 + b"\r\n") * 20 + b".\r\n",
                b"RSET\r\n",
                b"MAIL FROM:<>\r\n",  # the null sender of bounces is a valid address
                b"RSET\r\n",
                b"DATA\r\n",
                b"BOGUS\r\n",
            ],
        )
    finally:
        running.stop()
        gate.engine.dispose()
    greeting = replies.pop(0)
    assert greeting.startswith(b"220 ") and greeting.endswith(b" ESMTP ready")
    assert b"Python" not in greeting and b"aiosmtpd" not in greeting
    assert replies == [
        answers.BAD_ADDRESS.encode(),
        answers.TOO_BIG.encode(),
        answers.OK_SENDER.encode(),
        answers.BAD_ADDRESS.encode(),
        answers.BAD_ADDRESS.encode(),
        answers.OK_RECIPIENT.encode(),
        answers.START_DATA.encode(),
        b"552 5.3.4 Message too big for this system",
        answers.OK.encode(),
        answers.OK_SENDER.encode(),
        answers.OK.encode(),
        answers.BAD_SEQUENCE.encode(),
        answers.BAD_COMMAND.encode(),
    ]


@pytest.mark.parametrize("served", [{"reject_mode": "smtp"}], indirect=True)
def test_reject_mode_text_follows_the_decision(served: tuple[Mailgate, RunningServer]) -> None:
    gate, running = served
    portal = "https://wmp.wildix.com"
    _, new = deliver(running, fixture_bytes("new_ticket.eml"), "alice@customer.example")
    _, language = deliver(
        running, fixture_bytes("followup_customer_care_it.eml"), "carla@customer.example"
    )
    closed_raw = with_headers(
        fixture_bytes("followup_subject_tag.eml"), Subject="Re: [Ticket#3003] still broken"
    )
    _, closed = deliver(running, closed_raw, "bob@partner.example")
    _, unknown = deliver(running, probe("999999", "<q1@attacker.example>"), "eve@a.example")
    _, foreign = deliver(running, probe("1001", "<q2@attacker.example>"), "eve@a.example")
    assert new.startswith(b"5.7.1 ") and b"Help Desk tab, Add" in new and portal.encode() in new
    assert b"English" in language and b"WMP" not in language
    assert b"5.7.1 Le richieste al Customer Care sono gestite solo in inglese" in language
    assert b"closed" in closed and b"new ticket" in closed
    # April 2022 holds both, answered like any accepted message, with no acknowledgement in
    # this mode (no backscatter): the same answer but for the opaque id.
    assert unknown.rsplit(b" ", 1)[0] == foreign.rsplit(b" ", 1)[0] == b"2.0.0 Ok: queued as"
    assert len({new, language, closed, unknown}) == 4
    assert outbox_files(gate) == []


def test_every_protocol_table_answers_every_decision() -> None:
    """A new decision cannot land without an answer on each transport."""
    for table in (answers.SMTP, answers.MILTER, answers.IMAP):
        assert set(table) == set(DecisionName)
    assert answers.MILTER[DecisionName.IGNORED_AUTO_GENERATED] is Answer.DISCARD
    assert answers.IMAP[DecisionName.QUARANTINED] is Answer.QUARANTINE


def test_a_failure_is_tempfail_and_a_duplicate_answers_as_its_original() -> None:
    """Whatever the protocol: nothing committed is retry-later; a repeat is not held twice
    by the milter (its bytes are kept) but goes to IMAP's quarantine folder again."""
    failed = Outcome(error=RuntimeError("database down"))
    assert answers.answer(failed, answers.MILTER) is Answer.TEMPFAIL
    repeat = Outcome(_decision("duplicate", original="quarantined"))
    milter = answers.answer(repeat, answers.MILTER, held_again=Answer.DISCARD)
    assert milter is Answer.DISCARD
    assert answers.answer(repeat, answers.IMAP) is Answer.QUARANTINE
    refused = Outcome(_decision("duplicate", original="rejected_new_ticket"))
    assert answers.answer(refused, answers.MILTER) is Answer.REJECT


def _decision(name: str, original: str | None = None) -> Decision:
    return Decision(
        decision=name,
        rule="duplicate",
        policy="wildix-2022-04",
        policy_sha256=None,
        ticket=None,
        reply=ReplyPlan(ReplyStatus.SUPPRESSED, ReplyReason.DUPLICATE),
        message_id=None,
        raw_sha256="0" * 64,
        envelope_from="a@x.example",
        recipients=["support@wildix.com"],
        received_at=utcnow(),
        channel=Channel.MILTER,
        trace=[],
        original_decision=original,
    )
