"""The heart of mailgate: ``decide`` a raw message, then ``record`` it in one transaction.

Every transport (SMTP/LMTP, IMAP, pipe, replay) calls ``Mailgate.ingest`` and turns its
result into its own answer. ``decide`` only reads (the ticket); ``record`` writes the raw
bytes, the decision with its audit-chain link, the reply-ledger claim and the outbox row
together, or nothing. A message whose ``dedup_key`` is already there loses the insert and
is recorded as ``duplicate`` instead, and a reply whose (sender, reason) slot is taken is
dropped by the claim, so neither needs a read beforehand: replaying the same message
decides it once and answers it once. ``explain`` runs ``decide`` alone, with those two
reads, and writes nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import structlog
from sqlmodel import Session

from worker.clock import utcnow
from worker.decision import (
    Channel,
    Decision,
    DecisionName,
    Pending,
    ReplyPlan,
    ReplyReason,
    ReplyStatus,
    is_rejection,
)
from worker.errors import TransientError
from worker.helpdesk.config import references
from worker.mail import Envelope, InboundMail, domain_of
from worker.metrics import DECISION_SECONDS
from worker.outbox import spool_pending
from worker.outbox_items import LateReply, forward_items, reply_item, reply_queued
from worker.policy.chain import ChainResult, decision_of, describe, run_chain
from worker.policy.context import RuleContext
from worker.policy.document import Policy, reply_windows
from worker.policy.earlier import deferred, look_up
from worker.policy.reference import resolve
from worker.public_id import new_public_id
from worker.recorder import Recorder
from worker.recording import Recording
from worker.replies import NO_REPLY_DECISIONS, plan_reply
from worker.reply_language import choose as choose_language
from worker.reply_slots import ReplySlots
from worker.runtime import Runtime
from worker.settings import Settings
from worker.spam import spam_verdict
from worker.store.db import TRANSIENT_DB_ERRORS
from worker.store.repository import StoreDirectory, reply_slot_free
from worker.store.ticket_cache import CachedDirectory, TicketCache
from worker.store.tickets_view import Directory, TicketSource
from worker.tokens import ReplyTokens

log = structlog.get_logger("mailgate.decision")


@dataclass(frozen=True)
class Classified:
    """A message after the chain: its resolved context and the chain's result."""

    raw: bytes | bytearray
    ctx: RuleContext
    result: ChainResult


def _quiet_hold(rule: str, reject_in_dialogue: bool) -> ReplyReason | None:
    """Why a held message gets no acknowledgement, if it gets none: in reject-in-dialogue
    mode none does (an acknowledgement is an auto-reply: backscatter), nor does a hold of a
    rule that never answers (a suspected bounce, suspicious mail)."""
    if reject_in_dialogue:
        return ReplyReason.REJECT_MODE_SMTP
    held_back = decision_of(rule)
    return NO_REPLY_DECISIONS.get(held_back) if held_back else None


