"""The milter ingress: Postfix asks mailgate at the end of DATA, inside the sender's session.

Behind an MTA, a ``550`` from mailgate after the MTA queued the mail turns into a bounce to a
possibly forged sender (backscatter). As a milter, mailgate answers before the MTA accepts
anything, so a rejection reaches the sender through their own MTA. Each message becomes one
gateway call (``worker.ingress.gateway``) with channel ``milter`` and only its
support-domain recipients (decided once however many there are); the decision is committed
before the answer, which the milter table (``worker.ingress.answers.MILTER``) gives:
accepted follow-ups continue with ``X-Mailgate-*`` headers added, rejections are the
``550 5.7.1`` of SMTP reject mode, automated mail is discarded, a duplicate gets its
original's answer, quarantine goes to the MTA's hold queue, any failure is ``451 4.3.0``.
Mail with no support recipient is accepted at DATA, unread and unrecorded. The protocol
itself (our own small v6 implementation) is ``milter_protocol``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from worker.clock import utcnow
from worker.decision import Channel
from worker.errors import ConfigError
from worker.ingress import answers
from worker.ingress import milter_protocol as mp
from worker.ingress.connections import Sessions
from worker.ingress.gateway import Gateway, Outcome
from worker.mail import Envelope, normalize_address, undecodable
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

    def __init__(self, gateway: Gateway, cap: int | None = None) -> None:
        self.gateway = gateway
        settings = gateway.settings
        self.max_bytes = settings.max_message_bytes
        self.sessions = Sessions(
            "milter",
            cap or settings.milter_max_connections,
            settings.milter_idle_timeout,
            settings.stress_idle_timeout,
        )

    async def session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One MTA connection: packets in, replies out, until QUIT or end of stream; an idle
        one ends after the idle timeout, or at once when serve stops."""
        message = Message()
        try:
            while (received := await self.sessions.read(mp.read_packet(reader))) is not None:
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
            return self.recipient(data, message), message
        if command == mp.DATA and not self.gateway.for_the_desk(message.recipients):
            return mp.packet(mp.ACCEPT), Message()  # not for the desk: untouched, unrecorded
        if command in (mp.HEADER, mp.BODY):
            (_add_header if command == mp.HEADER else _add_body)(message, data, self.max_bytes)
            if message.size > self.max_bytes:  # header fields count too; answer now, keep nothing
                log.info("milter_answer", answer="too_big", queue_id=message.queue_id)
                return mp.reply_code([answers.TOO_BIG]), Message(queue_id=message.queue_id)
        elif command == mp.BODYEOB:
            _add_body(message, data, self.max_bytes)
            return await self.end_of_message(message), Message()
        elif command in (mp.ABORT, mp.QUIT_NC):
            return b"", Message()
        return (b"" if command in mp.NO_REPLY else mp.packet(mp.CONTINUE)), message

    def recipient(self, data: bytes, message: Message) -> bytes:
        """RCPT: noted; refused for good when the sender is not UTF-8 and this recipient is
        the desk's (its write could never succeed), while the MTA's other domains go on."""
        args = mp.strings(data)
        recipient = args[0] if args else ""
        if undecodable(message.mail_from) and self.gateway.for_the_desk([recipient]):
            log.info("milter_answer", answer="sender_not_utf8", queue_id=message.queue_id)
            return mp.reply_code([answers.SENDER_NOT_UTF8])
        message.recipients.append(recipient)
        return mp.packet(mp.CONTINUE)

    async def end_of_message(self, message: Message) -> bytes:
        """Decide once, commit, then answer; any failure is a tempfail."""
        recipients = self.gateway.for_the_desk(message.recipients)
        if not recipients:
            return mp.packet(mp.ACCEPT)
        if message.size > self.max_bytes:
            log.info("milter_answer", answer="too_big", queue_id=message.queue_id)
            return mp.reply_code([answers.TOO_BIG])
        envelope = Envelope(
            mail_from=normalize_address(message.mail_from),
            rcpt_tos=recipients,
            channel=Channel.MILTER,
            received_at=utcnow(),
        )
        outcome = await self.gateway.submit(
            message.raw(), envelope, reject_in_dialogue=True, queue_id=message.queue_id
        )
        if outcome.decision is not None:
            decision = outcome.decision
            log.info(
                "milter_answer",
                decision=decision.decision,
                id=decision.id,
                queue_id=message.queue_id,
            )
        return self.reply(outcome)

    def reply(self, outcome: Outcome) -> bytes:
        """The milter's packets for an outcome, by the milter table (SPEC): an accepted
        follow-up continues with ``X-Mailgate-*`` headers, a rejection is the ``550 5.7.1``
        the SMTP reject mode gives, automated mail is discarded, quarantined mail goes to
        the MTA's hold queue, a failure is ``451 4.3.0``."""
        found = answers.answer(outcome, answers.MILTER, held_again=answers.Answer.DISCARD)
        decision = outcome.decision
        if found is answers.Answer.ACCEPT and decision is not None:
            return (
                mp.add_header("X-Mailgate-Decision", outcome.answered_as or "")
                + mp.add_header("X-Mailgate-Ticket", decision.ticket or "")
                + mp.packet(mp.CONTINUE)
            )
        if found is answers.Answer.REJECT:
            return mp.reply_code([answers.rejection(self.gateway.policies, outcome, one_line=True)])
        if found is answers.Answer.QUARANTINE and decision is not None:
            return mp.quarantine(f"mailgate: {decision.rule}") + mp.packet(mp.CONTINUE)
        if found is answers.Answer.DISCARD:
            return mp.packet(mp.DISCARD)
        return mp.reply_code([answers.TEMPFAIL])


def _with_macros(message: Message, data: bytes) -> Message:
    """Keep the queue id (macro ``i``) for the logs; other macros are not needed."""
    values = mp.strings(data[1:])
    for name, value in zip(values[::2], values[1::2], strict=False):
        if name in ("i", "{i}"):
            message.queue_id = value
    return message


def _add_header(message: Message, data: bytes, limit: int) -> None:
    name, _, rest = data.partition(b"\0")
    value = rest.rstrip(b"\0")
    # Postfix drops the space after the colon and folds with bare LF; put back the wire form.
    value = value.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    line = name + b": " + value + b"\r\n"
    message.size += len(line)
    if message.size <= limit:  # past the limit nothing more is kept: the answer is 552
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
    session = handler.sessions.serving(handler.session)  # capped, stoppable
    try:
        if isinstance(where, Path):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(where)  # a socket left by a previous run
            server = await asyncio.start_unix_server(session, path=str(where))
            where.chmod(0o660)  # the MTA's group connects; nobody else
            return server, f"milter://unix:{where}"
        server = await asyncio.start_server(
            session,
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
