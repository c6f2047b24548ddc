"""The ingest socket: ``serve`` decides the messages ``mailgate ingest`` hands over.

A pipe process that finds ``serve`` on ``MAILGATE_INGEST_SOCKET`` (``worker.launcher``)
sends its arguments and the message bytes instead of importing the store itself; the
exchange is ``worker.ingest_socket``'s. Here each one is decided exactly as ``ingest``
would decide it (the gateway, channel ``pipe``, in the executor) and answered only after
the commit, with the output, stderr line and exit code ``ingest`` would have printed; any
failure is the same exit code as in-process (the pipe's table, ``worker.exits.PIPE``).
The socket is bound once by the ``serve`` parent (workers inherit it and all accept),
``0600``: the pipe runs as the service user (``deploy/postfix/pipe.master.cf``). A socket
left by a crash is replaced at start; one another ``serve`` still answers on is refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import structlog

from worker import exits
from worker import ingest_socket as wire
from worker.decision import Channel, Decision
from worker.errors import ConfigError, MailgateError
from worker.ingress import pipe
from worker.ingress.gateway import Gateway

log = structlog.get_logger("mailgate.handoff")
MAX_PATH = wire.MAX_SOCKET_PATH
SETTING = wire.SETTING
READ_SECONDS = wire.READ_SECONDS


@contextlib.contextmanager
def listening_socket(path: Path | None) -> Iterator[socket.socket | None]:
    """The bound, listening socket at ``path`` (None: off), removed again at the end."""
    if path is None:
        yield None
        return
    listener = bind(path)
    inode = path.stat().st_ino
    try:
        yield listener
    finally:
        listener.close()
        with contextlib.suppress(OSError):
            if path.stat().st_ino == inode:  # not a socket a newer serve put there
                path.unlink()


def bind(path: Path) -> socket.socket:
    """Listen on ``path`` (0600); a clear ``ConfigError`` when that cannot be."""
    if len(os.fsencode(path)) > MAX_PATH:
        raise ConfigError(f"{SETTING}: {path} is longer than {MAX_PATH} bytes: set a shorter path")
    _remove_stale(path)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(str(path))
        os.chmod(path, 0o600)  # the pipe runs as the service user; nobody else
        listener.listen(128)
    except OSError as exc:
        listener.close()
        raise ConfigError(
            f"cannot listen on unix:{path} ({SETTING}): {exc.strerror or exc}"
        ) from None
    return listener


def _remove_stale(path: Path) -> None:
    """A socket nobody answers on is a crashed serve's: remove it; refuse anything else."""
    try:
        mode = path.lstat().st_mode
    except OSError:
        return  # nothing there, or a directory we cannot read: bind says which
    if not stat.S_ISSOCK(mode):
        raise ConfigError(f"{SETTING}: {path} exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except OSError:
        path.unlink(missing_ok=True)
        return
    finally:
        probe.close()
    raise ConfigError(f"{SETTING}: another mailgate serve answers on {path}")


class HandoffHandler:
    """One session per ``ingest`` call on the socket, decided like the pipe decides."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    async def session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Counted from the start: a stopping serve lets a session that has begun finish.
        with self.gateway.in_flight.deciding():
            try:
                answer = await self._answer(reader, writer)
            except (OSError, EOFError, ValueError):  # timeouts too
                answer = None  # the client went away or spoke nonsense: nothing decided
            except Exception as exc:  # e.g. the executor already stopped
                answer = self._failed(exc)
            if answer is not None:
                with contextlib.suppress(OSError):
                    writer.write(wire.line(answer))
                    await writer.drain()
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def _answer(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> dict[str, Any] | None:
        # Not JSON at all: ValueError, answered with nothing; JSON of another kind: fallback.
        call = json.loads(await asyncio.wait_for(reader.readline(), READ_SECONDS) or b"null")
        if not isinstance(call, dict) or call.get("v") != wire.PROTOCOL:
            return {"fallback": "protocol"}
        try:
            delivery = _delivery(call)
        except Exception as exc:
            return self._failed(exc)
        writer.write(wire.line({"read": delivery.source}))
        await writer.drain()
        length = int(await asyncio.wait_for(reader.readline(), READ_SECONDS))
        raw = await asyncio.wait_for(reader.readexactly(length), READ_SECONDS)
        loop = asyncio.get_running_loop()
        answer, decided = await loop.run_in_executor(
            self.gateway.executor, self._decide, raw, delivery, bool(call.get("json"))
        )
        self.gateway.wake_outbox(decided)
        return answer

    def _decide(
        self, raw: bytes, delivery: pipe.PipeDelivery, as_json: bool
    ) -> tuple[dict[str, Any], list[Decision]]:
        """In the executor: decide and commit (the envelope is parsed here, off the event
        loop), then the answer ``ingest`` would print."""
        try:
            decision = self.gateway.decide(raw, delivery.envelope(raw))
            text = pipe.output(decision, as_json)
        except Exception as exc:
            return self._failed(exc), []
        return {"exit": 0, "stdout": text, "stderr": ""}, [decision]

    def _failed(self, error: Exception) -> dict[str, Any]:
        """The answer of a failed ``ingest``: its one stderr line and exit code (the pipe's
        table, ``worker.exits.PIPE``); a bug is logged and counted as a tempfail."""
        if not isinstance(error, MailgateError):
            self.gateway.failed(error, Channel.PIPE, via="ingest_socket")
        message, code = exits.failure(error, exits.PIPE)
        return {"exit": code, "stdout": "", "stderr": f"mailgate: {message}\n"}


def _delivery(call: dict[str, Any]) -> pipe.PipeDelivery:
    """The delivery as ``ingest`` reads its arguments, with the client's view of files."""
    arguments = [(str(value), bool(exists)) for value, exists in call["arguments"]]
    return pipe.PipeDelivery.from_arguments(
        [value for value, _ in arguments],
        None if call["sender"] is None else str(call["sender"]),
        [str(value) for value in call["recipients"]],
        exists=dict(arguments).__getitem__,
    )
