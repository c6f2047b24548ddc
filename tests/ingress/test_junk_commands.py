"""Junk commands and a nearly full SMTP listener (issue 25, finding 2).

Before, SMTP capped 20 connections per address and 200 in all, but NOOP kept a connection
alive for ever: 10 addresses holding 20 connections each locked everyone else out. Now NOOP,
RSET and VRFY are junk, as in Postfix: past ``MAILGATE_SMTP_JUNK_COMMAND_LIMIT`` in a
session (one while the listener is over 80% full) the session gets ``421`` and is closed.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import RunningServer, make_settings
from peers import message, smtp_reply, smtp_send, wait_until

from worker.pipeline import Mailgate


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Any]:
    running: list[tuple[Mailgate, RunningServer]] = []

    def starter(**overrides: Any) -> int:
        gate = Mailgate.open(make_settings(tmp_path, **overrides))
        server = RunningServer(gate)
        running.append((gate, server))
        return server.port("smtp")

    yield starter
    for gate, server in running:
        server.stop()
        gate.engine.dispose()


def session(port: int, source: str = "127.0.0.1") -> tuple[socket.socket, Any]:
    sock = socket.create_connection(("127.0.0.1", port), timeout=30, source_address=(source, 0))
    reader = sock.makefile("rb")
    return sock, reader


def command(sock: socket.socket, reader: Any, line: bytes) -> bytes:
    sock.sendall(line + b"\r\n")
    return smtp_reply(reader)


def test_junk_commands_past_the_limit_end_the_session(start: Any) -> None:
    port = start(smtp_junk_command_limit=3)
    sock, reader = session(port)
    assert smtp_reply(reader).startswith(b"220")
    answers = [command(sock, reader, verb)[:3] for verb in (b"NOOP", b"RSET", b"NOOP", b"NOOP")]
    assert answers == [b"250", b"250", b"250", b"421"]
    assert reader.read() == b"", "closed after the 421"
    sock.close()


def test_ten_addresses_holding_every_connection_do_not_lock_others_out(start: Any) -> None:
    """20 connections (the cap) from 10 loopback addresses sending NOOP: while the listener is
    over 80% full a second NOOP is junk and ends its session, which makes room for a newcomer
    (before: every NOOP was 250 and the newcomer got 421 for as long as they held on)."""
    port = start(smtp_max_connections=20, smtp_max_connections_per_ip=2)
    holders = [session(port, f"127.0.0.{2 + n // 2}") for n in range(20)]
    for _, reader in holders:
        assert smtp_reply(reader).startswith(b"220")
    first = [command(sock, reader, b"NOOP")[:3] for sock, reader in holders]
    second = [command(sock, reader, b"NOOP")[:3] for sock, reader in holders]
    assert first == [b"250"] * 20
    # Closed until the listener is no longer nearly full: 20 - 15 = 5, in order.
    assert second[:5] == [b"421"] * 5, second

    def newcomer_served() -> bytes | None:
        answer = smtp_send(port, b"ann@customer.example", message(1))
        return answer if answer.startswith(b"250") else None

    wait_until(newcomer_served, 10, "a newcomer served")
    for sock, _ in holders:
        sock.close()
