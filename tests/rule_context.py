"""What the rule tests hand a rule: an in-memory ticket directory and a resolved context.

The context is built exactly as a dry run builds it (the shipped policies, the real
reference resolution, the earlier decision looked up), only over a directory held in a
dict instead of the database, so a rule's test calls its ``check`` with nothing else
running.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from helpers import POLICIES, SECRET, envelope

from worker.clock import utcnow
from worker.mail import InboundMail
from worker.policy.context import RuleContext
from worker.policy.document import Policy, PolicySet
from worker.policy.earlier import look_up
from worker.policy.reference import resolve
from worker.store.tickets_view import TicketInfo
from worker.tokens import ReplyTokens

POLICY_SET = PolicySet.load(POLICIES)
TOKENS = ReplyTokens(SECRET.encode())
DOMAINS = ["wildix.com"]


def policy(policy_id: str = "wildix-2022-04") -> Policy:
    found = POLICY_SET.by_id(policy_id)
    assert found is not None
    return found


def ticket(
    ticket_id: str = "1001",
    *,
    kind: str = "technical",
    status: str = "open",
    closed_at: datetime | None = None,
    participants: tuple[str, ...] = ("bob@partner.example",),
    domains: tuple[str, ...] = (),
) -> TicketInfo:
    return TicketInfo(ticket_id, kind, status, closed_at, participants, domains)


class MemoryDirectory:
    """The rules' ``Directory`` over plain dicts: tickets by id, decisions by dedup key."""

    def __init__(
        self,
        tickets: tuple[TicketInfo, ...] = (),
        decided: dict[str, tuple[int, str]] | None = None,
    ) -> None:
        self.tickets = {t.id: t for t in tickets}
        self.decisions = dict(decided or {})

    def ticket(self, ticket_id: str) -> TicketInfo | None:
        return self.tickets.get(ticket_id)

    def decided_as(self, dedup_key: str) -> tuple[int, str] | None:
        return self.decisions.get(dedup_key)


def message(
    subject: str = "my PBX is down", body: str = "Hello, it does not work.", **headers: str
) -> bytes:
    """A plain message from alice to support; ``headers`` add or replace (``_`` → ``-``)."""
    fields = {
        "From": "Alice <alice@customer.example>",
        "To": "support@wildix.com",
        "Subject": subject,
        "Message-ID": "<m1@mail.customer.example>",
        "Date": "Mon, 23 Nov 2026 09:11:58 +0000",
    }
    fields.update({k.replace("_", "-"): v for k, v in headers.items()})
    head = "".join(f"{k}: {v}\r\n" for k, v in fields.items() if v != "")
    return (head + "\r\n" + body + "\r\n").encode("utf-8")


def context(
    raw: bytes | None = None,
    *,
    sender: str = "alice@customer.example",
    rcpt: tuple[str, ...] = (),
    policy_id: str | None = "wildix-2022-04",
    directory: MemoryDirectory | None = None,
    at: datetime | None = None,
    max_message_bytes: int = 25 * 1024 * 1024,
) -> RuleContext:
    """The context the chain would see for ``raw``: reference and ticket already resolved."""
    mail = InboundMail.from_bytes(raw if raw is not None else message())
    env = envelope(sender, *rcpt, at=at or utcnow())
    chosen = policy(policy_id) if policy_id else None
    directory = directory or MemoryDirectory()
    found = resolve(mail, env, chosen, directory, TOKENS, DOMAINS)
    return RuleContext(
        mail=mail,
        envelope=env,
        policy=chosen,
        earlier=look_up(mail.dedup_key, directory),
        support_domains=DOMAINS,
        max_message_bytes=max_message_bytes,
        reference=found.reference,
        ticket=found.ticket,
    )


def days_ago(days: float) -> datetime:
    return utcnow() - timedelta(days=days)
