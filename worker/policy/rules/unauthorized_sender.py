"""``unauthorized_sender``: only the ticket's people may post to it without a signed token.

A verified HMAC tag proves the sender got it from the ticket system. Otherwise the envelope
sender or the From address must be a participant, or (where the policy allows it) belong to
one of the ticket's organisation domains. Checked before the ticket's status so that a
stranger learns nothing about the ticket from the answer.
"""

from __future__ import annotations

from worker.decision import RuleName
from worker.mail import domain_of
from worker.policy.context import RuleContext
from worker.policy.rules import Verdict


class UnauthorizedSender:
    name = RuleName.UNAUTHORIZED_SENDER
    description = "follow-ups come from ticket participants or through a signed token"

    def check(self, ctx: RuleContext) -> Verdict:
        reference, ticket, policy = ctx.reference, ctx.ticket, ctx.policy
        if reference is None or ticket is None or policy is None:
            return Verdict.miss("no ticket to post to")
        if reference.signed:
            return Verdict.miss(f"signed {reference.method} authorises the sender")
        senders = {a for a in (ctx.envelope.mail_from, ctx.mail.from_address) if a}
        participants = {p.lower() for p in ticket.participants}
        if senders & participants:
            return Verdict.miss("sender is a participant")
        mode = policy.document.tickets.authorized_senders
        if mode == "participants_or_domains":
            domains = {d.lower() for d in ticket.domains}
            if {domain_of(s) for s in senders} & domains:
                return Verdict.miss("sender belongs to an organisation domain of the ticket")
        allowed = "participant" if mode == "participants" else "participant or domain"
        return Verdict.hit_because(f"sender is not a {allowed} and no valid signed token was used")
