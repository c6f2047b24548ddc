"""The milter listener over a real socket, driven packet by packet as Postfix drives it.

Postfix itself is in tests/system/test_postfix.py; here a small client speaks milter
protocol 6 to ``mailgate serve``'s listener so that every answer can be read exactly:
discard, quarantine, tempfail on an internal failure, mail for other domains untouched,
several messages on one connection, a unix socket, a bad setting.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator
from email.parser import BytesHeaderParser
from pathlib import Path

import pytest
from helpers import RunningServer, add_standard_tickets, fixture_bytes, make_settings, with_headers
from peers import read_packet
from sqlalchemy import text

from worker.errors import ConfigError
from worker.ingress import milter_protocol as mp
from worker.pipeline import Mailgate
from worker.settings import load_settings


class MilterClient:
    """The MTA side: negotiate, then one message at a time; replies as (command, data)."""

    def __init__(self, address: str | tuple[str, int]) -> None:
        family = socket.AF_UNIX if isinstance(address, str) else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.settimeout(30)
        self.sock.connect(address)
        actions = mp.ADD_HEADERS | mp.QUARANTINE_ACTION
        [(command, data)] = self.send(mp.OPTNEG, struct.pack("!III", 6, actions, 0x1FFFFF))
        assert command == mp.OPTNEG
        self.negotiated = struct.unpack("!III", data)

    def send(self, command: bytes, data: bytes = b"") -> list[tuple[bytes, bytes]]:
        """Send one packet; read replies up to the final one (modifications come first)."""
        self.sock.sendall(mp.packet(command, data))
        if command in mp.NO_REPLY:
            return []
        replies = []
        while True:
            reply = self.read()
            replies.append(reply)
            if reply[0] not in (mp.ADD_HEADER, mp.QUARANTINE):
                return replies

    def read(self) -> tuple[bytes, bytes]:
        return read_packet(self.sock)

    def message(self, sender: str, recipients: list[str], raw: bytes) -> list[tuple[bytes, bytes]]:
        """One message as Postfix sends it; the replies to DATA onwards."""
        self.send(mp.MACRO, b"Mi\x00ABC123\x00")
        assert self.send(mp.MAIL, f"<{sender}>\0".encode()) == [(mp.CONTINUE, b"")]
        for recipient in recipients:
            assert self.send(mp.RCPT, f"<{recipient}>\0".encode()) == [(mp.CONTINUE, b"")]
        replies = self.send(mp.DATA)
        if replies != [(mp.CONTINUE, b"")]:
            return replies
        head, _, body = raw.partition(b"\n\n")
        for name, value in BytesHeaderParser().parsebytes(head + b"\n\n").items():
            self.send(mp.HEADER, name.encode() + b"\0" + str(value).encode() + b"\0")
        self.send(mp.EOH)
        self.send(mp.BODY, body.replace(b"\n", b"\r\n"))
        return self.send(mp.BODYEOB)

    def close(self) -> None:
        self.send(mp.QUIT)
        self.sock.close()


@pytest.fixture
def milter_gate(tmp_path: Path) -> Iterator[tuple[Mailgate, RunningServer]]:
    gate = Mailgate.open(make_settings(tmp_path, smtp_listen="off", milter_listen="127.0.0.1:0"))
    add_standard_tickets(gate)
    server = RunningServer(gate)
    yield gate, server
    server.stop()
    gate.engine.dispose()


def decided(gate: Mailgate) -> list[tuple[str, str]]:
    with gate.engine.connect() as connection:
        rows = connection.execute(text("SELECT decision, channel FROM decision ORDER BY seq"))
        return [(row[0], row[1]) for row in rows]


def test_answers_per_decision_on_one_connection(
    milter_gate: tuple[Mailgate, RunningServer],
) -> None:
    """Follow-up: headers then continue; auto-reply: discard; new ticket: 550 5.7.1; repeat:
    decided as duplicate and refused again (the MTA may not have heard the first answer); two
    From headers: quarantine. One connection, five messages."""
    gate, server = milter_gate
    client = MilterClient(("127.0.0.1", server.port("milter")))
    assert client.negotiated[1] == mp.ADD_HEADERS | mp.QUARANTINE_ACTION
    followup = client.message(
        "bob@partner.example", ["support@wildix.com"], fixture_bytes("followup_subject_tag.eml")
    )
    assert followup == [
        (mp.ADD_HEADER, b"X-Mailgate-Decision\0accepted_followup\0"),
        (mp.ADD_HEADER, b"X-Mailgate-Ticket\x001001\0"),
        (mp.CONTINUE, b""),
    ]
    auto = client.message(
        "dario@customer.example", ["support@wildix.com"], fixture_bytes("out_of_office.eml")
    )
    assert auto == [(mp.DISCARD, b"")]
    new = fixture_bytes("new_ticket.eml")
    [(command, reply)] = client.message("alice@customer.example", ["support@wildix.com"], new)
    lines = reply.rstrip(b"\0").decode().split("\r\n")
    assert command == mp.REPLY_CODE
    # The text SMTP reject mode answers (the policy's, English mail: English only), on one
    # line: milter clients other than Postfix read a multi-line reply code as none.
    assert lines == [
        "550 5.7.1 Email only accepts follow-ups on an existing ticket; Open new tickets in WMP "
        "(https://wmp.wildix.com): Help Desk tab, Add, Tech Support or Customer Care",
    ]
    again = client.message("alice@customer.example", ["support@wildix.com"], new)
    assert again == [(command, reply)], "a repeat is answered as the original was"
    forged = new.replace(b"From: Alice", b"From: mallory@evil.example\nFrom: Alice")
    forged = with_headers(forged, Message_ID="<forged@customer.example>")
    held = client.message("alice@customer.example", ["support@wildix.com"], forged)
    assert held[0][0] == mp.QUARANTINE and held[1] == (mp.CONTINUE, b"")
    # A colleague on an open ticket: held by the 2022 policy; mailgate keeps it, the MTA
    # discards its copy (a release delivers it through the outbox).
    colleague = with_headers(
        fixture_bytes("followup_subject_tag.eml"),
        From="dora@partner.example",
        Message_ID="<colleague@partner.example>",
    )
    kept = client.message("dora@partner.example", ["support@wildix.com"], colleague)
    assert kept == [(mp.DISCARD, b"")]
    client.close()
    assert decided(gate) == [
        ("accepted_followup", "milter"),
        ("ignored_auto_generated", "milter"),
        ("rejected_new_ticket", "milter"),
        ("duplicate", "milter"),
        ("quarantined", "milter"),
        ("held", "milter"),
    ]
    rows = gate.engine.connect().execute(text("SELECT COUNT(*) FROM outbox")).scalar()
    assert rows == 0  # said in the dialogue: no automatic reply, no acknowledgement


def test_a_repeated_followup_is_delivered_not_discarded(
    milter_gate: tuple[Mailgate, RunningServer],
) -> None:
    """The MTA repeats a follow-up whose answer it never heard: decided once (the repeat is
    a duplicate), and the repeat still continues to the desk with the headers."""
    gate, server = milter_gate
    client = MilterClient(("127.0.0.1", server.port("milter")))
    raw = fixture_bytes("followup_subject_tag.eml")
    first = client.message("bob@partner.example", ["support@wildix.com"], raw)
    again = client.message("bob@partner.example", ["support@wildix.com"], raw)
    client.close()
    assert first[-1] == (mp.CONTINUE, b"")
    assert again == first
    assert decided(gate) == [("accepted_followup", "milter"), ("duplicate", "milter")]


def test_other_domains_pass_unread_and_unrecorded(
    milter_gate: tuple[Mailgate, RunningServer],
) -> None:
    """No support recipient: accepted at DATA, before any header or body is sent."""
    gate, server = milter_gate
    client = MilterClient(("127.0.0.1", server.port("milter")))
    replies = client.message(
        "alice@customer.example", ["carla@customer.example"], fixture_bytes("new_ticket.eml")
    )
    client.close()
    assert replies == [(mp.ACCEPT, b"")]
    assert decided(gate) == []


def test_internal_failure_is_a_tempfail(milter_gate: tuple[Mailgate, RunningServer]) -> None:
    """A database that cannot record the decision: 451 4.3.0, so the sender retries."""
    gate, server = milter_gate
    with gate.engine.begin() as connection:
        connection.execute(text("DROP TABLE decision"))
    client = MilterClient(("127.0.0.1", server.port("milter")))
    [(command, reply)] = client.message(
        "alice@customer.example", ["support@wildix.com"], fixture_bytes("new_ticket.eml")
    )
    client.close()
    assert command == mp.REPLY_CODE and reply.startswith(b"451 4.3.0 ")


def test_unix_socket_listener(tmp_path: Path) -> None:
    """``unix:/path`` listens on a socket the MTA's group may use, not the world."""
    path = tmp_path / "milter.sock"
    gate = Mailgate.open(make_settings(tmp_path, smtp_listen="off", milter_listen=f"unix:{path}"))
    server = RunningServer(gate)
    try:
        assert server.listening == [f"milter://unix:{path}"]
        assert path.stat().st_mode & 0o777 == 0o660
        client = MilterClient(str(path))
        replies = client.message(
            "alice@customer.example", ["support@wildix.com"], fixture_bytes("new_ticket.eml")
        )
        client.close()
        assert replies[0][1].startswith((b"550 5.7.1 ", b"550-5.7.1 "))
    finally:
        server.stop()
        gate.engine.dispose()


@pytest.mark.parametrize("value", ["unix:relative.sock", "localhost", "127.0.0.1:99999"])
def test_bad_listen_setting_names_it(value: str) -> None:
    with pytest.raises(ConfigError, match="MAILGATE_MILTER_LISTEN"):
        load_settings(milter_listen=value)
