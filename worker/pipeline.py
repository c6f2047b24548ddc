"""The heart of mailgate: ``decide`` a raw message, then ``record`` it in one transaction.

Every transport (SMTP/LMTP, IMAP, pipe, replay) calls ``Mailgate.ingest`` and turns its
result into its own answer. ``decide`` only reads (tickets, earlier decisions); ``record``
writes the raw bytes, the decision with its audit-chain link, the reply-ledger claim and
the outbox row together, or nothing. A message that loses the race on ``dedup_key`` is
recorded as ``duplicate`` instead, so replaying the same message decides it once and
answers it once. ``explain`` runs ``decide`` alone and writes nothing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from datetime import timedelta

import structlog
from sqlalchemy import Engine
from sqlmodel import Session

from worker.clock import utcnow
from worker.decision import Decision
from worker.errors import TransientError
from worker.forwarding import forward_mail, webhook_body
from worker.mail import Envelope, InboundMail, domain_of
from worker.outbox import spool_pending
from worker.policy.chain import run_chain
from worker.policy.context import RuleContext
from worker.policy.document import Policy, PolicySet
from worker.private import tighten
from worker.recorder import Recorder
from worker.replies import ReplyPlan, build_reply, plan_reply
from worker.settings import Settings
from worker.store.db import TRANSIENT_DB_ERRORS, make_engine, migrate
from worker.store.repository import (
    StoreDirectory,
    reply_slot_free,
)
from worker.tokens import ReplyTokens
from worker.web.metrics import DECISION_SECONDS

log = structlog.get_logger("mailgate.decision")


@dataclass(frozen=True)
class OutboxItem:
    """One message to hand on after commit: an automatic reply, a forward, a webhook."""

    kind: str  # auto_reply | forward_mail | webhook
    mail_from: str
    rcpt_to: str
    message_id: str
    body: bytes


@dataclass
class Pending:
    """A decision not yet recorded, with what ``record`` needs to write alongside it."""

    decision: Decision
    dedup_key: str | None  # None for a duplicate: only the first decision holds the key
    raw: bytes
    plan: ReplyPlan
    outbox: list[OutboxItem]
    window: timedelta
    max_delivery: timedelta


class Mailgate:
    """One configured instance: settings, policies, database, token keys."""

    def __init__(
        self, settings: Settings, policies: PolicySet, engine: Engine, tokens: ReplyTokens
    ) -> None:
        self.settings = settings
        self.policies = policies
        self.engine = engine
        self.tokens = tokens
        # Reads take no write lock on SQLite (plain BEGIN), writes use BEGIN IMMEDIATE.
        self.read_engine = engine.execution_options(mailgate_read=True)
        self.recorder = Recorder(engine)

    @classmethod
    def open(cls, settings: Settings, *, migrate_schema: bool = True) -> Mailgate:
        policies = PolicySet.load(settings.policy_dir)
        tighten(settings.data_dir)  # before anything in it is opened
        engine = make_engine(settings.effective_database_url, settings.db_busy_timeout)
        if migrate_schema:
            try:
                migrate(engine)
            except TRANSIENT_DB_ERRORS as exc:
                raise TransientError(f"database unavailable: {exc.orig}") from exc
        return cls(settings, policies, engine, ReplyTokens(settings.resolved_reply_secret()))

    def support_domains(self, policy: Policy | None) -> list[str]:
        if self.settings.support_domains:
            return list(self.settings.support_domains)
        if policy is not None:
            return [d.lower() for d in policy.document.support_domains]
        return sorted(
            {d.lower() for p in self.policies.policies for d in p.document.support_domains}
        )

    @property
    def needs_dispatch(self) -> bool:
        """Whether committed outbox rows wait for the dispatcher (relay or webhook)
        rather than being spooled right after the commit."""
        return bool(self.settings.relay_url or self.settings.forward_url)

    def default_recipients(self, mail: InboundMail, policy: Policy | None) -> list[str]:
        domains = self.support_domains(policy)
        return [a for a in mail.addresses("To", "Cc") if domain_of(a) in domains]

    # -- deciding ------------------------------------------------------------------------

    def decide(
        self,
        raw: bytes,
        envelope: Envelope,
        session: Session | None = None,
        *,
        reject_in_dialogue: bool = False,
    ) -> Pending:
        """Run the policy in force over the message; reads the store, writes nothing."""
        if session is None:
            try:
                with Session(self.read_engine) as own:
                    return self.decide(raw, envelope, own, reject_in_dialogue=reject_in_dialogue)
            except TRANSIENT_DB_ERRORS as exc:
                raise TransientError(f"database unavailable: {type(exc.orig).__name__}") from exc
        mail = InboundMail.from_bytes(raw)
        policy = self.policies.in_force(envelope.received_at)
        domains = self.support_domains(policy)
        recipients = list(envelope.rcpt_tos) or self.default_recipients(mail, policy)
        envelope = replace(envelope, rcpt_tos=tuple(recipients))
        directory = StoreDirectory(session)
        ticket: str | None = None
        if policy is None:
            earlier = directory.decided(mail.dedup_key)
            when = envelope.received_at.isoformat()
            if earlier is not None:
                decision_name, rule = "duplicate", "duplicate"
                trace = [
                    {
                        "rule": "duplicate",
                        "hit": True,
                        "reason": f"already decided as decision #{earlier}",
                    }
                ]
            else:
                decision_name, rule = "quarantined", "policy_in_force"
                trace = [
                    {
                        "rule": "policy_in_force",
                        "hit": True,
                        "reason": f"no policy in force at {when}",
                    }
                ]
        else:
            ctx = RuleContext(
                mail=mail,
                envelope=envelope,
                policy=policy,
                directory=directory,
                tokens=self.tokens,
                support_domains=domains,
                max_message_bytes=self.settings.max_message_bytes,
            )
            result = run_chain(ctx)
            decision_name, rule, trace = result.decision, result.rule, result.trace
            if ctx.reference is not None:
                ticket = ctx.reference.ticket
        dedup_key: str | None = mail.dedup_key
        duplicate_of = None
        if decision_name == "duplicate":
            duplicate_of, dedup_key = directory.decided(mail.dedup_key), None
        plan = plan_reply(
            decision_name,
            mail,
            envelope.mail_from,
            recipients,
            policy,
            domains,
            envelope.channel,
            self.settings.trusted_authserv_id,
        )
        if reject_in_dialogue and decision_name.startswith("rejected_"):
            # MAILGATE_REJECT_MODE=smtp: the 550 in the dialogue is the answer; no backscatter.
            plan = ReplyPlan("smtp_rejected", "reject_mode_smtp")
        replies = policy.document.replies if policy else None
        window = timedelta(hours=replies.window_hours if replies else 24)
        max_delivery = timedelta(hours=replies.max_delivery_hours if replies else 72)
        if plan.status == "queued" and plan.recipient:
            # A cheap read first: most repeat senders are inside their window, and building
            # a reply costs more than the rest of the decision. The claim in record() is
            # still what decides.
            free = reply_slot_free(
                session, plan.recipient.lower(), plan.reason or "", utcnow(), window
            )
            if not free:
                plan = ReplyPlan("suppressed", "rate_limited")
        outbox: list[OutboxItem] = []
        if plan.status == "queued" and policy is not None and plan.recipient:
            reply_bytes, reply_id = build_reply(
                decision=decision_name,
                mail=mail,
                recipient=plan.recipient,
                policy=policy,
                support_domains=domains,
                ticket=ticket,
            )
            outbox.append(
                OutboxItem(
                    "auto_reply",
                    "",
                    plan.recipient,
                    reply_id,
                    reply_bytes,
                )
            )
        decision = Decision(
            decision=decision_name,
            rule=rule,
            policy=policy.id if policy else None,
            policy_sha256=policy.sha256 if policy else None,
            ticket=ticket,
            reply={"status": plan.status, "reason": plan.reason},
            message_id=mail.message_id,
            raw_sha256=mail.raw_sha256,
            envelope_from=envelope.mail_from,
            recipients=recipients,
            received_at=envelope.received_at,
            channel=envelope.channel,
            trace=trace,
            duplicate_of=duplicate_of,
        )
        if decision_name == "accepted_followup" and envelope.channel != "replay":
            # An archive replay records history; the ticket system already has it.
            outbox += self._forwards(decision, mail, domains)
        return Pending(decision, dedup_key, raw, plan, outbox, window, max_delivery)

    def _forwards(
        self, decision: Decision, mail: InboundMail, domains: list[str]
    ) -> list[OutboxItem]:
        items = []
        settings = self.settings
        if settings.forward_to:
            sender = f"mailgate@{domains[0]}"
            body, message_id = forward_mail(decision, mail, settings.forward_to, sender, domains[0])
            items.append(OutboxItem("forward_mail", sender, settings.forward_to, message_id, body))
        if settings.forward_url:
            body = webhook_body(decision, mail)
            items.append(
                OutboxItem(
                    "webhook",
                    "",
                    settings.forward_url,
                    decision.message_id or decision.raw_sha256,
                    body,
                )
            )
        return items

    def explain(self, raw: bytes, envelope: Envelope) -> Decision:
        """The decision and trace a message would get now; ``decide`` only reads."""
        with Session(self.read_engine) as session:
            return self.decide(raw, envelope, session).decision

    # -- recording -----------------------------------------------------------------------

    def record(self, pending: Pending) -> Decision:
        """Commit the decision with everything that belongs to it (see ``worker.recorder``)."""
        return self.recorder.record(pending)

    def ingest(
        self, raw: bytes, envelope: Envelope, *, reject_in_dialogue: bool = False
    ) -> Decision:
        """Decide, record, log the canonical line, and spool any reply when no relay is set."""
        started = time.perf_counter()
        pending = self.decide(raw, envelope, reject_in_dialogue=reject_in_dialogue)
        decision = self.record(pending)
        DECISION_SECONDS.observe(time.perf_counter() - started)
        return self._after_commit([decision])[0]

    def ingest_many(self, messages: list[tuple[bytes, Envelope]]) -> list[Decision]:
        """Several messages in one transaction (IMAP batches, replay): one fsync for all."""
        started = time.perf_counter()
        pendings = [self.decide(raw, envelope) for raw, envelope in messages]
        decisions = self.recorder.record_many(pendings)
        elapsed = time.perf_counter() - started
        for _ in decisions:
            DECISION_SECONDS.observe(elapsed)
        return self._after_commit(decisions)

    def _after_commit(self, decisions: list[Decision]) -> list[Decision]:
        outbox_ids: list[int] = []
        for decision in decisions:
            log.info("decision", **decision.as_dict())
            outbox_ids += decision.outbox_ids
        if outbox_ids and not self.settings.relay_url:
            try:
                spool_pending(self.engine, self.settings.outbox_dir, outbox_ids)
            except (OSError, TransientError) as exc:
                # The reply is committed in the outbox; the next run of any command spools it.
                log.warning("outbox_spool_deferred", error=str(exc))
        return decisions
