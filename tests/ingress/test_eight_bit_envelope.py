"""An envelope address with octets that are not UTF-8 (issue 25, finding 1).

Before: such a sender got 250 to MAIL and RCPT and then ``451`` on every retry (its decision
could not be hashed or stored), and because the write failed inside the group commit, the
messages batched with it failed too. Now one message's failed write fails only that message,
and the 8-bit address is refused at once and for good on SMTP, the milter and the pipe.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from helpers import RunningServer, add_standard_tickets, cli_env, envelope, make_settings
from peers import Milter, message, smtp_send
from sqlalchemy import text

from worker.decision import Decision
from worker.ingress import milter_protocol as mp
from worker.pipeline import Mailgate

EIGHT_BIT = "b\udcffb@customer.example.net"  # MAIL FROM:<b\xffb@...> as aiosmtpd reads it


def stored(gate: Mailgate) -> int:
    with gate.engine.connect() as connection:
        return int(connection.execute(text("SELECT count(*) FROM decision")).scalar_one())


def test_one_unwritable_message_fails_alone_in_its_batch(gate: Mailgate) -> None:
    """The group commit writes [normal, unwritable, normal]: both neighbours commit, the
    middle one gets its own error (before: all three failed)."""
    pendings = [
        gate.decide(message(number), envelope("ann@customer.example"), recording=True)
        for number in range(3)
    ]
    poisoned = replace(pendings[1].decision, envelope_from=EIGHT_BIT)
    pendings[1] = replace(pendings[1], decision=poisoned)
    results = gate.recorder.record_each(pendings)
    assert isinstance(results[0], Decision) and isinstance(results[2], Decision)
    assert isinstance(results[1], UnicodeError)
    assert stored(gate) == 2
    assert gate.recorder.record_each([]) == []


@pytest.fixture
def listeners(tmp_path: Path) -> Iterator[tuple[Mailgate, RunningServer]]:
    settings = make_settings(tmp_path, milter_listen="127.0.0.1:0", smtp_max_connections_per_ip=100)
    gate = Mailgate.open(settings)
    add_standard_tickets(gate)
    server = RunningServer(gate)
    yield gate, server
    server.stop()
    gate.engine.dispose()


def test_smtp_refuses_an_eight_bit_sender_for_good_beside_normal_mail(
    listeners: tuple[Mailgate, RunningServer],
) -> None:
    """20 normal sessions around an 8-bit MAIL FROM: all 20 get 250; the 8-bit one 553."""
    gate, server = listeners
    port = server.port("smtp")
    answers: list[bytes] = []
    sessions = [
        threading.Thread(
            target=lambda n=n: answers.append(smtp_send(port, b"ann@customer.example", message(n)))
        )
        for n in range(20)
    ]
    for session in sessions[:10]:
        session.start()
    refused = smtp_send(port, b"b\xffb@customer.example.net", message(99))
    rcpt = smtp_send(port, b"ann@customer.example", message(98), recipient=b"s\xffpport@wildix.com")
    for session in sessions[10:]:
        session.start()
    for session in sessions:
        session.join(30)
    assert refused.startswith(b"553 5.1.7 "), refused
    assert rcpt.startswith(b"553 5.1.3 "), rcpt
    assert sorted(answer[:3] for answer in answers) == [b"250"] * 20
    assert stored(gate) == 20


def test_milter_refuses_an_eight_bit_sender_for_the_desk_only(
    listeners: tuple[Mailgate, RunningServer],
) -> None:
    """MAIL with byte 0xe9: RCPT to the desk is refused 553, another domain continues, and
    the next message on the same connection is decided as usual."""
    gate, server = listeners
    client = Milter(server.port("milter"))
    command, reply = client.message(b"jos\xe9@customer.example", message(1))
    assert command == mp.REPLY_CODE and reply.startswith(b"553 5.1.7 "), reply
    other = client.send(mp.RCPT, b"<someone@elsewhere.example>\0")
    assert other == (mp.CONTINUE, b""), "mail for other domains is the MTA's business"
    client.send(mp.ABORT)
    command, reply = client.message(b"ann@customer.example", message(2))
    assert command == mp.REPLY_CODE and reply.startswith(b"550"), "decided as usual"
    client.close()
    assert stored(gate) == 1


def test_pipe_refuses_an_eight_bit_sender_with_one_line(tmp_path: Path) -> None:
    """``ingest --sender $'\\xffx@…'`` exits 65 (bounce) with one line, not 75 forever."""
    sender = b"\xffx@customer.example".decode("utf-8", "surrogateescape")
    result = subprocess.run(
        [sys.executable, "-m", "worker", "ingest", "-", "--sender", sender],
        input=message(1),
        capture_output=True,
        env=cli_env(tmp_path / "var"),
        timeout=60,
    )
    assert result.returncode == 65, result.stderr
    assert result.stderr == b"mailgate: --sender '\\\\xffx@customer.example' is not valid UTF-8\n"
