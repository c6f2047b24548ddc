"""The milter ingress: Postfix asks mailgate at the end of DATA, inside the sender's session.

Behind an MTA, a ``550`` from mailgate after the MTA queued the mail turns into a bounce to a
possibly forged sender (backscatter). As a milter, mailgate answers before the MTA accepts
anything, so a rejection reaches the sender through their own MTA. Each message becomes one
pipeline call with channel ``milter`` and only its support-domain recipients (decided once
however many there are); the decision is committed before the answer: accepted follow-ups
continue with ``X-Mailgate-*`` headers added, rejections are ``550 5.7.1`` with the policy's
text, automated mail is discarded, a duplicate gets its original's answer, quarantine goes to
the MTA's hold queue,
any failure is ``451 4.3.0``. Mail with no support recipient is accepted at DATA, unread and
unrecorded. The protocol itself (our own small v6 implementation) is ``milter_protocol``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from worker.clock import utcnow
from worker.decision import Decision, DecisionName, is_rejection
from worker.errors import ConfigError
from worker.ingress import answers
from worker.ingress import milter_protocol as mp
from worker.ingress.in_flight import InFlight
from worker.mail import Envelope, domain_of, normalize_address
from worker.metrics import TEMPFAILS
from worker.pipeline import Mailgate
from worker.reject_text import reject_lines
from worker.settings import parse_milter_listen

log = structlog.get_logger("mailgate.milter")


@dataclass
class Message:
    """What the MTA has told us about the message in progress."""

    mail_from: str = ""
    recipients: list[str] = field(default_factory=list)
    headers: list[bytes] = field(default_factory=list)
    body: bytearray = field(default_factory=bytearray)
    size: int = 0
    queue_id: str = ""

    def raw(self) -> bytes:
        """The message rebuilt from the header fields and body chunks the MTA sent: one copy
        of the bytes (the body buffer joins as it is), not one per step."""
        return b"".join([*self.headers, b"\r\n", self.body])


class MilterHandler:
    """Serves every milter connection of one listener."""

    def __init__(
        self, gate: Mailgate, executor: Executor, on_outbox: Callable[[], None] | None = None
    ) -> None:
        self.gate = gate
        self.executor = executor
        self.on_outbox = on_outbox
        self.in_flight = InFlight()

    async def session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One MTA connection: packets in, replies out, until QUIT or end of stream."""
        message = Message()
        try:
            while (received := await mp.read_packet(reader)) is not None:
                command, data = received
                if command == mp.QUIT:
                    break
                reply, message = await self.step(command, data, message)
                if reply:
                    writer.write(reply)
                    await writer.drain()
        except (mp.ProtocolError, ConnectionError) as exc:
            log.warning("milter_session_error", error=str(exc))
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def step(self, command: bytes, data: bytes, message: Message) -> tuple[bytes, Message]:
        """The reply to one packet (``b""`` for none) and the message state after it."""
        if command == mp.OPTNEG:
            return mp.negotiate(data), message
        if command == mp.MACRO:
            return b"", _with_macros(message, data)
        if command == mp.MAIL:
            args = mp.strings(data)
            new = Message(mail_from=args[0] if args else "", queue_id=message.queue_id)
            return mp.packet(mp.CONTINUE), new
        if command == mp.RCPT:
            args = mp.strings(data)
            message.recipients.append(args[0] if args else "")
            return mp.packet(mp.CONTINUE), message
        if command == mp.DATA and not self.support_recipients(message):
            return mp.packet(mp.ACCEPT), Message()  # not for the desk: untouched, unrecorded
        if command == mp.HEADER:
            _add_header(message, data)
        elif command == mp.BODY:
            _add_body(message, data, self.gate.settings.max_message_bytes)
        elif command == mp.BODYEOB:
            _add_body(message, data, self.gate.settings.max_message_bytes)
            return await self.end_of_message(message), Message()
        elif command in (mp.ABORT, mp.QUIT_NC):
            return b"", Message()
        return (b"" if command in mp.NO_REPLY else mp.packet(mp.CONTINUE)), message

    def support_recipients(self, message: Message) -> tuple[str, ...]:
        domains = self.gate.support_domains(self.gate.policies.in_force(utcnow()))
        addresses = (normalize_address(r) for r in message.recipients)
        return tuple(dict.fromkeys(a for a in addresses if a and domain_of(a) in domains))

    async def end_of_message(self, message: Message) -> bytes:
        """Decide once, commit, then answer; any failure is a tempfail."""
        recipients = self.support_recipients(message)
        if not recipients:
            return mp.packet(mp.ACCEPT)
        if message.size > self.gate.settings.max_message_bytes:
            log.info("milter_answer", answer="too_big", queue_id=message.queue_id)
            return mp.reply_code([answers.TOO_BIG])
        envelope = Envelope(
            mail_from=normalize_address(message.mail_from),
            rcpt_tos=recipients,
            channel="milter",
            received_at=utcnow(),
        )
        try:
            raw = message.raw()
            with self.in_flight.deciding():
                decision = await asyncio.get_running_loop().run_in_executor(
                    self.executor,
                    lambda: self.gate.ingest(raw, envelope, reject_in_dialogue=True),
                )
            reply = self.answer(decision)
        except Exception:
            log.exception("ingest_failed", channel="milter", queue_id=message.queue_id)
            TEMPFAILS.labels(channel="milter").inc()
            return mp.reply_code([answers.TEMPFAIL])
        if decision.outbox_ids and self.gate.needs_dispatch and self.on_outbox is not None:
            self.on_outbox()
        log.info(
            "milter_answer", decision=decision.decision, id=decision.id, queue_id=message.queue_id
        )
        return reply

    def answer(self, decision: Decision) -> bytes:
        """The milter reply for a committed decision, per SPEC.

        A duplicate gets the answer its original got: the MTA sends a message again when it
        never heard our answer (a timeout after our commit), and discarding it then would
        lose a follow-up or turn a refusal into silence. It is still decided only once.
        """
        name = decision.original_decision or decision.decision
        if name == DecisionName.ACCEPTED_FOLLOWUP:
            return (
                mp.add_header("X-Mailgate-Decision", name)
                + mp.add_header("X-Mailgate-Ticket", decision.ticket or "")
                + mp.packet(mp.CONTINUE)
            )
        if is_rejection(name):
            return mp.reply_code(self.rejection_lines(decision, name))
        if name == DecisionName.QUARANTINED and decision.decision != DecisionName.DUPLICATE:
            return mp.quarantine(f"mailgate: {decision.rule}") + mp.packet(mp.CONTINUE)
        # Automated mail, and the second copy of a quarantined one (its raw bytes are kept).
        return mp.packet(mp.DISCARD)

    def rejection_lines(self, decision: Decision, name: str) -> list[str]:
        """``550 5.7.1`` with the decision's short text from the policy, in English and in
        the customer's language (``worker.reject_text``), one reply line per clause."""
        policy = self.gate.policies.by_id(decision.policy or "")
        lines = reject_lines(policy, name, decision.reply_language)
        if not lines:
            return [answers.DEFAULT_REJECTION]
        return [f"550-5.7.1 {line}" for line in lines[:-1]] + [f"550 5.7.1 {lines[-1]}"]


