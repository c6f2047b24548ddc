"""Listener hardening over real sockets: connection limits, DATA deadline, STARTTLS, PROXY."""

from __future__ import annotations

import smtplib
import socket
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import RunningServer, fixture_bytes, make_settings
from sqlmodel import Session, select

from worker.pipeline import Mailgate
from worker.store.models import DecisionRow


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Any]:
    running: list[tuple[Mailgate, RunningServer]] = []

    def starter(**overrides: Any) -> tuple[Mailgate, RunningServer]:
        gate = Mailgate.open(make_settings(tmp_path, None, smtp_listen="127.0.0.1:0", **overrides))
        server = RunningServer(gate)
        running.append((gate, server))
        return gate, server

    yield starter
    for gate, server in running:
        server.stop()
        gate.engine.dispose()


def recorded(gate: Mailgate) -> list[DecisionRow]:
    with Session(gate.engine) as session:
        return list(session.scalars(select(DecisionRow)).all())


def greeting(port: int) -> tuple[socket.socket, bytes]:
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    return sock, sock.makefile("rb").readline()


def test_per_address_connection_limit(start: Any) -> None:
    """The third connection from one address is told 421 and closed; others still work."""
    _, server = start(smtp_max_connections_per_ip=2)
    port = server.port("smtp")
    first, hello1 = greeting(port)
    second, hello2 = greeting(port)
    third, refused = greeting(port)
    assert hello1.startswith(b"220") and hello2.startswith(b"220")
    assert refused.startswith(b"421 4.7.0")
    assert third.recv(1) == b"", "the refused connection is closed"
    first.close()
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:  # a slot freed up
        assert smtp.noop()[0] == 250
    second.close()
    third.close()


def test_global_connection_limit(start: Any) -> None:
    _, server = start(smtp_max_connections=1)
    port = server.port("smtp")
    holder, hello = greeting(port)
    _, refused = greeting(port)
    assert hello.startswith(b"220") and refused.startswith(b"421 4.7.0 Too many connections")
    holder.close()


def test_slow_data_hits_the_deadline_without_blocking_others(start: Any) -> None:
    """A client trickling DATA is cut off with 421; a normal client is served meanwhile."""
    gate, server = start(smtp_data_timeout=1.5)
    port = server.port("smtp")
    slow = socket.create_connection(("127.0.0.1", port), timeout=30)
    reader = slow.makefile("rb")
    reader.readline()
    for command in (
        b"HELO slow\r\n",
        b"MAIL FROM:<s@x.example>\r\n",
        b"RCPT TO:<support@wildix.com>\r\n",
        b"DATA\r\n",
    ):
        slow.sendall(command)
        reader.readline()
    slow.sendall(b"Subject: slow\r\n")  # ... and nothing more
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
        smtp.sendmail(
            "alice@customer.example", ["support@wildix.com"], fixture_bytes("new_ticket.eml")
        )
    answer = reader.readline()  # blocks until the server's deadline fires
    assert answer.startswith(b"421 4.4.2")
    assert reader.readline() == b""
    slow.close()
    assert [d.decision for d in recorded(gate)] == ["rejected_new_ticket"]


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=mailgate.test",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def test_starttls_is_offered_and_works(start: Any, certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    gate, server = start(tls_cert=cert, tls_key=key)
    context = ssl.create_default_context(cafile=str(cert))
    context.check_hostname = False
    with smtplib.SMTP("127.0.0.1", server.port("smtp"), timeout=30) as smtp:
        smtp.ehlo()
        assert smtp.has_extn("starttls")
        smtp.starttls(context=context)
        smtp.ehlo()
        smtp.sendmail(
            "alice@customer.example", ["support@wildix.com"], fixture_bytes("new_ticket.eml")
        )
    assert [d.decision for d in recorded(gate)] == ["rejected_new_ticket"]


def test_bad_certificate_is_one_clear_error(start: Any, tmp_path: Path) -> None:
    from worker.errors import ConfigError

    bogus = tmp_path / "bogus.pem"
    bogus.write_text("not a certificate")
    with pytest.raises(ConfigError, match="MAILGATE_TLS_CERT"):
        make_settings(tmp_path, None, tls_cert=bogus, tls_key=bogus).tls_context()


def test_proxy_protocol_header_is_required_and_accepted(start: Any) -> None:
    """Behind a load balancer: a PROXY v1 header first, then a normal dialogue."""
    _, server = start(proxy_protocol=True)
    port = server.port("smtp")
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(b"PROXY TCP4 203.0.113.9 127.0.0.1 40000 25\r\n")
        reader = sock.makefile("rb")
        assert reader.readline().startswith(b"220")
        sock.sendall(b"EHLO lb.example\r\n")
        line = reader.readline()
        while line[3:4] == b"-":
            line = reader.readline()
        assert line.startswith(b"250")
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(b"EHLO no-proxy-header\r\n")
        assert sock.makefile("rb").readline() == b"", "without the header: dropped"
