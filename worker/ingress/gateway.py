"""The one call every transport makes: raw bytes and an envelope in, an ``Outcome`` out.

SMTP/LMTP, the milter, the hand-off socket, the pipe, IMAP and replay each turn what their
protocol delivered into bytes and an ``Envelope``, call the gateway, and translate the
outcome with their table in ``worker.ingress.answers``. What they used to repeat lives
here once: deciding off the event loop in the executor, counting the decisions in flight
(a stopping server waits for their commits), turning any failure into a logged, counted
outcome that every protocol answers as "retry later", and waking the outbox when a
committed decision left mail for the relay or a webhook.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from functools import partial
from typing import Any

import structlog

from worker.clock import utcnow
from worker.decision import Decision
from worker.ingress.in_flight import InFlight
from worker.mail import Envelope, domain_of, normalize_address
from worker.metrics import TEMPFAILS
from worker.pipeline import Mailgate

log = structlog.get_logger("mailgate.gateway")


@dataclass(frozen=True)
class Outcome:
    """A committed decision, or the failure that kept the message from being committed."""

    decision: Decision | None = None
    error: Exception | None = None

    @property
    def answered_as(self) -> str | None:
        """The decision the answer follows: a duplicate is answered as its original was
        (the sender may never have heard the first answer), still decided only once."""
        if self.decision is None:
            return None
        return self.decision.original_decision or self.decision.decision


class Gateway:
    """The pipeline as transports see it; one per running server, shared by its listeners."""

    def __init__(
        self,
        gate: Mailgate,
        executor: Executor | None = None,
        on_outbox: Callable[[], None] | None = None,
    ) -> None:
        self.gate = gate
        self.settings = gate.settings
        self.policies = gate.policies
        self.executor = executor
        self.on_outbox = on_outbox
        self.in_flight = InFlight()

    def support_domains(self) -> list[str]:
        """The domains mailgate answers for now (the setting, else the policy in force)."""
        return self.gate.support_domains(self.gate.policies.in_force(utcnow()))

    def for_the_desk(self, addresses: list[str]) -> tuple[str, ...]:
        """The addresses in the support domains, normalised, each once, in order."""
        domains = self.support_domains()
        normalized = (normalize_address(address) for address in addresses)
        return tuple(dict.fromkeys(a for a in normalized if a and domain_of(a) in domains))

    def decide(
        self, raw: bytes | bytearray, envelope: Envelope, *, reject_in_dialogue: bool = False
    ) -> Decision:
        """Decide and commit one message; a failure raises (nothing was committed)."""
        return self.gate.ingest(raw, envelope, reject_in_dialogue=reject_in_dialogue)

    def decide_many(self, messages: list[tuple[bytes, Envelope]]) -> list[Decision]:
        """Several messages in one transaction (an IMAP batch, a replay); raises as one."""
        return self.gate.ingest_many(messages) if messages else []

    async def submit(
        self,
        raw: bytes | bytearray,
        envelope: Envelope,
        *,
        reject_in_dialogue: bool = False,
        **context: Any,
    ) -> Outcome:
        """``decide`` in the executor, counted in flight; a failure is logged (with the
        transport's ``context``), counted, and returned as the outcome."""
        call = partial(self.decide, raw, envelope, reject_in_dialogue=reject_in_dialogue)
        with self.in_flight.deciding():
            try:
                decision = await asyncio.get_running_loop().run_in_executor(self.executor, call)
            except Exception as exc:
                self.failed(exc, envelope.channel, **context)
                return Outcome(error=exc)
        self.wake_outbox([decision])
        return Outcome(decision)

    def failed(self, error: Exception, channel: str, **context: Any) -> None:
        """The one log line and metric of a message answered "retry later"."""
        log.exception("ingest_failed", channel=str(channel), **context, exc_info=error)
        TEMPFAILS.labels(channel=str(channel)).inc()

    def wake_outbox(self, decisions: list[Decision]) -> None:
        """Mail for the relay or a webhook goes out now, not at the next outbox round.
        Called on the event loop's thread: ``on_outbox`` sets an ``asyncio.Event``."""
        queued = any(decision.outbox_ids for decision in decisions)
        if queued and self.gate.needs_dispatch and self.on_outbox is not None:
            self.on_outbox()