class Mailgate:
    """The gate over one runtime (``worker.runtime``): decides and records, opens nothing."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.settings = runtime.settings
        self.policies = runtime.policies
        self.engine = runtime.engine
        self.tokens = ReplyTokens(runtime.secret)
        # Reads take no write lock on SQLite (plain BEGIN), writes use BEGIN IMMEDIATE.
        self.read_engine = self.engine.execution_options(mailgate_read=True)
        self.reply_slots = ReplySlots()
        self.recorder: Recording = Recorder(self.engine, self.reply_slots, self.policies)
        self.tickets = TicketCache(self.engine)
        self.references = references(self.settings)  # what MAILGATE_HELPDESK adds to matching

    def recorder_here(self) -> Recorder:
        """A recorder writing from this process (``serve``'s writer, a worker's actions)."""
        return Recorder(self.engine, self.reply_slots, self.policies)

    @classmethod
    def open(cls, settings: Settings, *, migrate_schema: bool = True) -> Mailgate:
        """The gate over a runtime opened from ``settings`` (data dir, database, secret)."""
        return cls(Runtime.open(settings, migrate_schema=migrate_schema))

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
        return bool(self.settings.relay_url or self.settings.forward_url or self.settings.helpdesk)

    def default_recipients(self, mail: InboundMail, policy: Policy | None) -> list[str]:
        domains = self.support_domains(policy)
        return [a for a in mail.addresses("To", "Cc") if domain_of(a) in domains]

    # -- deciding ------------------------------------------------------------------------

    def decide(
        self,
        raw: bytes | bytearray,
        envelope: Envelope,
        session: Session | None = None,
        *,
        reject_in_dialogue: bool = False,
        recording: bool = False,
    ) -> Pending:
        """Run the policy in force over the message; reads the store, writes nothing.

        Three steps: classify (resolve the ticket and "already decided?", run the chain),
        plan the reply (reject mode, rate-limit pre-read), build the decision and what goes
        to the outbox. ``recording``: the decision is about to be recorded, so the two reads
        the write transaction makes anyway are deferred to it and tickets come from the
        cache (see ``CachedDirectory``); ``explain`` keeps the reads, so that a dry run
        still says "duplicate" and "rate_limited".
        """
        if recording:
            message = self._classify(raw, envelope, CachedDirectory(self.tickets), None)
            plan = self._plan_reply(message, None, reject_in_dialogue)
            return self._pending(message, plan)
        if session is None:
            try:
                with Session(self.read_engine) as own:
                    return self.decide(raw, envelope, own, reject_in_dialogue=reject_in_dialogue)
            except TRANSIENT_DB_ERRORS as exc:
                raise TransientError(f"database unavailable: {type(exc.orig).__name__}") from exc
        directory = StoreDirectory(session)
        message = self._classify(raw, envelope, directory, directory)
        plan = self._plan_reply(message, session, reject_in_dialogue)
        return self._pending(message, plan)

    def _classify(
        self,
        raw: bytes | bytearray,
        envelope: Envelope,
        tickets: TicketSource,
        decision_log: Directory | None,
    ) -> Classified:
        """Parse, pick the policy in force, resolve the ticket and whether the message was
        decided before (without ``decision_log``: deferred to commit), run the chain."""
        mail = InboundMail.from_bytes(raw)
        policy = self.policies.in_force(envelope.received_at)
        domains = self.support_domains(policy)
        recipients = list(envelope.rcpt_tos) or self.default_recipients(mail, policy)
        envelope = replace(envelope, rcpt_tos=tuple(recipients))
        found = resolve(
            mail, envelope, policy, tickets, self.tokens, domains, helpdesk=self.references
        )
        key = mail.dedup_key
        ctx = RuleContext(
            mail=mail,
            envelope=envelope,
            policy=policy,
            earlier=deferred(key) if decision_log is None else look_up(key, decision_log),
            support_domains=domains,
            max_message_bytes=self.settings.max_message_bytes,
            reference=found.reference,
            ticket=found.ticket,
        )
        return Classified(raw, ctx, run_chain(ctx, found.step))

    def _plan_reply(
        self,
        message: Classified,
        session: Session | None,
        reject_in_dialogue: bool,
    ) -> ReplyPlan:
        """Whether the decision gets an automatic reply, and why not when it does not;
        with a ``session`` (a dry run) the reply window is read beforehand too."""
        ctx, decision = message.ctx, message.result.decision
        if reject_in_dialogue and decision.is_rejection:
            # MAILGATE_REJECT_MODE=smtp: the 550 in the dialogue is the answer; no backscatter.
            language = choose_language(ctx.mail, ctx.policy)
            return ReplyPlan(
                ReplyStatus.SMTP_REJECTED, ReplyReason.REJECT_MODE_SMTP, language=language
            )
        if decision == DecisionName.HELD:
            quiet = _quiet_hold(message.result.rule, reject_in_dialogue)
            if quiet is not None:
                return ReplyPlan(ReplyStatus.SUPPRESSED, quiet)
        plan = plan_reply(
            decision,
            ctx.mail,
            ctx.envelope.mail_from,
            list(ctx.envelope.rcpt_tos),
            ctx.policy,
            ctx.support_domains,
            ctx.envelope.channel,
            self.settings.trusted_authserv_id,
        )
        if reject_in_dialogue and is_rejection(ctx.earlier.decision or ""):
            # A repeat is refused again, in the words the first refusal used.
            return replace(plan, language=choose_language(ctx.mail, ctx.policy))
        if plan.status != ReplyStatus.QUEUED or not plan.recipient:
            return plan
        if spam_verdict(ctx.mail, ctx.policy):
            # The desk's filter called it spam: its sender is likely forged (backscatter).
            return ReplyPlan(ReplyStatus.SUPPRESSED, ReplyReason.SPAM)
        recipient = plan.recipient
        if session is None and self._slot_known_taken(plan, decision):
            return plan  # no language yet: chosen with the reply, if the claim is won after all
        plan = replace(plan, language=choose_language(ctx.mail, ctx.policy))
        # The claim in record() decides; only a dry run needs to know beforehand.
        if session is None:
            return plan
        window, _ = reply_windows(ctx.policy)
        if not reply_slot_free(session, recipient.lower(), plan.reason or "", utcnow(), window):
            return ReplyPlan(ReplyStatus.SUPPRESSED, ReplyReason.RATE_LIMITED)
        return plan

    def _pending(self, message: Classified, plan: ReplyPlan) -> Pending:
        """The decision and its outbox items: the reply, then any forwards of a follow-up."""
        ctx, result = message.ctx, message.result
        decision = Decision(
            decision=str(result.decision),
            rule=str(result.rule),
            policy=ctx.policy.id if ctx.policy else None,
            policy_sha256=ctx.policy.sha256 if ctx.policy else None,
            ticket=ctx.reference.ticket if ctx.reference else None,
            reply=plan,
            message_id=ctx.mail.message_id,
            raw_sha256=ctx.mail.raw_sha256,
            envelope_from=ctx.envelope.mail_from,
            recipients=list(ctx.envelope.rcpt_tos),
            received_at=ctx.envelope.received_at,
            channel=ctx.envelope.channel,
            trace=result.trace,
            duplicate_of=ctx.earlier.decision_id,
            original_decision=ctx.earlier.decision,
            # Known before the commit, so that the reply can quote it.
            public_id=new_public_id(),
            reply_language=plan.language.language if plan.language else None,
        )
        if plan.language is not None and plan.status != ReplyStatus.SUPPRESSED:
            decision.trace = [*result.trace, plan.language.trace_step()]
        late_reply = None
        if reply_queued(ctx, plan) and plan.language is None:  # the slot was known taken
            late_reply = LateReply(str(decision.policy), tuple(ctx.support_domains))
            outbox = []
        else:
            outbox = [reply_item(ctx, decision, plan)] if reply_queued(ctx, plan) else []
        if (
            result.decision == DecisionName.ACCEPTED_FOLLOWUP
            and ctx.envelope.channel != Channel.REPLAY
        ):
            # An archive replay records history; the ticket system already has it.
            outbox += forward_items(self.settings, decision, ctx.mail, ctx.support_domains)
        # Only the first decision of a message holds its dedup key.
        dedup_key = None if ctx.earlier.found else ctx.mail.dedup_key
        window, max_delivery = reply_windows(ctx.policy)
        return Pending(decision, dedup_key, message.raw, outbox, window, max_delivery, late_reply)

    def _slot_known_taken(self, plan: ReplyPlan, decision: str) -> bool:
        """Whether this process saw the reply's (sender, reason) slot taken: the claim at
        commit will refuse it unless the slot was freed since, so the reply waits."""
        if plan.recipient is None:
            return False
        reason = plan.reason or decision
        return self.reply_slots.taken(plan.recipient, reason, utcnow())

    def redecide(
        self,
        raw: bytes | bytearray,
        envelope: Envelope,
        result: ChainResult,
        silent_reason: ReplyReason | None = None,
    ) -> Pending:
        """A later record for a stored message, given its outcome (an operator's action or
        the hold expiry, ``worker.held``): its reply and forwards are planned as ``decide``
        plans them, unless ``silent_reason`` says why it gets none. It holds no dedup key:
        the first decision keeps it."""
        message = self._classify(raw, envelope, CachedDirectory(self.tickets), None)
        message = replace(message, result=result)
        if silent_reason is not None:
            plan = ReplyPlan(ReplyStatus.SUPPRESSED, silent_reason)
        else:
            plan = self._plan_reply(message, None, False)
        return replace(self._pending(message, plan), dedup_key=None)

    def record_action(
        self, pending: Pending, acts_on: int, alongside: Callable[[Session], None] | None = None
    ) -> Decision:
        """Commit a record acting on decision ``acts_on`` once (``Recorder.record_action``),
        then log and spool it like any decision."""
        decision = self.recorder.record_action(pending, acts_on, alongside)
        return self._after_commit([decision])[0]

    def explain(self, raw: bytes, envelope: Envelope) -> Decision:
        """The decision and trace a message would get now; ``decide`` only reads."""
        with Session(self.read_engine) as session:
            decision = self.decide(raw, envelope, session).decision
        decision.public_id = None  # nothing recorded, nothing to cite
        # Only the dry run carries each rule's description; stored traces stay as they were.
        decision.trace = [
            {**step, "description": describe(step["rule"])} for step in decision.trace
        ]
        return decision

    # -- recording -----------------------------------------------------------------------

    def record(self, pending: Pending) -> Decision:
        """Commit the decision with everything that belongs to it (see ``worker.recorder``)."""
        return self.recorder.record(pending)

    def ingest(
        self, raw: bytes | bytearray, envelope: Envelope, *, reject_in_dialogue: bool = False
    ) -> Decision:
        """Decide, record, log the canonical line, and spool any reply when no relay is set."""
        started = time.perf_counter()
        pending = self.decide(raw, envelope, reject_in_dialogue=reject_in_dialogue, recording=True)
        decision = self.record(pending)
        DECISION_SECONDS.observe(time.perf_counter() - started)
        return self._after_commit([decision])[0]

    def ingest_many(self, messages: list[tuple[bytes, Envelope]]) -> list[Decision]:
        """Several messages in one transaction (IMAP batches, replay): one fsync for all."""
        started = time.perf_counter()
        pendings = [self.decide(raw, envelope, recording=True) for raw, envelope in messages]
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
                # Before the answer, so that a 250 means the reply is written too; no
                # database lock is held while its file is written (``worker.outbox``).
                spool_pending(self.engine, self.settings.outbox_dir, outbox_ids)
            except (OSError, TransientError) as exc:
                # The reply is committed in the outbox; the next run of any command spools it.
                log.warning("outbox_spool_deferred", error=str(exc))
        return decisions
