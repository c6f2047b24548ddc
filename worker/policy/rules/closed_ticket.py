"""``closed_ticket``: a ticket closed longer ago than the policy's reopen window."""

from __future__ import annotations

from datetime import timedelta

from worker.decision import RuleName
from worker.policy.context import RuleContext
from worker.policy.rules import Verdict


class ClosedTicket:
    name = RuleName.CLOSED_TICKET
    description = "a ticket closed beyond the reopen window cannot be reopened by email"

    def check(self, ctx: RuleContext) -> Verdict:
        ticket, policy = ctx.ticket, ctx.policy
        if ticket is None or policy is None:
            return Verdict.miss("no ticket to judge")
        if ticket.status != "closed":
            return Verdict.miss(f"ticket is {ticket.status}")
        window = timedelta(days=policy.document.tickets.reopen_window_days)
        if ticket.closed_at is not None and ctx.envelope.received_at - ticket.closed_at <= window:
            return Verdict.miss(
                f"closed {ticket.closed_at.isoformat()}, within the {window.days}-day reopen window"
            )
        since = ticket.closed_at.isoformat() if ticket.closed_at else "an unknown date"
        return Verdict.hit_because(
            f"closed since {since}, beyond the {window.days}-day reopen window"
        )
