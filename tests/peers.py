"""Helpers for the hostile-peer tests: raw SMTP and milter dialogues over loopback sockets,
and waiting on a condition with a deadline instead of sleeping."""

from __future__ import annotations

import json
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from worker.ingress import milter_protocol as mp


def smtp_reply(reader: Any) -> bytes:
    """One SMTP reply, multi-line replies joined: the last line decides."""
    line: bytes = reader.readline()
    while line[3:4] == b"-":
        line = reader.readline()
    return line


def smtp_send(
    port: int, sender: bytes, raw: bytes, recipient: bytes = b"support@wildix.com"
) -> bytes:
    """One message over a raw SMTP session (8-bit bytes pass as they are); the last reply."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        reader = sock.makefile("rb")
        smtp_reply(reader)
        for command in (b"EHLO peer.example", b"MAIL FROM:<" + sender + b">"):
            sock.sendall(command + b"\r\n")
            answer = smtp_reply(reader)
        if not answer.startswith(b"250"):
            return answer
        sock.sendall(b"RCPT TO:<" + recipient + b">\r\n")
        answer = smtp_reply(reader)
        if not answer.startswith(b"250"):
            return answer
        sock.sendall(b"DATA\r\n")
        smtp_reply(reader)
        sock.sendall(raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n") + b".\r\n")
        answer = smtp_reply(reader)
        sock.sendall(b"QUIT\r\n")
        return answer


def message(number: int, sender: str = "ann@customer.example") -> bytes:
    return (
        f"From: {sender}\r\nTo: support@wildix.com\r\nSubject: help {number}\r\n"
        f"Message-ID: <peer.{number}.{time.monotonic_ns()}@customer.example>\r\n\r\n"
        "My PBX is down.\r\n"
    ).encode()


def read_packet(sock: socket.socket) -> tuple[bytes, bytes]:
    """One milter packet from the mailgate side: (command, data)."""
    head = _exactly(sock, 4)
    payload = _exactly(sock, struct.unpack("!I", head)[0])
    return payload[:1], payload[1:]


def _exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("milter closed the connection")
        data += chunk
    return data


class Milter:
    """The MTA side of a milter session, as Postfix speaks protocol 6."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        actions = mp.ADD_HEADERS | mp.QUARANTINE_ACTION
        self.send(mp.OPTNEG, struct.pack("!III", 6, actions, 0x1FFFFF))

    def send(self, command: bytes, data: bytes = b"") -> tuple[bytes, bytes]:
        """One packet; the final reply (modifications before it are skipped)."""
        self.sock.sendall(mp.packet(command, data))
        if command in mp.NO_REPLY:
            return b"", b""
        while True:
            reply = self.read()
            if reply[0] not in (mp.ADD_HEADER, mp.QUARANTINE):
                return reply

    def read(self) -> tuple[bytes, bytes]:
        return read_packet(self.sock)

    def message(
        self, sender: bytes, raw: bytes, recipient: bytes = b"support@wildix.com"
    ) -> tuple[bytes, bytes]:
        """MAIL, RCPT, headers and body; the first refusal or the end-of-message answer."""
        for command, data in (
            (mp.MAIL, b"<" + sender + b">\0"),
            (mp.RCPT, b"<" + recipient + b">\0"),
        ):
            reply = self.send(command, data)
            if reply[0] != mp.CONTINUE:
                return reply
        self.send(mp.DATA)
        head, _, body = raw.partition(b"\r\n\r\n")
        for line in head.split(b"\r\n"):
            name, _, value = line.partition(b": ")
            self.send(mp.HEADER, name + b"\0" + value + b"\0")
        self.send(mp.EOH)
        self.send(mp.BODY, body)
        return self.send(mp.BODYEOB)

    def close(self) -> None:
        self.sock.close()


def wait_until(condition: Callable[[], Any], seconds: float, what: str) -> Any:
    """Poll ``condition`` until it is truthy; fail naming ``what`` after ``seconds``."""
    deadline = time.monotonic() + seconds
    while not (result := condition()):
        assert time.monotonic() < deadline, f"timed out after {seconds} s waiting for {what}"
        time.sleep(0.02)
    return result


class Serve:
    """``mailgate serve`` as a subprocess under ``prlimit`` (its open-file limit lowered),
    its log lines kept for the test to read; stopped with SIGTERM, its PID only."""

    def __init__(self, env: dict[str, str], nofile: int) -> None:
        command = ["prlimit", f"--nofile={nofile}:{nofile}", "--", sys.executable, "-m", "worker"]
        self.process = subprocess.Popen(
            [*command, "serve"], env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL
        )
        self.lines: list[str] = []
        started = threading.Event()

        def collect() -> None:
            assert self.process.stderr is not None
            for raw in self.process.stderr:
                line = raw.decode("utf-8", "replace")
                self.lines.append(line)
                if '"mailgate_started"' in line:
                    started.set()
            started.set()

        self.reader = threading.Thread(target=collect, daemon=True)
        self.reader.start()
        started.wait(60)
        assert self.process.poll() is None, "".join(self.lines[-5:])

    def events(self, name: str, since: int = 0) -> list[dict[str, Any]]:
        """The log lines of event ``name`` (from line number ``since`` on), parsed."""
        found = []
        for line in list(self.lines)[since:]:
            if f'"{name}"' in line:
                found.append(json.loads(line))
        return found

    def peak_rss_kib(self) -> int:
        """The process's peak resident memory so far (VmHWM)."""
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        return int(
            next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM"))
        )

    def stop(self) -> tuple[int, float]:
        """SIGTERM; the exit code and the seconds the stop took."""
        started = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(60)
        seconds = time.monotonic() - started
        self.reader.join(10)
        return code, seconds
