"""Header fields count toward the milter's size limit, and it answers as soon as the limit
is passed (issue 25, finding 3).

Before, only body bytes were limited: 1,000 header fields of 1 MiB each were all kept
(serve grew from 106 to 1,111 MB) and ``552 5.3.4`` came only at the end of the message.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import RunningServer, add_standard_tickets, make_settings
from peers import Milter, message

from worker.ingress import milter_protocol as mp
from worker.pipeline import Mailgate

LIMIT = 1024 * 1024
FIELD = 256 * 1024  # four of them pass the limit


@pytest.fixture
def port(tmp_path: Path) -> Iterator[int]:
    settings = make_settings(
        tmp_path, smtp_listen="off", milter_listen="127.0.0.1:0", max_message_bytes=LIMIT
    )
    gate = Mailgate.open(settings)
    add_standard_tickets(gate)
    server = RunningServer(gate)
    yield server.port("milter")
    server.stop()
    gate.engine.dispose()


def flood(client: Milter, command: bytes, packets: int) -> tuple[int, tuple[bytes, bytes]]:
    """Send up to ``packets`` packets of FIELD bytes; the number sent and the first answer
    that is not ``continue``."""
    client.send(mp.MAIL, b"<ann@customer.example>\0")
    client.send(mp.RCPT, b"<support@wildix.com>\0")
    client.send(mp.DATA)
    for number in range(1, packets + 1):
        data = b"X-Filler\0" + b"a" * FIELD + b"\0" if command == mp.HEADER else b"a" * FIELD
        reply = client.send(command, data)
        if reply != (mp.CONTINUE, b""):
            return number, reply
    return packets, (mp.CONTINUE, b"")


@pytest.mark.parametrize("command", [mp.HEADER, mp.BODY], ids=["headers", "body"])
def test_the_answer_comes_as_soon_as_the_limit_is_passed(port: int, command: bytes) -> None:
    client = Milter(port)
    sent, (answer, text) = flood(client, command, 100)
    assert answer == mp.REPLY_CODE and text.startswith(b"552 5.3.4"), (sent, answer, text)
    assert sent <= LIMIT // FIELD + 1, "answered at the packet that passed the limit"
    client.send(mp.ABORT)
    answer, _ = client.message(b"ann@customer.example", message(1))
    assert answer == mp.REPLY_CODE, "the next message on the connection is decided as usual"
    client.close()