def _with_macros(message: Message, data: bytes) -> Message:
    """Keep the queue id (macro ``i``) for the logs; other macros are not needed."""
    values = mp.strings(data[1:])
    for name, value in zip(values[::2], values[1::2], strict=False):
        if name in ("i", "{i}"):
            message.queue_id = value
    return message


def _add_header(message: Message, data: bytes) -> None:
    name, _, rest = data.partition(b"\0")
    value = rest.rstrip(b"\0")
    # Postfix drops the space after the colon and folds with bare LF; put back the wire form.
    value = value.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    line = name + b": " + value + b"\r\n"
    message.size += len(line)
    message.headers.append(line)


def _add_body(message: Message, chunk: bytes, limit: int) -> None:
    message.size += len(chunk)
    if message.size <= limit:  # past the limit only the size is kept: the answer is 552
        message.body += chunk


async def start_listener(
    handler: MilterHandler, value: str, *, reuse_port: bool = False
) -> tuple[asyncio.base_events.Server, str]:
    """Listen on MAILGATE_MILTER_LISTEN; a taken address is one clear ConfigError."""
    where = parse_milter_listen(value)
    try:
        if isinstance(where, Path):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(where)  # a socket left by a previous run
            server = await asyncio.start_unix_server(handler.session, path=str(where))
            where.chmod(0o660)  # the MTA's group connects; nobody else
            return server, f"milter://unix:{where}"
        server = await asyncio.start_server(
            handler.session,
            host=where[0],
            port=where[1],
            reuse_address=True,
            reuse_port=reuse_port or None,
        )
    except OSError as exc:
        raise ConfigError(
            f"cannot listen on {value} (MAILGATE_MILTER_LISTEN): {exc.strerror or exc}"
        ) from None
    port = server.sockets[0].getsockname()[1]
    return server, f"milter://{where[0]}:{port}"
