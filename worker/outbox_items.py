"""What a decision leaves in the outbox: its automatic reply, and a follow-up's forwards
(mail to ``MAILGATE_FORWARD_TO``, the helpdesk delivery, the webhook), built as the rows
the recorder inserts with the decision."""

from __future__ import annotations

from dataclasses import dataclass, replace

from worker.decision import (
    Decision,
    OutboxItem,
    OutboxKind,
    ReplyLanguage,
    ReplyPlan,
    ReplyStatus,
)
from worker.errors import TransientError
from worker.forwarding import forward_mail, webhook_body
from worker.helpdesk.delivery import follow_up_item
from worker.mail import InboundMail
from worker.policy.context import RuleContext
from worker.policy.document import Policy, PolicySet
from worker.replies import build_reply
from worker.reply_language import choose as choose_language
from worker.settings import Settings


def reply_queued(ctx: RuleContext, plan: ReplyPlan) -> bool:
    """Whether the plan sends an automatic reply (a policy writes it, someone receives it)."""
    return plan.status == ReplyStatus.QUEUED and ctx.policy is not None and bool(plan.recipient)


def reply_item(ctx: RuleContext, decision: Decision, plan: ReplyPlan) -> OutboxItem:
    """The automatic reply of a queued plan (``reply_queued`` said it is one)."""
    assert ctx.policy is not None and plan.recipient is not None
    return _reply(ctx.mail, ctx.policy, ctx.support_domains, decision, plan)


def _reply(
    mail: InboundMail,
    policy: Policy,
    domains: list[str],
    decision: Decision,
    plan: ReplyPlan,
) -> OutboxItem:
    assert plan.recipient is not None
    body, message_id = build_reply(
        decision=decision.decision,
        mail=mail,
        recipient=plan.recipient,
        policy=policy,
        support_domains=domains,
        ticket=decision.ticket,
        language=plan.language.language if plan.language else "en",
        reference=decision.public_id or "",
    )
    return OutboxItem(OutboxKind.AUTO_REPLY, "", plan.recipient, message_id, body)


@dataclass(frozen=True)
class LateReply:
    """A queued reply not built before the commit (its slot was known taken), as plain
    data: the recorder builds it from the stored bytes if the claim is won after all, in
    this process or in ``serve``'s writer process (``worker.serve.writer``)."""

    policy_id: str
    support_domains: tuple[str, ...]

    def build(
        self, policies: PolicySet, raw: bytes | bytearray, decision: Decision
    ) -> tuple[OutboxItem, ReplyLanguage]:
        """The reply, and the language chosen for it (which the decision records)."""
        policy = policies.by_id(self.policy_id)
        if policy is None:  # not on the hot path: a policy set without it cannot be
            raise TransientError(f"policy {self.policy_id} is not loaded")
        mail = InboundMail.from_bytes(raw)
        language = choose_language(mail, policy)
        plan = replace(decision.reply, language=language)
        return _reply(mail, policy, list(self.support_domains), decision, plan), language


def forward_items(
    settings: Settings, decision: Decision, mail: InboundMail, domains: list[str]
) -> list[OutboxItem]:
    """An accepted follow-up's forwards, as the settings ask for them."""
    items = []
    if settings.forward_to:
        sender = f"mailgate@{domains[0]}"
        body, message_id = forward_mail(decision, mail, settings.forward_to, sender, domains[0])
        items.append(
            OutboxItem(OutboxKind.FORWARD_MAIL, sender, settings.forward_to, message_id, body)
        )
    if settings.helpdesk:
        items.append(follow_up_item(decision, mail))
    if settings.forward_url:
        body = webhook_body(decision, mail)
        reference = decision.message_id or decision.raw_sha256
        items.append(OutboxItem(OutboxKind.WEBHOOK, "", settings.forward_url, reference, body))
    return items
